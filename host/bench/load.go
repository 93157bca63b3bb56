package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/host/ingest"
)

// Latency is a latency distribution summary.
type Latency struct {
	P50, P99, Max time.Duration
	N             int
}

const benchSecret = "bench-app-secret"

// textPad brings a webhook to about 1 KB, the size the goals are stated
// for (a customer's short message plus Meta's envelope is 600–1,200 bytes).
var textPad = strings.Repeat("Olá, preciso de ajuda com meu pedido, ele ainda não chegou. ", 8)

// body returns a signed one-message webhook of about 1 KB with a fresh
// wamid, so every request is new work for the store. Customers repeat
// (1,000 of them), as in a real conversation load.
func body(n int64) ([]byte, string) { return bodyFor(n, benchSecret) }

// target is a webhook endpoint under load and the app secret it checks.
type target struct{ url, secret string }

func bodyFor(n int64, secret string) ([]byte, string) {
	b := fmt.Appendf(nil, `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Bench %d"},"wa_id":"5511%09d"}],"messages":[{"from":"5511%09d","id":"wamid.BENCH.%d","timestamp":"1764000000","type":"text","text":{"body":"%s pedido número %d"}}]}}]}]}`,
		n%1000, n%1000, n%1000, n, textPad, n)
	return b, ingest.Sign([]byte(secret), b)
}

func client(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: 30 * time.Second}
}

func post(c *http.Client, t target, seq *atomic.Int64) error {
	b, sig := bodyFor(seq.Add(1), t.secret)
	req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(b))
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
func closedLoop(ctx context.Context, c *http.Client, t target, n int, d time.Duration, seq *atomic.Int64) (int64, int64) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := post(c, t, seq); err != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return ok.Load(), failed.Load()
}

// paced sends at a fixed rate whatever the answers' latency (an open loop,
// so slow answers show up as latency rather than as a lower rate). Each
// request's latency is measured from when it was due, not from when a
// goroutine got round to it, so a generator that falls behind shows as
// latency too (no coordinated omission).
func paced(ctx context.Context, c *http.Client, t target, rate int, d time.Duration, seq *atomic.Int64) (Latency, int64) {
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	lat := make([]time.Duration, 0, total)
	var mu sync.Mutex
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < total && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			err := post(c, t, seq)
			l := time.Since(due)
			if err != nil {
				failed.Add(1)
			}
			mu.Lock()
			lat = append(lat, l)
			mu.Unlock()
		})
	}
	wg.Wait()
	return summarize(lat), failed.Load()
}

func summarize(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return Latency{P50: lat[len(lat)/2], P99: lat[len(lat)*99/100], Max: lat[len(lat)-1], N: len(lat)}
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

// Spread is the median and range of a figure over rounds.
type Spread struct {
	Median, Min, Max float64
	N                int
}

func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Spread{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// verdict marks a goal in the output, so a missed one cannot be overlooked.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func round(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
