package freshdesk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

const secret = "hook-secret-0123456789abcdef"

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// env is a connector running over gRPC against a fake Freshdesk.
type env struct {
	t      *testing.T
	fake   *freshdesktest.Server
	url    string
	clock  *sdktest.Clock
	conn   sdk.Connector
	remote *sdk.Remote
	host   *sdktest.FakeHost
}

type setup struct {
	opts    []freshdesktest.Option
	extra   map[string]any
	handler func(fake http.Handler) http.Handler // wraps the fake
	host    sdk.Host                             // instead of a FakeHost
}

func newEnv(t *testing.T, s setup) *env {
	t.Helper()
	clk := sdktest.NewClock(t0)
	fake := freshdesktest.NewServer(append([]freshdesktest.Option{freshdesktest.WithClock(clk.Now)}, s.opts...)...)
	var h http.Handler = fake
	if s.handler != nil {
		h = s.handler(fake)
	}
	srv := sdktest.Serve(t, h)
	c := freshdesk.New()
	freshdesk.SetClock(c, clk.Now)
	if s.host != nil {
		r := sdktest.Dial(t, c)
		if err := r.Configure(context.Background(), sdk.Config{Name: "freshdesk", Raw: configJSON(t, srv.URL, s.extra)}, s.host); err != nil {
			t.Fatalf("configure: %v", err)
		}
		return &env{t: t, fake: fake, url: srv.URL, clock: clk, conn: c, remote: r}
	}
	r, host := sdktest.Start(t, c, "freshdesk", configJSON(t, srv.URL, s.extra))
	return &env{t: t, fake: fake, url: srv.URL, clock: clk, conn: c, remote: r, host: host}
}

func configJSON(t testing.TB, url string, extra map[string]any) json.RawMessage {
	t.Helper()
	return sdktest.ConfigJSON(t, map[string]any{"api_url": url, "api_key": freshdesktest.DefaultAPIKey, "webhook_secret": secret}, extra)
}

func (e *env) deliver(events ...sdk.Event) map[string]sdk.Result {
	e.t.Helper()
	return sdktest.Deliver(e.t, e.remote, events...)
}

func (e *env) mustDeliver(events ...sdk.Event) {
	e.t.Helper()
	sdktest.MustDeliver(e.t, e.remote, events...)
}

// wantOnlyRequester checks that the account has one contact, id, and that
// the one ticket is theirs: no duplicate was created.
func (e *env) wantOnlyRequester(id int64) {
	e.t.Helper()
	if n := len(e.fake.Contacts()); n != 1 {
		e.t.Errorf("%d contacts, want only %d", n, id)
	}
	if tk := e.onlyTicket(); tk.RequesterID != id {
		e.t.Errorf("requester %d, want %d", tk.RequesterID, id)
	}
}

var (
	biz   = &sdk.Business{WABAID: "102290129340398", PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881"}
	ana   = &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"}
	bruno = &sdk.Contact{WAID: "5521998760002", Name: "Bruno Lima"}
)

func text(id, conv string, who *sdk.Contact, body string) sdk.Event {
	return sdk.Event{
		ID: id, Type: sdk.TypeMessageReceived, OccurredAt: t0, ReceivedAt: t0,
		Business: biz, Contact: who, ConversationID: conv,
		Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: body},
		Route:   &sdk.Route{Rule: "billing", Team: "billing", Connectors: []string{"freshdesk"}},
	}
}

func (e *env) onlyTicket() freshdesktest.TicketRecord {
	e.t.Helper()
	ts := e.fake.Tickets()
	if len(ts) != 1 {
		e.t.Fatalf("%d tickets, want 1: %+v", len(ts), ts)
	}
	return ts[0]
}

func bodies(convs []freshdesktest.Conversation) []string {
	var out []string
	for _, c := range convs {
		out = append(out, c.BodyText)
	}
	return out
}

func TestConformance(t *testing.T) {
	var fake *freshdesktest.Server
	sdktest.Suite{
		Name:         "freshdesk",
		RequiredKeys: []string{"domain", "api_key"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			fake = freshdesktest.NewServer()
			srv := sdktest.Serve(t, fake)
			return freshdesk.New(), configJSON(t, srv.URL, nil)
		},
		BadConfig: json.RawMessage(`{"domain": "acme"}`),
		AfterRedelivery: func(t *testing.T) {
			if n := len(fake.Contacts()); n != 2 {
				t.Errorf("%d contacts, want 2 (Ana, Bruno)", n)
			}
			tickets := fake.Tickets()
			if len(tickets) != 2 {
				t.Fatalf("%d tickets, want 2: one per conversation", len(tickets))
			}
			var anaTicket, brunoTicket freshdesktest.TicketRecord
			for _, tk := range tickets {
				if strings.Contains(tk.Subject, "pedido") {
					anaTicket = tk
				} else {
					brunoTicket = tk
				}
			}
			if anaTicket.ID == 0 || len(anaTicket.Conversations) != 2 {
				t.Errorf("Ana's ticket %+v: want 2 notes (the button, the image)", anaTicket)
			}
			if len(brunoTicket.Conversations) != 0 {
				t.Errorf("Bruno's ticket has %d notes, want none (the opt-out is not filed)", len(brunoTicket.Conversations))
			}
		},
	}.Run(t)
}

func TestFirstMessageOpensTicket(t *testing.T) {
	e := newEnv(t, setup{
		opts:  []freshdesktest.Option{freshdesktest.WithGroups(43000000777)},
		extra: map[string]any{"priorities": map[string]int{"billing": 3}, "groups": map[string]int64{"billing": 43000000777}, "tags": []string{"vip-line"}},
	})
	ev := text("evt_1", "conv_ana", ana, "Minha fatura veio errada\nValor: R$ 120 <b>bold</b>")
	e.mustDeliver(ev)

	tk := e.onlyTicket()
	contacts := e.fake.Contacts()
	if len(contacts) != 1 || contacts[0].Name != "Ana Souza" || contacts[0].Phone == nil || *contacts[0].Phone != "+5511987650001" {
		t.Fatalf("contacts %+v, want Ana with phone +5511987650001", contacts)
	}
	if tk.Subject != "Minha fatura veio errada" {
		t.Errorf("subject %q", tk.Subject)
	}
	if tk.Description != "<div>Minha fatura veio errada<br>Valor: R$ 120 &lt;b&gt;bold&lt;/b&gt;</div>" {
		t.Errorf("description %q", tk.Description)
	}
	if tk.Status != 2 || tk.Priority != 3 || tk.Source != 7 || tk.RequesterID != contacts[0].ID || tk.GroupID == nil || *tk.GroupID != 43000000777 {
		t.Errorf("ticket %+v", tk.Ticket)
	}
	if len(tk.Tags) != 5 || !slices.Equal(tk.Tags[:4], []string{"whatsapp", "team_billing", "rule_billing", "vip-line"}) || !strings.HasPrefix(tk.Tags[4], "wahub-") {
		t.Errorf("tags %v", tk.Tags)
	}
	if len(tk.Conversations) != 0 {
		t.Errorf("conversations %v, want none: the first message is the description", bodies(tk.Conversations))
	}
}

func TestCustomerLookup(t *testing.T) {
	t.Run("existing contact by mobile", func(t *testing.T) {
		e := newEnv(t, setup{})
		existing := e.fake.AddContact(freshdesktest.Contact{Name: "Ana (CRM)", Mobile: ptr("+5511987650001")})
		e.mustDeliver(text("evt_1", "conv", ana, "oi"))
		e.wantOnlyRequester(existing.ID)
	})
	t.Run("no profile name", func(t *testing.T) {
		e := newEnv(t, setup{})
		e.mustDeliver(text("evt_1", "conv", &sdk.Contact{WAID: "4915112345678"}, "hallo"))
		if c := e.fake.Contacts(); len(c) != 1 || c[0].Name != "+4915112345678" {
			t.Errorf("contacts %+v, want one named by the number", c)
		}
	})
	t.Run("user id only", func(t *testing.T) {
		e := newEnv(t, setup{})
		e.mustDeliver(text("evt_1", "conv", &sdk.Contact{UserID: "BR.1234567890", Name: "Caio"}, "oi"))
		c := e.fake.Contacts()
		if len(c) != 1 || c[0].UniqueExternalID == nil || *c[0].UniqueExternalID != "whatsapp:BR.1234567890" || c[0].Phone != nil {
			t.Errorf("contacts %+v, want one with unique_external_id whatsapp:BR.1234567890", c)
		}
	})
	t.Run("created meanwhile: 409 names the holder", func(t *testing.T) {
		var once sync.Once
		var holder freshdesktest.Contact
		e := newEnv(t, setup{handler: func(fake http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && r.URL.Path == "/api/v2/contacts" {
					// Another process creates the contact between our
					// look-up and our create.
					once.Do(func() {
						holder = fake.(*freshdesktest.Server).AddContact(freshdesktest.Contact{Name: "Ana", Phone: ptr("+5511987650001")})
					})
				}
				fake.ServeHTTP(w, r)
			})
		}})
		e.mustDeliver(text("evt_1", "conv", ana, "oi"))
		e.wantOnlyRequester(holder.ID) // the 409's user_id
	})
	t.Run("remembered contact deleted", func(t *testing.T) {
		e := newEnv(t, setup{})
		e.mustDeliver(text("evt_1", "conv1", ana, "oi"))
		first := e.onlyTicket()
		// The agent deletes the contact and its ticket; the customer
		// writes in a new conversation.
		e.fake.DeleteTicket(first.ID)
		e.host.KV().Put(context.Background(), "contact:5511987650001", []byte("999999"))
		e.mustDeliver(text("evt_2", "conv2", ana, "oi de novo"))
		if tk := e.onlyTicket(); tk.RequesterID != first.RequesterID {
			t.Errorf("requester %d, want the contact found again, %d", tk.RequesterID, first.RequesterID)
		}
	})
}

func TestFollowUpsAreNotes(t *testing.T) {
	e := newEnv(t, setup{})
	e.mustDeliver(text("evt_1", "conv_ana", ana, "Olá"), text("evt_2", "conv_ana", ana, "preciso de ajuda"))
	e.mustDeliver(text("evt_3", "conv_ana", ana, "com meu pedido"))
	tk := e.onlyTicket()
	if got := bodies(tk.Conversations); !slices.Equal(got, []string{"preciso de ajuda", "com meu pedido"}) {
		t.Fatalf("notes %q", got)
	}
	for _, c := range tk.Conversations {
		if !c.Incoming || c.Private || c.UserID != tk.RequesterID || c.Source != freshdesktest.SourceNote {
			t.Errorf("note %+v: want incoming, public, by the requester", c)
		}
	}
}

func TestRedeliveredBatchAddsNothing(t *testing.T) {
	e := newEnv(t, setup{})
	batch := []sdk.Event{
		text("evt_1", "conv_ana", ana, "Olá"), text("evt_2", "conv_bruno", bruno, "Oi"),
		text("evt_3", "conv_ana", ana, "de novo"), text("evt_4", "conv_bruno", bruno, "alô"),
	}
	e.mustDeliver(batch...)
	calls := len(e.fake.Requests())
	e.mustDeliver(batch...)
	if len(e.fake.Tickets()) != 2 {
		t.Errorf("%d tickets after redelivery, want 2", len(e.fake.Tickets()))
	}
	for _, tk := range e.fake.Tickets() {
		if len(tk.Conversations) != 1 {
			t.Errorf("ticket %d has %d notes, want 1", tk.ID, len(tk.Conversations))
		}
	}
	if n := len(e.fake.Requests()) - calls; n != 0 {
		t.Errorf("redelivery made %d API calls, want none", n)
	}
}

// A crash after Freshdesk created the ticket but before the connector
// learned or recorded its id must not open a second ticket.
func TestInterruptedTicketCreation(t *testing.T) {
	t.Run("answer lost", func(t *testing.T) {
		lose := 1
		var mu sync.Mutex
		e := newEnv(t, setup{handler: func(fake http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				drop := r.Method == http.MethodPost && r.URL.Path == "/api/v2/tickets" && lose > 0
				if drop {
					lose--
				}
				mu.Unlock()
				if drop {
					fake.ServeHTTP(httptest.NewRecorder(), r) // created...
					http.Error(w, "upstream timeout", http.StatusGatewayTimeout)
					return
				}
				fake.ServeHTTP(w, r)
			})
		}})
		ev := text("evt_1", "conv", ana, "Olá")
		if r := e.deliver(ev)["evt_1"]; r.Outcome != sdk.Retry {
			t.Fatalf("first attempt %s %s, want retry", r.Outcome, r.Error)
		}
		e.mustDeliver(ev, text("evt_2", "conv", ana, "alô"))
		tk := e.onlyTicket()
		if got := bodies(tk.Conversations); !slices.Equal(got, []string{"alô"}) {
			t.Errorf("notes %q", got)
		}
	})
	t.Run("KV write lost", func(t *testing.T) {
		clk := sdktest.NewClock(t0)
		fake := freshdesktest.NewServer(freshdesktest.WithClock(clk.Now))
		srv := httptest.NewServer(fake)
		defer srv.Close()
		host := &flakyHost{FakeHost: sdktest.NewFakeHost(), failPut: "ticket:"}
		c := freshdesk.New()
		if err := c.Configure(context.Background(), sdk.Config{Name: "freshdesk", Raw: configJSON(t, srv.URL, nil)}, host); err != nil {
			t.Fatal(err)
		}
		ev := text("evt_1", "conv", ana, "Olá")
		if r := c.Deliver(context.Background(), []sdk.Event{ev})[0]; r.Outcome != sdk.Retry {
			t.Fatalf("first attempt %s %s, want retry", r.Outcome, r.Error)
		}
		for _, r := range c.Deliver(context.Background(), []sdk.Event{ev}) {
			if r.Outcome != sdk.Delivered {
				t.Fatalf("redelivery %s %s", r.Outcome, r.Error)
			}
		}
		if n := len(fake.Tickets()); n != 1 {
			t.Errorf("%d tickets, want 1", n)
		}
		if n := fake.Calls(http.MethodGet, "/api/v2/tickets"); n != 1 {
			t.Errorf("looked for the marked ticket %d times, want 1", n)
		}
	})
}

// flakyHost fails the first KV Put of a key with a prefix.
type flakyHost struct {
	*sdktest.FakeHost
	mu      sync.Mutex
	failPut string
}

func (h *flakyHost) KV() sdk.KV { return &flakyKV{KV: h.FakeHost.KV(), h: h} }

type flakyKV struct {
	sdk.KV
	h *flakyHost
}

func (k *flakyKV) Put(ctx context.Context, key string, v []byte) error {
	k.h.mu.Lock()
	fail := k.h.failPut != "" && strings.HasPrefix(key, k.h.failPut)
	if fail {
		k.h.failPut = ""
	}
	k.h.mu.Unlock()
	if fail {
		return fmt.Errorf("kv: database is locked")
	}
	return k.KV.Put(ctx, key, v)
}

func TestReopenOrNewTicket(t *testing.T) {
	cases := []struct {
		name      string
		reopen    any // config reopen_within; nil: default (72h)
		setup     func(e *env, id int64)
		wantNew   bool
		wantState int // status of the first ticket afterwards
	}{
		{name: "open ticket: a note", setup: func(*env, int64) {}, wantState: 2},
		{name: "pending ticket: a note", setup: func(e *env, id int64) { e.fake.SetStatus(id, 3) }, wantState: 3},
		{name: "resolved an hour ago: reopened", setup: func(e *env, id int64) {
			e.fake.SetStatus(id, 4)
			e.clock.Advance(time.Hour)
		}, wantState: 2},
		{name: "resolved 4 days ago: a new ticket", setup: func(e *env, id int64) {
			e.fake.SetStatus(id, 4)
			e.clock.Advance(4 * 24 * time.Hour)
		}, wantNew: true, wantState: 4},
		{name: "resolved 4 days ago, auto-closed 2 days ago: a new ticket", setup: func(e *env, id int64) {
			e.fake.SetStatus(id, 4)
			e.clock.Advance(2 * 24 * time.Hour)
			e.fake.SetStatus(id, 5)
			e.clock.Advance(2 * 24 * time.Hour)
		}, wantNew: true, wantState: 5},
		{name: "closed 5 days ago, reopen_within 7d: reopened", reopen: "7d", setup: func(e *env, id int64) {
			e.fake.SetStatus(id, 5)
			e.clock.Advance(5 * 24 * time.Hour)
		}, wantState: 2},
		{name: "reopen_within 0: always a new ticket", reopen: 0, setup: func(e *env, id int64) {
			e.fake.SetStatus(id, 4)
			e.clock.Advance(time.Minute)
		}, wantNew: true, wantState: 4},
		{name: "deleted: a new ticket", setup: func(e *env, id int64) { e.fake.DeleteTicket(id) }, wantNew: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]any{}
			if tc.reopen != nil {
				extra["reopen_within"] = tc.reopen
			}
			e := newEnv(t, setup{extra: extra})
			e.mustDeliver(text("evt_1", "conv", ana, "primeira"))
			first := e.onlyTicket().ID
			tc.setup(e, first)
			e.mustDeliver(text("evt_2", "conv", ana, "segunda"))
			e.mustDeliver(text("evt_3", "conv", ana, "terceira"))

			var target int64 = first
			tickets := e.fake.Tickets()
			if tc.wantNew {
				last := tickets[len(tickets)-1]
				if last.ID == first || last.Subject != "segunda" {
					t.Fatalf("tickets %+v: want a new one opened by the second message", tickets)
				}
				target = last.ID
				if got := bodies(last.Conversations); !slices.Equal(got, []string{"terceira"}) {
					t.Errorf("new ticket's notes %q", got)
				}
			} else if len(tickets) != 1 {
				t.Fatalf("%d tickets, want the first one only", len(tickets))
			}
			if old, ok := e.fake.Ticket(first); ok {
				if old.Status != tc.wantState {
					t.Errorf("first ticket status %d, want %d", old.Status, tc.wantState)
				}
				if !tc.wantNew {
					if got := bodies(old.Conversations); !slices.Equal(got, []string{"segunda", "terceira"}) {
						t.Errorf("notes %q", got)
					}
				}
			}
			// The agents' replies now go through the current ticket.
			raw, _, _ := e.host.KV().Get(context.Background(), fmt.Sprintf("ticket:%d", target))
			if !strings.Contains(string(raw), `"conv"`) {
				t.Errorf("ticket:%d → %s, want the conversation", target, raw)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	validation := `{"description":"Validation failed","errors":[{"field":"email","message":"It should be a valid email address","code":"invalid_value"}]}`
	cases := []struct {
		name    string
		fault   *freshdesktest.Fault
		setup   setup
		timeout string
		refused bool
		want    sdk.Outcome
		after   time.Duration
		errHas  []string
		errNot  []string
	}{
		{name: "429 with Retry-After", fault: &freshdesktest.Fault{Status: 429, RetryAfter: "30"}, want: sdk.Retry, after: 30 * time.Second,
			errHas: []string{"429", "rate limit"}},
		{name: "429 without Retry-After", fault: &freshdesktest.Fault{Status: 429}, want: sdk.Retry},
		{name: "429 Retry-After capped", fault: &freshdesktest.Fault{Status: 429, RetryAfter: "86400"}, want: sdk.Retry, after: time.Hour},
		{name: "401", fault: &freshdesktest.Fault{Status: 401}, want: sdk.Failed,
			errHas: []string{"401", "invalid_credentials", "connectors.freshdesk.config.api_key"}, errNot: []string{freshdesktest.DefaultAPIKey}},
		{name: "wrong api key, real 401", setup: setup{opts: []freshdesktest.Option{freshdesktest.WithAPIKey("another-key")}}, want: sdk.Failed,
			errHas: []string{"You have to be logged in", "connectors.freshdesk.config.api_key"}, errNot: []string{freshdesktest.DefaultAPIKey}},
		{name: "403", fault: &freshdesktest.Fault{Status: 403}, want: sdk.Failed, errHas: []string{"403", "may not do this"}},
		{name: "400 validation names the field", fault: &freshdesktest.Fault{Status: 400, Body: validation}, want: sdk.Failed,
			errHas: []string{"400", `field "email"`, "It should be a valid email address", "invalid_value"}},
		{name: "400 from the config: unknown group", setup: setup{extra: map[string]any{"groups": map[string]int64{"billing": 9}}}, want: sdk.Failed,
			errHas: []string{`field "group_id"`, "There is no group matching", "connectors.freshdesk.config.groups"}},
		{name: "404: wrong address", fault: &freshdesktest.Fault{Status: 404}, want: sdk.Failed, errHas: []string{"404", "config.domain", "config.api_url"}},
		{name: "302: wrong address", fault: &freshdesktest.Fault{Status: 302, Body: " "}, want: sdk.Failed, errHas: []string{"redirected"}},
		{name: "500", fault: &freshdesktest.Fault{Status: 500}, want: sdk.Retry, errHas: []string{"500", "unavailable"}},
		{name: "503 with Retry-After", fault: &freshdesktest.Fault{Status: 503, RetryAfter: "5", Body: "<html>maintenance</html>"}, want: sdk.Retry, after: 5 * time.Second},
		{name: "timeout", setup: setup{handler: func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		}}, timeout: "50ms", want: sdk.Retry, errHas: []string{"no answer", "within 50ms"}},
		{name: "connection refused", refused: true, want: sdk.Retry, errHas: []string{"connection refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.setup
			if tc.timeout != "" {
				s.extra = map[string]any{"timeout": tc.timeout}
			}
			e := newEnv(t, s)
			if tc.fault != nil {
				e.fake.Inject(1, *tc.fault)
			}
			r := e.remote
			if tc.refused {
				cfg := configJSON(t, "http://"+sdktest.ClosedAddr(t), nil)
				r, _ = sdktest.Start(t, freshdesk.New(), "freshdesk", cfg)
			}
			res, err := r.Deliver(context.Background(), []sdk.Event{text("evt_1", "conv", ana, "oi"), text("evt_2", "conv", ana, "alô")})
			if err != nil {
				t.Fatal(err)
			}
			got := res[0]
			if got.EventID != "evt_1" {
				got, res[1] = res[1], res[0]
			}
			sdktest.WantResult(t, got, tc.want, tc.after, tc.errHas, tc.errNot)
			held := res[1]
			if tc.want != sdk.Delivered && (held.Outcome != sdk.Retry || !held.NotAttempted || held.RetryAfter != tc.after) {
				t.Errorf("the next event of the conversation: %+v, want held (retry, not attempted, after %s)", held, tc.after)
			}
		})
	}
}

// failOnce answers the first call matching method and path suffix with
// status, and passes every other call to the fake.
func failOnce(method, suffix string, status int, retryAfter string) func(http.Handler) http.Handler {
	return func(fake http.Handler) http.Handler {
		var mu sync.Mutex
		done := false
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			fail := !done && r.Method == method && strings.HasSuffix(r.URL.Path, suffix)
			if fail {
				done = true
			}
			mu.Unlock()
			if fail {
				if retryAfter != "" {
					w.Header().Set("Retry-After", retryAfter)
				}
				w.WriteHeader(status)
				return
			}
			fake.ServeHTTP(w, r)
		})
	}
}

func TestOrderWithinConversation(t *testing.T) {
	e := newEnv(t, setup{handler: failOnce(http.MethodPost, "/notes", http.StatusServiceUnavailable, "20")})
	e1, e2, e3 := text("evt_1", "conv", ana, "um"), text("evt_2", "conv", ana, "dois"), text("evt_3", "conv", ana, "três")
	other := text("evt_b", "conv_b", bruno, "outro")
	res := e.deliver(e1, e2, other, e3)
	if res["evt_1"].Outcome != sdk.Delivered || res["evt_b"].Outcome != sdk.Delivered {
		t.Fatalf("results %+v", res)
	}
	if r := res["evt_2"]; r.Outcome != sdk.Retry || r.RetryAfter != 20*time.Second {
		t.Errorf("evt_2: %+v, want retry after 20s", r)
	}
	if r := res["evt_3"]; r.Outcome != sdk.Retry || !r.NotAttempted || r.RetryAfter != 20*time.Second || !strings.Contains(r.Error, "evt_2") {
		t.Errorf("evt_3: %+v, want held behind evt_2", r)
	}
	e.clock.Advance(20 * time.Second)
	e.mustDeliver(e2, e3)
	for _, tk := range e.fake.Tickets() {
		if tk.Subject == "um" {
			if got := bodies(tk.Conversations); !slices.Equal(got, []string{"dois", "três"}) {
				t.Errorf("notes %q, want them in order", got)
			}
		}
	}
}

// After a 429, the rest of the batch waits instead of spending the next
// window's credits on refused calls.
func TestRateLimitPausesCalls(t *testing.T) {
	e := newEnv(t, setup{opts: []freshdesktest.Option{freshdesktest.WithRateLimit(20)}})
	var batch []sdk.Event
	for i := range 8 {
		who := &sdk.Contact{WAID: fmt.Sprintf("55119876500%02d", i), Name: fmt.Sprintf("Cliente %d", i)}
		batch = append(batch, text(fmt.Sprintf("evt_%d", i), fmt.Sprintf("conv_%d", i), who, "oi"))
	}
	res := e.deliver(batch...)
	var delivered, retried int
	for _, r := range res {
		switch {
		case r.Outcome == sdk.Delivered:
			delivered++
		case r.Outcome == sdk.Retry && r.RetryAfter > 0 && r.RetryAfter <= time.Minute:
			retried++
		default:
			t.Errorf("%s: %s after %s (%s)", r.EventID, r.Outcome, r.RetryAfter, r.Error)
		}
	}
	if delivered == 0 || retried == 0 {
		t.Fatalf("%d delivered, %d retried: want the limit to bite part-way", delivered, retried)
	}
	var refused int
	for _, rq := range e.fake.Requests() {
		if rq.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused > freshdesk.MaxConcurrent {
		t.Errorf("%d calls refused with 429: the connector kept calling after the first", refused)
	}
	var pending []sdk.Event
	for _, ev := range batch {
		if res[ev.ID].Outcome != sdk.Delivered {
			pending = append(pending, ev)
		}
	}
	for round := 0; len(pending) > 0 && round < 10; round++ {
		e.clock.Advance(time.Minute)
		res := e.deliver(pending...)
		var next []sdk.Event
		for _, ev := range pending {
			if res[ev.ID].Outcome != sdk.Delivered {
				next = append(next, ev)
			}
		}
		pending = next
	}
	if len(pending) > 0 {
		t.Errorf("%d events still not delivered after 10 minutes", len(pending))
	}
	if n := len(e.fake.Tickets()); n != len(batch) {
		t.Errorf("%d tickets, want %d: one per conversation, none twice", n, len(batch))
	}
	if e.fake.MaxPerMinute() > 20 {
		t.Errorf("the fake allowed %d calls in a minute", e.fake.MaxPerMinute())
	}
}

func TestCancelledMidBatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, setup{handler: func(fake http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cancel()
			<-r.Context().Done()
		})
	}})
	for _, r := range e.conn.Deliver(ctx, []sdk.Event{text("evt_1", "conv", ana, "oi"), text("evt_2", "conv", ana, "alô")}) {
		if r.Outcome != sdk.Retry {
			t.Errorf("%s: %s (%s), want retry", r.EventID, r.Outcome, r.Error)
		}
	}
}

func TestOtherEvents(t *testing.T) {
	e := newEnv(t, setup{})
	e.mustDeliver(text("evt_1", "conv", ana, "oi"))
	tk := e.onlyTicket()

	sent := func(id, source, body string) sdk.Event {
		ev := text(id, "conv", ana, body)
		ev.Type = sdk.TypeMessageSent
		ev.Outbound = &sdk.Outbound{ID: "msg_" + id, Source: source}
		return ev
	}
	failed := func(id, source, key string) sdk.Event {
		ev := text(id, "conv", ana, "")
		ev.Type, ev.Message = sdk.TypeStatusFailed, nil
		ev.Status = &sdk.Status{MessageID: "wamid.x", Status: "failed", Errors: []sdk.Error{{Code: 131047, Title: "Re-engagement message"}}}
		ev.Outbound = &sdk.Outbound{ID: "msg_" + id, Source: source, IdempotencyKey: key}
		return ev
	}
	delivered := text("evt_s", "conv", ana, "")
	delivered.Type, delivered.Message = sdk.TypeStatusDelivered, nil
	noTicket := sent("evt_nt", "trigger:welcome", "Bem-vindo!")
	noTicket.ConversationID = "conv_other"

	cases := []struct {
		ev   sdk.Event
		want sdk.Outcome
	}{
		{sent("evt_own", "connector:freshdesk", "the agent's reply"), sdk.Skipped},
		{sent("evt_trigger", "trigger:closed", "Estamos fechados"), sdk.Delivered},
		{sent("evt_api", "api", "Seu pedido saiu"), sdk.Delivered},
		{noTicket, sdk.Skipped},
		{failed("evt_fail", "connector:freshdesk", "conversation:5001"), sdk.Delivered},
		{failed("evt_fail_other", "trigger:closed", ""), sdk.Skipped},
		{delivered, sdk.Skipped},
	}
	for _, tc := range cases {
		if r := e.deliver(tc.ev)[tc.ev.ID]; r.Outcome != tc.want {
			t.Errorf("%s: %s (%s), want %s", tc.ev.ID, r.Outcome, r.Error, tc.want)
		}
	}
	tk, _ = e.fake.Ticket(tk.ID)
	var notes []string
	for _, c := range tk.Conversations {
		if !c.Private || c.Incoming {
			t.Errorf("note %q is not private", c.BodyText)
		}
		notes = append(notes, c.BodyText)
	}
	want := []string{
		"Sent to the customer on WhatsApp by trigger:closed:\nEstamos fechados",
		"Sent to the customer on WhatsApp by api:\nSeu pedido saiu",
		"A reply did not reach the customer on WhatsApp.\nWhatsApp error 131047: Re-engagement message\nThe reply: conversation 5001 on this ticket.",
	}
	if !slices.Equal(notes, want) {
		t.Errorf("notes\n%q\nwant\n%q", notes, want)
	}
	// Redelivered: nothing new.
	e.deliver(cases[1].ev, cases[4].ev)
	tk, _ = e.fake.Ticket(tk.ID)
	if len(tk.Conversations) != 3 {
		t.Errorf("%d notes after redelivery, want 3", len(tk.Conversations))
	}
}

func ptr[T any](v T) *T { return &v }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
