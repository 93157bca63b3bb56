-- Media (SQLite migration 0010): what each file is and its fetch queue,
-- plus the bytes themselves for media.store: postgres, in chunks of at
-- most 1 MiB so that no statement carries a whole file.
CREATE TABLE media (
    id              TEXT    PRIMARY KEY,
    origin          TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    reason          TEXT    NOT NULL DEFAULT '',
    sha256          TEXT    NOT NULL DEFAULT '',
    expect_sha256   TEXT    NOT NULL DEFAULT '',
    mime_type       TEXT    NOT NULL DEFAULT '',
    size            BIGINT  NOT NULL DEFAULT 0,
    filename        TEXT    NOT NULL DEFAULT '',
    contact_key     TEXT,
    phone_number_id TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_at         BIGINT  NOT NULL DEFAULT 0,
    claimed_until   BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX media_queue ON media (state, next_at);
CREATE INDEX media_contact ON media (contact_key);
CREATE INDEX media_sha256 ON media (sha256);
CREATE INDEX media_created ON media (created_at);

CREATE TABLE media_events (
    media_id TEXT   NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (media_id, seq)
);
CREATE INDEX media_events_seq ON media_events (seq);

-- A blob row is written in the same transaction as its last chunk: a blob
-- without its row is never read.
CREATE TABLE media_blobs (
    sha256     TEXT    PRIMARY KEY,
    size       BIGINT  NOT NULL,
    chunks     INTEGER NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE TABLE media_chunks (
    sha256 TEXT    NOT NULL,
    n      INTEGER NOT NULL,
    data   BYTEA   NOT NULL,
    PRIMARY KEY (sha256, n)
);

-- ---- media-out (outbound media messages; keep this section at the end) ----
-- The file of a media message as uploaded to Graph (JSON: graph_id, sha256,
-- mime_type, size, at), recorded before the message is sent: a retry or a
-- restart sends that id instead of uploading the file again. '' until the
-- upload is done, and for messages without media.
ALTER TABLE outbox ADD COLUMN media_upload TEXT NOT NULL DEFAULT '';
