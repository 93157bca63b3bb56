package templates

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Problem codes: the admin API answers 422 with them, and a queued
// message that fails its send-time check is failed with them.
const (
	CodeUnknown     = "template_unknown"
	CodeNotApproved = "template_not_approved"
	CodePaused      = "template_paused"
	CodeDisabled    = "template_disabled"
	CodeLanguage    = "template_language"
	CodeParameters  = "template_parameters"
)

// Problem is why a template message would be refused.
type Problem struct {
	Code    string
	Message string
}

func (p *Problem) Error() string { return p.Message }

func problem(code, format string, args ...any) *Problem {
	return &Problem{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Resolve finds the template a message names among versions, every
// language the catalogue has of that name. known says whether the
// catalogue has been fetched completely: without that, a template the hub
// has not heard of may still exist, and only what it does know is held
// against the message. It returns the template (nil when unknown) or the
// problem.
func Resolve(versions []Template, known bool, name, language string) (*Template, *Problem) {
	lang := NormalizeLanguage(language)
	var langs []string
	for i := range versions {
		if versions[i].Language == lang {
			return &versions[i], Status(&versions[i])
		}
		langs = append(langs, versions[i].Language)
	}
	if !known {
		return nil, nil
	}
	if len(versions) == 0 {
		return nil, problem(CodeUnknown, "template %q does not exist in the WhatsApp Business Account (wahub templates lists the ones that do)", name)
	}
	sort.Strings(langs)
	return nil, problem(CodeLanguage, "template %q has no %s version (it has %s)", name, lang, strings.Join(langs, ", "))
}

// Status is the problem with sending t as its status stands, or nil.
func Status(t *Template) *Problem {
	if Sendable(t.Status) {
		return nil
	}
	why := ""
	if t.Reason != "" && t.Reason != "NONE" {
		why = " (" + t.Reason + ")"
	}
	switch t.Status {
	case "PAUSED":
		return problem(CodePaused, "template %q (%s) is paused by WhatsApp for low quality%s; it cannot be sent until it is unpaused", t.Name, t.Language, why)
	case "DISABLED":
		return problem(CodeDisabled, "template %q (%s) is disabled by WhatsApp%s; edit it in WhatsApp Manager or use another", t.Name, t.Language, why)
	}
	return problem(CodeNotApproved, "template %q (%s) is %s, not approved%s; only approved templates can be sent", t.Name, t.Language, t.Status, why)
}

type sentParam struct {
	Type          string          `json:"type"`
	ParameterName string          `json:"parameter_name"`
	Text          *string         `json:"text"`
	Payload       *string         `json:"payload"`
	CouponCode    *string         `json:"coupon_code"`
	Image         *mediaRef       `json:"image"`
	Video         *mediaRef       `json:"video"`
	Document      *mediaRef       `json:"document"`
	Location      json.RawMessage `json:"location"`
	Currency      json.RawMessage `json:"currency"`
	DateTime      json.RawMessage `json:"date_time"`
	Action        json.RawMessage `json:"action"`
}

type mediaRef struct {
	ID   string `json:"id"`
	Link string `json:"link"`
}

type sentComponent struct {
	Type       string          `json:"type"`
	SubType    string          `json:"sub_type"`
	Index      json.RawMessage `json:"index"`
	Parameters []sentParam     `json:"parameters"`
}

// Check holds the components a message sends against t's parameters:
// the body's count (and names), the header's media type, and the buttons
// that need a value. A template whose components the hub does not know is
// not checked.
func Check(t *Template, components []json.RawMessage) *Problem {
	p := t.Parameters
	if p == nil {
		return nil
	}
	label := fmt.Sprintf("template %q (%s)", t.Name, t.Language)
	bad := func(format string, args ...any) *Problem {
		return problem(CodeParameters, label+": "+format, args...)
	}
	var header, body *sentComponent
	buttons := map[int]*sentComponent{}
	for i, raw := range components {
		var c sentComponent
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad("component %d is not a template component object: %v", i, err)
		}
		c.Type = strings.ToLower(c.Type)
		switch c.Type {
		case "header":
			header = &c
		case "body":
			body = &c
		case "button":
			idx, err := buttonIndex(c.Index)
			if err != nil {
				return bad("button component %d: %v", i, err)
			}
			if idx < 0 || idx >= len(p.Buttons) {
				return bad("button component %d names button %d, but the template has %d button(s)", i, idx, len(p.Buttons))
			}
			if buttons[idx] != nil {
				return bad("button %d is given twice", idx)
			}
			buttons[idx] = &c
		}
	}

	// Body: exactly its placeholders, text-like values.
	var got []sentParam
	if body != nil {
		got = body.Parameters
	}
	if len(got) != len(p.Body) {
		want := "no parameters"
		if len(p.Body) > 0 {
			want = fmt.Sprintf("%d parameter(s) (%s)", len(p.Body), braces(p.Body))
		}
		return bad("the body takes %s; the message gives %d", want, len(got))
	}
	named := strings.EqualFold(t.ParameterFormat, "NAMED")
	for i, prm := range got {
		switch strings.ToLower(prm.Type) {
		case "text", "currency", "date_time":
		default:
			return bad("body parameter %d is of type %q; body parameters are text, currency or date_time", i+1, prm.Type)
		}
		if strings.ToLower(prm.Type) == "text" && (prm.Text == nil || *prm.Text == "") {
			return bad("body parameter %d has no text", i+1)
		}
		if named && !slices.Contains(p.Body, prm.ParameterName) {
			return bad("body parameter %d is named %q; the template's are %s", i+1, prm.ParameterName, braces(p.Body))
		}
	}

	// Header: its media (or text) parameter, or none.
	switch {
	case p.Header == "" && header != nil && len(header.Parameters) > 0:
		return bad("the header takes no parameters; the message gives %d", len(header.Parameters))
	case p.Header != "":
		if header == nil || len(header.Parameters) != 1 {
			n := 0
			if header != nil {
				n = len(header.Parameters)
			}
			return bad("the header takes one %s parameter; the message gives %d", p.Header, n)
		}
		prm := header.Parameters[0]
		if typ := strings.ToLower(prm.Type); typ != p.Header {
			return bad("the header takes a %s; the message gives a %q parameter", p.Header, prm.Type)
		}
		var m *mediaRef
		switch p.Header {
		case "image":
			m = prm.Image
		case "video":
			m = prm.Video
		case "document":
			m = prm.Document
		case "text":
			if prm.Text == nil || *prm.Text == "" {
				return bad("the header's text parameter is empty")
			}
		case "location":
			if len(prm.Location) == 0 {
				return bad("the header's location parameter has no location object")
			}
		}
		if (p.Header == "image" || p.Header == "video" || p.Header == "document") && (m == nil || (m.ID == "" && m.Link == "")) {
			return bad("the header's %s needs an id (POST /api/v1/media) or a link", p.Header)
		}
	}

	// Buttons: dynamic ones need their value; the sub_type must match.
	for _, b := range p.Buttons {
		c := buttons[b.Index]
		if c == nil {
			if b.Dynamic {
				return bad("button %d (%s %q) needs a parameter; add a button component with index %d", b.Index, b.Type, b.Text, b.Index)
			}
			continue
		}
		sub := strings.ToLower(c.SubType)
		if !subTypeFits(b.Type, sub) {
			return bad("button %d is a %s button; the message's component has sub_type %q", b.Index, b.Type, c.SubType)
		}
		if !b.Dynamic && b.Type != "quick_reply" && len(c.Parameters) > 0 {
			return bad("button %d (%s) takes no parameters", b.Index, b.Type)
		}
		if b.Dynamic && len(c.Parameters) != 1 {
			return bad("button %d (%s %q) takes one parameter; the message gives %d", b.Index, b.Type, b.Text, len(c.Parameters))
		}
		for _, prm := range c.Parameters {
			typ := strings.ToLower(prm.Type)
			switch b.Type {
			case "quick_reply":
				if typ != "payload" && typ != "text" {
					return bad("button %d (quick reply) takes a payload parameter, not %q", b.Index, prm.Type)
				}
			case "url", "otp":
				if typ != "text" || prm.Text == nil || *prm.Text == "" {
					return bad("button %d (%s) takes one non-empty text parameter", b.Index, b.Type)
				}
			case "copy_code":
				if typ != "coupon_code" || prm.CouponCode == nil || *prm.CouponCode == "" {
					return bad("button %d (copy code) takes a coupon_code parameter", b.Index)
				}
			}
		}
	}
	return nil
}

// subTypeFits: Meta's send API names a one-time-password button "url" (or
// "copy_code"), every other button by its own type.
func subTypeFits(buttonType, sub string) bool {
	if buttonType == "otp" {
		return sub == "url" || sub == "copy_code"
	}
	return buttonType == sub
}

// buttonIndex reads "index": Meta documents a string ("0") and accepts a
// number.
func buttonIndex(raw json.RawMessage) (int, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf(`"index" is required`)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf(`"index" %q is not a number`, s)
		}
		return n, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf(`"index" must be a number`)
	}
	return n, nil
}

func braces(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "{{" + n + "}}"
	}
	return strings.Join(out, ", ")
}
