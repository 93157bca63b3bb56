package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Message is one outbound message. Set the recipient (To or UserID) and
// exactly one content: Text, Template, Interactive, Reaction or Media.
type Message struct {
	// To is the recipient's phone number with "+" and country code. Without
	// "+" Meta prepends the business number's own country code, which is
	// rarely what a caller means. A BSUID given here is sent as UserID.
	To string
	// UserID is the recipient's business-scoped user id (BSUID, e.g.
	// "US.13491208655302741918"), for customers WhatsApp identifies without
	// a phone number. Used only when To is empty.
	UserID string

	Text       string
	PreviewURL bool // render a link preview for the first URL in Text

	Template *Template
	// Interactive is the whole "interactive" object (buttons, list, ...),
	// passed through unchanged.
	Interactive json.RawMessage
	Reaction    *Reaction
	Media       *Media

	// ReplyTo quotes an earlier message (its wamid) in a reply bubble. Not
	// allowed with reactions; template replies show no bubble.
	ReplyTo string
	// CallbackData is echoed back by Meta in this message's status webhooks
	// (biz_opaque_callback_data), so a status can be matched even before
	// the wamid from the send response is stored.
	CallbackData string
}

// Template names an approved message template.
type Template struct {
	Name     string
	Language string // e.g. "en_US"
	// Components are the template's component objects (header, body,
	// button parameters), passed through unchanged.
	Components []json.RawMessage
}

// Media is an image, audio, video, document or sticker message: a file
// uploaded with Upload (ID), or a public link Meta fetches itself.
type Media struct {
	Type     string // image, audio, video, document or sticker
	ID       string
	Link     string
	Caption  string // image, video and document only
	Filename string // document only
}

// Reaction puts an emoji on an earlier message; an empty Emoji removes it.
type Reaction struct {
	MessageID string
	Emoji     string
}

// Kind is the Graph "type" of the message: text, template, interactive or
// reaction, or "" when no content is set.
func (m Message) Kind() string {
	switch {
	case m.Template != nil:
		return "template"
	case m.Interactive != nil:
		return "interactive"
	case m.Reaction != nil:
		return "reaction"
	case m.Media != nil:
		return m.Media.Type
	case m.Text != "":
		return "text"
	}
	return ""
}

// IsBSUID reports whether s has the shape of a business-scoped user id:
// a country code, a dot, then up to 128 letters and digits. Phone numbers
// never contain a dot or letters.
func IsBSUID(s string) bool {
	cc, rest, ok := strings.Cut(s, ".")
	if !ok || len(cc) < 2 || len(cc) > 3 || rest == "" || len(rest) > 128 {
		return false
	}
	for _, c := range cc {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	for _, c := range rest {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

type wireMessage struct {
	MessagingProduct string          `json:"messaging_product"`
	RecipientType    string          `json:"recipient_type"`
	To               string          `json:"to,omitempty"`
	Recipient        string          `json:"recipient,omitempty"`
	CallbackData     string          `json:"biz_opaque_callback_data,omitempty"`
	Context          *wireContext    `json:"context,omitempty"`
	Type             string          `json:"type"`
	Text             *wireText       `json:"text,omitempty"`
	Template         *wireTemplate   `json:"template,omitempty"`
	Interactive      json.RawMessage `json:"interactive,omitempty"`
	Reaction         *wireReaction   `json:"reaction,omitempty"`
	Image            *wireMedia      `json:"image,omitempty"`
	Audio            *wireMedia      `json:"audio,omitempty"`
	Video            *wireMedia      `json:"video,omitempty"`
	Document         *wireMedia      `json:"document,omitempty"`
	Sticker          *wireMedia      `json:"sticker,omitempty"`
}

type wireMedia struct {
	ID       string `json:"id,omitempty"`
	Link     string `json:"link,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

type wireContext struct {
	MessageID string `json:"message_id"`
}

type wireText struct {
	PreviewURL bool   `json:"preview_url,omitempty"`
	Body       string `json:"body"`
}

type wireTemplate struct {
	Name       string            `json:"name"`
	Language   wireLanguage      `json:"language"`
	Components []json.RawMessage `json:"components,omitempty"`
}

type wireLanguage struct {
	Code string `json:"code"`
}

type wireReaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"` // "" removes the reaction, so always sent
}

// body builds the request JSON, refusing what Graph would refuse for
// reasons visible here; it cannot know about windows, limits or templates.
func (m Message) body() ([]byte, error) {
	w := wireMessage{MessagingProduct: "whatsapp", RecipientType: "individual"}
	switch {
	case m.To != "" && IsBSUID(m.To):
		w.Recipient = m.To
	case m.To != "":
		w.To = m.To
	case m.UserID != "":
		w.Recipient = m.UserID
	default:
		return nil, &ValidationError{"no recipient (To or UserID)"}
	}
	kinds := 0
	for _, set := range []bool{m.Template != nil, m.Interactive != nil, m.Reaction != nil, m.Media != nil, m.Text != ""} {
		if set {
			kinds++
		}
	}
	if kinds == 0 {
		return nil, &ValidationError{"no content (Text, Template, Interactive, Reaction or Media)"}
	}
	if kinds > 1 {
		return nil, &ValidationError{"more than one content set; a message has exactly one type"}
	}
	w.Type = m.Kind()
	switch w.Type {
	case "text":
		w.Text = &wireText{PreviewURL: m.PreviewURL, Body: m.Text}
	case "template":
		t := m.Template
		if t.Name == "" || t.Language == "" {
			return nil, &ValidationError{"template needs a name and a language"}
		}
		for _, c := range t.Components {
			if !isObject(c) {
				return nil, &ValidationError{"template component is not a JSON object"}
			}
		}
		w.Template = &wireTemplate{Name: t.Name, Language: wireLanguage{Code: t.Language}, Components: t.Components}
	case "interactive":
		if !isObject(m.Interactive) {
			return nil, &ValidationError{"interactive is not a JSON object"}
		}
		w.Interactive = m.Interactive
	case "reaction":
		if m.Reaction.MessageID == "" {
			return nil, &ValidationError{"reaction needs the message id it reacts to"}
		}
		if m.ReplyTo != "" {
			return nil, &ValidationError{"a reaction cannot carry reply context"}
		}
		w.Reaction = &wireReaction{MessageID: m.Reaction.MessageID, Emoji: m.Reaction.Emoji}
	case "image", "audio", "video", "document", "sticker":
		md := m.Media
		if (md.ID == "") == (md.Link == "") {
			return nil, &ValidationError{"media needs exactly one of an uploaded id and a link"}
		}
		o := &wireMedia{ID: md.ID, Link: md.Link}
		switch w.Type {
		case "image", "video":
			o.Caption = md.Caption
		case "document":
			o.Caption, o.Filename = md.Caption, md.Filename
		default:
			if md.Caption != "" {
				return nil, &ValidationError{w.Type + " messages take no caption"}
			}
		}
		switch w.Type {
		case "image":
			w.Image = o
		case "audio":
			w.Audio = o
		case "video":
			w.Video = o
		case "document":
			w.Document = o
		case "sticker":
			w.Sticker = o
		}
	default:
		return nil, &ValidationError{fmt.Sprintf("unknown message type %q", w.Type)}
	}
	if m.ReplyTo != "" {
		w.Context = &wireContext{MessageID: m.ReplyTo}
	}
	w.CallbackData = m.CallbackData
	return marshal(w)
}

func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// marshal encodes without HTML escaping, so text with "<" or "&" is sent
// (and recorded by fakes) as written.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, &ValidationError{err.Error()}
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
