package route

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// benchConfig has 200 keyword routes with 1,000 keywords between them
// (one in ten a two-word phrase), ten teams on a schedule, a subscription
// and two triggers, then a default route.
func benchConfig() string {
	var b strings.Builder
	b.WriteString(`
schedules:
  office: {timezone: America/Sao_Paulo, hours: {mon-fri: ["09:00-18:00"]}, holidays: ["2026-12-25"]}
connectors:
  slack: {plugin: slack}
  zendesk: {plugin: zendesk}
  hubspot: {plugin: hubspot}
teams:
  support: {connectors: [zendesk]}
`)
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "  team%d: {connectors: [slack, zendesk], schedule: office, after_hours: support}\n", i)
	}
	b.WriteString("routes:\n")
	k := 0
	for i := 0; i < 200; i++ {
		kws := make([]string, 5)
		for j := range kws {
			if k%10 == 9 {
				kws[j] = fmt.Sprintf("%q", fmt.Sprintf("segunda via%d", k))
			} else {
				kws[j] = fmt.Sprintf("termo%d", k)
			}
			k++
		}
		fmt.Fprintf(&b, "  - {name: rule%d, when: {keywords: [%s]}, team: team%d}\n", i, strings.Join(kws, ", "), i%10)
	}
	b.WriteString(`  - {name: default, team: support}
triggers:
  - {name: welcome, on: [optin.granted], reply: {text: "Bem-vindo!"}}
  - {name: closed, on: [message.received], when: {outside: office}, reply: {template: {name: after_hours, language: pt_BR}}}
subscriptions:
  - {connector: hubspot, events: [message.received, message.sent, "status.*"]}
`)
	return b.String()
}

// benchEvent is a customer message whose text holds a keyword of route
// 195 of 200, among accented words, so that folding takes its slow path.
func benchEvent() *sdk.Event {
	txt := "Olá, boa tarde! Preciso de ajuda com o pedido número 12345: a entrega atrasou e eu gostaria de saber sobre o termo977, por favor. Obrigada!"
	raw, _ := json.Marshal(map[string]any{
		"from": "5511987650001", "id": "wamid.HBgNNTUxMTk4NzY1MDAwMRUCABIYFjNFQjBDMEQ2RkM0QUFGN0U2MjgxAA==",
		"timestamp": "1764000180", "type": "text", "text": map[string]string{"body": txt},
	})
	return &sdk.Event{
		ID:             "evt_01JD5X7Q0S9V6ZK3M8N2P4R6T8",
		Seq:            1042,
		Type:           sdk.TypeMessageReceived,
		OccurredAt:     time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC),
		ReceivedAt:     time.Date(2026, 11, 24, 17, 0, 1, 0, time.UTC),
		Business:       &sdk.Business{WABAID: "102290129340398", PhoneNumberID: "106540352242922", DisplayPhoneNumber: "15550783881"},
		Contact:        &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza", Attributes: map[string]string{"tier": "silver", "hubspot_owner_id": "812"}},
		ConversationID: "conv_106540352242922_5511987650001",
		Message:        &sdk.Message{ID: "wamid.HBgNNTUxMTk4NzY1MDAwMRUCABIYFjNFQjBDMEQ2RkM0QUFGN0U2MjgxAA==", Type: "text", Text: txt},
		Raw:            raw,
	}
}

func TestBenchSetup(t *testing.T) {
	r := mustRouter(t, benchConfig())
	if n := len(r.routes); n != 201 {
		t.Fatalf("%d routes", n)
	}
	kws := 0
	for _, rt := range r.routes {
		kws += len(rt.cond.keywords)
	}
	if kws != 1000 {
		t.Fatalf("%d keywords", kws)
	}
	d := r.Decide(benchEvent(), time.Time{}, State{})
	if d.Rule != "rule195" || d.Team != "team5" || len(d.Trace) != 199 {
		t.Fatalf("rule %q team %q, %d steps", d.Rule, d.Team, len(d.Trace))
	}
	ev := benchEvent()
	ev.Message.Text = "preciso da Segunda Via99 agora"
	if d := r.Decide(ev, time.Time{}, State{}); d.Rule != "rule19" {
		t.Fatalf("phrase: rule %q", d.Rule)
	}
}

func BenchmarkDecide200Rules1000Keywords(b *testing.B) {
	r := mustRouter(b, benchConfig())
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		d := r.Decide(ev, time.Time{}, State{})
		if d.Rule != "rule195" {
			b.Fatal(d.Rule)
		}
	}
}

// BenchmarkRoute200Rules1000Keywords is the dispatcher's path: the same
// decision without the explanation.
func BenchmarkRoute200Rules1000Keywords(b *testing.B) {
	r := mustRouter(b, benchConfig())
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		d := r.Route(ev, time.Time{}, State{})
		if d.Rule != "rule195" || d.Trace != nil {
			b.Fatal(d.Rule)
		}
	}
}

// BenchmarkParseEventJSON is the baseline the issue asks Decide to be
// compared with: decoding the same event from its JSON.
func BenchmarkParseEventJSON(b *testing.B) {
	data, err := json.Marshal(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var ev sdk.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideContract is the contract example: the size of a real
// configuration.
func BenchmarkDecideContract(b *testing.B) {
	r := contractRouter(b)
	ev := evt(text("Boa tarde!! A FÁTURA não chegou"))
	b.ReportAllocs()
	for b.Loop() {
		r.Decide(ev, weekday, State{})
	}
}
