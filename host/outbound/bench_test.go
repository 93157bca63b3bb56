package outbound

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// BenchmarkSender is the whole outbound path with the limits lifted:
// Submit (policy and the outbox write), then the sender's mark, send and
// record, against the fake Graph API over loopback. BenchmarkGraphOnly is
// its baseline in the same run: the same sends with the client alone.
// Compare their msgs/s.
var benchSync = "full"

func BenchmarkSender(b *testing.B) {
	st, err := store.Open(filepath.Join(b.TempDir(), "wahub.db"), store.Options{Synchronous: benchSync})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithPhoneNumber(pn, "15550783881"))
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	if _, err := st.Append(ctx, []sdk.Event{{ID: "evt_seed", Type: sdk.TypeMessageReceived, OccurredAt: time.Now(), ReceivedAt: time.Now(),
		Business: &sdk.Business{PhoneNumberID: pn}, Contact: &sdk.Contact{WAID: "5511999999999"},
		Message: &sdk.Message{ID: "wamid.seed", Type: "text", Text: "oi"}}}); err != nil {
		b.Fatal(err)
	}
	s := New(Options{Store: st, Graph: graph.New(srv.URL+"/v23.0", "tok", nil), MessagesPerSecond: 1e9, Concurrency: 64})
	tpl := &sdk.Template{Name: "promo", Language: "pt_BR"}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, _, err := s.Submit(ctx, "api", sdk.OutboundMessage{To: fmt.Sprintf("551%010d", i), PhoneNumberID: pn, Template: tpl}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for fake.SentCount() < b.N {
		time.Sleep(time.Millisecond)
	}
	// Accepted answers are recorded after the fake counts them.
	for {
		c, _ := st.OutboundCounts(ctx)
		if c[store.OutAccepted] >= int64(b.N) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	commits, writes := st.WriterStats()
	b.ReportMetric(float64(writes)/float64(max(commits, 1)), "writes/commit")
}

func BenchmarkGraphOnly(b *testing.B) {
	fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithPhoneNumber(pn, "15550783881"))
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := graph.New(srv.URL+"/v23.0", "tok", nil)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Send(context.Background(), pn, graph.Message{To: "+5511999999999", Template: &graph.Template{Name: "promo", Language: "pt_BR"}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
