package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

const whatsappFixtures = "../../testdata/whatsapp"

const (
	waba1       = "102290129340398"
	waba2       = "102290129340399"
	phoneID1    = "106540352242922"
	outToAna    = "wamid.HBgNNTUxMTk4NzY1MDAwMRUCABEYEjAwQUJDREVGMDEyMzQ1Njc4OQA="
	dana        = "BR.13491208655302741918"
	groupID     = "120363418726390145"
	valueHashed = "{value}" // in a want key: hex sha256 of the compacted entry[0].changes[0].value
)

var (
	parseReceived = time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)

	biz1     = &sdk.Business{WABAID: waba1, PhoneNumberID: phoneID1, DisplayPhoneNumber: "15550783881"}
	biz2     = &sdk.Business{WABAID: waba2, PhoneNumberID: "106540352242923", DisplayPhoneNumber: "15550783882"}
	bizWABA1 = &sdk.Business{WABAID: waba1}

	ana     = &sdk.Contact{WAID: "5511987650001", Name: "Ana Souza"}
	bruno   = &sdk.Contact{WAID: "5521998760002", Name: "Bruno Lima"}
	carol   = &sdk.Contact{WAID: "14155550003", Name: "Carol Jones"}
	mariana = &sdk.Contact{WAID: "5531991230004", Name: "Mariana Costa"}
	pedro   = &sdk.Contact{WAID: "5541988770005", Name: "Pedro Oliveira"}
	mike    = &sdk.Contact{WAID: "13125550006", Name: "Mike Turner"}
)

// wantEvent is one expected event of a fixture.
type wantEvent struct {
	key      string // natural key: ID must be EventID(key)
	typ      sdk.EventType
	occurred int64 // Unix seconds; 0 means the receive time
	biz      *sdk.Business
	contact  *sdk.Contact
	msg      *sdk.Message // compared whole, except Referral (see referral)
	status   *sdk.Status
	pref     *sdk.Preference
	referral string // a substring the message's referral must hold
	rawHas   string // a substring that shows Raw is the right item
}

// fixtureWants has a row for every file in testdata/whatsapp, and
// TestParseFixtures fails when a file has none.
var fixtureWants = map[string][]wantEvent{
	"text.json": {{
		key: "m:wamid.PUB.text.0001", typ: sdk.TypeMessageReceived, occurred: 1764000000, biz: biz1, contact: ana,
		msg:    &sdk.Message{ID: "wamid.PUB.text.0001", Type: "text", Text: "Olá, preciso de ajuda com meu pedido"},
		rawHas: `"wamid.PUB.text.0001"`,
	}},
	"billing_boleto.json": {{
		key: "m:wamid.PUB.text.0007", typ: sdk.TypeMessageReceived, occurred: 1764000120, biz: biz1,
		contact: &sdk.Contact{WAID: "5511976540007", Name: "Fernanda Alves"},
		msg:     &sdk.Message{ID: "wamid.PUB.text.0007", Type: "text", Text: "Bom dia! Preciso da segunda via do boleto de novembro"},
		rawHas:  `"wamid.PUB.text.0007"`,
	}},
	"text_billing_keyword.json": {{
		key: "m:wamid.PUB.text.0002", typ: sdk.TypeMessageReceived, occurred: 1764000060, biz: biz1, contact: bruno,
		msg:    &sdk.Message{ID: "wamid.PUB.text.0002", Type: "text", Text: "Minha fatura veio errada"},
		rawHas: `"wamid.PUB.text.0002"`,
	}},
	"optout_keyword.json": {{
		key: "m:wamid.PUB.text.0003", typ: sdk.TypeMessageReceived, occurred: 1764000480, biz: biz1, contact: bruno,
		msg:    &sdk.Message{ID: "wamid.PUB.text.0003", Type: "text", Text: "PARAR"},
		rawHas: `"wamid.PUB.text.0003"`,
	}},
	"bsuid_text.json": {{
		key: "m:wamid.PUB.bsuid.0001", typ: sdk.TypeMessageReceived, occurred: 1764000900, biz: biz1,
		contact: &sdk.Contact{UserID: dana, Name: "Dana", Username: "dana.k"},
		msg:     &sdk.Message{ID: "wamid.PUB.bsuid.0001", Type: "text", Text: "oi, sem número de telefone"},
		rawHas:  `"wamid.PUB.bsuid.0001"`,
	}},
	"batch_mixed.json": {
		{
			key: "m:wamid.PUB.batch.0001", typ: sdk.TypeMessageReceived, occurred: 1764000800, biz: biz1, contact: ana,
			msg:    &sdk.Message{ID: "wamid.PUB.batch.0001", Type: "text", Text: "primeira"},
			rawHas: `"wamid.PUB.batch.0001"`,
		},
		{
			key: "m:wamid.PUB.batch.0002", typ: sdk.TypeMessageReceived, occurred: 1764000801, biz: biz1, contact: ana,
			msg:    &sdk.Message{ID: "wamid.PUB.batch.0002", Type: "text", Text: "segunda"},
			rawHas: `"wamid.PUB.batch.0002"`,
		},
		{
			key: "s:" + outToAna + ":delivered", typ: sdk.TypeStatusDelivered, occurred: 1764000802, biz: biz1,
			contact: &sdk.Contact{WAID: "5511987650001"},
			status:  &sdk.Status{MessageID: outToAna, Status: "delivered"},
			rawHas:  `"delivered"`,
		},
		{
			key: "m:wamid.PUB.batch.0003", typ: sdk.TypeMessageReceived, occurred: 1764000803, biz: biz2, contact: carol,
			msg:    &sdk.Message{ID: "wamid.PUB.batch.0003", Type: "text", Text: "hello from another line"},
			rawHas: `"wamid.PUB.batch.0003"`,
		},
	},
	"button_reply.json": {{
		key: "m:wamid.PUB.btn.0001", typ: sdk.TypeButtonClicked, occurred: 1764000120, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.btn.0001", Type: "interactive", Text: "Falar com vendas",
			Button:  &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas"},
			Context: &sdk.Context{ID: outToAna, From: "15550783881"},
		},
		rawHas: `"wamid.PUB.btn.0001"`,
	}},
	"list_reply.json": {{
		key: "m:wamid.PUB.list.0001", typ: sdk.TypeButtonClicked, occurred: 1764000180, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.list.0001", Type: "interactive", Text: "Suporte técnico",
			Button:  &sdk.Button{ID: "support_tech", Title: "Suporte técnico", Description: "Problemas com o app"},
			Context: &sdk.Context{ID: outToAna, From: "15550783881"},
		},
		rawHas: `"wamid.PUB.list.0001"`,
	}},
	"template_button.json": {{
		key: "m:wamid.PUB.tbtn.0001", typ: sdk.TypeButtonClicked, occurred: 1764000240, biz: biz1, contact: bruno,
		msg: &sdk.Message{
			ID: "wamid.PUB.tbtn.0001", Type: "button", Text: "Parar promoções",
			Button:  &sdk.Button{ID: "STOP_PROMOTIONS", Title: "Parar promoções"},
			Context: &sdk.Context{ID: outToAna, From: "15550783881"},
		},
		rawHas: `"wamid.PUB.tbtn.0001"`,
	}},
	"image.json": {{
		key: "m:wamid.PUB.img.0001", typ: sdk.TypeMessageReceived, occurred: 1764000300, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.img.0001", Type: "image", Text: "Foto do produto com defeito",
			Media: &sdk.Media{
				ID: "1003383421387256", MimeType: "image/jpeg", Caption: "Foto do produto com defeito",
				SHA256: "xSe3GzciJPsnLHo9a5/mVchA1NuamPuCzHb+wQXMjg0=",
			},
		},
		rawHas: `"wamid.PUB.img.0001"`,
	}},
	"image_forwarded.json": {{
		key: "m:wamid.PUB.fwd.0001", typ: sdk.TypeMessageReceived, occurred: 1764001090, biz: biz1, contact: bruno,
		msg: &sdk.Message{
			ID: "wamid.PUB.fwd.0001", Type: "image",
			Context: &sdk.Context{Forwarded: true},
			Media: &sdk.Media{
				ID: "2210398127745120", MimeType: "image/jpeg",
				SHA256: "keTegqh+BgYDMSM3/TdNoDfM+MBJEizCZFcgXdYFZcM=",
			},
		},
		rawHas: `"wamid.PUB.fwd.0001"`,
	}},
	"audio_voice.json": {{
		key: "m:wamid.PUB.audio.0001", typ: sdk.TypeMessageReceived, occurred: 1764001000, biz: biz1, contact: mariana,
		msg: &sdk.Message{
			ID: "wamid.PUB.audio.0001", Type: "audio",
			Media: &sdk.Media{
				ID: "1476281743600112", MimeType: "audio/ogg; codecs=opus", Voice: true,
				SHA256: "mVUBu1S6Zm7g095xolqYDa2wrbr7yCOX/cHumgv3wf8=",
			},
		},
		rawHas: `"wamid.PUB.audio.0001"`,
	}},
	"video.json": {{
		key: "m:wamid.PUB.video.0001", typ: sdk.TypeMessageReceived, occurred: 1764001010, biz: biz1, contact: mike,
		msg: &sdk.Message{
			ID: "wamid.PUB.video.0001", Type: "video", Text: "Here is the leak under the sink",
			Media: &sdk.Media{
				ID: "921465377254881", MimeType: "video/mp4", Caption: "Here is the leak under the sink",
				SHA256: "Xwpy2ZWfTOi5izaRxL7K1rKZjg3h07G5vt21u1+sAIY=",
				URL:    "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=921465377254881&ext=1764001010&hash=ATtGq1mN0pZ8vAq3",
			},
		},
		rawHas: `"wamid.PUB.video.0001"`,
	}},
	"document.json": {{
		key: "m:wamid.PUB.doc.0001", typ: sdk.TypeMessageReceived, occurred: 1764001020, biz: biz1, contact: pedro,
		msg: &sdk.Message{
			ID: "wamid.PUB.doc.0001", Type: "document", Text: "Comprovante do Pix",
			Media: &sdk.Media{
				ID: "1130471592211848", MimeType: "application/pdf", Caption: "Comprovante do Pix",
				Filename: "comprovante_pix_novembro.pdf",
				SHA256:   "RefG3TVt0JFCsuh2cwue7PX+OcUBLddPr+RO2vtS0cQ=",
			},
		},
		rawHas: `"wamid.PUB.doc.0001"`,
	}},
	"sticker.json": {{
		key: "m:wamid.PUB.sticker.0001", typ: sdk.TypeMessageReceived, occurred: 1764001030, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.sticker.0001", Type: "sticker",
			Media: &sdk.Media{
				ID: "1587354012084731", MimeType: "image/webp", Animated: true,
				SHA256: "2uz+OqboI8c+FdiVfYt9+7uAdvTiSLPrAfj90X0152E=",
			},
		},
		rawHas: `"wamid.PUB.sticker.0001"`,
	}},
	"location.json": {{
		key: "m:wamid.PUB.loc.0001", typ: sdk.TypeMessageReceived, occurred: 1764000360, biz: biz1,
		contact: bruno,
		msg: &sdk.Message{
			ID: "wamid.PUB.loc.0001", Type: "location",
			Location: &sdk.Location{Latitude: -23.5613, Longitude: -46.6565, Name: "Av. Paulista", Address: "Av. Paulista, 1000"},
		},
		rawHas: `"wamid.PUB.loc.0001"`,
	}},
	"contacts_card.json": {{
		key: "m:wamid.PUB.contacts.0001", typ: sdk.TypeMessageReceived, occurred: 1764001040, biz: biz1, contact: bruno,
		msg: &sdk.Message{
			ID: "wamid.PUB.contacts.0001", Type: "contacts",
			Contacts: []sdk.SharedContact{
				{
					Name: "Juliana Pereira", Phones: []string{"+55 21 99876-5432"},
					Emails: []string{"juliana@paodourado.com.br"}, Org: "Padaria Pão Dourado",
				},
				{Name: "Suporte Loja", Phones: []string{"+55 11 4002-8922"}},
			},
		},
		rawHas: `"wamid.PUB.contacts.0001"`,
	}},
	"reaction.json": {{
		key: "m:wamid.PUB.react.0001", typ: sdk.TypeMessageReceived, occurred: 1764000420, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.react.0001", Type: "reaction",
			Reaction: &sdk.Reaction{MessageID: outToAna, Emoji: "👍"},
		},
		rawHas: `"wamid.PUB.react.0001"`,
	}},
	"reaction_removed.json": {{
		key: "m:wamid.PUB.react.0002", typ: sdk.TypeMessageReceived, occurred: 1764001100, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.react.0002", Type: "reaction",
			Reaction: &sdk.Reaction{MessageID: outToAna},
		},
		rawHas: `"wamid.PUB.react.0002"`,
	}},
	"order.json": {{
		key: "m:wamid.PUB.order.0001", typ: sdk.TypeMessageReceived, occurred: 1764001050, biz: biz1, contact: mike,
		msg:    &sdk.Message{ID: "wamid.PUB.order.0001", Type: "order", Text: "Can you deliver by Friday?"},
		rawHas: `"wamid.PUB.order.0001"`,
	}},
	"interactive_nfm_reply.json": {{
		key: "m:wamid.PUB.nfm.0001", typ: sdk.TypeMessageReceived, occurred: 1764001060, biz: biz1, contact: mariana,
		msg: &sdk.Message{
			ID: "wamid.PUB.nfm.0001", Type: "interactive", Text: "Sent",
			Context: &sdk.Context{ID: "wamid.PUB.out.0003", From: "15550783881"},
		},
		rawHas: `"wamid.PUB.nfm.0001"`,
	}},
	"text_referral_ctwa.json": {{
		key: "m:wamid.PUB.ctwa.0001", typ: sdk.TypeMessageReceived, occurred: 1764001070, biz: biz1, contact: pedro,
		msg: &sdk.Message{
			ID: "wamid.PUB.ctwa.0001", Type: "text", Text: "Oi! Vi o anúncio e quero saber o preço do plano anual",
		},
		referral: `"ctwa_clid": "Aff-n8ZTpQ3vY0wR1kLm9sJ2"`,
		rawHas:   `"wamid.PUB.ctwa.0001"`,
	}},
	"text_reply_context.json": {{
		key: "m:wamid.PUB.reply.0001", typ: sdk.TypeMessageReceived, occurred: 1764001080, biz: biz2, contact: carol,
		msg: &sdk.Message{
			ID: "wamid.PUB.reply.0001", Type: "text", Text: "Yes, Tuesday at 3pm works for me",
			Context: &sdk.Context{ID: "wamid.PUB.out.0004", From: "15550783882"},
		},
		rawHas: `"wamid.PUB.reply.0001"`,
	}},
	"request_welcome.json": {{
		key: "m:wamid.PUB.welcome.0001", typ: sdk.TypeMessageReceived, occurred: 1764001200, biz: biz1, contact: mike,
		msg:    &sdk.Message{ID: "wamid.PUB.welcome.0001", Type: "request_welcome"},
		rawHas: `"wamid.PUB.welcome.0001"`,
	}},
	"unsupported.json": {{
		key: "m:wamid.PUB.uns.0001", typ: sdk.TypeMessageReceived, occurred: 1764000660, biz: biz1, contact: ana,
		msg: &sdk.Message{
			ID: "wamid.PUB.uns.0001", Type: "unsupported", Unsupported: "poll_creation",
			Errors: []sdk.Error{{
				Code: 131051, Title: "Message type unknown", Message: "Message type unknown",
				Details: "Message type is currently not supported.",
			}},
		},
		rawHas: `"wamid.PUB.uns.0001"`,
	}},
	"system_changed_number.json": {{
		key: "m:wamid.PUB.sys.0001", typ: sdk.TypeContactChanged, occurred: 1764000600, biz: biz1,
		contact: &sdk.Contact{WAID: "14155550003"},
		msg: &sdk.Message{
			ID: "wamid.PUB.sys.0001", Type: "system",
			System: &sdk.System{
				Type: "user_changed_number", Body: "User changed from 14155550003 to 14155550099", NewWAID: "14155550099",
			},
		},
		rawHas: `"wamid.PUB.sys.0001"`,
	}},
	"status_sent.json": {{
		key: "s:" + outToAna + ":sent", typ: sdk.TypeStatusSent, occurred: 1764000500, biz: biz1,
		contact: &sdk.Contact{WAID: "5511987650001"},
		status:  &sdk.Status{MessageID: outToAna, Status: "sent", Category: "utility"},
		rawHas:  `"sent"`,
	}},
	"status_delivered.json": {{
		key: "s:" + outToAna + ":delivered", typ: sdk.TypeStatusDelivered, occurred: 1764000510, biz: biz1,
		contact: &sdk.Contact{WAID: "5511987650001"},
		status:  &sdk.Status{MessageID: outToAna, Status: "delivered"},
		rawHas:  `"delivered"`,
	}},
	"status_read.json": {{
		key: "s:" + outToAna + ":read", typ: sdk.TypeStatusRead, occurred: 1764000520, biz: biz1,
		contact: &sdk.Contact{WAID: "5511987650001"},
		status:  &sdk.Status{MessageID: outToAna, Status: "read"},
		rawHas:  `"read"`,
	}},
	"status_failed.json": {{
		key: "s:wamid.PUB.out.0002:failed", typ: sdk.TypeStatusFailed, occurred: 1764000530, biz: biz1,
		contact: &sdk.Contact{WAID: "14155550003"},
		status: &sdk.Status{
			MessageID: "wamid.PUB.out.0002", Status: "failed",
			Errors: []sdk.Error{{
				Code: 131047, Title: "Re-engagement message", Message: "Re-engagement message",
				Details: "More than 24 hours have passed since the recipient last replied to the sender number.",
			}},
		},
		rawHas: `"wamid.PUB.out.0002"`,
	}},
	"status_played.json": {{
		key: "s:wamid.PUB.out.0005:played", typ: sdk.TypeStatusPlayed, occurred: 1764001110, biz: biz1,
		contact: &sdk.Contact{WAID: "5531991230004"},
		status:  &sdk.Status{MessageID: "wamid.PUB.out.0005", Status: "played"},
		rawHas:  `"wamid.PUB.out.0005"`,
	}},
	"status_bsuid.json": {{
		key: "s:wamid.PUB.out.0006:delivered", typ: sdk.TypeStatusDelivered, occurred: 1764001120, biz: biz1,
		contact: &sdk.Contact{UserID: dana, Name: "Dana", Username: "dana.k"},
		status:  &sdk.Status{MessageID: "wamid.PUB.out.0006", Status: "delivered", Category: "service"},
		rawHas:  `"wamid.PUB.out.0006"`,
	}},
	"status_group.json": {
		{
			key: "s:wamid.PUB.out.0007:read:5511987650001", typ: sdk.TypeStatusRead, occurred: 1764001130, biz: biz1,
			contact: &sdk.Contact{WAID: groupID},
			status:  &sdk.Status{MessageID: "wamid.PUB.out.0007", Status: "read", ParticipantID: "5511987650001"},
			rawHas:  `"recipient_participant_id": "5511987650001"`,
		},
		{
			key: "s:wamid.PUB.out.0007:read:5521998760002", typ: sdk.TypeStatusRead, occurred: 1764001134, biz: biz1,
			contact: &sdk.Contact{WAID: groupID},
			status:  &sdk.Status{MessageID: "wamid.PUB.out.0007", Status: "read", ParticipantID: "5521998760002"},
			rawHas:  `"recipient_participant_id": "5521998760002"`,
		},
	},
	"user_preferences_stop.json": {{
		key: "p:" + phoneID1 + ":5511987650001:marketing_messages:stop:1764000720", typ: sdk.TypeOptinRevoked,
		occurred: 1764000720, biz: biz1, contact: &sdk.Contact{WAID: "5511987650001"},
		pref:   &sdk.Preference{Category: "marketing_messages", Value: "stop", Detail: "User requested to stop marketing messages"},
		rawHas: `"stop"`,
	}},
	"user_preferences_resume.json": {{
		key: "p:" + phoneID1 + ":5511987650001:marketing_messages:resume:1764001170", typ: sdk.TypeOptinGranted,
		occurred: 1764001170, biz: biz1, contact: &sdk.Contact{WAID: "5511987650001"},
		pref:   &sdk.Preference{Category: "marketing_messages", Value: "resume", Detail: "User requested to resume marketing messages"},
		rawHas: `"resume"`,
	}},
	"value_errors.json": {{
		key: "e:" + waba1 + ":messages::" + valueHashed, typ: "whatsapp.errors", biz: biz1,
		rawHas: `"code": 130429`,
	}},
	"template_status_update.json": {{
		key: "f:" + waba1 + ":message_template_status_update:1764000780:" + valueHashed,
		typ: "whatsapp.message_template_status_update", occurred: 1764000780, biz: bizWABA1,
		rawHas: `"message_template_name": "after_hours"`,
	}},
	"phone_number_quality_update.json": {{
		key: "f:" + waba1 + ":phone_number_quality_update:1764001150:" + valueHashed,
		typ: "whatsapp.phone_number_quality_update", occurred: 1764001150,
		biz:    &sdk.Business{WABAID: waba1, DisplayPhoneNumber: "15550783881"},
		rawHas: `"event": "UPGRADE"`,
	}},
	"account_update_restriction.json": {{
		key: "f:" + waba1 + ":account_update:1764001160:" + valueHashed,
		typ: "whatsapp.account_update", occurred: 1764001160, biz: bizWABA1,
		rawHas: `"RESTRICTED_BIZ_INITIATED_MESSAGING"`,
	}},
	"smb_message_echoes.json": {{
		key: "f:" + waba1 + ":smb_message_echoes::" + valueHashed,
		typ: "whatsapp.smb_message_echoes", biz: biz1,
		rawHas: `"wamid.PUB.echo.0001"`,
	}},
	"unknown_field.json": {{
		key: "f:" + waba1 + ":business_profile_update:1764001180:" + valueHashed,
		typ: "whatsapp.business_profile_update", occurred: 1764001180,
		biz:    &sdk.Business{WABAID: waba1, DisplayPhoneNumber: "15550783881"},
		rawHas: `"PROFILE_UPDATED"`,
	}},
}

func readWhatsAppFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(whatsappFixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureNames(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir(whatsappFixtures)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no fixtures in " + whatsappFixtures)
	}
	return names
}

// compactHash is the test's own derivation of the content hash in keys.
func compactHash(t testing.TB, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// firstValue is entry[0].changes[0].value, decoded with encoding/json
// rather than with the parser under test.
func firstValue(t testing.TB, body []byte) []byte {
	t.Helper()
	var env struct {
		Entry []struct {
			Changes []struct {
				Value json.RawMessage `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Entry) == 0 || len(env.Entry[0].Changes) == 0 {
		t.Fatalf("no entry[0].changes[0].value: %v", err)
	}
	return env.Entry[0].Changes[0].Value
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseFixtures(t *testing.T) {
	names := fixtureNames(t)
	for _, name := range names {
		if _, ok := fixtureWants[name]; !ok {
			t.Errorf("testdata/whatsapp/%s has no row in fixtureWants: add its expected events", name)
		}
	}
	for name := range fixtureWants {
		if !slices.Contains(names, name) {
			t.Errorf("fixtureWants has a row for %s, which is not in testdata/whatsapp", name)
		}
	}

	for _, name := range names {
		wants, ok := fixtureWants[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			body := readWhatsAppFixture(t, name)
			events, err := Parse(body, parseReceived)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(events) != len(wants) {
				for _, ev := range events {
					t.Logf("got %s %s", ev.Type, ev.Raw)
				}
				t.Fatalf("got %d events, want %d", len(events), len(wants))
			}
			for i, w := range wants {
				checkEvent(t, fmt.Sprintf("event %d", i), body, events[i], w)
			}
		})
	}
}

func checkEvent(t *testing.T, where string, body []byte, ev sdk.Event, w wantEvent) {
	t.Helper()
	key := strings.ReplaceAll(w.key, valueHashed, compactHash(t, firstValue(t, body)))
	if want := EventID(key); ev.ID != want {
		t.Errorf("%s: id %q, want %q = EventID(%q)", where, ev.ID, want, key)
	}
	if ev.Type != w.typ {
		t.Errorf("%s: type %q, want %q", where, ev.Type, w.typ)
	}
	wantAt := parseReceived
	if w.occurred != 0 {
		wantAt = time.Unix(w.occurred, 0).UTC()
	}
	if !ev.OccurredAt.Equal(wantAt) || ev.OccurredAt.Location() != time.UTC {
		t.Errorf("%s: occurred_at %v, want %v", where, ev.OccurredAt, wantAt)
	}
	if !ev.ReceivedAt.Equal(parseReceived) {
		t.Errorf("%s: received_at %v, want %v", where, ev.ReceivedAt, parseReceived)
	}
	if !reflect.DeepEqual(ev.Business, w.biz) {
		t.Errorf("%s: business %s, want %s", where, asJSON(ev.Business), asJSON(w.biz))
	}
	if !reflect.DeepEqual(ev.Contact, w.contact) {
		t.Errorf("%s: contact %s, want %s", where, asJSON(ev.Contact), asJSON(w.contact))
	}
	if ev.Seq != 0 || ev.ConversationID != "" || ev.Route != nil {
		t.Errorf("%s: the parser set store fields: seq %d, conversation %q, route %v", where, ev.Seq, ev.ConversationID, ev.Route)
	}

	got := ev.Message
	if got != nil && got.Referral != nil {
		if w.referral == "" || !bytes.Contains(got.Referral, []byte(w.referral)) || !json.Valid(got.Referral) {
			t.Errorf("%s: referral %s, want one holding %s", where, got.Referral, w.referral)
		}
		if !bytes.Contains(body, got.Referral) {
			t.Errorf("%s: referral is not the bytes as received", where)
		}
		c := *got
		c.Referral = nil
		got = &c
	} else if w.referral != "" {
		t.Errorf("%s: no referral, want one holding %s", where, w.referral)
	}
	if !reflect.DeepEqual(got, w.msg) {
		t.Errorf("%s: message\n got %s\nwant %s", where, asJSON(got), asJSON(w.msg))
	}
	if !reflect.DeepEqual(ev.Status, w.status) {
		t.Errorf("%s: status %s, want %s", where, asJSON(ev.Status), asJSON(w.status))
	}
	if !reflect.DeepEqual(ev.Preference, w.pref) {
		t.Errorf("%s: preference %s, want %s", where, asJSON(ev.Preference), asJSON(w.pref))
	}

	if len(ev.Raw) == 0 || !json.Valid(ev.Raw) {
		t.Fatalf("%s: raw is not JSON: %q", where, ev.Raw)
	}
	if !bytes.Contains(body, ev.Raw) {
		t.Errorf("%s: raw is not a byte slice of the file:\n%s", where, ev.Raw)
	}
	if ev.Raw[0] != '{' || !bytes.Contains(ev.Raw, []byte(w.rawHas)) || bytes.Contains(ev.Raw, []byte(`"changes"`)) {
		t.Errorf("%s: raw is not the item holding %s:\n%s", where, w.rawHas, ev.Raw)
	}
	if _, err := json.Marshal(ev); err != nil {
		t.Errorf("%s: the store could not encode the event: %v", where, err)
	}
}

func TestParseEventID(t *testing.T) {
	golden := map[string]string{
		// Stored ids depend on these: a change here makes every retried
		// webhook look new.
		"m:wamid.PUB.text.0001":       "evt_zqr7wnn2q4qrqitcsgrz2bzzrq",
		"s:wamid.PUB.out.0002:failed": "evt_suh5aoyuzcqy45ibbbeu6wotdu",
	}
	for key, want := range golden {
		if got := EventID(key); got != want {
			t.Errorf("EventID(%q) = %q, want %q", key, got, want)
		}
	}
	format := regexp.MustCompile(`^evt_[a-z2-7]{26}$`)
	for _, key := range []string{"", "m:x", "f:1:messages:2:abc", strings.Repeat("é", 1000)} {
		got := EventID(key)
		sum := sha256.Sum256([]byte(key))
		want := "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
		if got != want || !format.MatchString(got) {
			t.Errorf("EventID(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestParseNotEnvelope(t *testing.T) {
	text := readWhatsAppFixture(t, "text.json")
	bodies := map[string]string{
		"empty":             "",
		"spaces":            " \n\t",
		"not JSON":          "hello",
		"truncated":         string(text[:len(text)/2]),
		"trailing garbage":  string(text) + "x",
		"two objects":       string(text) + string(text),
		"null":              "null",
		"string":            `"whatsapp_business_account"`,
		"number":            "42",
		"array":             `[{"object":"whatsapp_business_account","entry":[]}]`,
		"empty object":      "{}",
		"object missing":    `{"entry":[{"id":"1","changes":[]}]}`,
		"wrong object":      `{"object":"page","entry":[]}`,
		"object not text":   `{"object":["whatsapp_business_account"],"entry":[]}`,
		"object null":       `{"object":null,"entry":[]}`,
		"object other case": `{"object":"WhatsApp_Business_Account","entry":[]}`,
		// encoding/json refuses nesting past 10,000 levels; so does Parse.
		"too deep": `{"object":"whatsapp_business_account","entry":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "}",
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			events, err := Parse([]byte(body), parseReceived)
			if !errors.Is(err, ErrNotEnvelope) {
				t.Errorf("err = %v, want ErrNotEnvelope", err)
			}
			if len(events) != 0 {
				t.Errorf("got %d events with the error", len(events))
			}
		})
	}
}

func TestParseNoEntries(t *testing.T) {
	for _, body := range []string{
		`{"object":"whatsapp_business_account"}`,
		`{"object":"whatsapp_business_account","entry":[]}`,
		`{"object":"whatsapp_business_account","entry":null}`,
		` {"entry":[], "object":"whatsapp_business_account"} ` + "\n",
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}`,
		`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[]}}]}]}`,
	} {
		events, err := Parse([]byte(body), parseReceived)
		if err != nil || len(events) != 0 {
			t.Errorf("%s: got %d events, %v; want none and no error", body, len(events), err)
		}
	}
}

// envelope wraps one change's value the way Meta does.
func envelope(field, value string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"` + waba1 + `","changes":[{"value":` +
		value + `,"field":"` + field + `"}]}]}`)
}

const meta1 = `"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"}`

func eventTypes(events []sdk.Event) []sdk.EventType {
	var types []sdk.EventType
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	return types
}

// TestParseKeepsWhatItCannotModel feeds shapes WhatsApp does not send (or
// does not send yet): each must come out as events, with no error, and
// without costing the well-formed items next to it.
func TestParseKeepsWhatItCannotModel(t *testing.T) {
	text := `{"from":"5511987650001","id":"wamid.PUB.tol.0001","timestamp":"1764000000","type":"text","text":{"body":"oi"}}`
	sent := `{"id":"wamid.PUB.out.0100","status":"sent","timestamp":"1764000001","recipient_id":"5511987650001"}`
	tests := []struct {
		name  string
		body  []byte
		types []sdk.EventType
		check func(t *testing.T, body []byte, events []sdk.Event)
	}{
		{
			name:  "messages is a string",
			body:  envelope("messages", `{`+meta1+`,"messages":"oops"}`),
			types: []sdk.EventType{"whatsapp.messages"},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				value := firstValue(t, body)
				if want := EventID("f:" + waba1 + ":messages::" + compactHash(t, value)); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
				if !bytes.Equal(events[0].Raw, value) || !reflect.DeepEqual(events[0].Business, biz1) {
					t.Errorf("raw %s business %v", events[0].Raw, events[0].Business)
				}
			},
		},
		{
			name:  "messages is an object next to good statuses",
			body:  envelope("messages", `{`+meta1+`,"messages":{"id":"x"},"statuses":[`+sent+`]}`),
			types: []sdk.EventType{sdk.TypeStatusSent, "whatsapp.messages"},
		},
		{
			name:  "items that are not objects",
			body:  envelope("messages", `{`+meta1+`,"messages":[1,null,"x",[],`+text+`,true]}`),
			types: []sdk.EventType{"whatsapp.messages", "whatsapp.messages", "whatsapp.messages", "whatsapp.messages", sdk.TypeMessageReceived, "whatsapp.messages"},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if events[4].Message == nil || events[4].Message.Text != "oi" {
					t.Errorf("the good message between bad items: %+v", events[4].Message)
				}
				if want := EventID("f:" + waba1 + ":messages::" + compactHash(t, []byte("1"))); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
			},
		},
		{
			name:  "message without id",
			body:  envelope("messages", `{`+meta1+`,"messages":[{"from":"5511987650001", "timestamp":"1764000000","type":"text","text":{"body":"sem id"}}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				item := []byte(`{"from":"5511987650001", "timestamp":"1764000000","type":"text","text":{"body":"sem id"}}`)
				if want := EventID("m#" + compactHash(t, item)); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
				if events[0].Message.Text != "sem id" || events[0].Contact.WAID != "5511987650001" {
					t.Errorf("message %+v contact %+v", events[0].Message, events[0].Contact)
				}
			},
		},
		{
			name:  "status without status",
			body:  envelope("messages", `{`+meta1+`,"statuses":[{"id":"wamid.PUB.out.0101","timestamp":"1764000001"},`+sent+`]}`),
			types: []sdk.EventType{"whatsapp.statuses", sdk.TypeStatusSent},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				item := []byte(`{"id":"wamid.PUB.out.0101","timestamp":"1764000001"}`)
				if want := EventID("s#" + compactHash(t, item)); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
			},
		},
		{
			name:  "status value wahub does not know",
			body:  envelope("messages", `{`+meta1+`,"statuses":[{"id":"wamid.PUB.out.0102","status":"deleted","timestamp":"1764000001","recipient_id":"5511987650001"}]}`),
			types: []sdk.EventType{"whatsapp.statuses"},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if want := EventID("s:wamid.PUB.out.0102:deleted"); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
			},
		},
		{
			name: "fields of the wrong type",
			body: envelope("messages", `{`+meta1+`,"contacts":[{"profile":"Ana","wa_id":5511987650001}],"messages":[`+
				`{"from":5511987650001,"id":"wamid.PUB.tol.0002","timestamp":true,"type":"text","text":{"body":["x"]},"context":"yes","errors":{"code":"1"}},`+
				`{"from":"5511987650001","id":"wamid.PUB.tol.0003","timestamp":"1764000000","type":"location","location":{"latitude":"north","longitude":1e400,"name":"Casa"}}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived, sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if events[0].ID != EventID("m:wamid.PUB.tol.0002") || !events[0].OccurredAt.Equal(parseReceived) || events[0].Contact != nil {
					t.Errorf("event 0: %s", asJSON(events[0]))
				}
				if l := events[1].Message.Location; l == nil || l.Name != "Casa" || events[1].Contact.WAID != "5511987650001" {
					t.Errorf("event 1: %s", asJSON(events[1]))
				}
			},
		},
		{
			name:  "contacts that are not a list",
			body:  envelope("messages", `{`+meta1+`,"contacts":{"wa_id":"5511987650001"},"messages":[`+text+`]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
		},
		{
			name:  "contact without profile",
			body:  envelope("messages", `{`+meta1+`,"contacts":[{"wa_id":"5511987650001"}],"messages":[`+text+`]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if !reflect.DeepEqual(events[0].Contact, &sdk.Contact{WAID: "5511987650001"}) {
					t.Errorf("contact %+v", events[0].Contact)
				}
			},
		},
		{
			name: "contacts matched per message in a batch",
			body: envelope("messages", `{`+meta1+`,"contacts":[{"profile":{"name":"Bruno Lima"},"wa_id":"5521998760002"},{"profile":{"name":"Ana Souza"},"wa_id":"5511987650001"}],"messages":[`+
				text+`,{"from":"5521998760002","id":"wamid.PUB.tol.0004","timestamp":"1764000002","type":"text","text":{"body":"e aí"}},`+
				`{"from":"14155550003","id":"wamid.PUB.tol.0005","timestamp":"1764000003","type":"text","text":{"body":"hi"}}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived, sdk.TypeMessageReceived, sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				for i, want := range []*sdk.Contact{ana, bruno, {WAID: "14155550003"}} {
					if !reflect.DeepEqual(events[i].Contact, want) {
						t.Errorf("event %d: contact %s, want %s", i, asJSON(events[i].Contact), asJSON(want))
					}
				}
			},
		},
		{
			name:  "lone contact with nothing to match on",
			body:  envelope("messages", `{`+meta1+`,"contacts":[{"profile":{"name":"Ana Souza"}}],"messages":[`+text+`]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if !reflect.DeepEqual(events[0].Contact, ana) {
					t.Errorf("contact %s", asJSON(events[0].Contact))
				}
			},
		},
		{
			name:  "lone contact of someone else",
			body:  envelope("messages", `{`+meta1+`,"contacts":[{"profile":{"name":"Bruno Lima"},"wa_id":"5521998760002"}],"messages":[`+text+`]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if !reflect.DeepEqual(events[0].Contact, &sdk.Contact{WAID: "5511987650001"}) {
					t.Errorf("contact %s", asJSON(events[0].Contact))
				}
			},
		},
		{
			name:  "lone contact whose wa_id is written differently",
			body:  envelope("messages", `{`+meta1+`,"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":"551187650001","user_id":"BR.ana1"}],"messages":[`+text+`]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				want := &sdk.Contact{WAID: "5511987650001", UserID: "BR.ana1", Name: "Ana Souza"}
				if !reflect.DeepEqual(events[0].Contact, want) {
					t.Errorf("contact %s, want %s", asJSON(events[0].Contact), asJSON(want))
				}
			},
		},
		{
			name:  "lone contact with a formatted wa_id",
			body:  envelope("messages", `{`+meta1+`,"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":"+55 11 98765-0001"}],"messages":[`+text+`]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if c := events[0].Contact; c == nil || c.Name != "Ana Souza" || c.WAID != "5511987650001" {
					t.Errorf("contact %s", asJSON(c))
				}
			},
		},
		{
			name:  "lone contact with another user_id",
			body:  envelope("messages", `{`+meta1+`,"contacts":[{"profile":{"name":"Bruno Lima"},"wa_id":"5511987650001","user_id":"BR.bruno"}],"messages":[{"from":"5511987650001","from_user_id":"BR.ana1","id":"wamid.PUB.tol.0100","timestamp":"1764000000","type":"text","text":{"body":"oi"}}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				// The wa_id matches first: the same number, whatever its user id.
				if c := events[0].Contact; c == nil || c.UserID != "BR.ana1" {
					t.Errorf("contact %s", asJSON(c))
				}
			},
		},
		{
			name: "future message type and interactive subtype",
			body: envelope("messages", `{`+meta1+`,"messages":[{"from":"5511987650001","id":"wamid.PUB.tol.0006","timestamp":"1764000000","type":"poll_vote","poll_vote":{"option":"A"}},`+
				`{"from":"5511987650001","id":"wamid.PUB.tol.0007","timestamp":"1764000000","type":"interactive","interactive":{"type":"call_permission_reply","call_permission_reply":{"response":"accept"}}}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived, sdk.TypeMessageReceived},
		},
		{
			name:  "value shape wahub does not know",
			body:  envelope("messages", `{`+meta1+`,"calls":[{"id":"wacid.1","event":"connect"}]}`),
			types: []sdk.EventType{"whatsapp.messages"},
		},
		{
			name:  "errors next to messages",
			body:  envelope("messages", `{`+meta1+`,"messages":[`+text+`],"errors":[{"code":131000,"title":"Something went wrong"}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived, "whatsapp.errors"},
		},
		{
			name:  "user preference wahub does not know",
			body:  envelope("user_preferences", `{`+meta1+`,"user_preferences":[{"wa_id":"5511987650001","category":"marketing_messages","value":"snooze","timestamp":1764000000}]}`),
			types: []sdk.EventType{"whatsapp.user_preferences"},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if want := EventID("p:" + phoneID1 + ":5511987650001:marketing_messages:snooze:1764000000"); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
			},
		},
		{
			name:  "user preference by BSUID only",
			body:  envelope("user_preferences", `{`+meta1+`,"user_preferences":[{"user_id":"`+dana+`","category":"marketing_messages","value":"stop","timestamp":1764000000}]}`),
			types: []sdk.EventType{sdk.TypeOptinRevoked},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if want := EventID("p:" + phoneID1 + ":" + dana + ":marketing_messages:stop:1764000000"); events[0].ID != want {
					t.Errorf("id %s, want %s", events[0].ID, want)
				}
				if !reflect.DeepEqual(events[0].Contact, &sdk.Contact{UserID: dana}) {
					t.Errorf("contact %s", asJSON(events[0].Contact))
				}
			},
		},
		{
			name:  "value null",
			body:  envelope("messages", `null`),
			types: []sdk.EventType{"whatsapp.messages"},
		},
		{
			name:  "value a number",
			body:  envelope("account_update", `7`),
			types: []sdk.EventType{"whatsapp.account_update"},
		},
		{
			name:  "change without field",
			body:  []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"a":1}}, 5]}]}`),
			types: []sdk.EventType{"whatsapp.unknown", "whatsapp.unknown"},
		},
		{
			name:  "entry without changes",
			body:  []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","time":1764000000,"messaging":[{"x":1}]}]}`),
			types: []sdk.EventType{"whatsapp.unknown"},
			check: func(t *testing.T, body []byte, events []sdk.Event) {
				if !events[0].OccurredAt.Equal(time.Unix(1764000000, 0)) || events[0].Business.WABAID != "1" {
					t.Errorf("event %s", asJSON(events[0]))
				}
			},
		},
		{
			name:  "entry not a list",
			body:  []byte(`{"object":"whatsapp_business_account","entry":{"id":"1","changes":[]}}`),
			types: []sdk.EventType{"whatsapp.unknown"},
		},
		{
			name:  "entry items that are not objects",
			body:  []byte(`{"object":"whatsapp_business_account","entry":[5,` + string(envelope("messages", `{`+meta1+`,"messages":[`+text+`]}`)[len(`{"object":"whatsapp_business_account","entry":[`):])),
			types: []sdk.EventType{"whatsapp.unknown", sdk.TypeMessageReceived},
		},
		{
			name:  "escaped keys",
			body:  []byte(`{"\u006fbject":"whatsapp_business_\u0061ccount","entry":[{"id":"1","changes":[{"fi\u0065ld":"messages","value":{"messages":[` + text + `]}}]}]}`),
			types: []sdk.EventType{sdk.TypeMessageReceived},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := Parse(tt.body, parseReceived)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := eventTypes(events); !slices.Equal(got, tt.types) {
				t.Fatalf("types %q, want %q", got, tt.types)
			}
			for i, ev := range events {
				if ev.ID == "" || !json.Valid(ev.Raw) || !bytes.Contains(tt.body, ev.Raw) || ev.ReceivedAt.IsZero() {
					t.Errorf("event %d: id %q raw %s", i, ev.ID, ev.Raw)
				}
				if _, err := json.Marshal(ev); err != nil {
					t.Errorf("event %d: %v", i, err)
				}
			}
			if tt.check != nil {
				tt.check(t, tt.body, events)
			}
		})
	}
}

func TestParseTimes(t *testing.T) {
	msg := func(ts string) []byte {
		return envelope("messages", `{`+meta1+`,"messages":[{"from":"5511987650001","id":"wamid.PUB.time.0001","timestamp":`+ts+`,"type":"text","text":{"body":"x"}}]}`)
	}
	at := time.Unix(1764000000, 0).UTC()
	tests := []struct {
		body []byte
		want time.Time
	}{
		{msg(`"1764000000"`), at},
		{msg(`1764000000`), at},
		{msg(`" 1764000000 "`), at},
		{msg(`"1764000000.25"`), at.Add(250 * time.Millisecond)},
		{msg(`"soon"`), parseReceived},
		{msg(`""`), parseReceived},
		{msg(`null`), parseReceived},
		{msg(`{}`), parseReceived},
		{msg(`"0"`), parseReceived},
		{msg(`"-5"`), parseReceived},
		{msg(`"99999999999999"`), parseReceived}, // past year 9999: would not encode
		{msg(`1e300`), parseReceived},
		{msg(`"NaN"`), parseReceived},
		{msg(`"Inf"`), parseReceived},
		{[]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","time":"1764000000","changes":[{"field":"account_update","value":{"event":"X"}}]}]}`), at},
		{[]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","time":1764000000,"changes":[{"field":"account_update","value":{"event":"X"}}]}]}`), at},
		{[]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"account_update","value":{"event":"X"}}]}]}`), parseReceived},
		{envelope("user_preferences", `{`+meta1+`,"user_preferences":[{"wa_id":"5511987650001","value":"stop","timestamp":"1764000000"}]}`), at},
	}
	for _, tt := range tests {
		events, err := Parse(tt.body, parseReceived)
		if err != nil || len(events) != 1 {
			t.Fatalf("%s: %d events, %v", tt.body, len(events), err)
		}
		if got := events[0].OccurredAt; !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("%s: occurred_at %v, want %v", tt.body, got, tt.want)
		}
	}

	local := parseReceived.In(time.FixedZone("BRT", -3*3600))
	events, _ := Parse(readWhatsAppFixture(t, "value_errors.json"), local)
	if ev := events[0]; ev.ReceivedAt.Location() != time.UTC || !ev.ReceivedAt.Equal(local) || ev.OccurredAt.Location() != time.UTC {
		t.Errorf("received_at %v occurred_at %v, want both in UTC", ev.ReceivedAt, ev.OccurredAt)
	}
}

// batchBody is one POST of n items the way Meta batches them: messages and
// statuses spread over several entries and changes.
func batchBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"object":"whatsapp_business_account","entry":[`)
	const perChange = 100
	for i := 0; i < n; i += perChange {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%s","changes":[{"value":{%s,"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":"5511987650001"}],"messages":[`, waba1, meta1)
		list, field := "messages", "messages"
		for j := i; j < min(i+perChange, n); j++ {
			if j == i+perChange/2 {
				b.WriteString(`]},"field":"messages"},{"value":{` + meta1 + `,"statuses":[`)
				list = "statuses"
			} else if j > i {
				b.WriteByte(',')
			}
			if list == "messages" {
				fmt.Fprintf(&b, `{"from":"5511987650001","id":"wamid.PUB.gen.%04d","timestamp":"%d","type":"text","text":{"body":"mensagem %d"}}`, j, 1764000000+j, j)
			} else {
				fmt.Fprintf(&b, `{"id":"wamid.PUB.gen.%04d","status":"delivered","timestamp":"%d","recipient_id":"5511987650001"}`, j, 1764000000+j)
			}
		}
		b.WriteString(`]},"field":"` + field + `"}]}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func TestParseBatch1000(t *testing.T) {
	body := batchBody(1000)
	start := time.Now()
	events, err := Parse(body, parseReceived)
	t.Logf("%d bytes, %d events in %v", len(body), len(events), time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1000 {
		t.Fatalf("got %d events, want 1000", len(events))
	}
	seen := map[string]bool{}
	for i, ev := range events {
		if seen[ev.ID] {
			t.Fatalf("event %d: duplicate id %s", i, ev.ID)
		}
		seen[ev.ID] = true
		wamid := fmt.Sprintf("wamid.PUB.gen.%04d", i)
		var gotWamid string
		switch {
		case ev.Message != nil:
			gotWamid = ev.Message.ID
		case ev.Status != nil:
			gotWamid = ev.Status.MessageID
		}
		if gotWamid != wamid || !bytes.Contains(ev.Raw, []byte(`"`+wamid+`"`)) {
			t.Fatalf("event %d is %s (%s), want %s: not in body order", i, gotWamid, ev.Type, wamid)
		}
		if !ev.OccurredAt.Equal(time.Unix(1764000000+int64(i), 0)) {
			t.Fatalf("event %d: occurred_at %v", i, ev.OccurredAt)
		}
	}

	one := envelope("messages", `{`+meta1+`,"messages":[`+strings.Repeat(`{"type":"text","text":{"body":"x"}},`, 999)+`{"type":"text","text":{"body":"x"}}]}`)
	events, err = Parse(one, parseReceived)
	if err != nil || len(events) != 1000 {
		t.Fatalf("1,000 items in one list: %d events, %v", len(events), err)
	}
}

// TestParseStableIDs: Meta retries and duplicates; the same item must
// always get the same id, and different items different ones.
func TestParseStableIDs(t *testing.T) {
	ids := func(body []byte) []string {
		t.Helper()
		events, err := Parse(body, parseReceived)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, ev := range events {
			out = append(out, ev.ID)
		}
		return out
	}

	t.Run("re-indented", func(t *testing.T) {
		for _, name := range fixtureNames(t) {
			body := readWhatsAppFixture(t, name)
			var compact, tabs bytes.Buffer
			if err := json.Compact(&compact, body); err != nil {
				t.Fatal(err)
			}
			if err := json.Indent(&tabs, body, "", "\t"); err != nil {
				t.Fatal(err)
			}
			want := ids(body)
			if got := ids(compact.Bytes()); !slices.Equal(got, want) {
				t.Errorf("%s compacted: ids %v, want %v", name, got, want)
			}
			if got := ids(tabs.Bytes()); !slices.Equal(got, want) {
				t.Errorf("%s re-indented: ids %v, want %v", name, got, want)
			}
		}
	})

	t.Run("same wamid in two POSTs", func(t *testing.T) {
		first := ids(readWhatsAppFixture(t, "text.json"))
		// The retry comes batched with something else, under other
		// metadata formatting and a later receive time.
		retry := envelope("messages", `{"metadata":{"phone_number_id":"106540352242922","display_phone_number":"15550783881"},"messaging_product":"whatsapp",`+
			`"messages":[{"from":"5511987650001","id":"wamid.PUB.text.0002","timestamp":"1764000001","type":"text","text":{"body":"outra"}},`+
			`{"from":"5511987650001","id":"wamid.PUB.text.0001","timestamp":"1764000000","type":"text","text":{"body":"Olá, preciso de ajuda com meu pedido"}}]}`)
		events, err := Parse(retry, parseReceived.Add(time.Hour))
		if err != nil || len(events) != 2 {
			t.Fatalf("%d events, %v", len(events), err)
		}
		if events[1].ID != first[0] || events[0].ID == first[0] {
			t.Errorf("ids %s %s, want the second to be %s", events[0].ID, events[1].ID, first[0])
		}
	})

	t.Run("sent, delivered and read of one wamid", func(t *testing.T) {
		var all []string
		for _, name := range []string{"status_sent.json", "status_delivered.json", "status_read.json"} {
			all = append(all, ids(readWhatsAppFixture(t, name))...)
		}
		all = append(all, EventID("m:"+outToAna))
		seen := map[string]bool{}
		for _, id := range all {
			if seen[id] {
				t.Fatalf("ids %v are not distinct", all)
			}
			seen[id] = true
		}
	})

	t.Run("same content in two entries", func(t *testing.T) {
		// A field event's id includes the entry, so two accounts' identical
		// updates stay two events.
		a := ids([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","time":5,"changes":[{"field":"account_update","value":{"event":"X"}}]},{"id":"2","time":5,"changes":[{"field":"account_update","value":{"event":"X"}}]}]}`))
		if len(a) != 2 || a[0] == a[1] {
			t.Errorf("ids %v", a)
		}
	})
}

func TestParseRawIsACopy(t *testing.T) {
	body := readWhatsAppFixture(t, "text.json")
	events, err := Parse(body, parseReceived)
	if err != nil {
		t.Fatal(err)
	}
	before := string(events[0].Raw)
	for i := range body {
		body[i] = ' '
	}
	if string(events[0].Raw) != before {
		t.Error("Raw aliases the body")
	}
}

func BenchmarkParse(b *testing.B) {
	body := readWhatsAppFixture(b, "text.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body, parseReceived); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseBatch1000(b *testing.B) {
	body := batchBody(1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body, parseReceived); err != nil {
			b.Fatal(err)
		}
	}
}
