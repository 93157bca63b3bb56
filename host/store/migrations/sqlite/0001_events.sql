-- The event log: append-only, one row per WhatsApp item (or hub-made event).
-- id is derived from the item's natural key, so a duplicate POST from Meta
-- collides on it and adds nothing.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    occurred_at     INTEGER NOT NULL, -- Unix milliseconds
    received_at     INTEGER NOT NULL, -- Unix milliseconds
    contact_key     TEXT,
    conversation_id TEXT,
    phone_number_id TEXT,
    body            BLOB    NOT NULL  -- the event JSON, without seq
);
CREATE INDEX events_type_seq ON events (type, seq);
CREATE INDEX events_contact_seq ON events (contact_key, seq);


-- Customers. key is the first identity the hub saw for them (user_id when
-- WhatsApp sent one, wa_id otherwise) and never changes, so conversation ids
-- derived from it stay stable when a BSUID or a phone number shows up later.
CREATE TABLE contacts (
    key             TEXT PRIMARY KEY,
    wa_id           TEXT,
    user_id         TEXT,
    name            TEXT    NOT NULL DEFAULT '',
    username        TEXT    NOT NULL DEFAULT '',
    first_seen_at   INTEGER NOT NULL,
    last_inbound_at INTEGER,          -- opens the 24-hour customer-service window
    updated_at      INTEGER NOT NULL
);
CREATE INDEX contacts_wa_id ON contacts (wa_id);
CREATE INDEX contacts_user_id ON contacts (user_id);

-- One row that readiness probes rewrite to prove the file takes commits.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
