package bitrix24

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	var e *env // the portal of the latest New
	sdktest.Suite{
		Name:         "bitrix24",
		RequiredKeys: []string{"webhook_url"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			e = newEnv(t)
			c := New().(*connector)
			c.clock = e.clock
			return c, e.config(nil)
		},
		BadConfig: json.RawMessage(`{"webhook_url": "https://acme.bitrix24.com/rest/crm.contact.add"}`),
		// Two customers with messages (Ana: text, button, image; Bruno:
		// text); the status, opt-out and account event are skipped.
		AfterRedelivery: func(t *testing.T) {
			st := e.fake.State()
			if len(st.Contacts) != 2 {
				t.Errorf("%d contacts, want 2 (Ana, Bruno): %+v", len(st.Contacts), st.Contacts)
			}
			if len(st.Comments) != 4 {
				t.Errorf("%d comments, want 4 (one per message, once despite the redelivery)", len(st.Comments))
			}
		},
	}.Run(t)
}

// The acceptance scenario: a new customer's first message creates one
// contact and one comment; five more add five comments and no contact,
// also when the batch comes again to a restarted plugin.
func TestNewCustomerThenMoreMessagesAndRedeliveryAfterCrash(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(nil)
	r, _ := e.start(cfg)
	const wa = "5511987650001"

	first := msg("evt_a00", wa, "Ana Souza", "Olá, preciso de ajuda")
	wantOutcome(t, deliver(t, r, first), "evt_a00", sdk.Delivered)
	st := e.fake.State()
	if len(st.Contacts) != 1 || len(st.Comments) != 1 {
		t.Fatalf("after the first message: %d contacts, %d comments; want 1 and 1", len(st.Contacts), len(st.Comments))
	}
	ct := st.Contacts[0]
	if ct.Fields["NAME"] != "Ana Souza" || len(ct.Phones) != 1 || ct.Phones[0].Value != "+"+wa || ct.Phones[0].ValueType != "WORK" {
		t.Errorf("contact = %+v, want NAME Ana Souza and WORK phone +%s", ct, wa)
	}
	if c := st.Comments[0]; c.EntityType != "contact" || c.EntityID != ct.ID || !strings.Contains(c.Text, "Olá, preciso de ajuda") || !strings.Contains(c.Text, "Ana Souza (+"+wa+")") {
		t.Errorf("comment = %+v", c)
	}

	more := msgs("evt_b", wa, "Ana Souza", 5)
	res := deliver(t, r, more...)
	for _, ev := range more {
		wantOutcome(t, res, ev.ID, sdk.Delivered)
	}
	// The plugin crashes after the portal has the comments; the hub
	// delivers the batch again to a new process with the same KV.
	r2, _ := e.start(cfg)
	res = deliver(t, r2, append([]sdk.Event{first}, more...)...)
	for _, ev := range append([]sdk.Event{first}, more...) {
		wantOutcome(t, res, ev.ID, sdk.Delivered)
	}
	st = e.fake.State()
	if len(st.Contacts) != 1 {
		t.Errorf("%d contacts, want 1", len(st.Contacts))
	}
	got := commentsFor(e.fake, "contact", ct.ID)
	if len(got) != 6 {
		t.Fatalf("%d comments, want 6", len(got))
	}
	for i, c := range got[1:] {
		if want := fmt.Sprintf("message %d", i+1); !strings.HasSuffix(c.Text, want) {
			t.Errorf("comment %d = %q, want it to end in %q (log order)", i+1, c.Text, want)
		}
	}
	// The five comments of one conversation took one batch call.
	calls := methods(e.fake)
	want := []string{"crm.duplicate.findbycomm", "crm.contact.add", "crm.timeline.comment.add",
		"batch(crm.timeline.comment.add,crm.timeline.comment.add,crm.timeline.comment.add,crm.timeline.comment.add,crm.timeline.comment.add)"}
	if strings.Join(calls, " ") != strings.Join(want, " ") {
		t.Errorf("calls:\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
}

// A crash between the portal's answer and the KV write is covered too:
// the customer's contact is found by phone, never created twice.
func TestLostKVFindsContactByPhone(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(nil)
	r, _ := e.start(cfg)
	wantOutcome(t, deliver(t, r, msg("evt_1", "5511987650001", "Ana", "oi")), "evt_1", sdk.Delivered)
	e.host = sdktest.NewFakeHost() // the KV is gone
	r2, _ := e.start(cfg)
	wantOutcome(t, deliver(t, r2, msg("evt_2", "5511987650001", "Ana", "de novo")), "evt_2", sdk.Delivered)
	if n := len(e.fake.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
	if n := len(e.fake.Comments()); n != 2 {
		t.Errorf("%d comments, want 2", n)
	}
}

// Under a portal that answers 503 QUERY_LIMIT_EXCEEDED to every other
// call, everything still arrives, in order, and the connector never
// sends more than 2 requests in any second as the portal measures it.
// The clock is virtual: the backoffs take no real time.
func TestHalfTheCallsQueryLimitExceeded(t *testing.T) {
	e := newEnv(t, bitrix24test.WithRateLimit(2, 3))
	e.fake.FailEvery(2, 503)
	r, _ := e.start(e.config(nil))
	var events []sdk.Event
	for c := 0; c < 6; c++ {
		events = append(events, msgs(fmt.Sprintf("evt_c%d_", c), fmt.Sprintf("55119876500%02d", c), fmt.Sprintf("Customer %d", c), 3)...)
	}
	started := time.Now()
	pending := events
	for round := 0; len(pending) > 0; round++ {
		if round == 5 {
			t.Fatalf("%d events still not delivered after 5 deliveries", len(pending))
		}
		res := deliver(t, r, pending...)
		var next []sdk.Event
		for _, ev := range pending {
			if res[ev.ID].Outcome != sdk.Delivered {
				next = append(next, ev)
			}
		}
		pending = next
	}
	st := e.fake.State()
	t.Logf("%d requests, %d refused, at most %d per second, %s of virtual time", st.Requests, st.Rejected, st.MaxPerSecond, e.clock.Now().Sub(t0))
	if len(st.Contacts) != 6 || len(st.Comments) != 18 {
		t.Errorf("%d contacts, %d comments; want 6 and 18", len(st.Contacts), len(st.Comments))
	}
	if st.Rejected == 0 {
		t.Error("the fake refused nothing: the test did not exercise the backoff")
	}
	if st.MaxPerSecond > 2 {
		t.Errorf("the portal saw %d requests within one second; the limit is 2", st.MaxPerSecond)
	}
	for _, ct := range st.Contacts {
		cs := commentsFor(e.fake, "contact", ct.ID)
		for i, c := range cs {
			if !strings.HasSuffix(c.Text, fmt.Sprintf("message %d", i+1)) {
				t.Errorf("contact %d comment %d = %q: out of order", ct.ID, i, c.Text)
			}
		}
	}
	if d := time.Since(started); d > 5*time.Second {
		t.Errorf("took %s of real time: pacing must use the injected clock", d)
	}
}

// Pacing alone keeps a busy batch under the real leaky bucket, even a
// small one: nothing is refused.
func TestPacingStaysUnderTheBucket(t *testing.T) {
	e := newEnv(t, bitrix24test.WithRateLimit(2, 2))
	r, _ := e.start(e.config(nil))
	var events []sdk.Event
	for c := 0; c < 60; c++ {
		events = append(events, msg(fmt.Sprintf("evt_%02d", c), fmt.Sprintf("5511987651%03d", c), "", "hi"))
	}
	sdktest.MustDeliver(t, r, events...)
	st := e.fake.State()
	if st.Rejected != 0 || st.MaxPerSecond > 2 {
		t.Errorf("rejected %d, max %d per second; want 0 and at most 2", st.Rejected, st.MaxPerSecond)
	}
	// 60 new customers: lookups in 2 batches, creations in 2, comments in 2.
	if n := len(e.fake.Calls()); n != 6 {
		t.Errorf("%d calls, want 6:\n%s", n, strings.Join(methods(e.fake), "\n"))
	}
	if e.clock.Now().Sub(t0) < 2*time.Second {
		t.Errorf("6 calls took %s of virtual time; at 2 per second they need at least 2.5s", e.clock.Now().Sub(t0))
	}
}

// Ids come as numbers or strings, empty answers as [] or {}: all work.
func TestResponseForms(t *testing.T) {
	cases := []struct {
		name string
		opts []bitrix24test.Option
		set  func(*bitrix24test.Server)
	}{
		{name: "numbers and []"},
		{name: "string ids", set: func(s *bitrix24test.Server) { s.SetStringIDs(true) }},
		{name: "{} for empty", set: func(s *bitrix24test.Server) { s.SetEmptyObjects(true) }},
		{name: "random forms 1", opts: []bitrix24test.Option{bitrix24test.WithRandomForms(1)}},
		{name: "random forms 2", opts: []bitrix24test.Option{bitrix24test.WithRandomForms(2)}},
		{name: "random forms 3", opts: []bitrix24test.Option{bitrix24test.WithRandomForms(3)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			if tc.set != nil {
				tc.set(e.fake)
			}
			existing := e.fake.AddContact(map[string]any{"NAME": "Bruno"}, "+55 21 99876-0002")
			r, _ := e.start(e.config(nil))
			events := append(msgs("evt_a", "5511987650001", "Ana", 3), msgs("evt_b", "5521998760002", "Bruno", 2)...)
			sdktest.MustDeliver(t, r, events...)
			// Again: everything comes from the KV now.
			res := deliver(t, r, append(events, msg("evt_a9", "5511987650001", "Ana", "again"))...)
			for _, ev := range events {
				wantOutcome(t, res, ev.ID, sdk.Delivered)
			}
			if n := len(e.fake.Contacts()); n != 2 {
				t.Errorf("%d contacts, want 2", n)
			}
			if n := len(commentsFor(e.fake, "contact", existing)); n != 2 {
				t.Errorf("the existing contact has %d comments, want 2", n)
			}
			if n := len(e.fake.Comments()); n != 6 {
				t.Errorf("%d comments, want 6", n)
			}
		})
	}
}

func TestLeadMode(t *testing.T) {
	e := newEnv(t)
	known := e.fake.AddContact(map[string]any{"NAME": "Bruno"}, "+5521998760002")
	r, _ := e.start(e.config(map[string]any{"entity": "lead", "create_fields": map[string]any{"SOURCE_ID": "WEB", "ASSIGNED_BY_ID": 7}}))
	events := []sdk.Event{msg("evt_1", "5511987650001", "Ana Souza", "quero comprar"), msg("evt_2", "5521998760002", "Bruno", "oi")}
	res := deliver(t, r, events...)
	wantOutcome(t, res, "evt_1", sdk.Delivered)
	wantOutcome(t, res, "evt_2", sdk.Delivered)
	st := e.fake.State()
	if len(st.Leads) != 1 || len(st.Contacts) != 1 {
		t.Fatalf("%d leads, %d contacts; want a lead for Ana and Bruno's contact kept", len(st.Leads), len(st.Contacts))
	}
	lead := st.Leads[0]
	if lead.Fields["TITLE"] != "WhatsApp: Ana Souza (+5511987650001)" || lead.Fields["NAME"] != "Ana Souza" ||
		lead.Fields["SOURCE_ID"] != "WEB" || lead.Fields["ASSIGNED_BY_ID"] != "7" || lead.Phones[0].Value != "+5511987650001" {
		t.Errorf("lead = %+v", lead)
	}
	if n := len(commentsFor(e.fake, "lead", lead.ID)); n != 1 {
		t.Errorf("lead has %d comments, want 1", n)
	}
	// A customer who already is a contact gets comments on the contact.
	if n := len(commentsFor(e.fake, "contact", known)); n != 1 {
		t.Errorf("existing contact has %d comments, want 1", n)
	}
	// An existing lead is found in lead mode too.
	res = deliver(t, r, msg("evt_3", "5511987650001", "Ana Souza", "e agora?"))
	wantOutcome(t, res, "evt_3", sdk.Delivered)
	if n := len(commentsFor(e.fake, "lead", lead.ID)); n != 2 {
		t.Errorf("lead has %d comments, want 2", n)
	}
}

// In contact mode, a customer known as a differently formatted number is
// found, not created again.
func TestExistingContactFound(t *testing.T) {
	e := newEnv(t)
	id := e.fake.AddContact(map[string]any{"NAME": "Ana"}, "+55 (11) 98765-0001")
	r, _ := e.start(e.config(nil))
	wantOutcome(t, deliver(t, r, msg("evt_1", "5511987650001", "Ana", "oi")), "evt_1", sdk.Delivered)
	if n := len(e.fake.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
	if n := len(commentsFor(e.fake, "contact", id)); n != 1 {
		t.Errorf("%d comments on the existing contact, want 1", n)
	}
}

func TestOutboundAndButtons(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	sent := msg("evt_out", "5511987650001", "", "Seu pedido saiu para entrega")
	sent.Type = sdk.TypeMessageSent
	sent.Outbound = &sdk.Outbound{ID: "msg_1", Source: "connector:slack"}
	click := msg("evt_btn", "5511987650001", "Ana", "")
	click.Type = sdk.TypeButtonClicked
	click.Message = &sdk.Message{ID: "wamid.b", Type: "interactive", Button: &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas"}}
	wantOutcome(t, deliver(t, r, sent), "evt_out", sdk.Delivered)
	wantOutcome(t, deliver(t, r, click), "evt_btn", sdk.Delivered)
	cs := e.fake.Comments()
	if len(cs) != 2 {
		t.Fatalf("%d comments, want 2", len(cs))
	}
	if !strings.Contains(cs[0].Text, "WhatsApp message to +5511987650001, sent by connector:slack") || !strings.HasSuffix(cs[0].Text, "Seu pedido saiu para entrega") {
		t.Errorf("outbound comment = %q", cs[0].Text)
	}
	if !strings.Contains(cs[1].Text, "[button] Falar com vendas (talk_to_sales)") {
		t.Errorf("button comment = %q", cs[1].Text)
	}
	// The contact made for an outbound message has a usable name.
	if ct := e.fake.Contacts()[0]; ct.Fields["NAME"] != "WhatsApp +5511987650001" {
		t.Errorf("contact name = %v", ct.Fields["NAME"])
	}
}

func TestSkipped(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	status := msg("evt_st", "5511987650001", "Ana", "")
	status.Type, status.Message = sdk.TypeStatusDelivered, nil
	status.Status = &sdk.Status{MessageID: "wamid.x", Status: "delivered"}
	optin := msg("evt_opt", "5511987650001", "Ana", "")
	optin.Type, optin.Message = sdk.TypeOptinRevoked, nil
	field := sdk.Event{ID: "evt_tpl", Type: "whatsapp.message_template_status_update"}
	noPhone := msg("evt_bsuid", "", "Ana", "oi")
	noPhone.Contact = &sdk.Contact{UserID: "BR.123"}
	res := deliver(t, r, status, optin, field, noPhone)
	for _, id := range []string{"evt_st", "evt_opt", "evt_tpl", "evt_bsuid"} {
		wantOutcome(t, res, id, sdk.Skipped)
	}
	if n := len(e.fake.Calls()); n != 0 {
		t.Errorf("%d calls for skipped events", n)
	}
}

// A failing comment holds the later events of its conversation (order),
// while other conversations go on.
func TestOrderWithinConversation(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	ana := msgs("evt_a", "5511987650001", "Ana", 3)
	bruno := msgs("evt_b", "5521998760002", "Bruno", 2)
	// Resolve both customers first, so that the comments come in rounds.
	wantOutcome(t, deliver(t, r, ana[0], bruno[0]), "evt_a01", sdk.Delivered)
	// The next round holds Ana's 2nd and Bruno's 2nd; Ana's fails.
	e.fake.Script(bitrix24test.Fault{Method: "crm.timeline.comment.add", Error: "INTERNAL_SERVER_ERROR", Description: "Internal server error"})
	res := deliver(t, r, ana[1], bruno[1], ana[2])
	a2 := wantOutcome(t, res, "evt_a02", sdk.Retry)
	if a2.NotAttempted {
		t.Error("the failed event was attempted")
	}
	a3 := wantOutcome(t, res, "evt_a03", sdk.Retry)
	if !a3.NotAttempted || !strings.Contains(a3.Error, "evt_a02") {
		t.Errorf("evt_a03 = %+v, want held behind evt_a02", a3)
	}
	wantOutcome(t, res, "evt_b02", sdk.Delivered)

	// One conversation alone goes as one batch with halt=1: after a
	// failure the portal runs nothing more.
	e.fake.Script(bitrix24test.Fault{Method: "crm.timeline.comment.add", Error: "", Description: "Access denied."})
	res = deliver(t, r, ana[1], ana[2])
	wantOutcome(t, res, "evt_a02", sdk.Failed)
	if h := wantOutcome(t, res, "evt_a03", sdk.Retry); !h.NotAttempted {
		t.Errorf("evt_a03 = %+v, want held", h)
	}
	res = deliver(t, r, ana[1], ana[2])
	wantOutcome(t, res, "evt_a02", sdk.Delivered)
	wantOutcome(t, res, "evt_a03", sdk.Delivered)
	cs := commentsFor(e.fake, "contact", e.fake.Contacts()[0].ID)
	for i, c := range cs {
		if !strings.HasSuffix(c.Text, fmt.Sprintf("message %d", i+1)) {
			t.Errorf("comment %d = %q: out of order", i, c.Text)
		}
	}
}

// A contact deleted in the CRM after the KV remembered it is looked up
// again (and, being gone, created again), within the same delivery.
func TestDeletedContactIsFoundAgain(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	wantOutcome(t, deliver(t, r, msg("evt_1", "5511987650001", "Ana", "oi")), "evt_1", sdk.Delivered)
	old := e.fake.Contacts()[0].ID
	e.fake.DeleteContact(old)
	res := deliver(t, r, msgs("evt_n", "5511987650001", "Ana", 2)...)
	wantOutcome(t, res, "evt_n01", sdk.Delivered)
	wantOutcome(t, res, "evt_n02", sdk.Delivered)
	cts := e.fake.Contacts()
	if len(cts) != 1 || cts[0].ID == old {
		t.Fatalf("contacts = %+v, want one new contact", cts)
	}
	if n := len(commentsFor(e.fake, "contact", cts[0].ID)); n != 2 {
		t.Errorf("%d comments on the new contact, want 2", n)
	}
	raw, _, _ := e.host.KV().Get(context.Background(), "customer:5511987650001")
	if !strings.Contains(string(raw), fmt.Sprintf(`"id":"%d"`, cts[0].ID)) {
		t.Errorf("KV customer entry = %s", raw)
	}
}

// Lookups and creations of several new customers share batch calls.
func TestBatchSavesCalls(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	var events []sdk.Event
	for c := 0; c < 3; c++ {
		events = append(events, msg(fmt.Sprintf("evt_%d", c), fmt.Sprintf("551198765000%d", c), "", "oi"))
	}
	sdktest.MustDeliver(t, r, events...)
	want := "batch(crm.duplicate.findbycomm,crm.duplicate.findbycomm,crm.duplicate.findbycomm) " +
		"batch(crm.contact.add,crm.contact.add,crm.contact.add) " +
		"batch(crm.timeline.comment.add,crm.timeline.comment.add,crm.timeline.comment.add)"
	if got := strings.Join(methods(e.fake), " "); got != want {
		t.Errorf("calls:\n%s\nwant\n%s", got, want)
	}
}

// The error mapping: what each answer of the portal makes of an event.
func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name       string
		faults     []bitrix24test.Fault
		failEvery  int // every request fails with faults[0].Status
		want       sdk.Outcome
		retryAfter time.Duration
		contains   []string
	}{
		{name: "bad webhook code", faults: []bitrix24test.Fault{{Status: 401}}, want: sdk.Failed,
			contains: []string{"401 NO_AUTH_FOUND", "connectors.crm.config.webhook_url", "Inbound webhook"}},
		{name: "invalid credentials", faults: []bitrix24test.Fault{{Status: 401, Error: "INVALID_CREDENTIALS", Description: "Invalid request credentials"}},
			want: sdk.Failed, contains: []string{"INVALID_CREDENTIALS", "webhook_url"}},
		{name: "expired token", faults: []bitrix24test.Fault{{Status: 401, Error: "expired_token", Description: "The access token provided has expired."}},
			want: sdk.Failed, contains: []string{"expired_token"}},
		{name: "no crm scope", faults: []bitrix24test.Fault{{Status: 403}}, want: sdk.Failed,
			contains: []string{"insufficient_scope", "tick CRM"}},
		{name: "free plan", faults: []bitrix24test.Fault{{Status: 403, Error: "ACCESS_DENIED", Description: "REST is available only on commercial plans."}},
			want: sdk.Failed, contains: []string{"ACCESS_DENIED", "paid Bitrix24 plan"}},
		{name: "https required", faults: []bitrix24test.Fault{{Status: 400}}, want: sdk.Failed,
			contains: []string{"INVALID_REQUEST", "https://"}},
		{name: "not a REST endpoint", faults: []bitrix24test.Fault{{Status: 404}}, want: sdk.Failed,
			contains: []string{"ERROR_METHOD_NOT_FOUND"}},
		{name: "rate limited throughout", failEvery: 1, faults: []bitrix24test.Fault{{Status: 503}}, want: sdk.Retry,
			retryAfter: retryAfterLimit, contains: []string{"QUERY_LIMIT_EXCEEDED", "will retry"}},
		{name: "operation time limit", faults: []bitrix24test.Fault{{Status: 429}}, want: sdk.Retry,
			retryAfter: retryAfterBudget, contains: []string{"OPERATION_TIME_LIMIT"}},
		{name: "overload", faults: []bitrix24test.Fault{{Status: 503, Error: "OVERLOAD_LIMIT", Description: "REST API is blocked due to overload"}},
			want: sdk.Retry, retryAfter: retryAfterBudget, contains: []string{"OVERLOAD_LIMIT"}},
		{name: "internal error", faults: []bitrix24test.Fault{{Status: 500}}, want: sdk.Retry, contains: []string{"500 INTERNAL_SERVER_ERROR"}},
		{name: "gateway HTML", faults: []bitrix24test.Fault{{Status: 502}}, want: sdk.Retry, contains: []string{"502", "Bad Gateway"}},
		{name: "method error with empty code", faults: []bitrix24test.Fault{{Method: "crm.contact.add", Description: "Parameter 'fields' must be array."}},
			want: sdk.Failed, contains: []string{"crm.contact.add", "Parameter 'fields' must be array."}},
		{name: "comment refused", faults: []bitrix24test.Fault{{Method: "crm.timeline.comment.add", Error: "ACCESS_DENIED", Description: "Access denied."}},
			want: sdk.Failed, contains: []string{"crm.timeline.comment.add", "ACCESS_DENIED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.failEvery > 0 {
				e.fake.FailEvery(tc.failEvery, tc.faults[0].Status)
			} else {
				e.fake.Script(tc.faults...)
			}
			r, _ := e.start(e.config(nil))
			events := append(msgs("evt_a", "5511987650001", "Ana", 2), msg("evt_b1", "5521998760002", "Bruno", "oi"))
			res := deliver(t, r, events...)
			got := wantOutcome(t, res, "evt_a01", tc.want)
			if got.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", got.RetryAfter, tc.retryAfter)
			}
			for _, s := range tc.contains {
				if !strings.Contains(got.Error, s) {
					t.Errorf("error %q does not mention %q", got.Error, s)
				}
			}
			if strings.Contains(got.Error, bitrix24test.DefaultToken) {
				t.Errorf("error %q contains the webhook code", got.Error)
			}
			// The second event of Ana's conversation never overtakes it.
			if a2 := res["evt_a02"]; a2.Outcome == sdk.Delivered {
				t.Errorf("evt_a02 delivered after evt_a01 %s", got.Outcome)
			}
		})
	}
}

// Network failures retry, and never show the webhook's code.
func TestUnreachablePortal(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(map[string]any{"webhook_url": "http://127.0.0.1:1/rest/1/" + bitrix24test.DefaultToken + "/"})
	r, _ := e.start(cfg)
	res := deliver(t, r, msg("evt_1", "5511987650001", "Ana", "oi"))
	got := wantOutcome(t, res, "evt_1", sdk.Retry)
	if strings.Contains(got.Error, bitrix24test.DefaultToken) {
		t.Errorf("error %q contains the webhook code", got.Error)
	}
	if !strings.Contains(got.Error, "127.0.0.1:1/rest/1") {
		t.Errorf("error %q does not name the portal", got.Error)
	}
}

func TestCommentText(t *testing.T) {
	base := func(m *sdk.Message) *sdk.Event {
		ev := msg("evt_1", "5511987650001", "Ana", "")
		ev.OccurredAt = time.Date(2026, 11, 24, 9, 30, 5, 0, time.FixedZone("BRT", -3*3600))
		ev.Message = m
		return &ev
	}
	cases := []struct {
		msg  *sdk.Message
		want string
	}{
		{&sdk.Message{Type: "text", Text: "Olá"}, "WhatsApp message from Ana (+5511987650001), 2026-11-24 12:30:05 UTC:\nOlá"},
		{&sdk.Message{Type: "image", Media: &sdk.Media{ID: "1", Caption: "Foto"}}, "[image] Foto"},
		{&sdk.Message{Type: "document", Media: &sdk.Media{ID: "1", Filename: "nota.pdf"}}, "[document: nota.pdf]"},
		{&sdk.Message{Type: "location", Location: &sdk.Location{Latitude: -23.5, Longitude: -46.6, Name: "Loja"}}, "[location] Loja, -23.500000, -46.600000"},
		{&sdk.Message{Type: "reaction", Reaction: &sdk.Reaction{MessageID: "x", Emoji: "👍"}}, "[reacted 👍 to an earlier message]"},
		{&sdk.Message{Type: "contacts", Contacts: []sdk.SharedContact{{Name: "Bia", Phones: []string{"+551100"}}}}, "[contact card] Bia +551100"},
		{&sdk.Message{Type: "unsupported", Unsupported: "poll_creation"}, "[unsupported message: poll_creation]"},
		{&sdk.Message{Type: "order"}, "[order message]"},
		{nil, "[no content]"},
	}
	for _, tc := range cases {
		got := commentText(base(tc.msg))
		if !strings.HasSuffix(got, tc.want) {
			t.Errorf("commentText = %q, want it to end in %q", got, tc.want)
		}
	}
}
