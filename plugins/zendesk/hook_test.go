package zendesk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/zendesk"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// withTicket delivers Ana's first message and returns the ticket id.
func withTicket(t *testing.T, e *env) int64 {
	t.Helper()
	e.mustDeliver(text("evt_1", "conv_a", ana, "preciso de ajuda"))
	return e.onlyTicket().ID
}

// countSends makes the fake host count SendMessage calls that reach it.
func countSends(e *env, answer func(sdk.OutboundMessage) (sdk.SendResult, error)) *atomic.Int64 {
	var n atomic.Int64
	e.host.Send = func(m sdk.OutboundMessage) (sdk.SendResult, error) {
		n.Add(1)
		if answer != nil {
			return answer(m)
		}
		return sdk.SendResult{ID: "msg_" + m.IdempotencyKey, State: "queued"}, nil
	}
	return &n
}

func status(t *testing.T, resp *sdk.HookResponse, want int) {
	t.Helper()
	if resp.Status != want {
		t.Fatalf("status %d (%s), want %d", resp.Status, resp.Body, want)
	}
}

func TestAgentReplySentOnceEvenWhenDeliveredTwice(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	calls := countSends(e, nil)
	cid, err := e.fake.AgentComment(id, "Olá Ana, já verifiquei seu pedido.", true)
	if err != nil {
		t.Fatal(err)
	}
	status(t, e.hook(id, cid), 200)
	status(t, e.hook(id, cid), 200)
	sent := e.host.Sent()
	if len(sent) != 1 || calls.Load() != 1 {
		t.Fatalf("sent %+v (%d calls), want one message", sent, calls.Load())
	}
	want := sdk.OutboundMessage{To: ana.WAID, PhoneNumberID: biz.PhoneNumberID, Text: "Olá Ana, já verifiquei seu pedido.", IdempotencyKey: strconv.FormatInt(cid, 10)}
	if !reflect.DeepEqual(sent[0], want) {
		t.Errorf("sent %+v, want %+v", sent[0], want)
	}
	// The hub's message.sent for it comes back: already on the ticket.
	ev := sent0Event(want)
	if res := e.deliver(ev)[ev.ID]; res.Outcome != sdk.Skipped {
		t.Errorf("echo of our own reply: %s", res.Outcome)
	}
	if n := len(e.onlyTicket().Comments); n != 2 {
		t.Errorf("%d comments, want the customer's and the agent's", n)
	}
}

func sent0Event(m sdk.OutboundMessage) sdk.Event {
	ev := text("evt_echo", "conv_a", ana, m.Text)
	ev.Type = sdk.TypeMessageSent
	ev.Outbound = &sdk.Outbound{ID: "msg_" + m.IdempotencyKey, Source: "connector:zendesk", IdempotencyKey: m.IdempotencyKey}
	return ev
}

// The fake fires the trigger itself, over HTTP, as Zendesk does.
func TestWebhookFiredByFakeOverHTTP(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		resp, err := e.r.HandleHook(r.Context(), &sdk.HookRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header, Body: body})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
	}))
	defer hub.Close()
	e.fake.SetWebhookTarget(hub.URL + "/hooks/zendesk")
	if _, err := e.fake.AgentComment(id, "nota interna", false); err != nil {
		t.Fatal(err)
	}
	cid, err := e.fake.AgentComment(id, "Resposta pública", true)
	if err != nil {
		t.Fatal(err)
	}
	hooks := e.fake.Webhooks()
	if len(hooks) != 1 || hooks[0].CommentID != cid || hooks[0].Status != 200 {
		t.Fatalf("webhooks %+v, want one for the public comment, answered 200", hooks)
	}
	if sent := e.host.Sent(); len(sent) != 1 || sent[0].Text != "Resposta pública" {
		t.Errorf("sent %+v", sent)
	}
}

func TestWebhookSignatureChecks(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	calls := countSends(e, nil)
	cid, _ := e.fake.AgentComment(id, "Olá", true)
	body := zendesktest.WebhookBody(id, cid)
	good := e.fake.SignWebhook(body)
	with := func(f func(h http.Header)) http.Header { h := good.Clone(); f(h); return h }
	ts := fixedNow.Format(time.RFC3339)
	cases := []struct {
		name   string
		header http.Header
		body   []byte
		errHas string
	}{
		{"signed with another secret", with(func(h http.Header) { h.Set(zendesktest.HeaderSignature, zendesktest.Sign("not-the-secret", ts, body)) }), body, "signing secret"},
		{"body changed", good, []byte(strings.Replace(string(body), strconv.FormatInt(cid, 10), "1", 1)), "does not match"},
		{"timestamp changed", with(func(h http.Header) {
			h.Set(zendesktest.HeaderTimestamp, fixedNow.Add(time.Second).Format(time.RFC3339))
		}), body, "does not match"},
		{"no signature", with(func(h http.Header) { h.Del(zendesktest.HeaderSignature) }), body, "missing"},
		{"no timestamp", with(func(h http.Header) { h.Del(zendesktest.HeaderTimestamp) }), body, "missing"},
		{"stale", staleHeader(body, -10*time.Minute), body, "too far"},
		{"from the future", staleHeader(body, 10*time.Minute), body, "too far"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.hookRaw(tc.header, tc.body)
			status(t, resp, 401)
			contains(t, "answer", string(resp.Body), tc.errHas)
		})
	}
	if calls.Load() != 0 || len(e.host.Sent()) != 0 {
		t.Errorf("refused webhooks sent %d messages", calls.Load())
	}
	// Unix-seconds timestamps are accepted too.
	unix := strconv.FormatInt(fixedNow.Unix(), 10)
	h := http.Header{zendesktest.HeaderTimestamp: {unix}, zendesktest.HeaderSignature: {zendesktest.Sign(zendesktest.DefaultWebhookSecret, unix, body)}}
	status(t, e.hookRaw(h, body), 200)
	if len(e.host.Sent()) != 1 {
		t.Error("a valid webhook with a Unix timestamp sent nothing")
	}
}

func staleHeader(body []byte, by time.Duration) http.Header {
	ts := fixedNow.Add(by).Format(time.RFC3339)
	return http.Header{zendesktest.HeaderTimestamp: {ts}, zendesktest.HeaderSignature: {zendesktest.Sign(zendesktest.DefaultWebhookSecret, ts, body)}}
}

func TestVerifyKnownAnswer(t *testing.T) {
	// Computed independently: printf '%s' '2026-11-24T12:00:00Z{"a":1}' |
	// openssl dgst -sha256 -hmac secret -binary | base64
	const want = "EOugF+j4PDROd5V9tPceZtpZEYgVIm6kdujwXnHaDss="
	if got := zendesktest.Sign("secret", "2026-11-24T12:00:00Z", []byte(`{"a":1}`)); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	h := http.Header{zendesk.HeaderTimestamp: {"2026-11-24T12:00:00Z"}, zendesk.HeaderSignature: {want}}
	if err := zendesk.Verify([]byte("secret"), h, []byte(`{"a":1}`), fixedNow, time.Minute); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if err := zendesk.Verify([]byte("secret"), h, []byte(`{"a":2}`), fixedNow, time.Minute); !errors.Is(err, zendesk.ErrBadSignature) {
		t.Errorf("Verify of a changed body = %v", err)
	}
}

func TestWebhookIgnoresWhatIsNotAnAgentReply(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	calls := countSends(e, nil)

	note, _ := e.fake.AgentComment(id, "cliente VIP, cuidado", false)
	resp := e.hook(id, note)
	status(t, resp, 200)
	contains(t, "answer", string(resp.Body), "internal note")

	// The customer's own message, a public comment by the requester.
	e.mustDeliver(text("evt_2", "conv_a", ana, "alguma novidade?"))
	tk := e.onlyTicket()
	mine := tk.Comments[len(tk.Comments)-1].ID
	resp = e.hook(id, mine)
	status(t, resp, 200)
	contains(t, "answer", string(resp.Body), "customer")

	// A ticket wahub did not open (an email ticket) and an unknown comment.
	status(t, e.hook(99999, 1), 200)
	status(t, e.hook(id, 424242), 200)

	if calls.Load() != 0 {
		t.Errorf("%d messages sent", calls.Load())
	}
}

func TestWebhookWithoutCommentIDTakesLatestPublic(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	reply, _ := e.fake.AgentComment(id, "resposta", true)
	_, _ = e.fake.AgentComment(id, "nota depois", false)
	body := []byte(`{"ticket_id": "` + strconv.FormatInt(id, 10) + `", "comment_id": ""}`)
	status(t, e.hookRaw(e.fake.SignWebhook(body), body), 200)
	if sent := e.host.Sent(); len(sent) != 1 || sent[0].IdempotencyKey != strconv.FormatInt(reply, 10) {
		t.Errorf("sent %+v", sent)
	}
}

func TestRefusedReplyLeavesPrivateNote(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	calls := countSends(e, func(sdk.OutboundMessage) (sdk.SendResult, error) {
		return sdk.SendResult{}, &sdk.RefusedError{Code: "outside_window", Message: "the customer last wrote more than 24 hours ago"}
	})
	cid, _ := e.fake.AgentComment(id, "Olá, tudo certo?", true)
	resp := e.hook(id, cid)
	status(t, resp, 200)
	contains(t, "answer", string(resp.Body), "outside_window")
	status(t, e.hook(id, cid), 200) // delivered again: no second note

	if len(e.host.Sent()) != 0 {
		t.Errorf("sent %+v", e.host.Sent())
	}
	if calls.Load() != 1 {
		t.Errorf("%d SendMessage calls, want 1", calls.Load())
	}
	tk := e.onlyTicket()
	var notes []zendesktest.Comment
	for _, c := range tk.Comments {
		if !c.Public {
			notes = append(notes, c)
		}
	}
	if len(notes) != 1 {
		t.Fatalf("%d private notes, want 1: %q", len(notes), bodies(tk))
	}
	contains(t, "note", notes[0].Body, "did not send this reply", "outside_window", "24 hours", "template")
}

func TestRefusalNoteRetriedWhenZendeskFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	calls := countSends(e, func(sdk.OutboundMessage) (sdk.SendResult, error) {
		return sdk.SendResult{}, &sdk.RefusedError{Code: "opted_out", Message: "the customer opted out"}
	})
	cid, _ := e.fake.AgentComment(id, "Oi", true)
	e.setIntercept(func(r *http.Request) *injected {
		if r.Method == http.MethodPut {
			return &injected{status: 503, body: "Service Unavailable"}
		}
		return nil
	})
	resp := e.hook(id, cid)
	status(t, resp, 503)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	e.setIntercept(nil)
	status(t, e.hook(id, cid), 200)
	status(t, e.hook(id, cid), 200)
	if calls.Load() != 1 {
		t.Errorf("%d SendMessage calls, want 1", calls.Load())
	}
	var notes int
	for _, c := range e.onlyTicket().Comments {
		if !c.Public {
			notes++
			contains(t, "note", c.Body, "opted out")
		}
	}
	if notes != 1 {
		t.Errorf("%d notes, want 1", notes)
	}
}

func TestWebhookTransientFailuresAnswer503(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	cid, _ := e.fake.AgentComment(id, "Oi", true)

	// Zendesk cannot be read: Zendesk retries the webhook.
	e.fake.SetRateLimitStyle(zendesktest.Bare)
	e.fake.FailNext(1, 429)
	status(t, e.hook(id, cid), 503)

	// The hub cannot take the message.
	var fail atomic.Bool
	fail.Store(true)
	countSends(e, func(m sdk.OutboundMessage) (sdk.SendResult, error) {
		if fail.Load() {
			return sdk.SendResult{}, errors.New("hub: store busy")
		}
		return sdk.SendResult{ID: "msg_1", State: "queued"}, nil
	})
	status(t, e.hook(id, cid), 503)
	fail.Store(false)
	status(t, e.hook(id, cid), 200)
	if n := len(e.host.Sent()); n != 1 {
		t.Errorf("%d sent, want 1", n)
	}
}

func TestWebhookRequestShape(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	cid, _ := e.fake.AgentComment(id, "Oi", true)
	req := func(method string, body []byte) *sdk.HookRequest {
		return &sdk.HookRequest{Method: method, Header: e.fake.SignWebhook(body), Body: body}
	}
	cases := []struct {
		name string
		req  *sdk.HookRequest
		want int
	}{
		{"GET", req(http.MethodGet, zendesktest.WebhookBody(id, cid)), 405},
		{"not JSON", req(http.MethodPost, []byte("ticket=1")), 400},
		{"no ticket id", req(http.MethodPost, []byte(`{"comment_id": "1"}`)), 400},
		{"ticket id not a number", req(http.MethodPost, []byte(`{"ticket_id": "{{ticket.id}}"}`)), 400},
		{"numbers instead of strings", req(http.MethodPost, []byte(`{"ticket_id": `+strconv.FormatInt(id, 10)+`, "comment_id": `+strconv.FormatInt(cid, 10)+`, "extra": true}`)), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.r.HandleHook(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			status(t, resp, tc.want)
			var v map[string]any
			if err := json.Unmarshal(resp.Body, &v); err != nil {
				t.Errorf("answer is not JSON: %s", resp.Body)
			}
		})
	}
}

func TestHooksOffWithoutSecret(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"webhook_secret": ""}})
	resp := e.hook(1, 1)
	status(t, resp, 403)
	contains(t, "answer", string(resp.Body), "webhook_secret")
}

// foreignTicket opens a ticket through the API as another channel would
// (email, another integration), with external_id ext when set.
func foreignTicket(t *testing.T, e *env, ext string) int64 {
	t.Helper()
	tk := map[string]any{"subject": "Nota fiscal", "comment": map[string]any{"body": "segue a nota"}}
	if ext != "" {
		tk["external_id"] = ext
	}
	body, _ := json.Marshal(map[string]any{"ticket": tk})
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v2/tickets", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(zendesktest.DefaultEmail+"/token", zendesktest.DefaultToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Ticket struct {
			ID int64 `json:"id"`
		} `json:"ticket"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a ticket: %d %v", resp.StatusCode, err)
	}
	return out.Ticket.ID
}

// A webhook about a ticket the KV has no record of: the ticket is read to
// tell whether wahub created it and has not recorded it yet.
func TestWebhookOnUnrecordedTicket(t *testing.T) {
	// unrecorded delivers Ana's first message with the ticket:<id> write
	// failing, as in the moment between the ticket's creation and its
	// record, or after a crash or a failed KV write there; the delivery's
	// retry records it.
	unrecorded := func(t *testing.T, e *env, host *flakyHost) (int64, func()) {
		host.mu.Lock()
		host.fails = 1
		host.mu.Unlock()
		ev := text("evt_1", "conv_a", ana, "preciso de ajuda")
		if res := e.deliver(ev)["evt_1"]; res.Outcome != sdk.Retry {
			t.Fatalf("first delivery: %s %s, want retry", res.Outcome, res.Error)
		}
		return e.onlyTicket().ID, func() { e.mustDeliver(ev) }
	}
	cases := []struct {
		name       string
		prepare    func(t *testing.T, e *env, host *flakyHost) (id int64, record func())
		status     int
		retryAfter string
		ignored    bool
	}{
		{name: "ours, not recorded yet: 503 until it is", prepare: unrecorded, status: 503, retryAfter: "5"},
		{
			name: "ours, and the ticket cannot be read: 503",
			prepare: func(t *testing.T, e *env, host *flakyHost) (int64, func()) {
				id, record := unrecorded(t, e, host)
				e.setIntercept(func(r *http.Request) *injected {
					if r.Method == http.MethodGet && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, ".json"), "/tickets/"+strconv.FormatInt(id, 10)) {
						return &injected{status: 500, body: `{"error": "InternalError"}`}
					}
					return nil
				})
				return id, func() { e.setIntercept(nil); record() }
			},
			status: 503, retryAfter: "10",
		},
		{
			name:    "an email ticket: ignored",
			prepare: func(t *testing.T, e *env, host *flakyHost) (int64, func()) { return foreignTicket(t, e, ""), nil },
			status:  200, ignored: true,
		},
		{
			name: "another integration's external_id: ignored",
			prepare: func(t *testing.T, e *env, host *flakyHost) (int64, func()) {
				return foreignTicket(t, e, "crm-4711"), nil
			},
			status: 200, ignored: true,
		},
		{
			name: "external_id of a known conversation whose ticket is recorded: ignored",
			prepare: func(t *testing.T, e *env, host *flakyHost) (int64, func()) {
				e.mustDeliver(text("evt_1", "conv_a", ana, "preciso de ajuda"))
				return foreignTicket(t, e, "conv_a"), nil
			},
			status: 200, ignored: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host := &flakyHost{FakeHost: sdktest.NewFakeHost(), prefix: "ticket:"}
			e := newEnv(t, envOptions{host: host})
			id, record := tc.prepare(t, e, host)
			cid, err := e.fake.AgentComment(id, "Olá Ana, pode confirmar o pedido?", true)
			if err != nil {
				t.Fatal(err)
			}
			resp := e.hook(id, cid)
			status(t, resp, tc.status)
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if tc.ignored {
				contains(t, "answer", string(resp.Body), "not opened by wahub")
			}
			if sent := host.Sent(); len(sent) != 0 {
				t.Fatalf("sent %+v before the ticket was recorded", sent)
			}
			if record == nil {
				return
			}
			// The delivery's retry records the ticket; Zendesk's retries
			// of the same webhook send the reply, once.
			record()
			status(t, e.hook(id, cid), 200)
			status(t, e.hook(id, cid), 200)
			if sent := host.Sent(); len(sent) != 1 || sent[0].Text != "Olá Ana, pode confirmar o pedido?" || sent[0].To != ana.WAID {
				t.Errorf("sent %+v, want the reply once", sent)
			}
		})
	}
}
