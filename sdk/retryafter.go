package sdk

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads a Retry-After header — delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3) — as a wait from now, capped at limit so
// that one odd answer cannot park events for days. It returns 0 when the
// header is absent or unusable, which leaves the wait to the hub's backoff:
// pass it to RetryResult as it is.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		// Compared before multiplying: a huge value would overflow.
		if secs >= int64(limit/time.Second) {
			return limit
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, limit)
		}
	}
	return 0
}
