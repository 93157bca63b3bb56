// Package templates is the hub's knowledge of the business's WhatsApp
// message templates: what each one is (name, language, category, status,
// components), what its parameters are, and whether a message that names
// it would be accepted. The catalogue lives in the store; it is fetched
// from the Graph API (GET /{waba-id}/message_templates) at start and on a
// schedule, and template webhooks update it the moment they are committed,
// so a paused template is refused before anything reaches Meta.
package templates

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Template is one template in one language.
type Template struct {
	ID       string `json:"id,omitempty"`
	Name     string `json:"name"`
	Language string `json:"language"`
	// Category is MARKETING, UTILITY or AUTHENTICATION.
	Category string `json:"category,omitempty"`
	// Status is Meta's: APPROVED, PENDING, REJECTED, PAUSED, DISABLED,
	// FLAGGED, IN_APPEAL, PENDING_DELETION, DELETED, ARCHIVED, LIMIT_EXCEEDED,
	// LOCKED.
	Status string `json:"status"`
	// Quality is GREEN, YELLOW, RED or UNKNOWN, when Meta said.
	Quality string `json:"quality,omitempty"`
	// Reason is what the last status webhook said (a rejection or pause
	// reason), if anything.
	Reason string `json:"reason,omitempty"`
	// ParameterFormat is POSITIONAL ({{1}}) or NAMED ({{first_name}}).
	ParameterFormat string `json:"parameter_format,omitempty"`
	// Components are the template's components as Graph lists them; nil
	// when the hub knows the template only from a webhook.
	Components json.RawMessage `json:"components,omitempty"`
	// Parameters are what a message must fill in, derived from Components.
	Parameters *Parameters `json:"parameters,omitempty"`
	// Source says where the hub learned the current state: "graph" (a
	// catalogue fetch) or "webhook".
	Source    string    `json:"source"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Parameters are the placeholders of a template.
type Parameters struct {
	// Header is the header's format when it takes a parameter: "text",
	// "image", "video", "document" or "location"; "" when it takes none.
	Header string `json:"header,omitempty"`
	// Body lists the body's placeholders in order of first use: "1", "2"
	// for positional templates, names for named ones.
	Body []string `json:"body,omitempty"`
	// Buttons are the template's buttons.
	Buttons []Button `json:"buttons,omitempty"`
}

// Button is one button of a template.
type Button struct {
	Index int `json:"index"`
	// Type is the send-time sub_type: quick_reply, url, phone_number,
	// copy_code, otp, flow, catalog, mpm, voice_call, ...
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
	// Dynamic buttons need a parameter when sent: a URL with {{1}}, a
	// coupon code, a one-time password.
	Dynamic bool `json:"dynamic,omitempty"`
}

// Sendable statuses: a FLAGGED template's quality is low but it may still
// be sent until Meta pauses it.
func Sendable(status string) bool { return status == "APPROVED" || status == "FLAGGED" }

// NormalizeLanguage writes a language code the way the send API and the
// catalogue do: webhooks say "en-US", Graph lists "en_US".
func NormalizeLanguage(code string) string {
	return strings.ReplaceAll(strings.TrimSpace(code), "-", "_")
}

var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_]+)\s*\}\}`)

// placeholders lists the distinct {{x}} of text in order of first use.
func placeholders(text string) []string {
	var out []string
	for _, m := range placeholder.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

type wireComponent struct {
	Type    string `json:"type"`
	Format  string `json:"format"`
	Text    string `json:"text"`
	Buttons []struct {
		Type    string          `json:"type"`
		Text    string          `json:"text"`
		URL     string          `json:"url"`
		OTPType string          `json:"otp_type"`
		Example json.RawMessage `json:"example"`
	} `json:"buttons"`
}

// Derive reads the parameters from a template's components. Components
// it does not know (carousels, limited-time offers) add none, so a
// message's parameters for them are not checked.
func Derive(components json.RawMessage) (*Parameters, error) {
	if len(components) == 0 || string(components) == "null" {
		return nil, nil
	}
	var comps []wireComponent
	if err := json.Unmarshal(components, &comps); err != nil {
		return nil, fmt.Errorf("template components: %w", err)
	}
	p := &Parameters{}
	for _, c := range comps {
		switch strings.ToUpper(c.Type) {
		case "HEADER":
			switch f := strings.ToLower(c.Format); f {
			case "image", "video", "document", "location":
				p.Header = f
			case "text", "":
				if len(placeholders(c.Text)) > 0 {
					p.Header = "text"
				}
			}
		case "BODY":
			p.Body = placeholders(c.Text)
		case "BUTTONS":
			for i, b := range c.Buttons {
				bt := Button{Index: i, Type: strings.ToLower(b.Type), Text: b.Text}
				switch bt.Type {
				case "url":
					bt.Dynamic = len(placeholders(b.URL)) > 0
				case "copy_code", "otp":
					bt.Dynamic = true
				}
				p.Buttons = append(p.Buttons, bt)
			}
		}
	}
	return p, nil
}
