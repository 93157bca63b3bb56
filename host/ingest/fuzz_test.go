package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, name := range fixtureNames(f) {
		body := readWhatsAppFixture(f, name)
		f.Add(body)
		// Mutants that keep the envelope valid, so the fuzzer starts from
		// inside it rather than from bodies Parse refuses at once.
		f.Add(bytes.ReplaceAll(body, []byte(`"timestamp": "`), []byte(`"timestamp": 1`)))
		f.Add(bytes.ReplaceAll(body, []byte(`"messages": [`), []byte(`"messages": "x", "m": [`)))
		f.Add(bytes.ReplaceAll(body, []byte(`"id": "`), []byte(`"id": 1, "x": "`)))
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":{"id":"1"}}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[5,{"changes":[7,{"value":null}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[1,{}],"statuses":[{}],"user_preferences":[{}],"errors":1}}]}]}`))
	f.Add([]byte(`{"\u006fbject":"whatsapp_business_account","entry":[{"time":"9e99","changes":[{"fi\"eld":"x","value":{"display_phone_number":7}}]}]}`))
	f.Add([]byte(`[{"object":"whatsapp_business_account"}]`))

	received := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		// Parse only walks JSON that json.Valid accepted; the walker still
		// promises not to panic on anything, so hold it to that too.
		walk(body, 0)
		parseUnix(body)

		events, err := Parse(body, received)
		if err != nil {
			if !errors.Is(err, ErrNotEnvelope) {
				t.Fatalf("error %v is not ErrNotEnvelope", err)
			}
			if len(events) != 0 {
				t.Fatalf("%d events with an error", len(events))
			}
			return
		}
		for i, ev := range events {
			if ev.ID == "" || ev.Type == "" || ev.ReceivedAt.IsZero() || ev.OccurredAt.IsZero() {
				t.Fatalf("event %d: id %q type %q received %v occurred %v", i, ev.ID, ev.Type, ev.ReceivedAt, ev.OccurredAt)
			}
			if !json.Valid(ev.Raw) {
				t.Fatalf("event %d: raw is not JSON: %q", i, ev.Raw)
			}
			// The store encodes every event; one that cannot be encoded
			// would fail the whole body, and Meta would retry it forever.
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("event %d does not encode: %v", i, err)
			}
		}
		again, _ := Parse(body, received)
		for i := range again {
			if again[i].ID != events[i].ID {
				t.Fatalf("event %d: id differs between two parses of the same body", i)
			}
		}
	})
}

// walk visits b the way Parse's helpers do, on bytes that need not be JSON.
func walk(b []byte, depth int) {
	if depth > 4 {
		return
	}
	_ = scalar(b)
	for k, v := range objectFields(b) {
		_ = string(k)
		walk(v, depth+1)
	}
	for v := range arrayElements(b) {
		walk(v, depth+1)
	}
	for i := range min(len(b), 64) {
		if j := skipValue(b, i); j < i || j > len(b) {
			panic("skipValue went out of bounds")
		}
	}
}
