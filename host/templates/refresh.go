package templates

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// Fetcher lists the whole catalogue from the Graph API.
type Fetcher func(ctx context.Context) ([]Template, error)

// Store keeps the catalogue (*store.Store).
type Store interface {
	// ReplaceTemplates stores a complete fetch that began at asOf and
	// returns how many templates it had, added, changed and removed.
	ReplaceTemplates(ctx context.Context, list []Template, asOf time.Time) (added, changed, removed int, err error)
	TemplateRefreshFailed(ctx context.Context, reason string) error
}

// Refresher fetches the catalogue at start and every Interval, and at once
// when asked (Refresh). A failed fetch keeps the catalogue as it was and
// is retried sooner, backing off from a minute up to Interval.
type Refresher struct {
	Fetch    Fetcher
	Store    Store
	Clock    clockwork.Clock
	Interval time.Duration
	Logger   *slog.Logger
	// OnRefresh, when set, runs after each successful fetch (to check the
	// triggers' templates against it).
	OnRefresh func(ctx context.Context)

	mu   sync.Mutex // one fetch at a time
	once sync.Once
}

// Result is what one fetch did.
type Result struct {
	Templates, Added, Changed, Removed int
}

func (r *Refresher) init() {
	r.once.Do(func() {
		if r.Clock == nil {
			r.Clock = clockwork.NewRealClock()
		}
		if r.Logger == nil {
			r.Logger = slog.Default()
		}
		if r.Interval <= 0 {
			r.Interval = time.Hour
		}
	})
}

// Refresh fetches the catalogue now and stores it.
func (r *Refresher) Refresh(ctx context.Context) (Result, error) {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.Clock.Now()
	list, err := r.Fetch(ctx)
	if err != nil {
		reason := fmt.Sprintf("fetching the template catalogue: %v", err)
		if serr := r.Store.TemplateRefreshFailed(context.WithoutCancel(ctx), reason); serr != nil {
			r.Logger.Error("templates: recording a failed fetch failed", "err", serr)
		}
		return Result{}, err
	}
	added, changed, removed, err := r.Store.ReplaceTemplates(ctx, list, start)
	if err != nil {
		return Result{}, fmt.Errorf("storing the template catalogue: %w", err)
	}
	res := Result{Templates: len(list), Added: added, Changed: changed, Removed: removed}
	r.Logger.Info("templates: catalogue refreshed", "templates", res.Templates, "added", added, "changed", changed, "removed", removed)
	if r.OnRefresh != nil {
		r.OnRefresh(ctx)
	}
	return res, nil
}

// Run refreshes at once, then on schedule, until ctx ends.
func (r *Refresher) Run(ctx context.Context) {
	r.init()
	retry := time.Minute
	for {
		wait := r.Interval
		if _, err := r.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = min(retry, r.Interval)
			retry = min(2*retry, r.Interval)
			r.Logger.Warn("templates: fetching the catalogue failed; sends are checked against what is known", "err", err, "retry_in", wait.String())
		} else {
			retry = time.Minute
		}
		select {
		case <-ctx.Done():
			return
		case <-r.Clock.After(wait):
		}
	}
}
