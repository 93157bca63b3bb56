package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/webhook"
)

func TestVerify(t *testing.T) {
	key := []byte("verify-secret")
	body := []byte(`{"id":"evt_1","type":"message.received"}`)
	now := time.Unix(1_800_000_000, 0)
	headers := func(id string, ts time.Time, sig string) http.Header {
		h := http.Header{}
		if id != "" {
			h.Set("webhook-id", id)
		}
		if !ts.IsZero() {
			h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		}
		if sig != "" {
			h.Set("webhook-signature", sig)
		}
		return h
	}
	good := webhook.Sign(key, "evt_1", now, body)
	cases := []struct {
		name      string
		key       []byte
		header    http.Header
		body      []byte
		tolerance time.Duration
		want      error // nil: accepted
	}{
		{name: "valid", header: headers("evt_1", now, good)},
		{name: "tampered body", header: headers("evt_1", now, good), body: []byte(`{"id":"evt_1","type":"message.sent"}`), want: webhook.ErrSignature},
		{name: "wrong secret", key: []byte("other-secret"), header: headers("evt_1", now, good), want: webhook.ErrSignature},
		{name: "other id", header: headers("evt_2", now, good), want: webhook.ErrSignature},
		{name: "timestamp 6 minutes old", header: headers("evt_1", now.Add(-6*time.Minute), webhook.Sign(key, "evt_1", now.Add(-6*time.Minute), body)), want: webhook.ErrTimestamp},
		{name: "timestamp 6 minutes ahead", header: headers("evt_1", now.Add(6*time.Minute), webhook.Sign(key, "evt_1", now.Add(6*time.Minute), body)), want: webhook.ErrTimestamp},
		{name: "timestamp 4 minutes old", header: headers("evt_1", now.Add(-4*time.Minute), webhook.Sign(key, "evt_1", now.Add(-4*time.Minute), body))},
		{name: "wider tolerance", tolerance: 10 * time.Minute, header: headers("evt_1", now.Add(-6*time.Minute), webhook.Sign(key, "evt_1", now.Add(-6*time.Minute), body))},
		{name: "timestamp changed after signing", header: headers("evt_1", now.Add(time.Second), good), want: webhook.ErrSignature},
		{name: "several signatures, one valid", header: headers("evt_1", now, "v1,bm9wZQ== "+good)},
		{name: "valid bytes under another version", header: headers("evt_1", now, "v2"+good[2:]), want: webhook.ErrSignature},
		{name: "signature not base64", header: headers("evt_1", now, "v1,%%%"), want: webhook.ErrSignature},
		{name: "no webhook-id", header: headers("", now, good), want: webhook.ErrMissingHeader},
		{name: "no webhook-timestamp", header: headers("evt_1", time.Time{}, good), want: webhook.ErrMissingHeader},
		{name: "no webhook-signature", header: headers("evt_1", now, ""), want: webhook.ErrMissingHeader},
		{name: "timestamp not a number", header: func() http.Header {
			h := headers("evt_1", now, good)
			h.Set("webhook-timestamp", "2026-11-24T12:00:00Z")
			return h
		}(), want: webhook.ErrTimestamp},
		{name: "absurd timestamp", header: func() http.Header {
			h := headers("evt_1", now, good)
			h.Set("webhook-timestamp", "-9223372036854775808")
			return h
		}(), want: webhook.ErrTimestamp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, b := key, body
			if tc.key != nil {
				k = tc.key
			}
			if tc.body != nil {
				b = tc.body
			}
			err := webhook.Verify(k, tc.header, b, now, tc.tolerance)
			if tc.want == nil && err != nil {
				t.Errorf("refused: %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeSecret(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "plain text", want: "plain text"},
		{in: "whsec_c2VjcmV0", want: "secret"},
		{in: "whsec_not base64", bad: true},
		{in: "whsec_", bad: true},
	}
	for _, tc := range cases {
		got, err := webhook.DecodeSecret(tc.in)
		if (err != nil) != tc.bad || string(got) != tc.want {
			t.Errorf("DecodeSecret(%q) = %q, %v", tc.in, got, err)
		}
	}
}
