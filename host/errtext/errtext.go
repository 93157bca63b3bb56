// Package errtext bounds the error text the hub records and shows. Error
// strings come from plugins (external ones included) and from the systems
// behind them, which may answer with a whole HTML page or a binary blob:
// stored as they come, sixty dead letters made a 75 MB admin answer. Every
// recorded error goes through Cap, so it is valid UTF-8 and at most Max
// bytes.
package errtext

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Max is the most bytes of error text the hub keeps for one attempt,
// dead letter or plugin failure: enough for any real error message and
// the start of a response body.
const Max = 4 << 10

// Cap returns s as valid UTF-8 (invalid bytes become U+FFFD) of at most
// Max bytes. Longer text is cut on a rune boundary and ends with a marker
// saying how long the original was.
func Cap(s string) string { return CapN(s, Max) }

// CapN is Cap with a limit of n bytes (n is raised to fit the marker).
func CapN(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	marker := " … [truncated, " + strconv.Itoa(len(s)) + " bytes in all]"
	keep := max(n-len(marker), 0)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + marker
}
