package slack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
)

func reactionEvent(id, to, emoji string) sdk.Event {
	ev := inbound(id, ana, "support", "")
	ev.Message = &sdk.Message{ID: "wamid." + id, Type: "reaction", Reaction: &sdk.Reaction{MessageID: to, Emoji: emoji},
		Quoted: &sdk.Quoted{ID: to, From: "customer", Type: "text", Text: "É sobre o pedido 123"}}
	return ev
}

func reactionsOn(fake *slacktest.Server, ts string) []string {
	for _, m := range fake.Messages() {
		if m.TS == ts {
			return m.Reactions
		}
	}
	return nil
}

func TestRepliesReactionsAndAds(t *testing.T) {
	e := newEnv(t, nil)
	quoted := inbound("a3", ana, "support", "Chegou quebrado")
	quoted.Message.Context = &sdk.Context{ID: "wamid.a2"}
	quoted.Message.Quoted = &sdk.Quoted{ID: "wamid.a2", From: "customer", Type: "text", Text: "É sobre o pedido 123"}
	ad := inbound("a1", ana, "support", "Oi, vi o anúncio")
	ad.Message.Referral = json.RawMessage(`{"source_url":"https://fb.me/x","source_id":"120226305854810726","source_type":"ad","headline":"Chat with us","ctwa_clid":"Aff-n8ZT"}`)
	res := e.deliver(ad, inbound("a2", ana, "support", "É sobre o pedido 123"), quoted,
		reactionEvent("a4", "wamid.a2", "👍"), reactionEvent("a5", "wamid.a2", "❤️"), reactionEvent("a6", "wamid.a2", "🦩"))
	e.wantOutcome(res, sdk.Delivered, "a1", "a2", "a3", "a4", "a5", "a6")

	root := e.fake.Roots(defaultChan)[0]
	if text := blocksText(t, root); !strings.Contains(text, "Click-to-WhatsApp ad") || !strings.Contains(text, "Chat with us") || !strings.Contains(text, "120226305854810726") {
		t.Errorf("root does not name the ad:\n%s", text)
	}
	replies := e.fake.Replies(defaultChan, root.TS)
	// a2, a3 and the note for the emoji Slack has no name for; 👍 and ❤️
	// are reactions on a2's post, not messages.
	if len(replies) != 3 {
		t.Fatalf("%d replies, want 3: %+v", len(replies), replies)
	}
	if text := blocksText(t, replies[1]); !strings.Contains(text, "> *Customer:* É sobre o pedido 123") || !strings.Contains(text, "Chegou quebrado") {
		t.Errorf("the quoted reply does not quote:\n%s", text)
	}
	if text := blocksText(t, replies[2]); !strings.Contains(text, "Reacted 🦩 to “É sobre o pedido 123”") {
		t.Errorf("the unmapped reaction note:\n%s", text)
	}
	// ❤️ replaced 👍: WhatsApp keeps one reaction per customer and message.
	if got := reactionsOn(e.fake, replies[0].TS); len(got) != 1 || got[0] != "heart" {
		t.Errorf("reactions on the reacted-to post: %v, want [heart]", got)
	}

	// Taking the reaction back removes it.
	res = e.deliver(reactionEvent("a7", "wamid.a2", ""))
	e.wantOutcome(res, sdk.Delivered, "a7")
	if got := reactionsOn(e.fake, replies[0].TS); len(got) != 0 {
		t.Errorf("reactions after removal: %v", got)
	}
	// Delivered again, nothing changes.
	res = e.deliver(reactionEvent("a5", "wamid.a2", "❤️"))
	e.wantOutcome(res, sdk.Delivered, "a5")
	if got := reactionsOn(e.fake, replies[0].TS); len(got) != 0 {
		t.Errorf("a redelivered reaction was added again: %v", got)
	}
}

func TestAlertsChannel(t *testing.T) {
	failed := statusEvent("f1", sdk.TypeStatusFailed, "wamid.unknown", sdk.Error{Code: 131026, Title: "Message undeliverable"})
	failed.Contact, failed.Route = ana, &sdk.Route{Team: "support"}
	dead := sdk.Event{ID: "d1", Type: sdk.TypeDeadLetter, Contact: ana, Route: &sdk.Route{Team: "support"},
		DeadLetter: &sdk.DeadLetter{EventID: "evt_x", EventType: sdk.TypeMessageReceived, Connector: "zendesk", Attempts: 12, Error: "422 from Zendesk"}}

	plain := newEnv(t, nil)
	res := plain.deliver(failed, dead)
	plain.wantOutcome(res, sdk.Skipped, "f1", "d1")

	e := newEnv(t, map[string]any{"alerts": true})
	res = e.deliver(failed, dead)
	e.wantOutcome(res, sdk.Delivered, "f1", "d1")
	roots := e.fake.Roots(defaultChan)
	var texts []string
	for _, r := range roots {
		texts = append(texts, r.Text)
	}
	all := strings.Join(texts, "\n")
	if len(roots) != 2 || !strings.Contains(all, "+5511987650001 failed: Message undeliverable") ||
		!strings.Contains(all, "Delivery to zendesk gave up after 12 attempt(s): 422 from Zendesk") {
		t.Fatalf("alerts: %+v", roots)
	}
	res = e.deliver(failed, dead)
	e.wantOutcome(res, sdk.Delivered, "f1", "d1")
	if n := len(e.fake.Roots(defaultChan)); n != 2 {
		t.Errorf("redelivered alerts posted again: %d roots", n)
	}
}

func TestAgentReactionGoesToWhatsApp(t *testing.T) {
	e := newEnv(t, nil)
	res := e.deliver(inbound("a1", ana, "support", "Oi"), inbound("a2", ana, "support", "Chegou!"))
	e.wantOutcome(res, sdk.Delivered, "a1", "a2")
	root := e.fake.Roots(defaultChan)[0]
	reply := e.fake.Replies(defaultChan, root.TS)[0]

	react := func(id, ts, user, name string, added bool) {
		t.Helper()
		if resp := e.hook(slacktest.HumanReaction(id, fixedNow, defaultChan, ts, user, name, added), 0); resp.Status != 200 {
			t.Fatalf("%s: %d %s", id, resp.Status, resp.Body)
		}
	}
	react("EvR1", reply.TS, "U0AGENT01", "+1", true)                  // on a reply
	react("EvR1", reply.TS, "U0AGENT01", "+1", true)                  // Slack's retry: the same key
	react("EvR2", root.TS, "U0AGENT01", "heart", true)                // on the root
	react("EvR3", reply.TS, slacktest.BotUserID, "+1", true)          // the bot's own: not an agent's
	react("EvR4", reply.TS, "U0AGENT01", "custom_party_parrot", true) // no emoji for WhatsApp
	react("EvR5", reply.TS, "U0AGENT01", "+1", false)                 // taken back
	sent := e.host.Sent()
	var got []string
	keys := map[string]bool{}
	for _, m := range sent {
		if m.Reaction == nil || m.To != ana.WAID || m.PhoneNumberID != phoneID {
			t.Fatalf("sent %+v", m)
		}
		if !keys[m.IdempotencyKey] {
			keys[m.IdempotencyKey] = true
			got = append(got, m.Reaction.MessageID+" "+m.Reaction.Emoji)
		}
	}
	want := []string{"wamid.a2 👍", "wamid.a1 ❤️", "wamid.a2 "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("reactions sent %q, want %q", got, want)
	}
}
