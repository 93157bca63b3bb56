package zendesk_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/zendesk"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	var fake *zendesktest.Server // the account of the latest New
	sdktest.Suite{
		Name:         "zendesk",
		RequiredKeys: []string{"subdomain", "email", "token"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			fake = zendesktest.NewServer()
			srv := sdktest.Serve(t, fake)
			return zendesk.New(), configJSON(t, srv.URL, nil)
		},
		BadConfig: json.RawMessage(`{"subdomain": "acme", "email": "ops@acme.example"}`),
		// Two customers, two tickets; Ana's holds her text, her button
		// click and her photo once each, however often the batch came.
		AfterRedelivery: func(t *testing.T) {
			tickets := fake.Tickets()
			if len(tickets) != 2 {
				t.Fatalf("%d tickets, want 2", len(tickets))
			}
			want := map[string][]string{
				"conv_ana":   {"Olá, preciso de ajuda com meu pedido", "[Button] Falar com vendas", "[Image] Foto do produto\n(image/jpeg)\n(The image could not be retrieved: no media \"1003383421387256\".)"},
				"conv_bruno": {"Minha fatura veio errada"},
			}
			for _, tk := range tickets {
				var got []string
				for _, c := range tk.Comments {
					if !c.Public || c.AuthorID != tk.RequesterID {
						t.Errorf("ticket %d: comment %+v is not public by the requester", tk.ID, c)
					}
					got = append(got, c.Body)
				}
				if strings.Join(got, "|") != strings.Join(want[tk.ExternalID], "|") {
					t.Errorf("ticket %s comments %q, want %q", tk.ExternalID, got, want[tk.ExternalID])
				}
			}
			if n := len(fake.Users()); n != 2 {
				t.Errorf("%d end users, want 2", n)
			}
		},
	}.Run(t)
}

func TestFirstMessageOpensOneTicket(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{
		"priorities": map[string]string{"billing": "high"}, "groups": map[string]int64{"billing": 42}, "tags": []string{"Linha VIP"},
	}})
	e.mustDeliver(text("evt_1", "conv_a", ana, "Minha fatura veio errada\nsegunda linha"))

	users := e.fake.Users()
	if len(users) != 1 {
		t.Fatalf("users %+v", users)
	}
	u := users[0]
	if u.Name != "Ana Souza" || u.Phone != "+5511987650001" || u.ExternalID != "whatsapp:5511987650001" || u.Role != "end-user" {
		t.Errorf("user %+v", u)
	}
	tk := e.onlyTicket()
	if tk.Subject != "Minha fatura veio errada" || tk.Status != "new" || tk.Priority != "high" || tk.GroupID != 42 ||
		tk.RequesterID != u.ID || tk.SubmitterID != u.ID || tk.ExternalID != "conv_a" {
		t.Errorf("ticket %+v", tk)
	}
	if got := strings.Join(tk.Tags, " "); got != "whatsapp team_billing rule_billing linha_vip" {
		t.Errorf("tags %q", got)
	}
	if got := bodies(tk); len(got) != 1 || got[0] != "public 1001: Minha fatura veio errada\nsegunda linha" {
		t.Errorf("comments %q", got)
	}
}

func TestDefaultPriorityAndSubjectCut(t *testing.T) {
	e := newEnv(t, envOptions{})
	long := strings.Repeat("palavra ", 20)
	e.mustDeliver(text("evt_1", "conv_a", ana, long))
	tk := e.onlyTicket()
	if tk.Priority != "normal" {
		t.Errorf("priority %q, want normal", tk.Priority)
	}
	if !strings.HasSuffix(tk.Subject, "palavra…") || len([]rune(tk.Subject)) > 80 {
		t.Errorf("subject %q, want cut at a word within 80 runes", tk.Subject)
	}
}

func TestFollowUpsBecomeComments(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustDeliver(text("evt_1", "conv_a", ana, "um"), text("evt_2", "conv_a", ana, "dois"))
	e.mustDeliver(text("evt_3", "conv_a", ana, "três"))
	tk := e.onlyTicket()
	want := []string{"public 1001: um", "public 1001: dois", "public 1001: três"}
	if got := bodies(tk); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("comments %q, want %q", got, want)
	}
	// The user is looked up once; the KV keeps the id.
	if n := e.fake.CountRequests(http.MethodPost, "/api/v2/users/create_or_update"); n != 1 {
		t.Errorf("create_or_update called %d times, want 1", n)
	}
}

func TestRedeliveredBatchAddsNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	batch := []sdk.Event{text("evt_1", "conv_a", ana, "um"), text("evt_2", "conv_a", ana, "dois"), text("evt_3", "conv_b", bruno, "oi")}
	e.mustDeliver(batch...)
	before := len(e.fake.Requests())
	e.mustDeliver(batch...)
	for _, r := range e.fake.Requests()[before:] {
		if r.Method != http.MethodGet {
			t.Errorf("redelivery wrote to Zendesk: %s %s", r.Method, r.Path)
		}
	}
	if n := len(e.fake.Tickets()); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
	for _, tk := range e.fake.Tickets() {
		if tk.ExternalID == "conv_a" && len(tk.Comments) != 2 || tk.ExternalID == "conv_b" && len(tk.Comments) != 1 {
			t.Errorf("ticket %s: %q", tk.ExternalID, bodies(tk))
		}
	}
}

// A create whose answer is lost (the client timed out after Zendesk made
// the ticket) must not make a second ticket on the retry.
func TestLostCreateAnswerMakesNoSecondTicket(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"timeout": "200ms"}})
	e.setIntercept(func(r *http.Request) *injected {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v2/tickets") {
			return &injected{lose: true}
		}
		return nil
	})
	res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
	if res.Outcome != sdk.Retry || !strings.Contains(res.Error, "no answer within 200ms") {
		t.Fatalf("first attempt %s: %s, want retry after a timeout", res.Outcome, res.Error)
	}
	e.setIntercept(nil)
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	if got := bodies(e.onlyTicket()); len(got) != 1 {
		t.Errorf("comments %q, want the one first comment", got)
	}
	// A follow-up goes on the same ticket.
	e.mustDeliver(text("evt_2", "conv_a", ana, "e aí?"))
	if got := bodies(e.onlyTicket()); len(got) != 2 {
		t.Errorf("comments %q", got)
	}
}

// A comment whose answer is lost is found on the ticket by the retry.
func TestLostCommentAnswerAddsNoDuplicate(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"timeout": "200ms"}})
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	e.setIntercept(func(r *http.Request) *injected {
		if r.Method == http.MethodPut {
			return &injected{lose: true}
		}
		return nil
	})
	if res := e.deliver(text("evt_2", "conv_a", ana, "de novo"))["evt_2"]; res.Outcome != sdk.Retry {
		t.Fatalf("%s: %s, want retry", res.Outcome, res.Error)
	}
	e.setIntercept(nil)
	e.mustDeliver(text("evt_2", "conv_a", ana, "de novo"))
	want := []string{"public 1001: oi", "public 1001: de novo"}
	if got := bodies(e.onlyTicket()); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("comments %q, want %q", got, want)
	}
}

// flakyHost fails KV writes of keys with a prefix, a set number of times.
type flakyHost struct {
	*sdktest.FakeHost
	mu     sync.Mutex
	prefix string
	fails  int
}

func (h *flakyHost) KV() sdk.KV { return flakyKV{h.FakeHost.KV(), h} }

type flakyKV struct {
	sdk.KV
	h *flakyHost
}

func (k flakyKV) Put(ctx context.Context, key string, v []byte) error {
	k.h.mu.Lock()
	fail := strings.HasPrefix(key, k.h.prefix) && k.h.fails > 0
	if fail {
		k.h.fails--
	}
	k.h.mu.Unlock()
	if fail {
		return errors.New("disk I/O error")
	}
	return k.KV.Put(ctx, key, v)
}

// The ticket was created but the hub's KV did not take the record: the
// retry adopts the ticket through its external_id.
func TestTicketCreatedButNotRecorded(t *testing.T) {
	host := &flakyHost{FakeHost: sdktest.NewFakeHost(), prefix: "ticket:", fails: 1}
	e := newEnv(t, envOptions{host: host})
	res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
	if res.Outcome != sdk.Retry || !strings.Contains(res.Error, "created, but not recorded") {
		t.Fatalf("%s: %s", res.Outcome, res.Error)
	}
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"), text("evt_2", "conv_a", ana, "tudo bem?"))
	want := []string{"public 1001: oi", "public 1001: tudo bem?"}
	if got := bodies(e.onlyTicket()); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("comments %q, want %q", got, want)
	}
}

func TestSolvedTicketReopenedWithinWindowThenNewTicket(t *testing.T) {
	e := newEnv(t, envOptions{}) // reopen_within: 72h by default
	e.mustDeliver(text("evt_1", "conv_a", ana, "primeiro"))
	first := e.onlyTicket()

	if err := e.fake.Solve(first.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(71 * time.Hour)
	e.mustDeliver(text("evt_2", "conv_a", ana, "ainda não funcionou"))
	tk := e.onlyTicket()
	if tk.Status != "open" || len(tk.Comments) != 2 {
		t.Fatalf("within the window: status %s, comments %q; want reopened with the comment", tk.Status, bodies(tk))
	}

	if err := e.fake.Solve(first.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(73 * time.Hour)
	e.mustDeliver(text("evt_3", "conv_a", ana, "novo problema"))
	tickets := e.fake.Tickets()
	if len(tickets) != 2 {
		t.Fatalf("%d tickets after the window, want a second one", len(tickets))
	}
	old, second := tickets[0], tickets[1]
	if old.Status != "solved" || len(old.Comments) != 2 {
		t.Errorf("old ticket touched: %s %q", old.Status, bodies(old))
	}
	if second.ExternalID != "conv_a/2" || second.Subject != "novo problema" || second.RequesterID != old.RequesterID {
		t.Errorf("second ticket %+v", second)
	}

	// Closed: Zendesk refuses updates, so a new ticket again.
	if err := e.fake.Close(second.ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.mustDeliver(text("evt_4", "conv_a", ana, "outra coisa"))
	tickets = e.fake.Tickets()
	if len(tickets) != 3 || tickets[2].ExternalID != "conv_a/3" || len(tickets[1].Comments) != 1 {
		t.Errorf("after closing: %+v", tickets)
	}
	// And follow-ups stay on the newest.
	e.mustDeliver(text("evt_5", "conv_a", ana, "mais"))
	if tk, _ := e.fake.Ticket(tickets[2].ID); len(tk.Comments) != 2 {
		t.Errorf("newest ticket comments %q", bodies(tk))
	}
}

func TestReopenWithinZeroNeverReopens(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"reopen_within": "0"}})
	e.mustDeliver(text("evt_1", "conv_a", ana, "um"))
	if err := e.fake.Solve(e.onlyTicket().ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	e.mustDeliver(text("evt_2", "conv_a", ana, "dois"))
	if n := len(e.fake.Tickets()); n != 2 {
		t.Errorf("%d tickets, want 2", n)
	}
}

// Closed after our read, before our write: the 422 sends the message to a
// new ticket instead of failing it.
func TestClosedBetweenReadAndWrite(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustDeliver(text("evt_1", "conv_a", ana, "um"))
	id := e.onlyTicket().ID
	e.setIntercept(func(r *http.Request) *injected {
		if r.Method == http.MethodPut {
			_ = e.fake.Close(id, e.clock.Now())
		}
		return nil
	})
	e.mustDeliver(text("evt_2", "conv_a", ana, "dois"))
	ts := e.fake.Tickets()
	if len(ts) != 2 || ts[1].Subject != "dois" {
		t.Errorf("tickets %+v", ts)
	}
}

func TestDeletedTicketOpensNewOne(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustDeliver(text("evt_1", "conv_a", ana, "um"))
	e.fake.DeleteTicket(e.onlyTicket().ID)
	e.mustDeliver(text("evt_2", "conv_a", ana, "dois"))
	if tk := e.onlyTicket(); tk.ExternalID != "conv_a/2" || tk.Subject != "dois" {
		t.Errorf("ticket %+v", tk)
	}
}

func TestExistingUserFoundByPhone(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := e.fake.AddUser("Ana (phone call)", "+55 (11) 98765-0001")
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	if tk := e.onlyTicket(); tk.RequesterID != id {
		t.Errorf("requester %d, want the existing user %d", tk.RequesterID, id)
	}
	if n := len(e.fake.Users()); n != 1 {
		t.Errorf("%d users, want the existing one only", n)
	}
}

// A user made moments ago is not in the search index yet; the lookup by
// external_id still finds them, so no second user appears (another
// conversation of the same customer, on another business number).
func TestNewUserFoundDespiteSearchLag(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	// A second connector process, without this one's KV.
	other := newEnvOn(t, e)
	other.mustDeliver(text("evt_2", "conv_other_number", ana, "oi de novo"))
	if n := len(e.fake.Users()); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
	if ts := e.fake.Tickets(); len(ts) != 2 || ts[0].RequesterID != ts[1].RequesterID {
		t.Errorf("tickets %+v", ts)
	}
}

// newEnvOn starts another connector, with a fresh KV, on e's fake.
func newEnvOn(t *testing.T, e *env) *env {
	o := &env{t: t, clock: e.clock, fake: e.fake, srv: e.srv}
	o.c = zendesk.New()
	zendesk.SetClock(o.c, e.clock.Now)
	o.r, o.host = sdktest.Start(t, o.c, "zendesk", configJSON(t, e.srv.URL, nil))
	return o
}

func TestCustomerWithoutPhone(t *testing.T) {
	e := newEnv(t, envOptions{})
	bsuid := &sdk.Contact{UserID: "BR.12345ABCDE"}
	e.mustDeliver(text("evt_1", "conv_a", bsuid, "olá"))
	u := e.fake.Users()[0]
	if u.Phone != "" || u.ExternalID != "whatsapp:BR.12345ABCDE" || u.Name != "a WhatsApp customer" {
		t.Errorf("user %+v", u)
	}
}

func TestMessageKinds(t *testing.T) {
	e := newEnv(t, envOptions{})
	mk := func(id string, m *sdk.Message) sdk.Event {
		ev := text(id, "conv_a", ana, "")
		ev.Message = m
		return ev
	}
	btn := mk("evt_btn", &sdk.Message{Type: "interactive", Button: &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas"}})
	btn.Type = sdk.TypeButtonClicked
	events := []sdk.Event{
		mk("evt_doc", &sdk.Message{Type: "document", Media: &sdk.Media{ID: "77", MimeType: "application/pdf", Filename: "fatura.pdf", Caption: "segue"}}),
		mk("evt_voice", &sdk.Message{Type: "audio", Media: &sdk.Media{ID: "78", MimeType: "audio/ogg", Voice: true}}),
		mk("evt_loc", &sdk.Message{Type: "location", Location: &sdk.Location{Latitude: -23.5, Longitude: -46.6, Name: "Loja", Address: "Av. Paulista"}}),
		mk("evt_card", &sdk.Message{Type: "contacts", Contacts: []sdk.SharedContact{{Name: "João", Phones: []string{"+5511999990000"}}}}),
		mk("evt_react", &sdk.Message{Type: "reaction", Reaction: &sdk.Reaction{MessageID: "wamid.x", Emoji: "👍"}}),
		mk("evt_unsup", &sdk.Message{Type: "unsupported", Unsupported: "poll_creation"}),
		btn,
	}
	e.host.AddMedia(sdk.MediaInfo{ID: "77", MimeType: "application/pdf"}, []byte("%PDF-1.4 fatura"))
	e.host.AddMedia(sdk.MediaInfo{ID: "78", MimeType: "audio/ogg"}, []byte("OggS voice"))
	e.mustDeliver(events...)
	want := []string{
		"[Document: fatura.pdf] segue\n(application/pdf)",
		"[Voice message]\n(audio/ogg)",
		"[Location] Loja Av. Paulista\nhttps://www.google.com/maps/search/?api=1&query=-23.5,-46.6",
		"[Contact] João, +5511999990000",
		"[Reaction] 👍 to an earlier message",
		"[Unsupported WhatsApp message: poll_creation]",
		"[Button] Falar com vendas",
	}
	tk := e.onlyTicket()
	var got []string
	for _, c := range tk.Comments {
		got = append(got, c.Body)
	}
	if strings.Join(got, "\n--\n") != strings.Join(want, "\n--\n") {
		t.Errorf("comments\n%s\nwant\n%s", strings.Join(got, "\n--\n"), strings.Join(want, "\n--\n"))
	}
	for i, name := range map[int]string{0: "fatura.pdf", 1: "whatsapp-voice-note-20261124-120000.ogg"} {
		if a := tk.Comments[i].Attachments; len(a) != 1 || a[0].FileName != name {
			t.Errorf("comment %d attachments %+v, want one %s", i, a, name)
		}
	}
	if tk.Subject != "[Document: fatura.pdf] segue" {
		t.Errorf("subject %q", tk.Subject)
	}
}

func sent(id, conv, source, body string) sdk.Event {
	ev := text(id, conv, ana, body)
	ev.Type = sdk.TypeMessageSent
	ev.Outbound = &sdk.Outbound{ID: "msg_" + id, Source: source}
	return ev
}

func TestOutboundMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Before any ticket: nothing to note on.
	res := e.deliver(sent("evt_0", "conv_a", "trigger:welcome", "Bem-vindo!"))["evt_0"]
	if res.Outcome != sdk.Skipped {
		t.Errorf("message.sent before a ticket: %s", res.Outcome)
	}
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	results := e.deliver(
		sent("evt_own", "conv_a", "connector:zendesk", "resposta do agente"),
		sent("evt_slack", "conv_a", "connector:slack", "Oi Ana, aqui é do Slack"),
		func() sdk.Event { ev := sent("evt_none", "conv_a", "", "x"); ev.Outbound = nil; return ev }(),
	)
	if results["evt_own"].Outcome != sdk.Skipped || results["evt_none"].Outcome != sdk.Skipped {
		t.Errorf("own / unknown source: %+v %+v", results["evt_own"], results["evt_none"])
	}
	if results["evt_slack"].Outcome != sdk.Delivered {
		t.Fatalf("slack: %+v", results["evt_slack"])
	}
	// Twice delivered, noted once.
	e.mustDeliver(sent("evt_slack", "conv_a", "connector:slack", "Oi Ana, aqui é do Slack"))
	want := []string{"public 1001: oi", "private 1: Sent on WhatsApp by the slack connector:\n\nOi Ana, aqui é do Slack"}
	if got := bodies(e.onlyTicket()); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("comments %q, want %q", got, want)
	}
	// A closed ticket takes no note; that is not a failure.
	if err := e.fake.Close(e.onlyTicket().ID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if res := e.deliver(sent("evt_late", "conv_a", "api", "x"))["evt_late"]; res.Outcome != sdk.Skipped || !strings.Contains(res.Error, "closed") {
		t.Errorf("note on a closed ticket: %+v", res)
	}
}

func TestFailedReplyStatusAddsNote(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	st := func(id, source string) sdk.Event {
		ev := text(id, "conv_a", ana, "")
		ev.Type, ev.Message = sdk.TypeStatusFailed, nil
		ev.Status = &sdk.Status{MessageID: "wamid.out", Status: "failed", Errors: []sdk.Error{{Code: 131047, Title: "Re-engagement message"}}}
		ev.Outbound = &sdk.Outbound{ID: "msg_1", Source: source, IdempotencyKey: "5002"}
		return ev
	}
	res := e.deliver(st("evt_f1", "connector:zendesk"), st("evt_f2", "connector:slack"))
	if res["evt_f1"].Outcome != sdk.Delivered || res["evt_f2"].Outcome != sdk.Skipped {
		t.Fatalf("results %+v", res)
	}
	c := e.onlyTicket().Comments[1]
	if c.Public {
		t.Error("the failure note is public")
	}
	contains(t, "note", c.Body, "did not deliver", "comment 5002", "Error 131047: Re-engagement message", "template")
}

func TestOtherEventsSkipped(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, typ := range []sdk.EventType{sdk.TypeStatusDelivered, sdk.TypeStatusRead, sdk.TypeOptinRevoked, sdk.TypeContactChanged, "whatsapp.account_update"} {
		ev := text("evt_"+string(typ), "conv_a", ana, "")
		ev.Type = typ
		if res := e.deliver(ev)[ev.ID]; res.Outcome != sdk.Skipped {
			t.Errorf("%s: %s", typ, res.Outcome)
		}
	}
	noConv := text("evt_x", "", ana, "oi")
	if res := e.deliver(noConv)["evt_x"]; res.Outcome != sdk.Skipped {
		t.Errorf("message without conversation: %s", res.Outcome)
	}
	if len(e.fake.Requests()) != 0 {
		t.Errorf("skipped events called Zendesk: %+v", e.fake.Requests())
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name   string
		status int
		style  zendesktest.RateLimitStyle
		want   sdk.Outcome
		after  time.Duration
		errHas []string
	}{
		{name: "401", status: 401, want: sdk.Failed, errHas: []string{"401", "Couldn't authenticate you", "config.email", "config.token"}},
		{name: "403", status: 403, want: sdk.Failed, errHas: []string{"403", "Forbidden", zendesktest.DefaultEmail}},
		{name: "404", status: 404, want: sdk.Failed, errHas: []string{"404", "RecordNotFound", "api_url"}},
		{name: "422", status: 422, want: sdk.Failed, errHas: []string{"422", "RecordInvalid", "refused the data"}},
		{name: "400", status: 400, want: sdk.Failed, errHas: []string{"400"}},
		// fixedNow is on a minute boundary: the window resets in 60s.
		{name: "429 Retry-After", status: 429, style: zendesktest.RetryAfterHeader, want: sdk.Retry, after: 60 * time.Second, errHas: []string{"rate limited", zendesktest.RateLimitText}},
		{name: "429 text body only", status: 429, style: zendesktest.TextBodyOnly, want: sdk.Retry, errHas: []string{"rate limited", zendesktest.RateLimitText}},
		{name: "429 bare", status: 429, style: zendesktest.Bare, want: sdk.Retry, errHas: []string{"429 Too Many Requests"}},
		{name: "409", status: 409, want: sdk.Retry, errHas: []string{"UpdateConflict"}},
		{name: "500", status: 500, want: sdk.Retry, errHas: []string{"500"}},
		{name: "502", status: 502, want: sdk.Retry, errHas: []string{"Bad Gateway"}},
		{name: "503", status: 503, want: sdk.Retry, errHas: []string{"503"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.fake.SetRateLimitStyle(tc.style)
			e.fake.FailNext(1, tc.status)
			res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
			if res.Outcome != tc.want || res.RetryAfter != tc.after {
				t.Errorf("got %s after %s (%s), want %s after %s", res.Outcome, res.RetryAfter, res.Error, tc.want, tc.after)
			}
			contains(t, "error", res.Error, tc.errHas...)
			if strings.Contains(res.Error, zendesktest.DefaultToken) {
				t.Errorf("error leaks the token: %s", res.Error)
			}
			// What was retried goes through once Zendesk is back.
			if tc.want == sdk.Retry {
				e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
				if n := len(e.onlyTicket().Comments); n != 1 {
					t.Errorf("%d comments after the retry", n)
				}
			}
		})
	}
}

func TestRetryAfterForms(t *testing.T) {
	cases := []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "30", 30 * time.Second},
		{"HTTP date", fixedNow.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date in the past", fixedNow.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"capped at an hour", "86400", time.Hour},
		{"garbage", "soon", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.setIntercept(func(*http.Request) *injected {
				return &injected{status: 429, retryAfter: tc.value, body: zendesktest.RateLimitText}
			})
			if res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]; res.Outcome != sdk.Retry || res.RetryAfter != tc.want {
				t.Errorf("%s after %s, want retry after %s", res.Outcome, res.RetryAfter, tc.want)
			}
		})
	}
}

func TestWrongCredentials(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"token": "wrong-token"}})
	res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
	if res.Outcome != sdk.Failed {
		t.Fatalf("%s: %s", res.Outcome, res.Error)
	}
	contains(t, "error", res.Error, "401 Unauthorized", "Couldn't authenticate you", "connectors.zendesk.config.token")
	if strings.Contains(res.Error, "wrong-token") {
		t.Errorf("error leaks the token: %s", res.Error)
	}
	if err := e.r.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Health = %v, want the 401", err)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t, envOptions{})
	if err := e.r.Health(context.Background()); err != nil {
		t.Errorf("Health = %v", err)
	}
}

func TestTimeoutAndConnectionErrorsRetry(t *testing.T) {
	e := newEnv(t, envOptions{config: map[string]any{"timeout": "100ms"}})
	e.setIntercept(func(*http.Request) *injected { return &injected{lose: true} })
	res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
	if res.Outcome != sdk.Retry || !strings.Contains(res.Error, "within 100ms") {
		t.Errorf("timeout: %s %s", res.Outcome, res.Error)
	}
	e.setIntercept(nil)
	e.srv.Close()
	res = e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
	if res.Outcome != sdk.Retry || !strings.Contains(res.Error, "connection refused") {
		t.Errorf("connection refused: %s %s", res.Outcome, res.Error)
	}
}

func TestRateLimitIsHonoured(t *testing.T) {
	e := newEnv(t, envOptions{})
	// A first message costs 5 calls: ticket lookup, user lookup by
	// external_id, search by phone, create_or_update, create. The fifth
	// is refused; the user is kept, so the retry needs 2 calls.
	e.fake.SetRateLimit(4)
	res := e.deliver(text("evt_1", "conv_a", ana, "oi"))["evt_1"]
	if res.Outcome != sdk.Retry || res.RetryAfter != time.Minute {
		t.Fatalf("%s after %s (%s), want retry after the minute", res.Outcome, res.RetryAfter, res.Error)
	}
	e.clock.Advance(time.Minute)
	e.mustDeliver(text("evt_1", "conv_a", ana, "oi"))
	if n := len(e.fake.Users()); n != 1 {
		t.Errorf("%d users", n)
	}
	if got := bodies(e.onlyTicket()); len(got) != 1 {
		t.Errorf("comments %q", got)
	}
	if m := e.fake.MaxPerMinute(); m > 5 {
		t.Errorf("max %d requests in a minute", m)
	}
}

func TestOrderWithinConversation(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.mustDeliver(text("a1", "conv_a", ana, "a1"), text("b1", "conv_b", bruno, "b1"))
	var ta, tb int64
	for _, tk := range e.fake.Tickets() {
		if tk.ExternalID == "conv_a" {
			ta = tk.ID
		} else {
			tb = tk.ID
		}
	}
	e.setIntercept(func(r *http.Request) *injected {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/v2/tickets/"+itoa(ta)) {
			return &injected{status: 503, retryAfter: "7", body: "Service Unavailable"}
		}
		return nil
	})
	res := e.deliver(text("a2", "conv_a", ana, "a2"), text("b2", "conv_b", bruno, "b2"), text("a3", "conv_a", ana, "a3"), text("b3", "conv_b", bruno, "b3"))
	if r := res["a2"]; r.Outcome != sdk.Retry || r.RetryAfter != 7*time.Second {
		t.Errorf("a2: %+v", r)
	}
	if r := res["a3"]; r.Outcome != sdk.Retry || !r.NotAttempted || r.RetryAfter != 7*time.Second || !strings.Contains(r.Error, "a2") {
		t.Errorf("a3: %+v, want held behind a2", r)
	}
	if res["b2"].Outcome != sdk.Delivered || res["b3"].Outcome != sdk.Delivered {
		t.Errorf("the other conversation: %+v %+v", res["b2"], res["b3"])
	}
	e.setIntercept(nil)
	e.mustDeliver(text("a2", "conv_a", ana, "a2"), text("a3", "conv_a", ana, "a3"))
	for id, want := range map[int64]string{ta: "a1 a2 a3", tb: "b1 b2 b3"} {
		tk, _ := e.fake.Ticket(id)
		var got []string
		for _, c := range tk.Comments {
			got = append(got, c.Body)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("ticket %d: %q, want %q", id, got, want)
		}
	}
}

func TestCancelledMidBatch(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	e.setIntercept(func(*http.Request) *injected { cancel(); return nil })
	results := e.c.Deliver(ctx, []sdk.Event{text("evt_1", "conv_a", ana, "um"), text("evt_2", "conv_a", ana, "dois")})
	for _, r := range results {
		if r.Outcome != sdk.Retry {
			t.Errorf("%s: %s (%s), want retry", r.EventID, r.Outcome, r.Error)
		}
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
