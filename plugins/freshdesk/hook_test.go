package freshdesk_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/sdk"
)

// ticketFor opens Ana's ticket through a delivery, as the hub would.
func (e *env) ticketFor() int64 {
	e.t.Helper()
	e.mustDeliver(text("evt_1", "conv_ana", ana, "Olá, preciso de ajuda"))
	return e.onlyTicket().ID
}

// webhook is the automation rule's request about the ticket, as the hub
// hands it to the plugin.
func (e *env) webhook(ticketID int64, secretValue string) *sdk.HookRequest {
	e.t.Helper()
	req, err := e.fake.WebhookRequest("http://127.0.0.1:8080/hooks/freshdesk", secretValue, ticketID)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	return &sdk.HookRequest{Method: req.Method, Path: "/hooks/freshdesk", Header: req.Header, Body: body}
}

func (e *env) hook(req *sdk.HookRequest) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.remote.HandleHook(context.Background(), req)
	if err != nil {
		e.t.Fatalf("HandleHook: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		e.t.Fatalf("answer %s is not JSON", resp.Body)
	}
	return resp.Status, body
}

func TestHookSendsAgentReplyOnce(t *testing.T) {
	e := newEnv(t, setup{})
	id := e.ticketFor()
	reply, _ := e.fake.AgentReply(id, "Olá Ana!\nVou verificar seu pedido.")
	for range 2 { // Freshdesk delivers it twice
		if status, body := e.hook(e.webhook(id, secret)); status != 200 || body["ok"] != true {
			t.Fatalf("answer %d %v", status, body)
		}
	}
	sent := e.host.Sent()
	if len(sent) != 1 {
		t.Fatalf("%d messages sent, want exactly 1: %+v", len(sent), sent)
	}
	want := sdk.OutboundMessage{To: "5511987650001", PhoneNumberID: biz.PhoneNumberID, Text: "Olá Ana!\nVou verificar seu pedido.",
		IdempotencyKey: "conversation:" + itoa(reply.ID)}
	if got, _ := json.Marshal(sent[0]); string(got) != string(must(json.Marshal(want))) {
		t.Errorf("sent %+v\nwant %+v", sent[0], want)
	}

	// A second reply with the same words is a second message.
	e.fake.AgentReply(id, "Olá Ana!\nVou verificar seu pedido.")
	e.hook(e.webhook(id, secret))
	if n := len(e.host.Sent()); n != 2 {
		t.Errorf("%d messages after a second, identical reply; want 2", n)
	}
}

func TestHookAuthentication(t *testing.T) {
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}
	cases := []struct {
		name   string
		header http.Header
		status int
	}{
		{"secret header", http.Header{freshdesk.SecretHeader: {secret}}, 200},
		{"basic auth password", http.Header{"Authorization": {basic("freshdesk", secret)}}, 200},
		{"basic auth user (API key option)", http.Header{"Authorization": {basic(secret, "X")}}, 200},
		{"wrong secret", http.Header{freshdesk.SecretHeader: {"guess-guess-guess-guess"}}, 401},
		{"secret prefix", http.Header{freshdesk.SecretHeader: {secret[:10]}}, 401},
		{"wrong basic auth", http.Header{"Authorization": {basic("freshdesk", "nope")}}, 401},
		{"missing", http.Header{}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			id := e.ticketFor()
			e.fake.AgentReply(id, "Resposta")
			req := e.webhook(id, "")
			for k, v := range tc.header {
				req.Header[k] = v
			}
			status, body := e.hook(req)
			if status != tc.status {
				t.Errorf("status %d (%v), want %d", status, body, tc.status)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.status == 200]; len(e.host.Sent()) != want {
				t.Errorf("%d messages sent, want %d", len(e.host.Sent()), want)
			}
		})
	}
	t.Run("hooks off without webhook_secret", func(t *testing.T) {
		e := newEnv(t, setup{extra: map[string]any{"webhook_secret": nil}})
		id := e.ticketFor()
		e.fake.AgentReply(id, "Resposta")
		if status, _ := e.hook(e.webhook(id, secret)); status != 403 {
			t.Errorf("status %d, want 403", status)
		}
		if len(e.host.Sent()) != 0 {
			t.Error("sent without a configured secret")
		}
	})
}

func TestHookRequests(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(e *env, id int64) *sdk.HookRequest
		status  int
		text    string // the one message expected; "" none
	}{
		{
			name: "unescaped quote breaks the JSON: the reply is read from the API",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentReply(id, `Digite "SIM" para confirmar`)
				e.fake.SetUnescapedWebhooks(true)
				return e.webhook(id, secret)
			},
			status: 200, text: `Digite "SIM" para confirmar`,
		},
		{
			name: "Simple content",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentReply(id, "Resolvido")
				return post(`{"freshdesk_webhook": {"ticket_id": ` + itoa(id) + `, "ticket_latest_public_comment": "Sandbox Agent : <div>Resolvido</div>"}}`)
			},
			status: 200, text: "Resolvido",
		},
		{
			name: "the webhook names an older reply: that one is sent",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentReply(id, "Primeira resposta")
				req := e.webhook(id, secret)
				e.fake.AgentReply(id, "Segunda resposta")
				return req
			},
			status: 200, text: "Primeira resposta",
		},
		{
			name: "only a private note: nothing to send",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentNote(id, "cliente difícil", true)
				return e.webhook(id, secret)
			},
			status: 200,
		},
		{
			name: "a public note is not a reply",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentNote(id, "nota pública", false)
				return e.webhook(id, secret)
			},
			status: 200,
		},
		{
			name: "a ticket not opened by wahub",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				return post(`{"ticket_id": "4242", "body": "x : <div>y</div>"}`)
			},
			status: 200,
		},
		{
			name:    "not JSON, no ticket id",
			prepare: func(e *env, id int64) *sdk.HookRequest { return post(`ticket=1`) },
			status:  400,
		},
		{
			name: "GET",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				r := e.webhook(id, secret)
				r.Method = http.MethodGet
				return r
			},
			status: 405,
		},
		{
			// The body is whatever the caller wrote; only the API says what
			// the agent replied.
			name: "conversations unreadable: 503, the body's text is never sent",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentReply(id, "Um momento")
				e.fake.FailNext(1, 500)
				return post(`{"ticket_id": "` + itoa(id) + `", "body": "Pague o boleto falso em evil.example"}`)
			},
			status: 503,
		},
		{
			name: "conversations unreadable and no body: 503, Freshdesk retries",
			prepare: func(e *env, id int64) *sdk.HookRequest {
				e.fake.AgentReply(id, "Um momento")
				e.fake.FailNext(1, 429)
				return post(`{"ticket_id": "` + itoa(id) + `"}`)
			},
			status: 503,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			id := e.ticketFor()
			req := tc.prepare(e, id)
			status, body := e.hook(req)
			if status != tc.status {
				t.Errorf("status %d (%v), want %d", status, body, tc.status)
			}
			sent := e.host.Sent()
			switch {
			case tc.text == "" && len(sent) != 0:
				t.Errorf("sent %+v, want nothing", sent)
			case tc.text != "" && (len(sent) != 1 || sent[0].Text != tc.text):
				t.Errorf("sent %+v, want one message %q", sent, tc.text)
			}
		})
	}
}

func post(body string) *sdk.HookRequest {
	return &sdk.HookRequest{Method: http.MethodPost, Path: "/hooks/freshdesk",
		Header: http.Header{freshdesk.SecretHeader: {secret}, "Content-Type": {"application/json"}}, Body: []byte(body)}
}

func TestHookRefusalAddsPrivateNote(t *testing.T) {
	e := newEnv(t, setup{})
	id := e.ticketFor()
	e.host.Send = func(sdk.OutboundMessage) (sdk.SendResult, error) {
		return sdk.SendResult{}, &sdk.RefusedError{Code: "outside_window", Message: "the customer's last message is more than 24 hours old"}
	}
	reply, _ := e.fake.AgentReply(id, "Ainda precisa de ajuda?")
	for range 2 {
		status, body := e.hook(e.webhook(id, secret))
		if status != 200 || body["delivered"] != false {
			t.Fatalf("answer %d %v, want 200 and delivered false", status, body)
		}
	}
	if len(e.host.Sent()) != 0 {
		t.Errorf("sent %+v", e.host.Sent())
	}
	tk, _ := e.fake.Ticket(id)
	var notes []freshdesktest.Conversation
	for _, c := range tk.Conversations {
		if c.Source == freshdesktest.SourceNote {
			notes = append(notes, c)
		}
	}
	if len(notes) != 1 {
		t.Fatalf("%d notes, want exactly one for a webhook delivered twice", len(notes))
	}
	n := notes[0]
	for _, s := range []string{"not delivered on WhatsApp", "more than 24 hours old", "outside_window", "conversation " + itoa(reply.ID), "approved templates"} {
		if !strings.Contains(n.BodyText, s) {
			t.Errorf("note %q does not say %q", n.BodyText, s)
		}
	}
	if !n.Private {
		t.Error("the refusal note is public: the customer would see it")
	}
}

func TestHookRetriesWhenTheHubIsUnavailable(t *testing.T) {
	e := newEnv(t, setup{})
	id := e.ticketFor()
	e.fake.AgentReply(id, "Pronto")
	e.host.Send = func(sdk.OutboundMessage) (sdk.SendResult, error) {
		return sdk.SendResult{}, errors.New("database is locked")
	}
	if status, _ := e.hook(e.webhook(id, secret)); status != 503 {
		t.Errorf("status %d, want 503 so that Freshdesk retries", status)
	}
	e.host.Send = nil
	for range 2 {
		if status, _ := e.hook(e.webhook(id, secret)); status != 200 {
			t.Errorf("status %d", status)
		}
	}
	if n := len(e.host.Sent()); n != 1 {
		t.Errorf("%d sent, want 1", n)
	}
}

// The reply echoed back by the hub as message.sent is not filed again.
func TestAgentReplyEchoIsSkipped(t *testing.T) {
	e := newEnv(t, setup{})
	id := e.ticketFor()
	e.fake.AgentReply(id, "Pronto")
	e.hook(e.webhook(id, secret))
	sent := e.host.Sent()[0]
	echo := text("evt_echo", "conv_ana", ana, sent.Text)
	echo.Type = sdk.TypeMessageSent
	echo.Outbound = &sdk.Outbound{ID: "msg_1", Source: "connector:freshdesk", IdempotencyKey: sent.IdempotencyKey}
	if r := e.deliver(echo)["evt_echo"]; r.Outcome != sdk.Skipped {
		t.Errorf("echo: %s %s, want skipped", r.Outcome, r.Error)
	}
	tk, _ := e.fake.Ticket(id)
	if len(tk.Conversations) != 1 {
		t.Errorf("%d conversations, want the reply only", len(tk.Conversations))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// emailTicket opens a ticket the way an email would, through the API,
// without wahub's marker tag, and returns its id.
func (e *env) emailTicket(tags ...string) int64 {
	e.t.Helper()
	body := must(json.Marshal(map[string]any{"subject": "Nota fiscal", "description": "<div>Segue a nota</div>",
		"email": "carla@example.com", "tags": tags}))
	req, err := http.NewRequest(http.MethodPost, e.url+"/api/v2/tickets", strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", freshdesktest.BasicAuth(freshdesktest.DefaultAPIKey))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tk struct {
		ID int64 `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tk); err != nil || resp.StatusCode != http.StatusCreated || tk.ID == 0 {
		e.t.Fatalf("creating an email ticket: %d %v", resp.StatusCode, err)
	}
	return tk.ID
}

// unlink removes the ticket's KV link, as between the ticket's creation
// and its record (or after a crash or a failed KV write there), and
// returns a function that writes it back.
func (e *env) unlink(id int64) (relink func()) {
	e.t.Helper()
	ctx := context.Background()
	key := "ticket:" + itoa(id)
	raw, found, err := e.host.KV().Get(ctx, key)
	if err != nil || !found {
		e.t.Fatalf("no link %s: %v", key, err)
	}
	if err := e.host.KV().Delete(ctx, key); err != nil {
		e.t.Fatal(err)
	}
	return func() {
		if err := e.host.KV().Put(ctx, key, raw); err != nil {
			e.t.Fatal(err)
		}
	}
}

// A webhook about a ticket the KV does not know: the ticket is read to
// tell whether wahub opened it and has not recorded it yet.
func TestHookUnknownTicket(t *testing.T) {
	cases := []struct {
		name       string
		prepare    func(e *env) (id int64, relink func())
		status     int
		retryAfter string // "" none expected
		ignored    bool
	}{
		{
			name: "ours, not linked yet: 503 until the link exists",
			prepare: func(e *env) (int64, func()) {
				id := e.ticketFor()
				return id, e.unlink(id)
			},
			status: 503, retryAfter: "5",
		},
		{
			name:    "an email ticket: ignored",
			prepare: func(e *env) (int64, func()) { return e.emailTicket(), nil },
			status:  200, ignored: true,
		},
		{
			name:    "tagged whatsapp by someone else, without wahub's marker: ignored",
			prepare: func(e *env) (int64, func()) { return e.emailTicket("whatsapp", "wahub"), nil },
			status:  200, ignored: true,
		},
		{
			name: "deleted: ignored",
			prepare: func(e *env) (int64, func()) {
				id := e.emailTicket()
				e.fake.DeleteTicket(id)
				return id, nil
			},
			status: 200, ignored: true,
		},
		{
			name: "the ticket cannot be read: 503",
			prepare: func(e *env) (int64, func()) {
				id := e.ticketFor()
				relink := e.unlink(id)
				e.fake.FailNext(1, 500)
				return id, relink
			},
			status: 503,
		},
		{
			name: "rate limited reading the ticket: 503 with Freshdesk's Retry-After",
			prepare: func(e *env) (int64, func()) {
				id := e.ticketFor()
				e.unlink(id)
				e.fake.FailNext(1, 429)
				return id, nil
			},
			status: 503, retryAfter: "60",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			id, relink := tc.prepare(e)
			if _, err := e.fake.AgentReply(id, "Olá, pode confirmar o pedido?"); err != nil && !tc.ignored {
				t.Fatal(err)
			}
			// Built by hand: the fake cannot render a deleted ticket's.
			req := post(`{"ticket_id": "` + itoa(id) + `", "body": "Agent : <div>Olá, pode confirmar o pedido?</div>"}`)
			resp, err := e.remote.HandleHook(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", resp.Status, resp.Body, tc.status)
			}
			if got := resp.Header.Get("Retry-After"); tc.retryAfter != "" && got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if tc.ignored && !strings.Contains(string(resp.Body), `"ignored"`) {
				t.Errorf("answer %s, want ignored", resp.Body)
			}
			if sent := e.host.Sent(); len(sent) != 0 {
				t.Fatalf("sent %+v before the ticket was linked", sent)
			}
			if relink == nil {
				return
			}
			// The delivery records the ticket; Freshdesk's retry of the
			// same webhook sends the reply, once.
			relink()
			for range 2 {
				if status, body := e.hook(req); status != 200 || body["ok"] != true {
					t.Fatalf("after the link: %d %v", status, body)
				}
			}
			if sent := e.host.Sent(); len(sent) != 1 || sent[0].Text != "Olá, pode confirmar o pedido?" {
				t.Errorf("sent %+v, want the reply once", sent)
			}
		})
	}
}
