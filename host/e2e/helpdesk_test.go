package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// The Zendesk and Freshdesk connectors end to end (issue 8): the real
// wahub binary runs the built-in plugin out of process against the
// helpdesk's fake served here, and sends agents' replies to a graphtest
// fake of the Graph API.

const (
	helpdeskCustomerOpen   = "5511987650001" // writes now: the 24-hour window is open
	helpdeskCustomerClosed = "5511987650009" // last wrote 25 hours ago: the window is closed
	helpdeskFreshdeskKey   = "e2e-freshdesk-shared-webhook-secret"
)

// helpdeskEntry is one comment (Zendesk) or the description or one
// conversation (Freshdesk) of a ticket.
type helpdeskEntry struct {
	Body     string
	Public   bool
	Customer bool // written as the ticket's requester
}

// helpdeskTicket is a ticket as both fakes can show it.
type helpdeskTicket struct {
	ID      int64
	Subject string
	Entries []helpdeskEntry
}

// customerEntries are the entries written as the requester.
func (tk helpdeskTicket) customerEntries() []helpdeskEntry {
	var out []helpdeskEntry
	for _, e := range tk.Entries {
		if e.Customer {
			out = append(out, e)
		}
	}
	return out
}

// privateNotes are the internal notes on the ticket.
func (tk helpdeskTicket) privateNotes() []helpdeskEntry {
	var out []helpdeskEntry
	for _, e := range tk.Entries {
		if !e.Public && !e.Customer {
			out = append(out, e)
		}
	}
	return out
}

// helpdeskFake is what the test needs of either helpdesk's fake.
type helpdeskFake interface {
	// config is the connector's config section, as a YAML flow mapping.
	config() string
	tickets() []helpdeskTicket
	// agentReply adds an agent's public reply to a ticket and returns
	// what identifies it for hookRequest.
	agentReply(t *testing.T, ticketID int64, text string) int64
	// hookRequest is the helpdesk's webhook for that reply to hookURL,
	// authenticated as configured (good) or with a wrong signature or
	// secret.
	hookRequest(t *testing.T, hookURL string, ticketID, replyID int64, good bool) *http.Request
}

// helpdeskServe serves a fake's handler on a fresh listener.
func helpdeskServe(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// helpdeskZendesk adapts zendesktest.
const helpdeskZendeskSecret = "e2e-zendesk-webhook-secret"

type helpdeskZendesk struct {
	fake *zendesktest.Server
	url  string
}

func helpdeskNewZendesk(t *testing.T) helpdeskFake {
	// A secret of its own: the sandbox's published one is refused with
	// the sandbox off.
	fake := zendesktest.NewServer(zendesktest.WithWebhookSecret(helpdeskZendeskSecret))
	return &helpdeskZendesk{fake: fake, url: helpdeskServe(t, fake)}
}

func (z *helpdeskZendesk) config() string {
	return fmt.Sprintf(`{api_url: %q, email: %q, token: %q, webhook_secret: %q, timeout: 5s}`,
		z.url, zendesktest.DefaultEmail, zendesktest.DefaultToken, helpdeskZendeskSecret)
}

func (z *helpdeskZendesk) tickets() []helpdeskTicket {
	var out []helpdeskTicket
	for _, tk := range z.fake.Tickets() {
		ht := helpdeskTicket{ID: tk.ID, Subject: tk.Subject}
		for _, c := range tk.Comments {
			ht.Entries = append(ht.Entries, helpdeskEntry{Body: c.Body, Public: c.Public, Customer: c.AuthorID == tk.RequesterID})
		}
		out = append(out, ht)
	}
	return out
}

func (z *helpdeskZendesk) agentReply(t *testing.T, ticketID int64, text string) int64 {
	t.Helper()
	id, err := z.fake.AgentComment(ticketID, text, true)
	if err != nil {
		t.Fatalf("zendesk agent comment on ticket %d: %v", ticketID, err)
	}
	return id
}

func (z *helpdeskZendesk) hookRequest(t *testing.T, hookURL string, ticketID, commentID int64, good bool) *http.Request {
	t.Helper()
	req, err := z.fake.WebhookRequest(hookURL, ticketID, commentID)
	if err != nil {
		t.Fatal(err)
	}
	if !good {
		// Signed the Zendesk way, with a secret that is not the webhook's.
		body := zendesktest.WebhookBody(ticketID, commentID)
		req.Header.Set(zendesktest.HeaderSignature, zendesktest.Sign("not-the-signing-secret", req.Header.Get(zendesktest.HeaderTimestamp), body))
	}
	return req
}

// helpdeskFreshdesk adapts freshdesktest.
type helpdeskFreshdesk struct {
	fake *freshdesktest.Server
	url  string
}

func helpdeskNewFreshdesk(t *testing.T) helpdeskFake {
	fake := freshdesktest.NewServer()
	return &helpdeskFreshdesk{fake: fake, url: helpdeskServe(t, fake)}
}

func (f *helpdeskFreshdesk) config() string {
	return fmt.Sprintf(`{api_url: %q, api_key: %q, webhook_secret: %q, timeout: 5s}`,
		f.url, freshdesktest.DefaultAPIKey, helpdeskFreshdeskKey)
}

func (f *helpdeskFreshdesk) tickets() []helpdeskTicket {
	var out []helpdeskTicket
	for _, tk := range f.fake.Tickets() {
		ht := helpdeskTicket{ID: tk.ID, Subject: tk.Subject}
		// The first message is the ticket's description.
		ht.Entries = append(ht.Entries, helpdeskEntry{Body: tk.DescriptionText, Public: true, Customer: true})
		for _, c := range tk.Conversations {
			ht.Entries = append(ht.Entries, helpdeskEntry{Body: c.BodyText, Public: !c.Private, Customer: c.Incoming && c.UserID == tk.RequesterID})
		}
		out = append(out, ht)
	}
	return out
}

func (f *helpdeskFreshdesk) agentReply(t *testing.T, ticketID int64, text string) int64 {
	t.Helper()
	c, err := f.fake.AgentReply(ticketID, text)
	if err != nil {
		t.Fatalf("freshdesk agent reply on ticket %d: %v", ticketID, err)
	}
	return c.ID
}

func (f *helpdeskFreshdesk) hookRequest(t *testing.T, hookURL string, ticketID, _ int64, good bool) *http.Request {
	t.Helper()
	secret := helpdeskFreshdeskKey
	if !good {
		secret = "not-the-shared-webhook-secret"
	}
	req, err := f.fake.WebhookRequest(hookURL, secret, ticketID)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func helpdeskConfig(graphURL, connector, plugin, pluginConfig string) string {
	return fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: %s
  messages_per_second: 80
teams:
  support: {connectors: [%s]}
routes:
  - {name: default, team: support}
connectors:
  %s:
    plugin: %s
    config: %s
    retry: {max_attempts: 10, initial_interval: 50ms, max_interval: 200ms}
`, graphURL, connector, connector, plugin, pluginConfig)
}

// helpdeskDump describes the fake's tickets, for failure messages.
func helpdeskDump(fake helpdeskFake) string {
	var b strings.Builder
	for _, tk := range fake.tickets() {
		fmt.Fprintf(&b, "\n  ticket %d %q", tk.ID, tk.Subject)
		for _, e := range tk.Entries {
			fmt.Fprintf(&b, "\n    public=%t customer=%t %q", e.Public, e.Customer, e.Body)
		}
	}
	if b.Len() == 0 {
		return " (no tickets)"
	}
	return b.String()
}

func helpdeskSentDump(graph *graphtest.Server) string {
	var b strings.Builder
	for _, s := range graph.Sent() {
		fmt.Fprintf(&b, "\n  to=%s kind=%s text=%q", s.To, s.Kind, s.Text)
	}
	if b.Len() == 0 {
		return " (nothing)"
	}
	return b.String()
}

// helpdeskWait polls cond every 20ms until it holds, failing after 30s
// with what and the fake's tickets.
func helpdeskWait(t *testing.T, fake helpdeskFake, what string, cond func([]helpdeskTicket) bool) []helpdeskTicket {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tks := fake.tickets()
		if cond(tks) {
			return tks
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 30s; the helpdesk holds:%s", what, helpdeskDump(fake))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// helpdeskWaitIdle waits until the hub has no event left to deliver to
// the connector, nor one being delivered: a delivery stays pending until
// the plugin's Deliver has returned.
func helpdeskWaitIdle(h *hubProc, connector string) {
	h.t.Helper()
	h.waitConnector(connector, "every event delivered", func(c admin.ConnectorStatus) bool {
		return c.State == "running" && c.Pending == 0 && c.Lag == 0 && c.Dead == 0
	})
}

// helpdeskTicketOf finds the ticket whose first entry contains text.
func helpdeskTicketOf(tks []helpdeskTicket, text string) (helpdeskTicket, bool) {
	for _, tk := range tks {
		if len(tk.Entries) > 0 && strings.Contains(tk.Entries[0].Body, text) {
			return tk, true
		}
	}
	return helpdeskTicket{}, false
}

// helpdeskSentTo returns the messages the Graph fake accepted for waID.
func helpdeskSentTo(graph *graphtest.Server, waID string) []graphtest.Sent {
	var out []graphtest.Sent
	for _, s := range graph.Sent() {
		if s.To == waID || s.WAID == waID {
			out = append(out, s)
		}
	}
	return out
}

// helpdeskDo sends a webhook request to the hub and returns the status
// and body of its answer.
func helpdeskDo(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestHelpdeskTicketsAndAgentReplies(t *testing.T) {
	for _, tc := range []struct {
		plugin, connector string
		newFake           func(*testing.T) helpdeskFake
	}{
		{"zendesk", "support-zendesk", helpdeskNewZendesk},
		{"freshdesk", "support-freshdesk", helpdeskNewFreshdesk},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			t.Parallel()
			helpdeskRun(t, tc.plugin, tc.connector, tc.newFake(t))
		})
	}
}

func helpdeskRun(t *testing.T, plugin, connector string, fake helpdeskFake) {
	start := time.Now()
	graph, graphURL := newGraph(t)
	h := newHub(t, helpdeskConfig(graphURL, connector, plugin, fake.config()))
	h.waitConnector(connector, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" && c.PID != 0 })
	hookURL := h.url("/hooks/" + connector)

	// First message → one ticket; the two follow-ups → the customer's
	// comments on it, in order. Timestamps are now: the window is open.
	const first = "Oi, minha fatura veio errada"
	followUps := []string{"o valor está em dobro", "podem verificar?"}
	h.postText(helpdeskCustomerOpen, "wamid.helpdesk-open-1", first, time.Now())
	for i, text := range followUps {
		h.postText(helpdeskCustomerOpen, fmt.Sprintf("wamid.helpdesk-open-%d", i+2), text, time.Now())
	}
	tks := helpdeskWait(t, fake, "the first message's ticket with its two follow-ups", func(tks []helpdeskTicket) bool {
		n := 0
		for _, tk := range tks {
			n += len(tk.customerEntries())
		}
		return n >= 3
	})
	// Once nothing is left to deliver, a stray second ticket or a
	// duplicated comment would be there.
	helpdeskWaitIdle(h, connector)
	tks = fake.tickets()
	if len(tks) != 1 {
		t.Fatalf("%d tickets after one customer's three messages, want exactly 1:%s", len(tks), helpdeskDump(fake))
	}
	open := tks[0]
	got := open.customerEntries()
	if len(got) != 3 || !strings.Contains(got[0].Body, first) ||
		!strings.Contains(got[1].Body, followUps[0]) || !strings.Contains(got[2].Body, followUps[1]) {
		t.Fatalf("ticket %d: want the first message then the two follow-ups as the customer's public comments, in order:%s", open.ID, helpdeskDump(fake))
	}
	for _, e := range got {
		if !e.Public {
			t.Errorf("ticket %d: the customer's message %q is private; want public", open.ID, e.Body)
		}
	}
	if !strings.Contains(open.Subject, first) {
		t.Errorf("ticket %d subject %q, want the first message %q", open.ID, open.Subject, first)
	}

	// An agent's public reply. Its webhook with a wrong signature (wrong
	// shared secret, for Freshdesk) is refused, and nothing is sent.
	const reply = "Olá! Já corrigimos a sua fatura."
	replyID := fake.agentReply(t, open.ID, reply)
	if code, body := helpdeskDo(t, fake.hookRequest(t, hookURL, open.ID, replyID, false)); code != http.StatusUnauthorized {
		t.Errorf("webhook with a wrong signature: %d %q, want 401", code, body)
	}
	if plugin == "freshdesk" {
		req := fake.hookRequest(t, hookURL, open.ID, replyID, true)
		req.Header.Del(freshdesk.SecretHeader)
		if code, body := helpdeskDo(t, req); code != http.StatusUnauthorized {
			t.Errorf("webhook without the secret header: %d %q, want 401", code, body)
		}
	}
	h.waitOutboxSettled()
	if n := graph.SentCount(); n != 0 {
		t.Fatalf("the Graph API got %d messages after webhooks that failed authentication, want 0:%s", n, helpdeskSentDump(graph))
	}

	// The correctly signed webhook, delivered twice, sends the reply
	// once to that customer.
	for i := range 2 {
		if code, body := helpdeskDo(t, fake.hookRequest(t, hookURL, open.ID, replyID, true)); code != http.StatusOK {
			t.Fatalf("signed webhook, delivery %d: %d %q, want 200", i+1, code, body)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(helpdeskSentTo(graph, helpdeskCustomerOpen)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's reply did not reach the Graph API within 30s; it holds:%s", helpdeskSentDump(graph))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitOutboxSettled() // a duplicate would have been sent by now
	sent := helpdeskSentTo(graph, helpdeskCustomerOpen)
	if len(sent) != 1 || graph.SentCount() != 1 {
		t.Fatalf("the Graph API got %d messages (%d to %s) for one reply whose webhook came twice, want exactly 1:%s",
			graph.SentCount(), len(sent), helpdeskCustomerOpen, helpdeskSentDump(graph))
	}
	if sent[0].Kind != "text" || strings.TrimSpace(sent[0].Text) != reply || sent[0].PhoneNumberID != businessNumber {
		t.Errorf("sent %+v: want the text %q from %s", sent[0], reply, businessNumber)
	}
	// A second reply whose two deliveries overlap (a retry after a
	// timeout) is sent once too.
	const reply2 = "Qualquer dúvida, estamos aqui."
	reply2ID := fake.agentReply(t, open.ID, reply2)
	reqs := []*http.Request{fake.hookRequest(t, hookURL, open.ID, reply2ID, true), fake.hookRequest(t, hookURL, open.ID, reply2ID, true)}
	codes := make(chan string, len(reqs))
	for _, req := range reqs {
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- err.Error()
				return
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes <- fmt.Sprintf("%d %s", resp.StatusCode, raw)
		}()
	}
	for range reqs {
		if c := <-codes; !strings.HasPrefix(c, "200 ") {
			t.Errorf("signed webhook delivered twice at once: %s, want 200", c)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for len(helpdeskSentTo(graph, helpdeskCustomerOpen)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the second reply did not reach the Graph API within 30s; it holds:%s", helpdeskSentDump(graph))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitOutboxSettled()
	sent = helpdeskSentTo(graph, helpdeskCustomerOpen)
	if len(sent) != 2 || graph.SentCount() != 2 || strings.TrimSpace(sent[1].Text) != reply2 {
		t.Fatalf("the Graph API holds %d messages after a second reply whose webhook came twice at once, want the 2 replies once each:%s",
			graph.SentCount(), helpdeskSentDump(graph))
	}
	if tk, _ := helpdeskTicketOf(fake.tickets(), first); len(tk.privateNotes()) != 0 {
		t.Errorf("ticket %d got internal notes for a reply that was delivered:%s", tk.ID, helpdeskDump(fake))
	}

	// A customer whose last message is 25 hours old: the message still
	// becomes a ticket, but the agent's reply cannot be sent; the agent
	// learns why in a private note, once, however often the webhook comes.
	const late = "Preciso de ajuda com meu pedido"
	h.postText(helpdeskCustomerClosed, "wamid.helpdesk-closed-1", late, time.Now().Add(-25*time.Hour))
	tks = helpdeskWait(t, fake, "a ticket for the customer who wrote 25 hours ago", func(tks []helpdeskTicket) bool {
		_, ok := helpdeskTicketOf(tks, late)
		return ok
	})
	// The ticket shows in the helpdesk a moment before the connector has
	// recorded it as the conversation's (the hub's KV): a webhook in that
	// gap is answered "not a WhatsApp ticket". Agents take longer than
	// that to answer; wait until the hub has the delivery done.
	helpdeskWaitIdle(h, connector)
	if len(tks) != 2 {
		t.Fatalf("%d tickets after a second customer's first message, want 2:%s", len(tks), helpdeskDump(fake))
	}
	closed, _ := helpdeskTicketOf(tks, late)
	if closed.ID == open.ID {
		t.Fatalf("the second customer's message went to the first customer's ticket %d", open.ID)
	}
	const lateReply = "Claro, qual o número do pedido?"
	lateID := fake.agentReply(t, closed.ID, lateReply)
	var answers []string
	for i := range 2 {
		code, body := helpdeskDo(t, fake.hookRequest(t, hookURL, closed.ID, lateID, true))
		if code != http.StatusOK {
			t.Fatalf("signed webhook for a reply outside the window, delivery %d: %d %q, want 200", i+1, code, body)
		}
		answers = append(answers, strings.TrimSpace(body))
	}
	tks = helpdeskWait(t, fake, fmt.Sprintf("a private note on the ticket of the customer outside the window (the hook answered %q)", answers), func(tks []helpdeskTicket) bool {
		tk, _ := helpdeskTicketOf(tks, late)
		return len(tk.privateNotes()) > 0
	})
	// Both webhooks were answered; with nothing left to send or
	// deliver, a second note would be there.
	h.waitOutboxSettled()
	helpdeskWaitIdle(h, connector)
	closed, _ = helpdeskTicketOf(fake.tickets(), late)
	notes := closed.privateNotes()
	if len(notes) != 1 {
		t.Errorf("ticket %d has %d private notes after the refused reply's webhook came twice, want 1:%s", closed.ID, len(notes), helpdeskDump(fake))
	}
	if !strings.Contains(notes[0].Body, "24 hours") || !strings.Contains(notes[0].Body, "WhatsApp") {
		t.Errorf("ticket %d note %q does not explain the closed 24-hour window", closed.ID, notes[0].Body)
	}
	for _, e := range closed.Entries {
		if e.Public && !e.Customer && e.Body != lateReply && strings.Contains(e.Body, "24 hours") {
			t.Errorf("ticket %d: the explanation %q is public: the customer would be mailed it", closed.ID, e.Body)
		}
	}
	if s := helpdeskSentTo(graph, helpdeskCustomerClosed); len(s) != 0 || graph.SentCount() != 2 {
		t.Errorf("the Graph API got %d messages for the customer outside the window (%d in all), want 0 (2 in all):%s",
			len(s), graph.SentCount(), helpdeskSentDump(graph))
	}
	t.Logf("%s e2e took %s", plugin, time.Since(start).Round(time.Millisecond))
}
