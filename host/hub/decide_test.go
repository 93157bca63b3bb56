package hub

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

const decideConfig = `
connectors:
  crm: {plugin: noop}
teams:
  support: {connectors: [crm]}
routes:
  - {name: default, team: support}
triggers:
  - name: order
    on: [message.received]
    when: {keywords: [pedido]}
    set: {topic: orders}
    reply: {text: "Recebemos seu pedido."}
`

// decide is where a message's consent change, its route and its
// triggers' effects become one store.Decision: checked here without a
// store, a plugin or HTTP.
func TestDecide(t *testing.T) {
	cfg, err := config.Parse([]byte(decideConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := route.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &Hub{router: r, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	msg := func(id, text string) *sdk.Event {
		return &sdk.Event{ID: id, Type: sdk.TypeMessageReceived, OccurredAt: at, ConversationID: "conv_1",
			Business: &sdk.Business{PhoneNumberID: "106540352242922"}, Contact: &sdk.Contact{WAID: "5511987654321"},
			Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: text}}
	}
	cases := []struct {
		name         string
		ev           *sdk.Event
		consent      sdk.Consent
		consentEvent sdk.EventType // the type of the announcing event; "" for none
		attributes   map[string]string
		replies      int
	}{
		{name: "plain message", ev: msg("e1", "oi")},
		{name: "opt-out keyword", ev: msg("e2", "PARAR"), consent: sdk.ConsentRevoked, consentEvent: sdk.TypeOptinRevoked},
		{name: "preference webhook", ev: &sdk.Event{ID: "e3", Type: sdk.TypeOptinRevoked, OccurredAt: at,
			Contact: &sdk.Contact{WAID: "5511987654321"}, Preference: &sdk.Preference{Category: "marketing_messages", Value: "stop"}},
			consent: sdk.ConsentRevoked},
		{name: "trigger", ev: msg("e4", "meu pedido 123"), attributes: map[string]string{"topic": "orders"}, replies: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := h.decide(tc.ev, store.RouteState{})
			if d.Team != "support" || len(d.Connectors) != 1 || d.Connectors[0] != "crm" {
				t.Errorf("routed to %q %v, want support [crm]", d.Team, d.Connectors)
			}
			if d.Consent != tc.consent {
				t.Errorf("consent %q, want %q", d.Consent, tc.consent)
			}
			switch {
			case tc.consentEvent == "" && d.ConsentEvent != nil:
				t.Errorf("announced %s, want no consent event", d.ConsentEvent.Type)
			case tc.consentEvent != "" && (d.ConsentEvent == nil || d.ConsentEvent.Type != tc.consentEvent):
				t.Errorf("consent event %+v, want a %s", d.ConsentEvent, tc.consentEvent)
			case d.ConsentEvent != nil && d.ConsentEvent.Contact.Key() != tc.ev.Contact.Key():
				t.Errorf("consent event for %q, want the message's customer", d.ConsentEvent.Contact.Key())
			}
			if len(d.Attributes) != len(tc.attributes) {
				t.Errorf("attributes %v, want %v", d.Attributes, tc.attributes)
			}
			for k, v := range tc.attributes {
				if d.Attributes[k] != v {
					t.Errorf("attribute %s = %q, want %q", k, d.Attributes[k], v)
				}
			}
			if len(d.Messages) != tc.replies {
				t.Fatalf("%d replies queued, want %d", len(d.Messages), tc.replies)
			}
			for _, m := range d.Messages {
				if !strings.HasPrefix(m.Source, "trigger:") || m.Msg.IdempotencyKey != tc.ev.ID || m.Msg.To != "5511987654321" {
					t.Errorf("reply %+v: want a trigger's reply to the customer keyed by the event", m)
				}
			}
		})
	}
	// The announcing event's id derives from the message's: a message seen
	// twice announces once.
	a, b := h.decide(msg("e2", "PARAR"), store.RouteState{}), h.decide(msg("e2", "PARAR"), store.RouteState{})
	if a.ConsentEvent.ID != b.ConsentEvent.ID || a.ConsentEvent.ID == "e2" {
		t.Errorf("consent event ids %q, %q: want one stable id of its own", a.ConsentEvent.ID, b.ConsentEvent.ID)
	}
}

func TestTriggerReplyMedia(t *testing.T) {
	ev := &sdk.Event{ID: "evt_1", Contact: &sdk.Contact{WAID: "5511900000001"}, Business: &sdk.Business{PhoneNumberID: "pn1"}}
	msg, ok := triggerReply(ev, &config.Reply{Media: &config.ReplyMedia{URL: "https://acme.example/catalogo.pdf", Caption: "nosso catálogo"}})
	want := sdk.OutboundMedia{URL: "https://acme.example/catalogo.pdf", Caption: "nosso catálogo"}
	if !ok || msg.Text != "" || msg.Media == nil || *msg.Media != want || msg.IdempotencyKey != "evt_1" || msg.PhoneNumberID != "pn1" {
		t.Fatalf("reply %+v (media %+v)", msg, msg.Media)
	}
}
