package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/sdk"
)

// The writer inserts the events of consecutive Appends in one statement
// (appendGroup). Whatever the mix, the log, the contacts and what each
// Append reports must be what the same appends committed one by one
// leave.
func TestAppendGroupMatchesOneByOne(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	status := func(id, waID string, m int) sdk.Event {
		return sdk.Event{ID: id, Type: sdk.TypeStatusDelivered, OccurredAt: at(m), ReceivedAt: at(m),
			Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: waID},
			Status: &sdk.Status{MessageID: "wamid.out." + id}}
	}
	image := func(id, waID, media string, m int) sdk.Event {
		ev := textEvent(id, waID, "", "", at(m))
		ev.Message.Type, ev.Message.Text = "image", ""
		ev.Message.Media = &sdk.Media{ID: media, MimeType: "image/jpeg"}
		return ev
	}
	changed := sdk.Event{ID: "chg", Type: sdk.TypeContactChanged, OccurredAt: at(5), ReceivedAt: at(5),
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "5511"},
		Message: &sdk.Message{ID: "wamid.chg", Type: "system", System: &sdk.System{NewWAID: "5599"}}}
	noContact := sdk.Event{ID: "acct", Type: "whatsapp.account_update", OccurredAt: at(1), ReceivedAt: at(1)}
	tests := []struct {
		name string
		seed []sdk.Event
		reqs [][]sdk.Event
	}{
		{"new contacts, several messages each", nil, [][]sdk.Event{
			{textEvent("a1", "5511", "", "Ana", at(1))},
			{textEvent("b1", "5522", "", "Bia", at(1)), textEvent("a2", "5511", "", "Ana Maria", at(2))},
			{textEvent("a3", "5511", "", "", at(3))},
		}},
		{"duplicates within and across requests", []sdk.Event{textEvent("old", "5511", "", "Ana", at(0))}, [][]sdk.Event{
			{textEvent("old", "5511", "", "Ana", at(0)), textEvent("n1", "5511", "", "Ana", at(1))},
			{textEvent("n1", "5511", "", "Ana", at(1))},
			{textEvent("n2", "5533", "", "Caio", at(2)), textEvent("n2", "5533", "", "Caio", at(2))},
		}},
		{"known contact, statuses, no contact", []sdk.Event{textEvent("s0", "5511", "", "Ana", at(0))}, [][]sdk.Event{
			{status("st1", "5511", 1)},
			{noContact},
			{textEvent("s1", "5511", "", "Ana", at(2)), status("st2", "5544", 3)},
		}},
		{"a number seen with and without its user id", nil, [][]sdk.Event{
			{textEvent("u1", "5511", "", "Ana", at(1))},
			{textEvent("u2", "5511", "BR.123", "Ana", at(2))},
			{textEvent("u3", "", "BR.123", "Ana", at(3))},
		}},
		{"media in several requests", nil, [][]sdk.Event{
			{image("p1", "5511", "media.1", 1)},
			{image("p2", "5522", "media.2", 2), image("p3", "5511", "media.1", 3)},
		}},
		{"a changed number", []sdk.Event{textEvent("c0", "5511", "", "Ana", at(0))}, [][]sdk.Event{
			{changed},
			{textEvent("c1", "5599", "", "Ana", at(6))},
		}},
	}
	backends := []struct {
		name string
		open func(t *testing.T) *Store
	}{
		{"sqlite", func(t *testing.T) *Store { return openTest(t) }},
		{"postgres", func(t *testing.T) *Store {
			s, err := OpenPostgres(pgtest.URL(t), Options{Now: func() time.Time { return t0 }}, PostgresOptions{PollInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
	for _, b := range backends {
		for _, tt := range tests {
			t.Run(b.name+"/"+tt.name, func(t *testing.T) {
				ctx := context.Background()
				one, group := b.open(t), b.open(t)
				for _, s := range []*Store{one, group} {
					if len(tt.seed) > 0 {
						if _, err := s.Append(ctx, clone(tt.seed)); err != nil {
							t.Fatal(err)
						}
					}
				}
				var wantAdded []int
				var wantEvents [][]sdk.Event
				for _, evs := range tt.reqs {
					evs = clone(evs)
					n, err := one.Append(ctx, evs)
					if err != nil {
						t.Fatal(err)
					}
					wantAdded, wantEvents = append(wantAdded, n), append(wantEvents, evs)
				}
				// The same appends as one group commit, on the writer's
				// connection while the writer waits for work.
				var batch []*writeReq
				var reqs []*appendReq
				for _, evs := range tt.reqs {
					evs = clone(evs)
					bodies := make([][]byte, len(evs))
					for i := range evs {
						bodies[i], _ = json.Marshal(&evs[i])
					}
					a := &appendReq{events: evs, bodies: bodies}
					reqs = append(reqs, a)
					batch = append(batch, &writeReq{ctx: ctx, appends: a, fn: func(tx *txn) error { return group.appendEach(tx, a) }, done: make(chan error, 1)})
				}
				// runBatch without savepoints: the group must go in as
				// one, not through the one-by-one rerun of a failed batch.
				errs, fnFailed, err := group.runBatch(batch, false)
				if err != nil || fnFailed {
					t.Fatalf("group commit: %v (a request failed: %v; %v)", err, fnFailed, errs)
				}
				for i := range batch {
					if errs[i] != nil {
						t.Fatalf("request %d: %v", i, errs[i])
					}
					if reqs[i].added != wantAdded[i] {
						t.Errorf("request %d: added %d, one by one %d", i, reqs[i].added, wantAdded[i])
					}
					// Seq values may differ (a skipped duplicate can use
					// one up), their order may not: compare ranks.
					for j := range reqs[i].events {
						got, want := reqs[i].events[j], wantEvents[i][j]
						gr, wr := rank(t, group, got.Seq), rank(t, one, want.Seq)
						if gr != wr || got.ConversationID != want.ConversationID {
							t.Errorf("request %d event %s: rank %d conversation %q, one by one %d %q",
								i, got.ID, gr, got.ConversationID, wr, want.ConversationID)
						}
					}
				}
				if got, want := dump(t, group), dump(t, one); got != want {
					t.Errorf("state after the group commit:\n%s\none by one:\n%s", got, want)
				}
			})
		}
	}
}

// rank is seq's place in the log (1 for the first event), 0 for seq 0.
func rank(t *testing.T, s *Store, seq int64) int {
	t.Helper()
	if seq == 0 {
		return 0
	}
	var n int
	if err := s.reader.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM events WHERE seq <= ?`, seq).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func clone(evs []sdk.Event) []sdk.Event {
	out := make([]sdk.Event, len(evs))
	for i, ev := range evs {
		b, _ := json.Marshal(ev)
		json.Unmarshal(b, &out[i])
	}
	return out
}

// dump is the log and the contacts as rows of text.
func dump(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id, type, COALESCE(contact_key, ''), COALESCE(conversation_id, ''), COALESCE(phone_number_id, '') FROM events ORDER BY seq`,
		`SELECT key, COALESCE(wa_id, ''), COALESCE(user_id, ''), name, COALESCE(last_inbound_at, 0), first_seen_at FROM contacts ORDER BY key`,
		`SELECT id, state, COALESCE(contact_key, ''), COALESCE(phone_number_id, '') FROM media ORDER BY id`,
		`SELECT m.media_id, e.id FROM media_events m JOIN events e ON e.seq = m.seq ORDER BY m.media_id, e.id`,
	} {
		rows, err := s.reader.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if bs, ok := v.([]byte); ok {
					vals[i] = string(bs)
				}
			}
			fmt.Fprintln(&b, vals...)
		}
		rows.Close()
	}
	return b.String()
}
