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
	a := &appendReq{events: events, bodies: bodies}
	req := &writeReq{ctx: ctx, appends: a, fn: func(tx *txn) error { return s.appendEach(tx, a) }}
	if err := s.submit(ctx, req); err != nil {
		return 0, err
	}
	return a.added, nil
}

// appendReq is one Append's share of a group commit. The writer inserts
// the events of all the appends it finds together with one multi-row
// statement (appendGroup); fn inserts them one by one, when a request
// must be run alone.
type appendReq struct {
	events []sdk.Event
	bodies [][]byte
	added  int
}

// appendEach appends a's events one at a time.
func (s *Store) appendEach(tx *txn, a *appendReq) error {
	a.added = 0
	for i := range a.events {
		a.events[i].Seq = 0
		ok, err := s.appendEvent(tx, &a.events[i], a.bodies[i])
		if err != nil {
			return fmt.Errorf("store: append event %s: %w", a.events[i].ID, err)
		}
		if ok {
			a.added++
		}
	}
	return nil
}

// appendGroup appends the events of several Append calls with one
// multi-row INSERT per hundred events, in their order: per event, one
// statement and its round trip through the driver was most of an
// append. The result is what appendEach on each request in turn would
// leave, which is what it falls back to for the rare groups where one
// event's contact could depend on an earlier one's (a changed number, or
// the same number or user id seen with different identities).
func (s *Store) appendGroup(tx *txn, reqs []*writeReq) error {
	type row struct {
		a       *appendReq
		i       int
		st      *contactState
		known   bool
		contact sql.NullString
		conv    string
		dup     bool // an earlier event of the group has its id
	}
	var rows []row
	ids := map[string]bool{}
	byWAID, byUser := map[string]string{}, map[string]string{}
	sequential := false
	for _, r := range reqs {
		a := r.appends
		a.added = 0
		for i := range a.events {
			ev := &a.events[i]
			ev.Seq = 0
			if ev.Type == sdk.TypeContactChanged {
				sequential = true
			}
			if c := ev.Contact; c != nil {
				pair := c.UserID + "\x00" + c.WAID
				if p, ok := byWAID[c.WAID]; c.WAID != "" && ok && p != pair {
					sequential = true
				}
				if p, ok := byUser[c.UserID]; c.UserID != "" && ok && p != pair {
					sequential = true
				}
				byWAID[c.WAID], byUser[c.UserID] = pair, pair
			}
			rows = append(rows, row{a: a, i: i, dup: ids[ev.ID]})
			ids[ev.ID] = true
		}
	}
	if sequential {
		for _, r := range reqs {
			if err := s.appendEach(tx, r.appends); err != nil {
				return err
			}
		}
		return nil
	}
	// Without the contact cache (PostgreSQL, where other hubs change
	// contacts too), every identity would cost a few round trips to the
	// server: read all the group's candidates at once instead.
	var found map[[2]string]contactState
	if s.contacts.off {
		var idents [][2]string
		for k := range rows {
			if c := rows[k].a.events[rows[k].i].Contact; c != nil && c.Key() != "" {
				idents = append(idents, [2]string{c.UserID, c.WAID})
			}
		}
		var err error
		if found, err = findContacts(tx, idents); err != nil {
			return fmt.Errorf("store: append events: contacts: %w", err)
		}
	}
	for k := range rows {
		r := &rows[k]
		ev := &r.a.events[r.i]
		if c := ev.Contact; c != nil && c.Key() != "" {
			if found != nil {
				st, ok := found[[2]string{c.UserID, c.WAID}]
				if !ok {
					st = contactState{key: (&sdk.Contact{UserID: c.UserID, WAID: c.WAID}).Key()}
				}
				r.st, r.known = &st, ok
			} else {
				var err error
				if r.st, r.known, err = s.contacts.resolve(tx, c.UserID, c.WAID); err != nil {
					return fmt.Errorf("store: append event %s: contact: %w", ev.ID, err)
				}
			}
			r.contact = sql.NullString{String: r.st.key, Valid: true}
		}
		if r.contact.Valid && ev.Business != nil && ev.Business.PhoneNumberID != "" {
			r.conv = ConversationID(ev.Business.PhoneNumberID, r.contact.String)
		}
	}
	seqs := map[string]int64{}
	for start := 0; start < len(rows); {
		args := make([]any, 0, 8*100)
		n := 0
		for ; start < len(rows) && n < 100; start++ {
			r := &rows[start]
			if r.dup {
				continue
			}
			ev := &r.a.events[r.i]
			var phoneID sql.NullString
			if ev.Business != nil && ev.Business.PhoneNumberID != "" {
				phoneID = sql.NullString{String: ev.Business.PhoneNumberID, Valid: true}
			}
			args = append(args, ev.ID, ev.Type, ev.OccurredAt.UnixMilli(), ev.ReceivedAt.UnixMilli(),
				r.contact, nullString(r.conv), phoneID, r.a.bodies[r.i])
			n++
		}
		if n == 0 {
			break
		}
		res, err := tx.Query(`INSERT INTO events
			(id, type, occurred_at, received_at, contact_key, conversation_id, phone_number_id, body)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`+strings.Repeat(", (?, ?, ?, ?, ?, ?, ?, ?)", n-1)+`
			ON CONFLICT (id) DO NOTHING RETURNING id, seq`, args...)
		if err != nil {
			return fmt.Errorf("store: append events: %w", err)
		}
		for res.Next() {
			var id string
			var seq int64
			if err := res.Scan(&id, &seq); err != nil {
				res.Close()
				return fmt.Errorf("store: append events: %w", err)
			}
			seqs[id] = seq
		}
		if err := res.Close(); err != nil {
			return fmt.Errorf("store: append events: %w", err)
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("store: append events: %w", err)
		}
	}
	// Contacts in log order, as appendEach would: a contact new to the
	// store is created by its first event and updated by the later ones.
	created := map[string]*contactState{}
	for k := range rows {
		r := &rows[k]
		ev := &r.a.events[r.i]
		seq, ok := seqs[ev.ID]
		if r.dup || !ok {
			continue // a duplicate: its contact was recorded the first time
		}
		if r.st != nil {
			st, known := r.st, r.known
			if c, ok := created[st.key]; ok {
				st, known = c, true
			}
			if err := s.recordContact(tx, st, known, ev); err != nil {
				return fmt.Errorf("store: append event %s: contact: %w", ev.ID, err)
			}
			created[st.key] = st
		}
		var phoneID sql.NullString
		if ev.Business != nil && ev.Business.PhoneNumberID != "" {
			phoneID = sql.NullString{String: ev.Business.PhoneNumberID, Valid: true}
		}
		if err := s.enqueueMedia(tx, ev, seq, r.contact, phoneID); err != nil {
			return fmt.Errorf("store: append event %s: %w", ev.ID, err)
		}
		if strings.HasPrefix(string(ev.Type), "whatsapp.") {
			if err := s.applyTemplateEvent(tx, ev); err != nil {
				return fmt.Errorf("store: append event %s: template catalogue: %w", ev.ID, err)
			}
		}
		ev.Seq, ev.ConversationID = seq, r.conv
		r.a.added++
	}
	return nil
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

// findContacts resolves identities (user id, wa_id) to their contacts
// as findContact does one by one, reading every candidate row in one
// query per hundred identities. Identities without a contact are absent.
func findContacts(tx *txn, idents [][2]string) (map[[2]string]contactState, error) {
	type cand struct {
		st      contactState
		hasUser bool
		updated int64
	}
	var cands []cand
	for rest := idents; len(rest) > 0; {
		chunk := rest[:min(len(rest), 100)]
		rest = rest[len(chunk):]
		var users, was []any
		for _, id := range chunk {
			if id[0] != "" {
				users = append(users, id[0])
			}
			if id[1] != "" {
				was = append(was, id[1])
			}
		}
		in := func(col string, vals []any) string {
			if len(vals) == 0 {
				return "false"
			}
			return col + " IN (?" + strings.Repeat(", ?", len(vals)-1) + ")"
		}
		args := append(append(append(append([]any{}, users...), was...), users...), was...)
		rows, err := tx.Query(`SELECT key, wa_id, user_id, name, username, last_inbound_at, updated_at FROM contacts
			WHERE `+in("user_id", users)+` OR `+in("wa_id", was)+` OR `+in("key", users)+` OR `+in("key", was), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c cand
			var wa, user sql.NullString
			var last sql.NullInt64
			if err := rows.Scan(&c.st.key, &wa, &user, &c.st.name, &c.st.username, &last, &c.updated); err != nil {
				rows.Close()
				return nil, err
			}
			c.st.waID, c.st.userID, c.st.lastInbound, c.hasUser = wa.String, user.String, last.Int64, user.Valid
			cands = append(cands, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	// userOK is findContact's "user_id IS NULL OR ? = '' OR user_id = ?".
	userOK := func(c *cand, userID string) bool { return !c.hasUser || userID == "" || c.st.userID == userID }
	newest := func(match func(c *cand) bool) *cand {
		var best *cand
		for i := range cands {
			if c := &cands[i]; match(c) && (best == nil || c.updated > best.updated) {
				best = c
			}
		}
		return best
	}
	out := map[[2]string]contactState{}
	for _, id := range idents {
		userID, waID := id[0], id[1]
		var c *cand
		if userID != "" {
			c = newest(func(c *cand) bool { return c.hasUser && c.st.userID == userID })
		}
		if c == nil && waID != "" {
			c = newest(func(c *cand) bool { return c.st.waID == waID && userOK(c, userID) })
		}
		if c == nil {
			// A contact is keyed by its first identity, which it may
			// since have left (a changed number).
			for i := range cands {
				if k := &cands[i]; (userID != "" && k.st.key == userID) || (waID != "" && k.st.key == waID && userOK(k, userID)) {
					c = k
					break
				}
			}
		}
		if c != nil {
			out[id] = c.st
		}
	}
	return out, nil
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
