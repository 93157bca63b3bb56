-- Every state an outbound message went through, for GET /api/v1/messages/{id}.
CREATE TABLE outbox_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id   TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    error_code  TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_history_msg ON outbox_history (outbox_id);

-- Per-recipient order: the sender moves a recipient's queue as a whole.
CREATE INDEX outbox_recipient ON outbox (recipient, state);

-- Statuses of a wamid the outbox does not know yet: Meta can deliver the
-- "sent" webhook before the send response is recorded. Applied when it is.
CREATE TABLE outbox_early_statuses (
    wamid      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    error_code TEXT    NOT NULL DEFAULT '',
    error      TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (wamid, state)
) WITHOUT ROWID;
