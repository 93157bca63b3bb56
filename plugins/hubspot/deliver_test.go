package hubspot_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// A new customer's first message creates one contact and one
// communication; five more add five communications and no contact, even
// when a batch is redelivered to a new plugin process (after a crash)
// while HubSpot's search does not show the new contact yet.
func TestFirstMessageThenFiveMore(t *testing.T) {
	e := newEnv(t, hubspottest.WithSearchLag(30*time.Second))
	c := e.connector(nil)

	first := inbound("evt_1", ana, 1, "Olá, preciso de ajuda com meu pedido")
	wantOutcome(t, deliver(t, c, first)["evt_1"], sdk.Delivered)
	contacts := e.fake.Contacts()
	if len(contacts) != 1 {
		t.Fatalf("%d contacts, want 1", len(contacts))
	}
	ct := contacts[0]
	for k, want := range map[string]string{"phone": "+5511987650001", "firstname": "Ana", "lastname": "Souza"} {
		if got := ct.Properties[k]; got != want {
			t.Errorf("contact %s = %q, want %q", k, got, want)
		}
	}
	comms := e.fake.Communications()
	if len(comms) != 1 {
		t.Fatalf("%d communications, want 1", len(comms))
	}
	for k, want := range map[string]string{
		"hs_communication_channel_type": "WHATS_APP",
		"hs_communication_logged_from":  "CRM",
		"hs_communication_body":         "Received from Ana Souza: Olá, preciso de ajuda com meu pedido",
		"hs_timestamp":                  "2026-11-24T12:00:01.000Z", // when it happened, not when it was received
	} {
		if got := comms[0].Properties[k]; got != want {
			t.Errorf("communication %s = %q, want %q", k, got, want)
		}
	}
	if a := comms[0].Associations; len(a) != 1 || a[0].ToID != ct.ID || a[0].TypeID != 81 || a[0].Category != "HUBSPOT_DEFINED" {
		t.Errorf("associations %+v, want one HUBSPOT_DEFINED 81 to contact %s", a, ct.ID)
	}
	if got := e.kv("contact:5511987650001"); got != ct.ID {
		t.Errorf("KV contact:5511987650001 = %q, want %q", got, ct.ID)
	}
	if got := e.kv("evt:evt_1"); got != comms[0].ID {
		t.Errorf("KV evt:evt_1 = %q, want %q", got, comms[0].ID)
	}

	// Three more; then the plugin "crashes" before the hub records the
	// results, and a new process gets those three again plus two more.
	batch := []sdk.Event{inbound("evt_2", ana, 2, "dois"), outbound("evt_3", ana, 3, "Claro, qual o número?"), inbound("evt_4", ana, 4, "quatro")}
	for id, res := range deliver(t, c, batch...) {
		wantOutcome(t, res, sdk.Delivered)
		_ = id
	}
	before := len(e.fake.Requests())
	c2 := e.connector(nil)
	batch = append(batch, inbound("evt_5", ana, 5, "cinco"), inbound("evt_6", ana, 6, "seis"))
	for _, res := range deliver(t, c2, batch...) {
		wantOutcome(t, res, sdk.Delivered)
	}
	if n := len(e.fake.Requests()) - before; n != 2 {
		t.Errorf("redelivery made %d requests, want 2 (one communication for each new event)", n)
	}
	if n := len(e.fake.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
	comms = commsOf(e.fake, ct.ID)
	if len(comms) != 6 {
		t.Fatalf("%d communications, want 6", len(comms))
	}
	if got := comms[2].Properties["hs_communication_body"]; got != "Sent to Ana Souza (connector:slack): Claro, qual o número?" {
		t.Errorf("outbound body %q", got)
	}
	if n := e.fake.Calls(http.MethodPost, hubspottest.PathContactSearch); n != 1 {
		t.Errorf("%d searches, want 1: the contact id is cached", n)
	}
}

// The plugin dies after HubSpot created the contact and before the KV
// recorded its id. The next process cannot see the contact through search
// yet; it waits for the search lag instead of creating a second contact.
func TestCrashBetweenCreateAndKVWrite(t *testing.T) {
	e := newEnv(t, hubspottest.WithSearchLag(30*time.Second))
	crashing := &flakyHost{FakeHost: e.host, failPut: func(key string) bool { return strings.HasPrefix(key, "contact:") }}
	c1 := e.connectorWithHost(crashing, nil)
	wantOutcome(t, deliver(t, c1, inbound("evt_1", ana, 1, "um"))["evt_1"], sdk.Delivered)
	if !strings.HasPrefix(e.kv("contact:5511987650001"), "creating:") {
		t.Fatalf("KV contact: = %q, want the creation marker left behind", e.kv("contact:5511987650001"))
	}

	c2 := e.connector(nil)
	res := deliver(t, c2, inbound("evt_2", ana, 2, "dois"))["evt_2"]
	if res.Outcome != sdk.Retry || res.RetryAfter != 60*time.Second {
		t.Fatalf("while the marker is fresh: %s after %s (%s), want retry after 60s (search_lag)", res.Outcome, res.RetryAfter, res.Error)
	}
	containsAll(t, "error", res.Error, "interrupted", "not created twice")

	e.clk.Advance(61 * time.Second)
	wantOutcome(t, deliver(t, c2, inbound("evt_2", ana, 2, "dois"))["evt_2"], sdk.Delivered)
	contacts := e.fake.Contacts()
	if len(contacts) != 1 {
		t.Fatalf("%d contacts, want 1", len(contacts))
	}
	if n := len(commsOf(e.fake, contacts[0].ID)); n != 2 {
		t.Errorf("%d communications on the contact, want 2", n)
	}
	if got := e.kv("contact:5511987650001"); got != contacts[0].ID {
		t.Errorf("KV contact: = %q, want %s", got, contacts[0].ID)
	}
}

// HubSpot created the contact but the answer was lost (a gateway
// timeout): the same wait-then-search avoids a duplicate.
func TestLostAnswerToCreate(t *testing.T) {
	e := newEnv(t, hubspottest.WithSearchLag(5*time.Second))
	e.fake.Script(hubspottest.Fault{Status: http.StatusGatewayTimeout, AfterProcessing: true, Method: http.MethodPost, Path: hubspottest.PathContacts})
	c := e.connector(map[string]any{"search_lag": "20s"})
	ev := inbound("evt_1", ana, 1, "um")
	res := deliver(t, c, ev)["evt_1"]
	if res.Outcome != sdk.Retry {
		t.Fatalf("%s (%s), want retry", res.Outcome, res.Error)
	}
	containsAll(t, "error", res.Error, "504")
	if len(e.fake.Contacts()) != 1 || len(e.fake.Communications()) != 0 {
		t.Fatalf("fake holds %d contacts, %d communications; want the contact created and nothing logged", len(e.fake.Contacts()), len(e.fake.Communications()))
	}
	res = deliver(t, c, ev)["evt_1"]
	if res.Outcome != sdk.Retry || res.RetryAfter != 20*time.Second {
		t.Fatalf("right after: %s after %s, want retry after 20s", res.Outcome, res.RetryAfter)
	}
	e.clk.Advance(20 * time.Second)
	wantOutcome(t, deliver(t, c, ev)["evt_1"], sdk.Delivered)
	if n := len(e.fake.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
	if n := len(e.fake.Communications()); n != 1 {
		t.Errorf("%d communications, want 1", n)
	}
}

// A create HubSpot refused surely did not happen: the marker goes and the
// retry creates at once.
func TestRefusedCreateClearsMarker(t *testing.T) {
	e := newEnv(t)
	e.fake.Script(hubspottest.Fault{Status: http.StatusTooManyRequests, Method: http.MethodPost, Path: hubspottest.PathContacts})
	c := e.connector(nil)
	ev := inbound("evt_1", ana, 1, "um")
	res := deliver(t, c, ev)["evt_1"]
	if res.Outcome != sdk.Retry || res.RetryAfter != 10*time.Second {
		t.Fatalf("%s after %s, want retry after 10s", res.Outcome, res.RetryAfter)
	}
	if _, found, _ := e.host.KV().Get(t.Context(), "contact:5511987650001"); found {
		t.Error("creation marker left after a refused create")
	}
	e.clk.Advance(10 * time.Second)
	wantOutcome(t, deliver(t, c, ev)["evt_1"], sdk.Delivered)
	if n := len(e.fake.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
}

func TestExistingContact(t *testing.T) {
	cases := []struct {
		name  string
		props map[string]string
	}{
		{"by phone", map[string]string{"phone": "+5511987650001", "firstname": "Ana Maria"}},
		{"by mobile phone", map[string]string{"mobilephone": "+5511987650001", "phone": "+551133334444"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.fake.AddContact(map[string]string{"phone": "+5599999999999"}, t0.Add(-time.Hour))
			id := e.fake.AddContact(tc.props, t0.Add(-time.Hour))
			// A younger duplicate: the oldest wins.
			e.fake.AddContact(tc.props, t0.Add(-time.Minute))
			wantOutcome(t, deliver(t, e.connector(nil), inbound("evt_1", ana, 1, "oi"))["evt_1"], sdk.Delivered)
			if n := len(e.fake.Contacts()); n != 3 {
				t.Errorf("%d contacts, want the 3 that existed", n)
			}
			if n := len(commsOf(e.fake, id)); n != 1 {
				t.Errorf("the existing contact has %d communications, want 1", n)
			}
			if got := e.kv("contact:5511987650001"); got != id {
				t.Errorf("KV contact: = %q, want %s", got, id)
			}
		})
	}
}

// The cached contact was deleted in HubSpot: the connector finds (here:
// creates) the customer's contact again instead of failing for ever.
func TestCachedContactDeleted(t *testing.T) {
	e := newEnv(t)
	c := e.connector(nil)
	wantOutcome(t, deliver(t, c, inbound("evt_1", ana, 1, "um"))["evt_1"], sdk.Delivered)
	old := e.kv("contact:5511987650001")
	e.fake.DeleteContact(old)
	wantOutcome(t, deliver(t, c, inbound("evt_2", ana, 2, "dois"))["evt_2"], sdk.Delivered)
	contacts := e.fake.Contacts()
	if len(contacts) != 1 || contacts[0].ID == old {
		t.Fatalf("contacts %+v, want one new contact", contacts)
	}
	if n := len(commsOf(e.fake, contacts[0].ID)); n != 1 {
		t.Errorf("new contact has %d communications, want 1", n)
	}
	if got := e.kv("contact:5511987650001"); got != contacts[0].ID {
		t.Errorf("KV contact: = %q, want %s", got, contacts[0].ID)
	}
}

// A customer known only by a WhatsApp user id has no phone to search by:
// the contact is created with the name alone, and cached.
func TestCustomerWithoutPhone(t *testing.T) {
	e := newEnv(t)
	c := e.connector(nil)
	ct := &sdk.Contact{UserID: "BR.1234567890", Username: "ana.souza"}
	for i := 1; i <= 2; i++ {
		ev := inbound(fmt.Sprintf("evt_%d", i), ct, i, "oi")
		ev.ConversationID = "conv_bsuid"
		wantOutcome(t, deliver(t, c, ev)[ev.ID], sdk.Delivered)
	}
	contacts := e.fake.Contacts()
	if len(contacts) != 1 || contacts[0].Properties["firstname"] != "ana.souza" || contacts[0].Properties["phone"] != "" {
		t.Fatalf("contacts %+v, want one named ana.souza without phone", contacts)
	}
	if e.fake.Calls(http.MethodPost, hubspottest.PathContactSearch) != 0 {
		t.Error("searched without a phone number")
	}
	if e.kv("contact:BR.1234567890") != contacts[0].ID {
		t.Error("contact not cached under the user id")
	}
}

func TestFailedStatusNote(t *testing.T) {
	status := func(id string, typ sdk.EventType) sdk.Event {
		ev := inbound(id, ana, 5, "")
		ev.Type, ev.Message = typ, nil
		ev.Status = &sdk.Status{MessageID: "wamid.out.1", Status: strings.TrimPrefix(string(typ), "status."),
			Errors: []sdk.Error{{Code: 131047, Title: "Re-engagement message", Details: "More than 24 hours have passed"}}}
		ev.Outbound = &sdk.Outbound{ID: "msg_1", Source: "connector:slack"}
		return ev
	}
	t.Run("logged as a note", func(t *testing.T) {
		e := newEnv(t)
		c := e.connector(nil)
		res := deliver(t, c, status("evt_f", sdk.TypeStatusFailed), status("evt_d", sdk.TypeStatusDelivered))
		wantOutcome(t, res["evt_f"], sdk.Delivered)
		wantOutcome(t, res["evt_d"], sdk.Skipped)
		notes := e.fake.Notes()
		if len(notes) != 1 {
			t.Fatalf("%d notes, want 1", len(notes))
		}
		containsAll(t, "note", notes[0].Properties["hs_note_body"], "could not be delivered", "wamid.out.1", "131047", "Re-engagement message", "connector:slack")
		if notes[0].Properties["hs_timestamp"] != "2026-11-24T12:00:05.000Z" {
			t.Errorf("hs_timestamp %q", notes[0].Properties["hs_timestamp"])
		}
		if a := notes[0].Associations; len(a) != 1 || a[0].TypeID != 202 {
			t.Errorf("associations %+v, want type 202", a)
		}
		if len(e.fake.Communications()) != 0 {
			t.Error("a status was logged as a communication")
		}
	})
	t.Run("turned off", func(t *testing.T) {
		e := newEnv(t)
		res := deliver(t, e.connector(map[string]any{"failed_status_notes": false}), status("evt_f", sdk.TypeStatusFailed))
		wantOutcome(t, res["evt_f"], sdk.Skipped)
		containsAll(t, "reason", res["evt_f"].Error, "failed_status_notes")
		if len(e.fake.Requests()) != 0 {
			t.Error("requests made for a skipped event")
		}
	})
}

func TestSkipped(t *testing.T) {
	e := newEnv(t)
	var events []sdk.Event
	for i, typ := range []sdk.EventType{sdk.TypeStatusSent, sdk.TypeStatusDelivered, sdk.TypeStatusRead, sdk.TypeOptinGranted,
		sdk.TypeOptinRevoked, sdk.TypeContactChanged, "whatsapp.message_template_status_update"} {
		ev := inbound(fmt.Sprintf("evt_%d", i), ana, i, "")
		ev.Type = typ
		events = append(events, ev)
	}
	for _, res := range deliver(t, e.connector(nil), events...) {
		wantOutcome(t, res, sdk.Skipped)
	}
	if len(e.fake.Requests()) != 0 {
		t.Error("requests made for skipped events")
	}
}

func TestNoCustomer(t *testing.T) {
	e := newEnv(t)
	ev := inbound("evt_1", ana, 1, "oi")
	ev.Contact = nil
	res := deliver(t, e.connector(nil), ev)["evt_1"]
	wantOutcome(t, res, sdk.Failed)
	containsAll(t, "error", res.Error, "no customer")
}

func TestMessageBodies(t *testing.T) {
	e := newEnv(t)
	// The files the media messages carry (attached; media_test.go).
	e.host.AddMedia(sdk.MediaInfo{ID: "1", MimeType: "image/jpeg"}, []byte("\xff\xd8\xff photo"))
	e.host.AddMedia(sdk.MediaInfo{ID: "2", MimeType: "application/pdf"}, []byte("%PDF-1.7 boleto"))
	mk := func(n int, m *sdk.Message) sdk.Event {
		ev := inbound(fmt.Sprintf("evt_%02d", n), bruno, n, "")
		ev.Message = m
		return ev
	}
	cases := []struct {
		ev   sdk.Event
		want string
	}{
		{mk(1, &sdk.Message{Type: "text", Text: "Minha fatura veio errada"}), "Received from Bruno Lima: Minha fatura veio errada"},
		{func() sdk.Event {
			ev := mk(2, &sdk.Message{Type: "interactive", Text: "Falar com vendas", Button: &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas"}})
			ev.Type = sdk.TypeButtonClicked
			return ev
		}(), "Received from Bruno Lima: [button] Falar com vendas"},
		{mk(3, &sdk.Message{Type: "image", Text: "Foto", Media: &sdk.Media{ID: "1", Caption: "Foto"}}), "Received from Bruno Lima: [image] Foto"},
		{mk(4, &sdk.Message{Type: "document", Media: &sdk.Media{ID: "2", Filename: "boleto.pdf"}}), "Received from Bruno Lima: [document: boleto.pdf]"},
		{mk(5, &sdk.Message{Type: "location", Location: &sdk.Location{Latitude: -23.5, Longitude: -46.6, Name: "Loja"}}), "Received from Bruno Lima: [location] Loja (-23.500000, -46.600000)"},
		{mk(6, &sdk.Message{Type: "reaction", Reaction: &sdk.Reaction{MessageID: "wamid.x", Emoji: "👍"}}), "Received from Bruno Lima: [reaction] 👍"},
		{mk(7, &sdk.Message{Type: "contacts", Contacts: []sdk.SharedContact{{Name: "Zé", Phones: []string{"+5511900000000"}}}}), "Received from Bruno Lima: [contact] Zé +5511900000000"},
		{mk(8, &sdk.Message{Type: "unsupported", Unsupported: "poll_creation"}), "Received from Bruno Lima: [unsupported message: poll_creation]"},
		{mk(9, &sdk.Message{Type: "sticker"}), "Received from Bruno Lima: [sticker message]"},
		{outbound("evt_10", bruno, 10, "Segue o boleto"), "Sent to Bruno Lima (connector:slack): Segue o boleto"},
	}
	var events []sdk.Event
	for _, tc := range cases {
		events = append(events, tc.ev)
	}
	for _, res := range deliver(t, e.connector(nil), events...) {
		wantOutcome(t, res, sdk.Delivered)
	}
	comms := e.fake.Communications()
	if len(comms) != len(cases) {
		t.Fatalf("%d communications, want %d", len(comms), len(cases))
	}
	for i, tc := range cases {
		if got := comms[i].Properties["hs_communication_body"]; got != tc.want {
			t.Errorf("%s: body %q, want %q", tc.ev.ID, got, tc.want)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name   string
		fault  *hubspottest.Fault
		opts   []hubspottest.Option
		config map[string]any
		server http.Handler // instead of the fake
		want   sdk.Outcome
		after  time.Duration
		errHas []string
		errNot []string
	}{
		{name: "401 wrong token", config: map[string]any{"token": "pat-na1-wrong-s3cret"}, want: sdk.Failed,
			errHas: []string{"401", "INVALID_AUTHENTICATION", "Authentication credentials not found", "connectors.hubspot.config.token", "private app"}, errNot: []string{"s3cret"}},
		{name: "403 read scope missing", opts: []hubspottest.Option{hubspottest.WithScopes(hubspottest.ScopeContactsWrite)}, want: sdk.Failed,
			errHas: []string{"403", "MISSING_SCOPES", "lacks the scope crm.objects.contacts.read", "search contacts by phone", "Private apps → Scopes"}},
		{name: "403 write scope missing", opts: []hubspottest.Option{hubspottest.WithScopes(hubspottest.ScopeContactsRead)}, want: sdk.Failed,
			errHas: []string{"lacks the scope crm.objects.contacts.write", "create a contact"}},
		{name: "400 validation", fault: &hubspottest.Fault{Status: 400, Path: hubspottest.PathCommunications}, want: sdk.Failed,
			errHas: []string{"400", "VALIDATION_ERROR", "log a WhatsApp communication", "Simulated validation error", "correlation id"}},
		{name: "429 ten-secondly without Retry-After", fault: &hubspottest.Fault{Status: 429}, want: sdk.Retry, after: 10 * time.Second,
			errHas: []string{"429", "TEN_SECONDLY_ROLLING", "ten-secondly limit", "requests_per_10s"}},
		{name: "429 ten-secondly with Retry-After", fault: &hubspottest.Fault{Status: 429, RetryAfter: "3"}, want: sdk.Retry, after: 3 * time.Second},
		{name: "429 search secondly", fault: &hubspottest.Fault{Status: 429, Policy: hubspottest.PolicySearch}, want: sdk.Retry, after: time.Second,
			errHas: []string{"You have reached your secondly limit.", "search limit"}},
		{name: "429 daily", fault: &hubspottest.Fault{Status: 429, Policy: hubspottest.PolicyDaily}, want: sdk.Retry, after: time.Hour,
			errHas: []string{"DAILY", "daily API limit", "midnight", "1h0m0s"}},
		{name: "429 daily with Retry-After", fault: &hubspottest.Fault{Status: 429, Policy: hubspottest.PolicyDaily, RetryAfter: "7200"}, want: sdk.Retry, after: 2 * time.Hour},
		{name: "500", fault: &hubspottest.Fault{Status: 500}, want: sdk.Retry, errHas: []string{"500 Internal Server Error"}},
		{name: "502 html page", fault: &hubspottest.Fault{Status: 502}, want: sdk.Retry, errHas: []string{"502 Bad Gateway", "<html>"}},
		{name: "503 with Retry-After", fault: &hubspottest.Fault{Status: 503, RetryAfter: "7"}, want: sdk.Retry, after: 7 * time.Second},
		{name: "423 locked", fault: &hubspottest.Fault{Status: 423, Path: hubspottest.PathCommunications}, want: sdk.Retry, after: 2 * time.Second},
		{name: "timeout", config: map[string]any{"timeout": "50ms"}, server: hang(),
			want: sdk.Retry, errHas: []string{"did not answer within 50ms"}},
		{name: "connection refused", config: map[string]any{"api_url": "http://127.0.0.1:1"}, want: sdk.Retry, errHas: []string{"connection refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			if tc.fault != nil {
				e.fake.Script(*tc.fault)
			}
			cfg := tc.config
			if tc.server != nil {
				srv := sdktest.Serve(t, tc.server)
				t.Cleanup(func() { srv.CloseClientConnections() })
				cfg = map[string]any{"timeout": tc.config["timeout"], "api_url": srv.URL}
			}
			res := deliver(t, e.connector(cfg), inbound("evt_1", ana, 1, "oi"))["evt_1"]
			if res.Outcome != tc.want || res.RetryAfter != tc.after {
				t.Errorf("got %s after %s (%s), want %s after %s", res.Outcome, res.RetryAfter, res.Error, tc.want, tc.after)
			}
			containsAll(t, "error", res.Error, tc.errHas...)
			for _, s := range tc.errNot {
				if strings.Contains(res.Error, s) {
					t.Errorf("error %q contains %q", res.Error, s)
				}
			}
		})
	}
}

// A 429 pauses the connector: later events of the conversation and other
// conversations are held without a request and without spending their
// attempts, until the pause is over.
func TestRateLimitPausesConnector(t *testing.T) {
	e := newEnv(t)
	c := e.connector(nil)
	wantOutcome(t, deliver(t, c, inbound("evt_0", bruno, 0, "oi"))["evt_0"], sdk.Delivered)
	e.fake.Script(hubspottest.Fault{Status: 429})
	res := deliver(t, c, inbound("evt_1", ana, 1, "um"), inbound("evt_2", ana, 2, "dois"), inbound("evt_3", ana, 3, "três"))
	if r := res["evt_1"]; r.Outcome != sdk.Retry || r.NotAttempted || r.RetryAfter != 10*time.Second {
		t.Errorf("evt_1: %+v, want an attempted retry after 10s", r)
	}
	for _, id := range []string{"evt_2", "evt_3"} {
		if r := res[id]; r.Outcome != sdk.Retry || !r.NotAttempted || r.RetryAfter != 10*time.Second || !strings.Contains(r.Error, "evt_1") {
			t.Errorf("%s: %+v, want held behind evt_1 for 10s", id, r)
		}
	}
	before := len(e.fake.Requests())
	e.clk.Advance(4 * time.Second)
	r := deliver(t, c, inbound("evt_4", bruno, 4, "quatro"))["evt_4"]
	if r.Outcome != sdk.Retry || !r.NotAttempted || r.RetryAfter != 6*time.Second || !strings.Contains(r.Error, "rate limit") {
		t.Errorf("other conversation during the pause: %+v, want held for the 6s left", r)
	}
	if n := len(e.fake.Requests()) - before; n != 0 {
		t.Errorf("%d requests during the pause", n)
	}
	e.clk.Advance(6 * time.Second)
	for _, r := range deliver(t, c, inbound("evt_1", ana, 1, "um"), inbound("evt_2", ana, 2, "dois"), inbound("evt_3", ana, 3, "três"), inbound("evt_4", bruno, 4, "quatro")) {
		wantOutcome(t, r, sdk.Delivered)
	}
}

func TestOrderWithinConversation(t *testing.T) {
	cases := []struct {
		name      string
		fault     hubspottest.Fault
		want2     sdk.Outcome
		heldAfter time.Duration
	}{
		{"503 retries", hubspottest.Fault{Status: 503, RetryAfter: "30", Path: hubspottest.PathCommunications, BodyContains: "dois"}, sdk.Retry, 30 * time.Second},
		{"400 fails", hubspottest.Fault{Status: 400, Path: hubspottest.PathCommunications, BodyContains: "dois"}, sdk.Failed, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.connector(nil)
			e1, e2, e3 := inbound("evt_1", ana, 1, "um"), inbound("evt_2", ana, 2, "dois"), inbound("evt_3", ana, 3, "três")
			other := inbound("evt_b", bruno, 4, "outro")
			// The first communication goes through, the second meets the fault.
			wantOutcome(t, deliver(t, c, e1)["evt_1"], sdk.Delivered)
			e.fake.Script(tc.fault)
			res := deliver(t, c, e2, e3, other)
			if res["evt_2"].Outcome != tc.want2 {
				t.Fatalf("evt_2: %+v", res["evt_2"])
			}
			if h := res["evt_3"]; h.Outcome != sdk.Retry || !h.NotAttempted || h.RetryAfter != tc.heldAfter || !strings.Contains(h.Error, "evt_2") {
				t.Errorf("evt_3: %+v, want held after %s naming evt_2", h, tc.heldAfter)
			}
			wantOutcome(t, res["evt_b"], sdk.Delivered)
			rest := []sdk.Event{e3}
			if tc.want2 == sdk.Retry {
				rest = []sdk.Event{e2, e3}
			}
			for _, r := range deliver(t, c, rest...) {
				wantOutcome(t, r, sdk.Delivered)
			}
			var bodies []string
			for _, cm := range commsOf(e.fake, e.kv("contact:5511987650001")) {
				bodies = append(bodies, strings.TrimPrefix(cm.Properties["hs_communication_body"], "Received from Ana Souza: "))
			}
			want := "um dois três"
			if tc.want2 == sdk.Failed {
				want = "um três"
			}
			if got := strings.Join(bodies, " "); got != want {
				t.Errorf("timeline %q, want %q", got, want)
			}
		})
	}
}

// Two conversations of one customer (two business numbers) in one batch
// create one contact.
func TestOneCustomerTwoConversations(t *testing.T) {
	e := newEnv(t, hubspottest.WithSearchLag(time.Minute))
	var batch []sdk.Event
	for i := range 4 {
		ev := inbound(fmt.Sprintf("evt_%d", i), ana, i, "oi")
		ev.ConversationID = fmt.Sprintf("conv_%d", i%2)
		batch = append(batch, ev)
	}
	for _, r := range deliver(t, e.connector(nil), batch...) {
		wantOutcome(t, r, sdk.Delivered)
	}
	if n := len(e.fake.Contacts()); n != 1 {
		t.Errorf("%d contacts, want 1", n)
	}
	if n := len(e.fake.Communications()); n != 4 {
		t.Errorf("%d communications, want 4", n)
	}
}

func TestCancelledMidBatch(t *testing.T) {
	e := newEnv(t)
	c := e.connector(nil)
	ctx, cancel := contextWithCancel(t)
	cancel()
	results := c.Deliver(ctx, []sdk.Event{inbound("evt_1", ana, 1, "um"), inbound("evt_2", ana, 2, "dois")})
	for _, r := range results {
		if r.Outcome != sdk.Retry {
			t.Errorf("%s: %s, want retry", r.EventID, r.Outcome)
		}
	}
	if len(e.fake.Requests()) != 0 {
		t.Error("requests after the context ended")
	}
}

var _ = sdktest.NewFakeHost

// hang never answers: the client's timeout must end the request.
func hang() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	})
}
