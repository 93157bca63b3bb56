-- Outbound WhatsApp messages: every request from a plugin, a trigger or the
-- admin API is kept here before anything is sent, so a restart resumes it
-- and an idempotency key never sends twice.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT UNIQUE,           -- source-qualified; NULL when the caller gave none
    source          TEXT NOT NULL,         -- connector:<name>, trigger:<name>, api
    recipient       TEXT NOT NULL,         -- wa_id or user_id
    phone_number_id TEXT NOT NULL DEFAULT '',
    request         TEXT NOT NULL,         -- the message as requested (JSON)
    state           TEXT NOT NULL,         -- queued, sending, accepted, sent, delivered, read, failed
    wamid           TEXT,
    error_code      TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_at);
CREATE UNIQUE INDEX outbox_wamid ON outbox (wamid) WHERE wamid IS NOT NULL;
