-- The routing decision of each event, stored before any delivery so that
-- replays and `wahub route --explain` agree with what happened.
ALTER TABLE events ADD COLUMN route TEXT;

-- Named positions in the log: the dispatcher's progress, sync cursors.
CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per (connector, event) the hub must deliver: a durable queue per
-- connector. conversation keeps delivery in order per conversation; a
-- failing one blocks only itself.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connector    TEXT    NOT NULL,
    seq          INTEGER NOT NULL REFERENCES events (seq),
    conversation TEXT    NOT NULL,  -- conversation_id, or the event id when it has none
    state        TEXT    NOT NULL,  -- pending, delivered, skipped, dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,  -- Unix ms: not before
    last_error   TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (connector, seq)
);
CREATE INDEX deliveries_pending ON deliveries (connector, state, seq);
CREATE INDEX deliveries_seq ON deliveries (seq);

-- Every attempt, for "what happened and why".
CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,  -- delivered, retry, failed, skipped, error
    error       TEXT    NOT NULL DEFAULT '',
    retry_after_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);

-- Per-connector operator state that must survive restarts.
CREATE TABLE connector_state (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- Plugins' key-value state, namespaced per connector (plugins never open
-- this file; they reach it through host callbacks).
CREATE TABLE kv (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

-- Contact attributes from CRMs, the admin API and triggers.
ALTER TABLE contacts ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
