package slack

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	var fake *slacktest.Server // the fake of the latest New
	sdktest.Suite{
		Name:         "slack",
		RequiredKeys: []string{"token", "signing_secret", "channel"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			fake = slacktest.NewServer()
			srv := sdktest.Serve(t, fake)
			return New(), configJSON(t, srv.URL+"/", nil)
		},
		BadConfig: json.RawMessage(`{"token": "xoxb-1", "signing_secret": "s", "channel": "#support"}`),
		// The batch was delivered twice: Slack must hold each effect once.
		// Ana: root (e1) + button click (e3) + image (e4); Bruno: root
		// (e2) + his opt-out noted in his thread (e6). The status of an
		// unknown message and the account-level field are skipped.
		AfterRedelivery: func(t *testing.T) {
			roots := fake.Roots(defaultChan)
			if len(roots) != 2 {
				t.Fatalf("%d roots, want 2: %+v", len(roots), fake.Messages())
			}
			// The two conversations are posted concurrently: either may
			// come first.
			if strings.Contains(roots[0].Text, "Bruno Lima") {
				roots[0], roots[1] = roots[1], roots[0]
			}
			if !strings.Contains(roots[0].Text, "Ana Souza") || !strings.Contains(roots[1].Text, "Bruno Lima") {
				t.Errorf("roots %q, %q: want Ana's and Bruno's", roots[0].Text, roots[1].Text)
			}
			if got := fake.Replies(defaultChan, roots[0].TS); len(got) != 2 {
				t.Errorf("Ana's thread has %d replies, want 2 (button, image): %+v", len(got), got)
			}
			if got := fake.Replies(defaultChan, roots[1].TS); len(got) != 1 || !strings.Contains(got[0].Text, "opted out") {
				t.Errorf("Bruno's thread: %+v, want the opt-out noted once", got)
			}
			if n := len(fake.Messages()); n != 5 {
				t.Errorf("%d messages posted in all, want 5", n)
			}
		},
	}.Run(t)
}

func TestConfigure(t *testing.T) {
	base := func(extra string) json.RawMessage {
		return json.RawMessage(`{"token": "xoxb-secret-token-value", "signing_secret": "very-secret-value", "channel": "C0SUPPORT"` + extra + `}`)
	}
	cases := []sdktest.ConfigCase{
		{"minimal", string(base("")), ""},
		{"channels only", `{"token": "xoxb-t", "signing_secret": "s", "channels": {"billing": "C0BILLING"}}`, ""},
		{"all keys", string(base(`, "channels": {"billing": "C0B"}, "api_url": "http://127.0.0.1:1/api", "show_name": false, "show_number": "last4", "statuses": "off", "timeout": "3s"`)), ""},
		{"no token", `{"signing_secret": "s", "channel": "C1"}`, "connectors.slack.config.token: required"},
		{"app token", `{"token": "xapp-1-secret", "signing_secret": "s", "channel": "C1"}`, "config.token: this is an app-level token"},
		{"no secret", `{"token": "xoxb-t", "channel": "C1"}`, "connectors.slack.config.signing_secret: required"},
		{"no channel", `{"token": "xoxb-t", "signing_secret": "s"}`, "connectors.slack.config.channel: required"},
		{"channel name", `{"token": "xoxb-t", "signing_secret": "s", "channel": "#support"}`, "config.channel: \"#support\": use the channel ID"},
		{"team channel empty", string(base(`, "channels": {"sales": ""}`)), "config.channels.sales: empty"},
		{"team channel name", string(base(`, "channels": {"sales": "#sales"}`)), "config.channels.sales:"},
		{"bad api_url", string(base(`, "api_url": "slack.com/api"`)), "config.api_url: must be an absolute"},
		{"bad show_number", string(base(`, "show_number": "partial"`)), "config.show_number: \"partial\" is not one of"},
		{"bad statuses", string(base(`, "statuses": "lines"`)), "config.statuses:"},
		{"bad timeout", string(base(`, "timeout": "soon"`)), "config.timeout:"},
		{"unknown key", string(base(`, "sokcet_mode": true`)), "connectors.slack.config.sokcet_mode: unknown key"},
		{"socket mode", `{"token": "xoxb-t", "socket_mode": true, "app_token": "xapp-1-secret", "channel": "C1"}`, ""},
		{"socket mode without app token", string(base(`, "socket_mode": true`)), "connectors.slack.config.app_token: required with socket_mode: true"},
		{"socket mode with a bot token", string(base(`, "socket_mode": true, "app_token": "xoxb-secret-token-value"`)), "config.app_token: must be an app-level token"},
		{"app token without socket mode", string(base(`, "app_token": "xapp-1-secret"`)), "config.app_token: only used with socket_mode: true"},
		{"wrong type", string(base(`, "channels": ["C1"]`)), "connectors.slack.config.channels: expected"},
	}
	sdktest.CheckConfigs(t, New, "slack", cases, "secret-token-value", "very-secret-value", "xapp-1-secret")
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.c.Health(context.Background()); err != nil {
		t.Fatalf("Health: %v", err)
	}
	e.fake.SetToken("xoxb-rotated")
	err := e.c.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || !strings.Contains(err.Error(), "connectors.slack.config.token") {
		t.Fatalf("Health with a revoked token: %v, want invalid_auth naming config.token", err)
	}
	if err := New().(sdk.HealthChecker).Health(context.Background()); err == nil {
		t.Error("Health before Configure: no error")
	}
}

func TestDescribe(t *testing.T) {
	d := New().Describe()
	if d.Name != Name || d.Version != Version {
		t.Errorf("Describe = %+v", d)
	}
	caps := sdk.Capabilities(New())
	if strings.Join(caps, ",") != "hooks,health" {
		t.Errorf("capabilities %v, want hooks and health", caps)
	}
}

// The acceptance scenario, with the connector served over gRPC
// as the hub runs it: three messages of one customer make one root and
// two replies; a second customer gets a second root; a signed agent reply
// delivered three times reaches the customer once; a wrong signature is
// refused; a restarted plugin keeps using the thread.
func TestEndToEndOverGRPC(t *testing.T) {
	fake := slacktest.NewServer(slacktest.WithClock(clock))
	srv := sdktest.Serve(t, fake)
	cfg := configJSON(t, srv.URL+"/api/", nil)
	host := sdktest.NewFakeHost()
	ctx := context.Background()
	plugin := func() *sdk.Remote {
		c := New().(*connector)
		c.now = clock
		r := sdktest.Dial(t, c)
		if err := r.Configure(ctx, sdk.Config{Name: "slack", Raw: cfg}, host); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := plugin()
	results, err := r.Deliver(ctx, []sdk.Event{
		inbound("a1", ana, "support", "um"), inbound("a2", ana, "support", "dois"), inbound("a3", ana, "support", "três"),
		inbound("b1", bruno, "support", "oi"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range results {
		if res.Outcome != sdk.Delivered {
			t.Errorf("%s: %s %s", res.EventID, res.Outcome, res.Error)
		}
	}
	roots := fake.Roots(defaultChan)
	if len(roots) != 2 {
		t.Fatalf("%d roots, want 2", len(roots))
	}
	anaRoot := roots[0]
	if !strings.Contains(anaRoot.Text, "Ana") {
		anaRoot = roots[1]
	}
	if n := len(fake.Replies(defaultChan, anaRoot.TS)); n != 2 {
		t.Errorf("%d replies in Ana's thread, want 2", n)
	}

	_, body := fake.HumanReply("Ev0ACCEPT", defaultChan, anaRoot.TS, "U0AGENT", "Olá Ana!")
	bad := slacktest.SignedEvent("wrong-secret", fixedNow, body)
	if resp, err := r.HandleHook(ctx, &sdk.HookRequest{Method: "POST", Path: "/hooks/slack", Header: bad, Body: body}); err != nil || resp.Status != 401 {
		t.Fatalf("wrong signature: %v %+v", err, resp)
	}
	for retry := range 3 {
		h := slacktest.SignedEvent(secret, fixedNow, body)
		if retry > 0 {
			h.Set(slacktest.HeaderRetryNum, strconv.Itoa(retry))
		}
		resp, err := r.HandleHook(ctx, &sdk.HookRequest{Method: "POST", Path: "/hooks/slack", Header: h, Body: body})
		if err != nil || resp.Status != 200 {
			t.Fatalf("delivery %d: %v %+v", retry, err, resp)
		}
	}
	if sent := host.Sent(); len(sent) != 1 || sent[0].To != ana.WAID || sent[0].Text != "Olá Ana!" {
		t.Fatalf("host got %+v, want one message to Ana", sent)
	}

	r = plugin() // killed and restarted
	if _, err := r.Deliver(ctx, []sdk.Event{inbound("a4", ana, "support", "quatro")}); err != nil {
		t.Fatal(err)
	}
	if len(fake.Roots(defaultChan)) != 2 || len(fake.Replies(defaultChan, anaRoot.TS)) != 4 {
		t.Errorf("after a restart: %d roots, %d messages in Ana's thread; want 2 and 4 (3 customer, 1 agent)",
			len(fake.Roots(defaultChan)), len(fake.Replies(defaultChan, anaRoot.TS)))
	}
}
