package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Delivery states.
const (
	StatePending   = "pending"
	StateDelivered = "delivered"
	StateSkipped   = "skipped"
	StateDead      = "dead"
)

// dispatchCursor is the last seq whose routing decision and deliveries are
// stored.
const dispatchCursor = "dispatch"

// Delivery is one event due at one connector.
type Delivery struct {
	ID           int64
	Connector    string
	EventID      string
	Seq          int64
	Conversation string
	Part         int // the delivery partition of Conversation
	Attempts     int
	// JSON is the event as connectors see it (CONTRACT §4), with its seq,
	// conversation and route.
	JSON []byte
}

// Due returns up to limit pending deliveries of connector that may be
// attempted at now, oldest first, keeping order per conversation: when a
// conversation's oldest pending delivery is waiting for its retry time, its
// later ones wait too, while other conversations go ahead.
func (s *Store) Due(ctx context.Context, connector string, now time.Time, limit int) ([]Delivery, error) {
	return s.DueIn(ctx, connector, nil, now, limit)
}

// partsFilter is the SQL condition and arguments that keep to the given
// delivery partitions; none for nil (all of them).
func partsFilter(parts []int) (string, []any) {
	if parts == nil {
		return "", nil
	}
	if len(parts) == 0 {
		return " AND 1 = 0", nil
	}
	args := make([]any, len(parts))
	for i, p := range parts {
		args[i] = p
	}
	return " AND part IN (?" + strings.Repeat(",?", len(parts)-1) + ")", args
}

// DueIn is Due restricted to the delivery partitions parts (nil: all).
func (s *Store) DueIn(ctx context.Context, connector string, parts []int, now time.Time, limit int) ([]Delivery, error) {
	// Scan a window larger than the batch without the bodies, so that
	// blocked conversations at the head do not starve the others, then
	// read the bodies of the chosen ones.
	cond, pargs := partsFilter(parts)
	args := append([]any{connector}, pargs...)
	rows, err := s.reader.QueryContext(ctx, `SELECT id, seq, conversation, attempts, next_at, part
		FROM deliveries WHERE connector = ? AND state = 'pending'`+cond+` ORDER BY seq LIMIT ?`, append(args, limit*20)...)
	if err != nil {
		return nil, fmt.Errorf("store: due deliveries of %s: %w", connector, err)
	}
	blocked := map[string]bool{}
	var out []Delivery
	nowMs := now.UnixMilli()
	for rows.Next() && len(out) < limit {
		var (
			d      Delivery
			nextAt int64
		)
		if err := rows.Scan(&d.ID, &d.Seq, &d.Conversation, &d.Attempts, &nextAt, &d.Part); err != nil {
			rows.Close()
			return nil, err
		}
		if blocked[d.Conversation] {
			continue
		}
		if nextAt > nowMs {
			blocked[d.Conversation] = true
			continue
		}
		d.Connector = connector
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(out) == 0 {
		return nil, err
	}
	bySeq := make(map[int64]int, len(out))
	args = make([]any, len(out))
	for i, d := range out {
		bySeq[d.Seq] = i
		args[i] = d.Seq
	}
	rows, err = s.reader.QueryContext(ctx, `SELECT seq, id, body, route, conversation_id FROM events WHERE seq IN (?`+
		strings.Repeat(",?", len(out)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events of due deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq         int64
			id          string
			body        []byte
			route, conv sql.NullString
		)
		if err := rows.Scan(&seq, &id, &body, &route, &conv); err != nil {
			return nil, err
		}
		d := &out[bySeq[seq]]
		d.EventID = id
		d.JSON = eventJSON(body, seq, conv.String, route.String)
	}
	return out, rows.Err()
}

// eventJSON completes a stored body (the event without seq, conversation
// and route, which are columns) into the event's JSON by splicing, which
// costs far less than decoding and encoding it for every delivery.
func eventJSON(body []byte, seq int64, conv, route string) []byte {
	b := make([]byte, 0, len(body)+len(conv)+len(route)+64)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	if conv != "" {
		b = append(b, `,"conversation_id":`...)
		b = strconv.AppendQuote(b, conv)
	}
	if route != "" {
		b = append(b, `,"route":`...)
		b = append(b, route...)
	}
	if len(body) > 2 {
		b = append(b, ',')
		b = append(b, body[1:]...)
	} else {
		b = append(b, '}')
	}
	return b
}

// NextDue is when connector's earliest pending delivery becomes due; ok is
// false when nothing is pending.
func (s *Store) NextDue(ctx context.Context, connector string) (t time.Time, ok bool, err error) {
	return s.NextDueIn(ctx, connector, nil)
}

// NextDueIn is NextDue restricted to the delivery partitions parts (nil:
// all).
//
// Only each conversation's first pending delivery counts: a later one is
// not due before the one ahead of it goes, whatever its own next_at (a
// message that arrived while the conversation waits for a retry or a
// media file), and counting it would wake the worker at once, again and
// again, for nothing it may send.
func (s *Store) NextDueIn(ctx context.Context, connector string, parts []int) (t time.Time, ok bool, err error) {
	cond, pargs := partsFilter(parts)
	rows, err := s.reader.QueryContext(ctx, `SELECT conversation, next_at FROM deliveries WHERE connector = ? AND state = 'pending'`+cond+
		` ORDER BY seq LIMIT ?`, append(append([]any{connector}, pargs...), nextDueWindow)...)
	if err != nil {
		return time.Time{}, false, err
	}
	defer rows.Close()
	heads := map[string]bool{}
	var earliest int64
	for rows.Next() {
		var conv string
		var at int64
		if err := rows.Scan(&conv, &at); err != nil {
			return time.Time{}, false, err
		}
		if heads[conv] {
			continue
		}
		heads[conv] = true
		if len(heads) == 1 || at < earliest {
			earliest = at
		}
	}
	if err := rows.Err(); err != nil || len(heads) == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMilli(earliest), true, nil
}

// nextDueWindow bounds NextDueIn's scan, as DueIn's own window bounds
// what it looks at.
const nextDueWindow = 10000

// AttemptOutcome is what one delivery attempt came to, as
// delivery_attempts.outcome keeps it.
type AttemptOutcome string

// Attempt outcomes: the connector's answer (OutcomeOf), or what the hub
// itself concluded.
const (
	AttemptDelivered AttemptOutcome = "delivered"
	AttemptRetry     AttemptOutcome = "retry"
	AttemptFailed    AttemptOutcome = "failed"
	AttemptSkipped   AttemptOutcome = "skipped"
	// AttemptError: the plugin could not be reached or gave no result
	// for the event, so what became of it is unknown.
	AttemptError AttemptOutcome = "error"
	// AttemptHeld: the connector did not try the event, held behind an
	// earlier event of its conversation.
	AttemptHeld AttemptOutcome = "held"
)

// OutcomeOf is the attempt outcome a connector's answer records; an
// outcome the SDK does not define is an error.
func OutcomeOf(o sdk.Outcome) AttemptOutcome {
	switch o {
	case sdk.Delivered:
		return AttemptDelivered
	case sdk.Retry:
		return AttemptRetry
	case sdk.Failed:
		return AttemptFailed
	case sdk.Skipped:
		return AttemptSkipped
	}
	return AttemptError
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	DeliveryID int64
	At         time.Time
	Duration   time.Duration
	Outcome    AttemptOutcome
	Error      string
	RetryAfter time.Duration
	// State is the delivery's new state; NextAt when it stays pending.
	State  string
	NextAt time.Time
	// Held: the connector did not try the event (an earlier event of its
	// conversation failed in the same batch). It waits again without
	// spending an attempt of its retry budget, and leaves no attempt row.
	Held bool
}

// RecordAttempts stores a batch's outcomes in one commit, with as few
// statements as the batch allows: delivered and skipped deliveries in one
// update each, every attempt in one insert. With a fence (the leases of
// the batch's partitions), nothing is stored and ErrLeaseLost returned
// when any of them changed hands: the new owner delivers the batch again.
func (s *Store) RecordAttempts(ctx context.Context, attempts []Attempt, fence ...Lease) error {
	if len(attempts) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *txn) error {
		if err := s.checkFence(tx, fence); err != nil {
			return err
		}
		now := s.now().UnixMilli()
		settled := map[string][]any{}
		tried := attempts[:0:0]
		for _, a := range attempts {
			if a.Held && a.Error == MediaHoldReason {
				// Only while the file is still pending: a fetch that ended
				// since delivery looked released nothing, and the event
				// must stay due.
				if _, err := tx.Exec(`UPDATE deliveries SET state = ?, next_at = ?, last_error = ?, updated_at = ?
					WHERE id = ? AND EXISTS (SELECT 1 FROM media_events me JOIN media m ON m.id = me.media_id
						WHERE me.seq = deliveries.seq AND m.state = ?)`,
					StatePending, a.NextAt.UnixMilli(), a.Error, now, a.DeliveryID, "pending"); err != nil {
					return fmt.Errorf("delivery %d: %w", a.DeliveryID, err)
				}
				continue
			}
			if a.Held && a.Error == MediaFollowReason {
				// Only behind a media hold that took: else the event is due.
				if _, err := tx.Exec(`UPDATE deliveries SET state = ?, next_at = ?, last_error = ?, updated_at = ?
					WHERE id = ? AND EXISTS (SELECT 1 FROM deliveries h WHERE h.connector = deliveries.connector
						AND h.conversation = deliveries.conversation AND h.seq < deliveries.seq AND h.state = ?
						AND h.last_error = ? AND h.next_at > ?)`,
					StatePending, a.NextAt.UnixMilli(), a.Error, now, a.DeliveryID, StatePending, MediaHoldReason, now); err != nil {
					return fmt.Errorf("delivery %d: %w", a.DeliveryID, err)
				}
				continue
			}
			if a.Held {
				if _, err := tx.Exec(`UPDATE deliveries SET state = ?, next_at = ?, last_error = ?, updated_at = ?
					WHERE id = ?`, StatePending, a.NextAt.UnixMilli(), a.Error, now, a.DeliveryID); err != nil {
					return fmt.Errorf("delivery %d: %w", a.DeliveryID, err)
				}
				continue
			}
			tried = append(tried, a)
			if a.State == StateDelivered || a.State == StateSkipped {
				settled[a.State] = append(settled[a.State], a.DeliveryID)
				continue
			}
			if _, err := tx.Exec(`UPDATE deliveries SET attempts = attempts + 1, state = ?, next_at = ?, last_error = ?, updated_at = ?
				WHERE id = ?`, a.State, a.NextAt.UnixMilli(), a.Error, now, a.DeliveryID); err != nil {
				return fmt.Errorf("delivery %d: %w", a.DeliveryID, err)
			}
			if a.State == StateDead {
				if err := s.announceDeadLetter(tx, a.DeliveryID, a.Error); err != nil {
					return fmt.Errorf("delivery %d: announcing the dead letter: %w", a.DeliveryID, err)
				}
			}
		}
		attempts = tried
		for state, ids := range settled {
			for len(ids) > 0 {
				chunk := ids[:min(len(ids), 500)]
				ids = ids[len(chunk):]
				args := append([]any{state, now}, chunk...)
				if _, err := tx.Exec(`UPDATE deliveries SET attempts = attempts + 1, state = ?, last_error = '', updated_at = ?
					WHERE id IN (?`+strings.Repeat(",?", len(chunk)-1)+`)`, args...); err != nil {
					return err
				}
			}
		}
		// attempts is the count after this update, so the rows can number
		// themselves.
		for len(attempts) > 0 {
			chunk := attempts[:min(len(attempts), 100)]
			attempts = attempts[len(chunk):]
			args := make([]any, 0, 6*len(chunk))
			for _, a := range chunk {
				args = append(args, a.At.UnixMilli(), a.Duration.Milliseconds(), a.Outcome, a.Error, a.RetryAfter.Milliseconds(), a.DeliveryID)
			}
			if _, err := tx.Exec(`INSERT INTO delivery_attempts (delivery_id, attempt, at, duration_ms, outcome, error, retry_after_ms)
				SELECT d.id, d.attempts, CAST(v.column1 AS BIGINT), CAST(v.column2 AS BIGINT), v.column3, v.column4, CAST(v.column5 AS BIGINT)
				FROM (VALUES `+strings.TrimSuffix(strings.Repeat(attemptRow+", ", len(chunk)), ", ")+`) AS v
				JOIN deliveries d ON d.id = CAST(v.column6 AS BIGINT)`, args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// attemptRow is one row of the attempts insert; the casts type the
// VALUES columns for PostgreSQL.
const attemptRow = "(CAST(? AS BIGINT), CAST(? AS BIGINT), ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT))"

// DeadLetter is an event whose delivery to a connector gave up.
type DeadLetter struct {
	EventID   string    `json:"event_id"`
	Seq       int64     `json:"seq"`
	Type      string    `json:"type"`
	Connector string    `json:"connector"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	At        time.Time `json:"dead_at"`
	// Cursor orders dead letters for paging: pass the last one's as
	// DeadLetterFilter.After to get the next page.
	Cursor int64 `json:"cursor"`
}

// DeadLetterFilter selects a page of dead letters.
type DeadLetterFilter struct {
	Connector string // "" for every connector
	After     int64  // the Cursor of the last dead letter already seen
	Limit     int    // at most this many (default 100)
}

// DeadLetters lists dead deliveries in the order they were created, one
// page at a time.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT d.id, e.id, e.seq, e.type, d.connector, d.attempts, d.last_error, d.updated_at
		FROM deliveries d JOIN events e ON e.seq = d.seq
		WHERE d.state = 'dead' AND (? = '' OR d.connector = ?) AND d.id > ? ORDER BY d.id LIMIT ?`,
		f.Connector, f.Connector, f.After, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("store: dead letters: %w", err)
	}
	defer rows.Close()
	out := []DeadLetter{}
	for rows.Next() {
		var dl DeadLetter
		var at int64
		if err := rows.Scan(&dl.Cursor, &dl.EventID, &dl.Seq, &dl.Type, &dl.Connector, &dl.Attempts, &dl.LastError, &at); err != nil {
			return nil, err
		}
		dl.At = time.UnixMilli(at).UTC()
		out = append(out, dl)
	}
	return out, rows.Err()
}

// Replay makes dead deliveries of connector pending again with a fresh
// retry budget: all of them, or those of the given event ids. It returns
// how many it revived.
func (s *Store) Replay(ctx context.Context, connector string, eventIDs []string) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		query := `UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?, updated_at = ?
			WHERE connector = ? AND state = 'dead'`
		args := []any{now, now, connector}
		if len(eventIDs) > 0 {
			query += ` AND seq IN (SELECT seq FROM events WHERE id IN (?` + strings.Repeat(",?", len(eventIDs)-1) + `))`
			for _, id := range eventIDs {
				args = append(args, id)
			}
		}
		res, err := tx.Exec(query, args...)
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}

// DeliveryRecord is one connector's delivery of an event, with its attempts.
type DeliveryRecord struct {
	Connector string          `json:"connector"`
	State     string          `json:"state"`
	Attempts  []AttemptRecord `json:"attempts"`
	LastError string          `json:"last_error,omitempty"`
	NextAt    *time.Time      `json:"next_attempt_at,omitempty"`
}

// AttemptRecord is one stored attempt.
type AttemptRecord struct {
	Attempt    int            `json:"attempt"`
	At         time.Time      `json:"at"`
	DurationMs int64          `json:"duration_ms"`
	Outcome    AttemptOutcome `json:"outcome"`
	Error      string         `json:"error,omitempty"`
	RetryAfter int64          `json:"retry_after_ms,omitempty"`
}

// EventDeliveries returns every connector's delivery of the event seq.
func (s *Store) EventDeliveries(ctx context.Context, seq int64) ([]DeliveryRecord, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT d.id, d.connector, d.state, d.last_error, d.next_at,
		a.attempt, a.at, a.duration_ms, a.outcome, a.error, a.retry_after_ms
		FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
		WHERE d.seq = ? ORDER BY d.connector, a.attempt`, seq)
	if err != nil {
		return nil, fmt.Errorf("store: deliveries of %d: %w", seq, err)
	}
	defer rows.Close()
	out := []DeliveryRecord{}
	byID := map[int64]int{}
	for rows.Next() {
		var (
			id                   int64
			conn, state, lastErr string
			nextAt               int64
			attempt              sql.NullInt64
			at, dur, retryAfter  sql.NullInt64
			outcome, aerr        sql.NullString
		)
		if err := rows.Scan(&id, &conn, &state, &lastErr, &nextAt, &attempt, &at, &dur, &outcome, &aerr, &retryAfter); err != nil {
			return nil, err
		}
		i, ok := byID[id]
		if !ok {
			rec := DeliveryRecord{Connector: conn, State: state, LastError: lastErr, Attempts: []AttemptRecord{}}
			if state == StatePending {
				t := time.UnixMilli(nextAt).UTC()
				rec.NextAt = &t
			}
			out = append(out, rec)
			i = len(out) - 1
			byID[id] = i
		}
		if attempt.Valid {
			out[i].Attempts = append(out[i].Attempts, AttemptRecord{
				Attempt: int(attempt.Int64), At: time.UnixMilli(at.Int64).UTC(), DurationMs: dur.Int64,
				Outcome: AttemptOutcome(outcome.String), Error: aerr.String, RetryAfter: retryAfter.Int64,
			})
		}
	}
	return out, rows.Err()
}

// ConnectorCounts are a connector's delivery totals.
type ConnectorCounts struct {
	Delivered int64 `json:"delivered"`
	Skipped   int64 `json:"skipped"`
	Pending   int64 `json:"pending"`
	Retrying  int64 `json:"retrying"`
	Dead      int64 `json:"dead"`
	// OldestPending is when the oldest pending event was received.
	OldestPending *time.Time `json:"oldest_pending_at,omitempty"`
	// Cursor is the highest seq up to which every event is settled.
	Cursor int64 `json:"cursor"`
}

// ConnectorCounts returns delivery totals per connector.
func (s *Store) ConnectorCounts(ctx context.Context) (map[string]*ConnectorCounts, error) {
	// The totals come from delivery_counts, which triggers keep; only the
	// pending rows (the backlog, small unless a connector is down) are
	// read, for the retrying count and the oldest one.
	rows, err := s.reader.QueryContext(ctx, `SELECT connector, state, n FROM delivery_counts WHERE n > 0`)
	if err != nil {
		return nil, fmt.Errorf("store: connector counts: %w", err)
	}
	out := map[string]*ConnectorCounts{}
	for rows.Next() {
		var conn, state string
		var n int64
		if err := rows.Scan(&conn, &state, &n); err != nil {
			rows.Close()
			return nil, err
		}
		c := out[conn]
		if c == nil {
			c = &ConnectorCounts{}
			out[conn] = c
		}
		switch state {
		case StateDelivered:
			c.Delivered = n
		case StateSkipped:
			c.Skipped = n
		case StateDead:
			c.Dead = n
		case StatePending:
			c.Pending = n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for conn, c := range out {
		if c.Pending > 0 {
			var lo sql.NullInt64
			if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE attempts > 0), MIN(seq) FROM deliveries INDEXED BY deliveries_pending
				WHERE connector = ? AND state = 'pending'`, conn).Scan(&c.Retrying, &lo); err != nil {
				return nil, fmt.Errorf("store: connector counts: %w", err)
			}
			if lo.Valid {
				c.Cursor = lo.Int64 - 1
				var received int64
				if err := s.reader.QueryRowContext(ctx, `SELECT received_at FROM events WHERE seq = ?`, lo.Int64).Scan(&received); err == nil {
					t := time.UnixMilli(received).UTC()
					c.OldestPending = &t
				}
				continue
			}
		}
		// Nothing pending: settled up to the newest delivery (each MAX is
		// one step down the index).
		var hi sql.NullInt64
		if err := s.reader.QueryRowContext(ctx, `SELECT MAX(m) FROM (
				SELECT MAX(seq) AS m FROM deliveries INDEXED BY deliveries_pending WHERE connector = ?1 AND state = 'delivered'
				UNION ALL SELECT MAX(seq) FROM deliveries INDEXED BY deliveries_pending WHERE connector = ?1 AND state = 'skipped'
				UNION ALL SELECT MAX(seq) FROM deliveries INDEXED BY deliveries_pending WHERE connector = ?1 AND state = 'dead') AS settled`, conn).Scan(&hi); err != nil {
			return nil, fmt.Errorf("store: connector counts: %w", err)
		}
		c.Cursor = hi.Int64
	}
	return out, nil
}

// SetPaused records whether a connector's deliveries are paused; it
// survives restarts.
func (s *Store) SetPaused(ctx context.Context, connector string, paused bool) error {
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`INSERT INTO connector_state (name, paused, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at`,
			connector, paused, s.now().UnixMilli())
		return err
	})
}

// Paused reports whether a connector's deliveries are paused.
func (s *Store) Paused(ctx context.Context, connector string) (bool, error) {
	var p bool
	err := s.reader.QueryRowContext(ctx, `SELECT paused FROM connector_state WHERE name = ?`, connector).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return p, err
}

// DispatchCursor is the last dispatched seq.
func (s *Store) DispatchCursor(ctx context.Context) (int64, error) {
	var v string
	err := s.reader.QueryRowContext(ctx, `SELECT value FROM cursors WHERE name = ?`, dispatchCursor).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}
