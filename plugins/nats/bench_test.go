package nats_test

import (
	"context"
	"fmt"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahub/wahub/plugins/internal/stream/streamtest"
	"github.com/wahub/wahub/plugins/nats"
)

// BenchmarkNATS is events/s into an embedded nats-server's JetStream
// (file storage, two-minute duplicate window) through the connector —
// Deliver in batches of 100 (the hub's default batch_size) and 500, each answered only
// once JetStream acknowledged every message — against its baseline in the
// same run: a bare nats.go loop publishing the same messages (subject,
// headers, Nats-Msg-Id and body, encoded beforehand) asynchronously and
// waiting once at the end. Compare the two events/s figures.
func BenchmarkNATS(b *testing.B) {
	s, err := natsStart(b)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	run := 0
	b.Run("bare-nats.go", func(b *testing.B) {
		run++
		subject := fmt.Sprintf("bare%d.events", run)
		if err := s.AddStream(context.Background(), fmt.Sprintf("BARE%d", run), 0, subject); err != nil {
			b.Fatal(err)
		}
		encoded := streamtest.Encode(b)
		msgs := make([]*natsgo.Msg, len(encoded))
		for i, e := range encoded {
			m := natsgo.NewMsg(subject)
			m.Data = e.Body
			for _, h := range e.Headers {
				m.Header.Set(h.Key, h.Value)
			}
			msgs[i] = m
		}
		nc, err := natsgo.Connect(s.URL())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(len(msgs)+1))
		if err != nil {
			b.Fatal(err)
		}
		futures := make([]jetstream.PubAckFuture, len(msgs))
		b.ResetTimer()
		for i, m := range msgs {
			if futures[i], err = js.PublishMsgAsync(m, jetstream.WithMsgID(encoded[i].Event.ID)); err != nil {
				b.Fatal(err)
			}
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	for _, batch := range []int{100, 500} {
		b.Run(fmt.Sprintf("connector-batch%d", batch), func(b *testing.B) {
			run++
			subject := fmt.Sprintf("conn%d.events", run)
			if err := s.AddStream(context.Background(), fmt.Sprintf("CONN%d", run), 0, subject); err != nil {
				b.Fatal(err)
			}
			c := streamtest.MustConfigure(b, nats.New, map[string]any{"url": s.URL(), "subject": subject})
			streamtest.BenchDeliver(b, c, batch)
		})
	}
}
