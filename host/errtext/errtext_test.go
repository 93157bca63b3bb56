package errtext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCapN(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		want     string
	}{
		{"short stays", "connection refused", 64, "connection refused"},
		{"exactly n stays", strings.Repeat("a", 64), 64, strings.Repeat("a", 64)},
		{"invalid bytes replaced", "bad \xff\xfe body", 64, "bad \uFFFD body"},
		{"long is cut with a marker", strings.Repeat("x", 100), 60, strings.Repeat("x", 60-len(" … [truncated, 100 bytes in all]")) + " … [truncated, 100 bytes in all]"},
		// 3-byte runes: the cut must not split one.
		{"cut on a rune boundary", strings.Repeat("€", 40), 60, strings.Repeat("€", 8) + " … [truncated, 120 bytes in all]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CapN(tc.in, tc.n)
			if got != tc.want {
				t.Errorf("CapN = %q, want %q", got, tc.want)
			}
			if len(got) > max(tc.n, len(" … [truncated, 100 bytes in all]")) || !utf8.ValidString(got) {
				t.Errorf("CapN = %q: %d bytes, valid UTF-8 %v", got, len(got), utf8.ValidString(got))
			}
		})
	}
}

func TestCapBoundsHugeInvalidText(t *testing.T) {
	huge := strings.Repeat("é\xff", 1<<20)
	got := Cap(huge)
	if len(got) > Max || !utf8.ValidString(got) || !strings.Contains(got, "truncated") {
		t.Fatalf("Cap: %d bytes, valid %v, tail %q", len(got), utf8.ValidString(got), got[len(got)-40:])
	}
}
