package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wahub/wahub/plugins/internal/stream/streamtest"
	"github.com/wahub/wahub/plugins/kafka"
)

// BenchmarkKafka is events/s into an in-process kfake cluster (3
// partitions, acks=all, idempotent) through the connector — Deliver in
// batches of 100, as the hub sends them, each answered only once the
// broker acknowledged every record — against its baseline in the same
// run: a bare franz-go producer loop publishing the same records (same
// client options, key, headers and body, encoded beforehand) and waiting
// once at the end. Compare the two events/s figures.
func BenchmarkKafka(b *testing.B) {
	cl, err := startBench()
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.Run("bare-franz-go", func(b *testing.B) {
		encoded := streamtest.Encode(b)
		recs := make([]*kgo.Record, len(encoded))
		for i, e := range encoded {
			r := &kgo.Record{Topic: "bench", Key: []byte(e.Event.ConversationID), Value: e.Body}
			for _, h := range e.Headers {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)})
			}
			recs[i] = r
		}
		client, err := kgo.NewClient(kgo.SeedBrokers(cl.Brokers()...), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		var wg sync.WaitGroup
		var failed error
		var mu sync.Mutex
		b.ResetTimer()
		for _, r := range recs {
			wg.Add(1)
			client.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
				wg.Done()
			})
		}
		wg.Wait()
		b.StopTimer()
		if failed != nil {
			b.Fatal(failed)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, batch := range []int{100, 500} {
		b.Run(fmt.Sprintf("connector-batch%d", batch), func(b *testing.B) {
			c := streamtest.MustConfigure(b, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "bench"})
			streamtest.BenchDeliver(b, c, batch)
		})
	}
}
