package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// recorder is a DecideFunc that records what it was shown and answers
// with a scripted decision per event id.
type recorder struct {
	seen    []RouteState
	attrs   []map[string]string
	answers map[string]Decision
}

func (r *recorder) decide(ev *sdk.Event, st RouteState) Decision {
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

func dispatchAll(t *testing.T, s *Store, decide DecideFunc) {
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

// Effects of one event are visible to the next, within a batch and across
// batches: consent, trigger-set attributes and the conversation's team.
func TestDispatchCarriesStateBetweenEvents(t *testing.T) {
	s := openTest(t)
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
	rec := &recorder{answers: map[string]Decision{
		"a1": {Team: "billing", Consent: ConsentRevoked, ConsentSource: "keyword PARAR", ConsentEvent: optout,
			Attributes: map[string]string{"tier": "gold"}},
		// The same consent again is no change: no second announcement.
		"a2": {Team: "billing", Consent: ConsentRevoked, ConsentSource: "keyword PARAR",
			ConsentEvent: &sdk.Event{ID: "evt_consent_a2", Type: sdk.TypeOptinRevoked, OccurredAt: t0, ReceivedAt: t0, Contact: &sdk.Contact{WAID: "5511"}}},
		"a3": {Team: "sales", Attributes: map[string]string{"tier": ""}},
	}}
	dispatchAll(t, s, rec.decide)

	// a1, a2, a3, then the announcement appended by a1.
	if len(rec.seen) != 4 {
		t.Fatalf("decide called %d times, want 4 (three messages and one optin.revoked)", len(rec.seen))
	}
	want := []RouteState{
		{},
		{Consent: ConsentRevoked, Team: "billing", LastActive: t0},
		{Consent: ConsentRevoked, Team: "billing", LastActive: t0.Add(time.Minute)},
	}
	for i, w := range want {
		if !reflect.DeepEqual(rec.seen[i], w) {
			t.Errorf("event %d saw %+v, want %+v", i+1, rec.seen[i], w)
		}
	}
	if got := rec.attrs[1]["tier"]; got != "gold" {
		t.Errorf("second event saw tier %q, want gold (set by the first)", got)
	}
	all, err := s.Events(ctx, EventFilter{Type: "optin.*", Limit: 10})
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
	if c.Consent.State != ConsentRevoked || c.Consent.Source != "keyword PARAR" || c.Consent.At == nil || !c.Consent.At.Equal(t0) {
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
func TestDispatchQueuesRepliesOnce(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("b1", "5522", "", "Bia", t0)}); err != nil {
		t.Fatal(err)
	}
	reply := QueuedMessage{Source: "trigger:welcome", Msg: sdk.OutboundMessage{To: "5522", Text: "oi", IdempotencyKey: "b1"}}
	decide := func(*sdk.Event, RouteState) Decision {
		return Decision{Messages: []QueuedMessage{reply, reply}}
	}
	dispatchAll(t, s, decide)
	var n int
	if err := s.reader.QueryRow(`SELECT COUNT(*) FROM outbox WHERE source = 'trigger:welcome'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d queued replies (%v), want 1", n, err)
	}
	// The caller's own Enqueue of the same key finds it too.
	rec, created, err := s.Enqueue(ctx, "trigger:welcome", reply.Msg)
	if err != nil || created || rec.To != "5522" {
		t.Fatalf("Enqueue again: %+v created=%v %v", rec, created, err)
	}
}

func TestSetConsentAndTeam(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("c1", "5533", "", "Caio", t0)}); err != nil {
		t.Fatal(err)
	}
	announce := func(c *sdk.Contact) *sdk.Event {
		return &sdk.Event{ID: "evt_api_optin", Type: sdk.TypeOptinGranted, OccurredAt: t0, ReceivedAt: t0, Contact: c}
	}
	for i, want := range []bool{true, false} {
		changed, err := s.SetConsent(ctx, "5533", ConsentGranted, "api", announce)
		if err != nil || changed != want {
			t.Fatalf("SetConsent #%d: changed=%v %v, want %v", i+1, changed, err, want)
		}
	}
	if _, err := s.SetConsent(ctx, "nobody", ConsentGranted, "api", announce); err != ErrNotFound {
		t.Fatalf("unknown contact: %v", err)
	}
	if n, err := s.SetTeam(ctx, "5533", "vip"); err != nil || n != 1 {
		t.Fatalf("SetTeam: %d %v", n, err)
	}
	c, _ := s.Contact(ctx, "5533")
	if c.Consent.State != ConsentGranted || c.Consent.Source != "api" || len(c.Conversations) != 1 || c.Conversations[0].Team != "vip" {
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
