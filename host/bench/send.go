package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/outbound"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// SendOptions set the size of the sender benchmark.
type SendOptions struct {
	Messages int // per measured phase
	Rounds   int
	// Limit is messages_per_second for the limited phase, LimitedFor its
	// length.
	Limit      float64
	LimitedFor time.Duration
	Dir        string
}

const (
	goalSendRate = 5000.0
	benchPN      = "106540352242922"
)

// Send measures the outbound path: messages submitted (policy, the outbox
// commit), then taken by the sender, marked sending, sent to the fake Graph
// API over loopback and recorded accepted — against the same sends made
// with the Graph client alone, in alternating rounds. Then, with
// messages_per_second set, whether the achieved rate is the limit.
func Send(ctx context.Context, opt SendOptions, w io.Writer) error {
	if opt.Messages <= 0 {
		opt.Messages = 10_000
	}
	if opt.Rounds <= 0 {
		opt.Rounds = 3
	}
	if opt.Limit <= 0 {
		opt.Limit = 80
	}
	if opt.LimitedFor <= 0 {
		opt.LimitedFor = 10 * time.Second
	}
	dir := opt.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "wahub-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	st, err := store.Open(filepath.Join(dir, "send.db"), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	// The policy sends only from numbers the hub has heard of.
	now := time.Now()
	if _, err := st.Append(ctx, []sdk.Event{{ID: "evt_bench_seed", Type: sdk.TypeMessageReceived, OccurredAt: now, ReceivedAt: now,
		Business: &sdk.Business{PhoneNumberID: benchPN}, Contact: &sdk.Contact{WAID: "5511999999999"},
		Message: &sdk.Message{ID: "wamid.seed", Type: "text", Text: "oi"}}}); err != nil {
		return err
	}
	fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithPhoneNumber(benchPN, "15550783881"))
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()
	gc := graph.New(srv.URL+"/v23.0", "tok", nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	fmt.Fprintf(w, "send benchmark: %d CPUs, %d template messages per phase, %d rounds, fake Graph API over loopback, SQLite synchronous=full\n",
		runtime.NumCPU(), opt.Messages, opt.Rounds)
	var next atomic.Int64
	var rates []float64
	var ratios []float64
	for r := 1; r <= opt.Rounds; r++ {
		fake.Reset()
		base := graphOnly(ctx, gc, opt.Messages)
		fmt.Fprintf(w, "  round %d  %-42s %8.0f msgs/s\n", r, "baseline: Graph client alone, 64 in flight", base)
		fake.Reset()
		rate, err := sendRun(ctx, st, gc, fake, 1e9, opt.Messages, &next, quiet)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  round %d  %-42s %8.0f msgs/s\n", r, "sender: submit → outbox → send → accepted", rate)
		rates = append(rates, rate)
		ratios = append(ratios, rate/base)
	}
	sr, rr := spread(rates), spread(ratios)
	commits, writes := st.WriterStats()
	fmt.Fprintf(w, "  sender, limits lifted: median %.0f msgs/s (range %.0f–%.0f; goal >= %.0f: %s); %.2f of the Graph-only baseline (range %.2f–%.2f); %.1f writes per group commit\n",
		sr.Median, sr.Min, sr.Max, goalSendRate, verdict(sr.Median >= goalSendRate), rr.Median, rr.Min, rr.Max, float64(writes)/float64(max(commits, 1)))

	// Limited: enough queued to keep the sender busy for LimitedFor.
	fake.Reset()
	n := int(opt.Limit * opt.LimitedFor.Seconds())
	if _, err := sendRun(ctx, st, gc, fake, opt.Limit, n, &next, quiet); err != nil {
		return err
	}
	sent := fake.Sent()
	if len(sent) < 2 {
		return fmt.Errorf("limited phase: %d messages sent", len(sent))
	}
	span := sent[len(sent)-1].Time.Sub(sent[0].Time)
	achieved := float64(len(sent)-1) / span.Seconds()
	peak := fake.MaxRate(benchPN)
	// One token of burst: the first second may hold one more.
	ok := achieved >= opt.Limit*0.98 && achieved <= opt.Limit*1.02 && float64(peak) <= opt.Limit+1
	fmt.Fprintf(w, "  messages_per_second %.0f: achieved %.1f msgs/s over %s, at most %d in any one-second window (goal: the limit, ±2%%: %s)\n",
		opt.Limit, achieved, span.Round(time.Millisecond), peak, verdict(ok))
	return nil
}

// graphOnly sends n messages with the client alone, 64 in flight.
func graphOnly(ctx context.Context, c *graph.Client, n int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				c.Send(ctx, benchPN, graph.Message{To: fmt.Sprintf("+551%010d", i), Template: &graph.Template{Name: "promo", Language: "pt_BR"}})
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// sendRun runs a sender at mps, submits n messages (16 submitters, each to
// a recipient of its own) and returns the rate from the first submit to
// the last one recorded accepted.
func sendRun(ctx context.Context, st *store.Store, gc *graph.Client, fake *graphtest.Server, mps float64, n int, next *atomic.Int64, log *slog.Logger) (float64, error) {
	before, err := st.OutboundCounts(ctx)
	if err != nil {
		return 0, err
	}
	s := outbound.New(outbound.Options{Store: st, Graph: gc, MessagesPerSecond: mps, Concurrency: 64, Logger: log})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()
	tpl := &sdk.Template{Name: "promo", Language: "pt_BR"}
	start := time.Now()
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	errc := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				i := next.Add(1)
				if _, _, err := s.Submit(ctx, "api", sdk.OutboundMessage{To: fmt.Sprintf("551%010d", i), PhoneNumberID: benchPN, Template: tpl}); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return 0, fmt.Errorf("submit: %w", err)
	default:
	}
	// Accepted answers are recorded after the fake counts them. Counting
	// the outbox is a scan: wait for the fake's cheap count first.
	for fake.SentCount() < n {
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	for {
		c, err := st.OutboundCounts(ctx)
		if err != nil {
			return 0, err
		}
		if c[store.OutAccepted]-before[store.OutAccepted] >= int64(n) {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
