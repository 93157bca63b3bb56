package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/sdk"
)

// routingConfig has two teams, each a webhook receiver, a VIP rule that
// may take a conversation from the team that has it, and a trigger on
// opt-outs.
func routingConfig(billingURL, supportURL string) string {
	return `
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
teams:
  billing: {connectors: [billing-hook]}
  support: {connectors: [support-hook]}
affinity: {rules_can_move: [vip]}
routes:
  - {name: vip, when: {contact: {tier: gold}}, team: billing}
  - {name: billing, when: {keywords: [fatura, boleto]}, team: billing}
  - {name: default, team: support}
triggers:
  - {name: goodbye, on: [optin.revoked], reply: {text: "Você não receberá mais mensagens."}}
subscriptions:
  - {connector: support-hook, events: ["optin.*"]}
connectors:
  billing-hook:
    plugin: webhook
    config: {url: "` + billingURL + `", secret: ` + receiverSecret + `}
    retry: {max_attempts: 6, initial_interval: 50ms, max_interval: 200ms}
  support-hook:
    plugin: webhook
    config: {url: "` + supportURL + `", secret: ` + receiverSecret + `}
    retry: {max_attempts: 6, initial_interval: 50ms, max_interval: 200ms}
`
}

// waitDelivered polls a receiver until it holds n events.
func waitDelivered(t *testing.T, r *webhooktest.Receiver, n int, what string) []sdk.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := r.Delivered()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d events delivered within 30s, want %d", what, len(got), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postText posts a signed one-message webhook from waID, written at at.
func (h *hubProc) postText(waID, wamid, text string, at time.Time) {
	h.t.Helper()
	body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":"%d","type":"text","text":{"body":%q}}]}}]}]}`,
		waID, waID, wamid, at.Unix(), text))
	h.postRaw(body)
}

// postRaw posts a signed webhook body and expects 200.
func (h *hubProc) postRaw(body []byte) {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url("/webhooks/whatsapp"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", ingest.Sign([]byte("test-app-secret"), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("webhook: %d", resp.StatusCode)
	}
}

func TestRoutingTeamsConsentAndExplain(t *testing.T) {
	billing, support := newReceiver(t), newReceiver(t)
	h := newHub(t, routingConfig(billing.URL(), support.URL()))
	for _, name := range []string{"billing-hook", "support-hook"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}

	// Each fixture lands at its team's receiver, with its route.
	if out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("text.json"), fixture("text_billing_keyword.json")); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	b := waitDelivered(t, billing, 1, "billing")
	s := waitDelivered(t, support, 1, "support")
	wantRoute := func(ev sdk.Event, rule, team, connector string) {
		t.Helper()
		if ev.Route == nil || ev.Route.Rule != rule || ev.Route.Team != team || strings.Join(ev.Route.Connectors, ",") != connector {
			t.Errorf("event %s (%s) route %+v, want rule %s team %s connectors [%s]", ev.ID, ev.Contact.Key(), ev.Route, rule, team, connector)
		}
	}
	wantRoute(b[0], "billing", "billing", "billing-hook")
	if b[0].Message == nil || !strings.Contains(b[0].Message.Text, "fatura") {
		t.Errorf("billing got %+v, want the fatura message", b[0].Message)
	}
	wantRoute(s[0], "default", "support", "support-hook")

	// PARAR, posted twice: one opt-out, announced once, its trigger fired
	// once.
	for range 2 {
		if out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("optout_keyword.json")); code != 0 {
			t.Fatalf("simulate: %s%s", out, errOut)
		}
	}
	got := waitDelivered(t, support, 2, "support: the optin.revoked announcement")
	revoked := 0
	for _, ev := range got {
		if ev.Type == sdk.TypeOptinRevoked {
			revoked++
			if ev.Route == nil || strings.Join(ev.Route.Triggers, ",") != "goodbye" {
				t.Errorf("optin.revoked route %+v, want trigger goodbye", ev.Route)
			}
		}
	}
	var c store.Contact
	if code := h.api("GET", "/api/v1/contacts/5521998760002", nil, &c); code != 200 {
		t.Fatalf("GET contact: %d", code)
	}
	if c.Consent.State != "revoked" || c.Consent.Source != "keyword PARAR" || c.Consent.At == nil {
		t.Errorf("consent %+v, want revoked by keyword PARAR", c.Consent)
	}
	// Bruno's conversation stays with billing (affinity): PARAR went there.
	if len(c.Conversations) != 1 || c.Conversations[0].Team != "billing" {
		t.Errorf("conversations %+v, want one with billing", c.Conversations)
	}
	var page struct{ Events []sdk.Event }
	h.api("GET", "/api/v1/events?type=optin.revoked", nil, &page)
	if len(page.Events) != 1 || revoked != 1 {
		t.Errorf("%d optin.revoked in the log, %d delivered; want 1 and 1", len(page.Events), revoked)
	}

	// A gold tier set through the admin API takes Ana's open conversation
	// from support to billing: vip is in affinity.rules_can_move.
	if code := h.api("PATCH", "/api/v1/contacts/5511987650001", map[string]any{"attributes": map[string]any{"tier": "gold"}}, &c); code != 200 || c.Attributes["tier"] != "gold" {
		t.Fatalf("PATCH: %d %+v", code, c)
	}
	if code := h.api("PATCH", "/api/v1/contacts/5511987650001", map[string]any{"team": "nowhere"}, nil); code != 422 {
		t.Errorf("PATCH unknown team: %d, want 422", code)
	}
	// Ten minutes after her first message (text.json), well within the
	// idle timeout: only rules_can_move lets vip take the conversation.
	h.postText("5511987650001", "wamid.E2E.vip.1", "oi de novo", time.Unix(1764000000+600, 0))
	var vip *sdk.Event
	deadline := time.Now().Add(30 * time.Second)
	for vip == nil {
		for _, ev := range billing.Delivered() {
			if ev.Message != nil && ev.Message.ID == "wamid.E2E.vip.1" {
				vip = &ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("billing never got Ana's VIP message; support got %d events", len(support.Delivered()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantRoute(*vip, "vip", "billing", "billing-hook")

	// Stats count the messages by team.
	out, errOut, code := h.wahub("stats", "--since", "8760h", "--url", h.url(""))
	if code != 0 || !strings.Contains(out, "billing") || !strings.Contains(out, "message.received") {
		t.Errorf("wahub stats: exit %d\n%s%s", code, out, errOut)
	}

	// The explanation names the rule that matched and why the others did
	// not, and that Bruno's open conversation stays with billing.
	out, errOut, code = h.wahub("route", "--explain", fixture("text_billing_keyword.json"))
	if code != 0 || !strings.Contains(out, "✓ route billing") || !strings.Contains(out, "✗ route vip") ||
		!strings.Contains(out, "✓ affinity billing") ||
		!strings.Contains(out, "→ rule affinity, team billing, connectors billing-hook") {
		t.Errorf("route --explain: exit %d\n%s%s", code, out, errOut)
	}
	// From standard input, with Ana's stored tier.
	raw, err := os.ReadFile(fixture("text.json"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ana.json")
	os.WriteFile(path, raw, 0o600)
	out, _, _ = h.wahub("route", "--explain", path)
	if !strings.Contains(out, "tier=gold") || !strings.Contains(out, "✓ route vip") {
		t.Errorf("route --explain with stored attributes:\n%s", out)
	}
}
