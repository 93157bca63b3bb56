package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/store"
)

// Retry logging is rate-limited per connector: a connector that is down
// fails every event of every batch, and one WARN per event would bury
// everything else in the log. The first retryLogBurst retries of each
// retryLogWindow are logged one by one; the rest are counted and summed
// up in one WARN when the next window starts.
const (
	retryLogBurst  = 5
	retryLogWindow = time.Minute
)

// retryLog is one connector's retry log limiter.
type retryLog struct {
	mu         sync.Mutex
	start      time.Time // of the current window
	logged     int       // in the current window
	suppressed int       // in the current window, beyond the burst
	lastErr    string    // of the suppressed ones
}

// allow reports whether a retry at now may be logged; when a window with
// suppressed retries has ended it also returns their count and the last
// error, to be summed up.
func (r *retryLog) allow(now time.Time) (ok bool, suppressed int, lastErr string, window time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start.IsZero() || now.Sub(r.start) >= retryLogWindow {
		suppressed, lastErr, window = r.suppressed, r.lastErr, now.Sub(r.start)
		r.start, r.logged, r.suppressed, r.lastErr = now, 0, 0, ""
	}
	if r.logged < retryLogBurst {
		r.logged++
		return true, suppressed, lastErr, window
	}
	return false, suppressed, lastErr, window
}

func (r *retryLog) suppress(err string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suppressed++
	r.lastErr = err
}

// logOutcomes writes what became of a batch that did not go through
// entirely: a WARN per retry (rate-limited), an ERROR per dead letter.
// attempts are batch's, one per delivery, in order.
func (w *worker) logOutcomes(clock clockwork.Clock, batch []store.Delivery, attempts []store.Attempt) {
	log := w.e.log
	now := clock.Now()
	for i, a := range attempts {
		d := batch[i]
		switch {
		case a.Held:
			// Not the event's failure; the one ahead of it is logged.
		case a.State == store.StateDead:
			log.Error("delivery gave up: the event is a dead letter (GET /api/v1/deadletters, replay with wahub deadletters replay)",
				"connector", w.name, "event", d.EventID, "attempts", d.Attempts+1, "outcome", a.Outcome, "err", a.Error)
		case a.State == store.StatePending:
			ok, suppressed, lastErr, window := w.retries.allow(now)
			if suppressed > 0 {
				log.Warn("more delivery retries were not logged one by one", "connector", w.name,
					"retries", suppressed, "window", window.Round(time.Second).String(), "last_err", lastErr)
			}
			if !ok {
				w.retries.suppress(a.Error)
				continue
			}
			log.Warn("delivery failed; will retry", "connector", w.name, "event", d.EventID,
				"attempt", d.Attempts+1, "max_attempts", w.pol.MaxAttempts, "outcome", a.Outcome, "err", a.Error,
				"retry_in", a.NextAt.Sub(now).Round(time.Millisecond).String(), "next_at", a.NextAt.UTC().Format(time.RFC3339))
		}
	}
}

// logEnabled tells whether logOutcomes would write anything, so that a
// batch that went through costs nothing.
func logEnabled(log *slog.Logger, attempts []store.Attempt) bool {
	for _, a := range attempts {
		if a.State == store.StateDead || (a.State == store.StatePending && !a.Held) {
			return log.Enabled(context.Background(), slog.LevelWarn)
		}
	}
	return false
}
