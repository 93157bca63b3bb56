// Package sandbox serves, inside the hub, fakes of every external API the
// hub and its built-in connectors talk to — the WhatsApp Graph API, Slack,
// HubSpot, Bitrix24, Zendesk, Freshdesk and a webhook receiver — the same
// fakes the tests use. With `sandbox: true` every api_url, token and
// secret left unset points at them, so a fresh machine shows the whole
// flow with no account anywhere; GET /sandbox shows what each received.
package sandbox

import (
	"encoding/json"
	"fmt"
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
	GraphToken     = "sandbox-graph-token"
	HubSpotToken   = "sandbox-hubspot-token"
	WebhookSecret  = "sandbox-webhook-secret"
	PhoneNumberID  = "106540352242922" // the business number of testdata/whatsapp
	DisplayNumber  = "15550783881"
	graphVersion   = "/v23.0"
	statusInterval = 2 * time.Second
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
		graphtest.WithAutoStatuses(statusInterval, "sent", "delivered", "read"))
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

// The hub's own secrets when the sandbox is on and the configuration
// leaves them unset. They are published (in this file and the README), so
// a hub with the sandbox off refuses them: see ProductionProblems.
const (
	AppSecret   = "sandbox-app-secret"
	VerifyToken = "sandbox-verify-token"
	AdminToken  = "sandbox-admin-token"
)

// connectorDefault is a config key the sandbox fills for a built-in
// plugin. secret marks the ones that decide what the hub or a receiver
// trusts (signing and webhook secrets, which the operator chooses): a
// production hub must not run with a published value there. API tokens
// are issued by the external service, which refuses the fakes' values
// anyway.
type connectorDefault struct {
	key    string
	value  string
	secret bool
}

// connectorDefaults are the credentials each built-in plugin gets pointed
// at the fakes with. api_url is added by Apply (it depends on the hub's
// address).
var connectorDefaults = map[string][]connectorDefault{
	"slack": {
		{"token", slacktest.DefaultToken, false},
		{"signing_secret", slacktest.DefaultSigningSecret, true},
		{"channel", slacktest.DefaultChannel, false},
	},
	"hubspot": {{"token", HubSpotToken, false}},
	"bitrix24": {
		{"user_id", bitrix24test.DefaultUserID, false},
		{"token", bitrix24test.DefaultToken, false},
	},
	"zendesk": {
		{"email", zendesktest.DefaultEmail, false},
		{"token", zendesktest.DefaultToken, false},
		{"webhook_secret", zendesktest.DefaultWebhookSecret, true},
	},
	"freshdesk": {
		{"api_key", freshdesktest.DefaultAPIKey, false},
		{"webhook_secret", FreshdeskWebhookSecret, true},
	},
	"webhook": {{"secret", WebhookSecret, true}},
}

// FreshdeskWebhookSecret is what the sandbox's Freshdesk automation would
// send; the fake itself does not call back.
const FreshdeskWebhookSecret = "sandbox-freshdesk-webhook-secret"

// ApplySecrets fills the hub's own secrets left unset (app secret, verify
// token, admin token) with the sandbox's published ones. Every command
// that loads a configuration with sandbox: true calls it, so that
// `simulate` signs with the secret `serve` verifies and the CLI's admin
// calls carry the token the hub expects. It does nothing with the
// sandbox off.
func ApplySecrets(cfg *config.Config) {
	if !cfg.Sandbox {
		return
	}
	wa := &cfg.WhatsApp
	if len(wa.AppSecret) == 0 {
		wa.AppSecret = []config.Secret{AppSecret}
	}
	if wa.VerifyToken.Reveal() == "" {
		wa.VerifyToken = config.Secret(VerifyToken)
	}
	if cfg.Server.AdminToken.Reveal() == "" {
		cfg.Server.AdminToken = config.Secret(AdminToken)
	}
}

// published is every secret value the sandbox hands out.
func published() map[string]bool {
	m := map[string]bool{AppSecret: true, VerifyToken: true, AdminToken: true, GraphToken: true}
	for _, defs := range connectorDefaults {
		for _, d := range defs {
			if d.secret {
				m[d.value] = true
			}
		}
	}
	return m
}

// ProductionProblems reports, for a configuration with the sandbox off,
// every secret that still holds one of the sandbox's published values:
// anyone could sign webhooks, call the admin API or impersonate a
// connector's system with it. `wahub check` and `wahub serve` refuse such
// a configuration (exit 2), naming each key.
func ProductionProblems(cfg *config.Config) []error {
	if cfg.Sandbox {
		return nil
	}
	pub := published()
	var out []error
	refuse := func(key, what string) {
		out = append(out, &config.Error{Key: key, Msg: "holds a published sandbox default, which anyone can use; " +
			"with sandbox: false set " + what})
	}
	for i, s := range cfg.WhatsApp.AppSecret {
		if pub[s.Reveal()] {
			key := "whatsapp.app_secret"
			if len(cfg.WhatsApp.AppSecret) > 1 {
				key = fmt.Sprintf("whatsapp.app_secret[%d]", i)
			}
			refuse(key, "the App secret of Meta's App Dashboard › App settings › Basic (export WHATSAPP_APP_SECRET)")
		}
	}
	if pub[cfg.WhatsApp.VerifyToken.Reveal()] {
		refuse("whatsapp.verify_token", "a random token of your own, and type the same in App Dashboard › WhatsApp › Configuration (export WHATSAPP_VERIFY_TOKEN)")
	}
	if pub[cfg.WhatsApp.AccessToken.Reveal()] {
		refuse("whatsapp.access_token", "the system user's access token from Meta's Business Manager (export WHATSAPP_ACCESS_TOKEN)")
	}
	if pub[cfg.Server.AdminToken.Reveal()] {
		refuse("server.admin_token", "a long random token of your own, e.g. `openssl rand -hex 32` (export WAHUB_ADMIN_TOKEN), or leave it empty to turn the admin API off")
	}
	names := make([]string, 0, len(cfg.Connectors))
	for name := range cfg.Connectors {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cc := cfg.Connectors[name]
		if !cc.Enabled {
			continue
		}
		conf := cc.Config.Reveal()
		keys := make([]string, 0, len(conf))
		for k := range conf {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if v, ok := conf[k].(string); ok && pub[v] {
				refuse("connectors."+name+".config."+k, "the credential of your "+cc.Plugin+" account")
			}
		}
	}
	return out
}

// Apply points everything the configuration leaves unset at the fakes of
// a hub reachable at hubURL: the hub's own secrets, the Graph API and its
// token, and each built-in connector's api_url, credentials and secrets.
// `wahub check` applies it too, so that the shipped configuration
// validates.
func Apply(cfg *config.Config, hubURL string) {
	ApplySecrets(cfg)
	s := &Sandbox{base: hubURL + "/sandbox"}
	wa := &cfg.WhatsApp
	if wa.APIURL == "" || strings.HasPrefix(wa.APIURL, "https://graph.facebook.com") {
		wa.APIURL = s.URL("whatsapp") + graphVersion
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
		case "hubspot", "zendesk", "freshdesk":
			set("api_url", s.URL(cc.Plugin))
		case "bitrix24":
			if _, ok := c["webhook_url"]; ok {
				continue // an inbound-webhook URL carries its own credentials
			}
			set("api_url", s.URL("bitrix24"))
		case "webhook":
			set("url", s.URL("webhook")+"/")
		}
		for _, d := range connectorDefaults[cc.Plugin] {
			set(d.key, d.value)
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
