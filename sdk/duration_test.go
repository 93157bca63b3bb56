package sdk

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDurationInConfig(t *testing.T) {
	type conf struct {
		Timeout *Duration `json:"timeout"`
		Reopen  Duration  `json:"reopen"`
	}
	cases := []struct {
		raw     string
		timeout *time.Duration
		reopen  time.Duration
		err     string
	}{
		{raw: `{}`},
		{raw: `{"timeout":"15s","reopen":"3d"}`, timeout: ptr(15 * time.Second), reopen: 72 * time.Hour},
		{raw: `{"timeout":"0","reopen":"1h30m"}`, timeout: ptr(time.Duration(0)), reopen: 90 * time.Minute},
		{raw: `{"timeout":null}`},
		{raw: `{"timeout":"soon"}`, err: `connectors.x.config.timeout: "soon" is not a duration such as 10s, 15m or 3d`},
		{raw: `{"reopen":"2.5d"}`, err: `connectors.x.config.reopen: "2.5d" is not a duration`},
		{raw: `{"timeout":15}`, err: `connectors.x.config.timeout: expected a duration such as "10s", "15m" or "3d", got 15`},
	}
	for _, tc := range cases {
		t.Run(tc.raw, func(t *testing.T) {
			var c conf
			err := Config{Name: "x", Raw: json.RawMessage(tc.raw)}.Decode(&c)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (c.Timeout == nil) != (tc.timeout == nil) || (c.Timeout != nil && c.Timeout.D() != *tc.timeout) {
				t.Errorf("timeout %v, want %v", c.Timeout, tc.timeout)
			}
			if c.Reopen.D() != tc.reopen {
				t.Errorf("reopen %v, want %v", c.Reopen, tc.reopen)
			}
		})
	}
}

func TestDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, 90 * time.Second, 48 * time.Hour, 25 * time.Hour} {
		b, err := json.Marshal(Duration(d))
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back.D() != d {
			t.Errorf("%v → %s → %v, %v", d, b, back, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
