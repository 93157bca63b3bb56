// Package sandbox serves, inside the hub, fakes of every external API the
// hub and its built-in connectors talk to — the WhatsApp Graph API and the
// fake each connector declares in package builtin (Slack, HubSpot,
// Bitrix24, Zendesk, Freshdesk, a webhook receiver, and an in-process
// Kafka cluster and NATS JetStream server for the stream connectors) — the
// same fakes the tests use. With `sandbox: true` every api_url, token and
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
	"github.com/wahub/wahub/plugins/builtin"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/sdk"
)

// Credentials the fakes expect; the sandbox fills them in.
const (
	GraphToken    = "sandbox-graph-token"
	HubSpotToken  = hubspottest.SandboxToken
	WebhookSecret = webhooktest.SandboxSecret
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
	fakes   map[string]registry.Fake

	// hubURL and appSecret let the console play the other side: post to
	// the hub's hooks and sign a customer's webhook.
	hubURL, appSecret string
	client            *http.Client
}

// New builds the fakes for a hub reachable at hubURL (http://host:port).
// The Graph fake posts signed status webhooks for what it accepts back to
// the hub, so sent → delivered → read show up as they would.
func New(hubURL string, appSecret string) *Sandbox {
	s := &Sandbox{base: hubURL + "/sandbox", fakes: map[string]registry.Fake{}, hubURL: hubURL, appSecret: appSecret,
		client: &http.Client{Timeout: 30 * time.Second}}
	s.Graph = graphtest.NewServer(graphtest.WithAccessToken(GraphToken), graphtest.WithPhoneNumber(PhoneNumberID, DisplayNumber),
		graphtest.WithStatusWebhook(graphtest.StatusWebhook{URL: hubURL + "/webhooks/whatsapp", AppSecret: appSecret}),
		graphtest.WithAutoStatuses(statusInterval, "sent", "delivered", "read"),
		graphtest.WithCatalog(Catalog...))
	AddSamples(s.Graph)
	s.fakes["whatsapp"] = registry.Fake{Handler: s.Graph, Snapshot: s.Graph.Snapshot}
	for _, p := range builtin.Plugins.All() {
		if p.Sandbox != nil {
			s.fakes[p.Name] = p.Sandbox.Fake()
		}
	}
	mux := http.NewServeMux()
	for name, f := range s.fakes {
		if f.Handler == nil {
			continue
		}
		mux.Handle("/sandbox/"+name+"/", http.StripPrefix("/sandbox/"+name, f.Handler))
	}
	mux.Handle("GET /sandbox/samples/", http.StripPrefix("/sandbox/", http.FileServerFS(sampleFiles)))
	mux.HandleFunc("GET /sandbox", s.index)
	mux.HandleFunc("GET /sandbox/{$}", s.index)
	s.handler = mux
	return s
}

// Close stops the fakes' background work.
func (s *Sandbox) Close() {
	s.Graph.Close()
	for _, f := range s.fakes {
		if f.Close != nil {
			f.Close()
		}
	}
}

// Apply is the package's Apply for a hub whose fakes are running: it also
// points each connector at the fakes that are reachable other than under
// /sandbox (the brokers, on ports of their own).
func (s *Sandbox) Apply(cfg *config.Config) {
	// The running fakes fill first: what they set (a broker's real
	// address) is then not a key left unset for the static fill's
	// placeholders.
	for _, cc := range cfg.Connectors {
		if cc.Config == nil || cc.External() {
			continue
		}
		if f, ok := s.fakes[cc.Plugin.String()]; ok && f.Fill != nil {
			f.Fill(registry.Config(cc.Config))
		}
	}
	Apply(cfg, strings.TrimSuffix(s.base, "/sandbox"))
}

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

// FreshdeskWebhookSecret is what the sandbox's Freshdesk automation would
// send; the fake itself does not call back.
const FreshdeskWebhookSecret = freshdesktest.SandboxWebhookSecret

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
	for _, p := range builtin.Plugins.All() {
		if p.Sandbox != nil {
			for _, v := range p.Sandbox.Secrets {
				m[v] = true
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
				refuse("connectors."+name+".config."+k, "the credential of your "+cc.Plugin.String()+" account")
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
		p, ok := builtin.Plugins.Lookup(string(cc.Plugin))
		if !ok || p.Sandbox == nil {
			continue
		}
		p.Sandbox.Fill(registry.Config(cc.Config), s.URL(p.Name))
	}
}

// Handler serves GET /sandbox and each fake under /sandbox/<name>/.
func (s *Sandbox) Handler() http.Handler { return s.handler }

func (s *Sandbox) snapshot() map[string]any {
	out := map[string]any{}
	for name, f := range s.fakes {
		out[name] = f.Snapshot()
	}
	return out
}

var page = template.Must(template.New("sandbox").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>wahub sandbox</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}h2{margin-top:2em}</style></head>
<body><h1>wahub sandbox</h1>
<p>What each fake external API received from the hub. JSON: <code>GET /sandbox?format=json</code>. Refresh to update.</p>
<h2>Sample media</h2>
<p>The files behind the media ids of <code>testdata/whatsapp/image.json</code>, <code>audio_voice.json</code> and <code>document.json</code>, which the fake Graph API serves; the hub fetches them and keeps them (<code>GET /api/v1/media/{id}</code>).</p>
<ul>{{range .Samples}}<li><code>{{.MediaID}}</code> {{.MimeType}}: {{if eq .Kind "image"}}<br><img src="samples/{{.File}}" alt="{{.File}}" width="160">{{else if eq .Kind "audio"}}<br><audio controls src="samples/{{.File}}"></audio>{{else}}<a href="samples/{{.File}}">{{.File}}</a>{{end}}</li>{{end}}</ul>
{{range .Sections}}<h2>{{.Name}}</h2>{{if .URL}}<p><code>{{.URL}}</code></p>{{end}}<pre>{{.JSON}}</pre>{{end}}
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
		url := s.URL(n) + "/"
		if f, ok := s.fakes[n]; ok && f.Handler == nil {
			url = "" // a broker, not an HTTP fake
		}
		secs = append(secs, section{n, url, string(b)})
	}
	type sample struct {
		Sample
		Kind string
	}
	var smp []sample
	for _, x := range Samples {
		smp = append(smp, sample{x, sdk.MediaTypeFor(x.MimeType)})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, struct {
		Samples  []sample
		Sections []section
	}{smp, secs})
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
