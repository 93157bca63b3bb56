// Package bench measures the hub's hot paths against a baseline measured in
// the same run, so that figures taken on a shared, noisy machine still mean
// something as ratios. `wahub bench` prints them.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/store"
)

// IngestOptions set the size of the ingest benchmark.
type IngestOptions struct {
	Duration    time.Duration // per throughput phase
	Concurrency int           // clients posting back to back
	PacedRate   int           // requests per second of the latency phase
	PacedFor    time.Duration
	Dir         string // where the SQLite file goes; a temporary directory if empty
	Synchronous string // the store's synchronous mode (full, normal)
}

// IngestResult holds the figures of one run.
type IngestResult struct {
	BaselineRPS float64
	DurableRPS  float64
	Paced       Latency
	PacedRate   int
	Errors      int64
}

// Latency is a latency distribution summary.
type Latency struct {
	P50, P99, Max time.Duration
	N             int
}

const benchSecret = "bench-app-secret"

// Ingest drives the real webhook handler over a real SQLite store with
// signed one-message bodies, and in the same run a bare handler that only
// verifies the signature and parses the JSON.
func Ingest(ctx context.Context, opt IngestOptions, w io.Writer) (IngestResult, error) {
	if opt.Duration <= 0 {
		opt.Duration = 5 * time.Second
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 64
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
			return IngestResult{}, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	st, err := store.Open(filepath.Join(dir, "bench.db"), store.Options{Synchronous: opt.Synchronous})
	if err != nil {
		return IngestResult{}, err
	}
	defer st.Close()
	durable := &ingest.Handler{Secrets: [][]byte{[]byte(benchSecret)}, Log: st}

	var res IngestResult
	fmt.Fprintf(w, "ingest benchmark: %d CPUs, %d concurrent clients, %s per phase, store synchronous=%s\n",
		runtime.NumCPU(), opt.Concurrency, opt.Duration, cmp.Or(opt.Synchronous, "full"))

	var seq atomic.Int64
	run := func(name string, h http.Handler) (float64, error) {
		srv, url, err := serve(h)
		if err != nil {
			return 0, err
		}
		defer srv.Close()
		n, errs := closedLoop(ctx, url, opt.Concurrency, opt.Duration, &seq)
		res.Errors += errs
		rps := float64(n) / opt.Duration.Seconds()
		fmt.Fprintf(w, "  %-44s %8.0f req/s  (%d requests, %d errors)\n", name, rps, n, errs)
		return rps, nil
	}
	if res.BaselineRPS, err = run("baseline: verify signature + parse JSON", http.HandlerFunc(baseline)); err != nil {
		return res, err
	}
	if res.DurableRPS, err = run("durable ingest: verify, parse, commit to SQLite", durable); err != nil {
		return res, err
	}
	commits, writes := st.WriterStats()
	fmt.Fprintf(w, "  ratio durable/baseline: %.2f (goal >= 0.60); %.1f requests per group commit\n",
		res.DurableRPS/res.BaselineRPS, float64(writes)/float64(commits))

	srv, url, err := serve(durable)
	if err != nil {
		return res, err
	}
	defer srv.Close()
	res.PacedRate = opt.PacedRate
	lat, errs := paced(ctx, url, opt.PacedRate, opt.PacedFor, &seq)
	res.Paced, res.Errors = lat, res.Errors+errs
	fmt.Fprintf(w, "  durable ingest paced at %d req/s for %s: p50 %s, p99 %s, max %s (%d requests, %d errors; goal p99 <= 20ms)\n",
		opt.PacedRate, opt.PacedFor, round(lat.P50), round(lat.P99), round(lat.Max), lat.N, errs)
	return res, nil
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }

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

func serve(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return srv, "http://" + ln.Addr().String() + "/webhooks/whatsapp", nil
}

// body returns a signed one-message webhook with a fresh wamid, so every
// request is new work for the store.
func body(n int64) ([]byte, string) {
	b := fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Bench %d"},"wa_id":"5511%09d"}],"messages":[{"from":"5511%09d","id":"wamid.BENCH.%d","timestamp":"1764000000","type":"text","text":{"body":"Olá, preciso de ajuda com meu pedido número %d"}}]}}]}]}`,
		n%1000, n%1000, n%1000, n, n)
	return b, ingest.Sign([]byte(benchSecret), b)
}

func client(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: 30 * time.Second}
}

func post(c *http.Client, url string, seq *atomic.Int64) error {
	b, sig := body(seq.Add(1))
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set(ingest.SignatureHeader, sig)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// closedLoop posts back to back from n clients for d and counts successes.
func closedLoop(ctx context.Context, url string, n int, d time.Duration, seq *atomic.Int64) (int64, int64) {
	c := client(n)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := post(c, url, seq); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return ok.Load(), failed.Load()
}

// paced sends at a fixed rate whatever the answers' latency (an open loop,
// so slow answers show up as latency rather than as a lower rate).
func paced(ctx context.Context, url string, rate int, d time.Duration, seq *atomic.Int64) (Latency, int64) {
	c := client(256)
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	lat := make([]time.Duration, total)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t := time.Now()
			if err := post(c, url, seq); err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(t)
		}(i)
	}
	wg.Wait()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return Latency{P50: lat[len(lat)/2], P99: lat[len(lat)*99/100], Max: lat[len(lat)-1], N: len(lat)}, failed.Load()
}
