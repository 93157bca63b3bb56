package hubspot_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
)

func TestAdIsTheNewContactsLeadSource(t *testing.T) {
	e := newEnv(t, hubspottest.WithContactProperties("whatsapp_lead_source"))
	c := e.connector(map[string]any{"lead_source_property": "whatsapp_lead_source"})
	ad := inbound("evt_1", ana, 1, "vi o anúncio")
	ad.Message.Referral = json.RawMessage(`{"source_url":"https://fb.me/x","source_id":"120226305854810726","source_type":"ad","headline":"Chat with us","ctwa_clid":"Aff-n8ZT"}`)
	quote := inbound("evt_2", ana, 2, "e o frete?")
	quote.Message.Context = &sdk.Context{ID: "wamid.out"}
	quote.Message.Quoted = &sdk.Quoted{ID: "wamid.out", From: "business", Type: "text", Text: "Chegam em 2 dias"}
	res := deliver(t, c, ad, quote)
	wantOutcome(t, res["evt_1"], sdk.Delivered)
	wantOutcome(t, res["evt_2"], sdk.Delivered)
	cs := e.fake.Contacts()
	if len(cs) != 1 {
		t.Fatalf("%d contacts", len(cs))
	}
	p := cs[0].Properties
	containsAll(t, "lead source", p["whatsapp_lead_source"], "Click-to-WhatsApp ad 120226305854810726", `"Chat with us"`, "ctwa_clid Aff-n8ZT", "https://fb.me/x")
	if p["lifecyclestage"] != "lead" {
		t.Errorf("lifecyclestage %q, want lead", p["lifecyclestage"])
	}
	var bodies []string
	for _, r := range commsOf(e.fake, cs[0].ID) {
		bodies = append(bodies, r.Properties["hs_communication_body"])
	}
	containsAll(t, "communications", strings.Join(bodies, "\n"), "(from Click-to-WhatsApp ad", "e o frete?\n(replying to your message: Chegam em 2 dias)")
}
