package outbound

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/wahub/wahub/sdk"
)

// RefusedInteractive is the refusal of an interactive message that breaks
// WhatsApp's limits (whatsapp.md §5): Meta would refuse it with 131009.
const RefusedInteractive = "interactive_invalid"

// Limits of reply buttons and lists, as Meta documents them.
const (
	maxButtons       = 3
	maxButtonID      = 256
	maxButtonTitle   = 20
	maxButtonBody    = 1024
	maxListBody      = 4096
	maxListButton    = 20
	maxSections      = 10
	maxRows          = 10
	maxRowID         = 200
	maxRowTitle      = 24
	maxRowDesc       = 72
	maxSectionTitle  = 24
	maxHeaderText    = 60
	maxFooterText    = 60
	interactiveTypes = "button, list, cta_url, flow, product, product_list, catalog_message, location_request_message, address_message, call_permission_request, carousel, voice_call"
)

var knownInteractive = map[string]bool{
	"button": true, "list": true, "cta_url": true, "flow": true, "product": true,
	"product_list": true, "catalog_message": true, "location_request_message": true,
	"address_message": true, "call_permission_request": true, "carousel": true, "voice_call": true,
}

type interactiveMsg struct {
	Type   string `json:"type"`
	Header *struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"header"`
	Body *struct {
		Text string `json:"text"`
	} `json:"body"`
	Footer *struct {
		Text string `json:"text"`
	} `json:"footer"`
	Action json.RawMessage `json:"action"`
}

// CheckInteractive is checkInteractive for wahub check: the problem with
// an interactive object, or nil.
func CheckInteractive(raw json.RawMessage) error { return checkInteractive(raw) }

// checkInteractive holds reply buttons and lists to WhatsApp's limits, so
// a message Meta would refuse is refused here, naming the limit, before it
// is queued. Other interactive types pass with a known type.
func checkInteractive(raw json.RawMessage) error {
	var in interactiveMsg
	if err := json.Unmarshal(raw, &in); err != nil {
		return &InvalidError{"interactive: not a WhatsApp interactive object: " + err.Error()}
	}
	bad := func(format string, args ...any) error {
		return &sdk.RefusedError{Code: RefusedInteractive, Message: "interactive " + in.Type + ": " + fmt.Sprintf(format, args...)}
	}
	if in.Type == "" {
		return &InvalidError{`interactive: "type" is required (` + interactiveTypes + `)`}
	}
	if !knownInteractive[in.Type] {
		return &InvalidError{fmt.Sprintf("interactive: unknown type %q (%s)", in.Type, interactiveTypes)}
	}
	if in.Type != "button" && in.Type != "list" {
		return nil
	}
	n := utf8.RuneCountInString
	if in.Body == nil || in.Body.Text == "" {
		return bad(`"body": {"text": …} is required`)
	}
	if h := in.Header; h != nil && h.Type == "text" && n(h.Text) > maxHeaderText {
		return bad("header text is %d characters; at most %d", n(h.Text), maxHeaderText)
	}
	if in.Type == "list" && in.Header != nil && in.Header.Type != "" && in.Header.Type != "text" {
		return bad("a list header can only be text, not %q", in.Header.Type)
	}
	if f := in.Footer; f != nil && n(f.Text) > maxFooterText {
		return bad("footer text is %d characters; at most %d", n(f.Text), maxFooterText)
	}
	if in.Type == "button" {
		if n(in.Body.Text) > maxButtonBody {
			return bad("body text is %d characters; at most %d", n(in.Body.Text), maxButtonBody)
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
			return bad(`"action": {"buttons": [{"type": "reply", "reply": {"id", "title"}}]} is required`)
		}
		if len(a.Buttons) > maxButtons {
			return bad("%d buttons; at most %d (use a list for more choices)", len(a.Buttons), maxButtons)
		}
		ids, titles := map[string]bool{}, map[string]bool{}
		for i, b := range a.Buttons {
			switch {
			case b.Type != "reply":
				return bad("button %d: type %q; reply buttons have type \"reply\"", i+1, b.Type)
			case b.Reply.ID == "" || b.Reply.Title == "":
				return bad("button %d: reply.id and reply.title are required", i+1)
			case n(b.Reply.ID) > maxButtonID:
				return bad("button %d: id is %d characters; at most %d", i+1, n(b.Reply.ID), maxButtonID)
			case n(b.Reply.Title) > maxButtonTitle:
				return bad("button %d: title %q is %d characters; at most %d", i+1, b.Reply.Title, n(b.Reply.Title), maxButtonTitle)
			case ids[b.Reply.ID]:
				return bad("button %d: id %q is used twice; ids must be unique", i+1, b.Reply.ID)
			case titles[b.Reply.Title]:
				return bad("button %d: title %q is used twice; titles must be unique", i+1, b.Reply.Title)
			}
			ids[b.Reply.ID], titles[b.Reply.Title] = true, true
		}
		return nil
	}
	if n(in.Body.Text) > maxListBody {
		return bad("body text is %d characters; at most %d", n(in.Body.Text), maxListBody)
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
		return bad(`"action" must be {"button": …, "sections": [...]}`)
	}
	switch {
	case a.Button == "":
		return bad(`action.button (the label that opens the list) is required`)
	case n(a.Button) > maxListButton:
		return bad("action.button %q is %d characters; at most %d", a.Button, n(a.Button), maxListButton)
	case len(a.Sections) == 0:
		return bad("action.sections is required")
	case len(a.Sections) > maxSections:
		return bad("%d sections; at most %d", len(a.Sections), maxSections)
	}
	rows, ids := 0, map[string]bool{}
	for i, s := range a.Sections {
		switch {
		case len(a.Sections) > 1 && s.Title == "":
			return bad("section %d: a title is required when there is more than one section", i+1)
		case n(s.Title) > maxSectionTitle:
			return bad("section %d: title is %d characters; at most %d", i+1, n(s.Title), maxSectionTitle)
		case len(s.Rows) == 0:
			return bad("section %d has no rows", i+1)
		}
		for j, r := range s.Rows {
			rows++
			switch {
			case r.ID == "" || r.Title == "":
				return bad("section %d row %d: id and title are required", i+1, j+1)
			case n(r.ID) > maxRowID:
				return bad("section %d row %d: id is %d characters; at most %d", i+1, j+1, n(r.ID), maxRowID)
			case n(r.Title) > maxRowTitle:
				return bad("section %d row %d: title %q is %d characters; at most %d", i+1, j+1, r.Title, n(r.Title), maxRowTitle)
			case n(r.Description) > maxRowDesc:
				return bad("section %d row %d: description is %d characters; at most %d", i+1, j+1, n(r.Description), maxRowDesc)
			case ids[r.ID]:
				return bad("row id %q is used twice; row ids must be unique across sections", r.ID)
			}
			ids[r.ID] = true
		}
	}
	if rows > maxRows {
		return bad("%d rows; at most %d across all sections", rows, maxRows)
	}
	return nil
}
