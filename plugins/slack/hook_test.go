package slack

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
)

func TestHookSignature(t *testing.T) {
	e := newEnv(t, nil)
	body := slacktest.URLVerification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
	sign := func(secret string, at time.Time, b []byte) http.Header { return slacktest.SignedEvent(secret, at, b) }
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		method string
		status int
	}{
		{"good", sign(secret, fixedNow, body), body, "", 200},
		{"4 minutes old", sign(secret, fixedNow.Add(-4*time.Minute), body), body, "", 200},
		{"wrong secret", sign("another-secret", fixedNow, body), body, "", 401},
		{"body changed", sign(secret, fixedNow, body), append([]byte(" "), body...), "", 401},
		{"stale: 6 minutes old", sign(secret, fixedNow.Add(-6*time.Minute), body), body, "", 401},
		{"from the future", sign(secret, fixedNow.Add(6*time.Minute), body), body, "", 401},
		{"no signature", http.Header{"X-Slack-Request-Timestamp": {"1795521600"}}, body, "", 401},
		{"no headers", http.Header{}, body, "", 401},
		{"not v0", http.Header{"X-Slack-Request-Timestamp": {"1795521600"}, "X-Slack-Signature": {"v1=abc"}}, body, "", 401},
		{"GET", sign(secret, fixedNow, body), body, http.MethodGet, 405},
		{"not JSON", sign(secret, fixedNow, []byte("hello")), []byte("hello"), "", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			resp, err := e.c.HandleHook(context.Background(), &sdk.HookRequest{Method: method, Header: tc.header, Body: tc.body})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.Status, resp.Body, tc.status)
			}
			if tc.status == 200 && string(resp.Body) != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
				t.Errorf("url_verification answered %q, want the challenge", resp.Body)
			}
		})
	}
	if len(e.host.Sent()) != 0 {
		t.Error("a refused request sent something")
	}
}

// threadEnv is an env with Ana's conversation in a thread.
func threadEnv(t *testing.T) (*testEnv, slacktest.Message) {
	t.Helper()
	e := newEnv(t, nil)
	e.deliver(inbound("a1", ana, "support", "Olá"))
	return e, e.fake.Roots(defaultChan)[0]
}

func TestHookReplySendsOnce(t *testing.T) {
	e, root := threadEnv(t)
	msg, body := e.fake.HumanReply("Ev0001", defaultChan, root.TS, "U0AGENT", "Oi Ana, *já* vi seu pedido &amp; <https://acme.example/p/1|o link>")
	// Slack retries (it thought the first answer was late): 3 deliveries.
	for retry := range 3 {
		if resp := e.hook(body, retry); resp.Status != 200 {
			t.Fatalf("delivery %d: %d %s", retry, resp.Status, resp.Body)
		}
	}
	sent := e.host.Sent()
	if len(sent) != 1 {
		t.Fatalf("host got %d messages, want 1: %+v", len(sent), sent)
	}
	want := sdk.OutboundMessage{To: ana.WAID, PhoneNumberID: phoneID, Text: "Oi Ana, *já* vi seu pedido & o link (https://acme.example/p/1)", IdempotencyKey: "Ev0001"}
	if !reflect.DeepEqual(sent[0], want) {
		t.Errorf("sent %+v\nwant %+v", sent[0], want)
	}
	// The agent's message is remembered under the outbox id.
	var ref msgRef
	r := &run{c: e.c, s: e.c.settings(), kv: e.host.KV()}
	if found, _ := r.getJSON(context.Background(), outKey("msg_Ev0001"), &ref); !found || ref != (msgRef{Channel: defaultChan, ThreadTS: root.TS, TS: msg.TS}) {
		t.Errorf("out: %+v (found %v)", ref, found)
	}
	// Nothing was posted back in Slack.
	if n := len(e.fake.Replies(defaultChan, root.TS)); n != 1 {
		t.Errorf("%d messages in the thread, want the agent's only", n)
	}
}

func TestHookIgnores(t *testing.T) {
	e, root := threadEnv(t)
	ev := func(m slacktest.MessageEvent) []byte {
		if m.Channel == "" {
			m.Channel = defaultChan
		}
		if m.TS == "" {
			m.TS = "1795521700.000100"
		}
		return slacktest.EventCallback("Ev-"+m.Text, fixedNow, m)
	}
	cases := []struct {
		name string
		body []byte
	}{
		{"internal note", ev(slacktest.MessageEvent{User: "U1", Text: "note: cliente difícil", ThreadTS: root.TS})},
		{"internal note, any case and spaces", ev(slacktest.MessageEvent{User: "U1", Text: "  NOTE: ligar amanhã", ThreadTS: root.TS})},
		{"bot message (our own post-back)", ev(slacktest.MessageEvent{BotID: "B1", SubType: "bot_message", Text: "bot", ThreadTS: root.TS})},
		{"bot with a user", ev(slacktest.MessageEvent{User: "U1", BotID: "B1", Text: "app", ThreadTS: root.TS})},
		{"edit", ev(slacktest.MessageEvent{User: "U1", SubType: "message_changed", Text: "edit", ThreadTS: root.TS})},
		{"deletion", ev(slacktest.MessageEvent{SubType: "message_deleted", Text: "del", ThreadTS: root.TS})},
		{"top-level message in the channel", ev(slacktest.MessageEvent{User: "U1", Text: "bom dia time"})},
		{"thread of no conversation", ev(slacktest.MessageEvent{User: "U1", Text: "other", ThreadTS: "1795521000.000001"})},
		{"same thread ts in another channel", ev(slacktest.MessageEvent{User: "U1", Text: "elsewhere", ThreadTS: root.TS, Channel: "C0OTHER"})},
		{"only a mention", ev(slacktest.MessageEvent{User: "U1", Text: "<@U0WAHUBBOT>", ThreadTS: root.TS})},
		{"other event type", []byte(`{"type":"event_callback","event_id":"EvX","event":{"type":"reaction_added","user":"U1"}}`)},
		{"app_rate_limited", []byte(`{"type":"app_rate_limited","minute_rate_limited":1518467820}`)},
		{"interactivity form", []byte("payload=%7B%22type%22%3A%22block_actions%22%7D")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := slacktest.SignedEvent(secret, fixedNow, tc.body)
			if strings.HasPrefix(string(tc.body), "payload=") {
				h.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, _ := e.c.HandleHook(context.Background(), &sdk.HookRequest{Method: http.MethodPost, Header: h, Body: tc.body})
			if resp.Status != 200 {
				t.Errorf("status %d %s, want 200 (so Slack does not retry)", resp.Status, resp.Body)
			}
		})
	}
	if sent := e.host.Sent(); len(sent) != 0 {
		t.Errorf("sent %+v", sent)
	}
	if n := len(e.fake.Messages()); n != 1 {
		t.Errorf("%d Slack messages, want the root only", n)
	}
}

func TestHookRefusalPostedBack(t *testing.T) {
	e, root := threadEnv(t)
	e.host.Send = func(sdk.OutboundMessage) (sdk.SendResult, error) {
		return sdk.SendResult{}, &sdk.RefusedError{Code: "outside_window", Message: "the 24-hour window is closed; only templates can be sent"}
	}
	_, body := e.fake.HumanReply("EvLate", defaultChan, root.TS, "U0AGENT", "Ainda precisa de ajuda?")
	for retry := range 3 {
		if resp := e.hook(body, retry); resp.Status != 200 {
			t.Fatalf("status %d", resp.Status)
		}
	}
	var notices []slacktest.Message
	for _, m := range e.fake.Replies(defaultChan, root.TS) {
		if m.BotID != "" {
			notices = append(notices, m)
		}
	}
	if len(notices) != 1 {
		t.Fatalf("%d notices in the thread, want 1: %+v", len(notices), notices)
	}
	if txt := blocksText(t, notices[0]); !strings.Contains(txt, ":warning: Not delivered: the 24-hour window is closed; only templates can be sent.") || !strings.Contains(txt, "outside_window") {
		t.Errorf("notice %q", txt)
	}
}

func TestHookTransientFailureRetried(t *testing.T) {
	e, root := threadEnv(t)
	calls := 0
	e.host.Send = func(m sdk.OutboundMessage) (sdk.SendResult, error) {
		calls++
		if calls == 1 {
			return sdk.SendResult{}, errors.New("hub store busy")
		}
		return sdk.SendResult{ID: "msg_1", State: "queued"}, nil
	}
	_, body := e.fake.HumanReply("EvT", defaultChan, root.TS, "U0AGENT", "resposta")
	if resp := e.hook(body, 0); resp.Status != http.StatusServiceUnavailable {
		t.Fatalf("first: %d, want 503 so that Slack retries", resp.Status)
	}
	if resp := e.hook(body, 1); resp.Status != 200 {
		t.Fatalf("retry: %d", resp.Status)
	}
	if resp := e.hook(body, 2); resp.Status != 200 || calls != 2 {
		t.Fatalf("second retry: %d, SendMessage called %d times, want 2", resp.Status, calls)
	}
	if len(e.host.Sent()) != 1 {
		t.Errorf("sent %d", len(e.host.Sent()))
	}
}

func TestHookClaimInProgress(t *testing.T) {
	e, root := threadEnv(t)
	_, body := e.fake.HumanReply("EvP", defaultChan, root.TS, "U0AGENT", "resposta")
	// The first delivery is still being handled (its claim is fresh):
	// the retry is acknowledged without a second send.
	e.host.KV().Put(context.Background(), hookKey("EvP"), []byte(`{"at":`+itoa(fixedNow.Add(-5*time.Second).Unix())+`}`))
	if resp := e.hook(body, 1); resp.Status != 200 || len(e.host.Sent()) != 0 {
		t.Fatalf("status %d, sent %d", resp.Status, len(e.host.Sent()))
	}
	// A claim from a handler that died long ago is taken over.
	e.host.KV().Put(context.Background(), hookKey("EvP"), []byte(`{"at":`+itoa(fixedNow.Add(-2*claimLease).Unix())+`}`))
	if resp := e.hook(body, 2); resp.Status != 200 || len(e.host.Sent()) != 1 {
		t.Fatalf("status %d, sent %d", resp.Status, len(e.host.Sent()))
	}
}

func TestHookThreadBroadcast(t *testing.T) {
	e, root := threadEnv(t)
	body := slacktest.EventCallback("EvB", fixedNow, slacktest.MessageEvent{User: "U1", SubType: "thread_broadcast", Text: "para todos", TS: "1795521601.000001", ThreadTS: root.TS, Channel: defaultChan})
	e.hook(body, 0)
	if len(e.host.Sent()) != 1 {
		t.Error("a reply also sent to the channel was not sent to the customer")
	}
}

func TestHookBeforeConfigure(t *testing.T) {
	resp, err := New().(sdk.HookHandler).HandleHook(context.Background(), &sdk.HookRequest{Method: http.MethodPost})
	if err != nil || resp.Status != http.StatusServiceUnavailable {
		t.Errorf("%v %+v", err, resp)
	}
}

func TestToWhatsApp(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"*bold* _it_ ~strike~ `code`", "*bold* _it_ ~strike~ `code`"},
		{"a &lt;b&gt; &amp;amp; c", "a <b> &amp; c"},
		{"<@U123> obrigado", "obrigado"},
		{"fale com <@U123|maria>", "fale com @maria"},
		{"veja <#C123|faturas>", "veja #faturas"},
		{"<!here> atenção", "atenção"},
		{"<https://acme.example/x>", "https://acme.example/x"},
		{"<https://acme.example/x|acme.example/x>", "acme.example/x (https://acme.example/x)"},
		{"<https://acme.example/x|https://acme.example/x>", "https://acme.example/x"},
		{"<mailto:ana@acme.example|ana@acme.example>", "ana@acme.example"},
		{"<tel:+5511987650001|ligue>", "ligue (+5511987650001)"},
		{"  espaços  ", "espaços"},
	}
	for _, tc := range cases {
		if got := toWhatsApp(tc.in); got != tc.want {
			t.Errorf("toWhatsApp(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsNote(t *testing.T) {
	for in, want := range map[string]bool{"note: x": true, "Note:x": true, " NOTE: x": true, "note x": false, "notes: x": false, "a note: x": false, "": false, "note": false} {
		if isNote(in) != want {
			t.Errorf("isNote(%q) = %v", in, !want)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
