package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// ErrNotFound is returned when a looked-up record does not exist.
var ErrNotFound = errors.New("store: not found")

// Append adds events to the log in one durable commit, shared with whatever
// else is being written at the moment. Events whose id is already in the log
// are skipped: a duplicate webhook adds nothing. It records each event's
// contact, and sets Seq and ConversationID on the new events in the slice
// (duplicates keep Seq 0). It returns how many events were new; on error
// the slice's fields mean nothing.
func (s *Store) Append(ctx context.Context, events []sdk.Event) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	s.quoteEvents(ctx, events)
	// Encode before queueing, on the caller's goroutine: the writer is the
	// one place that cannot run in parallel. The conversation id and seq
	// are columns, merged back on read.
	bodies := make([][]byte, len(events))
	for i := range events {
		ev := events[i]
		ev.Seq, ev.ConversationID, ev.Route = 0, "", nil
		b, err := json.Marshal(&ev)
		if err != nil {
			return 0, fmt.Errorf("store: encode event %s: %w", ev.ID, err)
		}
		bodies[i] = b
	}
	var added int
	err := s.write(ctx, func(tx *txn) error {
		added = 0
		for i := range events {
			ok, err := s.appendEvent(tx, &events[i], bodies[i])
			if err != nil {
				return fmt.Errorf("store: append event %s: %w", events[i].ID, err)
			}
			if ok {
				added++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// appendEvent inserts ev unless its id is already in the log, then records
// its contact. It runs on the writer goroutine.
func (s *Store) appendEvent(tx *txn, ev *sdk.Event, body []byte) (bool, error) {
	var phoneID, contactKey sql.NullString
	if ev.Business != nil && ev.Business.PhoneNumberID != "" {
		phoneID = sql.NullString{String: ev.Business.PhoneNumberID, Valid: true}
	}
	var st *contactState
	known := false
	if ev.Contact != nil && ev.Contact.Key() != "" {
		var err error
		if st, known, err = s.contacts.resolve(tx, ev.Contact.UserID, ev.Contact.WAID); err != nil {
			return false, fmt.Errorf("contact: %w", err)
		}
		contactKey = sql.NullString{String: st.key, Valid: true}
	}
	key := contactKey.String
	conv := ""
	if key != "" && phoneID.Valid {
		conv = ConversationID(phoneID.String, key)
	}
	var seq int64
	err := tx.QueryRow(`INSERT INTO events
		(id, type, occurred_at, received_at, contact_key, conversation_id, phone_number_id, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING seq`,
		ev.ID, ev.Type, ev.OccurredAt.UnixMilli(), ev.ReceivedAt.UnixMilli(),
		contactKey, nullString(conv), phoneID, body).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // a duplicate: its contact was recorded the first time
	}
	if err != nil {
		return false, err
	}
	if st != nil {
		if err := s.recordContact(tx, st, known, ev); err != nil {
			return false, fmt.Errorf("contact: %w", err)
		}
	}
	if err := s.enqueueMedia(tx, ev, seq, contactKey, phoneID); err != nil {
		return false, err
	}
	if strings.HasPrefix(string(ev.Type), "whatsapp.") {
		if err := s.applyTemplateEvent(tx, ev); err != nil {
			return false, fmt.Errorf("template catalogue: %w", err)
		}
	}
	ev.Seq, ev.ConversationID = seq, conv
	return true, nil
}

// ConversationID names the conversation of a customer with one business
// number. It is derived, not stored separately, so every stage computes the
// same id without a lookup.
func ConversationID(phoneNumberID, contactKey string) string {
	sum := sha256.Sum256([]byte(phoneNumberID + "\x00" + contactKey))
	return "conv_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// isInbound tells which events open (or keep open) the customer-service
// window: anything the customer sent.
func isInbound(typ sdk.EventType) bool {
	return typ == sdk.TypeMessageReceived || typ == sdk.TypeButtonClicked
}

// recordContact creates the contact (when known is false) or records what
// ev tells about it, writing only what changed: most messages change
// nothing but the time of the customer's last message.
func (s *Store) recordContact(tx *txn, st *contactState, known bool, ev *sdk.Event) error {
	c := ev.Contact
	at := ev.OccurredAt.UnixMilli()
	now := s.now().UnixMilli()
	inbound := isInbound(ev.Type)
	if !known {
		var last sql.NullInt64
		if inbound {
			last = sql.NullInt64{Int64: at, Valid: true}
		}
		if _, err := tx.Exec(`INSERT INTO contacts (key, wa_id, user_id, name, username, first_seen_at, last_inbound_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			st.key, nullString(c.WAID), nullString(c.UserID), c.Name, c.Username, at, last, now); err != nil {
			return err
		}
		*st = contactState{key: st.key, waID: c.WAID, userID: c.UserID, name: c.Name, username: c.Username, lastInbound: last.Int64}
		s.contacts.add(c.UserID, c.WAID, st)
	} else {
		next := *st
		// Only what the customer sends tells their current number; a
		// status for a message sent to an old number must not move them
		// back.
		if c.WAID != "" && (next.waID == "" || inbound) {
			next.waID = c.WAID
		}
		if next.userID == "" {
			next.userID = c.UserID
		}
		if c.Name != "" {
			next.name = c.Name
		}
		if c.Username != "" {
			next.username = c.Username
		}
		if inbound && at > next.lastInbound {
			next.lastInbound = at
		}
		switch {
		case next == *st:
		case next.lastInbound != st.lastInbound && next.withInbound(st.lastInbound) == *st:
			if _, err := tx.Exec(`UPDATE contacts SET last_inbound_at = ?, updated_at = ? WHERE key = ?`,
				next.lastInbound, now, st.key); err != nil {
				return err
			}
		default:
			var last sql.NullInt64
			if next.lastInbound != 0 {
				last = sql.NullInt64{Int64: next.lastInbound, Valid: true}
			}
			if _, err := tx.Exec(`UPDATE contacts SET wa_id = ?, user_id = ?, name = ?, username = ?, last_inbound_at = ?, updated_at = ?
				WHERE key = ?`, nullString(next.waID), nullString(next.userID), next.name, next.username, last, now, st.key); err != nil {
				return err
			}
		}
		*st = next
	}
	// A changed number moves the customer, not the conversation: later
	// messages from the new number must find the same contact.
	if ev.Type == sdk.TypeContactChanged && ev.Message != nil && ev.Message.System != nil && ev.Message.System.NewWAID != "" {
		if _, err := tx.Exec(`UPDATE contacts SET wa_id = ?, updated_at = ? WHERE key = ?`,
			ev.Message.System.NewWAID, now, st.key); err != nil {
			return err
		}
		// Which identity leads to which contact has changed.
		s.contacts.reset()
	}
	return nil
}

// contactState is a contact's row as the writer last wrote it.
type contactState struct {
	key, waID, userID, name, username string
	lastInbound                       int64 // Unix ms; 0 when never
}

func (c contactState) withInbound(t int64) contactState { c.lastInbound = t; return c }

// contactCache remembers which contact an identity resolved to and its row,
// so the writer neither looks it up nor rewrites it for every message of a
// conversation. Only the writer goroutine uses it, and only the writer
// changes contacts, so it cannot go stale except through a rolled-back
// transaction, after which it is reset.
type contactCache struct {
	byID map[string]*contactState // userID \x00 waID → state
	// off: other processes change contacts too (PostgreSQL), so every
	// append reads the row.
	off bool
}

const contactCacheMax = 100_000

func (c *contactCache) resolve(tx *txn, userID, waID string) (st *contactState, known bool, err error) {
	if st, ok := c.byID[userID+"\x00"+waID]; ok {
		return st, true, nil
	}
	key, err := findContact(tx, userID, waID)
	if err != nil {
		return nil, false, err
	}
	if key == "" {
		return &contactState{key: (&sdk.Contact{UserID: userID, WAID: waID}).Key()}, false, nil
	}
	st = &contactState{key: key}
	var wa, user sql.NullString
	var last sql.NullInt64
	if err := tx.QueryRow(`SELECT wa_id, user_id, name, username, last_inbound_at FROM contacts WHERE key = ?`, key).
		Scan(&wa, &user, &st.name, &st.username, &last); err != nil {
		return nil, false, err
	}
	st.waID, st.userID, st.lastInbound = wa.String, user.String, last.Int64
	c.add(userID, waID, st)
	return st, true, nil
}

func (c *contactCache) add(userID, waID string, st *contactState) {
	if c.off {
		return
	}
	if c.byID == nil || len(c.byID) >= contactCacheMax {
		c.byID = make(map[string]*contactState)
	}
	c.byID[userID+"\x00"+waID] = st
}

func (c *contactCache) reset() { c.byID = nil }

func findContact(q interface {
	QueryRow(string, ...any) *sql.Row
}, userID, waID string) (string, error) {
	var key string
	if userID != "" {
		err := q.QueryRow(`SELECT key FROM contacts WHERE user_id = ? ORDER BY updated_at DESC LIMIT 1`, userID).Scan(&key)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
	}
	if waID != "" {
		// A row with this number but another BSUID is someone else (a
		// recycled number): only match rows whose user_id agrees or is
		// unknown.
		err := q.QueryRow(`SELECT key FROM contacts WHERE wa_id = ? AND (user_id IS NULL OR ? = '' OR user_id = ?)
			ORDER BY updated_at DESC LIMIT 1`, waID, userID, userID).Scan(&key)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
	}
	// A contact is keyed by its first identity, which it may since have
	// left (a changed number): that identity still leads to it.
	err := q.QueryRow(`SELECT key FROM contacts WHERE key = ?
		OR (key = ? AND (user_id IS NULL OR ? = '' OR user_id = ?)) LIMIT 1`, userID, waID, userID, userID).Scan(&key)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	return "", nil
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}

// EventFilter selects events from the log.
type EventFilter struct {
	// Type is an exact type, or a prefix followed by * ("status.*").
	Type string
	// Contact is a contact key, wa_id or user_id.
	Contact string
	// After returns events with a larger seq, oldest first: the way to
	// page through the log.
	After int64
	// Tail returns the newest Limit events instead (still oldest first);
	// After is then ignored.
	Tail  bool
	Limit int
}

// Events lists the log as the filter says, newest last.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]sdk.Event, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	where := []string{"1=1"}
	var args []any
	if f.Type != "" {
		if prefix, ok := strings.CutSuffix(f.Type, "*"); ok {
			where = append(where, "substr(type, 1, ?) = ?")
			args = append(args, len(prefix), prefix)
		} else {
			where = append(where, "type = ?")
			args = append(args, f.Type)
		}
	}
	if f.Contact != "" {
		key, err := s.resolveContactKey(ctx, f.Contact)
		if err != nil {
			return nil, err
		}
		where = append(where, "contact_key = ?")
		args = append(args, key)
	}
	var query string
	if !f.Tail {
		where = append(where, "seq > ?")
		args = append(args, f.After)
		query = `SELECT seq, body, route, conversation_id FROM events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq ASC LIMIT ?`
	} else {
		query = `SELECT seq, body, route, conversation_id FROM (SELECT seq, body, route, conversation_id FROM events WHERE ` + strings.Join(where, " AND ") +
			` ORDER BY seq DESC LIMIT ?) AS tail ORDER BY seq ASC`
	}
	args = append(args, f.Limit)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
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
	return out, rows.Err()
}

// Event returns one event by id.
func (s *Store) Event(ctx context.Context, id string) (sdk.Event, error) {
	row := s.reader.QueryRowContext(ctx, `SELECT seq, body, route, conversation_id FROM events WHERE id = ?`, id)
	ev, err := scanEvent(row)
	if errors.Is(err, sql.ErrNoRows) {
		return sdk.Event{}, ErrNotFound
	}
	return ev, err
}

// LastSeq is the seq of the newest event, 0 for an empty log.
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := s.reader.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&seq)
	return seq, err
}

func scanEvent(row interface{ Scan(...any) error }) (sdk.Event, error) {
	var (
		seq   int64
		body  []byte
		route sql.NullString
		conv  sql.NullString
		ev    sdk.Event
	)
	if err := row.Scan(&seq, &body, &route, &conv); err != nil {
		return ev, err
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("store: event %d: %w", seq, err)
	}
	ev.Seq, ev.ConversationID = seq, conv.String
	if route.Valid {
		if err := json.Unmarshal([]byte(route.String), &ev.Route); err != nil {
			return ev, fmt.Errorf("store: route of event %d: %w", seq, err)
		}
	}
	return ev, nil
}

// Contact is a customer as the store knows them.
type Contact struct {
	Key           string            `json:"id"`
	WAID          string            `json:"wa_id,omitempty"`
	UserID        string            `json:"user_id,omitempty"`
	Name          string            `json:"name,omitempty"`
	Username      string            `json:"username,omitempty"`
	Attributes    map[string]string `json:"attributes"`
	FirstSeenAt   time.Time         `json:"first_seen_at"`
	LastInboundAt *time.Time        `json:"last_inbound_at,omitempty"`
	Consent       Consent           `json:"consent"`
	// Conversations are the contact's conversations, one per business
	// number, with the team that has each (affinity).
	Conversations []Conversation `json:"conversations"`
}

// Consent is a contact's marketing consent and its last change.
type Consent struct {
	State  sdk.Consent `json:"state"` // granted, revoked, unknown
	Source string      `json:"source,omitempty"`
	At     *time.Time  `json:"at,omitempty"`
}

// Conversation is a customer's conversation with one business number.
type Conversation struct {
	ID         string    `json:"id"`
	Team       string    `json:"team,omitempty"`
	LastActive time.Time `json:"last_active_at"`
}

func (s *Store) resolveContactKey(ctx context.Context, id string) (string, error) {
	var key string
	err := s.reader.QueryRowContext(ctx, `SELECT key FROM contacts WHERE key = ?
		UNION ALL SELECT key FROM (SELECT key FROM contacts WHERE user_id = ? ORDER BY updated_at DESC LIMIT 1) AS by_user
		UNION ALL SELECT key FROM (SELECT key FROM contacts WHERE wa_id = ? ORDER BY updated_at DESC LIMIT 1) AS by_wa
		LIMIT 1`, id, id, id).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		// An unknown contact simply has no events.
		return id, nil
	}
	return key, err
}

// Contact returns a customer by key, user_id or wa_id.
func (s *Store) Contact(ctx context.Context, id string) (Contact, error) {
	key, err := s.resolveContactKey(ctx, id)
	if err != nil {
		return Contact{}, err
	}
	var (
		c            Contact
		waID, userID sql.NullString
		firstSeen    int64
		lastInbound  sql.NullInt64
		attrs        string
		consentAt    sql.NullInt64
	)
	err = s.reader.QueryRowContext(ctx, `SELECT key, wa_id, user_id, name, username, first_seen_at, last_inbound_at, attributes,
		consent, consent_source, consent_at
		FROM contacts WHERE key = ?`, key).Scan(&c.Key, &waID, &userID, &c.Name, &c.Username, &firstSeen, &lastInbound, &attrs,
		&c.Consent.State, &c.Consent.Source, &consentAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Contact{}, ErrNotFound
	}
	if err != nil {
		return Contact{}, fmt.Errorf("store: contact %s: %w", id, err)
	}
	c.WAID, c.UserID = waID.String, userID.String
	c.Attributes = map[string]string{}
	json.Unmarshal([]byte(attrs), &c.Attributes)
	c.FirstSeenAt = time.UnixMilli(firstSeen).UTC()
	if lastInbound.Valid {
		t := time.UnixMilli(lastInbound.Int64).UTC()
		c.LastInboundAt = &t
	}
	if c.Consent.State == "" {
		c.Consent.State = "unknown"
	}
	if consentAt.Valid {
		t := time.UnixMilli(consentAt.Int64).UTC()
		c.Consent.At = &t
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT id, team, last_active FROM conversations WHERE contact_key = ? ORDER BY id`, key)
	if err != nil {
		return Contact{}, fmt.Errorf("store: contact %s: %w", id, err)
	}
	defer rows.Close()
	c.Conversations = []Conversation{}
	for rows.Next() {
		var cv Conversation
		var last int64
		if err := rows.Scan(&cv.ID, &cv.Team, &last); err != nil {
			return Contact{}, err
		}
		cv.LastActive = time.UnixMilli(last).UTC()
		c.Conversations = append(c.Conversations, cv)
	}
	return c, rows.Err()
}
