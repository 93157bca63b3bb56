-- Leases: who does a piece of shared work (a delivery partition, the
-- periodic jobs, the outbox) until when. epoch grows each time the lease
-- changes hands, and every write made under a lease checks it (fencing),
-- so a hub that lost its lease while stalled cannot commit.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    owner      TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,  -- Unix ms
    updated_at INTEGER NOT NULL
);

-- The hubs sharing this store, with their last heartbeat.
CREATE TABLE nodes (
    id         TEXT    PRIMARY KEY,
    addr       TEXT    NOT NULL DEFAULT '',
    started_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
);

-- The delivery partition of a conversation: hubs lease partitions, so one
-- conversation is delivered by one hub at a time, in order.
ALTER TABLE deliveries ADD COLUMN part INTEGER NOT NULL DEFAULT 0;
