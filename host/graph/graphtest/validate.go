package graphtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/wahub/wahub/host/graph"
)

// parsed is what the fake understood of a request body.
type parsed struct {
	read      bool   // a mark-as-read request
	messageID string // the wamid marked read
	typing    string // the typing indicator shown with it

	to, recipient string // as sent
	waID, userID  string // what Meta answers in contacts[]
	key           string // per-recipient state (window, pair limit)

	kind               string
	text               string
	template, language string
	replyTo            string
	callbackData       string

	mediaID, link, caption, filename string // media messages
}

// Kinds the Cloud API sends; anything else in "type" is refused.
var knownKinds = map[string]bool{
	"text": true, "template": true, "interactive": true, "reaction": true,
	"image": true, "audio": true, "video": true, "document": true, "sticker": true,
	"location": true, "contacts": true,
}

var interactiveKinds = map[string]bool{
	"button": true, "list": true, "cta_url": true, "flow": true, "product": true,
	"product_list": true, "catalog_message": true, "location_request_message": true,
	"address_message": true, "call_permission_request": true, "carousel": true, "voice_call": true,
}

func required(param string) *ErrorResponse {
	return withDetails(graph.ErrMissingParameter, "", "The parameter "+param+" is required.")
}

func invalid(details string) *ErrorResponse {
	return withDetails(graph.ErrInvalidValue, "", details)
}

// validate checks a POST /messages body the way the Cloud API does for what
// can be seen in the request alone.
func validate(body []byte) (parsed, *ErrorResponse) {
	var p parsed
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		// Graph reads a body it cannot parse as no parameters at all.
		return p, withDetails(graph.ErrInvalidParameter, "(#100) The parameter messaging_product is required.", "")
	}
	str := func(k string) (string, bool) {
		var s string
		raw, ok := top[k]
		if !ok || string(raw) == "null" {
			return "", true
		}
		return s, json.Unmarshal(raw, &s) == nil
	}
	mp, ok := str("messaging_product")
	switch {
	case !ok:
		return p, withDetails(graph.ErrInvalidParameter, "(#100) Param messaging_product must be a string.", "")
	case mp == "":
		return p, withDetails(graph.ErrInvalidParameter, "(#100) The parameter messaging_product is required.", "")
	case mp != "whatsapp":
		return p, withDetails(graph.ErrInvalidParameter, fmt.Sprintf("(#100) Param messaging_product must be one of {WHATSAPP} - got %q.", mp), "")
	}

	if status, _ := str("status"); status != "" {
		if status != "read" {
			return p, withDetails(graph.ErrInvalidParameter, fmt.Sprintf("(#100) Param status must be one of {READ} - got %q.", status), "")
		}
		p.read = true
		p.kind = "read"
		p.messageID, _ = str("message_id")
		if p.messageID == "" {
			return p, withDetails(graph.ErrInvalidParameter, "(#100) The parameter message_id is required.", "")
		}
		if raw, ok := top["typing_indicator"]; ok && string(raw) != "null" {
			var ti struct {
				Type string `json:"type"`
			}
			if json.Unmarshal(raw, &ti) != nil || ti.Type != "text" {
				return p, withDetails(graph.ErrInvalidParameter, "(#100) Param typing_indicator['type'] must be one of {TEXT}.", "")
			}
			p.typing = ti.Type
		}
		return p, nil
	}

	if rt, ok := str("recipient_type"); !ok || (rt != "" && rt != "individual" && rt != "group") {
		return p, withDetails(graph.ErrInvalidParameter, fmt.Sprintf("(#100) Param recipient_type must be one of {INDIVIDUAL, GROUP} - got %q.", rt), "")
	}
	p.to, _ = str("to")
	p.recipient, _ = str("recipient")
	switch {
	case p.to != "" && graph.IsBSUID(p.to):
		// whatsapp.md §3.10: a BSUID goes in "recipient"; "to" must be a
		// phone number. (One 2026 report says the opposite worked; the
		// fake follows Meta's page.)
		return p, withDetails(graph.ErrInvalidParameter, "(#100) The parameter to is required.", "")
	case p.to != "":
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, p.to)
		if digits == "" || strings.ContainsFunc(p.to, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r == '+' || r == ' ' || r == '-' || r == '(' || r == ')')
		}) {
			return p, invalid("The parameter to is not a valid phone number.")
		}
		p.waID, p.key = digits, digits
	case p.recipient != "":
		if !graph.IsBSUID(p.recipient) {
			return p, invalid("The parameter recipient is not a valid business-scoped user ID.")
		}
		p.userID, p.key = p.recipient, p.recipient
	default:
		return p, withDetails(graph.ErrInvalidParameter, "(#100) The parameter to is required.", "")
	}
	p.callbackData, _ = str("biz_opaque_callback_data")

	kind, ok := str("type")
	if !ok {
		return p, invalid("The parameter type must be a string.")
	}
	if kind == "" {
		kind = "text" // the Cloud API's default
	}
	if !knownKinds[kind] {
		return p, invalid(fmt.Sprintf("Unsupported message type %q.", kind))
	}
	p.kind = kind

	if raw, ok := top["context"]; ok {
		var c struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal(raw, &c) != nil || c.MessageID == "" {
			return p, required("context['message_id']")
		}
		if kind == "reaction" {
			return p, invalid("Reply context cannot be used with reaction messages.")
		}
		p.replyTo = c.MessageID
	}

	obj := top[kind]
	if len(bytes.TrimSpace(obj)) == 0 || string(obj) == "null" {
		return p, required(kind)
	}
	switch kind {
	case "text":
		var t struct {
			Body       *string `json:"body"`
			PreviewURL *bool   `json:"preview_url"`
		}
		if json.Unmarshal(obj, &t) != nil {
			return p, invalid("The parameter text must be an object with a string body.")
		}
		if t.Body == nil || *t.Body == "" {
			return p, required("text['body']")
		}
		if utf8.RuneCountInString(*t.Body) > 4096 {
			return p, invalid("Message text is longer than 4096 characters.")
		}
		p.text = *t.Body
	case "template":
		var t struct {
			Name     string `json:"name"`
			Language *struct {
				Code string `json:"code"`
			} `json:"language"`
			Components json.RawMessage `json:"components"`
		}
		if json.Unmarshal(obj, &t) != nil {
			return p, invalid("The parameter template must be an object.")
		}
		if t.Name == "" {
			return p, required("template['name']")
		}
		if t.Language == nil || t.Language.Code == "" {
			return p, required("template['language']['code']")
		}
		if c := bytes.TrimSpace(t.Components); len(c) > 0 && string(c) != "null" && c[0] != '[' {
			return p, withDetails(graph.ErrInvalidParameter, "(#100) Param template['components'] must be an array.", "")
		}
		p.template, p.language = t.Name, t.Language.Code
	case "interactive":
		if e := validateInteractive(obj); e != nil {
			return p, e
		}
	case "reaction":
		var r struct {
			MessageID string `json:"message_id"`
		}
		if json.Unmarshal(obj, &r) != nil || r.MessageID == "" {
			return p, required("reaction['message_id']")
		}
	case "image", "audio", "video", "document", "sticker":
		var m struct {
			ID       string `json:"id"`
			Link     string `json:"link"`
			Caption  string `json:"caption"`
			Filename string `json:"filename"`
		}
		if json.Unmarshal(obj, &m) != nil || (m.ID == "" && m.Link == "") {
			return p, required(kind + "['id'] or " + kind + "['link']")
		}
		if m.ID != "" && m.Link != "" {
			return p, invalid("Param " + kind + " takes either id or link, not both.")
		}
		if utf8.RuneCountInString(m.Caption) > 1024 {
			return p, invalid("Media caption is longer than 1024 characters.")
		}
		p.mediaID, p.link, p.caption, p.filename = m.ID, m.Link, m.Caption, m.Filename
	case "location":
		var l struct {
			Lat *float64 `json:"latitude"`
			Lng *float64 `json:"longitude"`
		}
		if json.Unmarshal(obj, &l) != nil || l.Lat == nil || l.Lng == nil {
			return p, required("location['latitude'] and location['longitude']")
		}
	case "contacts":
		var c []json.RawMessage
		if json.Unmarshal(obj, &c) != nil || len(c) == 0 {
			return p, required("contacts")
		}
	}
	return p, nil
}

type interactiveText struct {
	Text string `json:"text"`
}

// validateInteractive enforces the documented limits for buttons and lists
// (whatsapp.md §5); other interactive types only need a known type.
func validateInteractive(obj json.RawMessage) *ErrorResponse {
	var in struct {
		Type   string           `json:"type"`
		Body   *interactiveText `json:"body"`
		Action json.RawMessage  `json:"action"`
	}
	if json.Unmarshal(obj, &in) != nil {
		return invalid("The parameter interactive must be an object.")
	}
	if in.Type == "" {
		return required("interactive['type']")
	}
	if !interactiveKinds[in.Type] {
		return invalid(fmt.Sprintf("Unsupported interactive type %q.", in.Type))
	}
	if in.Type != "button" && in.Type != "list" {
		return nil
	}
	if in.Body == nil || in.Body.Text == "" {
		return required("interactive['body']['text']")
	}
	if len(in.Action) == 0 {
		return required("interactive['action']")
	}
	runes := utf8.RuneCountInString
	if in.Type == "button" {
		if runes(in.Body.Text) > 1024 {
			return invalid("Interactive body text is longer than 1024 characters.")
		}
		var a struct {
			Buttons []struct {
				Type  string `json:"type"`
				Reply struct {
					ID    string `json:"id"`
					Title string `json:"title"`
				} `json:"reply"`
			} `json:"buttons"`
		}
		if json.Unmarshal(in.Action, &a) != nil || len(a.Buttons) == 0 {
			return required("interactive['action']['buttons']")
		}
		if len(a.Buttons) > 3 {
			return invalid("Buttons count is more than the maximum of 3.")
		}
		ids, titles := map[string]bool{}, map[string]bool{}
		for _, b := range a.Buttons {
			switch {
			case b.Type != "reply":
				return invalid(fmt.Sprintf("Button type %q is not valid; expected reply.", b.Type))
			case b.Reply.ID == "" || b.Reply.Title == "":
				return required("interactive['action']['buttons'][]['reply']['id'] and ['title']")
			case runes(b.Reply.ID) > 256:
				return invalid("Button id is longer than 256 characters.")
			case runes(b.Reply.Title) > 20:
				return invalid("Button title is longer than 20 characters.")
			case ids[b.Reply.ID] || titles[b.Reply.Title]:
				return invalid("Button ids and titles must be unique.")
			}
			ids[b.Reply.ID], titles[b.Reply.Title] = true, true
		}
		return nil
	}
	if runes(in.Body.Text) > 4096 {
		return invalid("Interactive body text is longer than 4096 characters.")
	}
	var a struct {
		Button   string `json:"button"`
		Sections []struct {
			Title string `json:"title"`
			Rows  []struct {
				ID          string `json:"id"`
				Title       string `json:"title"`
				Description string `json:"description"`
			} `json:"rows"`
		} `json:"sections"`
	}
	if json.Unmarshal(in.Action, &a) != nil {
		return invalid("The parameter interactive['action'] must be an object.")
	}
	if a.Button == "" {
		return required("interactive['action']['button']")
	}
	if runes(a.Button) > 20 {
		return invalid("List button text is longer than 20 characters.")
	}
	if len(a.Sections) == 0 {
		return required("interactive['action']['sections']")
	}
	if len(a.Sections) > 10 {
		return invalid("Sections count is more than the maximum of 10.")
	}
	rows, ids := 0, map[string]bool{}
	for _, s := range a.Sections {
		if len(a.Sections) > 1 && s.Title == "" {
			return required("interactive['action']['sections'][]['title']")
		}
		if runes(s.Title) > 24 {
			return invalid("Section title is longer than 24 characters.")
		}
		if len(s.Rows) == 0 {
			return required("interactive['action']['sections'][]['rows']")
		}
		for _, r := range s.Rows {
			rows++
			switch {
			case r.ID == "" || r.Title == "":
				return required("interactive['action']['sections'][]['rows'][]['id'] and ['title']")
			case runes(r.ID) > 200:
				return invalid("Row id is longer than 200 characters.")
			case runes(r.Title) > 24:
				return invalid("Row title is longer than 24 characters.")
			case runes(r.Description) > 72:
				return invalid("Row description is longer than 72 characters.")
			case ids[r.ID]:
				return invalid("Row ids must be unique.")
			}
			ids[r.ID] = true
		}
	}
	if rows > 10 {
		return invalid("Total row count is more than the maximum of 10.")
	}
	return nil
}
