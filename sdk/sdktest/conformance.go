package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Suite describes a connector to the conformance suite.
type Suite struct {
	// Name is the connector's name in connectors.yaml.
	Name string
	// New returns a fresh connector and a valid configuration for it (its
	// api_url pointing at the test's fake of the external system).
	New func(t *testing.T) (sdk.Connector, json.RawMessage)
	// BadConfig is a configuration the connector must refuse.
	BadConfig json.RawMessage
	// RequiredKeys are the keys an empty configuration ({}) lacks: the
	// connector must name every one of them in one error, as
	// "connectors.<Name>.config.<key>: required", so that a user fixes
	// them all at once.
	RequiredKeys []string
	// Events to deliver; Events() is used when empty.
	Events []sdk.Event
	// AfterRedelivery, if set, runs after the same batch was delivered
	// twice: it checks the external system got each event's effect once.
	AfterRedelivery func(t *testing.T)
}

// Run checks what the hub relies on from every connector:
//   - Describe names it without I/O; a bad configuration is refused, an
//     empty one with every required key named;
//   - before Configure, Deliver answers every event Retry;
//   - Deliver answers exactly one result per event, with a known outcome;
//   - a redelivered batch (after a crash) has no new effect;
//   - a cancelled context makes Deliver return without claiming
//     permanent failure.
func (s Suite) Run(t *testing.T) {
	events := s.Events
	if len(events) == 0 {
		events = Events()
	}
	t.Run("describe", func(t *testing.T) {
		c, _ := s.New(t)
		d, err := Dial(t, c).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d.Name == "" || d.Version == "" {
			t.Errorf("Describe = %+v: name and version must be set", d)
		}
	})
	t.Run("check-only configuration", func(t *testing.T) {
		c, cfg := s.New(t)
		r := Dial(t, c)
		if err := r.Configure(context.Background(), sdk.Config{Name: s.Name, Raw: cfg, CheckOnly: true}, nil); err != nil {
			t.Errorf("valid config refused in check mode: %v", err)
		}
		if s.BadConfig != nil {
			if err := r.Configure(context.Background(), sdk.Config{Name: s.Name, Raw: s.BadConfig, CheckOnly: true}, nil); err == nil {
				t.Errorf("bad config %s accepted", s.BadConfig)
			}
		}
	})
	if len(s.RequiredKeys) > 0 {
		t.Run("empty configuration names every required key", func(t *testing.T) {
			c, _ := s.New(t)
			err := Dial(t, c).Configure(context.Background(), sdk.Config{Name: s.Name, Raw: json.RawMessage(`{}`), CheckOnly: true}, nil)
			if err == nil {
				t.Fatal("an empty configuration was accepted")
			}
			for _, k := range s.RequiredKeys {
				if want := "connectors." + s.Name + ".config." + k + ": required"; !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q:\n%v", want, err)
				}
			}
		})
	}
	t.Run("not configured", func(t *testing.T) {
		// Called directly: over gRPC the hub configures before it delivers.
		c, _ := s.New(t)
		results := c.Deliver(context.Background(), events)
		checkResults(t, "before Configure", events, results)
		for _, res := range results {
			if res.Outcome != sdk.Retry {
				t.Errorf("event %s before Configure: %s (%s), want retry", res.EventID, res.Outcome, res.Error)
			}
		}
	})
	t.Run("one result per event, idempotent redelivery", func(t *testing.T) {
		c, cfg := s.New(t)
		r, _ := Start(t, c, s.Name, cfg)
		for round := 1; round <= 2; round++ {
			results, err := r.Deliver(context.Background(), events)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			checkResults(t, fmt.Sprintf("round %d", round), events, results)
			for _, res := range results {
				if res.Outcome == sdk.Failed || res.Outcome == sdk.Retry {
					t.Errorf("round %d: event %s: %s: %s", round, res.EventID, res.Outcome, res.Error)
				}
			}
		}
		if s.AfterRedelivery != nil {
			s.AfterRedelivery(t)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		c, cfg := s.New(t)
		r, _ := Start(t, c, s.Name, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		var results []sdk.Result
		var err error
		go func() {
			defer close(done)
			// The gRPC call itself fails on a dead context; a connector
			// reached some other way must honour it too, so call it
			// directly as well.
			results = c.Deliver(ctx, events)
			_, err = r.Deliver(ctx, events)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Deliver with a cancelled context did not return within 10s")
		}
		if err == nil {
			t.Error("Deliver over gRPC with a cancelled context returned no error")
		}
		checkResults(t, "cancelled", events, results)
		for _, res := range results {
			if res.Outcome == sdk.Failed {
				t.Errorf("event %s marked failed on cancellation; it must be retried: %s", res.EventID, res.Error)
			}
		}
	})
}

func checkResults(t *testing.T, when string, events []sdk.Event, results []sdk.Result) {
	t.Helper()
	want := map[string]bool{}
	for _, ev := range events {
		want[ev.ID] = true
	}
	got := map[string]int{}
	for _, r := range results {
		got[r.EventID]++
		if !want[r.EventID] {
			t.Errorf("%s: result for unknown event %q", when, r.EventID)
		}
		switch r.Outcome {
		case sdk.Delivered, sdk.Retry, sdk.Failed, sdk.Skipped:
		default:
			t.Errorf("%s: event %s: unknown outcome %d", when, r.EventID, r.Outcome)
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("%s: event %s has %d results, want exactly 1", when, id, got[id])
		}
	}
}

// Events returns a representative batch: two customers, text, a button
// click, a delivery status, an opt-out and an unmodelled field, routed to a
// team.
func Events() []sdk.Event {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	biz := &sdk.Business{WABAID: "102290129340398", PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881"}
	ana := &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"}
	bruno := &sdk.Contact{WAID: "5521998760002", Name: "Bruno Lima", Attributes: map[string]string{"tier": "gold"}}
	route := &sdk.Route{Rule: "default", Team: "support", Connectors: []string{"test"}}
	ev := func(n int, typ sdk.EventType, c *sdk.Contact, conv string) sdk.Event {
		return sdk.Event{ID: fmt.Sprintf("evt_conformance%02d", n), Seq: int64(n), Type: typ,
			OccurredAt: at.Add(time.Duration(n) * time.Second), ReceivedAt: at.Add(time.Duration(n) * time.Second),
			Business: biz, Contact: c, ConversationID: conv, Route: route, Raw: json.RawMessage(`{}`)}
	}
	e1 := ev(1, sdk.TypeMessageReceived, ana, "conv_ana")
	e1.Message = &sdk.Message{ID: "wamid.conf.1", Type: "text", Text: "Olá, preciso de ajuda com meu pedido"}
	e2 := ev(2, sdk.TypeMessageReceived, bruno, "conv_bruno")
	e2.Message = &sdk.Message{ID: "wamid.conf.2", Type: "text", Text: "Minha fatura veio errada"}
	e3 := ev(3, sdk.TypeButtonClicked, ana, "conv_ana")
	e3.Message = &sdk.Message{ID: "wamid.conf.3", Type: "interactive", Text: "Falar com vendas", Button: &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas"}}
	e4 := ev(4, sdk.TypeMessageReceived, ana, "conv_ana")
	e4.Message = &sdk.Message{ID: "wamid.conf.4", Type: "image", Text: "Foto do produto", Media: &sdk.Media{ID: "1003383421387256", MimeType: "image/jpeg", Caption: "Foto do produto"}}
	e5 := ev(5, sdk.TypeStatusDelivered, ana, "conv_ana")
	e5.Status = &sdk.Status{MessageID: "wamid.out.1", Status: "delivered"}
	e6 := ev(6, sdk.TypeOptinRevoked, bruno, "conv_bruno")
	e6.Preference = &sdk.Preference{Category: "marketing_messages", Value: "stop"}
	e7 := ev(7, sdk.FieldType("message_template_status_update"), nil, "")
	e7.Route = nil
	return []sdk.Event{e1, e2, e3, e4, e5, e6, e7}
}
