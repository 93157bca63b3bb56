package route

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/sdk"
)

const contractFile = "../../testdata/config/contract.yaml"

var contractEnv = []string{
	"WAHUB_ADMIN_TOKEN=adm",
	"WHATSAPP_APP_SECRET=app",
	"WHATSAPP_VERIFY_TOKEN=verify",
	"WHATSAPP_ACCESS_TOKEN=access",
	"SLACK_BOT_TOKEN=xoxb",
	"SLACK_SIGNING_SECRET=signing",
	"ZENDESK_TOKEN=zd",
	"ZENDESK_WEBHOOK_SECRET=zdhook",
	"HUBSPOT_TOKEN=hs",
}

// São Paulo has had no DST since 2019: local time is UTC-3 all year.
var saoPaulo = mustLoc("America/Sao_Paulo")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// sp is a São Paulo wall-clock time; 2026-11-24 is a Tuesday.
func sp(date, clock string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", date+" "+clock, saoPaulo)
	if err != nil {
		panic(err)
	}
	return t
}

var weekday = sp("2026-11-24", "14:00")

func mustRouter(t testing.TB, yaml string) *Router {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		t.Fatalf("config.Parse: %v", err)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func contractRouter(t testing.TB) *Router {
	t.Helper()
	cfg, err := config.Load(contractFile, contractEnv)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// evt builds an event from options; the base is a text message from a
// Brazilian number to one business number.
type opt func(*sdk.Event)

func evt(opts ...opt) *sdk.Event {
	ev := &sdk.Event{
		ID:             "evt_1",
		Type:           sdk.TypeMessageReceived,
		OccurredAt:     weekday,
		Business:       &sdk.Business{WABAID: "102290129340398", PhoneNumberID: "106540352242922"},
		Contact:        &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"},
		ConversationID: "conv_1",
		Message:        &sdk.Message{ID: "wamid.1", Type: "text"},
	}
	for _, o := range opts {
		o(ev)
	}
	return ev
}

func text(s string) opt { return func(e *sdk.Event) { e.Message.Text = s } }

func typ(t sdk.EventType) opt {
	return func(e *sdk.Event) {
		e.Type = t
		if strings.HasPrefix(string(t), "status.") {
			e.Message = nil
			e.Status = &sdk.Status{MessageID: "wamid.out", Status: strings.TrimPrefix(string(t), "status.")}
		}
	}
}

// button is a reply button, list row or template quick reply as ingest
// builds it: the title is also the text.
func button(id, title string) opt {
	return func(e *sdk.Event) {
		e.Type = sdk.TypeButtonClicked
		e.Message.Type = "interactive"
		e.Message.Button = &sdk.Button{ID: id, Title: title}
		e.Message.Text = title
	}
}

func attrs(kv ...string) opt {
	return func(e *sdk.Event) {
		e.Contact.Attributes = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			e.Contact.Attributes[kv[i]] = kv[i+1]
		}
	}
}

func waID(id string) opt { return func(e *sdk.Event) { e.Contact.WAID = id } }

func bsuidOnly(e *sdk.Event) { e.Contact.WAID, e.Contact.UserID = "", "BR.1234567890ABCDEF" }

func phoneID(id string) opt { return func(e *sdk.Event) { e.Business.PhoneNumberID = id } }

func noConversation(e *sdk.Event) { e.ConversationID = "" }

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func traceString(d Decision) string {
	var b strings.Builder
	for _, s := range d.Trace {
		m := " "
		if s.Matched {
			m = "✓"
		}
		b.WriteString("\n  " + m + " " + s.Kind + " " + s.Rule + ": " + s.Reason)
	}
	return b.String()
}

// step finds the first step of kind for rule.
func step(d Decision, kind, rule string) (Step, bool) {
	for _, s := range d.Trace {
		if s.Kind == kind && s.Rule == rule {
			return s, true
		}
	}
	return Step{}, false
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"fatura", "fatura"},
		{"FATURA!", "fatura!"},
		{"Fátura", "fatura"},
		{"Boa tarde!! A FÁTURA não chegou", "boa tarde!! a fatura nao chegou"},
		{"ＦＡＴＵＲＡ", "fatura"}, // fullwidth, folded by NFKD
		{"Ação, Coração, Über, Ñandú", "acao, coracao, uber, nandu"},
		{"İstanbul", "istanbul"},
		{"", ""},
	}
	for _, tt := range tests {
		eq(t, "fold("+tt.in+")", fold(tt.in), tt.want)
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"Boa tarde!! A FÁTURA não chegou", []string{"boa", "tarde", "a", "fatura", "nao", "chegou"}},
		{"segunda-feira, 2ª via: R$ 10,50", []string{"segunda", "feira", "2a", "via", "r", "10", "50"}},
		{"talk_to_sales", []string{"talk", "to", "sales"}},
		{"  ...  ", nil},
		{"नमस्ते दुनिया", []string{"नमसत", "दनिया"}}, // spacing vowel signs stay in the word
	}
	for _, tt := range tests {
		eq(t, "tokenize("+tt.in+")", tokenize(nil, fold(tt.in)), tt.want)
	}
}

const kwConfig = `
teams: {billing: {}, second: {}, thumbs: {}, other: {}}
routes:
  - {name: billing, when: {keywords: [fatura, Boleto, "INVOICE"]}, team: billing}
  - {name: second, when: {keywords: ["segunda via", "2ª via"]}, team: second}
  - {name: thumbs, when: {keywords: ["👍"]}, team: thumbs}
  - {name: other, team: other}
`

func TestKeywords(t *testing.T) {
	r := mustRouter(t, kwConfig)
	tests := []struct {
		name string
		ev   *sdk.Event
		rule string
	}{
		{"the issue's example", evt(text("Boa tarde!! A FÁTURA não chegou")), "billing"},
		{"capitalised", evt(text("Fatura")), "billing"},
		{"shouted with punctuation", evt(text("FATURA!")), "billing"},
		{"accented", evt(text("minha fátura")), "billing"},
		{"keyword written in upper case in config", evt(text("my invoice please")), "billing"},
		{"longer word is not the keyword", evt(text("faturamento")), "other"},
		{"keyword inside a word", evt(text("superfatura")), "other"},
		{"an earlier rule's keyword beats a later phrase", evt(text("Quero a SEGUNDA   via do boleto")), "billing"},
		{"phrase wins when first", evt(text("quero a segunda via")), "second"},
		{"phrase with ordinal", evt(text("2ª VIA")), "second"},
		{"phrase words apart", evt(text("segunda-feira, via correio")), "other"},
		{"phrase across lines", evt(text("segunda\nvia")), "second"},
		{"emoji keyword", evt(text("ok 👍")), "thumbs"},
		{"button title", evt(button("opt_2", "Segunda via da conta")), "second"},
		{"no message", evt(typ(sdk.TypeStatusRead)), "other"},
		{"empty text", evt(text("")), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Decide(tt.ev, time.Time{}, State{})
			if d.Rule != tt.rule {
				t.Errorf("rule = %q, want %q%s", d.Rule, tt.rule, traceString(d))
			}
		})
	}
}

const condConfig = `
schedules:
  office: {timezone: America/Sao_Paulo, hours: {mon-fri: ["09:00-18:00"]}, holidays: ["2026-12-25"]}
teams: {yes: {}, no: {}}
routes:
  - {name: r, when: WHEN, team: yes}
  - {name: fallback, team: no}
`

func TestConditions(t *testing.T) {
	tests := []struct {
		name  string
		when  string
		ev    *sdk.Event
		st    State
		match bool
	}{
		{"event exact", "{event: [message.received]}", evt(), State{}, true},
		{"event exact, other type", "{event: [button.clicked]}", evt(), State{}, false},
		{"event glob", `{event: ["status.*"]}`, evt(typ(sdk.TypeStatusFailed)), State{}, true},
		{"event glob, other family", `{event: ["status.*"]}`, evt(), State{}, false},
		{"event star", `{event: ["*"]}`, evt(typ("whatsapp.account_update")), State{}, true},
		{"event whatsapp glob", `{event: ["whatsapp.*"]}`, evt(typ("whatsapp.message_template_status_update")), State{}, true},
		{"event ? pattern", `{event: ["status.rea?"]}`, evt(typ(sdk.TypeStatusRead)), State{}, true},
		{"event list ORed", `{event: [optin.granted, message.received]}`, evt(), State{}, true},

		{"button reply id", "{button: [talk_to_sales]}", evt(button("talk_to_sales", "Falar com vendas")), State{}, true},
		{"list row id", "{button: [support_tech, billing]}", evt(button("support_tech", "Suporte técnico")), State{}, true},
		{"button, other id", "{button: [talk_to_sales]}", evt(button("support_tech", "Suporte")), State{}, false},
		{"button, title is not the id", "{button: [Suporte]}", evt(button("support_tech", "Suporte")), State{}, false},
		{"button, plain text", "{button: [talk_to_sales]}", evt(text("talk_to_sales")), State{}, false},

		{"contact", "{contact: {tier: gold}}", evt(attrs("tier", "gold")), State{}, true},
		{"contact, case differs", "{contact: {tier: gold}}", evt(attrs("tier", "Gold")), State{}, true},
		{"contact, one of a list", "{contact: {tier: [gold, platinum]}}", evt(attrs("tier", "platinum")), State{}, true},
		{"contact, other value", "{contact: {tier: gold}}", evt(attrs("tier", "silver")), State{}, false},
		{"contact, missing attribute", "{contact: {tier: gold}}", evt(attrs("owner", "x")), State{}, false},
		{"contact, no attributes", "{contact: {tier: gold}}", evt(), State{}, false},
		{"contact, no contact", "{contact: {tier: gold}}", evt(typ("whatsapp.account_update"), func(e *sdk.Event) { e.Contact = nil }), State{}, false},
		{"contact, attributes ANDed", "{contact: {tier: gold, region: sp}}", evt(attrs("tier", "gold", "region", "sp")), State{}, true},
		{"contact, one attribute fails", "{contact: {tier: gold, region: sp}}", evt(attrs("tier", "gold", "region", "rj")), State{}, false},

		{"phone_number_id", "{phone_number_id: ['106540352242922']}", evt(), State{}, true},
		{"phone_number_id, number", "{phone_number_id: [106540352242922]}", evt(), State{}, true},
		{"phone_number_id, other", "{phone_number_id: ['999']}", evt(), State{}, false},
		{"phone_number_id, no business", "{phone_number_id: ['999']}", evt(func(e *sdk.Event) { e.Business = nil }), State{}, false},

		{"country_code", "{country_code: ['55']}", evt(), State{}, true},
		{"country_code, one of", "{country_code: ['1', '351', '55']}", evt(), State{}, true},
		{"country_code, other", "{country_code: ['1', '351']}", evt(), State{}, false},
		{"country_code, US", "{country_code: ['1']}", evt(waID("14155550100")), State{}, true},
		{"country_code, BSUID only", "{country_code: ['55']}", evt(bsuidOnly), State{}, false},

		{"within, open", "{within: office}", evt(), State{}, true},
		{"within, closed", "{within: office}", evt(func(e *sdk.Event) { e.OccurredAt = sp("2026-11-24", "18:30") }), State{}, false},
		{"within, holiday", "{within: office}", evt(func(e *sdk.Event) { e.OccurredAt = sp("2026-12-25", "10:00") }), State{}, false},
		{"outside, open", "{outside: office}", evt(), State{}, false},
		{"outside, weekend", "{outside: office}", evt(func(e *sdk.Event) { e.OccurredAt = sp("2026-11-28", "10:00") }), State{}, true},

		{"consent granted", "{consent: [granted]}", evt(), State{Consent: "granted"}, true},
		{"consent revoked", "{consent: [granted]}", evt(), State{Consent: "revoked"}, false},
		{"consent unknown is empty", "{consent: [unknown]}", evt(), State{}, true},
		{"consent unknown spelled", "{consent: [unknown, revoked]}", evt(), State{Consent: "unknown"}, true},
		{"consent unknown is not granted", "{consent: [granted]}", evt(), State{}, false},

		{"regex", `{regex: ['\b\d{6}\b']}`, evt(text("pedido 123456")), State{}, true},
		{"regex, any of", `{regex: ['^x', '(?i)pedido']}`, evt(text("PEDIDO 1")), State{}, true},
		{"regex, none", `{regex: ['\b\d{6}\b']}`, evt(text("pedido 1234")), State{}, false},
		{"regex, no message", `{regex: ['.']}`, evt(typ(sdk.TypeStatusRead)), State{}, false},

		{"keywords and event ANDed", "{event: [message.received], keywords: [fatura]}", evt(text("fatura")), State{}, true},
		{"keywords and event, event fails", "{event: [button.clicked], keywords: [fatura]}", evt(text("fatura")), State{}, false},
		{"everything at once", `{event: [message.received], keywords: [fatura], regex: ['\d'], contact: {tier: gold}, phone_number_id: ['106540352242922'], country_code: ['55'], within: office, consent: [granted]}`,
			evt(text("fatura 12"), attrs("tier", "gold")), State{Consent: "granted"}, true},
		{"empty when", "{}", evt(), State{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRouter(t, strings.Replace(condConfig, "WHEN", tt.when, 1))
			d := r.Decide(tt.ev, time.Time{}, tt.st)
			got := d.Rule == "r"
			if got != tt.match {
				t.Errorf("matched = %v, want %v%s", got, tt.match, traceString(d))
			}
			if d.Trace[0].Matched != got || d.Trace[0].Reason == "" {
				t.Errorf("first step = %+v", d.Trace[0])
			}
		})
	}
}

func TestReasons(t *testing.T) {
	r := contractRouter(t)
	d := r.Decide(evt(text("Olá, preciso de ajuda"), attrs("tier", "silver")), weekday, State{})
	want := []Step{
		{Kind: KindRoute, Rule: "vip", Reason: `contact.tier: "silver" is not one of [gold]`},
		{Kind: KindRoute, Rule: "billing", Reason: `keywords: none of [fatura boleto invoice] in "Olá, preciso de ajuda"`},
		{Kind: KindRoute, Rule: "sales-button", Reason: `event: "message.received" is not one of [button.clicked]`},
		{Kind: KindRoute, Rule: "default", Matched: true, Reason: `no conditions: matches every event`},
		{Kind: KindSubscription, Rule: "hubspot", Matched: true, Reason: `events: "message.received" is one of [message.received message.sent status.*]`},
	}
	// The trigger "closed" is traced between the route and the
	// subscription: its condition fails on a Tuesday afternoon.
	closed, ok := step(d, KindTrigger, "closed")
	eq(t, "closed step", closed, Step{Kind: KindTrigger, Rule: "closed", Reason: `outside office: open at 2026-11-24 14:00 America/Sao_Paulo`})
	if !ok {
		t.Fatal("no trace step for trigger closed")
	}
	got := slices.DeleteFunc(slices.Clone(d.Trace), func(s Step) bool { return s.Kind == KindTrigger })
	eq(t, "trace", got, want)

	d = r.Decide(evt(text("Boa tarde!! A FÁTURA não chegou")), sp("2026-11-24", "18:30"), State{})
	eq(t, "billing step", d.Trace[1], Step{Kind: KindRoute, Rule: "billing", Matched: true, Reason: `keywords: "fatura" in "Boa tarde!! A FÁTURA não chegou"`})
	hop, _ := step(d, KindAfterHours, "billing")
	eq(t, "after-hours step", hop, Step{Kind: KindAfterHours, Rule: "billing", Matched: true,
		Reason: `team billing: office closed at 2026-11-24 18:30 America/Sao_Paulo: after_hours → support`})
	fired, _ := step(d, KindTrigger, "closed")
	eq(t, "closed fired", fired, Step{Kind: KindTrigger, Rule: "closed", Matched: true,
		Reason: `on: "message.received" is one of [message.received]; outside office: closed at 2026-11-24 18:30 America/Sao_Paulo`})

	d = r.Decide(evt(text("fatura")), sp("2026-12-25", "10:00"), State{})
	hop, _ = step(d, KindAfterHours, "billing")
	eq(t, "holiday reason", hop.Reason, `team billing: office closed at 2026-12-25 10:00 America/Sao_Paulo (a holiday): after_hours → support`)

	d = mustRouter(t, strings.Replace(condConfig, "WHEN", "{country_code: ['55']}", 1)).Decide(evt(bsuidOnly), weekday, State{})
	eq(t, "bsuid reason", d.Trace[0].Reason, `country_code: the contact has only a user_id, no wa_id, so its country is unknown (wanted one of [55])`)

	// A long text is cut short in reasons.
	long := strings.Repeat("palavra ", 30)
	d = r.Decide(evt(text(long)), weekday, State{})
	if s := d.Trace[1].Reason; !strings.HasSuffix(s, `…"`) || len(s) > 150 {
		t.Errorf("long text reason = %q", s)
	}
}

func TestContractExample(t *testing.T) {
	r := contractRouter(t)
	after := sp("2026-11-24", "18:30")
	tests := []struct {
		name       string
		ev         *sdk.Event
		now        time.Time
		rule, team string
		connectors []string
		triggers   []string
	}{
		{"billing keyword in hours", evt(text("Boa tarde!! A FÁTURA não chegou")), weekday,
			"billing", "billing", []string{"hubspot", "slack", "zendesk"}, nil},
		{"billing keyword at 17:59", evt(text("segunda via do boleto")), sp("2026-11-24", "17:59"),
			"billing", "billing", []string{"hubspot", "slack", "zendesk"}, nil},
		{"billing keyword at 18:30 goes after hours", evt(text("fatura")), after,
			"billing", "support", []string{"hubspot", "zendesk"}, []string{"closed"}},
		{"billing keyword on a holiday", evt(text("fatura")), sp("2026-12-25", "10:00"),
			"billing", "support", []string{"hubspot", "zendesk"}, []string{"closed"}},
		{"billing keyword on Saturday morning", evt(text("fatura")), sp("2026-11-28", "11:00"),
			"billing", "billing", []string{"hubspot", "slack", "zendesk"}, nil},
		{"faturamento is not billing", evt(text("faturamento")), weekday,
			"default", "support", []string{"hubspot", "zendesk"}, nil},
		{"gold before any keyword", evt(text("fatura"), attrs("tier", "gold")), weekday,
			"vip", "account-managers", []string{"hubspot", "slack"}, nil},
		{"sales button", evt(button("talk_to_sales", "Falar com vendas")), weekday,
			"sales-button", "sales", []string{"hubspot", "slack"}, nil},
		{"other list reply", evt(button("support_tech", "Suporte técnico")), weekday,
			"default", "support", []string{"zendesk"}, nil},
		{"status is subscribed", evt(typ(sdk.TypeStatusRead)), weekday,
			"default", "support", []string{"hubspot", "zendesk"}, nil},
		{"message.sent is subscribed", evt(typ(sdk.TypeMessageSent), text("Sua fatura segue")), weekday,
			"billing", "billing", []string{"hubspot", "slack", "zendesk"}, nil},
		{"opt-in welcome", evt(typ(sdk.TypeOptinGranted), func(e *sdk.Event) { e.Message = nil }), weekday,
			"default", "support", []string{"zendesk"}, []string{"welcome"}},
		{"template status field", evt(typ("whatsapp.message_template_status_update"), func(e *sdk.Event) {
			e.Contact, e.Message, e.ConversationID = nil, nil, ""
		}), weekday, "default", "support", []string{"zendesk"}, nil},
		{"no time given: the event's own", evt(text("fatura"), func(e *sdk.Event) { e.OccurredAt = after }), time.Time{},
			"billing", "support", []string{"hubspot", "zendesk"}, []string{"closed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Decide(tt.ev, tt.now, State{})
			eq(t, "rule", d.Rule, tt.rule)
			eq(t, "team", d.Team, tt.team)
			eq(t, "connectors", d.Connectors, tt.connectors)
			eq(t, "triggers", d.Triggers, tt.triggers)
			if t.Failed() {
				t.Log(traceString(d))
			}
			// The dispatcher's quiet path must decide the same.
			q := r.Route(tt.ev, tt.now, State{})
			d.Trace = nil
			eq(t, "Route", q, d)
		})
	}

	d := r.Decide(evt(typ(sdk.TypeOptinGranted)), weekday, State{})
	eq(t, "welcome action", d.Actions, []Action{{Trigger: "welcome", Kind: ActionReply, Reply: &config.Reply{Text: "Bem-vindo! Responda PARAR para sair."}}})
	d = r.Decide(evt(text("oi")), after, State{})
	eq(t, "closed action", d.Actions, []Action{{Trigger: "closed", Kind: ActionReply, Reply: &config.Reply{Template: &config.Template{Name: "after_hours", Language: "pt_BR"}}}})
}

// A 09:00-17:00 schedule in New York must follow the wall clock across both
// DST changes: a fixed UTC offset would be an hour off on one side.
func TestDST(t *testing.T) {
	r := mustRouter(t, `
schedules:
  ny: {timezone: America/New_York, hours: {mon-sun: ["09:00-17:00"]}}
teams: {day: {schedule: ny, after_hours: night}, night: {}}
routes:
  - {name: open, when: {within: ny}, team: day}
  - {name: closed, team: day}
`)
	utc := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	tests := []struct {
		name string
		at   time.Time
		open bool
	}{
		// 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT (UTC-4).
		{"March jump day 09:30 EDT", utc("2026-03-08T13:30:00Z"), true},
		{"March jump day 08:30 EDT", utc("2026-03-08T12:30:00Z"), false},
		{"March jump day 16:59 EDT", utc("2026-03-08T20:59:00Z"), true},
		{"March jump day 17:00 EDT", utc("2026-03-08T21:00:00Z"), false},
		{"the day before, 08:30 EST", utc("2026-03-07T13:30:00Z"), false},
		{"the day before, 09:30 EST", utc("2026-03-07T14:30:00Z"), true},
		// 2026-11-01: clocks fall back from 02:00 EDT to 01:00 EST (UTC-5).
		{"November fall-back day 09:30 EST", utc("2026-11-01T14:30:00Z"), true},
		{"November fall-back day 08:30 EST", utc("2026-11-01T13:30:00Z"), false},
		{"November fall-back day 16:30 EST", utc("2026-11-01T21:30:00Z"), true},
		{"November fall-back day 17:30 EST", utc("2026-11-01T22:30:00Z"), false},
		{"the day before, 08:30 EDT", utc("2026-10-31T12:30:00Z"), false},
		{"the day before, 09:30 EDT", utc("2026-10-31T13:30:00Z"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Decide(evt(), tt.at, State{})
			wantRule, wantTeam := "open", "day"
			if !tt.open {
				wantRule, wantTeam = "closed", "night"
			}
			eq(t, "rule", d.Rule, wantRule)
			eq(t, "team", d.Team, wantTeam)
			if t.Failed() {
				t.Log(traceString(d))
			}
		})
	}
}

func TestFirstMatchWins(t *testing.T) {
	r := mustRouter(t, `
teams: {a: {}, b: {}, c: {}}
routes:
  - {name: first, when: {keywords: [pedido]}, team: a}
  - {name: second, when: {keywords: [pedido, troca]}, team: b}
  - {name: catchall, team: c}
  - {name: never, when: {keywords: [troca]}, team: a}
`)
	for _, tt := range []struct{ text, rule string }{
		{"meu pedido", "first"},
		{"quero troca", "second"},
		{"pedido de troca", "first"},
		{"oi", "catchall"},
	} {
		d := r.Decide(evt(text(tt.text)), weekday, State{})
		eq(t, tt.text, d.Rule, tt.rule)
		// Routes after the first match are not tried.
		if _, tried := step(d, KindRoute, "never"); tried {
			t.Errorf("%s: route after the match was tried%s", tt.text, traceString(d))
		}
	}

	r = mustRouter(t, `
teams: {a: {}}
routes: [{name: only, when: {event: [button.clicked]}, team: a}]
subscriptions: []
`)
	d := r.Decide(evt(), weekday, State{})
	eq(t, "no match rule", d.Rule, "")
	eq(t, "no match team", d.Team, "")
	eq(t, "no match connectors", d.Connectors, []string(nil))
	eq(t, "no match step", d.Trace[len(d.Trace)-1], Step{Kind: KindRoute, Reason: "no route matched: the event goes to no team"})
}

const chainConfig = `
schedules:
  day:   {timezone: UTC, hours: {mon-fri: ["09:00-17:00"]}}
  eve:   {timezone: UTC, hours: {mon-fri: ["09:00-22:00"]}}
connectors:
  ca: {plugin: webhook}
  cb: {plugin: webhook}
  cc: {plugin: webhook}
teams:
  a: {connectors: [ca], schedule: day, after_hours: b}
  b: {connectors: [cb], schedule: eve, after_hours: c}
  c: {connectors: [cc]}
  lonely: {connectors: [ca], schedule: day}
routes:
  - {name: lonely, when: {keywords: [lonely]}, team: lonely}
  - {name: all, team: a}
`

func TestAfterHoursChain(t *testing.T) {
	r := mustRouter(t, chainConfig)
	utc := func(clock string) time.Time {
		t, _ := time.Parse("2006-01-02 15:04", "2026-11-24 "+clock)
		return t
	}
	tests := []struct {
		at, text, team, connector string
		hops                      []string
	}{
		{"10:00", "", "a", "ca", nil},
		{"18:00", "", "b", "cb", []string{"a"}},
		{"23:00", "", "c", "cc", []string{"a", "b"}},
		{"23:00", "lonely", "lonely", "ca", nil},
	}
	for _, tt := range tests {
		d := r.Decide(evt(text(tt.text)), utc(tt.at), State{})
		eq(t, tt.at+" team", d.Team, tt.team)
		var hops []string
		for _, s := range d.Trace {
			if s.Kind == KindAfterHours && s.Matched {
				hops = append(hops, s.Rule)
			}
		}
		eq(t, tt.at+" hops", hops, tt.hops)
		eq(t, tt.at+" connectors", d.Connectors, []string{tt.connector})
	}
	d := r.Decide(evt(text("lonely")), utc("23:00"), State{})
	s, _ := step(d, KindAfterHours, "lonely")
	eq(t, "no after_hours reason", s.Reason, "team lonely: day closed at 2026-11-24 23:00 UTC; no after_hours, so it stays with lonely")
}

// config.Load rejects after_hours loops; a Router from a hand-built
// configuration must still terminate.
func TestAfterHoursLoopGuard(t *testing.T) {
	cfg, err := config.Parse([]byte(chainConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Teams["c"]
	c.Schedule, c.AfterHours = "day", "a"
	cfg.Teams["c"] = c
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Decide(evt(), time.Date(2026, 11, 24, 23, 0, 0, 0, time.UTC), State{})
	eq(t, "team", d.Team, "c")
	s, _ := step(d, KindAfterHours, "c")
	if !strings.Contains(s.Reason, "leads back around the chain") {
		t.Errorf("loop step = %+v", s)
	}
}

const affinityConfig = `
connectors:
  slack: {plugin: slack}
  zendesk: {plugin: zendesk}
teams:
  vip: {connectors: [slack]}
  billing: {connectors: [slack, zendesk]}
  support: {connectors: [zendesk]}
routes:
  - {name: vip, when: {contact: {tier: gold}}, team: vip}
  - {name: billing, when: {keywords: [fatura]}, team: billing}
  - {name: default, team: support}
affinity:
  idle_timeout: 2h
  rules_can_move: [vip]
`

func TestAffinity(t *testing.T) {
	r := mustRouter(t, affinityConfig)
	now := weekday
	recent := State{Team: "billing", LastActive: now.Add(-90 * time.Minute)}
	tests := []struct {
		name       string
		ev         *sdk.Event
		st         State
		rule, team string
		matched    bool // the affinity step
	}{
		{"kept over the default route", evt(text("obrigado")), recent, RuleAffinity, "billing", true},
		{"kept over another keyword route", evt(text("fatura")), State{Team: "support", LastActive: now.Add(-time.Minute)}, RuleAffinity, "support", true},
		{"kept for a status", evt(typ(sdk.TypeStatusRead)), recent, RuleAffinity, "billing", true},
		{"expired", evt(text("obrigado")), State{Team: "billing", LastActive: now.Add(-2 * time.Hour)}, "default", "support", false},
		{"moved by a rules_can_move route", evt(text("obrigado"), attrs("tier", "gold")), recent, "vip", "vip", false},
		{"no conversation", evt(text("obrigado"), noConversation), recent, "default", "support", false},
		{"team gone", evt(text("obrigado")), State{Team: "legacy", LastActive: now}, "default", "support", false},
		{"no last activity", evt(text("obrigado")), State{Team: "billing"}, "default", "support", false},
		{"no team", evt(text("obrigado")), State{LastActive: now}, "default", "support", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Decide(tt.ev, now, tt.st)
			eq(t, "rule", d.Rule, tt.rule)
			eq(t, "team", d.Team, tt.team)
			s, ok := step(d, KindAffinity, tt.st.Team)
			if tt.st.Team != "" && (!ok || s.Matched != tt.matched) {
				t.Errorf("affinity step = %+v (found %v), want matched %v", s, ok, tt.matched)
			}
			if t.Failed() {
				t.Log(traceString(d))
			}
		})
	}

	d := r.Decide(evt(text("obrigado")), now, recent)
	s, _ := step(d, KindAffinity, "billing")
	eq(t, "kept reason", s.Reason, "conversation is with team billing, last active 1h30m0s before this event (affinity.idle_timeout 2h0m0s); route default is not in affinity.rules_can_move")
	eq(t, "kept connectors", d.Connectors, []string{"slack", "zendesk"})

	// The default idle timeout is 24 hours.
	r = mustRouter(t, strings.Replace(affinityConfig, "idle_timeout: 2h", "", 1))
	eq(t, "23h", r.Decide(evt(), now, State{Team: "billing", LastActive: now.Add(-23 * time.Hour)}).Team, "billing")
	eq(t, "25h", r.Decide(evt(), now, State{Team: "billing", LastActive: now.Add(-25 * time.Hour)}).Team, "support")
}

// The kept team still hands over after hours: after_hours is the team that
// "takes over outside the schedule".
func TestAffinityAfterHours(t *testing.T) {
	r := contractRouter(t)
	d := r.Decide(evt(text("e aí?")), sp("2026-11-24", "19:00"), State{Team: "billing", LastActive: sp("2026-11-24", "17:00")})
	eq(t, "rule", d.Rule, RuleAffinity)
	eq(t, "team", d.Team, "support")
}

func TestSubscriptions(t *testing.T) {
	r := mustRouter(t, `
connectors:
  slack: {plugin: slack}
  hubspot: {plugin: hubspot}
  log: {plugin: webhook}
teams: {sales: {connectors: [slack, hubspot]}}
routes: [{name: all, team: sales}]
subscriptions:
  - {connector: hubspot, events: [message.received, "status.*"]}
  - {connector: log, events: ["*"]}
  - {connector: log, events: [message.received]}
`)
	d := r.Decide(evt(), weekday, State{})
	eq(t, "connectors", d.Connectors, []string{"hubspot", "log", "slack"})
	var subs []string
	for _, s := range d.Trace {
		if s.Kind == KindSubscription {
			subs = append(subs, s.Rule+": "+s.Reason)
		}
	}
	eq(t, "subscription steps", subs, []string{
		`hubspot: events: "message.received" is one of [message.received status.*]`,
		`log: events: "message.received" matches *`,
		`log: events: "message.received" is one of [message.received]`,
	})
	d = r.Decide(evt(typ(sdk.TypeStatusDelivered)), weekday, State{})
	eq(t, "status connectors", d.Connectors, []string{"hubspot", "log", "slack"})
	d = r.Decide(evt(typ(sdk.TypeOptinRevoked)), weekday, State{})
	eq(t, "opt-out connectors", d.Connectors, []string{"hubspot", "log", "slack"})
}

const triggerConfig = `
schedules:
  office: {timezone: America/Sao_Paulo, hours: {mon-fri: ["09:00-18:00"]}}
connectors:
  slack: {plugin: slack}
  zendesk: {plugin: zendesk}
  erp: {plugin: webhook}
  audit: {plugin: webhook}
teams:
  support: {connectors: [zendesk], schedule: office, after_hours: night}
  night: {connectors: [slack]}
  vip: {connectors: [slack]}
routes: [{name: default, team: support}]
triggers:
  - name: welcome
    on: [optin.granted]
    reply: {text: "Bem-vindo!"}
  - name: closed
    on: [message.received]
    when: {outside: office}
    reply: {template: {name: after_hours, language: pt_BR}}
  - name: order
    on: [message.received]
    when: {keywords: [pedido]}
    set: {topic: orders}
    deliver: [erp]
  - name: gold
    on: [message.received, button.clicked]
    when: {contact: {tier: gold}}
    assign: vip
    set: {priority: high}
  - name: audit-failures
    on: ["status.failed"]
    deliver: [audit, zendesk]
`

func TestTriggers(t *testing.T) {
	r := mustRouter(t, triggerConfig)
	evening := sp("2026-11-24", "20:00")
	tests := []struct {
		name       string
		ev         *sdk.Event
		now        time.Time
		team       string
		connectors []string
		triggers   []string
		actions    []string // trigger/kind
	}{
		{"nothing fires", evt(text("oi")), weekday, "support", []string{"zendesk"}, nil, nil},
		{"welcome on opt-in", evt(typ(sdk.TypeOptinGranted)), weekday, "support", []string{"zendesk"}, []string{"welcome"}, []string{"welcome/reply"}},
		{"closed outside office", evt(text("oi")), evening, "night", []string{"slack"}, []string{"closed"}, []string{"closed/reply"}},
		{"closed only for messages", evt(typ(sdk.TypeStatusRead)), evening, "night", []string{"slack"}, nil, nil},
		{"deliver and set", evt(text("meu pedido 42")), weekday, "support", []string{"erp", "zendesk"}, []string{"order"}, []string{"order/set", "order/deliver"}},
		{"assign replaces the team and its connectors", evt(text("oi"), attrs("tier", "gold")), weekday, "vip", []string{"slack"}, []string{"gold"}, []string{"gold/set", "gold/assign"}},
		{"assign is not sent after hours", evt(text("pedido"), attrs("tier", "gold")), evening, "vip", []string{"erp", "slack"},
			[]string{"closed", "order", "gold"}, []string{"closed/reply", "order/set", "order/deliver", "gold/set", "gold/assign"}},
		{"deliver deduplicated with the team", evt(typ(sdk.TypeStatusFailed)), weekday, "support", []string{"audit", "zendesk"}, []string{"audit-failures"}, []string{"audit-failures/deliver"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := r.Decide(tt.ev, tt.now, State{})
			eq(t, "team", d.Team, tt.team)
			eq(t, "connectors", d.Connectors, tt.connectors)
			eq(t, "triggers", d.Triggers, tt.triggers)
			var actions []string
			for _, a := range d.Actions {
				actions = append(actions, a.Trigger+"/"+string(a.Kind))
			}
			eq(t, "actions", actions, tt.actions)
			if t.Failed() {
				t.Log(traceString(d))
			}
		})
	}

	d := r.Decide(evt(text("pedido"), attrs("tier", "gold")), weekday, State{})
	eq(t, "set and deliver", d.Actions[:2], []Action{
		{Trigger: "order", Kind: ActionSet, Set: map[string]string{"topic": "orders"}},
		{Trigger: "order", Kind: "deliver", Deliver: []string{"erp"}},
	})
	eq(t, "assign", d.Actions[3], Action{Trigger: "gold", Kind: "assign", Assign: "vip"})
	s, _ := step(d, KindAssign, "gold")
	eq(t, "assign step", s, Step{Kind: KindAssign, Rule: "gold", Matched: true, Reason: "team support → vip (assigned, so after_hours does not apply)"})
	s, _ = step(d, KindTrigger, "closed")
	eq(t, "closed not fired", s, Step{Kind: KindTrigger, Rule: "closed", Reason: "outside office: open at 2026-11-24 14:00 America/Sao_Paulo"})
	if _, ok := step(d, KindTrigger, "welcome"); ok {
		t.Error("a trigger whose on does not match is in the trace")
	}
}

func TestDisabledConnector(t *testing.T) {
	r := mustRouter(t, `
connectors:
  slack: {plugin: slack, enabled: false}
  zendesk: {plugin: zendesk}
  hubspot: {plugin: hubspot, enabled: false}
teams: {billing: {connectors: [slack, zendesk]}}
routes: [{name: all, team: billing}]
subscriptions: [{connector: hubspot, events: ["*"]}]
`)
	d := r.Decide(evt(), weekday, State{})
	eq(t, "connectors", d.Connectors, []string{"zendesk"})
	var skipped []string
	for _, s := range d.Trace {
		if s.Kind == KindConnector && !s.Matched {
			skipped = append(skipped, s.Rule)
		}
	}
	eq(t, "skipped", skipped, []string{"hubspot", "slack"})
	s, _ := step(d, KindConnector, "slack")
	eq(t, "reason", s.Reason, "disabled (connectors.slack.enabled: false): it does not get this event")
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
	cfg := &config.Config{
		Teams: map[string]config.Team{"a": {Connectors: []config.Binding{{Name: "ghost"}}, Schedule: "nope"}},
		Routes: []config.Route{
			{Name: "x", Team: "missing"},
			{Name: "y", Team: "a", When: config.Conditions{Regex: []string{"("}}},
			{Name: "z", Team: "a", When: config.Conditions{Event: []string{"[status"}}},
		},
		Affinity: config.Affinity{RulesCanMove: []string{"nope"}},
	}
	_, err := New(cfg)
	var keys []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *config.Error", e)
		}
		keys = append(keys, ce.Key)
	}
	eq(t, "error keys", keys, []string{
		"teams.a.connectors[0]", "teams.a.schedule", "routes[0].team",
		"routes[1].when.regex[0]", "routes[2].when.event[0]", "affinity.rules_can_move[0]",
	})

	// A hand-built configuration works: regexps are compiled, the idle
	// timeout defaults.
	r, err := New(&config.Config{
		Teams:  map[string]config.Team{"a": {}},
		Routes: []config.Route{{Name: "digits", Team: "a", When: config.Conditions{Regex: []string{`^\d+$`}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "hand-built", r.Decide(evt(text("123")), weekday, State{}).Rule, "digits")
	eq(t, "idle default", r.idle, 24*time.Hour)
}

// Decide is called from many dispatcher goroutines at once; -race checks
// that it shares nothing mutable.
func TestConcurrentDecide(t *testing.T) {
	r := contractRouter(t)
	events := []*sdk.Event{
		evt(text("Boa tarde!! A FÁTURA não chegou")),
		evt(button("talk_to_sales", "Falar com vendas")),
		evt(attrs("tier", "gold")),
		evt(typ(sdk.TypeStatusRead)),
	}
	want := make([]Decision, len(events))
	for i, ev := range events {
		want[i] = r.Decide(ev, weekday, State{})
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := (g + i) % len(events)
				if d := r.Decide(events[k], weekday, State{}); !reflect.DeepEqual(d, want[k]) {
					t.Errorf("decision %d differs under concurrency", k)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestAlertsOnlyBindings(t *testing.T) {
	r := mustRouter(t, `
teams:
  support:
    connectors: [zendesk, {name: slack-alerts, events: [status.failed, "deadletter.*"]}]
routes: [{name: default, team: support}]
subscriptions:
  - connectors: [crm, {name: audit, events: ["status.*"]}]
    events: [message.received]
connectors:
  zendesk: {plugin: zendesk}
  slack-alerts: {plugin: slack}
  crm: {plugin: hubspot}
  audit: {plugin: webhook}
`)
	tests := []struct {
		typ  sdk.EventType
		want []string
	}{
		{sdk.TypeMessageReceived, []string{"crm", "zendesk"}},
		{sdk.TypeStatusFailed, []string{"audit", "slack-alerts", "zendesk"}},
		{sdk.TypeStatusRead, []string{"audit", "zendesk"}},
		{sdk.TypeDeadLetter, []string{"slack-alerts", "zendesk"}},
	}
	for _, tt := range tests {
		d := r.Decide(evt(typ(tt.typ)), weekday, State{})
		if !slices.Equal(d.Connectors, tt.want) {
			t.Errorf("%s: connectors %v, want %v", tt.typ, d.Connectors, tt.want)
		}
		if tt.typ == sdk.TypeMessageReceived {
			found := false
			for _, s := range d.Trace {
				if s.Rule == "slack-alerts" && !s.Matched && strings.Contains(s.Reason, "teams.support.connectors[1].events") {
					found = true
				}
			}
			if !found {
				t.Errorf("the explanation does not say why slack-alerts is left out: %+v", d.Trace)
			}
		}
	}
}
