-- Fewer index writes per webhook (issue 22; SQLite migration 0011). The
-- console's and the statistics' ranges read only delivered deliveries and
-- failed attempts, yet every delivery entered deliveries_settled when created (pending),
-- left and re-entered it when delivered, and every successful attempt
-- entered delivery_attempts_at. Partial indexes hold only the rows those
-- queries read, so the hot path of a webhook delivered at the first try
-- writes one index entry where it wrote four.
DROP INDEX deliveries_settled;
-- state stays a column so that the ranges read the index alone.
CREATE INDEX deliveries_settled ON deliveries (updated_at, connector, state) WHERE state = 'delivered';
-- The dead-letter list (state = 'dead', by id) used the old index's state
-- prefix; dead deliveries are few, so their own index costs nothing.
CREATE INDEX deliveries_dead ON deliveries (id) WHERE state = 'dead';
DROP INDEX delivery_attempts_at;
CREATE INDEX delivery_attempts_at ON delivery_attempts (at, outcome) WHERE outcome IN ('retry', 'failed', 'error');
