// Package storetest is the conformance suite every store backend passes
// (the idea of River's riverdrivertest): the same tests, through the public
// API only, against SQLite and PostgreSQL.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// T0 is the time the suite's stores are opened at.
var T0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

var t0 = T0

// Backend is how the suite gets stores of one backend.
type Backend struct {
	// Open opens a fresh, empty store whose clock is now.
	Open func(t *testing.T, now func() time.Time) *store.Store
	// Share opens n stores on one fresh database, as n hubs would; nil
	// for a backend one hub owns (SQLite).
	Share func(t *testing.T, now func() time.Time, n int) []*store.Store
}

// Opener opens a fresh, empty store whose clock reads T0.
type Opener func(t *testing.T) *store.Store

// Run runs the whole suite against the backend.
func Run(t *testing.T, b Backend) {
	open := func(t *testing.T) *store.Store { return b.Open(t, func() time.Time { return T0 }) }
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"AppendSkipsDuplicatesAndSetsSeq", testAppendSkipsDuplicatesAndSetsSeq},
		{"ReadsOnAFilledStore", testReadsOnAFilledStore},
		{"ConcurrentAppendsStoreEachItemOnce", testConcurrentAppendsStoreEachItemOnce},
		{"ContactIdentity", testContactIdentity},
		{"StatusDoesNotOpenWindowAndChangedNumberMovesContact", testStatusDoesNotOpenWindowAndChangedNumberMovesContact},
		{"EventFilter", testEventFilter},
		{"ChangedSignalsNewCommits", testChangedSignalsNewCommits},
		{"CaughtUpDispatchIsQuiet", testCaughtUpDispatchIsQuiet},
		{"DispatchCarriesStateBetweenEvents", testDispatchCarriesStateBetweenEvents},
		{"DispatchQueuesRepliesOnce", testDispatchQueuesRepliesOnce},
		{"DispatchReplansWhenStateMoved", testDispatchReplansWhenStateMoved},
		{"SetConsentAndTeam", testSetConsentAndTeam},
		{"ConsentFollowsWhenItWasStated", testConsentFollowsWhenItWasStated},
		{"PruneKeepsWhatIsNotSettled", testPruneKeepsWhatIsNotSettled},
		{"MediaUploadStates", testMediaUploadStates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
	t.Run("Cluster", func(t *testing.T) { RunCluster(t, b) })
}

// recorder is a store.DecideFunc that records what it was shown and answers
// with a scripted decision per event id.
type recorder struct {
	seen    []store.RouteState
	attrs   []map[string]string
	answers map[string]store.Decision
}

func (r *recorder) decide(ev *sdk.Event, st store.RouteState) store.Decision {
	r.seen = append(r.seen, st)
	var a map[string]string
	if ev.Contact != nil {
		a = ev.Contact.Attributes
	}
	r.attrs = append(r.attrs, a)
	d := r.answers[ev.ID]
	if d.Connectors == nil {
		d.Connectors = []string{"c"}
	}
	return d
}

func dispatchAll(t *testing.T, s *store.Store, decide store.DecideFunc) {
	t.Helper()
	for {
		n, err := s.Dispatch(context.Background(), 100, decide)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func textEvent(id, waID, userID, name string, at time.Time) sdk.Event {
	return sdk.Event{
		ID: id, Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at,
		Business: &sdk.Business{WABAID: "waba", PhoneNumberID: "pn1"},
		Contact:  &sdk.Contact{WAID: waID, UserID: userID, Name: name},
		Message:  &sdk.Message{ID: "wamid." + id, Type: "text", Text: "hi"},
	}
}

func testAppendSkipsDuplicatesAndSetsSeq(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	evs := []sdk.Event{textEvent("a", "551", "", "Ana", t0), textEvent("b", "551", "", "Ana", t0), textEvent("a", "551", "", "Ana", t0)}
	n, err := s.Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("added %d, want 2 (the third is a duplicate within the batch)", n)
	}
	if evs[0].Seq == 0 || evs[1].Seq <= evs[0].Seq || evs[2].Seq != 0 {
		t.Fatalf("seqs = %d %d %d, want increasing for new events and 0 for the duplicate", evs[0].Seq, evs[1].Seq, evs[2].Seq)
	}
	again := []sdk.Event{textEvent("a", "551", "", "Ana", t0), textEvent("c", "551", "", "Ana", t0)}
	if n, err := s.Append(ctx, again); err != nil || n != 1 {
		t.Fatalf("second append: n=%d err=%v, want 1 new", n, err)
	}
	got, err := s.Events(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("log has %d events, want 3", len(got))
	}
	for i, want := range []string{"a", "b", "c"} {
		if got[i].ID != want {
			t.Errorf("event %d = %s, want %s (log order)", i, got[i].ID, want)
		}
	}
}

func testConcurrentAppendsStoreEachItemOnce(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	var batch []sdk.Event
	for i := 0; i < 50; i++ {
		batch = append(batch, textEvent(fmt.Sprintf("e%02d", i), fmt.Sprintf("55%02d", i%5), "", "", t0))
	}
	var wg sync.WaitGroup
	total := make([]int, 20)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mine := append([]sdk.Event(nil), batch...)
			n, err := s.Append(ctx, mine)
			if err != nil {
				t.Error(err)
			}
			total[g] = n
		}(g)
	}
	wg.Wait()
	sum := 0
	for _, n := range total {
		sum += n
	}
	if sum != 50 {
		t.Fatalf("goroutines added %d events in total, want 50", sum)
	}
	if last, _ := s.LastSeq(ctx); last != 50 {
		t.Fatalf("last seq %d, want 50", last)
	}
}

func testContactIdentity(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	later := t0.Add(time.Hour)
	steps := []sdk.Event{
		textEvent("1", "5511", "", "Ana", t0),
		// The same person, now with a BSUID too: same contact and conversation.
		textEvent("2", "5511", "BR.1", "", later),
		// BSUID only: found by user_id.
		textEvent("3", "", "BR.1", "Ana S", later.Add(-time.Minute)),
		// A different BSUID on the same number is someone else.
		textEvent("4", "5511", "BR.2", "Other", later),
		// BSUID-only customer never seen before.
		textEvent("5", "", "US.9", "Dana", t0),
	}
	if _, err := s.Append(ctx, steps); err != nil {
		t.Fatal(err)
	}
	conv := func(id string) string {
		ev, err := s.Event(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ev.ConversationID
	}
	if conv("1") == "" || conv("1") != conv("2") || conv("2") != conv("3") {
		t.Errorf("events of one customer got conversations %q %q %q", conv("1"), conv("2"), conv("3"))
	}
	if conv("4") == conv("1") || conv("5") == conv("1") {
		t.Errorf("other customers share the first conversation")
	}
	if conv("1") != store.ConversationID("pn1", "5511") {
		t.Errorf("conversation id is not derived from number and first identity")
	}
	c, err := s.Contact(ctx, "BR.1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != "5511" || c.WAID != "5511" || c.UserID != "BR.1" || c.Name != "Ana S" {
		t.Errorf("contact = %+v", c)
	}
	if c.LastInboundAt == nil || !c.LastInboundAt.Equal(later) {
		t.Errorf("last inbound = %v, want the latest message time %v (not the last appended)", c.LastInboundAt, later)
	}
	if _, err := s.Contact(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown contact: err = %v, want store.ErrNotFound", err)
	}
	evs, err := s.Events(ctx, store.EventFilter{Contact: "BR.1"})
	if err != nil || len(evs) != 3 {
		t.Errorf("events of contact BR.1: %d (err %v), want 3", len(evs), err)
	}
}

func testStatusDoesNotOpenWindowAndChangedNumberMovesContact(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	status := sdk.Event{ID: "s1", Type: sdk.TypeStatusRead, OccurredAt: t0, ReceivedAt: t0,
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "1415"},
		Status: &sdk.Status{MessageID: "wamid.x", Status: "read"}}
	changed := sdk.Event{ID: "c1", Type: sdk.TypeContactChanged, OccurredAt: t0, ReceivedAt: t0,
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "1415"},
		Message: &sdk.Message{ID: "wamid.sys", Type: "system", System: &sdk.System{Type: "user_changed_number", NewWAID: "1499"}}}
	fromNew := textEvent("n1", "1499", "", "", t0.Add(time.Minute))
	// A late status for a message sent to the old number still finds the
	// contact, whose key is the old number.
	lateStatus := status
	lateStatus.ID = "s2"
	if _, err := s.Append(ctx, []sdk.Event{status, changed, fromNew, lateStatus}); err != nil {
		t.Fatal(err)
	}
	if ev, err := s.Event(ctx, "s2"); err != nil || ev.ConversationID != store.ConversationID("pn1", "1415") {
		t.Errorf("late status to the old number: conversation %q, err %v", ev.ConversationID, err)
	}
	c, err := s.Contact(ctx, "1499")
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != "1415" {
		t.Errorf("message from the new number filed under contact %q, want the original 1415", c.Key)
	}
	if c.LastInboundAt == nil || !c.LastInboundAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("last inbound = %v; a status must not open the window, the message must", c.LastInboundAt)
	}
}

func testEventFilter(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	var evs []sdk.Event
	for i := 0; i < 5; i++ {
		evs = append(evs, textEvent(fmt.Sprintf("m%d", i), "551", "", "", t0))
		evs = append(evs, sdk.Event{ID: fmt.Sprintf("s%d", i), Type: sdk.TypeStatusDelivered, OccurredAt: t0, ReceivedAt: t0})
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    store.EventFilter
		want []string
	}{
		{"newest last, limited", store.EventFilter{Tail: true, Limit: 3}, []string{"s3", "m4", "s4"}},
		{"by type", store.EventFilter{Tail: true, Type: string(sdk.TypeMessageReceived), Limit: 2}, []string{"m3", "m4"}},
		{"from the start", store.EventFilter{Limit: 2}, []string{"m0", "s0"}},
		{"by type glob", store.EventFilter{Type: "status.*", After: 6}, []string{"s3", "s4"}},
		{"after seq", store.EventFilter{After: 8}, []string{"m4", "s4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Events(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, ev := range got {
				ids = append(ids, ev.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", ids, tt.want)
			}
		})
	}
}

func testChangedSignalsNewCommits(t *testing.T, open Opener) {
	s := open(t)
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("signalled before any write")
	default:
	}
	if _, err := s.Append(context.Background(), []sdk.Event{textEvent("x", "551", "", "", t0)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("not signalled after a commit")
	}
}

// A dispatch with nothing to do neither commits nor signals Changed: the
// dispatcher waits on Changed, so an empty commit would wake it at once
// and an idle hub would spin on its own commits.
func testCaughtUpDispatchIsQuiet(t *testing.T, open Opener) {
	s := open(t)
	var r recorder
	if _, err := s.Append(context.Background(), []sdk.Event{textEvent("q", "551", "", "", t0)}); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, r.decide)
	if len(r.seen) != 1 {
		t.Fatalf("dispatched %d events, want 1", len(r.seen))
	}
	// Commits are what signal Changed to this hub's stages; a PostgreSQL
	// store also signals on its listener's own schedule (polls, its own
	// NOTIFY echoed back), so Changed itself proves nothing there.
	commits, _ := s.WriterStats()
	for range 3 {
		if n, err := s.Dispatch(context.Background(), 100, r.decide); err != nil || n != 0 {
			t.Fatalf("Dispatch of a caught-up log: %d, %v", n, err)
		}
	}
	if after, _ := s.WriterStats(); after != commits {
		t.Errorf("a caught-up dispatch committed %d times", after-commits)
	}
	// And the next event is still dispatched.
	if _, err := s.Append(context.Background(), []sdk.Event{textEvent("q2", "551", "", "", t0)}); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, r.decide)
	if len(r.seen) != 2 {
		t.Fatalf("dispatched %d events after a new one, want 2", len(r.seen))
	}
}

// Effects of one event are visible to the next, within a batch and across
// batches: consent, trigger-set attributes and the conversation's team.
// Dispatch plans routing before its write transaction; a change to what
// the plan was based on in between (here the admin API handing the
// conversation to another team) must be seen, as if routing had run in
// the transaction.
func testDispatchReplansWhenStateMoved(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("m1", "5511", "", "Ana", t0)}); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, func(ev *sdk.Event, st store.RouteState) store.Decision {
		return store.Decision{Team: "support", Route: &sdk.Route{Team: "support"}, Connectors: []string{"c"}}
	})
	if _, err := s.Append(ctx, []sdk.Event{textEvent("m2", "5511", "", "Ana", t0.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	moved := false
	dispatchAll(t, s, func(ev *sdk.Event, st store.RouteState) store.Decision {
		seen = append(seen, st.Team)
		if !moved {
			// Planning runs outside the writer, so this write goes
			// through before the dispatch's own transaction.
			moved = true
			if _, err := s.SetTeam(ctx, "5511", "sales"); err != nil {
				t.Error(err)
			}
		}
		return store.Decision{Team: st.Team, Route: &sdk.Route{Team: st.Team}, Connectors: []string{"c"}}
	})
	if want := []string{"support", "sales"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("decide saw teams %q, want %q (planned, then planned again on the moved state)", seen, want)
	}
	ev, err := s.Event(ctx, "m2")
	if err != nil {
		t.Fatal(err)
	}
	if ev.Route == nil || ev.Route.Team != "sales" {
		t.Fatalf("stored route %+v, want team sales", ev.Route)
	}
	c, err := s.Contact(ctx, "5511")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Conversations) != 1 || c.Conversations[0].Team != "sales" {
		t.Fatalf("conversations %+v, want one with team sales", c.Conversations)
	}
}

func testDispatchCarriesStateBetweenEvents(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	evs := []sdk.Event{
		textEvent("a1", "5511", "", "Ana", t0),
		textEvent("a2", "5511", "", "Ana", t0.Add(time.Minute)),
		textEvent("a3", "5511", "", "Ana", t0.Add(2*time.Minute)),
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	optout := &sdk.Event{ID: "evt_consent_a1", Type: sdk.TypeOptinRevoked, OccurredAt: t0, ReceivedAt: t0,
		Business: evs[0].Business, Contact: &sdk.Contact{WAID: "5511"}, Preference: &sdk.Preference{Value: "stop", Source: "keyword PARAR"}}
	rec := &recorder{answers: map[string]store.Decision{
		"a1": {Team: "billing", Consent: sdk.ConsentRevoked, ConsentSource: "keyword PARAR", ConsentEvent: optout,
			Attributes: map[string]string{"tier": "gold"}},
		// The same consent again is no change: no second announcement.
		"a2": {Team: "billing", Consent: sdk.ConsentRevoked, ConsentSource: "keyword PARAR",
			ConsentEvent: &sdk.Event{ID: "evt_consent_a2", Type: sdk.TypeOptinRevoked, OccurredAt: t0, ReceivedAt: t0, Contact: &sdk.Contact{WAID: "5511"}}},
		"a3": {Team: "sales", Attributes: map[string]string{"tier": ""}},
	}}
	dispatchAll(t, s, rec.decide)

	// a1, a2, a3, then the announcement appended by a1.
	if len(rec.seen) != 4 {
		t.Fatalf("decide called %d times, want 4 (three messages and one optin.revoked)", len(rec.seen))
	}
	want := []store.RouteState{
		{},
		{Consent: sdk.ConsentRevoked, Team: "billing", LastActive: t0},
		{Consent: sdk.ConsentRevoked, Team: "billing", LastActive: t0.Add(time.Minute)},
	}
	for i, w := range want {
		if !reflect.DeepEqual(rec.seen[i], w) {
			t.Errorf("event %d saw %+v, want %+v", i+1, rec.seen[i], w)
		}
	}
	if got := rec.attrs[1]["tier"]; got != "gold" {
		t.Errorf("second event saw tier %q, want gold (set by the first)", got)
	}
	all, err := s.Events(ctx, store.EventFilter{Type: "optin.*", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != "evt_consent_a1" {
		t.Fatalf("optin events %+v, want the one announcement", all)
	}
	c, err := s.Contact(ctx, "5511")
	if err != nil {
		t.Fatal(err)
	}
	if c.Consent.State != sdk.ConsentRevoked || c.Consent.Source != "keyword PARAR" || c.Consent.At == nil || !c.Consent.At.Equal(t0) {
		t.Errorf("consent %+v", c.Consent)
	}
	if _, ok := c.Attributes["tier"]; ok {
		t.Errorf("attributes %v: a3 deleted tier", c.Attributes)
	}
	if len(c.Conversations) != 1 || c.Conversations[0].Team != "sales" || !c.Conversations[0].LastActive.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("conversations %+v", c.Conversations)
	}
}

// Replies queued by a decision are queued once, whatever the decision is
// asked again: the outbox key makes the second a no-op.
func testDispatchQueuesRepliesOnce(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("b1", "5522", "", "Bia", t0)}); err != nil {
		t.Fatal(err)
	}
	reply := store.QueuedMessage{Source: "trigger:welcome", Msg: sdk.OutboundMessage{To: "5522", Text: "oi", IdempotencyKey: "b1"}}
	decide := func(*sdk.Event, store.RouteState) store.Decision {
		return store.Decision{Messages: []store.QueuedMessage{reply, reply}}
	}
	dispatchAll(t, s, decide)
	counts, err := s.OutboundCounts(ctx)
	if n := counts[store.OutQueued]; err != nil || n != 1 {
		t.Fatalf("%d queued replies (%v), want 1", n, err)
	}
	// The caller's own Enqueue of the same key finds it too.
	rec, created, err := s.Enqueue(ctx, "trigger:welcome", reply.Msg)
	if err != nil || created || rec.To != "5522" {
		t.Fatalf("Enqueue again: %+v created=%v %v", rec, created, err)
	}
}

// Webhooks arrive out of order: a consent statement older than the one
// the contact's consent rests on changes nothing, within a batch and
// across batches, and is not announced.
func testConsentFollowsWhenItWasStated(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	announce := func(id string, at time.Time) *sdk.Event {
		return &sdk.Event{ID: "evt_consent_" + id, Type: sdk.TypeOptinRevoked, OccurredAt: at, ReceivedAt: at, Contact: &sdk.Contact{WAID: "5544"}}
	}
	// START at +5m arrives first, then the STOP of t0 it answered.
	first := []sdk.Event{textEvent("start", "5544", "", "Ana", t0.Add(5*time.Minute)), textEvent("stop-late", "5544", "", "Ana", t0)}
	rec := &recorder{answers: map[string]store.Decision{
		"start":     {Consent: sdk.ConsentGranted, ConsentSource: "keyword START"},
		"stop-late": {Consent: sdk.ConsentRevoked, ConsentSource: "keyword PARAR", ConsentEvent: announce("stop-late", t0)},
		// Across a batch: older than the START still, then a real STOP.
		"stop-older": {Consent: sdk.ConsentRevoked, ConsentSource: "keyword PARAR", ConsentEvent: announce("stop-older", t0.Add(3*time.Minute))},
		"stop-new":   {Consent: sdk.ConsentRevoked, ConsentSource: "keyword SAIR", ConsentEvent: announce("stop-new", t0.Add(10*time.Minute))},
	}}
	if _, err := s.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, rec.decide)
	c, err := s.Contact(ctx, "5544")
	if err != nil {
		t.Fatal(err)
	}
	if c.Consent.State != sdk.ConsentGranted || c.Consent.Source != "keyword START" {
		t.Fatalf("after a late STOP: consent %+v, want granted by keyword START", c.Consent)
	}
	second := []sdk.Event{textEvent("stop-older", "5544", "", "Ana", t0.Add(3*time.Minute)), textEvent("stop-new", "5544", "", "Ana", t0.Add(10*time.Minute))}
	if _, err := s.Append(ctx, second); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, rec.decide)
	if c, err = s.Contact(ctx, "5544"); err != nil {
		t.Fatal(err)
	}
	if c.Consent.State != sdk.ConsentRevoked || c.Consent.Source != "keyword SAIR" || c.Consent.At == nil || !c.Consent.At.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("after a new STOP: consent %+v, want revoked by keyword SAIR at +10m", c.Consent)
	}
	evs, err := s.Events(ctx, store.EventFilter{Type: "optin.*", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].ID != "evt_consent_stop-new" {
		t.Errorf("announcements %+v, want only the new STOP's", evs)
	}
}

func testSetConsentAndTeam(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("c1", "5533", "", "Caio", t0)}); err != nil {
		t.Fatal(err)
	}
	announce := func(c *sdk.Contact) *sdk.Event {
		return &sdk.Event{ID: "evt_api_optin", Type: sdk.TypeOptinGranted, OccurredAt: t0, ReceivedAt: t0, Contact: c}
	}
	for i, want := range []bool{true, false} {
		changed, err := s.SetConsent(ctx, "5533", sdk.ConsentGranted, "api", announce)
		if err != nil || changed != want {
			t.Fatalf("SetConsent #%d: changed=%v %v, want %v", i+1, changed, err, want)
		}
	}
	if _, err := s.SetConsent(ctx, "nobody", sdk.ConsentGranted, "api", announce); err != store.ErrNotFound {
		t.Fatalf("unknown contact: %v", err)
	}
	if n, err := s.SetTeam(ctx, "5533", "vip"); err != nil || n != 1 {
		t.Fatalf("SetTeam: %d %v", n, err)
	}
	c, _ := s.Contact(ctx, "5533")
	if c.Consent.State != sdk.ConsentGranted || c.Consent.Source != "api" || len(c.Conversations) != 1 || c.Conversations[0].Team != "vip" {
		t.Fatalf("contact %+v", c)
	}
	if _, err := s.Event(ctx, "evt_api_optin"); err != nil {
		t.Fatalf("announcement: %v", err)
	}
	if n, err := s.SetTeam(ctx, "5533", ""); err != nil || n != 1 {
		t.Fatalf("close: %d %v", n, err)
	}
	c, _ = s.Contact(ctx, "5533")
	if c.Conversations[0].Team != "" {
		t.Fatalf("closed conversation still with %q", c.Conversations[0].Team)
	}
}

// Retention deletes settled old events only: a dead letter, a pending
// delivery and recent events stay.
func testPruneKeepsWhatIsNotSettled(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	old := t0.Add(-40 * 24 * time.Hour)
	evs := []sdk.Event{
		textEvent("settled", "5511", "", "A", old),
		textEvent("dead", "5522", "", "B", old),
		textEvent("pending", "5533", "", "C", old),
		textEvent("recent", "5544", "", "D", t0),
	}
	for i := range evs {
		evs[i].ReceivedAt = evs[i].OccurredAt
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, func(*sdk.Event, store.RouteState) store.Decision { return store.Decision{Connectors: []string{"c"}} })
	due, err := s.Due(ctx, "c", t0, 10)
	if err != nil || len(due) != 4 {
		t.Fatalf("due %d %v", len(due), err)
	}
	var attempts []store.Attempt
	for _, d := range due {
		a := store.Attempt{DeliveryID: d.ID, At: t0, Outcome: store.AttemptDelivered, State: store.StateDelivered}
		switch d.EventID {
		case "dead":
			a.Outcome, a.State = store.AttemptFailed, store.StateDead
		case "pending":
			continue
		}
		attempts = append(attempts, a)
	}
	if err := s.RecordAttempts(ctx, attempts); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, t0.Add(-30*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1", n, err)
	}
	for id, want := range map[string]bool{"settled": false, "dead": true, "pending": true, "recent": true} {
		_, err := s.Event(ctx, id)
		if (err == nil) != want {
			t.Errorf("event %s kept=%v, want %v", id, err == nil, want)
		}
	}
}

// testReadsOnAFilledStore runs every read the admin API, the console and
// /metrics make over a store with events, deliveries of each state, the
// outbox and a dead letter: each backend must answer them all.
func testReadsOnAFilledStore(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	evs := []sdk.Event{textEvent("r1", "5511", "", "Ana", t0), textEvent("r2", "5511", "", "Ana", t0), textEvent("r3", "5522", "", "Bia", t0)}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, func(*sdk.Event, store.RouteState) store.Decision {
		return store.Decision{Connectors: []string{"c"}, Route: &sdk.Route{Team: "support"}}
	})
	due, err := s.Due(ctx, "c", t0, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("due %d %v", len(due), err)
	}
	if err := s.RecordAttempts(ctx, []store.Attempt{
		{DeliveryID: due[0].ID, At: t0, Outcome: store.AttemptDelivered, State: store.StateDelivered},
		{DeliveryID: due[1].ID, At: t0, Outcome: store.AttemptRetry, Error: "503", State: store.StatePending, NextAt: t0.Add(time.Minute)},
		{DeliveryID: due[2].ID, At: t0, Outcome: store.AttemptFailed, Error: "400", State: store.StateDead},
	}); err != nil {
		t.Fatal(err)
	}
	rec, _, err := s.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511", Text: "oi"})
	if err != nil {
		t.Fatal(err)
	}
	conv := store.ConversationID("pn1", "5511")
	checks := []struct {
		name string
		call func() error
	}{
		{"Stats", func() error { _, err := s.Stats(ctx, t0.Add(-time.Hour)); return err }},
		{"ConnectorCounts", func() error {
			c, err := s.ConnectorCounts(ctx)
			if err == nil && (c["c"] == nil || c["c"].Delivered != 1 || c["c"].Dead != 1 || c["c"].Pending != 1 || c["c"].Retrying != 1) {
				return fmt.Errorf("counts %+v", c["c"])
			}
			return err
		}},
		{"OutboundCounts", func() error { _, err := s.OutboundCounts(ctx); return err }},
		{"DeadLetters", func() error {
			dl, err := s.DeadLetters(ctx, store.DeadLetterFilter{Connector: "c"})
			if err == nil && len(dl) != 1 {
				return fmt.Errorf("%d dead letters", len(dl))
			}
			return err
		}},
		{"EventDeliveries", func() error { _, err := s.EventDeliveries(ctx, due[1].Seq); return err }},
		{"RecentConversations", func() error { _, err := s.RecentConversations(ctx, "", 10); return err }},
		{"ConversationOf", func() error { _, err := s.ConversationOf(ctx, conv); return err }},
		{"ConversationEvents", func() error {
			evs, err := s.ConversationEvents(ctx, conv, 0, 10)
			if err == nil && len(evs) != 2 {
				return fmt.Errorf("%d events in the conversation", len(evs))
			}
			return err
		}},
		{"DeliveryStates", func() error { _, err := s.DeliveryStates(ctx, []int64{due[0].Seq, due[1].Seq}); return err }},
		{"OutboundList", func() error { _, err := s.OutboundList(ctx, store.OutboundFilter{}); return err }},
		{"OutboundStates", func() error { _, err := s.OutboundStates(ctx, []string{rec.ID}); return err }},
		{"Series", func() error { _, err := s.Series(ctx, t0.Add(-time.Hour), time.Minute); return err }},
		{"StuckOutbound", func() error { _, _, err := s.StuckOutbound(ctx, time.Minute); return err }},
		{"LookupRecipient", func() error { _, err := s.LookupRecipient(ctx, "5511", true); return err }},
		{"TemplateCatalogue", func() error { _, err := s.TemplateCatalogue(ctx); return err }},
		{"TemplateVersions", func() error { _, _, err := s.TemplateVersions(ctx, "promo"); return err }},
	}
	for _, c := range checks {
		if err := c.call(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}
