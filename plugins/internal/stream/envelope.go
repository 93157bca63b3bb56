// Package stream is what the event-stream connectors (kafka, nats) share:
// how an event becomes a message (the wahub envelope or a CloudEvents 1.0
// binary-mode message), how a topic or subject name is built from a
// template, and the TLS settings both accept.
package stream

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Format is how an event is written to the stream.
type Format string

const (
	// FormatWahub writes the event JSON of CONTRACT §4 as the body, with
	// the event's id and type also in headers.
	FormatWahub Format = "wahub"
	// FormatCloudEvents writes a CloudEvents 1.0 binary-mode message: the
	// event JSON is the data, its attributes travel as ce-prefixed
	// headers, so a CloudEvents SDK reads it without a custom decoder.
	FormatCloudEvents Format = "cloudevents"
)

// ParseFormat reads the `format` key; empty means wahub.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatWahub:
		return FormatWahub, nil
	case FormatCloudEvents:
		return FormatCloudEvents, nil
	}
	return "", fmt.Errorf("%q is not a format: use wahub (the event JSON) or cloudevents (CloudEvents 1.0, binary mode)", s)
}

// Header names of the wahub format.
const (
	HeaderEventID        = "wahub-event-id"
	HeaderEventType      = "wahub-event-type"
	HeaderConversationID = "wahub-conversation-id"
	HeaderContentType    = "content-type"
	ContentTypeJSON      = "application/json"
	// SpecVersion is the CloudEvents version written.
	SpecVersion = "1.0"
	// DefaultSource is ce-source when the configuration sets none.
	DefaultSource = "/wahub"
)

// Header is one message header.
type Header struct {
	Key   string
	Value string
}

// Encoder turns events into message bodies and headers.
type Encoder struct {
	Format Format
	// Source is the CloudEvents source attribute.
	Source string
	// CEPrefix is how the transport's CloudEvents binding prefixes
	// attribute headers: "ce_" for Kafka, "ce-" for NATS (and HTTP).
	CEPrefix string
}

// Encode returns the body and headers of ev's message. The body is the
// event JSON in both formats: in CloudEvents binary mode the data is the
// event and content-type says it is JSON.
func (e Encoder) Encode(ev *sdk.Event) ([]byte, []Header, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	if e.Format == FormatCloudEvents {
		src := e.Source
		if src == "" {
			src = DefaultSource
		}
		p := e.CEPrefix
		h := []Header{
			{p + "specversion", SpecVersion},
			{p + "id", ev.ID},
			{p + "type", string(ev.Type)},
			{p + "source", src},
		}
		if !ev.OccurredAt.IsZero() {
			h = append(h, Header{p + "time", ev.OccurredAt.UTC().Format(time.RFC3339Nano)})
		}
		if ev.ConversationID != "" {
			h = append(h, Header{p + "subject", ev.ConversationID})
		}
		return body, append(h, Header{HeaderContentType, ContentTypeJSON}), nil
	}
	h := []Header{{HeaderEventID, ev.ID}, {HeaderEventType, string(ev.Type)}}
	if ev.ConversationID != "" {
		h = append(h, Header{HeaderConversationID, ev.ConversationID})
	}
	return body, append(h, Header{HeaderContentType, ContentTypeJSON}), nil
}
