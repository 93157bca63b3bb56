package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/registry"
)

const contractFile = "../../testdata/config/contract.yaml"

var contractEnv = []string{
	"WAHUB_CONFIG=/etc/wahub/connectors.yaml",
	"WAHUB_ADMIN_TOKEN=adm-hunter2-1",
	"WHATSAPP_APP_SECRET=app-hunter2-2",
	"WHATSAPP_VERIFY_TOKEN=verify-hunter2-3",
	"WHATSAPP_ACCESS_TOKEN=access-hunter2-4",
	"SLACK_BOT_TOKEN=xoxb-hunter2-5",
	"SLACK_SIGNING_SECRET=signing-hunter2-6",
	"ZENDESK_TOKEN=zd-hunter2-7",
	"ZENDESK_WEBHOOK_SECRET=zdhook-hunter2-8",
	"HUBSPOT_TOKEN=hs-hunter2-9",
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// problems unpacks what Load returned into its *Errors.
func problems(t *testing.T, err error) []*Error {
	t.Helper()
	if err == nil {
		return nil
	}
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var out []*Error
	for _, e := range list {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %q is not a *config.Error", e)
		}
		out = append(out, ce)
	}
	return out
}

func keysOf(errs []*Error) []string {
	out := []string{}
	for _, e := range errs {
		out = append(out, e.Key)
	}
	return out
}

func mustParse(t *testing.T, yaml string, environ ...string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml), environ)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestContractExample(t *testing.T) {
	c, err := Load(contractFile, contractEnv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	eq(t, "Path", c.Path, contractFile)

	eq(t, "server.listen", c.Server.Listen, "127.0.0.1:8080")
	eq(t, "server.admin_token", c.Server.AdminToken.Reveal(), "adm-hunter2-1")
	eq(t, "server.max_body_bytes", c.Server.MaxBodyBytes, 4<<20)
	eq(t, "server.shutdown_timeout", c.Server.ShutdownTimeout, 15*time.Second)
	eq(t, "store.path", c.Store.Path, "data/wahub.db")
	eq(t, "store.busy_timeout", c.Store.BusyTimeout, 5*time.Second)
	eq(t, "log", c.Log, Log{Level: "info", Format: "auto"})

	w := c.WhatsApp
	eq(t, "whatsapp.app_secret", w.AppSecret, []Secret{"app-hunter2-2"})
	eq(t, "whatsapp.verify_token", w.VerifyToken.Reveal(), "verify-hunter2-3")
	eq(t, "whatsapp.access_token", w.AccessToken.Reveal(), "access-hunter2-4")
	eq(t, "whatsapp.api_url", w.APIURL, "https://graph.facebook.com/v23.0")
	eq(t, "whatsapp.messages_per_second", w.MessagesPerSecond, 80.0)
	eq(t, "whatsapp.blocked_country_codes", w.BlockedCountryCodes, []string{"53", "98", "850", "963"})
	eq(t, "whatsapp.opt_out_keywords", w.OptOutKeywords, []string{"STOP", "PARAR", "SAIR", "CANCELAR"})
	eq(t, "whatsapp.opt_in_keywords", w.OptInKeywords, []string{"START", "VOLTAR"})
	eq(t, "sandbox", c.Sandbox, false)

	office := c.Schedules["office"]
	if office == nil {
		t.Fatal("schedules.office missing")
	}
	eq(t, "office.Location", office.Location.String(), "America/Sao_Paulo")
	nineToSix := []Interval{{9 * 60, 18 * 60}}
	for d := time.Monday; d <= time.Friday; d++ {
		eq(t, "office.Weekly["+d.String()+"]", office.Weekly[d], nineToSix)
	}
	eq(t, "office.Weekly[Saturday]", office.Weekly[time.Saturday], []Interval{{9 * 60, 12 * 60}})
	eq(t, "office.Weekly[Sunday]", len(office.Weekly[time.Sunday]), 0)
	eq(t, "office.Holidays", office.Holidays, map[string]bool{"2026-12-25": true})

	eq(t, "teams.billing", c.Teams["billing"], Team{Connectors: []Binding{{Name: "slack"}, {Name: "zendesk"}}, Schedule: "office", AfterHours: "support"})
	eq(t, "teams.account-managers", c.Teams["account-managers"], Team{Connectors: []Binding{{Name: "slack"}}})
	eq(t, "len(teams)", len(c.Teams), 4)

	var names []string
	for _, r := range c.Routes {
		names = append(names, r.Name+"→"+r.Team)
	}
	eq(t, "routes", names, []string{"vip→account-managers", "billing→billing", "sales-button→sales", "default→support"})
	eq(t, "routes[0].when.contact", c.Routes[0].When.Contact, map[string][]string{"tier": {"gold"}})
	eq(t, "routes[1].when.keywords", c.Routes[1].When.Keywords, []string{"fatura", "boleto", "invoice"})
	eq(t, "routes[2].when.event", c.Routes[2].When.Event, []string{"button.clicked"})
	eq(t, "routes[2].when.button", c.Routes[2].When.Button, []string{"talk_to_sales"})
	eq(t, "routes[3].when", reflect.ValueOf(c.Routes[3].When).IsZero(), true)

	eq(t, "triggers[0].on", c.Triggers[0].On, []string{"optin.granted"})
	eq(t, "triggers[0].reply", *c.Triggers[0].Reply, Reply{Text: "Bem-vindo! Responda PARAR para sair."})
	eq(t, "triggers[1].when.outside", c.Triggers[1].When.Outside, "office")
	eq(t, "triggers[1].reply.template", *c.Triggers[1].Reply.Template, Template{Name: "after_hours", Language: "pt_BR"})

	eq(t, "subscriptions", c.Subscriptions, []Subscription{{Connector: "hubspot", Events: []string{"message.received", "message.sent", "status.*"}}})
	eq(t, "affinity.idle_timeout", c.Affinity.IdleTimeout, 24*time.Hour)

	slack := c.Connectors["slack"]
	eq(t, "slack.plugin", slack.Plugin, registry.PluginRef("slack"))
	eq(t, "slack.enabled", slack.Enabled, true)
	eq(t, "slack.rate_per_second", slack.RatePerSecond, 1.0)
	eq(t, "slack.batch_size", slack.BatchSize, 100)
	eq(t, "slack.retry", slack.Retry, Retry{MaxAttempts: 12, InitialInterval: time.Second, MaxInterval: 30 * time.Minute})
	sc := slack.Config.Reveal()
	eq(t, "slack.config.token", sc["token"], "xoxb-hunter2-5")
	eq(t, "slack.config.signing_secret", sc["signing_secret"], "signing-hunter2-6")
	eq(t, "slack.config.channels", sc["channels"], map[string]any{"billing": "C0BILLING", "sales": "C0SALES", "account-managers": "C0VIP"})
	eq(t, "zendesk.config.webhook_secret", c.Connectors["zendesk"].Config.Reveal()["webhook_secret"], "zdhook-hunter2-8")
	eq(t, "zendesk.retry (defaults)", c.Connectors["zendesk"].Retry, Retry{MaxAttempts: 12, InitialInterval: time.Second, MaxInterval: 30 * time.Minute})
	eq(t, "hubspot.config.sync", c.Connectors["hubspot"].Config.Reveal()["sync"], map[string]any{"properties": []any{"tier", "hubspot_owner_id"}, "interval": "5m"})
	erp := c.Connectors["my-erp"]
	eq(t, "my-erp.External", erp.External(), true)
	eq(t, "my-erp.sha256", erp.SHA256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	eq(t, "slack.External", slack.External(), false)

	eq(t, "ServeProblems", len(c.ServeProblems()), 0)
	eq(t, "BuiltinPlugins", c.BuiltinPlugins(), []string{"bitrix24", "freshdesk", "hubspot", "kafka", "nats", "noop", "slack", "webhook", "zendesk"})
}

func TestShippedConfigLoadsWithoutEnvironment(t *testing.T) {
	// The repository's own connectors.yaml must work on a fresh machine.
	c, err := Load("../../connectors.yaml", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if p := c.ServeProblems(); len(p) != 0 {
		t.Errorf("ServeProblems = %v", p)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist/connectors.yaml", nil)
	want := "config: testdata/does-not-exist/connectors.yaml: file not found (pass --config FILE or set WAHUB_CONFIG)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("not a *Error: %T", err)
	}
}

func TestPostgresStoreFromEnvironment(t *testing.T) {
	c := mustParse(t, "store:\n  url: ${DATABASE_URL}\n", "WAHUB_STORE__DRIVER=postgres", "DATABASE_URL=postgres://w:pw@db:5432/wahub")
	eq(t, "driver", c.Store.Driver, "postgres")
	eq(t, "url", c.Store.URL.Reveal(), "postgres://w:pw@db:5432/wahub")
	c = mustParse(t, "", "WAHUB_STORE__DRIVER=postgres", "WAHUB_STORE__URL=postgres://db/x")
	eq(t, "url from WAHUB_STORE__URL", c.Store.URL.Reveal(), "postgres://db/x")
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, "")
	eq(t, "server", c.Server, Server{Listen: "127.0.0.1:8080", MaxBodyBytes: 4194304, ShutdownTimeout: 15 * time.Second, WriteTimeout: time.Minute})
	eq(t, "store", c.Store, Store{Driver: "sqlite", Path: "data/wahub.db", BusyTimeout: 5 * time.Second, LeaseTimeout: 10 * time.Second})
	eq(t, "log", c.Log, Log{Level: "info", Format: "auto"})
	eq(t, "api_url", c.WhatsApp.APIURL, "https://graph.facebook.com/v23.0")
	eq(t, "messages_per_second", c.WhatsApp.MessagesPerSecond, 80.0)
	eq(t, "opt_out_keywords", c.WhatsApp.OptOutKeywords, []string{"STOP", "PARAR", "SAIR", "CANCELAR"})
	eq(t, "opt_in_keywords", c.WhatsApp.OptInKeywords, []string{"START", "VOLTAR"})
	eq(t, "affinity.idle_timeout", c.Affinity.IdleTimeout, 24*time.Hour)

	// An explicit empty list is a choice, not a gap to fill.
	c = mustParse(t, "whatsapp: {opt_out_keywords: []}\nconnectors: {hook: {plugin: webhook, enabled: false, config: {url: 'http://x'}}}")
	eq(t, "explicit opt_out_keywords", c.WhatsApp.OptOutKeywords, []string{})
	hook := c.Connectors["hook"]
	eq(t, "enabled", hook.Enabled, false)
	eq(t, "batch_size", hook.BatchSize, 100)
	eq(t, "retry", hook.Retry, Retry{MaxAttempts: 12, InitialInterval: time.Second, MaxInterval: 30 * time.Minute})
}

func TestConveniences(t *testing.T) {
	c := mustParse(t, `
whatsapp:
  app_secret: abc
  verify_token: 123456
  blocked_country_codes: [53, "98"]
  messages_per_second: "20.5"
teams:
  support: {connectors: []}
routes:
  - name: number
    when:
      phone_number_id: 106540352242922
      country_code: 55
      keywords: fatura
      contact: {tier: gold, region: [north, south], level: 3}
    team: support
connectors:
  hook: {plugin: webhook, batch_size: "50", enabled: "false", rate_per_second: 2}
`)
	eq(t, "app_secret", c.WhatsApp.AppSecret, []Secret{"abc"})
	eq(t, "verify_token", c.WhatsApp.VerifyToken.Reveal(), "123456")
	eq(t, "blocked_country_codes", c.WhatsApp.BlockedCountryCodes, []string{"53", "98"})
	eq(t, "messages_per_second", c.WhatsApp.MessagesPerSecond, 20.5)
	w := c.Routes[0].When
	eq(t, "phone_number_id", w.PhoneNumberID, []string{"106540352242922"})
	eq(t, "country_code", w.CountryCode, []string{"55"})
	eq(t, "keywords", w.Keywords, []string{"fatura"})
	eq(t, "contact", w.Contact, map[string][]string{"tier": {"gold"}, "region": {"north", "south"}, "level": {"3"}})
	hook := c.Connectors["hook"]
	eq(t, "batch_size", hook.BatchSize, 50)
	eq(t, "enabled", hook.Enabled, false)
	eq(t, "rate_per_second", hook.RatePerSecond, 2.0)

	c = mustParse(t, "whatsapp: {app_secret: [new, old]}")
	eq(t, "app_secret list", c.WhatsApp.AppSecret, []Secret{"new", "old"})

	// An unset variable must not leave an empty secret that anyone could
	// sign with.
	c = mustParse(t, "whatsapp: {app_secret: ['${NEW_SECRET}', '${OLD_SECRET}']}", "NEW_SECRET=n3w")
	eq(t, "app_secret with one unset", c.WhatsApp.AppSecret, []Secret{"n3w"})
}

func TestExpansion(t *testing.T) {
	env := []string{"HOST=db.internal", "EMPTY=", "TRICKY=a: b # c, {d}", "PORT=9090"}
	tests := []struct {
		name, value, want string
	}{
		{"set", "${HOST}", "db.internal"},
		{"unset without default", "${NOPE}", ""},
		{"unset with default", "${NOPE:-fallback}", "fallback"},
		{"empty with default", "${EMPTY:-fallback}", "fallback"},
		{"set ignores default", "${HOST:-fallback}", "db.internal"},
		{"default with colons", "${NOPE:-http://localhost:8080/x}", "http://localhost:8080/x"},
		{"empty default", "${NOPE:-}", ""},
		{"YAML specials in the value stay data", "${TRICKY}", "a: b # c, {d}"},
		{"embedded twice", "x-${HOST}-${PORT}-y", "x-db.internal-9090-y"},
		{"lone dollar", "cost: $5", "cost: $5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Single-quoted YAML so the test controls the exact string.
			yaml := "connectors: {h: {plugin: webhook, config: {v: '" + strings.ReplaceAll(tt.value, "'", "''") + "'}}}"
			c := mustParse(t, yaml, env...)
			eq(t, "config.v", c.Connectors["h"].Config.Reveal()["v"], tt.want)
		})
	}

	t.Run("inside plugin config, lists and secrets", func(t *testing.T) {
		c := mustParse(t, `
server: {admin_token: "${TRICKY}", listen: "127.0.0.1:${PORT}"}
whatsapp: {app_secret: ["${HOST}", "${NOPE:-old}"]}
connectors:
  hook: {plugin: webhook, config: {url: "https://${HOST}/x", headers: [{v: "${PORT}"}]}}
`, env...)
		eq(t, "admin_token", c.Server.AdminToken.Reveal(), "a: b # c, {d}")
		eq(t, "listen", c.Server.Listen, "127.0.0.1:9090")
		eq(t, "app_secret", c.WhatsApp.AppSecret, []Secret{"db.internal", "old"})
		cfg := c.Connectors["hook"].Config.Reveal()
		eq(t, "config.url", cfg["url"], "https://db.internal/x")
		eq(t, "config.headers", cfg["headers"], []any{map[string]any{"v": "9090"}})
	})

	t.Run("expanded string converts to a number", func(t *testing.T) {
		c := mustParse(t, "whatsapp: {messages_per_second: '${MPS:-12}'}")
		eq(t, "messages_per_second", c.WhatsApp.MessagesPerSecond, 12.0)
	})

	for _, bad := range []string{"${HOST", "${1X}", "${HOST:default}", "${}"} {
		t.Run("malformed "+bad, func(t *testing.T) {
			_, err := Parse([]byte("store: {path: '"+bad+"'}"), env)
			eq(t, "keys", keysOf(problems(t, err)), []string{"store.path"})
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	base := `
server: {listen: 127.0.0.1:8080, admin_token: "${WAHUB_ADMIN_TOKEN}"}
teams: {support: {connectors: []}, sales: {connectors: []}}
routes:
  - {name: a, team: support}
  - {name: b, team: support}
`
	c := mustParse(t, base,
		"WAHUB_CONFIG=/elsewhere.yaml",
		"WAHUB_ADMIN_TOKEN=tok",
		"WAHUB_SERVER__LISTEN=0.0.0.0:9000",
		"WAHUB_SERVER__MAX_BODY_BYTES=1024",
		"WAHUB_SERVER__SHUTDOWN_TIMEOUT=1m",
		"WAHUB_WHATSAPP__MESSAGES_PER_SECOND=20",
		"WAHUB_WHATSAPP__OPT_OUT_KEYWORDS=SAIR, STOP",
		"WAHUB_WHATSAPP__APP_SECRET=one,two",
		"WAHUB_SANDBOX=false",
		"WAHUB_ROUTES__1__TEAM=sales",
		"WAHUB_CONNECTORS__HOOK__PLUGIN=webhook",
		"WAHUB_CONNECTORS__HOOK__CONFIG__URL=https://example.test/hook",
		"OTHER_SERVER__LISTEN=ignored",
	)
	eq(t, "server.listen", c.Server.Listen, "0.0.0.0:9000")
	eq(t, "server.max_body_bytes", c.Server.MaxBodyBytes, 1024)
	eq(t, "server.shutdown_timeout", c.Server.ShutdownTimeout, time.Minute)
	eq(t, "server.admin_token via ${WAHUB_ADMIN_TOKEN}", c.Server.AdminToken.Reveal(), "tok")
	eq(t, "whatsapp.messages_per_second", c.WhatsApp.MessagesPerSecond, 20.0)
	eq(t, "whatsapp.opt_out_keywords", c.WhatsApp.OptOutKeywords, []string{"SAIR", "STOP"})
	eq(t, "whatsapp.app_secret", c.WhatsApp.AppSecret, []Secret{"one", "two"})
	eq(t, "routes[1].team", c.Routes[1].Team, "sales")
	eq(t, "routes[0].team", c.Routes[0].Team, "support")
	eq(t, "connectors.hook.config", c.Connectors["hook"].Config.Reveal(), map[string]any{"url": "https://example.test/hook"})

	c = mustParse(t, base, "WAHUB_SERVER__ADMIN_TOKEN=override", "WAHUB_ADMIN_TOKEN=fromfile")
	eq(t, "override beats ${}", c.Server.AdminToken.Reveal(), "override")

	tests := []struct {
		name    string
		env     string
		wantKey string
		wantMsg []string
	}{
		{"unknown key in a known section", "WAHUB_SERVER__LISTN=0.0.0.0:1", "server.listn",
			[]string{"unknown key (known: admin_token, listen, max_body_bytes, metrics_listen, shutdown_timeout, tls_cert, tls_key, viewer_token, write_timeout)", "WAHUB_SERVER__LISTN"}},
		{"wrong type", "WAHUB_WHATSAPP__MESSAGES_PER_SECOND=fast", "whatsapp.messages_per_second",
			[]string{"expected a number", "WAHUB_WHATSAPP__MESSAGES_PER_SECOND"}},
		{"list entry out of range", "WAHUB_ROUTES__7__TEAM=sales", "routes[7]", []string{"the file has 2"}},
		{"list needs an index", "WAHUB_ROUTES__TEAM=sales", "routes", []string{"WAHUB_ROUTES__0"}},
		{"empty segment", "WAHUB_SERVER____LISTEN=x", "WAHUB_SERVER____LISTEN", []string{"__ between levels"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(base), []string{tt.env})
			errs := problems(t, err)
			eq(t, "keys", keysOf(errs), []string{tt.wantKey})
			for _, m := range tt.wantMsg {
				if len(errs) > 0 && !strings.Contains(errs[0].Msg, m) {
					t.Errorf("message %q does not contain %q", errs[0].Msg, m)
				}
			}
			if strings.Contains(err.Error(), "fast") {
				t.Errorf("message prints a value from the environment: %v", err)
			}
		})
	}
}

// base is a valid configuration that broken cases add a section to.
const base = `
schedules:
  office:
    timezone: America/Sao_Paulo
    hours: {mon-fri: ["09:00-18:00"]}
teams:
  billing: {connectors: [slack], schedule: office, after_hours: support}
  sales: {connectors: [slack]}
  support: {connectors: [slack]}
connectors:
  slack: {plugin: slack}
`

func TestBrokenConfigs(t *testing.T) {
	tests := []struct {
		name string
		yaml string // added to base unless full
		full bool
		keys []string
		msg  string // in the first error
	}{
		{name: "unknown top-level key", yaml: "servr: {listen: x}", keys: []string{"servr"},
			msg: "unknown key (known: affinity, connectors, log, media, routes, sandbox, sandbox_public, schedules, server, store, subscriptions, teams, triggers, whatsapp)"},
		{name: "unknown nested key", yaml: "server: {listn: x}", keys: []string{"server.listn"},
			msg: "unknown key (known: admin_token, listen, max_body_bytes, metrics_listen, shutdown_timeout, tls_cert, tls_key, viewer_token, write_timeout)"},
		{name: "viewer token equal to admin token", yaml: "server: {admin_token: same-token-1234567, viewer_token: same-token-1234567}",
			keys: []string{"server.viewer_token"}, msg: "is the same as server.admin_token"},
		{name: "viewer token too short", yaml: "server: {admin_token: a-long-admin-token, viewer_token: short}",
			keys: []string{"server.viewer_token"}, msg: "is 5 characters: use at least 16"},
		{name: "unknown key in when", yaml: "routes: [{name: a, team: sales, when: {contct: {tier: gold}}}]", keys: []string{"routes[0].when.contct"}},
		{name: "wrong type: number", yaml: "whatsapp: {messages_per_second: fast}", keys: []string{"whatsapp.messages_per_second"},
			msg: `expected a number, got "fast"`},
		{name: "wrong type: duration", yaml: "server: {shutdown_timeout: 15}", keys: []string{"server.shutdown_timeout"}, msg: "expected a duration"},
		{name: "wrong type: list", yaml: "routes: {name: a, team: sales}", keys: []string{"routes"}, msg: "expected a list, got a mapping"},
		{name: "wrong type: bool for string", yaml: "routes: [{name: true, team: sales}]", keys: []string{"routes[0].name"}, msg: `expected a string (quote it: "true")`},
		{name: "wrong type: mapping for route", yaml: "routes: [oops, {name: b, team: sales}]", keys: []string{"routes[0]"}, msg: "expected a mapping"},
		{name: "wrong type: section", yaml: "server: 8080", keys: []string{"server"}, msg: "expected a mapping of keys to values, got 8080"},
		{name: "route to unknown team", yaml: "routes: [{name: a, team: sales}, {name: b, team: biling}]", keys: []string{"routes[1].team"},
			msg: `unknown team "biling" (teams: billing, sales, support)`},
		{name: "route without team", yaml: "routes: [{name: a}]", keys: []string{"routes[0].team"}},
		{name: "unknown store driver", yaml: "store: {driver: mysql}", keys: []string{"store.driver"}},
		{name: "postgres without url", yaml: "store: {driver: postgres}", keys: []string{"store.url"}, msg: "must name the PostgreSQL database"},
		{name: "postgres url not a url", yaml: "store: {driver: postgres, url: 'host=db'}", keys: []string{"store.url"}, msg: "postgres:// URL"},
		{name: "postgres lease timeout too short", yaml: "store: {driver: postgres, url: 'postgres://db/w', lease_timeout: 1s}", keys: []string{"store.lease_timeout"}},
		{name: "route without name", yaml: "routes: [{team: sales}]", keys: []string{"routes[0].name"}},
		{name: "duplicate route name", yaml: "routes: [{name: a, team: sales}, {name: a, team: support}]", keys: []string{"routes[1].name"}, msg: `duplicate route name "a"`},
		{name: "within unknown schedule", yaml: "routes: [{name: a, team: sales, when: {within: night}}]", keys: []string{"routes[0].when.within"},
			msg: `unknown schedule "night" (schedules: office)`},
		{name: "bad regex", yaml: "routes: [{name: a, team: sales, when: {regex: ['ok', '(unclosed']}}]", keys: []string{"routes[0].when.regex[1]"},
			msg: "invalid regular expression: error parsing regexp: missing closing ): `(unclosed`"},
		{name: "bad consent", yaml: "routes: [{name: a, team: sales, when: {consent: [granted, maybe]}}]", keys: []string{"routes[0].when.consent[1]"}},
		{name: "unknown event type", yaml: "routes: [{name: a, team: sales, when: {event: [message.recieved]}}]", keys: []string{"routes[0].when.event[0]"}, msg: `unknown event type "message.recieved"`},
		{name: "glob matching nothing", yaml: "subscriptions: [{connector: slack, events: ['stats.*']}]", keys: []string{"subscriptions[0].events[0]"}},
		{name: "team with unknown connector", full: true, yaml: "teams: {sales: {connectors: [slack, zendesk]}}\nconnectors: {slack: {plugin: slack}}",
			keys: []string{"teams.sales.connectors[1]"}, msg: `unknown connector "zendesk" (connectors: slack)`},
		{name: "team with unknown schedule", full: true, yaml: "teams: {sales: {connectors: [], schedule: office}}", keys: []string{"teams.sales.schedule"},
			msg: `unknown schedule "office" (no schedules are defined; add one under schedules:)`},
		{name: "after_hours without schedule", full: true, yaml: "teams: {a: {connectors: [], after_hours: b}, b: {connectors: []}}", keys: []string{"teams.a.after_hours"}},
		{name: "bad timezone", full: true, yaml: "schedules: {office: {timezone: Mars/Olympus, hours: {mon: ['09:00-10:00']}}}", keys: []string{"schedules.office.timezone"},
			msg: `unknown time zone "Mars/Olympus"`},
		{name: "interval backwards", full: true, yaml: "schedules: {office: {timezone: UTC, hours: {mon-fri: ['18:00-09:00']}}}", keys: []string{"schedules.office.hours.mon-fri[0]"}, msg: "start must be before the end"},
		{name: "interval out of range", full: true, yaml: "schedules: {office: {timezone: UTC, hours: {sat: ['09:00-12:00', '22:00-24:30']}}}", keys: []string{"schedules.office.hours.sat[1]"}},
		{name: "interval without minutes", full: true, yaml: "schedules: {office: {timezone: UTC, hours: {sat: '9-12'}}}", keys: []string{"schedules.office.hours.sat[0]"}},
		{name: "bad day spec", full: true, yaml: "schedules: {office: {timezone: UTC, hours: {mon-fry: ['09:00-12:00']}}}", keys: []string{"schedules.office.hours.mon-fry"}, msg: `unknown day "fry"`},
		{name: "day listed twice", full: true, yaml: "schedules: {office: {timezone: UTC, hours: {mon-fri: ['09:00-12:00'], fri: ['13:00-14:00']}}}", keys: []string{"schedules.office.hours.mon-fri"}, msg: `fri is already listed under "fri"`},
		{name: "bad holiday", full: true, yaml: "schedules: {office: {timezone: UTC, hours: {mon: ['09:00-12:00']}, holidays: [2026-12-25, 25/12/2026]}}", keys: []string{"schedules.office.holidays[1]"}},
		{name: "unknown plugin", full: true, yaml: "connectors: {slack: {plugin: slak}}", keys: []string{"connectors.slack.plugin"},
			msg: `unknown plugin "slak" (built-in: bitrix24, freshdesk, hubspot, kafka, nats, noop, slack, webhook, zendesk; or a path to an executable`},
		{name: "external plugin without sha256", full: true, yaml: "connectors: {erp: {plugin: ./bin/erp}}", keys: []string{"connectors.erp.sha256"}, msg: "required for an external plugin"},
		{name: "sha256 dev outside the sandbox", full: true, yaml: "connectors: {erp: {plugin: ./bin/erp, sha256: dev}}", keys: []string{"connectors.erp.sha256"},
			msg: "a development override allowed only with sandbox: true"},
		{name: "external plugin with bad sha256", full: true, yaml: "connectors: {erp: {plugin: ./bin/erp, sha256: abc}}", keys: []string{"connectors.erp.sha256"}},
		{name: "bad connector name", full: true, yaml: "connectors: {My_ERP: {plugin: webhook}}", keys: []string{"connectors.My_ERP"}, msg: "/hooks/"},
		{name: "retry initial after max", full: true, yaml: "connectors: {h: {plugin: webhook, retry: {initial_interval: 1h, max_interval: 1m}}}", keys: []string{"connectors.h.retry.initial_interval"}},
		{name: "negative rate", full: true, yaml: "connectors: {h: {plugin: webhook, rate_per_second: -1}}", keys: []string{"connectors.h.rate_per_second"}},
		{name: "sandbox on every interface", yaml: "sandbox: true\nserver: {listen: 0.0.0.0:8080}", keys: []string{"server.listen"}, msg: "sandbox_public: true"},
		{name: "sandbox on an empty host", yaml: "sandbox: true\nserver: {listen: ':8080'}", keys: []string{"server.listen"}},
		{name: "bad listen", yaml: "server: {listen: localhost}", keys: []string{"server.listen"}, msg: "is not host:port"},
		{name: "bad port", yaml: "server: {listen: 'localhost:http'}", keys: []string{"server.listen"}},
		{name: "bad api_url", yaml: "whatsapp: {api_url: graph.facebook.com}", keys: []string{"whatsapp.api_url"}},
		{name: "zero messages_per_second", yaml: "whatsapp: {messages_per_second: 0}", keys: []string{"whatsapp.messages_per_second"}},
		{name: "blocked country code with +", yaml: "whatsapp: {blocked_country_codes: ['+53']}", keys: []string{"whatsapp.blocked_country_codes[0]"}},
		{name: "bad log level", yaml: "log: {level: verbose}", keys: []string{"log.level"}, msg: `"verbose" is not one of debug, info, warn, error`},
		{name: "reply with text and template", yaml: "triggers: [{name: t, on: [message.received], reply: {text: hi, template: {name: x, language: en}}}]",
			keys: []string{"triggers[0].reply"}, msg: "one of text, template, interactive or media, not several"},
		{name: "reply media with id and url", yaml: "triggers: [{name: t, on: [optin.granted], reply: {media: {id: med_1, url: 'https://x.example/a.pdf'}}}]",
			keys: []string{"triggers[0].reply.media"}, msg: "give id"},
		{name: "reply media over http", yaml: "triggers: [{name: t, on: [optin.granted], reply: {media: {url: 'http://x.example/a.pdf'}}}]",
			keys: []string{"triggers[0].reply.media.url"}, msg: "https"},
		{name: "reply media of an unknown type", yaml: "triggers: [{name: t, on: [optin.granted], reply: {media: {id: med_1, type: gif}}}]",
			keys: []string{"triggers[0].reply.media.type"}, msg: `"gif" is not a WhatsApp media type`},
		{name: "reply audio with a caption", yaml: "triggers: [{name: t, on: [optin.granted], reply: {media: {id: med_1, type: audio, caption: hi}}}]",
			keys: []string{"triggers[0].reply.media.caption"}},
		{name: "reply with neither", yaml: "triggers: [{name: t, on: [message.received], reply: {}}]", keys: []string{"triggers[0].reply"}},
		{name: "template without language", yaml: "triggers: [{name: t, on: [message.received], reply: {template: {name: x}}}]", keys: []string{"triggers[0].reply.template.language"}},
		{name: "trigger without action", yaml: "triggers: [{name: t, on: [message.received]}]", keys: []string{"triggers[0]"}},
		{name: "trigger without on", yaml: "triggers: [{name: t, assign: sales}]", keys: []string{"triggers[0].on"}},
		{name: "duplicate trigger name", yaml: "triggers: [{name: t, on: [optin.granted], assign: sales}, {name: t, on: [optin.revoked], assign: sales}]", keys: []string{"triggers[1].name"}},
		{name: "trigger assign unknown team", yaml: "triggers: [{name: t, on: [optin.granted], assign: nobody}]", keys: []string{"triggers[0].assign"}},
		{name: "trigger deliver unknown connector", yaml: "triggers: [{name: t, on: [optin.granted], deliver: [slack, crm]}]", keys: []string{"triggers[0].deliver[1]"}},
		{name: "subscription to unknown connector", yaml: "subscriptions: [{connector: crm, events: [message.sent]}]", keys: []string{"subscriptions[0].connector"}},
		{name: "subscription without events", yaml: "subscriptions: [{connector: slack}]", keys: []string{"subscriptions[0].events"}},
		{name: "binding with unknown event type", full: true, yaml: "teams: {s: {connectors: [slack, {name: slack, events: [status.failled]}]}}\nconnectors: {slack: {plugin: slack}}", keys: []string{"teams.s.connectors[1].events[0]"}},
		{name: "binding without a name", full: true, yaml: "teams: {s: {connectors: [{events: [status.failed]}]}}\nconnectors: {slack: {plugin: slack}}", keys: []string{"teams.s.connectors[0]"}},
		{name: "binding with an unknown key", full: true, yaml: "teams: {s: {connectors: [{name: slack, event: [status.failed]}]}}\nconnectors: {slack: {plugin: slack}}", keys: []string{"teams.s.connectors[0].event"}},
		{name: "subscription with connector and connectors", yaml: "subscriptions: [{connector: slack, connectors: [slack], events: [message.sent]}]", keys: []string{"subscriptions[0].connectors"}},
		{name: "subscription binding to unknown connector", yaml: "subscriptions: [{connectors: [slack, crm], events: [message.sent]}]", keys: []string{"subscriptions[0].connectors[1]"}},
		{name: "subscription bindings without events", yaml: "subscriptions: [{connectors: [slack, {name: slack, events: [status.failed]}]}]", keys: []string{"subscriptions[0].events"}},
		{name: "rules_can_move unknown route", yaml: "routes: [{name: a, team: sales}]\naffinity: {rules_can_move: [a, b]}", keys: []string{"affinity.rules_can_move[1]"}},
		{name: "YAML syntax", full: true, yaml: "server: {listen: [}", keys: []string{"<input>"}, msg: "invalid YAML"},
		{name: "YAML not a mapping", full: true, yaml: "- a\n- b", keys: []string{"<input>"}, msg: "must be a YAML mapping"},
		{name: "duplicate YAML key", full: true, yaml: "server: {}\nserver: {}", keys: []string{"<input>"}, msg: "already defined"},
		{name: "every problem at once, sorted", yaml: "server: {listn: x}\nroutes: [{name: a, team: x}, {name: b, team: y}, {name: c, team: z}, {name: d, team: sales}, {name: e, team: sales}, {name: f, team: sales}, {name: g, team: sales}, {name: h, team: sales}, {name: i, team: sales}, {name: j, team: sales}, {name: k, team: w}]",
			keys: []string{"routes[0].team", "routes[1].team", "routes[2].team", "routes[10].team", "server.listn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := tt.yaml
			if !tt.full {
				yaml = base + "\n" + tt.yaml
			}
			c, err := Parse([]byte(yaml), nil)
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			errs := problems(t, err)
			eq(t, "keys", keysOf(errs), tt.keys)
			if tt.msg != "" && !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", errs[0].Msg, tt.msg)
			}
			if want := "config: " + errs[0].Key; !strings.HasPrefix(errs[0].Error(), want+": ") && !strings.HasPrefix(errs[0].Error(), want+" (") {
				t.Errorf("Error() = %q", errs[0].Error())
			}
		})
	}
}

func TestAfterHoursLoops(t *testing.T) {
	const sched = "schedules: {s: {timezone: UTC, hours: {mon: ['09:00-10:00']}}}\n"
	tests := []struct {
		name, teams, key, msg string
	}{
		{"two teams", "{b: {schedule: s, after_hours: a}, a: {schedule: s, after_hours: b}}", "teams.a.after_hours", "a → b → a"},
		{"self", "{a: {schedule: s, after_hours: a}}", "teams.a.after_hours", "a → a"},
		{"behind a chain", "{x: {schedule: s, after_hours: d}, d: {schedule: s, after_hours: c}, c: {schedule: s, after_hours: d}}", "teams.c.after_hours", "c → d → c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(sched+"teams: "+tt.teams), nil)
			errs := problems(t, err)
			eq(t, "keys", keysOf(errs), []string{tt.key})
			if len(errs) == 1 && !strings.Contains(errs[0].Msg, tt.msg) {
				t.Errorf("message %q does not contain %q", errs[0].Msg, tt.msg)
			}
		})
	}
	// A chain without a loop is fine.
	mustParse(t, sched+"teams: {a: {schedule: s, after_hours: b}, b: {schedule: s, after_hours: c}, c: {}}")
}

func TestValidEdgeCases(t *testing.T) {
	if c := mustParse(t, "sandbox: true\nconnectors: {erp: {plugin: ./bin/erp, sha256: dev}}"); c.Connectors["erp"].SHA256 != DevSHA256 {
		t.Errorf("sha256: dev in the sandbox: %q", c.Connectors["erp"].SHA256)
	}
	mustParse(t, base+"sandbox: true\nsandbox_public: true\nserver: {listen: 0.0.0.0:8080}")
	for _, listen := range []string{"127.0.0.1:8080", "127.1.2.3:1", "'[::1]:8080'", "localhost:8080"} {
		mustParse(t, "sandbox: true\nserver: {listen: "+listen+"}")
	}
	c := mustParse(t, `
schedules:
  weekend:
    timezone: Europe/Lisbon
    hours: {fri-mon: ["20:00-24:00"], "tue,wed": "00:00-01:00"}
connectors:
  erp: {plugin: ./bin/erp, sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08, config: {anything: {goes: [1, 2]}}}
routes: []
triggers:
  - name: status
    on: ["status.*", "whatsapp.message_template_status_update", "*"]
    set: {last_status: seen, count: 1}
`)
	w := c.Schedules["weekend"].Weekly
	for _, d := range []time.Weekday{time.Friday, time.Saturday, time.Sunday, time.Monday} {
		eq(t, "fri-mon "+d.String(), w[d], []Interval{{20 * 60, 24 * 60}})
	}
	eq(t, "tue", w[time.Tuesday], []Interval{{0, 60}})
	eq(t, "thu", len(w[time.Thursday]), 0)
	eq(t, "sha256 lowercased", c.Connectors["erp"].SHA256, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	eq(t, "set", c.Triggers[0].Set, map[string]string{"last_status": "seen", "count": "1"})

	c = mustParse(t, base+"routes: [{name: a, team: sales, when: {regex: ['(?i)^fatura', 'boleto']}}]")
	re := c.Routes[0].When.Regexps
	if len(re) != 2 || !re[0].MatchString("FATURA 12") || !re[1].MatchString("meu boleto") {
		t.Errorf("Regexps = %v", re)
	}
}

func TestServeProblems(t *testing.T) {
	c := mustParse(t, "whatsapp: {app_secret: '${WHATSAPP_APP_SECRET}', verify_token: '${MY_VERIFY}'}")
	errs := problems(t, errors.Join(c.ServeProblems()...))
	eq(t, "keys", keysOf(errs), []string{"whatsapp.app_secret", "whatsapp.verify_token"})
	if !strings.Contains(errs[0].Msg, "WHATSAPP_APP_SECRET") || !strings.Contains(errs[0].Msg, "WAHUB_WHATSAPP__APP_SECRET") {
		t.Errorf("app_secret message %q does not say what to set", errs[0].Msg)
	}
	if !strings.Contains(errs[1].Msg, "MY_VERIFY") {
		t.Errorf("verify_token message %q does not name the variable the file reads", errs[1].Msg)
	}

	c = mustParse(t, "")
	errs = problems(t, errors.Join(c.ServeProblems()...))
	eq(t, "keys", keysOf(errs), []string{"whatsapp.app_secret", "whatsapp.verify_token"})
	if !strings.Contains(errs[1].Msg, "WHATSAPP_VERIFY_TOKEN") {
		t.Errorf("verify_token message %q", errs[1].Msg)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	c, err := Load(contractFile, contractEnv)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", c),
		"%+v":  fmt.Sprintf("%+v", *c),
		"%#v":  fmt.Sprintf("%#v", *c),
		"%s":   fmt.Sprintf("%s", c.WhatsApp.VerifyToken),
		"%x":   fmt.Sprintf("%x", c.Server.AdminToken),
		"%q":   fmt.Sprintf("%q", c.WhatsApp.AppSecret),
		"json": string(j),
	}
	for verb, out := range outputs {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s of the config shows a secret: %s", verb, out)
		}
	}
	if !strings.Contains(outputs["json"], `"admin_token":"[redacted]"`) || !strings.Contains(outputs["json"], `"token":"[redacted]"`) {
		t.Errorf("json does not show redaction: %s", outputs["json"])
	}
	eq(t, "unset String", Secret("").String(), "(unset)")
	eq(t, "set String", Secret("x").String(), "[redacted]")
	if b, _ := json.Marshal(Secret("")); string(b) != `""` {
		t.Errorf("unset secret marshals as %s", b)
	}
	if b, _ := Secret("x").MarshalText(); string(b) != "[redacted]" {
		t.Errorf("MarshalText = %s", b)
	}

	// Errors about keys that hold, or may hold, a secret.
	env := append([]string{
		"WAHUB_SERVER__ADMIN_TOKN=env-hunter2-10",
		"WAHUB_WHATSAPP__MESSAGES_PER_SECOND=env-hunter2-11",
		"WAHUB_SERVER__SHUTDOWN_TIMEOUT=env-hunter2-12",
	}, contractEnv...)
	broken := `
server: {admin_token: [lit-hunter2-20], listen: "${WAHUB_ADMIN_TOKEN}"}
whatsapp: {verify_token: {x: lit-hunter2-21}, access_token: true, app_secret: [{a: lit-hunter2-22}]}
store: {busy_timeout: "${WHATSAPP_APP_SECRET}"}
log: {level: "${WHATSAPP_VERIFY_TOKEN}"}
connectors: {h: {plugin: webhook, batch_size: "${SLACK_BOT_TOKEN}", config: {token: lit-hunter2-23}}}
routes: [{name: "x", team: "y", when: {country_code: ["${HUBSPOT_TOKEN}"]}}]
schedules: {s: {timezone: "${ZENDESK_TOKEN}", hours: {mon: ["09:00-10:00"]}}}
unknown: {secret: lit-hunter2-24}
`
	_, err = Parse([]byte(broken), env)
	if err == nil {
		t.Fatal("no error")
	}
	errs := problems(t, err)
	if len(errs) < 10 {
		t.Errorf("expected an error per broken key, got %d:\n%v", len(errs), err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an error message shows a secret:\n%v", err)
	}
}

func TestScheduleOpen(t *testing.T) {
	c := mustParse(t, `
schedules:
  office:
    timezone: America/Sao_Paulo
    hours:
      mon-fri: ["09:00-18:00"]
      sat: ["09:00-12:00"]
    holidays: ["2026-12-25"]
  ny:
    timezone: America/New_York
    hours:
      sun: ["01:00-03:00"]
      mon-fri: ["09:00-17:00"]
      sat: ["20:00-24:00"]
`)
	sp, _ := time.LoadLocation("America/Sao_Paulo")
	at := func(s string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name     string
		schedule string
		t        time.Time
		open     bool
	}{
		{"weekday 17:59", "office", time.Date(2026, 11, 24, 17, 59, 59, 0, sp), true},
		{"weekday 18:00 (end is exclusive)", "office", time.Date(2026, 11, 24, 18, 0, 0, 0, sp), false},
		{"weekday 09:00 (start is inclusive)", "office", time.Date(2026, 11, 24, 9, 0, 0, 0, sp), true},
		{"weekday 08:59", "office", time.Date(2026, 11, 24, 8, 59, 0, 0, sp), false},
		{"weekday 17:59 given in UTC", "office", at("2026-11-24T20:59:00Z"), true},
		{"weekday 18:00 given in UTC", "office", at("2026-11-24T21:00:00Z"), false},
		{"Saturday morning", "office", time.Date(2026, 11, 28, 10, 0, 0, 0, sp), true},
		{"Saturday noon", "office", time.Date(2026, 11, 28, 12, 0, 0, 0, sp), false},
		{"Sunday", "office", time.Date(2026, 11, 29, 10, 0, 0, 0, sp), false},
		{"holiday on a Friday", "office", time.Date(2026, 12, 25, 10, 0, 0, 0, sp), false},
		{"day after the holiday", "office", time.Date(2026, 12, 26, 10, 0, 0, 0, sp), true},
		// Already Saturday in UTC, still Friday 22:00 in São Paulo.
		{"Friday night given in UTC", "office", at("2026-11-28T01:00:00Z"), false},
		{"Saturday 09:30 given in UTC", "office", at("2026-11-28T12:30:00Z"), true},

		// 2026-03-08 02:00 EST jumps to 03:00 EDT.
		{"NY before the spring jump", "ny", at("2026-03-08T06:59:00Z"), true}, // 01:59 EST
		{"NY after the spring jump", "ny", at("2026-03-08T07:00:00Z"), false}, // 03:00 EDT
		{"NY Friday 09:00 EST", "ny", at("2026-03-06T14:00:00Z"), true},
		{"NY Friday 08:30 EST", "ny", at("2026-03-06T13:30:00Z"), false},
		{"NY Monday 09:00 EDT", "ny", at("2026-03-09T13:00:00Z"), true}, // 08:00 if EST were assumed
		{"NY Monday 08:59 EDT", "ny", at("2026-03-09T12:59:00Z"), false},
		// 2026-11-01 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
		{"NY first 01:30", "ny", at("2026-11-01T05:30:00Z"), true},
		{"NY second 01:30", "ny", at("2026-11-01T06:30:00Z"), true},
		{"NY 02:30 EST", "ny", at("2026-11-01T07:30:00Z"), true},
		{"NY 03:00 EST", "ny", at("2026-11-01T08:00:00Z"), false},
		{"NY Monday 09:00 EST", "ny", at("2026-11-02T14:00:00Z"), true},
		{"NY Monday 08:30 EST", "ny", at("2026-11-02T13:30:00Z"), false},   // 09:30 if EDT were assumed
		{"NY open until midnight", "ny", at("2026-11-08T04:59:00Z"), true}, // Sat 23:59 EST
		{"NY midnight", "ny", at("2026-11-08T05:00:00Z"), false},           // Sun 00:00 EST
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Schedules[tt.schedule].Open(tt.t); got != tt.open {
				t.Errorf("Open(%s) = %v, want %v", tt.t.In(c.Schedules[tt.schedule].Location).Format("Mon 2006-01-02 15:04 MST"), got, tt.open)
			}
		})
	}
}

func TestNaturalLess(t *testing.T) {
	keys := []string{"routes[10].team", "routes[2].team", "routes[2]", "a", "routes[1].name"}
	want := []string{"a", "routes[1].name", "routes[2]", "routes[2].team", "routes[10].team"}
	got := append([]string(nil), keys...)
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			if naturalLess(got[j], got[i]) {
				got[i], got[j] = got[j], got[i]
			}
		}
	}
	eq(t, "order", got, want)
}

// An error in a file names the line where the key is written (or the
// section it is missing from), and a route or trigger by its name.
func TestErrorsNameFileLineAndRoute(t *testing.T) {
	path := filepath.Join(t.TempDir(), "connectors.yaml")
	yaml := `whatsapp:
  app_secret: s
  verify_token: v
teams:
  support: {connectors: []}
routes:
  - name: vip
    team: support
  - name: billing
    when:
      keywords: [fatura]
    team: biling
  - name: default
server:
  listn: 127.0.0.1:8080
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	errs := problems(t, err)
	want := map[string]string{
		"routes[1].team": path + `:12: routes[1].team (route "billing"): unknown team "biling"`,
		"routes[2].team": path + `:13: routes[2].team (route "default"): required`,
		"server.listn":   path + `:15: server.listn: unknown key`,
	}
	for _, e := range errs {
		w, ok := want[e.Key]
		if !ok {
			t.Errorf("unexpected error %v", e)
			continue
		}
		if !strings.HasPrefix(e.Error(), "config: "+w) {
			t.Errorf("Error() = %q, want it to start with %q", e.Error(), "config: "+w)
		}
		delete(want, e.Key)
	}
	for k := range want {
		t.Errorf("no error for %s", k)
	}
}

func TestConnectorBindings(t *testing.T) {
	c, err := Parse([]byte(`
teams:
  billing:
    connectors: [slack, {name: slack-alerts, events: [status.failed, "deadletter.*"]}]
subscriptions:
  - connector: slack
    events: [message.sent]
  - connectors: [hubspot, {name: slack-alerts, events: [whatsapp.account_update]}]
    events: [message.received]
connectors:
  slack: {plugin: slack}
  slack-alerts: {plugin: slack}
  hubspot: {plugin: hubspot}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "teams.billing", c.Teams["billing"].Connectors, []Binding{{Name: "slack"}, {Name: "slack-alerts", Events: []string{"status.failed", "deadletter.*"}}})
	eq(t, "subscriptions[1]", c.Subscriptions[1].Connectors, []Binding{{Name: "hubspot"}, {Name: "slack-alerts", Events: []string{"whatsapp.account_update"}}})
	raw, _ := json.Marshal(c.Teams["billing"])
	if !strings.Contains(string(raw), `"connectors":["slack",{"name":"slack-alerts","events":["status.failed","deadletter.*"]}]`) {
		t.Errorf("JSON %s", raw)
	}
}
