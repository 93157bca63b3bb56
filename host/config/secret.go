package config

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

const redacted = "[redacted]"

// Secret is a string that does not print: fmt (every verb), encoding/json,
// encoding.TextMarshaler and therefore log/slog all see "[redacted]".
// Reveal is the only way to the value, so each use is deliberate and greppable.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String says whether the secret is set without saying what it is.
func (s Secret) String() string {
	if s == "" {
		return "(unset)"
	}
	return redacted
}

// GoString keeps %#v of a struct holding a Secret from printing it.
func (s Secret) GoString() string { return s.String() }

// Format covers the verbs String alone would not (%x, %q, %#v, ...).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalText leaves an unset secret empty so that "not configured" stays visible.
func (s Secret) MarshalText() ([]byte, error) {
	if s == "" {
		return []byte{}, nil
	}
	return []byte(redacted), nil
}

// MarshalJSON is MarshalText as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) {
	t, _ := s.MarshalText()
	return json.Marshal(string(t))
}

// PluginConfig is a connector's opaque configuration. It usually holds API
// tokens and signing secrets the host cannot tell apart from the rest, so
// it prints and marshals with every value redacted and only its keys shown.
// Use Reveal to hand the real values to the plugin.
type PluginConfig map[string]any

// Reveal returns the configuration with its values, as the plugin needs it.
func (p PluginConfig) Reveal() map[string]any { return map[string]any(p) }

func (p PluginConfig) keys() []string {
	ks := make([]string, 0, len(p))
	for k := range p {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// String shows the keys, which is what a person debugging needs.
func (p PluginConfig) String() string {
	var b strings.Builder
	b.WriteString("map[")
	for i, k := range p.keys() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + ":" + redacted)
	}
	b.WriteString("]")
	return b.String()
}

// GoString is String, so %#v does not print the values.
func (p PluginConfig) GoString() string { return p.String() }

// Format routes every fmt verb through String.
func (p PluginConfig) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, strconv.Quote(p.String()))
		return
	}
	_, _ = io.WriteString(f, p.String())
}

// MarshalJSON keeps the keys and redacts the values.
func (p PluginConfig) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	out := make(map[string]string, len(p))
	for k := range p {
		out[k] = redacted
	}
	return json.Marshal(out)
}
