package graph

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"30", 30 * time.Second, true},
		{" 0 ", 0, true},
		{"-5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRetryAfterPrefersHeaderOverUsage(t *testing.T) {
	c := New("http://x", "t", nil)
	h := http.Header{}
	h.Set("Retry-After", "5")
	h.Set("X-Business-Use-Case-Usage", `{"1":[{"estimated_time_to_regain_access":2}],"2":[{"estimated_time_to_regain_access":4}]}`)
	if d := c.retryAfter(h); d != 5*time.Second {
		t.Errorf("got %v", d)
	}
	h.Del("Retry-After")
	if d := c.retryAfter(h); d != 4*time.Minute {
		t.Errorf("longest usage wait: got %v", d)
	}
	h.Set("X-Business-Use-Case-Usage", "garbage")
	if d := c.retryAfter(h); d != 0 {
		t.Errorf("garbage: got %v", d)
	}
}

func TestSnippet(t *testing.T) {
	if s := snippet(nil); s != "(empty body)" {
		t.Errorf("empty: %q", s)
	}
	long := strings.Repeat("é", 300)
	s := snippet([]byte(long))
	if !strings.HasSuffix(s, "…") || len(s) > 210 || strings.ContainsRune(s, '\uFFFD') {
		t.Errorf("long: %q", s)
	}
	if s := snippet([]byte("a\nb\tc")); s != "a b c" {
		t.Errorf("control: %q", s)
	}
}
