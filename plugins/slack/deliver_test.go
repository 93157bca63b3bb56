package slack

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
)

func TestThreading(t *testing.T) {
	e := newEnv(t, nil)
	res := e.deliver(
		inbound("a1", ana, "support", "Olá, preciso de ajuda"),
		inbound("b1", bruno, "support", "Bom dia"),
		inbound("a2", ana, "support", "É sobre o pedido 123"),
		inbound("a3", ana, "support", "Obrigada!"),
	)
	e.wantOutcome(res, sdk.Delivered, "a1", "b1", "a2", "a3")

	roots := e.fake.Roots(defaultChan)
	if len(roots) != 2 {
		t.Fatalf("%d roots, want one per customer: %+v", len(roots), e.fake.Messages())
	}
	root := roots[0]
	if !strings.Contains(root.Text, "Ana Souza") {
		root = roots[1]
	}
	// The root says who, which team and rule, and the first message.
	text := blocksText(t, root)
	for _, want := range []string{"Ana Souza", "+5511987650001", "Team *support*", "Rule *rule-support*", "Olá, preciso de ajuda", "To +15550783881", "`note:`"} {
		if !strings.Contains(text, want) {
			t.Errorf("root blocks lack %q:\n%s", want, text)
		}
	}
	if !strings.Contains(root.Text, "Olá, preciso de ajuda") {
		t.Errorf("root fallback text %q lacks the message", root.Text)
	}
	replies := e.fake.Replies(defaultChan, root.TS)
	if len(replies) != 2 || !strings.Contains(replies[0].Text, "pedido 123") || !strings.Contains(replies[1].Text, "Obrigada") {
		t.Fatalf("Ana's thread: %+v, want her 2nd and 3rd messages in order", replies)
	}
	if replies[0].Form["unfurl_links"] != "false" || replies[0].Form["unfurl_media"] != "false" {
		t.Errorf("unfurling not turned off: %v", replies[0].Form)
	}

	// The thread maps back to the conversation, for agents' replies.
	raw, found, _ := e.host.KV().Get(context.Background(), threadKey(defaultChan, root.TS))
	var info convInfo
	_ = json.Unmarshal(raw, &info)
	if !found || info != (convInfo{ConversationID: convOf(ana), To: ana.WAID, PhoneNumberID: phoneID, Name: "Ana Souza", Team: "support"}) {
		t.Errorf("thread info %s (found %v)", raw, found)
	}
}

func TestTeamChannels(t *testing.T) {
	e := newEnv(t, nil)
	noRoute := inbound("n1", bruno, "", "sem rota")
	noRoute.Route = nil
	res := e.deliver(
		inbound("a1", ana, "billing", "minha fatura"),
		inbound("c1", &sdk.Contact{WAID: "5531900000003", Name: "Caio"}, "sales", "quero comprar"),
		noRoute,
	)
	e.wantOutcome(res, sdk.Delivered, "a1", "c1", "n1")
	if n := len(e.fake.Roots(billingChan)); n != 1 {
		t.Errorf("%d roots in the billing channel, want 1", n)
	}
	if n := len(e.fake.Roots(defaultChan)); n != 2 {
		t.Errorf("%d roots in the default channel (team without a channel, no route), want 2", n)
	}

	// The same conversation routed to another team gets a thread in that
	// team's channel; back in the first team, it continues the first one.
	res = e.deliver(inbound("a2", ana, "support", "e outra coisa"), inbound("a3", ana, "billing", "voltando à fatura"))
	e.wantOutcome(res, sdk.Delivered, "a2", "a3")
	br := e.fake.Roots(billingChan)
	if got := e.fake.Replies(billingChan, br[0].TS); len(got) != 1 || !strings.Contains(got[0].Text, "voltando") {
		t.Errorf("billing thread replies %+v", got)
	}

	// Without a default channel, a team without one cannot be delivered.
	e2 := newEnv(t, map[string]any{"channel": nil})
	res = e2.deliver(inbound("x1", ana, "sales", "oi"))
	e2.wantOutcome(res, sdk.Failed, "x1")
	if !strings.Contains(res["x1"].Error, "connectors.slack.config.channels.sales") {
		t.Errorf("error %q does not say which key to add", res["x1"].Error)
	}
}

func TestRedeliveryPostsOnce(t *testing.T) {
	e := newEnv(t, nil)
	batch := []sdk.Event{
		inbound("a1", ana, "support", "um"), inbound("a2", ana, "support", "dois"),
		inbound("b1", bruno, "billing", "três"),
	}
	e.deliver(batch...)
	before := len(e.fake.Messages())
	// The hub crashed before recording the results: the same batch again,
	// and again to a restarted plugin.
	e.wantOutcome(e.deliver(batch...), sdk.Delivered, "a1", "a2", "b1")
	e.c = e.start()
	e.wantOutcome(e.deliver(batch...), sdk.Delivered, "a1", "a2", "b1")
	if after := len(e.fake.Messages()); after != before || before != 3 {
		t.Errorf("%d messages after redelivery, %d before; want 3 both times", after, before)
	}
}

func TestRestartKeepsThread(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(inbound("a1", ana, "support", "antes"))
	e.c = e.start() // a new plugin process; the hub's KV is the same
	e.wantOutcome(e.deliver(inbound("a2", ana, "support", "depois")), sdk.Delivered, "a2")
	roots := e.fake.Roots(defaultChan)
	if len(roots) != 1 {
		t.Fatalf("%d roots after a restart, want 1", len(roots))
	}
	if got := e.fake.Replies(defaultChan, roots[0].TS); len(got) != 1 {
		t.Errorf("thread replies %+v, want the message after the restart", got)
	}
}

func TestRootClaim(t *testing.T) {
	ctx := context.Background()
	claim := func(e *testEnv, eventID string, at time.Time) {
		raw, _ := json.Marshal(threadRef{Pending: eventID, At: at.Unix()})
		if err := e.host.KV().Put(ctx, convKey(convOf(ana), defaultChan), raw); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("fresh claim of another event waits", func(t *testing.T) {
		e := newEnv(t, nil)
		claim(e, "other", fixedNow.Add(-10*time.Second))
		res := e.deliver(inbound("a1", ana, "support", "oi"), inbound("a2", ana, "support", "oi de novo"))
		if r := res["a1"]; r.Outcome != sdk.Retry || r.RetryAfter != busyRetry {
			t.Errorf("a1: %+v, want Retry after %s", r, busyRetry)
		}
		if r := res["a2"]; r.Outcome != sdk.Retry || !r.NotAttempted {
			t.Errorf("a2: %+v, want held behind a1", r)
		}
		if n := len(e.fake.Messages()); n != 0 {
			t.Errorf("%d posts while another delivery holds the claim", n)
		}
	})
	t.Run("stale claim is taken over", func(t *testing.T) {
		e := newEnv(t, nil)
		claim(e, "other", fixedNow.Add(-2*claimLease))
		e.wantOutcome(e.deliver(inbound("a1", ana, "support", "oi")), sdk.Delivered, "a1")
		if n := len(e.fake.Roots(defaultChan)); n != 1 {
			t.Errorf("%d roots", n)
		}
	})
	t.Run("claim of an earlier attempt at the same event is taken over", func(t *testing.T) {
		e := newEnv(t, nil)
		claim(e, "a1", fixedNow)
		e.wantOutcome(e.deliver(inbound("a1", ana, "support", "oi")), sdk.Delivered, "a1")
	})
	t.Run("failed root releases the claim", func(t *testing.T) {
		e := newEnv(t, nil)
		e.fake.FailNext(1, 503)
		e.wantOutcome(e.deliver(inbound("a1", ana, "support", "oi")), sdk.Retry, "a1")
		if _, found, _ := e.host.KV().Get(ctx, convKey(convOf(ana), defaultChan)); found {
			t.Error("claim left behind after a failed root post")
		}
		e.wantOutcome(e.deliver(inbound("a1", ana, "support", "oi")), sdk.Delivered, "a1")
	})
	t.Run("concurrent first messages make one root", func(t *testing.T) {
		e := newEnv(t, nil)
		// Two plugin processes (an old one not yet dead, a new one) on
		// one KV, each with a different first message of the conversation.
		const n = 8
		var wg sync.WaitGroup
		results := make([]sdk.Result, n)
		for i := range n {
			c := e.start()
			wg.Go(func() {
				results[i] = c.Deliver(ctx, []sdk.Event{inbound(fmt.Sprintf("a%d", i), ana, "support", "oi")})[0]
			})
		}
		wg.Wait()
		if roots := e.fake.Roots(defaultChan); len(roots) != 1 {
			t.Errorf("%d roots from %d concurrent first messages, want 1", len(roots), n)
		}
		for _, r := range results {
			if r.Outcome != sdk.Delivered && !(r.Outcome == sdk.Retry && r.RetryAfter == busyRetry) {
				t.Errorf("%s: %s %s", r.EventID, r.Outcome, r.Error)
			}
		}
	})
}

func TestSlackErrors(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(f *slacktest.Server)
		team    string
		outcome sdk.Outcome
		after   time.Duration
		want    []string
	}{
		{
			name:    "rate limited with Retry-After",
			setup:   func(f *slacktest.Server) { f.RateLimitNext("chat.postMessage", 1, 7*time.Second) },
			outcome: sdk.Retry, after: 7 * time.Second, want: []string{"rate-limited", "7s"},
		},
		{
			name:    "429 without Retry-After",
			setup:   func(f *slacktest.Server) { f.RateLimitNext("chat.postMessage", 1, 0) },
			outcome: sdk.Retry, want: []string{"HTTP 429"},
		},
		{
			name:    "5xx",
			setup:   func(f *slacktest.Server) { f.FailNext(1, 503) },
			outcome: sdk.Retry, want: []string{"HTTP 503"},
		},
		{
			name:    "ok:false internal_error",
			setup:   func(f *slacktest.Server) { f.SetMethodError("chat.postMessage", "internal_error") },
			outcome: sdk.Retry, want: []string{"internal_error"},
		},
		{
			name:    "channel_not_found",
			setup:   func(f *slacktest.Server) { f.SetChannelError(billingChan, "channel_not_found") },
			team:    "billing",
			outcome: sdk.Failed, want: []string{"channel C0BILLING not found", "connectors.slack.config.channels.billing", "channel's ID"},
		},
		{
			name:    "not_in_channel",
			setup:   func(f *slacktest.Server) { f.SetChannelError(defaultChan, "not_in_channel") },
			outcome: sdk.Failed, want: []string{"not a member of channel C0SUPPORT", "connectors.slack.config.channel)", "/invite"},
		},
		{
			name:    "is_archived",
			setup:   func(f *slacktest.Server) { f.SetChannelError(defaultChan, "is_archived") },
			outcome: sdk.Failed, want: []string{"archived", "unarchive"},
		},
		{
			name:    "invalid_auth",
			setup:   func(f *slacktest.Server) { f.SetToken("xoxb-another") },
			outcome: sdk.Failed, want: []string{"invalid_auth", "connectors.slack.config.token", "xoxb-"},
		},
		{
			name:    "missing_scope",
			setup:   func(f *slacktest.Server) { f.SetMethodError("chat.postMessage", "missing_scope") },
			outcome: sdk.Failed, want: []string{"missing_scope", "chat:write", "reinstall"},
		},
		{
			name:    "404: wrong api_url",
			setup:   func(f *slacktest.Server) { f.FailNext(1, 404) },
			outcome: sdk.Failed, want: []string{"HTTP 404", "connectors.slack.config.api_url"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tc.setup(e.fake)
			team := tc.team
			if team == "" {
				team = "support"
			}
			res := e.deliver(inbound("a1", ana, team, "um"), inbound("a2", ana, team, "dois"))
			r := res["a1"]
			if r.Outcome != tc.outcome || r.RetryAfter != tc.after {
				t.Fatalf("a1: %s after %s (%s); want %s after %s", r.Outcome, r.RetryAfter, r.Error, tc.outcome, tc.after)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.Error, w) {
					t.Errorf("error %q lacks %q", r.Error, w)
				}
			}
			if strings.Contains(r.Error, slacktest.DefaultToken) {
				t.Errorf("error quotes the token: %s", r.Error)
			}
			// The conversation's next message waits behind the first.
			if h := res["a2"]; h.Outcome != sdk.Retry || !h.NotAttempted || h.RetryAfter != tc.after {
				t.Errorf("a2: %+v, want held (after %s)", h, tc.after)
			}
		})
	}
}

func TestRateLimitPausesTheBatch(t *testing.T) {
	e := newEnv(t, nil)
	// Slack keeps answering 429: each worker meets it at most once, and
	// no conversation starts after the first 429.
	e.fake.RateLimitNext("chat.postMessage", 100, 30*time.Second)
	var events []sdk.Event
	for i := range 12 {
		c := &sdk.Contact{WAID: fmt.Sprintf("55119000000%02d", i), Name: fmt.Sprint("C", i)}
		events = append(events, inbound(fmt.Sprint("e", i), c, "support", "oi"))
	}
	res := e.deliver(events...)
	limited, held := 0, 0
	for _, r := range res {
		switch {
		case r.Outcome == sdk.Retry && r.NotAttempted && r.RetryAfter == 30*time.Second:
			held++
		case r.Outcome == sdk.Retry && !r.NotAttempted && r.RetryAfter == 30*time.Second:
			limited++
		default:
			t.Errorf("%s: %+v", r.EventID, r)
		}
	}
	posts := e.fake.CallCount("chat.postMessage")
	if limited != posts || posts < 1 || posts > maxConcurrent || held != len(events)-posts {
		t.Errorf("%d posts, %d rate-limited, %d held; want at most %d posts, the rest held", posts, limited, held, maxConcurrent)
	}
}

func TestOrderWithinConversation(t *testing.T) {
	e := newEnv(t, nil)
	// Ana's conversation goes to the billing channel, which is broken;
	// Bruno's goes on in the default one.
	e.fake.SetChannelError(billingChan, "not_in_channel")
	var events []sdk.Event
	for i := 1; i <= 5; i++ {
		events = append(events, inbound(fmt.Sprint("a", i), ana, "billing", fmt.Sprint("msg ", i)))
	}
	events = append(events, inbound("b1", bruno, "support", "oi"))
	res := e.deliver(events...)
	e.wantOutcome(res, sdk.Failed, "a1")
	for _, id := range []string{"a2", "a3", "a4", "a5"} {
		if r := res[id]; r.Outcome != sdk.Retry || !r.NotAttempted || !strings.Contains(r.Error, "a1") {
			t.Errorf("%s: %+v, want held behind a1", id, r)
		}
	}
	e.wantOutcome(res, sdk.Delivered, "b1")

	// The user fixed it and replayed a1; the held ones come with it.
	e.fake.SetChannelError(billingChan, "")
	res = e.deliver(events[:5]...)
	e.wantOutcome(res, sdk.Delivered, "a1", "a2", "a3", "a4", "a5")
	root := e.fake.Roots(billingChan)[0]
	if !strings.Contains(root.Text, "msg 1") {
		t.Errorf("root %q, want msg 1", root.Text)
	}
	for i, m := range e.fake.Replies(billingChan, root.TS) {
		if !strings.Contains(m.Text, fmt.Sprint("msg ", i+2)) {
			t.Errorf("reply %d is %q: out of order", i, m.Text)
		}
	}
}

func TestCancelledMidBatch(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results := e.c.Deliver(ctx, []sdk.Event{inbound("a1", ana, "support", "oi")})
	if r := results[0]; r.Outcome != sdk.Retry {
		t.Errorf("%+v, want Retry", r)
	}
	if len(e.fake.Messages()) != 0 {
		t.Error("posted with a cancelled context")
	}
}

// agentReply posts an agent's reply in thread through the hook and
// returns the agent's Slack message and the outbox id the host gave.
func agentReply(t *testing.T, e *testEnv, eventID, channel, thread, text string) slacktest.Message {
	t.Helper()
	msg, body := e.fake.HumanReply(eventID, channel, thread, "U0AGENT", text)
	if resp := e.hook(body, 0); resp.Status != 200 {
		t.Fatalf("hook: %d %s", resp.Status, resp.Body)
	}
	return msg
}

func sentEvent(id, wamid, outboxID, source string) sdk.Event {
	return sdk.Event{
		ID: id, Type: sdk.TypeMessageSent, OccurredAt: fixedNow, Business: biz, Contact: ana, ConversationID: convOf(ana),
		Message:  &sdk.Message{ID: wamid, Type: "text", Text: "Seu pedido saiu para entrega"},
		Outbound: &sdk.Outbound{ID: outboxID, Source: source, Team: "support"},
	}
}

func statusEvent(id string, typ sdk.EventType, wamid string, errs ...sdk.Error) sdk.Event {
	return sdk.Event{
		ID: id, Type: typ, OccurredAt: fixedNow, Business: biz, Contact: ana, ConversationID: convOf(ana),
		Status: &sdk.Status{MessageID: wamid, Status: strings.TrimPrefix(string(typ), "status."), Errors: errs},
	}
}

func TestStatusesOfAgentReplies(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(inbound("a1", ana, "support", "oi"))
	root := e.fake.Roots(defaultChan)[0]
	agent := agentReply(t, e, "EvREPLY1", defaultChan, root.TS, "Já vou verificar")
	sent := e.host.Sent()
	if len(sent) != 1 {
		t.Fatalf("host got %d messages", len(sent))
	}
	outbox := "msg_" + sent[0].IdempotencyKey // what FakeHost answers

	res := e.deliver(
		sentEvent("s1", "wamid.out.1", outbox, "connector:slack"),
		statusEvent("d1", sdk.TypeStatusDelivered, "wamid.out.1"),
		statusEvent("r1", sdk.TypeStatusRead, "wamid.out.1"),
		statusEvent("x1", sdk.TypeStatusDelivered, "wamid.unknown"),
		statusEvent("p1", sdk.TypeStatusPlayed, "wamid.out.1"),
	)
	e.wantOutcome(res, sdk.Delivered, "s1", "d1", "r1")
	e.wantOutcome(res, sdk.Skipped, "x1", "p1")
	m, _ := e.fake.Message(defaultChan, agent.TS)
	if got := strings.Join(m.Reactions, " "); got != "heavy_check_mark white_check_mark eyes" {
		t.Errorf("reactions on the agent's message: %q", got)
	}
	// The agent's reply is not echoed into the thread.
	if n := len(e.fake.Replies(defaultChan, root.TS)); n != 1 {
		t.Errorf("%d replies in the thread, want only the agent's own", n)
	}

	// A failure: a reaction and a line saying why; once, however often
	// it is delivered.
	fail := statusEvent("f1", sdk.TypeStatusFailed, "wamid.out.1", sdk.Error{Code: 131047, Title: "Re-engagement message", Details: "More than 24 hours have passed"})
	e.wantOutcome(e.deliver(fail), sdk.Delivered, "f1")
	e.wantOutcome(e.deliver(fail), sdk.Delivered, "f1")
	replies := e.fake.Replies(defaultChan, root.TS)
	if len(replies) != 2 || !strings.Contains(replies[1].Text, "Re-engagement message (code 131047): More than 24 hours") {
		t.Errorf("thread after the failure: %+v", replies)
	}
	if m, _ := e.fake.Message(defaultChan, agent.TS); !strings.Contains(strings.Join(m.Reactions, " "), "x") {
		t.Errorf("no :x: on the failed reply: %v", m.Reactions)
	}
}

func TestStatusesEdgeCases(t *testing.T) {
	t.Run("status before message.sent finds the reply by outbox id", func(t *testing.T) {
		e := newEnv(t, nil)
		e.deliver(inbound("a1", ana, "support", "oi"))
		root := e.fake.Roots(defaultChan)[0]
		agent := agentReply(t, e, "EvR", defaultChan, root.TS, "resposta")
		st := statusEvent("d1", sdk.TypeStatusDelivered, "wamid.out.9")
		st.Outbound = &sdk.Outbound{ID: "msg_EvR", Source: "connector:slack"}
		e.wantOutcome(e.deliver(st), sdk.Delivered, "d1")
		if m, _ := e.fake.Message(defaultChan, agent.TS); len(m.Reactions) != 1 {
			t.Errorf("reactions %v", m.Reactions)
		}
	})
	t.Run("statuses off: only failures, as a line", func(t *testing.T) {
		e := newEnv(t, map[string]any{"statuses": "off"})
		e.deliver(inbound("a1", ana, "support", "oi"))
		root := e.fake.Roots(defaultChan)[0]
		agentReply(t, e, "EvR", defaultChan, root.TS, "resposta")
		res := e.deliver(sentEvent("s1", "wamid.o", "msg_EvR", "connector:slack"),
			statusEvent("d1", sdk.TypeStatusDelivered, "wamid.o"),
			statusEvent("f1", sdk.TypeStatusFailed, "wamid.o", sdk.Error{Code: 131026, Title: "Message undeliverable"}))
		e.wantOutcome(res, sdk.Delivered, "s1", "f1")
		e.wantOutcome(res, sdk.Skipped, "d1")
		if len(e.fake.Reactions()) != 0 {
			t.Errorf("reactions with statuses: off: %+v", e.fake.Reactions())
		}
		if r := e.fake.Replies(defaultChan, root.TS); len(r) != 2 || !strings.Contains(r[1].Text, "Message undeliverable") {
			t.Errorf("thread %+v", r)
		}
	})
	t.Run("deleted agent message", func(t *testing.T) {
		e := newEnv(t, nil)
		e.deliver(inbound("a1", ana, "support", "oi"))
		root := e.fake.Roots(defaultChan)[0]
		// A reply whose Slack message the fake never saw (deleted since).
		body := slacktest.EventCallback("EvGone", fixedNow, slacktest.MessageEvent{User: "U1", Text: "x", TS: "1795000000.000001", ThreadTS: root.TS, Channel: defaultChan})
		e.hook(body, 0)
		res := e.deliver(sentEvent("s1", "wamid.g", "msg_EvGone", "connector:slack"), statusEvent("d1", sdk.TypeStatusDelivered, "wamid.g"))
		e.wantOutcome(res, sdk.Delivered, "s1")
		e.wantOutcome(res, sdk.Skipped, "d1")
	})
	t.Run("missing reactions:write scope fails with the fix", func(t *testing.T) {
		e := newEnv(t, nil)
		e.deliver(inbound("a1", ana, "support", "oi"))
		root := e.fake.Roots(defaultChan)[0]
		agentReply(t, e, "EvR", defaultChan, root.TS, "resposta")
		e.fake.SetMethodError("reactions.add", "missing_scope")
		res := e.deliver(sentEvent("s1", "wamid.o", "msg_EvR", "connector:slack"))
		e.wantOutcome(res, sdk.Failed, "s1")
		if !strings.Contains(res["s1"].Error, "reactions:write") || !strings.Contains(res["s1"].Error, "statuses: off") {
			t.Errorf("error %q", res["s1"].Error)
		}
	})
}

func TestOutboundFromElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	// No thread yet: nothing to add it to.
	res := e.deliver(sentEvent("t0", "wamid.t0", "msg_t0", "trigger:welcome"))
	e.wantOutcome(res, sdk.Skipped, "t0")

	e.deliver(inbound("a1", ana, "support", "oi"))
	root := e.fake.Roots(defaultChan)[0]
	tmpl := sentEvent("t2", "wamid.t2", "msg_t2", "api")
	tmpl.Message = &sdk.Message{ID: "wamid.t2", Type: "template"}
	res = e.deliver(sentEvent("t1", "wamid.t1", "msg_t1", "trigger:closed"), tmpl, statusEvent("d1", sdk.TypeStatusRead, "wamid.t1"))
	e.wantOutcome(res, sdk.Delivered, "t1", "t2", "d1")
	replies := e.fake.Replies(defaultChan, root.TS)
	if len(replies) != 2 {
		t.Fatalf("thread %+v", replies)
	}
	if txt := blocksText(t, replies[0]); !strings.Contains(txt, "Sent to the customer by trigger:closed") || !strings.Contains(txt, "Seu pedido saiu") {
		t.Errorf("trigger reply rendered as %q", txt)
	}
	if !strings.Contains(replies[1].Text, "(template)") {
		t.Errorf("template without text rendered as %q", replies[1].Text)
	}
	if m, _ := e.fake.Message(defaultChan, replies[0].TS); strings.Join(m.Reactions, "") != "eyes" {
		t.Errorf("read status of the trigger's message: reactions %v", m.Reactions)
	}
}

func TestEventsNotShown(t *testing.T) {
	e := newEnv(t, nil)
	field := sdk.Event{ID: "w1", Type: "whatsapp.message_template_status_update"}
	optin := statusEvent("o1", sdk.TypeOptinGranted, "")
	optin.Status = nil
	res := e.deliver(field, statusEvent("s1", sdk.TypeStatusSent, "wamid.x"), optin)
	e.wantOutcome(res, sdk.Skipped, "w1", "s1", "o1")
	if len(e.fake.Calls()) != 0 {
		t.Errorf("calls to Slack for skipped events: %+v", e.fake.Calls())
	}
}
