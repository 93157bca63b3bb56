package stream

import (
	"fmt"
	"strings"

	"github.com/wahub/wahub/sdk"
)

// Template is a topic or subject name that may depend on the event:
// "wahub.{type}" sends message.received to wahub.message.received.
// Placeholders: {type} (the event type) and {phone_number_id} (the
// business number; "none" for account-level events).
type Template struct {
	raw   string
	parts []part
	// clean maps a placeholder's value onto the characters a name may
	// hold, so that no event can produce an invalid topic or a subject
	// with wildcards.
	clean func(string) string
}

type part struct {
	lit   string
	field string // "" for a literal
}

// Placeholders a template may use.
var placeholders = map[string]func(*sdk.Event) string{
	"type": func(ev *sdk.Event) string { return string(ev.Type) },
	"phone_number_id": func(ev *sdk.Event) string {
		if ev.Business != nil && ev.Business.PhoneNumberID != "" {
			return ev.Business.PhoneNumberID
		}
		return "none"
	},
}

// NameRune is the alphabet both brokers accept in a name: Kafka's topic
// characters, which in a NATS subject are also free of wildcards and
// whitespace ('.' separates a subject's tokens).
func NameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// ParseTemplate parses s. valid reports whether a character may appear
// in a name; literal text must consist of such characters, and values
// substituted into placeholders have every other character replaced by
// '_'.
func ParseTemplate(s string, valid func(rune) bool) (Template, error) {
	t := Template{raw: s}
	t.clean = func(v string) string {
		return strings.Map(func(r rune) rune {
			if valid(r) {
				return r
			}
			return '_'
		}, v)
	}
	rest := s
	for rest != "" {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, part{lit: rest})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return Template{}, fmt.Errorf("%q: unclosed {", s)
		}
		name := rest[i+1 : i+j]
		if placeholders[name] == nil {
			return Template{}, fmt.Errorf("%q: unknown placeholder {%s} (known: {type}, {phone_number_id})", s, name)
		}
		t.parts = append(t.parts, part{field: name})
		rest = rest[i+j+1:]
	}
	for _, p := range t.parts {
		if p.field != "" {
			continue
		}
		for _, r := range p.lit {
			if !valid(r) {
				return Template{}, fmt.Errorf("%q: the character %q is not allowed in a name", s, r)
			}
		}
	}
	return t, nil
}

// String is the template as written.
func (t Template) String() string { return t.raw }

// Static reports whether every event gets the same name.
func (t Template) Static() bool {
	for _, p := range t.parts {
		if p.field != "" {
			return false
		}
	}
	return true
}

// Expand is the name for ev.
func (t Template) Expand(ev *sdk.Event) string {
	if len(t.parts) == 1 && t.parts[0].field == "" {
		return t.parts[0].lit
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.field == "" {
			b.WriteString(p.lit)
			continue
		}
		b.WriteString(t.clean(placeholders[p.field](ev)))
	}
	return b.String()
}

// KnownTypes are the event types of CONTRACT §4 that a template is checked
// with beforehand (wahub check): whatsapp.<field> types depend on what
// Meta sends and cannot be listed.
var KnownTypes = []sdk.EventType{
	sdk.TypeMessageReceived, sdk.TypeButtonClicked, sdk.TypeMessageSent,
	sdk.TypeStatusSent, sdk.TypeStatusDelivered, sdk.TypeStatusRead, sdk.TypeStatusFailed, sdk.TypeStatusPlayed,
	sdk.TypeOptinGranted, sdk.TypeOptinRevoked, sdk.TypeContactChanged,
}

// Names lists the distinct names the template gives the known event types
// (with a placeholder business number), for checking that they exist.
// A template with {phone_number_id} has no fixed set: it returns nil.
func (t Template) Names() []string {
	for _, p := range t.parts {
		if p.field == "phone_number_id" {
			return nil
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, typ := range KnownTypes {
		n := t.Expand(&sdk.Event{Type: typ})
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
