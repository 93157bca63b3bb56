// Package streamtest is the test scaffolding the event-stream connectors
// (kafka, nats) share: a connector configured against the test's broker,
// a log of events, and the benchmark loop that feeds a connector the way
// the hub does.
package streamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/internal/stream"
	"github.com/wahub/wahub/sdk"
)

// Configure builds a connector with newConnector and configures it with
// cfg as connectors.stream; the connector is closed when the test ends.
func Configure(tb testing.TB, newConnector func() sdk.Connector, cfg map[string]any, checkOnly bool) (sdk.Connector, error) {
	tb.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c := newConnector()
	tb.Cleanup(func() {
		if cl, ok := c.(io.Closer); ok {
			cl.Close()
		}
	})
	return c, c.Configure(context.Background(), sdk.Config{Name: "stream", Raw: raw, CheckOnly: checkOnly}, nil)
}

// ConfigError is a configuration a connector must refuse, and what the
// error must say.
type ConfigError struct {
	Name   string
	Config map[string]any
	Want   string
}

// ConfigErrors checks that the connector refuses each configuration in
// check mode with an error naming connectors.stream… and containing Want.
func ConfigErrors(t *testing.T, newConnector func() sdk.Connector, cases []ConfigError) {
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, err := Configure(t, newConnector, tc.Config, true)
			if err == nil || !strings.Contains(err.Error(), tc.Want) || !strings.Contains(err.Error(), "connectors.stream.") {
				t.Fatalf("got %v, want an error naming connectors.stream… and containing %q", err, tc.Want)
			}
		})
	}
}

// MustConfigure is Configure for a configuration that must be accepted.
func MustConfigure(tb testing.TB, newConnector func() sdk.Connector, cfg map[string]any) sdk.Connector {
	tb.Helper()
	c, err := Configure(tb, newConnector, cfg, false)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// Events returns n events of type typ spread over convs conversations, in
// log order.
func Events(n, convs int, typ sdk.EventType) []sdk.Event {
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	out := make([]sdk.Event, n)
	for i := range out {
		out[i] = sdk.Event{
			ID: fmt.Sprintf("evt_%05d", i), Seq: int64(i + 1), Type: typ,
			OccurredAt: base.Add(time.Duration(i) * time.Second), ReceivedAt: base.Add(time.Duration(i) * time.Second),
			ConversationID: fmt.Sprintf("conv_%02d", i%convs),
			Business:       &sdk.Business{PhoneNumberID: "106540352242922"},
			Message:        &sdk.Message{ID: fmt.Sprintf("wamid.%d", i), Type: "text", Text: fmt.Sprintf("hello %d", i)},
		}
	}
	return out
}

// MustDeliver delivers events through c and fails the test unless every
// one is Delivered.
func MustDeliver(tb testing.TB, c sdk.Connector, events []sdk.Event) {
	tb.Helper()
	for _, r := range c.Deliver(context.Background(), events) {
		if r.Outcome != sdk.Delivered {
			tb.Fatalf("%s: %s: %s", r.EventID, r.Outcome, r.Error)
		}
	}
}

// WantHeld checks the answer to a batch sent while the broker is away:
// each conversation's first event is to be retried (first of them) and
// every later one held behind it, not attempted (held of them).
func WantHeld(tb testing.TB, res []sdk.Result, first, held int) {
	tb.Helper()
	gotFirst, gotHeld := 0, 0
	for _, r := range res {
		switch {
		case r.Outcome == sdk.Retry && r.NotAttempted:
			gotHeld++
		case r.Outcome == sdk.Retry:
			gotFirst++
		default:
			tb.Fatalf("with the broker away: %+v", r)
		}
	}
	if gotFirst != first || gotHeld != held {
		tb.Fatalf("%d retried, %d held; want each conversation's first event retried (%d) and the others held (%d)", gotFirst, gotHeld, first, held)
	}
}

// Redeliver does what the hub does after an outage: it sends again, in
// order, the events of pending not delivered yet, until every one is, and
// fails the test after batches rounds.
func Redeliver(tb testing.TB, c sdk.Connector, pending []sdk.Event, batches int) {
	tb.Helper()
	for round := 1; len(pending) > 0; round++ {
		if round > batches {
			tb.Fatalf("%d events still not delivered after %d batches", len(pending), batches)
		}
		var next []sdk.Event
		for i, r := range c.Deliver(context.Background(), pending) {
			if r.Outcome != sdk.Delivered {
				next = append(next, pending[i])
			}
		}
		pending = next
	}
}

// Outcomes counts results by outcome.
func Outcomes(res []sdk.Result) map[sdk.Outcome]int {
	m := map[sdk.Outcome]int{}
	for _, r := range res {
		m[r.Outcome]++
	}
	return m
}

// Encoded is an event as the connectors write it in the wahub format.
type Encoded struct {
	Event   *sdk.Event
	Body    []byte
	Headers []stream.Header
}

// Encode is a benchmark baseline's input: the b.N events BenchDeliver
// sends, encoded beforehand, so that the bare client loop publishes the
// very bytes the connector would.
func Encode(b *testing.B) []Encoded {
	evs := Events(b.N, 40, sdk.TypeMessageReceived)
	enc := stream.Encoder{Format: stream.FormatWahub}
	out := make([]Encoded, len(evs))
	for i := range evs {
		body, hs, err := enc.Encode(&evs[i])
		if err != nil {
			b.Fatal(err)
		}
		out[i] = Encoded{Event: &evs[i], Body: body, Headers: hs}
	}
	return out
}

// BenchDeliver is the connector's side of a benchmark: b.N events over 40
// conversations delivered through c in batches of batch, as the hub sends
// them, each batch answered only once the broker acknowledged it. Any
// event not delivered fails the benchmark; the figure is events/s.
func BenchDeliver(b *testing.B, c sdk.Connector, batch int) {
	evs := Events(b.N, 40, sdk.TypeMessageReceived)
	b.ResetTimer()
	for i := 0; i < len(evs); i += batch {
		for _, r := range c.Deliver(context.Background(), evs[i:min(i+batch, len(evs))]) {
			if r.Outcome != sdk.Delivered {
				b.Fatalf("%+v", r)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
