package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Decision is where one event must go, and what else routing it changes.
// Everything in it is stored in the commit that records the decision, so
// a crash never leaves half of it.
type Decision struct {
	// Route is stored with the event and shown in its JSON; nil when no
	// route applies.
	Route *sdk.Route
	// Connectors get the event, each once.
	Connectors []string
	// Team is the team the event's conversation is with after it. It is
	// recorded, with the event's time as the conversation's last activity,
	// when the event is activity (a customer message or a message sent).
	Team string
	// Consent, when set, is the consent the event states (sdk.ConsentGranted,
	// sdk.ConsentRevoked), and ConsentSource how ("keyword PARAR",
	// "button stop_promos", "user_preferences", "api").
	Consent       sdk.Consent
	ConsentSource string
	// ConsentEvent is appended to the log when Consent changes the
	// contact's consent; its id must derive from the event's, so that it is
	// appended once whatever happens.
	ConsentEvent *sdk.Event
	// Attributes are set on the contact; "" deletes one.
	Attributes map[string]string
	// Messages are queued in the outbox (trigger replies).
	Messages []QueuedMessage
}

// QueuedMessage is an outbound message a decision queues.
type QueuedMessage struct {
	Source string // trigger:<name>
	Msg    sdk.OutboundMessage
}

// RouteState is what the store knows of an event's contact and
// conversation when the event is routed.
type RouteState struct {
	// Consent is sdk.ConsentGranted, sdk.ConsentRevoked, or "" (never stated).
	Consent sdk.Consent
	// Team is the team that has the conversation, LastActive when it last
	// had activity; zero when the conversation is new.
	Team       string
	LastActive time.Time
}

// DecideFunc decides for one event. Dispatch calls it before its write
// transaction, and again inside it when what the decision rests on moved
// meanwhile, so it must be a function of its arguments, quick, and must
// not call the store (inside the transaction that would wait for itself).
type DecideFunc func(ev *sdk.Event, st RouteState) Decision

// IsActivity tells which events keep a conversation open for affinity
// (wahub route --explain follows Dispatch with it).
func IsActivity(typ sdk.EventType) bool { return isActivity(typ) }

// isActivity tells which events keep a conversation open for affinity.
func isActivity(typ sdk.EventType) bool {
	return isInbound(typ) || typ == sdk.TypeMessageSent
}

// Dispatch takes up to limit events after the dispatch cursor, in log
// order, and stores for each its decision, its effects (consent, contact
// attributes, the conversation's team, queued replies) and one pending
// delivery per connector, moving the cursor in the same commit. It returns
// how many events it dispatched (0: the log is caught up). The event
// passed to decide carries the contact's stored attributes, and the state
// reflects the decisions of earlier events of the same call.
func (s *Store) Dispatch(ctx context.Context, limit int, decide DecideFunc) (int, error) {
	// Routing is planned on the read side, outside the writer, which is
	// the one part of the hub that cannot run in parallel: reading and
	// decoding the events and deciding for them take most of a dispatch.
	// The write transaction then checks that nothing the plan depends on
	// moved (the cursor, and each event's contact and conversation state)
	// and stores it in a few multi-row statements; if something moved
	// (another hub dispatched, the admin API changed a contact), it plans
	// again inside the transaction, as it always did.
	//
	// A caught-up log is answered from the read side alone: a commit
	// wakes everyone that follows the store (Changed), the dispatcher
	// included, so an empty dispatch commit would wake it again at once
	// and an idle hub would spin. An event appended after this read
	// commits on its own and wakes the caller, which took Changed before
	// calling.
	cursor, err := readCursor(s.reader, dispatchCursor)
	if err != nil {
		return 0, fmt.Errorf("store: dispatch: %w", err)
	}
	items, err := dispatchItems(s.reader, cursor, limit)
	if err != nil {
		return 0, fmt.Errorf("store: dispatch: %w", err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	plan := planDispatch(items, decide)
	n := 0
	err = s.write(ctx, func(tx *txn) error {
		n = 0
		cur, err := readCursor(tx, dispatchCursor)
		if err != nil {
			return err
		}
		fresh := cur == cursor
		if fresh {
			if fresh, err = unchangedState(tx, cursor, items); err != nil {
				return err
			}
		}
		if !fresh {
			if items, err = dispatchItems(tx, cur, limit); err != nil {
				return err
			}
			if len(items) == 0 {
				return nil
			}
			plan = planDispatch(items, decide)
		}
		if err := s.applyDispatch(tx, items, plan); err != nil {
			return err
		}
		n = len(items)
		return nil
	})
	return n, err
}

// dispatchPlan is what routing a batch of events decided, ready to store.
type dispatchPlan struct {
	decisions []Decision
	// consent and attrs are, per event, the contact's consent and
	// attributes to store (only when the event changes them).
	consent []bool
	attrs   []map[string]string
	// convs are the conversations the batch had activity in, each with its
	// state after the batch, in first-seen order.
	convs    []string
	convRows map[string]convRow
	// pending is the deliveries to create: connector, seq, conversation,
	// partition.
	pending []any
}

type convRow struct {
	contact string
	team    string
	last    int64 // the batch's latest activity, Unix ms
}

// planDispatch decides for each event in turn, each seeing what the
// decisions before it in the batch changed. It writes nothing.
func planDispatch(items []dispatchItem, decide DecideFunc) *dispatchPlan {
	p := &dispatchPlan{
		decisions: make([]Decision, len(items)),
		consent:   make([]bool, len(items)),
		attrs:     make([]map[string]string, len(items)),
		convRows:  map[string]convRow{},
	}
	// What earlier events of this batch changed, which the rows read do
	// not show yet.
	attrs := map[string]map[string]string{}
	consent := map[string]consentAt{}
	convs := map[string]RouteState{}
	for i := range items {
		it := &items[i]
		ev := &it.ev
		if a, ok := attrs[it.contact]; ok {
			it.attrs = a
			if ev.Contact != nil {
				ev.Contact.Attributes = a
			}
		}
		if c, ok := consent[it.contact]; ok {
			it.st.Consent, it.consentAt = c.state, c.at
		}
		if c, ok := convs[ev.ConversationID]; ok {
			it.st.Team, it.st.LastActive = c.Team, c.LastActive
		}
		d := decide(ev, it.st)
		p.decisions[i] = d
		// Webhooks arrive out of order (Meta retries for days): a consent
		// statement older than the one the contact's consent rests on says
		// nothing about now. A STOP at 10:00 that arrives after a START at
		// 10:05 leaves the customer opted in.
		if it.contact != "" && d.Consent != "" && d.Consent != it.st.Consent && !ev.OccurredAt.Before(it.consentAt) {
			p.consent[i] = true
			consent[it.contact] = consentAt{state: d.Consent, at: ev.OccurredAt}
		}
		if it.contact != "" && len(d.Attributes) > 0 {
			merged := make(map[string]string, len(it.attrs)+len(d.Attributes))
			for k, v := range it.attrs {
				merged[k] = v
			}
			for k, v := range d.Attributes {
				if v == "" {
					delete(merged, k)
				} else {
					merged[k] = v
				}
			}
			p.attrs[i] = merged
			attrs[it.contact] = merged
		}
		if it.contact != "" && ev.ConversationID != "" && isActivity(ev.Type) {
			team := d.Team
			if team == "" {
				team = it.st.Team
			}
			last := ev.OccurredAt
			if it.st.LastActive.After(last) {
				last = it.st.LastActive
			}
			convs[ev.ConversationID] = RouteState{Team: team, LastActive: last}
			row, seen := p.convRows[ev.ConversationID]
			if !seen {
				p.convs = append(p.convs, ev.ConversationID)
				row = convRow{contact: it.contact}
			}
			row.team = team
			row.last = max(row.last, ev.OccurredAt.UnixMilli())
			p.convRows[ev.ConversationID] = row
		}
		seen := map[string]bool{}
		if ev.DeadLetter != nil {
			// The connector that gave up is not told of its own dead
			// letter: it just failed on the event for good.
			seen[ev.DeadLetter.Connector] = true
		}
		for _, c := range d.Connectors {
			if !seen[c] {
				seen[c] = true
				p.pending = append(p.pending, c, ev.Seq, it.queue, Partition(it.queue))
			}
		}
	}
	return p
}

// unchangedState reports whether the events after cursor and the state
// of their contacts and conversations are still as items were read.
func unchangedState(tx *txn, cursor int64, items []dispatchItem) (bool, error) {
	rows, err := tx.Query(`SELECT e.seq, e.contact_key, c.attributes, c.consent, c.consent_at, cv.team, cv.last_active
		FROM events e
		LEFT JOIN contacts c ON c.key = e.contact_key
		LEFT JOIN conversations cv ON cv.id = e.conversation_id
		WHERE e.seq > ? ORDER BY e.seq LIMIT ?`, cursor, len(items))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var st itemState
		var seq int64
		if err := rows.Scan(&seq, &st.key, &st.attrs, &st.consent, &st.consentAt, &st.team, &st.last); err != nil {
			return false, err
		}
		if i >= len(items) || items[i].ev.Seq != seq || items[i].read != st {
			return false, nil
		}
		i++
	}
	return i == len(items), rows.Err()
}

// applyDispatch stores a plan: each event's effects, its route, the
// conversations' state, the deliveries and the cursor.
func (s *Store) applyDispatch(tx *txn, items []dispatchItem, p *dispatchPlan) error {
	now := s.now().UnixMilli()
	var routes []any // seq, route
	for i := range items {
		it, d := &items[i], &p.decisions[i]
		ev := &it.ev
		if ev.Status != nil {
			if err := s.statusToOutbox(tx, ev); err != nil {
				return fmt.Errorf("event %s: %w", ev.ID, err)
			}
		}
		if d.Route != nil {
			route, err := json.Marshal(d.Route)
			if err != nil {
				return fmt.Errorf("event %s: %w", ev.ID, err)
			}
			routes = append(routes, ev.Seq, string(route))
		}
		if p.consent[i] {
			if err := s.setConsentTx(tx, it.contact, d.Consent, d.ConsentSource, ev.OccurredAt, d.ConsentEvent, now); err != nil {
				return fmt.Errorf("event %s: %w", ev.ID, err)
			}
		}
		if p.attrs[i] != nil {
			b, err := json.Marshal(p.attrs[i])
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`UPDATE contacts SET attributes = ?, updated_at = ? WHERE key = ?`, string(b), now, it.contact); err != nil {
				return fmt.Errorf("event %s: %w", ev.ID, err)
			}
		}
		for _, m := range d.Messages {
			req, err := json.Marshal(m.Msg)
			if err != nil {
				return err
			}
			if _, _, err := s.enqueueTx(tx, m.Source, m.Msg, req, s.outboxKey(m.Source, m.Msg.IdempotencyKey)); err != nil {
				return fmt.Errorf("event %s: queue reply of %s: %w", ev.ID, m.Source, err)
			}
		}
	}
	// A hundred rows per statement keeps within both backends' limits on
	// parameters.
	for len(routes) > 0 {
		chunk := routes[:min(len(routes), 2*100)]
		routes = routes[len(chunk):]
		if _, err := tx.Exec(`UPDATE events SET route = v.column2
			FROM (VALUES (CAST(? AS BIGINT), ?)`+strings.Repeat(", (CAST(? AS BIGINT), ?)", len(chunk)/2-1)+`) AS v
			WHERE events.seq = v.column1`, chunk...); err != nil {
			return fmt.Errorf("store the routes: %w", err)
		}
	}
	// One row per conversation with its state after the batch: what one
	// upsert per event would leave.
	for len(p.convs) > 0 {
		ids := p.convs[:min(len(p.convs), 100)]
		p.convs = p.convs[len(ids):]
		args := make([]any, 0, 5*len(ids))
		for _, id := range ids {
			r := p.convRows[id]
			args = append(args, id, r.contact, r.team, r.last, now)
		}
		if _, err := tx.Exec(`INSERT INTO conversations (id, contact_key, team, last_active, updated_at)
			VALUES (?, ?, ?, ?, ?)`+strings.Repeat(", (?, ?, ?, ?, ?)", len(ids)-1)+`
			ON CONFLICT (id) DO UPDATE SET team = excluded.team, last_active = MAX(last_active, excluded.last_active),
			updated_at = excluded.updated_at`, args...); err != nil {
			return fmt.Errorf("store the conversations: %w", err)
		}
	}
	for pending := p.pending; len(pending) > 0; {
		chunk := pending[:min(len(pending), 4*200)]
		pending = pending[len(chunk):]
		k := len(chunk) / 4
		args := append([]any{now, now, now}, chunk...)
		if _, err := tx.Exec(`INSERT INTO deliveries (connector, seq, conversation, state, next_at, created_at, updated_at, part)
			SELECT v.column1, CAST(v.column2 AS BIGINT), v.column3, 'pending', CAST(?1 AS BIGINT), CAST(?2 AS BIGINT), CAST(?3 AS BIGINT),
			CAST(v.column4 AS INTEGER)
			FROM (VALUES (?, CAST(? AS BIGINT), ?, CAST(? AS INTEGER))`+strings.Repeat(", (?, CAST(? AS BIGINT), ?, CAST(? AS INTEGER))", k-1)+`) AS v
			WHERE true ON CONFLICT (connector, seq) DO NOTHING`, args...); err != nil {
			return err
		}
	}
	return writeCursor(tx, dispatchCursor, strconv.FormatInt(items[len(items)-1].ev.Seq, 10), now)
}

// statusToOutbox applies a status event to the outbox and, when the
// message is the hub's, names it in the stored event (connectors match
// their replies' statuses by it).
func (s *Store) statusToOutbox(tx *txn, ev *sdk.Event) error {
	out, err := s.applyStatus(tx, ev)
	if err != nil || out == nil {
		return err
	}
	ev.Outbound = out
	stored := *ev
	stored.Seq, stored.ConversationID, stored.Route = 0, "", nil
	if stored.Contact != nil {
		c := *stored.Contact
		c.Attributes = nil
		stored.Contact = &c
	}
	body, err := json.Marshal(&stored)
	if err != nil {
		return err
	}
	_, err = tx.Exec(`UPDATE events SET body = ? WHERE seq = ?`, body, ev.Seq)
	return err
}

// dispatchItem is one event to route, with what the store knows around it.
type dispatchItem struct {
	ev      sdk.Event
	contact string // contact key, "" when none
	queue   string // the delivery queue's conversation: its id, else the event id
	attrs   map[string]string
	st      RouteState
	// consentAt is when the contact's consent was last stated.
	consentAt time.Time
	// read is the contact's and conversation's state as read, which the
	// write transaction compares.
	read itemState
}

// consentAt is a contact's consent and when it was stated.
type consentAt struct {
	state sdk.Consent
	at    time.Time
}

type itemState struct {
	key, attrs, consent, team sql.NullString
	last, consentAt           sql.NullInt64
}

// queryer reads in the backend's dialect: a write transaction, or the
// read pool.
type queryer interface {
	Query(q string, args ...any) (*sql.Rows, error)
	QueryRow(q string, args ...any) *sql.Row
}

func dispatchItems(tx queryer, cursor int64, limit int) ([]dispatchItem, error) {
	rows, err := tx.Query(`SELECT e.seq, e.body, e.conversation_id, e.contact_key, c.attributes, c.consent, c.consent_at, cv.team, cv.last_active
		FROM events e
		LEFT JOIN contacts c ON c.key = e.contact_key
		LEFT JOIN conversations cv ON cv.id = e.conversation_id
		WHERE e.seq > ? ORDER BY e.seq LIMIT ?`, cursor, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var items []dispatchItem
	for rows.Next() {
		var (
			it                         dispatchItem
			body                       []byte
			conv, key, attrs, cons, tm sql.NullString
			last, consAt               sql.NullInt64
		)
		if err := rows.Scan(&it.ev.Seq, &body, &conv, &key, &attrs, &cons, &consAt, &tm, &last); err != nil {
			return nil, err
		}
		it.read = itemState{key: key, attrs: attrs, consent: cons, team: tm, last: last, consentAt: consAt}
		seq := it.ev.Seq
		if err := json.Unmarshal(body, &it.ev); err != nil {
			return nil, fmt.Errorf("event %d: %w", seq, err)
		}
		it.ev.Seq, it.ev.ConversationID = seq, conv.String
		it.contact = key.String
		if attrs.Valid && attrs.String != "{}" {
			json.Unmarshal([]byte(attrs.String), &it.attrs)
			if it.ev.Contact != nil {
				it.ev.Contact.Attributes = it.attrs
			}
		}
		it.st.Consent, it.st.Team = sdk.Consent(cons.String), tm.String
		if consAt.Valid && cons.String != "" {
			it.consentAt = time.UnixMilli(consAt.Int64).UTC()
		}
		if last.Valid {
			it.st.LastActive = time.UnixMilli(last.Int64).UTC()
		}
		it.queue = conv.String
		if it.queue == "" {
			it.queue = it.ev.ID
		}
		items = append(items, it)
	}
	return items, rows.Err()
}

// setConsentTx records a consent change on the contact and appends the
// event that announces it (once: its id is derived from its cause).
func (s *Store) setConsentTx(tx *txn, key string, state sdk.Consent, source string, at time.Time, announce *sdk.Event, now int64) error {
	if _, err := tx.Exec(`UPDATE contacts SET consent = ?, consent_source = ?, consent_at = ?, updated_at = ? WHERE key = ?`,
		state, source, at.UnixMilli(), now, key); err != nil {
		return err
	}
	if announce == nil {
		return nil
	}
	ev := *announce
	ev.Seq, ev.ConversationID, ev.Route = 0, "", nil
	body, err := json.Marshal(&ev)
	if err != nil {
		return err
	}
	_, err = s.appendEvent(tx, &ev, body)
	return err
}

// SetConsent changes a contact's consent from outside the webhook flow
// (the admin API), appending announce when the consent changes. It
// reports whether it changed.
func (s *Store) SetConsent(ctx context.Context, id string, state sdk.Consent, source string, announce func(c *sdk.Contact) *sdk.Event) (bool, error) {
	if state != sdk.ConsentGranted && state != sdk.ConsentRevoked {
		return false, fmt.Errorf("store: consent %q: want %q or %q", state, sdk.ConsentGranted, sdk.ConsentRevoked)
	}
	key, err := s.resolveContactKey(ctx, id)
	if err != nil {
		return false, err
	}
	changed := false
	err = s.write(ctx, func(tx *txn) error {
		changed = false
		var cur sdk.Consent
		var wa, user sql.NullString
		var name string
		err := tx.QueryRow(`SELECT consent, wa_id, user_id, name FROM contacts WHERE key = ?`, key).Scan(&cur, &wa, &user, &name)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || cur == state {
			return err
		}
		changed = true
		now := s.now()
		var ev *sdk.Event
		if announce != nil {
			ev = announce(&sdk.Contact{WAID: wa.String, UserID: user.String, Name: name})
		}
		return s.setConsentTx(tx, key, state, source, now, ev, now.UnixMilli())
	})
	return changed, err
}

// SetTeam hands all of a contact's conversations to team, as if the team
// had just taken them, or closes them (team ""), so that the next message
// is routed afresh. It returns how many conversations it changed.
func (s *Store) SetTeam(ctx context.Context, id, team string) (int, error) {
	key, err := s.resolveContactKey(ctx, id)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.write(ctx, func(tx *txn) error {
		var exists int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM contacts WHERE key = ?`, key).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return ErrNotFound
		}
		now := s.now().UnixMilli()
		// A contact may not have a conversation row yet (no event routed
		// so far): its events name its conversations.
		if _, err := tx.Exec(`INSERT INTO conversations (id, contact_key, team, last_active, updated_at)
			SELECT DISTINCT conversation_id, contact_key, '', 0, CAST(? AS BIGINT) FROM events
			WHERE contact_key = ? AND conversation_id IS NOT NULL
			ON CONFLICT (id) DO NOTHING`, now, key); err != nil {
			return err
		}
		var res sql.Result
		var err error
		if team == "" {
			res, err = tx.Exec(`UPDATE conversations SET team = '', updated_at = ? WHERE contact_key = ?`, now, key)
		} else {
			res, err = tx.Exec(`UPDATE conversations SET team = ?, last_active = ?, updated_at = ? WHERE contact_key = ?`, team, now, now, key)
		}
		if err != nil {
			return err
		}
		m, err := res.RowsAffected()
		n = int(m)
		return err
	})
	return n, err
}

func readCursor(tx queryer, name string) (int64, error) {
	var v string
	err := tx.QueryRow(`SELECT value FROM cursors WHERE name = ?`, name).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, err
	}
	c, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cursor %s %q: %w", name, v, err)
	}
	return c, nil
}

func writeCursor(tx *txn, name, value string, now int64) error {
	_, err := tx.Exec(`INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, value, now)
	return err
}

// Lookup returns what routing would know of ev's contact and conversation
// now: its stored attributes and state. A contact the store has never seen
// has none. It sets ev.ConversationID to the conversation Append would put
// the event in (the stored contact's, or a new one for a new contact), so
// that routing sees the event as the hub will.
func (s *Store) Lookup(ctx context.Context, ev *sdk.Event) (map[string]string, RouteState, error) {
	var st RouteState
	if ev.Contact == nil || ev.Contact.Key() == "" {
		return nil, st, nil
	}
	key, err := findContact(s.reader, ev.Contact.UserID, ev.Contact.WAID)
	if err != nil {
		return nil, st, err
	}
	if ev.Business != nil && ev.Business.PhoneNumberID != "" {
		k := key
		if k == "" {
			k = (&sdk.Contact{UserID: ev.Contact.UserID, WAID: ev.Contact.WAID}).Key()
		}
		ev.ConversationID = ConversationID(ev.Business.PhoneNumberID, k)
	}
	if key == "" {
		return nil, st, nil
	}
	var raw string
	if err := s.reader.QueryRowContext(ctx, `SELECT attributes, consent FROM contacts WHERE key = ?`, key).Scan(&raw, &st.Consent); err != nil {
		return nil, st, fmt.Errorf("store: contact %s: %w", key, err)
	}
	var attrs map[string]string
	json.Unmarshal([]byte(raw), &attrs)
	if ev.Business != nil && ev.Business.PhoneNumberID != "" {
		var last int64
		err := s.reader.QueryRowContext(ctx, `SELECT team, last_active FROM conversations WHERE id = ?`,
			ConversationID(ev.Business.PhoneNumberID, key)).Scan(&st.Team, &last)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return nil, st, err
		default:
			st.LastActive = time.UnixMilli(last).UTC()
		}
	}
	return attrs, st, nil
}
