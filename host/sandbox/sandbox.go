// Package sandbox serves, inside the hub, fakes of every external API the
// hub and its built-in connectors talk to — the WhatsApp Graph API, Slack,
// HubSpot, Bitrix24, Zendesk, Freshdesk and a webhook receiver — the same
// fakes the tests use. With `sandbox: true` every api_url, token and
// secret left unset points at them, so a fresh machine shows the whole
// flow with no account anywhere; GET /sandbox shows what each received.
package sandbox

import (
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// Credentials the fakes expect; the sandbox fills them in.
const (
	GraphToken    = "sandbox-graph-token"
	HubSpotToken  = "sandbox-hubspot-token"
	WebhookSecret = "sandbox-webhook-secret"
	PhoneNumberID = "106540352242922" // the business number of testdata/whatsapp
	// BusinessAccountID is the WABA of testdata/whatsapp, whose template
	// catalogue (Catalog) the Graph fake serves.
	BusinessAccountID = "102290129340398"
	DisplayNumber     = "15550783881"
	graphVersion      = "/v23.0"
	statusInterval    = 2 * time.Second
)

// Sandbox is the set of fakes.
type Sandbox struct {
	base    string // http://host:port/sandbox
	handler http.Handler
	Graph   *graphtest.Server
	Slack   *slacktest.Server
	fakes   map[string]fake
}

type fake struct {
	handler  http.Handler
	snapshot func() any
}

// New builds the fakes for a hub reachable at hubURL (http://host:port).
// The Graph fake posts signed status webhooks for what it accepts back to
// the hub, so sent → delivered → read show up as they would.
func New(hubURL string, appSecret string) *Sandbox {
	s := &Sandbox{base: hubURL + "/sandbox", fakes: map[string]fake{}}
	s.Graph = graphtest.NewServer(graphtest.WithAccessToken(GraphToken), graphtest.WithPhoneNumber(PhoneNumberID, DisplayNumber),
		graphtest.WithStatusWebhook(graphtest.StatusWebhook{URL: hubURL + "/webhooks/whatsapp", AppSecret: appSecret}),
		graphtest.WithAutoStatuses(statusInterval, "sent", "delivered", "read"),
		graphtest.WithCatalog(Catalog...))
	s.Slack = slacktest.NewServer()
	hub := hubspottest.NewServer(hubspottest.WithToken(HubSpotToken))
	bx := bitrix24test.NewServer()
	zd := zendesktest.NewServer()
	fd := freshdesktest.NewServer()
	wh := webhooktest.NewHandler([]byte(WebhookSecret))
	s.fakes["whatsapp"] = fake{s.Graph, s.Graph.Snapshot}
	s.fakes["slack"] = fake{s.Slack, s.Slack.Snapshot}
	s.fakes["hubspot"] = fake{hub, hub.Snapshot}
	s.fakes["bitrix24"] = fake{bx, bx.Snapshot}
	s.fakes["zendesk"] = fake{zd, zd.Snapshot}
	s.fakes["freshdesk"] = fake{fd, fd.Snapshot}
	s.fakes["webhook"] = fake{wh, func() any { return map[string]any{"received": wh.Delivered()} }}
	mux := http.NewServeMux()
	for name, f := range s.fakes {
		mux.Handle("/sandbox/"+name+"/", http.StripPrefix("/sandbox/"+name, f.handler))
	}
	mux.HandleFunc("GET /sandbox", s.index)
	mux.HandleFunc("GET /sandbox/{$}", s.index)
	s.handler = mux
	return s
}

// Close stops the fakes' background work.
func (s *Sandbox) Close() { s.Graph.Close() }

// URL is where a fake is served.
func (s *Sandbox) URL(name string) string { return s.base + "/" + name }

// Apply points everything the configuration leaves unset at the fakes of
// a hub reachable at hubURL: the Graph API and its token, and each
// built-in connector's api_url, credentials and secrets. `wahub check`
// applies it too, so that the shipped configuration validates.
func Apply(cfg *config.Config, hubURL string) {
	s := &Sandbox{base: hubURL + "/sandbox"}
	wa := &cfg.WhatsApp
	if wa.APIURL == "" || strings.HasPrefix(wa.APIURL, "https://graph.facebook.com") {
		wa.APIURL = s.URL("whatsapp") + graphVersion
	}
	if wa.BusinessAccountID == "" {
		wa.BusinessAccountID = BusinessAccountID
	}
	if wa.AccessToken.Reveal() == "" {
		wa.AccessToken = config.Secret(GraphToken)
	}
	for _, cc := range cfg.Connectors {
		if cc.Config == nil || cc.External() {
			continue
		}
		c := cc.Config
		set := func(k string, v any) {
			if cur, ok := c[k]; !ok || cur == "" || cur == nil {
				c[k] = v
			}
		}
		switch cc.Plugin {
		case "slack":
			set("api_url", s.URL("slack")+"/")
			set("token", slacktest.DefaultToken)
			set("signing_secret", slacktest.DefaultSigningSecret)
			set("channel", slacktest.DefaultChannel)
		case "hubspot":
			set("api_url", s.URL("hubspot"))
			set("token", HubSpotToken)
		case "bitrix24":
			if _, ok := c["webhook_url"]; !ok {
				set("api_url", s.URL("bitrix24"))
				set("user_id", bitrix24test.DefaultUserID)
				set("token", bitrix24test.DefaultToken)
			}
		case "zendesk":
			set("api_url", s.URL("zendesk"))
			set("email", zendesktest.DefaultEmail)
			set("token", zendesktest.DefaultToken)
			set("webhook_secret", zendesktest.DefaultWebhookSecret)
		case "freshdesk":
			set("api_url", s.URL("freshdesk"))
			set("api_key", freshdesktest.DefaultAPIKey)
			set("webhook_secret", "sandbox-freshdesk-webhook-secret")
		case "webhook":
			set("url", s.URL("webhook")+"/")
			set("secret", WebhookSecret)
		}
	}
}

// Handler serves GET /sandbox and each fake under /sandbox/<name>/.
func (s *Sandbox) Handler() http.Handler { return s.handler }

func (s *Sandbox) snapshot() map[string]any {
	out := map[string]any{}
	for name, f := range s.fakes {
		out[name] = f.snapshot()
	}
	return out
}

var page = template.Must(template.New("sandbox").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>wahub sandbox</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}h2{margin-top:2em}</style></head>
<body><h1>wahub sandbox</h1>
<p>What each fake external API received from the hub. JSON: <code>GET /sandbox?format=json</code>. Refresh to update.</p>
{{range .}}<h2>{{.Name}}</h2><p><code>{{.URL}}</code></p><pre>{{.JSON}}</pre>{{end}}
</body></html>`))

func (s *Sandbox) index(w http.ResponseWriter, r *http.Request) {
	snap := s.snapshot()
	if r.URL.Query().Get("format") == "json" || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(snap)
		return
	}
	type section struct{ Name, URL, JSON string }
	var secs []section
	names := make([]string, 0, len(snap))
	for n := range snap {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, _ := json.MarshalIndent(snap[n], "", "  ")
		secs = append(secs, section{n, s.URL(n) + "/", string(b)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, secs)
}

// Catalog is the sandbox business's message templates: the ones the
// shipped connectors.yaml's triggers send, and a few to try the
// send-time checks on (wahub templates lists them).
var Catalog = []graphtest.Template{
	{ID: "1689556908129832", Name: "after_hours", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY",
		Components: json.RawMessage(`[{"type":"BODY","text":"Olá! Estamos fora do horário de atendimento; respondemos a partir das 9h."}]`)},
	{ID: "1689556908129833", Name: "optout_confirmation", Language: "pt_BR", Status: "APPROVED", Category: "UTILITY",
		Components: json.RawMessage(`[{"type":"BODY","text":"Você não receberá mais mensagens de marketing. Responda VOLTAR para voltar a recebê-las."}]`)},
	{ID: "1689556908129834", Name: "order_update", Language: "en_US", Status: "APPROVED", Category: "UTILITY", ParameterFormat: "POSITIONAL",
		Components: json.RawMessage(`[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"Hi {{1}}, order #{{2}} is on its way."},` +
			`{"type":"BUTTONS","buttons":[{"type":"URL","text":"Track","url":"https://shop.example/track/{{1}}"},{"type":"QUICK_REPLY","text":"Talk to us"}]}]`)},
	{ID: "1689556908129835", Name: "promo", Language: "pt_BR", Status: "APPROVED", Category: "MARKETING",
		Components: json.RawMessage(`[{"type":"BODY","text":"{{1}}, 20% de desconto só hoje!"},{"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Parar promoções"}]}]`)},
}
