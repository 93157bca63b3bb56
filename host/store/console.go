package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// The queries of the operator console (host/console). Each reads one index
// range, so that a page opens quickly over a log of millions of events.

// ConversationSummary is one conversation in the console's list.
type ConversationSummary struct {
	ID         string    `json:"id"`
	ContactKey string    `json:"contact"`
	Name       string    `json:"name,omitempty"`
	WAID       string    `json:"wa_id,omitempty"`
	Team       string    `json:"team,omitempty"`
	LastActive time.Time `json:"last_active_at"`
}

// RecentConversations lists conversations, the most recently active first.
// query, when set, keeps those whose customer's number, user id, name or
// username contains it.
func (s *Store) RecentConversations(ctx context.Context, query string, limit int) ([]ConversationSummary, error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	q := `SELECT c.id, c.contact_key, COALESCE(k.name, ''), COALESCE(k.wa_id, ''), c.team, c.last_active
		FROM conversations c LEFT JOIN contacts k ON k.key = c.contact_key`
	var args []any
	if query != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(query) + "%"
		q += ` WHERE c.contact_key IN (SELECT key FROM contacts WHERE wa_id LIKE ?1 ESCAPE '\' OR user_id LIKE ?1 ESCAPE '\'
			OR key LIKE ?1 ESCAPE '\' OR name LIKE ?1 ESCAPE '\' OR username LIKE ?1 ESCAPE '\')`
		args = append(args, like)
	}
	q += ` ORDER BY c.last_active DESC LIMIT ` + fmt.Sprint(limit)
	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: conversations: %w", err)
	}
	defer rows.Close()
	var out []ConversationSummary
	for rows.Next() {
		var c ConversationSummary
		var last int64
		if err := rows.Scan(&c.ID, &c.ContactKey, &c.Name, &c.WAID, &c.Team, &last); err != nil {
			return nil, err
		}
		c.LastActive = time.UnixMilli(last).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConversationOf returns a conversation's summary.
func (s *Store) ConversationOf(ctx context.Context, id string) (ConversationSummary, error) {
	var c ConversationSummary
	var last int64
	err := s.reader.QueryRowContext(ctx, `SELECT c.id, c.contact_key, COALESCE(k.name, ''), COALESCE(k.wa_id, ''), c.team, c.last_active
		FROM conversations c LEFT JOIN contacts k ON k.key = c.contact_key WHERE c.id = ?`, id).
		Scan(&c.ID, &c.ContactKey, &c.Name, &c.WAID, &c.Team, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("store: conversation %s: %w", id, err)
	}
	c.LastActive = time.UnixMilli(last).UTC()
	return c, nil
}

// ConversationEvents returns the newest limit events of a conversation
// with a seq below before (0: the newest), oldest first. Status events are
// left out: they show as the ticks of the messages they name.
func (s *Store) ConversationEvents(ctx context.Context, conversation string, before int64, limit int) ([]sdk.Event, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT seq, body, route, conversation_id FROM events INDEXED BY events_conversation_seq
		WHERE conversation_id = ? AND seq < ? AND type NOT LIKE 'status.%' ORDER BY seq DESC LIMIT ?`, conversation, before, limit)
	if err != nil {
		return nil, fmt.Errorf("store: conversation %s: %w", conversation, err)
	}
	defer rows.Close()
	var out []sdk.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rows.Err()
}

// DeliveryState is one connector's delivery of an event, without its
// attempts.
type DeliveryState struct {
	Connector string `json:"connector"`
	State     string `json:"state"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
}

// DeliveryStates returns, per event seq, each connector's delivery.
func (s *Store) DeliveryStates(ctx context.Context, seqs []int64) (map[int64][]DeliveryState, error) {
	out := map[int64][]DeliveryState{}
	if len(seqs) == 0 {
		return out, nil
	}
	args := make([]any, len(seqs))
	for i, v := range seqs {
		args[i] = v
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT seq, connector, state, attempts, last_error FROM deliveries
		WHERE seq IN (?`+strings.Repeat(",?", len(seqs)-1)+`) ORDER BY seq, connector`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: delivery states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var d DeliveryState
		if err := rows.Scan(&seq, &d.Connector, &d.State, &d.Attempts, &d.LastError); err != nil {
			return nil, err
		}
		out[seq] = append(out[seq], d)
	}
	return out, rows.Err()
}

// OutboundFilter selects outbox messages.
type OutboundFilter struct {
	State     string // one state, or "" for all
	Recipient string // a contact key, wa_id or user_id
	// Unsent keeps messages Meta has not accepted (no wamid yet).
	Unsent bool
	Limit  int
}

// OutboundList lists outbox messages, newest first, without their history.
func (s *Store) OutboundList(ctx context.Context, f OutboundFilter) ([]OutboundRecord, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	where := []string{"1=1"}
	var args []any
	if f.State != "" {
		where = append(where, "state = ?")
		args = append(args, f.State)
	}
	if f.Recipient != "" {
		where = append(where, "recipient = ?")
		args = append(args, f.Recipient)
	}
	if f.Unsent {
		where = append(where, "wamid IS NULL")
	}
	args = append(args, f.Limit)
	rows, err := s.reader.QueryContext(ctx, `SELECT id, state, source, recipient, phone_number_id, wamid, error_code, error, attempts,
		request, created_at, updated_at FROM outbox WHERE `+strings.Join(where, " AND ")+` ORDER BY created_at DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboundRecord
	for rows.Next() {
		var (
			r                OutboundRecord
			req              string
			wamid            sql.NullString
			created, updated int64
		)
		if err := rows.Scan(&r.ID, &r.State, &r.Source, &r.To, &r.PhoneNumberID, &wamid, &r.ErrorCode, &r.Error, &r.Attempts,
			&req, &created, &updated); err != nil {
			return nil, err
		}
		r.WAMID = wamid.String
		r.CreatedAt, r.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
		if err := json.Unmarshal([]byte(req), &r.Request); err != nil {
			return nil, fmt.Errorf("store: outbound %s: %w", r.ID, err)
		}
		r.IdempotencyKey = r.Request.IdempotencyKey
		out = append(out, r)
	}
	return out, rows.Err()
}

// OutboundStates returns the state of each outbox message named.
func (s *Store) OutboundStates(ctx context.Context, ids []string) (map[string]OutboundRecord, error) {
	out := map[string]OutboundRecord{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, v := range ids {
		args[i] = v
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT id, state, error_code, error FROM outbox WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbound states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r OutboundRecord
		if err := rows.Scan(&r.ID, &r.State, &r.ErrorCode, &r.Error); err != nil {
			return nil, err
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// OutboundByWAMID finds the outbox message Meta accepted as wamid.
func (s *Store) OutboundByWAMID(ctx context.Context, wamid string) (OutboundRecord, error) {
	var id string
	err := s.reader.QueryRowContext(ctx, `SELECT id FROM outbox WHERE wamid = ?`, wamid).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return OutboundRecord{}, ErrNotFound
	}
	if err != nil {
		return OutboundRecord{}, fmt.Errorf("store: message by wamid: %w", err)
	}
	return s.Outbound(ctx, id)
}

// Series are per-bucket counts for the console's charts. Bucket i covers
// [Since + i*Step, Since + (i+1)*Step).
type Series struct {
	Since time.Time
	Step  time.Duration
	// Inbound counts customer messages and button clicks; Outbound the
	// messages Meta accepted (message.sent).
	Inbound, Outbound []int64
	// Delivered counts deliveries settled as delivered, per connector.
	Delivered map[string][]int64
	// Retries counts attempts that will be tried again; Failed those that
	// made a dead letter.
	Retries, Failed []int64
}

// Series counts, in buckets of step from since to now, what the console's
// charts show.
func (s *Store) Series(ctx context.Context, since time.Time, step time.Duration) (Series, error) {
	if step <= 0 {
		return Series{}, errors.New("store: series: step must be positive")
	}
	now := s.now()
	n := int(now.Sub(since)/step) + 1
	if n < 1 || n > 10_000 {
		return Series{}, fmt.Errorf("store: series: %d buckets: choose a larger step", n)
	}
	sr := Series{Since: since.UTC(), Step: step, Inbound: make([]int64, n), Outbound: make([]int64, n),
		Retries: make([]int64, n), Failed: make([]int64, n), Delivered: map[string][]int64{}}
	from, width := since.UnixMilli(), step.Milliseconds()
	each := func(query string, scan func(rows *sql.Rows) error) error {
		rows, err := s.reader.QueryContext(ctx, query, from, width)
		if err != nil {
			return fmt.Errorf("store: series: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	bucket := func(b int64) (int, bool) { return int(b), b >= 0 && b < int64(n) }
	err := each(`SELECT (received_at - ?1) / ?2, SUM(CASE WHEN type IN ('message.received', 'button.clicked') THEN 1 ELSE 0 END), SUM(CASE WHEN type = 'message.sent' THEN 1 ELSE 0 END)
		FROM events INDEXED BY events_received_type WHERE received_at >= ?1 GROUP BY 1`, func(rows *sql.Rows) error {
		var b, in, out int64
		if err := rows.Scan(&b, &in, &out); err != nil {
			return err
		}
		if i, ok := bucket(b); ok {
			sr.Inbound[i], sr.Outbound[i] = in, out
		}
		return nil
	})
	if err != nil {
		return sr, err
	}
	err = each(`SELECT connector, (updated_at - ?1) / ?2, COUNT(*) FROM deliveries INDEXED BY deliveries_settled
		WHERE state = 'delivered' AND updated_at >= ?1 GROUP BY 1, 2`, func(rows *sql.Rows) error {
		var conn string
		var b, c int64
		if err := rows.Scan(&conn, &b, &c); err != nil {
			return err
		}
		if i, ok := bucket(b); ok {
			if sr.Delivered[conn] == nil {
				sr.Delivered[conn] = make([]int64, n)
			}
			sr.Delivered[conn][i] = c
		}
		return nil
	})
	if err != nil {
		return sr, err
	}
	err = each(`SELECT (at - ?1) / ?2, SUM(CASE WHEN outcome IN ('retry', 'error') THEN 1 ELSE 0 END), SUM(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END)
		FROM delivery_attempts INDEXED BY delivery_attempts_at WHERE at >= ?1 AND outcome IN ('retry', 'failed', 'error') GROUP BY 1`, func(rows *sql.Rows) error {
		var b, r, f int64
		if err := rows.Scan(&b, &r, &f); err != nil {
			return err
		}
		if i, ok := bucket(b); ok {
			sr.Retries[i], sr.Failed[i] = r, f
		}
		return nil
	})
	return sr, err
}

// StuckOutbound counts outbox messages that should have moved by now:
// queued or sending for longer than age, and those in the unknown state
// (the hub stopped while sending them) that wait for an operator.
func (s *Store) StuckOutbound(ctx context.Context, age time.Duration) (stuck, unknown int64, err error) {
	cut := s.now().Add(-age).UnixMilli()
	err = s.reader.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM outbox INDEXED BY outbox_due WHERE state IN ('queued', 'uploading', 'sending') AND next_at < ?),
		(SELECT COUNT(*) FROM outbox INDEXED BY outbox_due WHERE state = 'unknown')`, cut).Scan(&stuck, &unknown)
	if err != nil {
		err = fmt.Errorf("store: stuck outbound: %w", err)
	}
	return stuck, unknown, err
}
