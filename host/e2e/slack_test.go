package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/plugins/slack/slacktest"
)

// The Slack connector end to end (issue 6): the real wahub binary runs the
// built-in slack plugin out of process against a slacktest fake served
// here, and sends agents' replies to a graphtest fake of the Graph API.

const (
	// slackConnector is deliberately not the plugin's name: the hook is
	// addressed by the connector's key in the configuration.
	slackConnector = "support-slack"
	slackChannel   = "C0SUPPORT"
	slackSecret    = "e2e-slack-signing-secret"
	slackAgent     = "U0AGENT01"
	slackCustomerA = "5511987650001"
	slackCustomerB = "5511987650002"
)

func slackConfig(graphURL, slackAPIURL string) string {
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
    plugin: slack
    config:
      token: %s
      signing_secret: %s
      channel: %s
      api_url: %s
      timeout: 5s
    retry: {max_attempts: 10, initial_interval: 50ms, max_interval: 200ms}
`, graphURL, slackConnector, slackConnector, slacktest.DefaultToken, slackSecret, slackChannel, slackAPIURL)
}

// slackNewFake serves a slacktest fake under /api/, as Slack serves its
// Web API, and returns it with the api_url the connector is configured with.
func slackNewFake(t *testing.T) (*slacktest.Server, string) {
	t.Helper()
	fake := slacktest.NewServer()
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", fake))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return fake, srv.URL + "/api/"
}

// slackBotReplies returns the bot's replies in the thread of rootTS (an
// agent's own messages, recorded by HumanReply, are left out).
func slackBotReplies(fake *slacktest.Server, rootTS string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range fake.Replies(slackChannel, rootTS) {
		if m.BotID != "" {
			out = append(out, m)
		}
	}
	return out
}

// slackDump describes what the fake holds, for failure messages.
func slackDump(fake *slacktest.Server) string {
	var b strings.Builder
	for _, m := range fake.Messages() {
		fmt.Fprintf(&b, "\n  %s ts=%s thread_ts=%s user=%s bot=%s text=%q", m.Channel, m.TS, m.ThreadTS, m.User, m.BotID, m.Text)
	}
	for _, c := range fake.Calls() {
		if c.Error != "" || c.Status != http.StatusOK {
			fmt.Fprintf(&b, "\n  call %s: %d %s", c.Method, c.Status, c.Error)
		}
	}
	if b.Len() == 0 {
		return " (nothing)"
	}
	return b.String()
}

// slackWait polls cond every 20ms until it holds, failing after timeout
// with what and the fake's content.
func slackWait(t *testing.T, fake *slacktest.Server, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; the Slack fake holds:%s", what, timeout, slackDump(fake))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slackWaitThread waits until the channel has wantRoots roots and the
// thread of the root whose text contains rootText has wantReplies bot
// replies, and returns that root and its replies.
func slackWaitThread(t *testing.T, fake *slacktest.Server, wantRoots int, rootText string, wantReplies int) (slacktest.Message, []slacktest.Message) {
	t.Helper()
	var root slacktest.Message
	var replies []slacktest.Message
	slackWait(t, fake, 30*time.Second, fmt.Sprintf("%d roots, the one with %q having %d bot replies", wantRoots, rootText, wantReplies), func() bool {
		roots := fake.Roots(slackChannel)
		if len(roots) != wantRoots {
			return false
		}
		for _, r := range roots {
			if strings.Contains(r.Text, rootText) {
				root = r
				replies = slackBotReplies(fake, r.TS)
				return len(replies) == wantReplies
			}
		}
		return false
	})
	return root, replies
}

// slackHook POSTs an Events API body to the hub's /hooks/<connector>,
// signed with secret, with X-Slack-Retry-Num when retry > 0, and returns
// the status and body of the answer.
func slackHook(t *testing.T, h *hubProc, secret string, body []byte, retry int) (int, string) {
	t.Helper()
	req, err := slacktest.NewEventRequest(context.Background(), h.url("/hooks/"+slackConnector), secret, time.Now(), body, retry)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /hooks/%s: %v", slackConnector, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// slackSentTo returns the messages the Graph fake accepted for waID.
func slackSentTo(fake *graphtest.Server, waID string) []graphtest.Sent {
	var out []graphtest.Sent
	for _, s := range fake.Sent() {
		if s.To == waID || s.WAID == waID {
			out = append(out, s)
		}
	}
	return out
}

func slackSentDump(fake *graphtest.Server) string {
	var b strings.Builder
	for _, s := range fake.Sent() {
		fmt.Fprintf(&b, "\n  to=%s kind=%s text=%q wamid=%s", s.To, s.Kind, s.Text, s.WAMID)
	}
	if b.Len() == 0 {
		return " (nothing)"
	}
	return b.String()
}

func TestSlackThreadsAgentRepliesAndPluginRestart(t *testing.T) {
	start := time.Now()
	graph, graphURL := newGraph(t)
	slack, slackURL := slackNewFake(t)
	h := newHub(t, slackConfig(graphURL, slackURL))
	first := h.waitConnector(slackConnector, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" && c.PID != 0 })

	// Three messages of one customer: one root, two replies in its thread,
	// in order. Timestamps are now, so the 24-hour window is open.
	h.postText(slackCustomerA, "wamid.slack-a-1", "Oi, minha fatura veio errada", time.Now())
	h.postText(slackCustomerA, "wamid.slack-a-2", "o valor está em dobro", time.Now())
	h.postText(slackCustomerA, "wamid.slack-a-3", "podem verificar?", time.Now())
	rootA, repliesA := slackWaitThread(t, slack, 1, "Oi, minha fatura veio errada", 2)
	if !strings.Contains(rootA.Text+string(rootA.Blocks), slackCustomerA) {
		t.Errorf("root %q %s does not show the customer's number %s", rootA.Text, rootA.Blocks, slackCustomerA)
	}
	if !strings.Contains(rootA.Text, "support") {
		t.Errorf("root %q does not name the team", rootA.Text)
	}
	if !strings.Contains(repliesA[0].Text, "o valor está em dobro") || !strings.Contains(repliesA[1].Text, "podem verificar?") {
		t.Errorf("thread replies out of order or missing text: %q, %q", repliesA[0].Text, repliesA[1].Text)
	}

	// A second customer gets a second root; the first thread is untouched.
	h.postText(slackCustomerB, "wamid.slack-b-1", "Bom dia, quero cancelar", time.Now())
	rootB, _ := slackWaitThread(t, slack, 2, "Bom dia, quero cancelar", 0)
	if rootB.TS == rootA.TS || !strings.Contains(rootB.Text+string(rootB.Blocks), slackCustomerB) {
		t.Errorf("second customer's root %+v: want a new root showing %s", rootB, slackCustomerB)
	}
	if n := len(slackBotReplies(slack, rootA.TS)); n != 2 {
		t.Errorf("first thread has %d bot replies after the second customer wrote, want 2", n)
	}

	// A reply with a wrong signature is refused and sends nothing.
	_, forged := slack.HumanReply("Ev0FORGED", slackChannel, rootA.TS, slackAgent, "forged reply, must not be sent")
	if code, body := slackHook(t, h, "not-the-signing-secret", forged, 0); code != http.StatusUnauthorized {
		t.Errorf("wrongly signed event: %d %q, want 401", code, body)
	}
	// Same body, valid signature, but the body altered after signing.
	req, _ := slacktest.NewEventRequest(context.Background(), h.url("/hooks/"+slackConnector), slackSecret, time.Now(), forged, 0)
	tampered := bytes.Replace(forged, []byte("forged reply"), []byte("FORGED REPLY"), 1)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(tampered)), int64(len(tampered))
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("event altered after signing: %d, want 401", resp.StatusCode)
		}
	}

	// The agent's reply in the first thread, delivered three times by
	// Slack (the same event_id; retries carry X-Slack-Retry-Num), reaches
	// the first customer once.
	const reply = "Olá! Já corrigimos a sua fatura."
	agentMsg, body := slack.HumanReply("Ev0AGENTREPLY1", slackChannel, rootA.TS, slackAgent, reply)
	for retry := range 3 {
		if code, answer := slackHook(t, h, slackSecret, body, retry); code != http.StatusOK {
			t.Fatalf("agent reply, delivery %d (X-Slack-Retry-Num %d): %d %q, want 200", retry+1, retry, code, answer)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(slackSentTo(graph, slackCustomerA)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's reply did not reach the Graph API within 30s; it holds:%s", slackSentDump(graph))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A duplicate would have been sent once the outbox is settled.
	h.waitOutboxSettled()
	sentA := slackSentTo(graph, slackCustomerA)
	if len(sentA) != 1 || graph.SentCount() != 1 {
		t.Fatalf("Graph API got %d messages (%d for %s), want exactly 1:%s", graph.SentCount(), len(sentA), slackCustomerA, slackSentDump(graph))
	}
	if sentA[0].Kind != "text" || sentA[0].Text != reply || sentA[0].PhoneNumberID != businessNumber {
		t.Errorf("sent %+v: want the text %q from %s", sentA[0], reply, businessNumber)
	}
	// The hub reports message.sent back to the connector: the agent's
	// Slack message gets the "sent" reaction, and nothing new is posted.
	slackWait(t, slack, 30*time.Second, "the agent's message marked sent (:heavy_check_mark:)", func() bool {
		m, ok := slack.Message(slackChannel, agentMsg.TS)
		return ok && len(m.Reactions) > 0 && m.Reactions[0] == "heavy_check_mark"
	})
	if n := len(slackBotReplies(slack, rootA.TS)); n != 2 {
		t.Errorf("first thread has %d bot replies after the agent's reply, want 2 (no echo of the agent's own message):%s", n, slackDump(slack))
	}

	// The plugin is SIGKILLed; the hub restarts it, and the thread, kept
	// in the hub's KV, is used again: no new root.
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("killing plugin pid %d: %v", first.PID, err)
	}
	second := h.waitConnector(slackConnector, "restarted with a new pid", func(c admin.ConnectorStatus) bool {
		return c.State == "running" && c.PID != 0 && c.PID != first.PID
	})
	if second.Restarts < 1 {
		t.Errorf("status %+v: want restarts ≥ 1 after the plugin was killed", second)
	}
	h.postText(slackCustomerA, "wamid.slack-a-4", "obrigada, chegou certinho", time.Now())
	_, repliesA = slackWaitThread(t, slack, 2, "Oi, minha fatura veio errada", 3)
	if !strings.Contains(repliesA[2].Text, "obrigada, chegou certinho") {
		t.Errorf("after the plugin restart the thread's last reply is %q, want the customer's new message", repliesA[2].Text)
	}

	// Slack delivering the old event once more, to the new plugin process,
	// still sends nothing; the hook's state is in the hub's KV too.
	if code, answer := slackHook(t, h, slackSecret, body, 3); code != http.StatusOK {
		t.Errorf("redelivery after the plugin restart: %d %q, want 200", code, answer)
	}
	// A new reply in the thread goes out through the restarted plugin.
	const reply2 = "Disponha!"
	_, body2 := slack.HumanReply("Ev0AGENTREPLY2", slackChannel, rootA.TS, slackAgent, reply2)
	if code, answer := slackHook(t, h, slackSecret, body2, 0); code != http.StatusOK {
		t.Fatalf("second agent reply: %d %q, want 200", code, answer)
	}
	deadline = time.Now().Add(30 * time.Second)
	for len(slackSentTo(graph, slackCustomerA)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the second agent reply did not reach the Graph API within 30s; it holds:%s", slackSentDump(graph))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitOutboxSettled()
	sentA = slackSentTo(graph, slackCustomerA)
	if len(sentA) != 2 || graph.SentCount() != 2 || sentA[1].Text != reply2 {
		t.Fatalf("after the restart the Graph API holds %d messages, want the 2 replies once each:%s", graph.SentCount(), slackSentDump(graph))
	}
	for _, s := range graph.Sent() {
		if strings.Contains(s.Text, "forged") || strings.Contains(s.Text, "FORGED") {
			t.Errorf("a wrongly signed reply was sent: %+v", s)
		}
	}
	t.Logf("slack e2e took %s", time.Since(start).Round(time.Millisecond))
}
