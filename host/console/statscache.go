package console

import (
	"context"
	"sync"
	"time"

	"github.com/wahub/wahub/host/store"
)

// The period's rates, team volumes and median first response come from
// a scan of the log that grows with it (a week of a busy hub is millions
// of rows), and a live overview would repeat it at every commit. They
// are kept per range for a while instead and recomputed in the
// background: a page waits for them a moment and otherwise shows the
// last figures, or says they are being computed, and its live refresh
// brings them when ready.

type statsEntry struct {
	at   time.Time
	st   store.Stats
	err  error
	done chan struct{}
}

type statsCache struct {
	mu      sync.Mutex
	entries map[string]*statsEntry // by range
	fresh   map[string]*statsEntry // the last completed one, by range
}

// statsTTL is how long a range's figures are reused.
func statsTTL(rg timeRange) time.Duration {
	switch {
	case rg.Span <= time.Hour:
		return 10 * time.Second
	case rg.Span <= 24*time.Hour:
		return time.Minute
	}
	return 5 * time.Minute
}

// statsWait is how long a page waits for figures being computed.
const statsWait = 150 * time.Millisecond

// stats returns the range's figures and whether there are any yet.
func (c *Console) stats(ctx context.Context, rg timeRange) (store.Stats, bool, error) {
	sc := &c.statsCache
	now := c.opt.Now()
	sc.mu.Lock()
	if sc.entries == nil {
		sc.entries, sc.fresh = map[string]*statsEntry{}, map[string]*statsEntry{}
	}
	e := sc.entries[rg.Name]
	if e == nil || e.isDone() && now.Sub(e.at) >= statsTTL(rg) {
		e = &statsEntry{at: now, done: make(chan struct{})}
		sc.entries[rg.Name] = e
		go func() {
			// Not the request's context: the next page wants the result
			// even if this one was closed.
			bg, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			e.st, e.err = c.opt.Store.Stats(bg, now.Add(-rg.Span))
			sc.mu.Lock()
			if e.err == nil {
				sc.fresh[rg.Name] = e
			} else {
				delete(sc.entries, rg.Name) // try again next time
			}
			sc.mu.Unlock()
			close(e.done)
		}()
	}
	sc.mu.Unlock()
	t := time.NewTimer(statsWait)
	defer t.Stop()
	select {
	case <-e.done:
		if e.err != nil {
			return store.Stats{}, false, e.err
		}
		return e.st, true, nil
	case <-t.C:
	case <-ctx.Done():
		return store.Stats{}, false, ctx.Err()
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if f := sc.fresh[rg.Name]; f != nil {
		return f.st, true, nil
	}
	return store.Stats{}, false, nil
}

func (e *statsEntry) isDone() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}
