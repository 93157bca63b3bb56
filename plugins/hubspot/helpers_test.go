package hubspot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/hubspot"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

const token = "pat-na1-11111111-2222-3333-4444-555555555555"

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// env is a fake HubSpot on a loopback server, a fake hub and a clock.
type env struct {
	t    *testing.T
	fake *hubspottest.Server
	srv  *httptest.Server
	clk  *sdktest.Clock
	host *sdktest.FakeHost
}

func newEnv(t *testing.T, opts ...hubspottest.Option) *env {
	t.Helper()
	clk := sdktest.NewClock(t0)
	opts = append([]hubspottest.Option{hubspottest.WithClock(clk.Now), hubspottest.WithToken(token),
		hubspottest.WithContactProperties("tier")}, opts...)
	fake := hubspottest.NewServer(opts...)
	srv := sdktest.Serve(t, fake)
	return &env{t: t, fake: fake, srv: srv, clk: clk, host: sdktest.NewFakeHost()}
}

// config is a valid configuration pointing at the fake. Pacing is set
// high so that the real-time token bucket never slows these tests; the
// pacing itself is tested in a synctest bubble.
func (e *env) config(extra map[string]any) json.RawMessage {
	return sdktest.ConfigJSON(e.t, map[string]any{"token": token, "api_url": e.srv.URL, "requests_per_10s": 100000, "search_per_second": 10000}, extra)
}

// connector is a new connector instance (a fresh plugin process, as after
// a crash) configured against the fake, sharing the env's hub and KV.
func (e *env) connector(extra map[string]any) sdk.Connector {
	return e.connectorWithHost(e.host, extra)
}

func (e *env) connectorWithHost(host sdk.Host, extra map[string]any) sdk.Connector {
	e.t.Helper()
	c := hubspot.New()
	hubspot.SetClock(c, e.clk.Now)
	if err := c.Configure(context.Background(), sdk.Config{Name: "hubspot", Raw: e.config(extra)}, host); err != nil {
		e.t.Fatalf("configure: %v", err)
	}
	return c
}

func (e *env) kv(key string) string {
	v, _, err := e.host.KV().Get(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(v)
}

func deliver(t *testing.T, c sdk.Connector, events ...sdk.Event) map[string]sdk.Result {
	t.Helper()
	return sdktest.ByID(t, events, c.Deliver(context.Background(), events))
}

func wantOutcome(t *testing.T, res sdk.Result, want sdk.Outcome) {
	t.Helper()
	if res.Outcome != want {
		t.Fatalf("event %s: %s (%s), want %s", res.EventID, res.Outcome, res.Error, want)
	}
}

var (
	ana   = &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"}
	bruno = &sdk.Contact{WAID: "5521998760002", Name: "Bruno Lima"}
	carla = &sdk.Contact{WAID: "5531997770003", Name: "Carla"}
	biz   = &sdk.Business{WABAID: "102290129340398", PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881"}
)

func conv(ct *sdk.Contact) string { return "conv_" + ct.WAID }

// inbound is a text message from ct at t0 + n seconds.
func inbound(id string, ct *sdk.Contact, n int, text string) sdk.Event {
	at := t0.Add(time.Duration(n) * time.Second)
	return sdk.Event{ID: id, Seq: int64(n), Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at.Add(time.Second),
		Business: biz, Contact: ct, ConversationID: conv(ct),
		Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: text},
		Route:   &sdk.Route{Rule: "default", Team: "sales", Connectors: []string{"hubspot"}}}
}

// outbound is a message.sent to ct.
func outbound(id string, ct *sdk.Contact, n int, text string) sdk.Event {
	ev := inbound(id, ct, n, text)
	ev.Type = sdk.TypeMessageSent
	ev.Route = nil
	ev.Outbound = &sdk.Outbound{ID: "msg_" + id, Source: "connector:slack", IdempotencyKey: "slack-" + id}
	return ev
}

// handlerTransport serves requests with a handler in memory, for tests
// inside a synctest bubble, where a real socket would keep time still.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// flakyHost is the fake hub with a KV whose Put fails for some keys, as if
// the plugin died between writing to HubSpot and recording it.
type flakyHost struct {
	*sdktest.FakeHost
	failPut func(key string) bool
}

func (h *flakyHost) KV() sdk.KV { return &flakyKV{KV: h.FakeHost.KV(), failPut: h.failPut} }

type flakyKV struct {
	sdk.KV
	failPut func(key string) bool
}

func (k *flakyKV) Put(ctx context.Context, key string, value []byte) error {
	if k.failPut(key) {
		return errors.New("simulated crash before the KV write")
	}
	return k.KV.Put(ctx, key, value)
}

func (k *flakyKV) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	if old != nil && k.failPut(key) {
		return false, errors.New("simulated crash before the KV write")
	}
	return k.KV.CompareAndSwap(ctx, key, old, new)
}

func containsAll(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s %q does not contain %q", what, s, sub)
		}
	}
}

func commsOf(fake *hubspottest.Server, contactID string) []hubspottest.Record {
	var out []hubspottest.Record
	for _, r := range fake.Communications() {
		for _, a := range r.Associations {
			if a.ToID == contactID {
				out = append(out, r)
			}
		}
	}
	return out
}

var _ = fmt.Sprintf

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}
