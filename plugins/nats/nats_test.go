package nats_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/internal/stream/streamtest"
	"github.com/wahub/wahub/plugins/nats"
	"github.com/wahub/wahub/plugins/nats/natstest"
	"github.com/wahub/wahub/sdk"
)

func startServer(t *testing.T, opts ...natstest.Option) *natstest.Server {
	t.Helper()
	s, err := natstest.Start(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func addStream(t *testing.T, s *natstest.Server, name string, subjects ...string) {
	t.Helper()
	if err := s.AddStream(context.Background(), name, 0, subjects...); err != nil {
		t.Fatal(err)
	}
}

func messages(t *testing.T, s *natstest.Server, stream string) []natstest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := s.Messages(ctx, stream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConfigErrors(t *testing.T) {
	streamtest.ConfigErrors(t, nats.New, []streamtest.ConfigError{
		{Name: "no url", Config: map[string]any{"subject": "s"}, Want: "config.url: required"},
		{Name: "http url", Config: map[string]any{"url": "http://h:4222", "subject": "s"}, Want: "config.url"},
		{Name: "no subject", Config: map[string]any{"url": "nats://h:4222"}, Want: "config.subject: required"},
		{Name: "wildcard subject", Config: map[string]any{"url": "nats://h:4222", "subject": "wahub.>"}, Want: "config.subject"},
		{Name: "empty token", Config: map[string]any{"url": "nats://h:4222", "subject": "wahub..x"}, Want: "empty token"},
		{Name: "unknown placeholder", Config: map[string]any{"url": "nats://h:4222", "subject": "wahub.{kind}"}, Want: "unknown placeholder"},
		{Name: "bad format", Config: map[string]any{"url": "nats://h:4222", "subject": "s", "format": "json"}, Want: "config.format"},
		{Name: "two auths", Config: map[string]any{"url": "nats://h:4222", "subject": "s", "token": "t", "username": "u", "password": "p"}, Want: "set one of"},
		{Name: "half user", Config: map[string]any{"url": "nats://h:4222", "subject": "s", "username": "u"}, Want: "config.password"},
		{Name: "nkey missing", Config: map[string]any{"url": "nats://h:4222", "subject": "s", "nkey_seed_file": "/nonexistent/seed"}, Want: "config.nkey_seed_file"},
		{Name: "bad timeout", Config: map[string]any{"url": "nats://h:4222", "subject": "s", "delivery_timeout": "0s"}, Want: "config.delivery_timeout"},
		{Name: "unknown key", Config: map[string]any{"url": "nats://h:4222", "subject": "s", "stream": "X"}, Want: "config.stream: unknown key"},
	})
}

// 2,000 events of 40 conversations, a subject per type: all stored, in log
// order, Nats-Msg-Id the event id; the same batches again store nothing.
func TestDeliverInOrderAndRedeliveryIsDropped(t *testing.T) {
	s := startServer(t)
	addStream(t, s, "WAHUB", "wahub.>")
	c := streamtest.MustConfigure(t, nats.New, map[string]any{"url": s.URL(), "subject": "wahub.{type}"})
	evs := streamtest.Events(2000, 40, sdk.TypeMessageReceived)
	for i := range evs {
		if i%7 == 0 {
			evs[i].Type = sdk.TypeStatusRead
		}
	}
	for round := range 2 {
		for i := 0; i < len(evs); i += 100 {
			if o := streamtest.Outcomes(c.Deliver(context.Background(), evs[i:i+100])); o[sdk.Delivered] != 100 {
				t.Fatalf("round %d batch %d: %v", round, i/100, o)
			}
		}
	}
	msgs := messages(t, s, "WAHUB")
	if len(msgs) != 2000 {
		t.Fatalf("%d messages, want 2000 (the second round must be dropped as duplicates)", len(msgs))
	}
	last := map[string]int64{}
	for _, m := range msgs {
		var ev sdk.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if m.Subject != "wahub."+string(ev.Type) || m.Headers["Nats-Msg-Id"] != ev.ID || m.Headers["wahub-event-id"] != ev.ID || m.Headers["wahub-event-type"] != string(ev.Type) {
			t.Fatalf("message on %s with headers %v for event %s %s", m.Subject, m.Headers, ev.ID, ev.Type)
		}
		if ev.Seq <= last[ev.ConversationID] {
			t.Fatalf("conversation %s: seq %d after %d", ev.ConversationID, ev.Seq, last[ev.ConversationID])
		}
		last[ev.ConversationID] = ev.Seq
	}
}

func TestCloudEventsBinaryMode(t *testing.T) {
	s := startServer(t)
	addStream(t, s, "CE", "ce")
	c := streamtest.MustConfigure(t, nats.New, map[string]any{"url": s.URL(), "subject": "ce", "format": "cloudevents"})
	evs := streamtest.Events(1, 1, sdk.TypeOptinGranted)
	if o := streamtest.Outcomes(c.Deliver(context.Background(), evs)); o[sdk.Delivered] != 1 {
		t.Fatal(o)
	}
	m := messages(t, s, "CE")[0]
	want := map[string]string{
		"ce-specversion": "1.0", "ce-id": evs[0].ID, "ce-type": "optin.granted", "ce-source": "/wahub",
		"ce-time": "2026-11-24T12:00:00Z", "ce-subject": "conv_00", "content-type": "application/json", "Nats-Msg-Id": evs[0].ID,
	}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("header %s = %q, want %q (all: %v)", k, m.Headers[k], v, m.Headers)
		}
	}
}

func TestSubjectWithoutStreamIsDeadLetterAndCheckSaysSo(t *testing.T) {
	s := startServer(t)
	addStream(t, s, "MSG", "wahub.message.>", "wahub.button.>", "wahub.optin.>", "wahub.contact.>") // no status.*
	cfg := map[string]any{"url": s.URL(), "subject": "wahub.{type}"}
	if _, err := streamtest.Configure(t, nats.New, cfg, true); err == nil || !strings.Contains(err.Error(), "no JetStream stream captures wahub.status.sent") {
		t.Fatalf("check: %v, want it to name the subjects no stream captures", err)
	}
	c := streamtest.MustConfigure(t, nats.New, cfg)
	evs := streamtest.Events(2, 2, sdk.TypeMessageReceived)
	evs[1].Type = sdk.TypeStatusRead
	res := c.Deliver(context.Background(), evs)
	if res[0].Outcome != sdk.Delivered {
		t.Fatalf("%+v", res[0])
	}
	if r := res[1]; r.Outcome != sdk.Failed || !strings.Contains(r.Error, "no JetStream stream captures subject wahub.status.read") {
		t.Fatalf("%+v, want a dead letter naming the subject", r)
	}
}

func TestCheck(t *testing.T) {
	s := startServer(t, natstest.WithToken("s3cret"))
	addStream(t, s, "WAHUB", "wahub.>")
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want string // "" = valid
	}{
		{"right token", map[string]any{"url": s.URL(), "subject": "wahub.{type}", "token": "s3cret"}, ""},
		{"wrong token", map[string]any{"url": s.URL(), "subject": "wahub.events", "token": "nope"}, "refused the credentials"},
		{"unreachable server", map[string]any{"url": "nats://127.0.0.1:1", "subject": "wahub.events"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := streamtest.Configure(t, nats.New, tc.cfg, true)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("check: %v, want %q", err, tc.want)
			}
		})
	}
}

// A server that goes away makes batches retry, held behind each
// conversation's first event; once it is back everything is stored
// exactly once.
func TestServerDownRetriesAndDeliversWhenBack(t *testing.T) {
	s := startServer(t)
	addStream(t, s, "WAHUB", "wahub.>")
	c := streamtest.MustConfigure(t, nats.New, map[string]any{"url": s.URL(), "subject": "wahub.events", "delivery_timeout": "300ms"})
	evs := streamtest.Events(20, 4, sdk.TypeMessageReceived)
	streamtest.MustDeliver(t, c, evs[:4])
	s.Stop()
	streamtest.WantHeld(t, c.Deliver(context.Background(), evs[4:]), 4, 12)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	streamtest.Redeliver(t, c, evs[4:], 100)
	seen := map[string]int{}
	for _, m := range messages(t, s, "WAHUB") {
		seen[m.Headers["Nats-Msg-Id"]]++
	}
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("%s stored %d times, want once", ev.ID, seen[ev.ID])
		}
	}
}

func natsStart(b *testing.B) (*natstest.Server, error) { return natstest.Start(b.TempDir()) }
