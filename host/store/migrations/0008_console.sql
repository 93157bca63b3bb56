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
