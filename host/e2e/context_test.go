package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// Issue 20: what makes a conversation readable for an agent — the ad a
// lead came from, the message a customer quotes, a reaction — reaches
// Slack, Zendesk and HubSpot; an agent's answer from Slack marks the
// customer's message read (with the typing indicator) at the Graph API.
func TestContextReachesSlackZendeskHubSpot(t *testing.T) {
	graph, graphURL := newGraph(t)
	slack, slackURL := slackNewFake(t)
	zd := zendesktest.NewServer(zendesktest.WithWebhookSecret(helpdeskZendeskSecret))
	zdSrv := httptest.NewServer(zd)
	t.Cleanup(zdSrv.Close)
	hs := hubspottest.NewServer(hubspottest.WithToken("pat-na1-e2e-test-token"), hubspottest.WithContactProperties("whatsapp_lead_source"))
	hsSrv := httptest.NewServer(hs)
	t.Cleanup(hsSrv.Close)

	h := newHub(t, fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: %s
teams:
  support: {connectors: [%s, zendesk, hubspot]}
routes:
  - {name: default, team: support}
connectors:
  %s:
    plugin: slack
    config: {token: %s, signing_secret: %s, channel: %s, api_url: %s, timeout: 5s}
    retry: {max_attempts: 10, initial_interval: 50ms, max_interval: 200ms}
  zendesk:
    plugin: zendesk
    config: {api_url: %q, email: %q, token: %q, webhook_secret: %q, timeout: 5s}
    retry: {max_attempts: 10, initial_interval: 50ms, max_interval: 200ms}
  hubspot:
    plugin: hubspot
    config: {token: pat-na1-e2e-test-token, api_url: %q, search_lag: 1s, lead_source_property: whatsapp_lead_source}
    retry: {max_attempts: 10, initial_interval: 50ms, max_interval: 200ms}
`, graphURL, slackConnector, slackConnector, slacktest.DefaultToken, slackSecret, slackChannel, slackURL,
		zdSrv.URL, zendesktest.DefaultEmail, zendesktest.DefaultToken, helpdeskZendeskSecret, hsSrv.URL))
	for _, name := range []string{slackConnector, "zendesk", "hubspot"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	const customer = "5511987650001"
	message := func(wamid, extra string) []byte {
		return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":"%d",%s}]}}]}]}`,
			businessNumber, customer, customer, wamid, time.Now().Unix(), extra))
	}

	// 1. A lead from a Click-to-WhatsApp ad.
	h.postRaw(message("wamid.ctx.1", `"type":"text","text":{"body":"Oi, vi o anúncio das suculentas"},"referral":{"source_url":"https://fb.me/3cr4Wqqkv","source_id":"120226305854810726","source_type":"ad","body":"Summer Succulents are here!","headline":"Chat with us","media_type":"image","ctwa_clid":"Aff-n8ZTe"}`))
	root, _ := slackWaitThread(t, slack, 1, "suculentas", 0)
	// The plugin records the thread after posting it; an agent's reply is
	// only understood once it has.
	h.waitConnector(slackConnector, "the first message delivered", func(c admin.ConnectorStatus) bool { return c.Delivered >= 1 && c.Pending == 0 })
	if b := contextBlocks(root.Blocks); !strings.Contains(b, "Click-to-WhatsApp ad") || !strings.Contains(b, "Chat with us") {
		t.Errorf("the Slack root does not name the ad: %s", root.Blocks)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait("the HubSpot contact", func() bool { return len(crmHubSpotContacts(hs, customer)) == 1 })
	contact := crmHubSpotContacts(hs, customer)[0]
	if src := contact.Properties["whatsapp_lead_source"]; !strings.Contains(src, "120226305854810726") || !strings.Contains(src, "Chat with us") ||
		!strings.Contains(src, "Aff-n8ZTe") || contact.Properties["lifecyclestage"] != "lead" {
		t.Errorf("HubSpot contact: %v, want the ad as its lead source and stage lead", contact.Properties)
	}

	// 2. The agent answers in the Slack thread: the customer's message is
	// marked read with the typing indicator, then the answer goes out.
	const answer = "Olá Ana! As suculentas chegam em 2 dias."
	agentMsg, body := slack.HumanReply("Ev0CTX1", slackChannel, root.TS, slackAgent, answer)
	if code, ans := slackHook(t, h, slackSecret, body, 0); code != 200 {
		t.Fatalf("agent reply: %d %s", code, ans)
	}
	wait("the agent's answer at the Graph fake", func() bool { return len(slackSentTo(graph, customer)) == 1 })
	reads := graph.MarkedRead()
	if len(reads) != 1 || reads[0].MessageID != "wamid.ctx.1" || reads[0].Typing != "text" || reads[0].PhoneNumberID != businessNumber {
		t.Fatalf("marked read at the Graph fake: %+v, want wamid.ctx.1 with the typing indicator", reads)
	}
	sentWAMID := slackSentTo(graph, customer)[0].WAMID
	// A customer answers seconds later, after the hub has recorded what
	// Meta accepted (message.sent): the hub finds the quoted message by it.
	wait("message.sent of the answer", func() bool {
		for _, ev := range h.allEvents() {
			if ev.Type == "message.sent" && ev.Message != nil && ev.Message.ID == sentWAMID {
				return true
			}
		}
		return false
	})

	// 3. The customer quotes the answer, 4. then reacts to it.
	h.postRaw(message("wamid.ctx.2", fmt.Sprintf(`"context":{"from":"15550783881","id":%q},"type":"text","text":{"body":"Ótimo, e o frete?"}`, sentWAMID)))
	h.postRaw(message("wamid.ctx.3", fmt.Sprintf(`"type":"reaction","reaction":{"message_id":%q,"emoji":"👍"}`, sentWAMID)))

	// Slack: the quote in the thread; the reaction on the agent's message.
	slackWait(t, slack, 30*time.Second, "the quoted reply in the thread", func() bool {
		for _, m := range slackBotReplies(slack, root.TS) {
			if b := contextBlocks(m.Blocks); strings.Contains(b, "Ótimo, e o frete?") && strings.Contains(b, "> *You:* "+answer) {
				return true
			}
		}
		return false
	})
	slackWait(t, slack, 30*time.Second, "👍 on the agent's Slack message", func() bool {
		for _, r := range slack.Reactions() {
			if r.TS == agentMsg.TS && r.Name == "+1" {
				return true
			}
		}
		return false
	})
	for _, m := range slackBotReplies(slack, root.TS) {
		if strings.Contains(m.Text, "👍") || strings.Contains(contextBlocks(m.Blocks), "Reacted") {
			t.Errorf("the reaction was posted as a message: %q", m.Text)
		}
	}

	// Zendesk: the comment quotes the answer; the reaction is a short
	// line about it; the first comment names the ad.
	var comments []string
	wait("the Zendesk comments", func() bool {
		comments = nil
		for _, tk := range zd.Tickets() {
			for _, c := range tk.Comments {
				comments = append(comments, c.Body)
			}
		}
		return len(comments) >= 3 && strings.Contains(strings.Join(comments, "\n"), "👍")
	})
	all := strings.Join(comments, "\n---\n")
	for _, want := range []string{"Click-to-WhatsApp ad 120226305854810726", "> you wrote: “" + answer + "”\nÓtimo, e o frete?", "[Reaction] 👍 to you wrote: “" + answer + "”"} {
		if !strings.Contains(all, want) {
			t.Errorf("Zendesk comments lack %q:\n%s", want, all)
		}
	}

	// HubSpot: the communications say what was quoted and reacted to.
	var logged []string
	wait("the HubSpot communications", func() bool {
		logged = crmHubSpotLogged(t, hs, contact.ID)
		return strings.Contains(strings.Join(logged, "\n"), "👍")
	})
	all = strings.Join(logged, "\n---\n")
	for _, want := range []string{"(from Click-to-WhatsApp ad 120226305854810726", "Ótimo, e o frete?\n(replying to your message: " + answer + ")", "[reaction] 👍\n(on your message: " + answer + ")"} {
		if !strings.Contains(all, want) {
			t.Errorf("HubSpot communications lack %q:\n%s", want, all)
		}
	}
}

// contextBlocks is a message's blocks as JSON without HTML escaping, so
// that "> quote" reads as sent.
func contextBlocks(raw []byte) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.String()
}
