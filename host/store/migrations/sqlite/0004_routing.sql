-- Consent: the customer's current marketing consent, with how and when it
-- last changed ('' state means never stated).
ALTER TABLE contacts ADD COLUMN consent TEXT NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN consent_source TEXT NOT NULL DEFAULT '';
ALTER TABLE contacts ADD COLUMN consent_at INTEGER;

-- Conversation affinity: the team that has a conversation and when the
-- conversation last had activity (a customer message or a message sent).
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    contact_key TEXT    NOT NULL,
    team        TEXT    NOT NULL DEFAULT '',
    last_active INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX conversations_contact ON conversations (contact_key);
