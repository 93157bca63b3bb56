// Package bench measures the hub's hot paths against a baseline measured in
// the same run, so that figures taken on a shared, noisy machine still mean
// something as ratios. `wahub bench` prints them, each goal marked met or
// MISSED.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/hub"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/store"
)

// IngestOptions set the size of the ingest benchmark.
type IngestOptions struct {
	Duration    time.Duration // each measured throughput phase
	Warmup      time.Duration // unmeasured load before each phase
	Rounds      int           // baseline/durable pairs, interleaved
	Concurrency int           // clients posting back to back
	PacedRate   int           // requests per second of the latency phase
	PacedFor    time.Duration
	Dir         string // where the SQLite file goes; a temporary directory if empty
	// Postgres, when set, adds the PostgreSQL phases: "auto" starts a
	// throw-away server (initdb, pg_ctl), anything else is a URL whose
	// user may create databases.
	Postgres string
	// Soak replaces the throughput phases: the hub takes PacedRate
	// requests/s for Duration and RSS is reported at the start and the
	// end.
	Soak bool
	// Target, when set, is the webhook URL of a hub already running on
	// this machine (wahub serve), loaded instead of one the benchmark
	// starts; Secret is its whatsapp.app_secret.
	Target, Secret string
	// Plugin is the no-op connector's built-in name; Executable serves it
	// (default: this binary).
	Plugin     string
	Executable string
}

// Goals of the ingest benchmark (issue 22).
const (
	goalIngestRatio   = 0.60
	goalIngestP99     = 20 * time.Millisecond
	goalPostgresRatio = 0.50
	goalSoakGrowth    = 0.20 // RSS may grow by this share over a soak
)

// Ingest drives a whole hub — the webhook handler committing with
// synchronous=full, routing and delivery to a no-op connector running at
// the same time — with signed 1 KB one-message webhooks, and in the same
// run a bare server that only verifies the signature and parses the JSON.
// Phases alternate (baseline, durable, baseline, …), each after a warm-up,
// so that the ratio of each round compares the two under the same noise.
func Ingest(ctx context.Context, opt IngestOptions, w io.Writer) error {
	if opt.Duration <= 0 {
		opt.Duration = 5 * time.Second
	}
	if opt.Warmup <= 0 {
		opt.Warmup = time.Second
	}
	if opt.Rounds <= 0 {
		opt.Rounds = 3
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 32
	}
	if opt.PacedRate <= 0 {
		opt.PacedRate = 2000
	}
	if opt.PacedFor <= 0 {
		opt.PacedFor = 5 * time.Second
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
	if opt.Soak {
		if opt.Target != "" {
			return errors.New("--soak reports the memory of the hub it starts; drop --target")
		}
		return soak(ctx, opt, dir, w)
	}
	fmt.Fprintf(w, "ingest benchmark: %d CPUs, %d concurrent clients, %d rounds of %s baseline / %s durable (each after %s warm-up)\n",
		runtime.NumCPU(), opt.Concurrency, opt.Rounds, opt.Duration, opt.Duration, opt.Warmup)
	what := "a whole hub (SQLite, synchronous=full), routing and delivery to a no-op plugin running"
	if opt.Target != "" {
		if err := loopbackURL(opt.Target); err != nil {
			return err
		}
		if opt.Postgres != "" {
			return errors.New("--target and --postgres: the PostgreSQL phases run a hub of their own; drop one")
		}
		what = opt.Target + " (a hub of yours: its writer and its routing are not observed from here)"
	}
	fmt.Fprintf(w, "  signed %d-byte text webhooks; durable = %s\n", len(must(body(0))), what)

	base, baseURL, err := serve(http.HandlerFunc(baseline))
	if err != nil {
		return err
	}
	defer base.Close()
	durable := phase{name: "durable: hub, commit before 200", unit: "req/s"}
	dst := target{opt.Target, cmp.Or(opt.Secret, benchSecret)}
	var h *benchHub
	if opt.Target == "" {
		if h, err = startHub(ctx, fmt.Sprintf("store: {path: %q}", filepath.Join(dir, "hub.db")), opt); err != nil {
			return err
		}
		defer h.stop()
		dst, durable.after, durable.busy = h.target(), h.drained, h.st.WriterBusy
	}
	var seq atomic.Int64
	c := client(opt.Concurrency)
	durable.run = func(d time.Duration) (float64, int64) {
		n, errs := closedLoop(ctx, c, dst, opt.Concurrency, d, &seq)
		return float64(n) / d.Seconds(), errs
	}
	res, err := alternate(ctx, w, opt, c, &seq,
		phase{name: "baseline: verify signature + parse JSON", unit: "req/s", run: func(d time.Duration) (float64, int64) {
			n, errs := closedLoop(ctx, c, target{baseURL, benchSecret}, opt.Concurrency, d, &seq)
			return float64(n) / d.Seconds(), errs
		}},
		durable)
	if err != nil {
		return err
	}
	batching := ""
	if h != nil {
		commits, writes := h.st.WriterStats()
		batching = fmt.Sprintf("; %.1f writes per group commit", float64(writes)/float64(max(commits, 1)))
	}
	fmt.Fprintf(w, "  ratio durable/baseline: median %.2f (range %.2f–%.2f over %d rounds; goal >= %.2f: %s)%s\n",
		res.Median, res.Min, res.Max, res.N, goalIngestRatio, verdict(res.Median >= goalIngestRatio), batching)

	pc := client(512)
	lat, errs := paced(ctx, pc, dst, opt.PacedRate, opt.PacedFor, &seq)
	fmt.Fprintf(w, "  durable paced at %d req/s for %s: p50 %s, p99 %s, max %s (%d requests, %d errors; goal p99 <= %s: %s)\n",
		opt.PacedRate, opt.PacedFor, round(lat.P50), round(lat.P99), round(lat.Max), lat.N, errs, goalIngestP99, verdict(lat.P99 <= goalIngestP99 && errs == 0))
	if h == nil {
		return nil
	}
	if err := h.drained(); err != nil {
		return err
	}
	if last, err := h.st.LastSeq(ctx); err == nil {
		fmt.Fprintf(w, "  %d events in the log, all routed and delivered; the writer was busy %s in all\n", last, h.st.WriterBusy().Round(time.Millisecond))
	}
	h.stop()

	if opt.Postgres != "" {
		if err := ingestPostgres(ctx, opt, w, &seq); err != nil {
			return fmt.Errorf("postgres phase: %w", err)
		}
	}
	return nil
}

// loopbackURL refuses a target that is not on this machine: the
// benchmark is a load generator, and load goes to 127.0.0.1 only.
func loopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--target %q: want http://127.0.0.1:PORT/webhooks/whatsapp", raw)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--target %q: the load generator only targets this machine's loopback (127.0.0.1, ::1, localhost)", raw)
	}
	return nil
}

// phase is one side of an interleaved comparison.
type phase struct {
	name, unit string
	run        func(d time.Duration) (rate float64, errors int64)
	// busy, if set, is the store writer's busy time so far.
	busy func() time.Duration
	// after, if set, runs after each measured phase, unmeasured: the
	// durable phase waits there for routing and delivery to catch up, so
	// that the next baseline does not share the CPU with their backlog.
	after func() error
}

// alternate runs a and b in turns, each warmed up, and returns the spread
// of b/a over the rounds.
func alternate(ctx context.Context, w io.Writer, opt IngestOptions, c *http.Client, seq *atomic.Int64, a, b phase) (Spread, error) {
	var ratios []float64
	for _, p := range []*phase{&a, &b} {
		if p.busy == nil {
			p.busy = func() time.Duration { return 0 }
		}
	}
	for r := 1; r <= opt.Rounds; r++ {
		var rates [2]float64
		for i, p := range []phase{a, b} {
			p.run(opt.Warmup)
			if p.after != nil {
				if err := p.after(); err != nil {
					return Spread{}, err
				}
			}
			busy0 := p.busy()
			rate, errs := p.run(opt.Duration)
			busy := p.busy() - busy0
			if ctx.Err() != nil {
				return Spread{}, ctx.Err()
			}
			var drain time.Duration
			if p.after != nil {
				t := time.Now()
				if err := p.after(); err != nil {
					return Spread{}, err
				}
				drain = time.Since(t)
			}
			rates[i] = rate
			fmt.Fprintf(w, "  round %d  %-42s %8.0f %s", r, p.name, rate, p.unit)
			if errs > 0 {
				fmt.Fprintf(w, "  (%d ERRORS)", errs)
			}
			if busy > 0 {
				fmt.Fprintf(w, "  writer busy %.0f%%, %.0f µs/request", 100*busy.Seconds()/opt.Duration.Seconds(), busy.Seconds()*1e6/(rate*opt.Duration.Seconds()))
			}
			if p.after != nil {
				fmt.Fprintf(w, "  (routing+delivery caught up %s later)", drain.Round(time.Millisecond))
			}
			fmt.Fprintln(w)
		}
		ratios = append(ratios, rates[1]/rates[0])
	}
	return spread(ratios), nil
}

// baseline is the least any webhook receiver must do.
func baseline(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if !ingest.VerifySignature(r.Header.Get(ingest.SignatureHeader), body, [][]byte{[]byte(benchSecret)}) {
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		http.Error(w, "json", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// benchHub is a whole hub under load.
type benchHub struct {
	h      *hub.Hub
	st     *store.Store
	url    string
	cancel context.CancelFunc
	done   chan error
	closed bool
}

// startHub runs a hub with the given store section, routing rules like a
// real deployment's, and a no-op connector subscribed to every event.
func startHub(ctx context.Context, storeYAML string, opt IngestOptions) (*benchHub, error) {
	yaml := fmt.Sprintf(`
server: {listen: "127.0.0.1:0", admin_token: bench}
%s
whatsapp: {app_secret: %q, verify_token: bench}
log: {level: warn}
teams:
  billing: {connectors: [sink]}
  support: {connectors: [sink]}
routes:
  - {name: billing, when: {keywords: [fatura, boleto, invoice]}, team: billing}
  - {name: default, team: support}
connectors:
  sink: {plugin: %s}
`, storeYAML, benchSecret, opt.Plugin)
	cfg, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := hub.New(cfg, hub.Options{Logger: quiet, Executable: opt.Executable})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	addrc := make(chan string, 1)
	b := &benchHub{h: h, st: h.Store(), cancel: cancel, done: make(chan error, 1)}
	go func() { b.done <- h.Run(rctx, func(a net.Addr) { addrc <- a.String() }) }()
	select {
	case a := <-addrc:
		b.url = "http://" + a + "/webhooks/whatsapp"
	case err := <-b.done:
		h.Close()
		return nil, fmt.Errorf("hub: %w", err)
	}
	for !h.PluginsRunning() {
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			b.stop()
			return nil, ctx.Err()
		}
	}
	return b, nil
}

// drained waits until every event in the log is delivered to the sink:
// routing and delivery have caught up with ingest.
func (b *benchHub) drained() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for {
		last, err := b.st.LastSeq(ctx)
		if err != nil {
			return err
		}
		counts, err := b.st.ConnectorCounts(ctx)
		if err != nil {
			return err
		}
		if c := counts["sink"]; last == 0 || (c != nil && c.Cursor >= last) {
			return nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return errors.New("routing and delivery did not catch up within 5 minutes")
		}
	}
}

func (b *benchHub) target() target { return target{b.url, benchSecret} }

func (b *benchHub) stop() {
	if b.closed {
		return
	}
	b.closed = true
	b.cancel()
	<-b.done
	b.h.Close()
}

// soak holds the hub at a steady rate and reports its memory over time.
func soak(ctx context.Context, opt IngestOptions, dir string, w io.Writer) error {
	h, err := startHub(ctx, fmt.Sprintf("store: {path: %q}", filepath.Join(dir, "hub.db")), opt)
	if err != nil {
		return err
	}
	defer h.stop()
	fmt.Fprintf(w, "ingest soak: %d req/s for %s against a whole hub (SQLite, synchronous=full, routing and delivery to a no-op plugin)\n", opt.PacedRate, opt.Duration)
	var seq atomic.Int64
	c := client(512)
	// The first minute fills caches and pools to their working size;
	// growth after that is what a leak looks like.
	warm := min(time.Minute, opt.Duration/5)
	paced(ctx, c, h.target(), opt.PacedRate, warm, &seq)
	runtime.GC()
	debug.FreeOSMemory()
	startRSS := memMB(os.Getpid(), "/status", "VmRSS:")
	startPlugins := pluginRSS(h)
	fmt.Fprintf(w, "  after %s warm-up: RSS %.1f MB (this process: hub + load generator), plugin %.1f MB\n", warm, startRSS, startPlugins)
	end := time.Now().Add(opt.Duration - warm)
	var all []time.Duration
	var errs int64
	for left := time.Until(end); left > 0 && ctx.Err() == nil; left = time.Until(end) {
		d := min(time.Minute, left)
		lat, e := paced(ctx, c, h.target(), opt.PacedRate, d, &seq)
		errs += e
		all = append(all, lat.P99)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "  %s left: RSS %.1f MB, Go heap %.1f MB, p99 %s over the last %s (%d errors)\n",
			max(0, time.Until(end)).Round(time.Second), memMB(os.Getpid(), "/status", "VmRSS:"), float64(ms.HeapInuse)/(1<<20), round(lat.P99), d, e)
	}
	if err := h.drained(); err != nil {
		return err
	}
	runtime.GC()
	debug.FreeOSMemory()
	endRSS := memMB(os.Getpid(), "/status", "VmRSS:")
	endPlugins := pluginRSS(h)
	growth := (endRSS + endPlugins - startRSS - startPlugins) / (startRSS + startPlugins)
	fmt.Fprintf(w, "  end: RSS %.1f MB, plugin %.1f MB; growth %+.1f%% (goal <= %.0f%%: %s); %d requests, %d errors\n",
		endRSS, endPlugins, growth*100, goalSoakGrowth*100, verdict(growth <= goalSoakGrowth && errs == 0), seq.Load(), errs)
	return nil
}

func pluginRSS(h *benchHub) float64 {
	var mb float64
	for _, pid := range h.h.PluginPIDs() {
		mb += memMB(pid, "/status", "VmRSS:")
	}
	return mb
}

func must(b []byte, _ string) []byte { return b }
