package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

const waba = "102290129340398"

// templatesCatalog is a WABA with more templates than one page of the
// hub's listing (100), so the catalogue arrives in three pages.
func templatesCatalog() []graphtest.Template {
	cat := []graphtest.Template{
		{ID: "1", Name: "order_update", Language: "en_US", Status: "APPROVED", Category: "UTILITY",
			Components: json.RawMessage(`[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"Hi {{1}}, order #{{2}} is on its way."}]`)},
		{ID: "2", Name: "hello", Language: "en_US", Status: "APPROVED", Category: "UTILITY",
			Components: json.RawMessage(`[{"type":"BODY","text":"Hello!"}]`)},
		{ID: "3", Name: "promo", Language: "pt_BR", Status: "APPROVED", Category: "MARKETING",
			Components: json.RawMessage(`[{"type":"BODY","text":"20% off today"}]`)},
	}
	for i := range 227 {
		cat = append(cat, graphtest.Template{ID: fmt.Sprint(100 + i), Name: fmt.Sprintf("filler_%03d", i), Language: "en_US",
			Status: "APPROVED", Category: "UTILITY", Components: json.RawMessage(`[{"type":"BODY","text":"x"}]`)})
	}
	return cat
}

func templatesConfig(graphURL string) string {
	return fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: %s
  business_account_id: "%s"
  template_categories: {promo: utility}   # the catalogue knows better: MARKETING
teams: {support: {connectors: []}, sales: {connectors: []}}
affinity: {rules_can_move: [sales-button]}   # the click takes Bruno from support to sales
routes:
  - {name: sales-button, when: {event: [button.clicked], button: [talk_to_sales]}, team: sales}
  - {name: default, team: support}
`, graphURL, waba)
}

func (h *hubProc) catalogue() store.Catalogue {
	h.t.Helper()
	var c store.Catalogue
	if code := h.api("GET", "/api/v1/templates", nil, &c); code != 200 {
		h.t.Fatalf("GET /api/v1/templates: %d", code)
	}
	return c
}

func templateRequests(fake *graphtest.Server, name string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Kind == "template" && strings.Contains(string(r.Body), `"name":"`+name+`"`) {
			n++
		}
	}
	return n
}

func templateStatusWebhook(name, lang, event string) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":%q,"time":%d,"changes":[{"field":"message_template_status_update","value":{"event":%q,"message_template_id":2,"message_template_name":%q,"message_template_language":%q,"reason":"LOW_QUALITY","message_template_category":"UTILITY"}}]}]}`,
		waba, time.Now().Unix(), event, name, strings.ReplaceAll(lang, "_", "-")))
}

func TestTemplatesCatalogueAndSendChecks(t *testing.T) {
	fake, url := newGraph(t, graphtest.WithCatalog(templatesCatalog()...))
	h := newHub(t, templatesConfig(url))

	// The catalogue is fetched at start, in pages.
	deadline := time.Now().Add(30 * time.Second)
	var cat store.Catalogue
	for cat = h.catalogue(); cat.RefreshedAt == nil; cat = h.catalogue() {
		if time.Now().After(deadline) {
			t.Fatalf("catalogue never fetched: %+v", cat)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(cat.Templates) != 230 || fake.TemplateListings() != 3 {
		t.Fatalf("catalogue: %d templates in %d pages, want 230 in 3", len(cat.Templates), fake.TemplateListings())
	}

	h.postText("5511987650001", "wamid.E2E.tpl.in1", "oi", time.Now())
	h.postText("5521998760002", "wamid.E2E.tpl.in2", "olá", time.Now())
	for _, id := range []string{"5511987650001", "5521998760002"} {
		for deadline := time.Now().Add(10 * time.Second); h.api("GET", "/api/v1/contacts/"+id, nil, nil) != 200; {
			if time.Now().After(deadline) {
				t.Fatal("contact never stored")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	image := map[string]any{"type": "header", "parameters": []any{map[string]any{"type": "image", "image": map[string]any{"link": "https://shop.example/box.jpg"}}}}
	body := func(n int) map[string]any {
		ps := []any{}
		for i := range n {
			ps = append(ps, map[string]any{"type": "text", "text": fmt.Sprint("p", i)})
		}
		return map[string]any{"type": "body", "parameters": ps}
	}
	tmpl := func(name, lang string, comps ...any) map[string]any {
		return map[string]any{"to": "5511987650001", "template": map[string]any{"name": name, "language": lang, "components": comps}}
	}
	refusals := []struct {
		name string
		body map[string]any
		code string
		says string
	}{
		{"wrong parameter count", tmpl("order_update", "en_US", image, body(1)), "template_parameters", "the body takes 2 parameter(s)"},
		{"header missing", tmpl("order_update", "en_US", body(2)), "template_parameters", "header takes one image"},
		{"unknown template", tmpl("no_such", "en_US"), "template_unknown", "no_such"},
		{"wrong language", tmpl("order_update", "pt_BR", image, body(2)), "template_language", "it has en_US"},
		{"too many buttons", map[string]any{"to": "5521998760002", "interactive": map[string]any{"type": "button", "body": map[string]any{"text": "?"},
			"action": map[string]any{"buttons": []any{btn("a", "A"), btn("b", "B"), btn("c", "C"), btn("d", "D")}}}}, "interactive_invalid", "at most 3"},
	}
	for _, tt := range refusals {
		code, a := h.send(tt.body)
		if code != 422 || a.Error.Code != tt.code || !strings.Contains(a.Error.Message, tt.says) {
			t.Errorf("%s: %d %+v, want 422 %s saying %q", tt.name, code, a.Error, tt.code, tt.says)
		}
	}
	if n := templateRequests(fake, "order_update"); n != 0 {
		t.Errorf("refused templates reached the Graph fake %d times", n)
	}

	// A good one goes out.
	code, a := h.send(tmpl("order_update", "en_US", image, body(2)))
	if code != 202 {
		t.Fatalf("good template: %d %+v", code, a)
	}
	h.waitMessage(a.ID, "accepted", func(r store.OutboundRecord) bool { return r.WAMID != "" })
	code, a = h.send(tmpl("hello", "en_US"))
	if code != 202 {
		t.Fatalf("hello: %d %+v", code, a)
	}
	h.waitMessage(a.ID, "accepted", func(r store.OutboundRecord) bool { return r.WAMID != "" })

	// Paused by webhook: refused at once, without a refresh.
	fake.SetTemplateStatus("hello", "en_US", "PAUSED")
	h.postRaw(templateStatusWebhook("hello", "en_US", "PAUSED"))
	code, a = h.send(tmpl("hello", "en_US"))
	if code != 422 || a.Error.Code != "template_paused" {
		t.Fatalf("paused template: %d %+v, want 422 template_paused", code, a)
	}
	if n := templateRequests(fake, "hello"); n != 1 {
		t.Errorf("hello requested %d times at the fake, want 1", n)
	}
	out, stderr, exit := h.wahub("templates", "--url", h.url(""), "--status", "PAUSED")
	if exit != 0 || !strings.Contains(out, "hello") || !strings.Contains(out, "PAUSED (LOW_QUALITY)") || strings.Contains(out, "order_update") {
		t.Errorf("wahub templates --status PAUSED: exit %d\n%s%s", exit, out, stderr)
	}

	// A refresh picks up what changed at Meta, in pages again.
	listings := fake.TemplateListings()
	cat2 := templatesCatalog()
	cat2[1].Status = "APPROVED" // reinstated
	cat2 = append(cat2, graphtest.Template{ID: "9", Name: "new_one", Language: "es", Status: "PENDING", Category: "MARKETING"})
	fake.SetCatalog(cat2...)
	var res map[string]int
	if code := h.api("POST", "/api/v1/templates/refresh", nil, &res); code != 200 || res["templates"] != 231 || res["added"] != 1 || res["changed"] != 1 {
		t.Fatalf("refresh: %d %v", code, res)
	}
	if fake.TemplateListings()-listings != 3 {
		t.Errorf("refresh took %d pages, want 3", fake.TemplateListings()-listings)
	}
	if code, a = h.send(tmpl("hello", "en_US")); code != 202 {
		t.Errorf("reinstated template: %d %+v", code, a)
	}
	if code, a = h.send(tmpl("new_one", "es")); code != 422 || a.Error.Code != "template_not_approved" {
		t.Errorf("pending template: %d %+v", code, a)
	}

	// A marketing template to a customer who opted out: the catalogue's
	// category wins over template_categories.
	if code := h.api("PATCH", "/api/v1/contacts/5511987650001", map[string]any{"consent": "revoked"}, nil); code != 200 {
		t.Fatalf("opt out: %d", code)
	}
	if code, a = h.send(tmpl("promo", "pt_BR")); code != 422 || a.Error.Code != "opted_out" || !strings.Contains(a.Error.Message, "MARKETING") {
		t.Errorf("marketing to an opted-out contact: %d %+v", code, a)
	}

	// Interactive buttons arrive at the Graph fake in the documented
	// shape; the click comes back as button.clicked and routes by its id.
	code, a = h.send(map[string]any{"to": "5521998760002", "reply_to": "wamid.E2E.tpl.in2", "interactive": map[string]any{
		"type": "button", "body": map[string]any{"text": "Falar com quem?"},
		"action": map[string]any{"buttons": []any{btn("talk_to_sales", "Vendas"), btn("talk_to_support", "Suporte")}}}})
	if code != 202 {
		t.Fatalf("interactive: %d %+v", code, a)
	}
	wamid := h.waitMessage(a.ID, "accepted", func(r store.OutboundRecord) bool { return r.WAMID != "" }).WAMID
	var sent graphtest.Sent
	for _, s := range fake.Sent() {
		if s.WAMID == wamid {
			sent = s
		}
	}
	var wire struct {
		Type    string `json:"type"`
		Context struct {
			MessageID string `json:"message_id"`
		} `json:"context"`
		Interactive struct {
			Type   string                `json:"type"`
			Body   struct{ Text string } `json:"body"`
			Action struct {
				Buttons []struct {
					Type  string                     `json:"type"`
					Reply struct{ ID, Title string } `json:"reply"`
				} `json:"buttons"`
			} `json:"action"`
		} `json:"interactive"`
	}
	if err := json.Unmarshal(sent.Body, &wire); err != nil || wire.Type != "interactive" || wire.Interactive.Type != "button" ||
		len(wire.Interactive.Action.Buttons) != 2 || wire.Interactive.Action.Buttons[0].Type != "reply" ||
		wire.Interactive.Action.Buttons[0].Reply.ID != "talk_to_sales" || wire.Context.MessageID != "wamid.E2E.tpl.in2" {
		t.Fatalf("interactive at the fake: %s (%v)", sent.Body, err)
	}
	h.postRaw([]byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":%q,"changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},"contacts":[{"profile":{"name":"Bruno"},"wa_id":"5521998760002"}],"messages":[{"context":{"from":"15550783881","id":%q},"from":"5521998760002","id":"wamid.E2E.tpl.click","timestamp":"%d","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"talk_to_sales","title":"Vendas"}}}]}}]}]}`,
		waba, businessNumber, wamid, time.Now().Unix())))
	var click sdk.Event
	for deadline := time.Now().Add(20 * time.Second); ; {
		for _, ev := range h.allEvents() {
			if ev.Type == sdk.TypeButtonClicked && ev.Route != nil {
				click = ev
			}
		}
		if click.ID != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if click.Message == nil || click.Message.Button == nil || click.Message.Button.ID != "talk_to_sales" ||
		click.Message.Context == nil || click.Message.Context.ID != wamid || click.Route.Team != "sales" || click.Route.Rule != "sales-button" {
		t.Fatalf("the click: %+v route %+v", click.Message, click.Route)
	}

	// A reaction to the customer's message.
	code, a = h.send(map[string]any{"to": "5521998760002", "reaction": map[string]any{"message_id": "wamid.E2E.tpl.click", "emoji": "👍"}})
	if code != 202 {
		t.Fatalf("reaction: %d %+v", code, a)
	}
	wamid = h.waitMessage(a.ID, "accepted", func(r store.OutboundRecord) bool { return r.WAMID != "" }).WAMID
	for _, s := range fake.Sent() {
		if s.WAMID == wamid && (s.Kind != "reaction" || !strings.Contains(string(s.Body), `"message_id":"wamid.E2E.tpl.click"`)) {
			t.Errorf("reaction at the fake: %s", s.Body)
		}
	}
}

func btn(id, title string) map[string]any {
	return map[string]any{"type": "reply", "reply": map[string]any{"id": id, "title": title}}
}
