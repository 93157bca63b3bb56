package graphtest

import "time"

// bucket is a token bucket driven by the injected clock. Meta does not say
// how it measures its limits; a bucket holding one second's worth (for
// throughput) lets through exactly what a well-behaved sender's own bucket
// lets out, so the fake refuses only a sender that is really too fast.
type bucket struct {
	every  time.Duration // one token per every
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(every time.Duration, burst int, now time.Time) *bucket {
	return &bucket{every: every, burst: float64(burst), tokens: float64(burst), last: now}
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+float64(d)/float64(b.every))
		b.last = now
	}
}

// ready reports whether a token is available without taking it, so a
// message refused by one limit does not use up the other.
func (b *bucket) ready(now time.Time) bool {
	b.refill(now)
	// The tolerance absorbs float drift over long runs at exact rates.
	return b.tokens >= 1-1e-9
}

func (b *bucket) take() { b.tokens-- }

// rateWindow tracks accepted messages in the trailing second to record the
// highest rate a phone number actually reached.
type rateWindow struct {
	times []time.Time
	max   int
}

func (r *rateWindow) add(now time.Time) {
	cut := 0
	for cut < len(r.times) && !r.times[cut].After(now.Add(-time.Second)) {
		cut++
	}
	r.times = append(r.times[cut:], now)
	r.max = max(r.max, len(r.times))
}
