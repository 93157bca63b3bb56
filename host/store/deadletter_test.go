package store

import (
	"context"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

func TestDeadLetterIsAnnouncedOnce(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.Append(ctx, []sdk.Event{textEvent("e1", "5511987650001", "", "Ana", t0)}); err != nil {
		t.Fatal(err)
	}
	dispatch := func() {
		t.Helper()
		if _, err := s.Dispatch(ctx, 100, func(ev *sdk.Event, st RouteState) Decision {
			if ev.Type == sdk.TypeDeadLetter {
				return Decision{Connectors: []string{"alerts", "crm"}}
			}
			return Decision{Connectors: []string{"crm"}}
		}); err != nil {
			t.Fatal(err)
		}
	}
	kill := func(connector string) {
		t.Helper()
		due, err := s.Due(ctx, connector, t0.Add(time.Hour), 10)
		if err != nil || len(due) != 1 {
			t.Fatalf("%s due: %v %v", connector, due, err)
		}
		if err := s.RecordAttempts(ctx, []Attempt{{DeliveryID: due[0].ID, At: t0, Outcome: "failed", Error: "400 from the CRM", State: StateDead}}); err != nil {
			t.Fatal(err)
		}
	}
	dispatch()
	kill("crm")
	evs, err := s.Events(ctx, EventFilter{Type: string(sdk.TypeDeadLetter)})
	if err != nil || len(evs) != 1 {
		t.Fatalf("deadletter events: %v %v", evs, err)
	}
	d := evs[0].DeadLetter
	if d == nil || d.EventID != "e1" || d.EventType != sdk.TypeMessageReceived || d.Connector != "crm" || d.Attempts != 1 || d.Error != "400 from the CRM" ||
		evs[0].Contact == nil || evs[0].Contact.WAID != "5511987650001" || evs[0].ConversationID == "" {
		t.Fatalf("deadletter event: %+v %+v", evs[0], d)
	}
	// The connector that gave up does not get its own dead letter.
	dispatch()
	if due, _ := s.Due(ctx, "crm", t0.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("crm got its own dead letter: %+v", due)
	}
	// The alerts connector failing on it announces nothing more.
	kill("alerts")
	if evs, _ := s.Events(ctx, EventFilter{Type: string(sdk.TypeDeadLetter)}); len(evs) != 1 {
		t.Fatalf("a dead deadletter was announced: %d events", len(evs))
	}
}
