package delivery

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// breaker stops a worker from sending batch after batch to a connector
// whose every attempt fails: after breakerThreshold failed batches in a row
// it opens for a cool-down that doubles each time it trips again, then lets
// one batch through (half-open). A success closes it. It runs on the
// injected clock, which is why it is not a library breaker.
type breaker struct {
	clock    clockwork.Clock
	mu       sync.Mutex
	failures int
	cooldown time.Duration
	openTill time.Time
}

const (
	breakerThreshold   = 5
	breakerMinCooldown = 5 * time.Second
	breakerMaxCooldown = 5 * time.Minute
)

func newBreaker(clock clockwork.Clock) *breaker { return &breaker{clock: clock} }

// readyAt is when the next batch may go (zero or past: now).
func (b *breaker) readyAt() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openTill
}

func (b *breaker) record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures, b.cooldown, b.openTill = 0, 0, time.Time{}
		return
	}
	b.failures++
	if b.failures < breakerThreshold {
		return
	}
	if b.cooldown == 0 {
		b.cooldown = breakerMinCooldown
	} else {
		b.cooldown = min(2*b.cooldown, breakerMaxCooldown)
	}
	b.openTill = b.clock.Now().Add(b.cooldown)
}

func (b *breaker) state() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.openTill.After(b.clock.Now()):
		return "open"
	case b.failures >= breakerThreshold:
		return "half-open"
	}
	return "closed"
}
