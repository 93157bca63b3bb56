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

// The outbound sender's side of the outbox: picking due messages, marking
// what became of each, and applying status webhooks.

func addHistory(tx *txn, id, state string, at int64, code, msg string) error {
	_, err := tx.Exec(`INSERT INTO outbox_history (outbox_id, state, at, error_code, error) VALUES (?, ?, ?, ?, ?)`,
		id, state, at, code, msg)
	return err
}

// DueOutbound returns up to limit queued messages that may be sent at now,
// oldest first, at most one per recipient (a recipient's messages go in
// order, one at a time), leaving out the recipients in busy.
func (s *Store) DueOutbound(ctx context.Context, now time.Time, limit int, busy map[string]bool) ([]OutboundRecord, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id, source, recipient, phone_number_id, request, attempts, created_at, media_upload
		FROM outbox WHERE state = 'queued' AND next_at <= ? ORDER BY next_at, rowid LIMIT ?`, now.UnixMilli(), limit*4)
	if err != nil {
		return nil, fmt.Errorf("store: due messages: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out []OutboundRecord
	for rows.Next() && len(out) < limit {
		var r OutboundRecord
		var req, upload string
		var created int64
		if err := rows.Scan(&r.ID, &r.Source, &r.To, &r.PhoneNumberID, &req, &r.Attempts, &created, &upload); err != nil {
			return nil, err
		}
		if seen[r.To] || busy[r.To] {
			seen[r.To] = true
			continue
		}
		seen[r.To] = true
		if err := json.Unmarshal([]byte(req), &r.Request); err != nil {
			return nil, fmt.Errorf("store: message %s: %w", r.ID, err)
		}
		if r.Upload, err = decodeUpload(r.ID, upload); err != nil {
			return nil, err
		}
		r.State, r.CreatedAt = OutQueued, time.UnixMilli(created).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// NextOutboundDue is when the earliest queued message becomes due.
func (s *Store) NextOutboundDue(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullInt64
	if err := s.reader.QueryRowContext(ctx, `SELECT MIN(next_at) FROM outbox WHERE state = 'queued'`).Scan(&at); err != nil || !at.Valid {
		return time.Time{}, false, err
	}
	return time.UnixMilli(at.Int64), true, nil
}

// MarkSending records that a message is about to be sent, before the
// request leaves: if the hub dies during it, the message is not sent again
// blindly. It reports false when the message is no longer queued.
//
// With a fence (the outbox lease), nothing changes and ErrLeaseLost is
// returned when the lease changed hands: a hub that stalled must not send.
func (s *Store) MarkSending(ctx context.Context, id string, fence ...Lease) (bool, error) {
	ok := false
	err := s.write(ctx, func(tx *txn) error {
		ok = false
		if err := s.checkFence(tx, fence); err != nil {
			return err
		}
		now := s.now().UnixMilli()
		res, err := tx.Exec(`UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE id = ? AND state = 'queued'`, now, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// DeferOutbound puts a message back in the queue until at, with the reason
// (a throttling answer, a pair rate limit), and holds the recipient's later
// messages at least as long so that they keep their order.
func (s *Store) DeferOutbound(ctx context.Context, id, recipient string, at time.Time, code, reason string) error {
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		if _, err := tx.Exec(`UPDATE outbox SET state = 'queued', next_at = ?, error_code = ?, error = ?, updated_at = ?
			WHERE id = ? AND state IN ('queued', 'sending', 'uploading')`, at.UnixMilli(), code, reason, now, id); err != nil {
			return err
		}
		if code != "" {
			if err := addHistory(tx, id, "retry", now, code, reason); err != nil {
				return err
			}
		}
		_, err := tx.Exec(`UPDATE outbox SET next_at = MAX(next_at, ?) WHERE recipient = ? AND state = 'queued'`, at.UnixMilli(), recipient)
		return err
	})
}

// FailOutbound ends a message: refused by policy, refused by Meta for
// good, or out of retries.
func (s *Store) FailOutbound(ctx context.Context, id, code, reason string) error {
	return s.setOutcome(ctx, id, OutFailed, code, reason)
}

// UnconfirmedOutbound marks a message whose request may have reached Meta
// without an answer: it is not sent again.
func (s *Store) UnconfirmedOutbound(ctx context.Context, id, reason string) error {
	return s.setOutcome(ctx, id, OutUnknown, "unconfirmed", reason)
}

func (s *Store) setOutcome(ctx context.Context, id, state, code, reason string) error {
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		if _, err := tx.Exec(`UPDATE outbox SET state = ?, error_code = ?, error = ?, updated_at = ? WHERE id = ?`,
			state, code, reason, now, id); err != nil {
			return err
		}
		return addHistory(tx, id, state, now, code, reason)
	})
}

// RecoverSending runs at start: messages left in sending by a hub that
// stopped mid-request become unknown. It returns how many. Media messages
// left uploading go back to the queue (nothing reached the customer).
func (s *Store) RecoverSending(ctx context.Context) (int, error) {
	n := 0
	err := s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		if err := recoverUploading(tx, now); err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT id FROM outbox WHERE state = 'sending'`)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		const why = "the hub stopped while sending it: WhatsApp may have it; not sent again (POST /api/v1/messages/{id}/requeue to send it anyway)"
		for _, id := range ids {
			if _, err := tx.Exec(`UPDATE outbox SET state = 'unknown', error_code = 'unconfirmed', error = ?, updated_at = ? WHERE id = ?`, why, now, id); err != nil {
				return err
			}
			if err := addHistory(tx, id, OutUnknown, now, "unconfirmed", why); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// Requeue sends an unknown or failed message again, on an operator's word.
func (s *Store) Requeue(ctx context.Context, id string) error {
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		res, err := tx.Exec(`UPDATE outbox SET state = 'queued', next_at = ?, error_code = '', error = '', updated_at = ?
			WHERE id = ? AND state IN ('unknown', 'failed')`, now, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return addHistory(tx, id, OutQueued, now, "", "requeued")
	})
}

// AcceptOutbound records Meta's acceptance (the wamid) and appends the
// message.sent event that announces it, in one commit, then applies any
// status that arrived before the answer.
func (s *Store) AcceptOutbound(ctx context.Context, id, wamid string, sent *sdk.Event) error {
	var body []byte
	if sent != nil {
		ev := *sent
		ev.Seq, ev.ConversationID, ev.Route = 0, "", nil
		b, err := json.Marshal(&ev)
		if err != nil {
			return err
		}
		body = b
	}
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		res, err := tx.Exec(`UPDATE outbox SET state = 'accepted', wamid = ?, error_code = '', error = '', updated_at = ?
			WHERE id = ? AND state IN ('sending', 'unknown', 'queued')`, wamid, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // settled meanwhile (a status webhook named it)
		}
		if err := addHistory(tx, id, OutAccepted, now, "", ""); err != nil {
			return err
		}
		if sent != nil {
			ev := *sent
			if _, err := s.appendEvent(tx, &ev, body); err != nil {
				return err
			}
		}
		rows, err := tx.Query(`SELECT state, at, error_code, error FROM outbox_early_statuses WHERE wamid = ?`, wamid)
		if err != nil {
			return err
		}
		type early struct {
			state, code, msg string
			at               int64
		}
		var es []early
		for rows.Next() {
			var e early
			if err := rows.Scan(&e.state, &e.at, &e.code, &e.msg); err != nil {
				rows.Close()
				return err
			}
			es = append(es, e)
		}
		rows.Close()
		if len(es) == 0 {
			return nil
		}
		for _, e := range es {
			if _, err := s.applyStatusTx(tx, wamid, "", e.state, e.at, e.code, e.msg); err != nil {
				return err
			}
		}
		_, err = tx.Exec(`DELETE FROM outbox_early_statuses WHERE wamid = ?`, wamid)
		return err
	})
}

// statusState maps a status event type to an outbox state.
func statusState(typ sdk.EventType) string {
	switch typ {
	case sdk.TypeStatusSent:
		return OutSent
	case sdk.TypeStatusDelivered:
		return OutDelivered
	case sdk.TypeStatusRead, sdk.TypeStatusPlayed:
		return OutRead
	case sdk.TypeStatusFailed:
		return OutFailed
	}
	return ""
}

// applyStatus brings a status event into the outbox, inside Dispatch. It
// returns who sent the message, when the outbox knows it, for the event's
// JSON. A status whose wamid is unknown is kept until the send answer is
// recorded; a status can also name the message by the callback data the
// sender attached (its outbox id), which settles an unknown message.
func (s *Store) applyStatus(tx *txn, ev *sdk.Event) (*sdk.Outbound, error) {
	state := statusState(ev.Type)
	if state == "" || ev.Status == nil || ev.Status.MessageID == "" {
		return nil, nil
	}
	code, msg := "", ""
	if len(ev.Status.Errors) > 0 {
		e := ev.Status.Errors[0]
		code = fmt.Sprint(e.Code)
		msg = strings.TrimSpace(e.Title + ": " + firstNonEmpty(e.Details, e.Message))
	}
	var cb struct {
		Data string `json:"biz_opaque_callback_data"`
	}
	if len(ev.Raw) > 0 {
		json.Unmarshal(ev.Raw, &cb)
	}
	return s.applyStatusTx(tx, ev.Status.MessageID, cb.Data, state, ev.OccurredAt.UnixMilli(), code, msg)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Store) applyStatusTx(tx *txn, wamid, callback, state string, at int64, code, msg string) (*sdk.Outbound, error) {
	var (
		id, cur, source string
		key             sql.NullString
	)
	err := tx.QueryRow(`SELECT id, state, source, idempotency_key FROM outbox WHERE wamid = ?`, wamid).Scan(&id, &cur, &source, &key)
	if errors.Is(err, sql.ErrNoRows) && strings.HasPrefix(callback, "msg_") {
		err = tx.QueryRow(`SELECT id, state, source, idempotency_key FROM outbox WHERE id = ? AND wamid IS NULL`, callback).Scan(&id, &cur, &source, &key)
		if err == nil {
			if _, err := tx.Exec(`UPDATE outbox SET wamid = ? WHERE id = ?`, wamid, id); err != nil {
				return nil, err
			}
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		// The send answer is not recorded yet (or the message was not
		// sent by this hub): keep the status for AcceptOutbound.
		_, err := tx.Exec(`INSERT INTO outbox_early_statuses (wamid, state, at, error_code, error) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (wamid, state) DO NOTHING`, wamid, state, at, code, msg)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	out := &sdk.Outbound{ID: id, Source: source}
	if key.Valid {
		_, out.IdempotencyKey, _ = strings.Cut(key.String, s.dialect.keySep())
	}
	now := s.now().UnixMilli()
	if outRank(state) > outRank(cur) {
		if _, err := tx.Exec(`UPDATE outbox SET state = ?, error_code = ?, error = ?, updated_at = ? WHERE id = ?`,
			state, code, msg, now, id); err != nil {
			return nil, err
		}
	}
	// The history keeps every status, including late ones that changed
	// nothing, with the time Meta gave.
	return out, addHistory(tx, id, state, at, code, msg)
}

// Recipient is what the sender's policy needs to know about a recipient.
type Recipient struct {
	Known       bool
	Key         string
	WAID        string
	UserID      string
	Consent     sdk.Consent
	LastInbound time.Time // zero: never wrote
	// LastPhoneNumberID is the business number the customer last wrote to.
	LastPhoneNumberID string
}

// LookupRecipient finds a recipient by contact key, wa_id or user_id, in
// one query. withNumber also finds the business number the customer last
// wrote to (one more query), for a message that does not name one.
func (s *Store) LookupRecipient(ctx context.Context, to string, withNumber bool) (Recipient, error) {
	r := Recipient{}
	var wa, user sql.NullString
	var last sql.NullInt64
	const cols = `key, wa_id, user_id, consent, last_inbound_at`
	err := s.reader.QueryRowContext(ctx, `SELECT `+cols+` FROM contacts WHERE key = ?1
		UNION ALL SELECT * FROM (SELECT `+cols+` FROM contacts WHERE user_id = ?1 ORDER BY updated_at DESC LIMIT 1) AS by_user
		UNION ALL SELECT * FROM (SELECT `+cols+` FROM contacts WHERE wa_id = ?1 ORDER BY updated_at DESC LIMIT 1) AS by_wa
		LIMIT 1`, to).Scan(&r.Key, &wa, &user, &r.Consent, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("store: recipient %s: %w", to, err)
	}
	r.Known, r.WAID, r.UserID = true, wa.String, user.String
	if last.Valid {
		r.LastInbound = time.UnixMilli(last.Int64)
	}
	if !withNumber {
		return r, nil
	}
	var pn sql.NullString
	err = s.reader.QueryRowContext(ctx, `SELECT phone_number_id FROM events WHERE contact_key = ? AND type IN ('message.received', 'button.clicked')
		ORDER BY seq DESC LIMIT 1`, r.Key).Scan(&pn)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return r, err
	}
	r.LastPhoneNumberID = pn.String
	return r, nil
}

// KnownBusinessNumber reports whether any webhook came for the business
// number.
func (s *Store) KnownBusinessNumber(ctx context.Context, phoneNumberID string) (bool, error) {
	var one int
	err := s.reader.QueryRowContext(ctx, `SELECT 1 FROM events WHERE phone_number_id = ? LIMIT 1`, phoneNumberID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// OutboundCounts counts outbox messages by state.
func (s *Store) OutboundCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT state, COUNT(*) FROM outbox GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// OutboundByKey finds the message source queued with an idempotency key.
func (s *Store) OutboundByKey(ctx context.Context, source, key string) (OutboundRecord, error) {
	var id string
	err := s.reader.QueryRowContext(ctx, `SELECT id FROM outbox WHERE idempotency_key = ?`, s.outboxKey(source, key)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return OutboundRecord{}, ErrNotFound
	}
	if err != nil {
		return OutboundRecord{}, fmt.Errorf("store: message by key: %w", err)
	}
	return s.Outbound(ctx, id)
}
