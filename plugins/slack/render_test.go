package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wahub/wahub/sdk"
)

func TestRenderMessages(t *testing.T) {
	msg := func(m sdk.Message) sdk.Event {
		ev := inbound("x", ana, "support", "")
		ev.Message = &m
		return ev
	}
	click := msg(sdk.Message{Type: "interactive", Text: "Falar com vendas", Button: &sdk.Button{ID: "talk_to_sales", Title: "Falar com vendas", Description: "Horário comercial"}})
	click.Type = sdk.TypeButtonClicked
	cases := []struct {
		name      string
		ev        sdk.Event
		blocks    []string // substrings of the blocks' texts
		fallback  []string // substrings of the plain text
		notBlocks []string
	}{
		{"text", msg(sdk.Message{Type: "text", Text: "Olá *mundo*"}), []string{"Olá *mundo*"}, []string{"Olá *mundo*"}, nil},
		{"text is escaped", msg(sdk.Message{Type: "text", Text: "<!channel> a & b <https://x|y>"}),
			[]string{"&lt;!channel&gt; a &amp; b &lt;https://x|y&gt;"}, []string{"<!channel> a & b"}, []string{"<!channel>"}},
		{"image with caption", msg(sdk.Message{Type: "image", Text: "Foto do produto", Media: &sdk.Media{ID: "1003383421387256", MimeType: "image/jpeg", Caption: "Foto do produto"}}),
			[]string{":frame_with_picture: *Image* (image/jpeg)", "Foto do produto"}, []string{"[Image] Foto do produto"}, []string{"could not be retrieved", "1003383421387256"}},
		{"image that could not be retrieved", msg(sdk.Message{Type: "image", Media: &sdk.Media{ID: "5", MimeType: "image/jpeg", State: sdk.MediaUnavailable, Reason: "gone at Meta (131052)"}}),
			[]string{":frame_with_picture: *Image*", ":warning: _The image could not be retrieved: gone at Meta (131052)_"}, []string{"[Image] (the image could not be retrieved)"}, nil},
		{"document", msg(sdk.Message{Type: "document", Media: &sdk.Media{ID: "9", MimeType: "application/pdf", Filename: "fatura.pdf"}}),
			[]string{":page_facing_up: *Document* (`fatura.pdf`, application/pdf)"}, []string{"[Document] fatura.pdf"}, nil},
		{"voice", msg(sdk.Message{Type: "audio", Media: &sdk.Media{ID: "8", MimeType: "audio/ogg; codecs=opus", Voice: true}}),
			[]string{":microphone: *Voice message*"}, []string{"[Voice message]"}, nil},
		{"video", msg(sdk.Message{Type: "video", Media: &sdk.Media{ID: "7"}}), []string{":movie_camera: *Video*"}, nil, nil},
		{"sticker", msg(sdk.Message{Type: "sticker", Media: &sdk.Media{ID: "6", Animated: true}}), []string{"Animated sticker"}, nil, nil},
		{"location", msg(sdk.Message{Type: "location", Location: &sdk.Location{Latitude: -23.5505, Longitude: -46.6333, Name: "Loja Centro", Address: "Praça da Sé, São Paulo"}}),
			[]string{":round_pushpin: *Location* Loja Centro", "Praça da Sé, São Paulo", "<https://www.google.com/maps?q=-23.5505,-46.6333|-23.5505, -46.6333>"},
			[]string{"[Location] Loja Centro, Praça da Sé, São Paulo (-23.5505, -46.6333)"}, nil},
		{"contacts", msg(sdk.Message{Type: "contacts", Contacts: []sdk.SharedContact{{Name: "João Silva", Phones: []string{"+55 11 91234-5678"}, Emails: []string{"joao@acme.example"}, Org: "Acme"}}}),
			[]string{":bust_in_silhouette: *Contact card*", "*João Silva* (Acme): +55 11 91234-5678 · joao@acme.example"}, []string{"[Contact card] João Silva +55 11 91234-5678"}, nil},
		{"reaction", msg(sdk.Message{Type: "reaction", Reaction: &sdk.Reaction{MessageID: "wamid.1", Emoji: "👍"}}), []string{"Reacted 👍 to a message"}, []string{"[Reacted 👍]"}, []string{"in reply to"}},
		{"reaction removed", msg(sdk.Message{Type: "reaction", Reaction: &sdk.Reaction{MessageID: "wamid.1"}}), []string{"Removed a reaction"}, nil, nil},
		{"button", click, []string{":point_right: Tapped *Falar com vendas* — Horário comercial", "button id `talk_to_sales`"}, []string{"[Tapped] Falar com vendas"}, nil},
		{"order", msg(sdk.Message{Type: "order", Text: "Quero estes"}), []string{":shopping_trolley: *Order*", "Quero estes"}, []string{"[Order] Quero estes"}, nil},
		{"unsupported", msg(sdk.Message{Type: "unsupported", Unsupported: "poll_creation", Errors: []sdk.Error{{Code: 131051, Title: "Message type unknown"}}}),
			[]string{"WhatsApp could not show this message (poll_creation)", "Message type unknown (code 131051)"}, []string{"[Unsupported message]"}, nil},
		{"form reply", msg(sdk.Message{Type: "interactive", Text: "Sent"}), []string{":memo: *Form reply*"}, nil, nil},
		{"unknown type", msg(sdk.Message{Type: "request_welcome"}), []string{"A *request_welcome* message"}, nil, nil},
		{"reply, forwarded, from an ad", msg(sdk.Message{Type: "text", Text: "e aí?", Context: &sdk.Context{ID: "wamid.0", Forwarded: true}, Referral: json.RawMessage(`{"source_type":"ad"}`)}),
			[]string{"in reply to an earlier message", "forwarded", "Click-to-WhatsApp ad"}, nil, nil},
		{"empty text", msg(sdk.Message{Type: "text"}), []string{"(empty message)"}, nil, nil},
	}
	e := newEnv(t, nil)
	s := e.c.settings()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := renderMessage(&tc.ev, true)
			raw, _ := json.Marshal(p.blocks)
			text := blocksText(t, slacktestMessage(raw))
			for _, w := range tc.blocks {
				if !strings.Contains(text, w) {
					t.Errorf("blocks lack %q:\n%s", w, text)
				}
			}
			for _, w := range tc.notBlocks {
				if strings.Contains(text, w) {
					t.Errorf("blocks contain %q:\n%s", w, text)
				}
			}
			for _, w := range tc.fallback {
				if !strings.Contains(p.text, w) {
					t.Errorf("fallback %q lacks %q", p.text, w)
				}
			}
			// Slack (the fake checks its rules) takes it, as a root and as
			// a reply.
			r := &run{c: e.c, s: s, kv: e.host.KV()}
			for _, p := range []post{s.rootPost(&tc.ev), s.replyPost(&tc.ev)} {
				if _, _, err := r.post(t.Context(), defaultChan, "channel", "", p); err != nil {
					t.Errorf("Slack refused it: %v", err)
				}
			}
		})
	}
}

func TestRootIsLinkFree(t *testing.T) {
	s := &settings{showName: true, showNumber: "full"}
	ev := inbound("x", ana, "support", "")
	ev.Message = &sdk.Message{Type: "location", Location: &sdk.Location{Latitude: 1, Longitude: 2}}
	raw, _ := json.Marshal(s.rootPost(&ev).blocks)
	if strings.Contains(string(raw), "https://") {
		t.Errorf("root has a link: %s", raw)
	}
}

func TestLongTextSplit(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("palavra ", 512) + strings.Repeat("&", 100) // 4196 chars, escapes near a cut
	res := e.deliver(inbound("a1", ana, "support", long))
	e.wantOutcome(res, sdk.Delivered, "a1")
	m := e.fake.Messages()[0]
	var blocks []struct {
		Type string
		Text struct{ Text string }
	}
	_ = json.Unmarshal(m.Blocks, &blocks)
	var joined string
	sections := 0
	for _, b := range blocks[2:] { // after the header and its context line
		if b.Type == "section" {
			sections++
			joined += b.Text.Text
			if n := utf8.RuneCountInString(b.Text.Text); n > sectionMax {
				t.Errorf("section of %d characters", n)
			}
		}
	}
	if sections != 2 || joined != esc(long) {
		t.Errorf("%d sections; text kept whole: %v", sections, joined == esc(long))
	}
	if utf8.RuneCountInString(m.Text) > fallbackMax+10 {
		t.Errorf("fallback of %d characters", utf8.RuneCountInString(m.Text))
	}
}

func TestSplitNeverCutsAnEscape(t *testing.T) {
	for n := 8; n < 40; n++ {
		s := esc(strings.Repeat("a<&>", 30))
		for _, part := range split(s, n) {
			if i := strings.LastIndexByte(part, '&'); i >= 0 && !strings.Contains(part[i:], ";") {
				t.Fatalf("n=%d: piece %q ends inside an escape", n, part)
			}
		}
		if strings.Join(split(s, n), "") != s {
			t.Fatalf("n=%d: pieces do not add up", n)
		}
	}
}

func TestCustomerDisplay(t *testing.T) {
	bsuid := &sdk.Contact{UserID: "BR.1234567890", Name: "Carla"}
	f := false
	cases := []struct {
		name   string
		show   *bool
		number string
		c      *sdk.Contact
		want   string
	}{
		{"full", nil, "full", ana, "Ana Souza (+5511987650001)"},
		{"last4", nil, "last4", ana, "Ana Souza (•••0001)"},
		{"no number", nil, "none", ana, "Ana Souza"},
		{"no name", &f, "full", ana, "+5511987650001"},
		{"nothing", &f, "none", ana, "The customer"},
		{"user id only", nil, "full", bsuid, "Carla (WhatsApp user BR.1234567890)"},
		{"user id, last4", nil, "last4", bsuid, "Carla"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &settings{showName: tc.show == nil || *tc.show, showNumber: tc.number}
			if got := s.customerLabel(tc.c); got != tc.want {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
	// Through the configuration, the root shows what was chosen.
	e := newEnv(t, map[string]any{"show_number": "last4", "show_name": false})
	e.deliver(inbound("a1", ana, "support", "oi"))
	m := e.fake.Messages()[0]
	if txt := blocksText(t, m); strings.Contains(txt, "Ana") || strings.Contains(txt, "987650001") || !strings.Contains(txt, "•••0001") {
		t.Errorf("root shows %q", txt)
	}
}

func TestEventNotes(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(inbound("a1", ana, "support", "oi"))
	changed := inbound("c1", ana, "support", "")
	changed.Type = sdk.TypeContactChanged
	changed.Message = &sdk.Message{Type: "system", System: &sdk.System{Type: "user_changed_number", Body: "Ana changed from 5511987650001 to 5511900000009", NewWAID: "5511900000009"}}
	optout := inbound("o1", ana, "support", "")
	optout.Type, optout.Message = sdk.TypeOptinRevoked, nil
	optout.Preference = &sdk.Preference{Category: "marketing_messages", Value: "stop"}
	optin := optout
	optin.ID, optin.Type = "o2", sdk.TypeOptinGranted
	res := e.deliver(changed, optout, optin)
	e.wantOutcome(res, sdk.Delivered, "c1", "o1", "o2")
	root := e.fake.Roots(defaultChan)[0]
	var texts []string
	for _, m := range e.fake.Replies(defaultChan, root.TS) {
		texts = append(texts, m.Text)
	}
	want := []string{"Ana changed from 5511987650001 to 5511900000009", "Ana Souza (+5511987650001) opted out of marketing messages.", "Ana Souza (+5511987650001) opted in to marketing messages again."}
	if strings.Join(texts, "|") != strings.Join(want, "|") {
		t.Errorf("notes %q\nwant %q", texts, want)
	}
}
