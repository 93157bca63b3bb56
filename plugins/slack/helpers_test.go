package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

var fixedNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

const (
	secret      = slacktest.DefaultSigningSecret
	defaultChan = "C0SUPPORT"
	billingChan = "C0BILLING"
	phoneID     = "106540352242922"
)

// testEnv is a connector configured directly (not over gRPC) against a
// fake Slack, with a fake host whose KV outlives connectors.
type testEnv struct {
	t    *testing.T
	fake *slacktest.Server
	srv  *httptest.Server
	host *sdktest.FakeHost
	cfg  json.RawMessage
	c    *connector
}

func configJSON(t testing.TB, apiURL string, extra map[string]any) json.RawMessage {
	t.Helper()
	return sdktest.ConfigJSON(t, map[string]any{
		"token": slacktest.DefaultToken, "signing_secret": secret, "api_url": apiURL,
		"channel": defaultChan, "channels": map[string]string{"billing": billingChan},
	}, extra)
}

func newEnv(t *testing.T, extra map[string]any) *testEnv {
	t.Helper()
	fake := slacktest.NewServer(slacktest.WithClock(clock))
	srv := sdktest.Serve(t, fake)
	e := &testEnv{t: t, fake: fake, srv: srv, host: sdktest.NewFakeHost(), cfg: configJSON(t, srv.URL+"/api/", extra)}
	e.c = e.start()
	return e
}

// start configures a new connector on the same host: a plugin restart.
func (e *testEnv) start() *connector {
	e.t.Helper()
	c := New().(*connector)
	c.now = clock
	if err := c.Configure(context.Background(), sdk.Config{Name: "slack", Raw: e.cfg}, e.host); err != nil {
		e.t.Fatalf("configure: %v", err)
	}
	return c
}

func (e *testEnv) deliver(events ...sdk.Event) map[string]sdk.Result {
	e.t.Helper()
	return deliverWith(e.t, e.c, events...)
}

func deliverWith(t *testing.T, c *connector, events ...sdk.Event) map[string]sdk.Result {
	t.Helper()
	results := c.Deliver(context.Background(), events)
	if len(results) != len(events) {
		t.Fatalf("%d results for %d events", len(results), len(events))
	}
	byID := map[string]sdk.Result{}
	for _, r := range results {
		byID[r.EventID] = r
	}
	for _, ev := range events {
		if _, ok := byID[ev.ID]; !ok {
			t.Fatalf("no result for %s", ev.ID)
		}
	}
	return byID
}

func (e *testEnv) wantOutcome(res map[string]sdk.Result, want sdk.Outcome, ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if res[id].Outcome != want {
			e.t.Errorf("%s: %s (%s), want %s", id, res[id].Outcome, res[id].Error, want)
		}
	}
}

// hook sends a signed Events API request, as Slack would, at fixedNow.
func (e *testEnv) hook(body []byte, retry int) *sdk.HookResponse {
	e.t.Helper()
	h := slacktest.SignedEvent(secret, fixedNow, body)
	if retry > 0 {
		h.Set(slacktest.HeaderRetryNum, fmt.Sprint(retry))
	}
	resp, err := e.c.HandleHook(context.Background(), &sdk.HookRequest{Method: http.MethodPost, Path: "/hooks/slack", Header: h, Body: body})
	if err != nil {
		e.t.Fatalf("HandleHook: %v", err)
	}
	return resp
}

var (
	ana   = &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"}
	bruno = &sdk.Contact{WAID: "5521998760002", Name: "Bruno Lima"}
	biz   = &sdk.Business{WABAID: "102290129340398", PhoneNumberID: phoneID, DisplayPhoneNumber: "15550783881"}
)

func convOf(c *sdk.Contact) string { return "conv_" + c.WAID }

// inbound is a text message.received of c routed to team.
func inbound(id string, c *sdk.Contact, team, text string) sdk.Event {
	return sdk.Event{
		ID: id, Type: sdk.TypeMessageReceived, OccurredAt: fixedNow, ReceivedAt: fixedNow,
		Business: biz, Contact: c, ConversationID: convOf(c),
		Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: text},
		Route:   &sdk.Route{Rule: "rule-" + team, Team: team, Connectors: []string{"slack"}},
	}
}

// blocksText is every text of a message's blocks, for substring checks.
func blocksText(t *testing.T, m slacktest.Message) string {
	t.Helper()
	var blocks any
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
		t.Fatalf("blocks %s: %v", m.Blocks, err)
	}
	var sb strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["text"].(string); ok {
				sb.WriteString(s + "\n")
			}
			for k, x := range v {
				if k != "text" {
					walk(x)
				} else if _, ok := x.(string); !ok {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(blocks)
	return sb.String()
}

func slacktestMessage(blocks []byte) slacktest.Message { return slacktest.Message{Blocks: blocks} }

// settings is the current configuration's settings, nil before Configure.
func (c *connector) settings() (s *settings) {
	c.With(func(i *instance) { s = i.s })
	return s
}
