package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/sdk"
)

// The backends side by side in one run: SQLite (one hub) is the baseline
// for PostgreSQL with one hub, and one PostgreSQL hub for three. Run with
//
//	go test -run '^$' -bench 'Backend' -benchtime 20000x ./host/store/
//
// Both backends commit durably (SQLite synchronous=full; the test server
// runs with fsync off, so PostgreSQL's figures leave out its fsync: compare
// ratios, not absolute numbers, and see the README).

type benchBackend struct {
	name string
	hubs int
	open func(b *testing.B) []*store.Store
}

func benchBackends() []benchBackend {
	sqlite := func(b *testing.B) []*store.Store {
		s, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return []*store.Store{s}
	}
	pg := func(n int) func(b *testing.B) []*store.Store {
		return func(b *testing.B) []*store.Store {
			url := pgtest.URL(b)
			out := make([]*store.Store, n)
			for i := range out {
				s, err := store.OpenPostgres(url, store.Options{}, store.PostgresOptions{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				out[i] = s
			}
			return out
		}
	}
	return []benchBackend{{"sqlite", 1, sqlite}, {"postgres", 1, pg(1)}, {"postgres", 3, pg(3)}}
}

func benchEvent(i int64) sdk.Event {
	at := time.Unix(1764000000, 0)
	wa := fmt.Sprintf("5511%09d", i%2000)
	return sdk.Event{ID: fmt.Sprintf("evt_bench_%d", i), Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at,
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: wa},
		Message: &sdk.Message{ID: fmt.Sprintf("wamid.%d", i), Type: "text", Text: "Olá, preciso de ajuda com meu pedido"}}
}

// BenchmarkBackendIngest appends one event per call from 32 concurrent
// callers per hub, as webhook requests do.
func BenchmarkBackendIngest(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(fmt.Sprintf("%s/hubs=%d", be.name, be.hubs), func(b *testing.B) {
			hubs := be.open(b)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, s := range hubs {
				for g := 0; g < 32; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := next.Add(1)
							if i > int64(b.N) {
								return
							}
							if _, err := s.Append(context.Background(), []sdk.Event{benchEvent(i)}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkBackendDelivery routes b.N events to one connector and drains
// them: each hub takes due deliveries of the partitions it holds, 100 at
// a time, and records them delivered under its leases, as the delivery
// engine does with a plugin that answers at once.
func BenchmarkBackendDelivery(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(fmt.Sprintf("%s/hubs=%d", be.name, be.hubs), func(b *testing.B) {
			hubs := be.open(b)
			ctx := context.Background()
			for i := 0; i < b.N; i += 200 {
				batch := make([]sdk.Event, 0, 200)
				for j := i; j < min(i+200, b.N); j++ {
					batch = append(batch, benchEvent(int64(j)))
				}
				if _, err := hubs[0].Append(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			decide := func(*sdk.Event, store.RouteState) store.Decision { return store.Decision{Connectors: []string{"c"}} }
			for {
				n, err := hubs[0].Dispatch(ctx, 500, decide)
				if err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			var delivered atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for h, s := range hubs {
				var parts []int
				var names []string
				for p := h; p < store.Partitions; p += len(hubs) {
					parts = append(parts, p)
					names = append(names, fmt.Sprint("d:c:", p))
				}
				fence, err := s.AcquireLeases(ctx, fmt.Sprint("hub", h), names, time.Hour, 0)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						due, err := s.DueIn(ctx, "c", parts, time.Now(), 100)
						if err != nil {
							b.Error(err)
							return
						}
						if len(due) == 0 {
							return
						}
						now := time.Now()
						att := make([]store.Attempt, len(due))
						for i, d := range due {
							att[i] = store.Attempt{DeliveryID: d.ID, At: now, Outcome: "delivered", State: store.StateDelivered}
						}
						if err := s.RecordAttempts(ctx, att, fence...); err != nil {
							b.Error(err)
							return
						}
						delivered.Add(int64(len(due)))
					}
				}()
			}
			wg.Wait()
			if delivered.Load() != int64(b.N) {
				b.Fatalf("delivered %d of %d", delivered.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}
