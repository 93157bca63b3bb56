-- Media files the hub keeps: customers' media (keyed by WhatsApp's media
-- id) and files put for sending (keyed by the hub's med_ id). The bytes
-- live in the media store under their sha256; a row says what a file is,
-- whose it is and how its fetch goes. A pending row with next_at is the
-- durable fetch queue: it is written in the same commit as the event.
CREATE TABLE media (
    id              TEXT    PRIMARY KEY,
    origin          TEXT    NOT NULL,             -- inbound, upload
    state           TEXT    NOT NULL,             -- pending, available, unavailable
    reason          TEXT    NOT NULL DEFAULT '',
    sha256          TEXT    NOT NULL DEFAULT '',  -- hex digest of the stored bytes
    expect_sha256   TEXT    NOT NULL DEFAULT '',  -- the webhook's digest (base64)
    mime_type       TEXT    NOT NULL DEFAULT '',
    size            INTEGER NOT NULL DEFAULT 0,
    filename        TEXT    NOT NULL DEFAULT '',
    contact_key     TEXT,
    phone_number_id TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         INTEGER NOT NULL DEFAULT 0,   -- Unix ms: fetch not before
    claimed_until   INTEGER NOT NULL DEFAULT 0,   -- Unix ms: a hub is fetching it
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX media_queue ON media (state, next_at);
CREATE INDEX media_contact ON media (contact_key);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_created ON media (created_at);

-- The events that carry a file, so that a finished fetch releases the
-- deliveries held for it.
CREATE TABLE media_events (
    media_id TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (media_id, seq)
);
CREATE INDEX media_events_seq ON media_events (seq);

-- ---- media-out (outbound media messages; keep this section at the end) ----
-- The file of a media message as uploaded to Graph (JSON: graph_id, sha256,
-- mime_type, size, at), recorded before the message is sent: a retry or a
-- restart sends that id instead of uploading the file again. '' until the
-- upload is done, and for messages without media.
ALTER TABLE outbox ADD COLUMN media_upload TEXT NOT NULL DEFAULT '';
