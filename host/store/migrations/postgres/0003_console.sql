-- What the operator console reads (SQLite migration 0008): its indexes, and
-- delivery_counts kept by a trigger.
CREATE INDEX events_conversation_seq ON events (conversation_id, seq);
CREATE INDEX events_received_type ON events (received_at, type, ((route::jsonb ->> 'team')));
CREATE INDEX deliveries_settled ON deliveries (state, updated_at, connector);
CREATE INDEX delivery_attempts_at ON delivery_attempts (at, outcome);
CREATE INDEX conversations_last_active ON conversations (last_active);
CREATE INDEX outbox_created ON outbox (created_at);

CREATE TABLE delivery_counts (
    connector TEXT   NOT NULL,
    state     TEXT   NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (connector, state)
);
INSERT INTO delivery_counts (connector, state, n) SELECT connector, state, COUNT(*) FROM deliveries GROUP BY connector, state;

CREATE FUNCTION deliveries_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF TG_OP = 'DELETE' OR OLD.state IS DISTINCT FROM NEW.state OR OLD.connector IS DISTINCT FROM NEW.connector THEN
            UPDATE delivery_counts SET n = n - 1 WHERE connector = OLD.connector AND state = OLD.state;
        END IF;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND (OLD.state IS DISTINCT FROM NEW.state OR OLD.connector IS DISTINCT FROM NEW.connector)) THEN
        INSERT INTO delivery_counts (connector, state, n) VALUES (NEW.connector, NEW.state, 1)
            ON CONFLICT (connector, state) DO UPDATE SET n = delivery_counts.n + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_count AFTER INSERT OR UPDATE OF connector, state OR DELETE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION deliveries_count();
