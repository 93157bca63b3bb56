-- What the operator console reads: a conversation's thread, the charts'
-- per-minute counts and the newest conversations and outbox messages,
-- each from an index rather than a scan of the log.
CREATE INDEX events_conversation_seq ON events (conversation_id, seq);
-- With the team of the stored route, it answers the charts and the
-- period's inbound by team from the index alone.
CREATE INDEX events_received_type ON events (received_at, type, json_extract(route, '$.team'));
CREATE INDEX deliveries_settled ON deliveries (state, updated_at, connector);
CREATE INDEX delivery_attempts_at ON delivery_attempts (at, outcome);
CREATE INDEX conversations_last_active ON conversations (last_active);
CREATE INDEX outbox_created ON outbox (created_at);

-- Deliveries per connector and state, kept by triggers: the overview,
-- GET /api/v1/connectors and /metrics read these few rows instead of
-- counting an index of millions of settled deliveries.
CREATE TABLE delivery_counts (
    connector TEXT    NOT NULL,
    state     TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (connector, state)
) WITHOUT ROWID;
INSERT INTO delivery_counts (connector, state, n) SELECT connector, state, COUNT(*) FROM deliveries GROUP BY connector, state;
CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
    INSERT INTO delivery_counts (connector, state, n) VALUES (NEW.connector, NEW.state, 1)
        ON CONFLICT (connector, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_update AFTER UPDATE OF connector, state ON deliveries
    WHEN OLD.state IS NOT NEW.state OR OLD.connector IS NOT NEW.connector BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE connector = OLD.connector AND state = OLD.state;
    INSERT INTO delivery_counts (connector, state, n) VALUES (NEW.connector, NEW.state, 1)
        ON CONFLICT (connector, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
    UPDATE delivery_counts SET n = n - 1 WHERE connector = OLD.connector AND state = OLD.state;
END;
