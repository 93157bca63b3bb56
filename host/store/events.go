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
	var added int
	err := s.Write(ctx, func(tx *sql.Tx) error {
		added = 0
		for i := range events {
			ok, err := appendEvent(tx, &events[i], s.now())
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

// appendEvent inserts ev unless its id is already in the log.
func appendEvent(tx *sql.Tx, ev *sdk.Event, now time.Time) (bool, error) {
	var exists int
	err := tx.QueryRow(`SELECT 1 FROM events WHERE id = ?`, ev.ID).Scan(&exists)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	var contactKey, phoneID sql.NullString
	if ev.Business != nil && ev.Business.PhoneNumberID != "" {
		phoneID = sql.NullString{String: ev.Business.PhoneNumberID, Valid: true}
	}
	if ev.Contact != nil && ev.Contact.Key() != "" {
		key, err := upsertContact(tx, ev, now)
		if err != nil {
			return false, fmt.Errorf("contact: %w", err)
		}
		contactKey = sql.NullString{String: key, Valid: true}
		if phoneID.Valid {
			ev.ConversationID = ConversationID(phoneID.String, key)
		}
	}
	ev.Seq = 0
	body, err := json.Marshal(ev)
	if err != nil {
		return false, err
	}
	res, err := tx.Exec(`INSERT INTO events
		(id, type, occurred_at, received_at, contact_key, conversation_id, phone_number_id, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.ID, ev.Type, ev.OccurredAt.UnixMilli(), ev.ReceivedAt.UnixMilli(),
		contactKey, nullString(ev.ConversationID), phoneID, body)
	if err != nil {
		return false, err
	}
	if ev.Seq, err = res.LastInsertId(); err != nil {
		return false, err
	}
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
func isInbound(typ string) bool {
	return typ == sdk.TypeMessageReceived || typ == sdk.TypeButtonClicked
}

// upsertContact finds the customer of ev (by user_id first, as WhatsApp asks,
// then by wa_id), creates them when new, and records what ev tells about
// them. It returns the contact's key.
func upsertContact(tx *sql.Tx, ev *sdk.Event, now time.Time) (string, error) {
	c := ev.Contact
	key, err := findContact(tx, c.UserID, c.WAID)
	if err != nil {
		return "", err
	}
	at := ev.OccurredAt.UnixMilli()
	if key == "" {
		key = c.Key()
		_, err := tx.Exec(`INSERT INTO contacts (key, wa_id, user_id, name, username, first_seen_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			key, nullString(c.WAID), nullString(c.UserID), c.Name, c.Username, at, now.UnixMilli())
		if err != nil {
			return "", err
		}
	}
	var inbound any
	if isInbound(ev.Type) {
		inbound = at
	}
	_, err = tx.Exec(`UPDATE contacts SET
			wa_id = COALESCE(NULLIF(?, ''), wa_id),
			user_id = COALESCE(user_id, NULLIF(?, '')),
			name = COALESCE(NULLIF(?, ''), name),
			username = COALESCE(NULLIF(?, ''), username),
			last_inbound_at = CASE WHEN ? IS NULL THEN last_inbound_at
				ELSE MAX(COALESCE(last_inbound_at, 0), ?) END,
			updated_at = ?
		WHERE key = ?`,
		c.WAID, c.UserID, c.Name, c.Username, inbound, inbound, now.UnixMilli(), key)
	if err != nil {
		return "", err
	}
	// A changed number moves the customer, not the conversation: later
	// messages from the new number must find the same contact.
	if ev.Type == sdk.TypeContactChanged && ev.Message != nil && ev.Message.System != nil && ev.Message.System.NewWAID != "" {
		if _, err := tx.Exec(`UPDATE contacts SET wa_id = ?, updated_at = ? WHERE key = ?`,
			ev.Message.System.NewWAID, now.UnixMilli(), key); err != nil {
			return "", err
		}
	}
	return key, nil
}

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
	// After returns events with a larger seq, oldest first. Without it the
	// newest Limit events are returned, still oldest first.
	After int64
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
	if f.After > 0 {
		where = append(where, "seq > ?")
		args = append(args, f.After)
		query = `SELECT seq, body FROM events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq ASC LIMIT ?`
	} else {
		query = `SELECT seq, body FROM (SELECT seq, body FROM events WHERE ` + strings.Join(where, " AND ") +
			` ORDER BY seq DESC LIMIT ?) ORDER BY seq ASC`
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
	row := s.reader.QueryRowContext(ctx, `SELECT seq, body FROM events WHERE id = ?`, id)
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
		seq  int64
		body []byte
		ev   sdk.Event
	)
	if err := row.Scan(&seq, &body); err != nil {
		return ev, err
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("store: event %d: %w", seq, err)
	}
	ev.Seq = seq
	return ev, nil
}

// Contact is a customer as the store knows them.
type Contact struct {
	Key           string     `json:"id"`
	WAID          string     `json:"wa_id,omitempty"`
	UserID        string     `json:"user_id,omitempty"`
	Name          string     `json:"name,omitempty"`
	Username      string     `json:"username,omitempty"`
	FirstSeenAt   time.Time  `json:"first_seen_at"`
	LastInboundAt *time.Time `json:"last_inbound_at,omitempty"`
}

func (s *Store) resolveContactKey(ctx context.Context, id string) (string, error) {
	var key string
	err := s.reader.QueryRowContext(ctx, `SELECT key FROM contacts WHERE key = ?
		UNION ALL SELECT key FROM (SELECT key FROM contacts WHERE user_id = ? ORDER BY updated_at DESC LIMIT 1)
		UNION ALL SELECT key FROM (SELECT key FROM contacts WHERE wa_id = ? ORDER BY updated_at DESC LIMIT 1)
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
	)
	err = s.reader.QueryRowContext(ctx, `SELECT key, wa_id, user_id, name, username, first_seen_at, last_inbound_at
		FROM contacts WHERE key = ?`, key).Scan(&c.Key, &waID, &userID, &c.Name, &c.Username, &firstSeen, &lastInbound)
	if errors.Is(err, sql.ErrNoRows) {
		return Contact{}, ErrNotFound
	}
	if err != nil {
		return Contact{}, fmt.Errorf("store: contact %s: %w", id, err)
	}
	c.WAID, c.UserID = waID.String, userID.String
	c.FirstSeenAt = time.UnixMilli(firstSeen).UTC()
	if lastInbound.Valid {
		t := time.UnixMilli(lastInbound.Int64).UTC()
		c.LastInboundAt = &t
	}
	return c, nil
}
