package bitrix24

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
)

func TestAdIsTheNewContactsSource(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	ad := msg("evt_1", "5511987650001", "Ana Souza", "vi o anúncio")
	ad.Message.Referral = json.RawMessage(`{"source_url":"https://fb.me/x","source_id":"120226305854810726","source_type":"ad","headline":"Chat with us","ctwa_clid":"Aff-n8ZT"}`)
	res := deliver(t, r, ad, msg("evt_2", "5521998760002", "Bruno", "oi"))
	wantOutcome(t, res, "evt_1", sdk.Delivered)
	wantOutcome(t, res, "evt_2", sdk.Delivered)
	st := e.fake.State()
	if len(st.Contacts) != 2 {
		t.Fatalf("%d contacts", len(st.Contacts))
	}
	for _, c := range st.Contacts {
		src, desc := c.Fields["SOURCE_ID"], c.Fields["SOURCE_DESCRIPTION"]
		descText, _ := desc.(string)
		switch c.Fields["NAME"] {
		case "Ana Souza":
			if src != "ADVERTISING" || !strings.Contains(descText, "120226305854810726") || !strings.Contains(descText, "Chat with us") || !strings.Contains(descText, "Aff-n8ZT") {
				t.Errorf("Ana's contact: SOURCE_ID %q SOURCE_DESCRIPTION %q", src, desc)
			}
		default:
			if src != nil || desc != nil {
				t.Errorf("a contact without an ad got a source: %v %v", src, desc)
			}
		}
	}
}
