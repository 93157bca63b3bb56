package freshdesk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConfig(t *testing.T) {
	const key = "s3cr3t-api-key"
	base := `"api_key": "` + key + `"`
	cases := []sdktest.ConfigCase{
		{"domain", `{"domain": "acme", ` + base + `}`, ""},
		{"api_url", `{"api_url": "http://127.0.0.1:9/sandbox/freshdesk", ` + base + `}`, ""},
		{"everything", `{"domain": "acme.freshdesk.com", ` + base + `, "webhook_secret": "0123456789abcdef0123", "priorities": {"billing": 4},
			"priority": 2, "groups": {"billing": 43000001}, "status": 3, "source": 13, "reopen_within": "7d", "tags": ["vip"], "timeout": "5s"}`, ""},
		{"reopen_within 0", `{"domain": "acme", ` + base + `, "reopen_within": 0}`, ""},
		{"reopen_within 72h", `{"domain": "acme", ` + base + `, "reopen_within": "72h"}`, ""},
		{"custom status", `{"domain": "acme", ` + base + `, "status": 7}`, ""},
		{"nothing", `{}`, "connectors.freshdesk.config.domain: required (or api_url)"},
		{"no api_key", `{"domain": "acme"}`, "connectors.freshdesk.config.api_key: required"},
		{"bad domain", `{"domain": "acme freshdesk", ` + base + `}`, "connectors.freshdesk.config.domain: \"acme freshdesk\" is not a domain"},
		{"relative api_url", `{"api_url": "acme.freshdesk.com", ` + base + `}`, "connectors.freshdesk.config.api_url: must be an absolute"},
		{"api_url with credentials", `{"api_url": "https://key:X@acme.freshdesk.com", ` + base + `}`, "connectors.freshdesk.config.api_url: must not carry credentials"},
		{"api_key with colon", `{"domain": "acme", "api_key": "` + key + `:X"}`, "connectors.freshdesk.config.api_key: contains a colon"},
		{"short secret", `{"domain": "acme", ` + base + `, "webhook_secret": "abc"}`, "connectors.freshdesk.config.webhook_secret: too short"},
		{"priority 5", `{"domain": "acme", ` + base + `, "priorities": {"vip": 5}}`, "connectors.freshdesk.config.priorities.vip: 5 is not a priority"},
		{"default priority 0", `{"domain": "acme", ` + base + `, "priority": 0}`, "connectors.freshdesk.config.priority: 0 is not a priority"},
		{"priority as text", `{"domain": "acme", ` + base + `, "priorities": {"vip": "high"}}`, "connectors.freshdesk.config.priorities.vip: expected int"},
		{"resolved status", `{"domain": "acme", ` + base + `, "status": 4}`, "connectors.freshdesk.config.status: 4 cannot be the status of a new ticket"},
		{"bad group", `{"domain": "acme", ` + base + `, "groups": {"billing": 0}}`, "connectors.freshdesk.config.groups.billing: 0 is not a group id"},
		{"bad source", `{"domain": "acme", ` + base + `, "source": 0}`, "connectors.freshdesk.config.source: 0 is not a ticket source"},
		{"reopen_within number", `{"domain": "acme", ` + base + `, "reopen_within": 7}`, "connectors.freshdesk.config.reopen_within: expected a duration such as"},
		{"reopen_within words", `{"domain": "acme", ` + base + `, "reopen_within": "a week"}`, "connectors.freshdesk.config.reopen_within: \"a week\" is not a duration"},
		{"empty tag", `{"domain": "acme", ` + base + `, "tags": ["ok", " "]}`, "connectors.freshdesk.config.tags[1]: \" \" is not a tag"},
		{"bad timeout", `{"domain": "acme", ` + base + `, "timeout": "soon"}`, "connectors.freshdesk.config.timeout: \"soon\" is not a duration such as 10s"},
		{"unknown key", `{"domain": "acme", ` + base + `, "subdomain": "acme"}`, "connectors.freshdesk.config.subdomain: unknown key"},
	}
	sdktest.CheckConfigs(t, freshdesk.New, "freshdesk", cases, key)
}

// api_url may name the account root or its /api/v2; the sandbox mounts
// the fake under a prefix.
func TestAPIURLForms(t *testing.T) {
	for _, suffix := range []string{"", "/", "/api/v2", "/api/v2/"} {
		t.Run("suffix "+suffix, func(t *testing.T) {
			fake := freshdesktest.NewServer()
			mux := http.NewServeMux()
			mux.Handle("/sandbox/freshdesk/", http.StripPrefix("/sandbox/freshdesk", fake))
			srv := httptest.NewServer(mux)
			defer srv.Close()
			r, _ := sdktest.Start(t, freshdesk.New(), "freshdesk", configJSON(t, srv.URL+"/sandbox/freshdesk"+suffix, nil))
			res, err := r.Deliver(context.Background(), []sdk.Event{text("evt_1", "conv", ana, "oi")})
			if err != nil || res[0].Outcome != sdk.Delivered {
				t.Fatalf("%v %+v", err, res)
			}
			if len(fake.Tickets()) != 1 {
				t.Error("no ticket")
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	if info := freshdesk.New().Describe(); info.Name != freshdesk.Name || info.Version != freshdesk.Version {
		t.Errorf("Describe = %+v", info)
	}
	if caps := sdk.Capabilities(freshdesk.New()); len(caps) != 1 || caps[0] != sdk.CapabilityHooks {
		t.Errorf("capabilities %v, want hooks", caps)
	}
}

func TestMessageRendering(t *testing.T) {
	cases := []struct {
		name    string
		msg     sdk.Message
		typ     sdk.EventType
		subject string
		has     []string
		hasNot  []string
	}{
		{name: "text is escaped", msg: sdk.Message{Type: "text", Text: `<script>alert("x")</script> & more`},
			subject: `<script>alert("x")</script> & more`,
			has:     []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more"}, hasNot: []string{"<script>"}},
		{name: "long first line", msg: sdk.Message{Type: "text", Text: strings.Repeat("palavra ", 30)},
			subject: strings.TrimSpace(strings.Repeat("palavra ", 12)) + "…"},
		{name: "button", typ: sdk.TypeButtonClicked, msg: sdk.Message{Type: "interactive", Text: "Falar com vendas", Button: &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas"}},
			subject: "Falar com vendas", has: []string{"<em>Chose:</em> Falar com vendas"}},
		{name: "image with a caption, lost by the hub", msg: sdk.Message{Type: "image", Text: "Foto do produto",
			Media: &sdk.Media{ID: "1003383421387256", MimeType: "image/jpeg", Size: 2048, URL: "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"}},
			subject: "Foto do produto", has: []string{"<em>Image</em> (image/jpeg, 2 KB)", "<div>Foto do produto</div>", "<em>The image could not be retrieved: no media &#34;1003383421387256&#34;.</em>"},
			hasNot: []string{"lookaside"}},
		{name: "voice note, gone at Meta", msg: sdk.Message{Type: "audio", Media: &sdk.Media{ID: "77", MimeType: "audio/ogg; codecs=opus", Voice: true, State: sdk.MediaUnavailable, Reason: "Meta no longer has it"}},
			subject: "Voice message", has: []string{"<em>Voice message</em> (audio/ogg; codecs=opus)", "<em>The voice note could not be retrieved: Meta no longer has it.</em>"}},
		{name: "document, unsafe URL dropped", msg: sdk.Message{Type: "document", Media: &sdk.Media{ID: "9", Filename: "boleto.pdf", URL: "javascript:alert(1)"}},
			subject: "Document boleto.pdf", has: []string{"Document boleto.pdf"}, hasNot: []string{"javascript"}},
		{name: "location", msg: sdk.Message{Type: "location", Location: &sdk.Location{Latitude: -23.55052, Longitude: -46.633308, Name: "Loja Centro"}},
			subject: "Location: Loja Centro", has: []string{"https://www.google.com/maps/search/?api=1&amp;query=-23.550520%2C-46.633308", "Loja Centro"}},
		{name: "contacts", msg: sdk.Message{Type: "contacts", Contacts: []sdk.SharedContact{{Name: "João", Phones: []string{"+55 11 99999-0000"}}}},
			subject: "Shared contacts", has: []string{"<li>João, +55 11 99999-0000</li>"}},
		{name: "reaction", msg: sdk.Message{Type: "reaction", Reaction: &sdk.Reaction{MessageID: "wamid.1", Emoji: "👍"}},
			subject: "Reacted 👍", has: []string{"<em>Reacted</em> 👍"}},
		{name: "unsupported", msg: sdk.Message{Type: "unsupported", Unsupported: "poll_creation"},
			subject: "Unsupported message", has: []string{"poll_creation"}},
		{name: "forwarded", msg: sdk.Message{Type: "text", Text: "olha isso", Context: &sdk.Context{Forwarded: true}},
			subject: "olha isso", has: []string{"<em>Forwarded</em>"}},
		{name: "order without text", msg: sdk.Message{Type: "order"}, subject: "WhatsApp message from Ana Souza", has: []string{"(order message)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, setup{})
			ev := text("evt_1", "conv", ana, "")
			msg := tc.msg
			ev.Message = &msg
			if tc.typ != "" {
				ev.Type = tc.typ
			}
			e.mustDeliver(ev)
			tk := e.onlyTicket()
			if tk.Subject != tc.subject {
				t.Errorf("subject %q, want %q", tk.Subject, tc.subject)
			}
			for _, s := range tc.has {
				if !strings.Contains(tk.Description, s) {
					t.Errorf("description %q lacks %q", tk.Description, s)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(tk.Description, s) {
					t.Errorf("description %q contains %q", tk.Description, s)
				}
			}
		})
	}
}
