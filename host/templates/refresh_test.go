package templates

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

type memStore struct {
	mu       sync.Mutex
	replaced [][]Template
	asOf     []time.Time
	failures []string
	changed  chan struct{}
}

func (m *memStore) ReplaceTemplates(ctx context.Context, list []Template, asOf time.Time) (int, int, int, error) {
	m.mu.Lock()
	m.replaced = append(m.replaced, list)
	m.asOf = append(m.asOf, asOf)
	m.mu.Unlock()
	m.changed <- struct{}{}
	return len(list), 0, 0, nil
}

func (m *memStore) TemplateRefreshFailed(ctx context.Context, reason string) error {
	m.mu.Lock()
	m.failures = append(m.failures, reason)
	m.mu.Unlock()
	m.changed <- struct{}{}
	return nil
}

func TestRefresherSchedule(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	st := &memStore{changed: make(chan struct{}, 10)}
	var mu sync.Mutex
	fail := 0 // the next fetches that fail
	calls := 0
	r := &Refresher{
		Store: st, Clock: clock, Interval: time.Hour,
		Fetch: func(ctx context.Context) ([]Template, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if fail > 0 {
				fail--
				return nil, errors.New("graph is down")
			}
			return []Template{{Name: "t", Language: "en_US", Status: "APPROVED"}}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	step := func(d time.Duration) {
		t.Helper()
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(d)
	}
	<-st.changed // at start
	// Not before the interval.
	step(59 * time.Minute)
	select {
	case <-st.changed:
		t.Fatal("refreshed before the interval")
	default:
	}
	mu.Lock()
	fail = 2
	mu.Unlock()
	step(time.Minute)
	<-st.changed // failed: retried after a minute, then two
	step(time.Minute)
	<-st.changed
	step(2 * time.Minute)
	<-st.changed // succeeded
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.replaced) != 2 || len(st.failures) != 2 || calls != 4 {
		t.Fatalf("replaced %d, failures %v, calls %d", len(st.replaced), st.failures, calls)
	}
	if want := time.Date(2026, 11, 24, 13, 3, 0, 0, time.UTC); !st.asOf[1].Equal(want) {
		t.Errorf("second fetch as of %s, want %s (when it began)", st.asOf[1], want)
	}
}
