package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/wahub/wahub/sdk"
)

// BenchmarkAppend measures one-event appends from many goroutines, as the
// webhook handler makes them; group commit is what keeps this fast.
func BenchmarkAppend(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		b.Run("synchronous="+sync, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{Synchronous: sync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					ev := textEvent(fmt.Sprintf("bench%d", i), fmt.Sprintf("5511%07d", i%1000), "", "Bench", t0)
					if _, err := s.Append(context.Background(), []sdk.Event{ev}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			commits, writes := s.WriterStats()
			b.ReportMetric(float64(writes)/float64(commits), "writes/commit")
		})
	}
}
