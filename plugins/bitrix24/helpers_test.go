package bitrix24

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// env is a fake portal on a virtual clock, and a fake hub.
type env struct {
	t     *testing.T
	fake  *bitrix24test.Server
	url   string
	clock *sdktest.Clock
	host  *sdktest.FakeHost
}

func newEnv(t *testing.T, opts ...bitrix24test.Option) *env {
	t.Helper()
	clk := sdktest.NewClock(t0)
	fake := bitrix24test.NewServer(append([]bitrix24test.Option{bitrix24test.WithClock(clk.Now)}, opts...)...)
	srv := sdktest.Serve(t, fake)
	return &env{t: t, fake: fake, url: srv.URL, clock: clk, host: sdktest.NewFakeHost()}
}

func (e *env) webhookURL() string { return e.url + e.fake.WebhookPath() }

// config is a valid configuration pointing at the fake; extra keys merge.
func (e *env) config(extra map[string]any) json.RawMessage {
	return sdktest.ConfigJSON(e.t, map[string]any{"webhook_url": e.webhookURL()}, extra)
}

// start runs a connector over gRPC, as the hub does, on the virtual
// clock and the env's host (so that a second start is a restarted plugin
// with the same KV).
func (e *env) start(cfg json.RawMessage) (*sdk.Remote, *connector) {
	e.t.Helper()
	c := New().(*connector)
	c.clock = e.clock
	r := sdktest.Dial(e.t, c)
	if err := r.Configure(context.Background(), sdk.Config{Name: "crm", Raw: cfg}, e.host); err != nil {
		e.t.Fatalf("configure: %v", err)
	}
	return r, c
}

func deliver(t *testing.T, r *sdk.Remote, events ...sdk.Event) map[string]sdk.Result {
	t.Helper()
	return sdktest.Deliver(t, r, events...)
}

func wantOutcome(t *testing.T, res map[string]sdk.Result, id string, want sdk.Outcome) sdk.Result {
	t.Helper()
	r, ok := res[id]
	if !ok {
		t.Fatalf("no result for %s", id)
	}
	if r.Outcome != want {
		t.Errorf("%s: outcome %s (%s), want %s", id, r.Outcome, r.Error, want)
	}
	return r
}

// msg is an inbound text message of customer wa in conversation conv.
func msg(id, wa, name, text string) sdk.Event {
	at := t0.Add(time.Duration(len(id)) * time.Second)
	return sdk.Event{
		ID: id, Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at,
		Business:       &sdk.Business{PhoneNumberID: "106540352242922"},
		Contact:        &sdk.Contact{WAID: wa, Name: name},
		ConversationID: "conv_" + wa,
		Message:        &sdk.Message{ID: "wamid." + id, Type: "text", Text: text},
		Route:          &sdk.Route{Rule: "default", Team: "sales"},
	}
}

func msgs(prefix, wa, name string, n int) []sdk.Event {
	var out []sdk.Event
	for i := 1; i <= n; i++ {
		out = append(out, msg(fmt.Sprintf("%s%02d", prefix, i), wa, name, fmt.Sprintf("message %d", i)))
	}
	return out
}

func commentsFor(fake *bitrix24test.Server, typ string, id int) []bitrix24test.Comment {
	var out []bitrix24test.Comment
	for _, c := range fake.Comments() {
		if c.EntityType == typ && c.EntityID == id {
			out = append(out, c)
		}
	}
	return out
}

// methods lists the REST methods the fake was called with, batches as
// "batch(m1,m2)".
func methods(fake *bitrix24test.Server) []string {
	var out []string
	for _, c := range fake.Calls() {
		m := c.Method
		if len(c.Commands) > 0 {
			m += "(" + strings.Join(c.Commands, ",") + ")"
		}
		out = append(out, m)
	}
	return out
}
