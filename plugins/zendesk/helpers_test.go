package zendesk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/zendesk"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

var fixedNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// injected is what an interceptor does with one request instead of (or
// besides) the fake: answer status, or let the fake handle it and lose
// the answer (the client times out).
type injected struct {
	status     int
	retryAfter string
	body       string
	lose       bool
}

// env is a connector over gRPC, configured against a fake Zendesk on a
// loopback server, sharing one clock.
type env struct {
	t         *testing.T
	clock     *sdktest.Clock
	fake      *zendesktest.Server
	srv       *httptest.Server
	intercept atomic.Pointer[func(*http.Request) *injected]
	c         sdk.Connector
	r         *sdk.Remote
	host      *sdktest.FakeHost
}

type envOptions struct {
	config map[string]any
	host   sdk.Host // instead of the FakeHost
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: sdktest.NewClock(fixedNow)}
	e.fake = zendesktest.NewServer(zendesktest.WithClock(e.clock.Now))
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := e.intercept.Load(); f != nil {
			if inj := (*f)(r); inj != nil {
				if inj.lose {
					e.fake.ServeHTTP(httptest.NewRecorder(), r)
					<-r.Context().Done()
					return
				}
				if inj.retryAfter != "" {
					w.Header().Set("Retry-After", inj.retryAfter)
				}
				w.WriteHeader(inj.status)
				fmt.Fprint(w, inj.body)
				return
			}
		}
		e.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.c = zendesk.New()
	zendesk.SetClock(e.c, e.clock.Now)
	cfg := configJSON(t, e.srv.URL, o.config)
	if o.host != nil {
		e.r = sdktest.Dial(t, e.c)
		if err := e.r.Configure(context.Background(), sdk.Config{Name: "zendesk", Raw: cfg}, o.host); err != nil {
			t.Fatalf("configure: %v", err)
		}
	} else {
		e.r, e.host = sdktest.Start(t, e.c, "zendesk", cfg)
	}
	return e
}

// setIntercept routes requests through f until cleared with nil.
func (e *env) setIntercept(f func(*http.Request) *injected) {
	if f == nil {
		e.intercept.Store(nil)
		return
	}
	e.intercept.Store(&f)
}

func configJSON(t testing.TB, apiURL string, extra map[string]any) json.RawMessage {
	t.Helper()
	return sdktest.ConfigJSON(t, map[string]any{
		"api_url": apiURL, "email": zendesktest.DefaultEmail, "token": zendesktest.DefaultToken,
		"webhook_secret": zendesktest.DefaultWebhookSecret,
	}, extra)
}

// deliver runs a batch and returns the results by event id.
func (e *env) deliver(events ...sdk.Event) map[string]sdk.Result {
	e.t.Helper()
	return sdktest.Deliver(e.t, e.r, events...)
}

// mustDeliver delivers and fails the test unless every event is delivered.
func (e *env) mustDeliver(events ...sdk.Event) {
	e.t.Helper()
	sdktest.MustDeliver(e.t, e.r, events...)
}

// onlyTicket returns the fake's one ticket.
func (e *env) onlyTicket() zendesktest.Ticket {
	e.t.Helper()
	ts := e.fake.Tickets()
	if len(ts) != 1 {
		e.t.Fatalf("%d tickets, want 1: %+v", len(ts), ts)
	}
	return ts[0]
}

// hook sends the signed webhook for a comment to the connector.
func (e *env) hook(ticketID, commentID int64) *sdk.HookResponse {
	e.t.Helper()
	body := zendesktest.WebhookBody(ticketID, commentID)
	return e.hookRaw(e.fake.SignWebhook(body), body)
}

func (e *env) hookRaw(h http.Header, body []byte) *sdk.HookResponse {
	e.t.Helper()
	resp, err := e.r.HandleHook(context.Background(), &sdk.HookRequest{Method: http.MethodPost, Path: "/hooks/zendesk", Header: h, Body: body})
	if err != nil {
		e.t.Fatalf("HandleHook: %v", err)
	}
	return resp
}

var (
	biz   = &sdk.Business{WABAID: "102290129340398", PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881"}
	ana   = &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"}
	bruno = &sdk.Contact{WAID: "5521998760002", Name: "Bruno Lima"}
	route = &sdk.Route{Rule: "billing", Team: "billing", Connectors: []string{"zendesk"}}
)

var seq atomic.Int64

// text is a customer's text message.
func text(id, conv string, who *sdk.Contact, body string) sdk.Event {
	n := seq.Add(1)
	return sdk.Event{
		ID: id, Seq: n, Type: sdk.TypeMessageReceived, OccurredAt: fixedNow, ReceivedAt: fixedNow,
		Business: biz, Contact: who, ConversationID: conv, Route: route,
		Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: body},
		Raw:     json.RawMessage(`{}`),
	}
}

// bodies lists a ticket's comments as "public|private author: body".
func bodies(t zendesktest.Ticket) []string {
	var out []string
	for _, c := range t.Comments {
		vis := "public"
		if !c.Public {
			vis = "private"
		}
		out = append(out, fmt.Sprintf("%s %d: %s", vis, c.AuthorID, c.Body))
	}
	return out
}

func contains(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not contain %q", what, s, p)
		}
	}
}
