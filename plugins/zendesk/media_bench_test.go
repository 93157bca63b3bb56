package zendesk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/internal/mediatest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// BenchmarkMediaTransfer moves a 100 MB document through the connector
// both ways over loopback: in (streamed into POST /api/v2/uploads, which
// hashes the body as it reads) and out (an agent's attachment downloaded
// through the content_url redirect into Host.PutMedia, which hashes it).
// It reports the heap's peak growth (flat: the file is never held) and
// the throughput against a plain copy of the same bytes to a file.
func BenchmarkMediaTransfer(b *testing.B) {
	const size = 100 << 20
	digest := mediatest.Digest(size)
	var got atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/uploads.json", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		_, _ = io.Copy(h, r.Body)
		got.Store(hex.EncodeToString(h.Sum(nil)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"upload":{"token":"tok"}}`)
	})
	mux.HandleFunc("GET /attachments/token/t/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/files/t", http.StatusFound)
	})
	mux.HandleFunc("GET /files/t", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, mediatest.NewFile(size))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := &mediatest.HashHost{}
	s := &settings{name: "zendesk", base: srv.URL, auth: basicAuth("a@b.c/token", "t"), timeout: time.Minute, now: time.Now,
		client: sdkhttp.NewClient(2, nil), host: host}
	s.files = &http.Client{Transport: s.client.Transport, CheckRedirect: sdkhttp.FollowFileRedirects(s.base, maxRedirects)}
	c := &connector{now: time.Now, log: sdk.Logger()}
	ctx := context.Background()
	copyPath := filepath.Join(b.TempDir(), "copy.pdf")

	var inTime, outTime, copyTime time.Duration
	var peak uint64
	b.SetBytes(2 * size)
	b.ResetTimer()
	for range b.N {
		stop := make(chan struct{})
		peakc := mediatest.PeakHeap(stop)
		start := time.Now()
		if _, err := s.uploadFile(ctx, "report.pdf", "application/pdf", size, mediatest.NewFile(size)); err != nil {
			b.Fatal(err)
		}
		inTime += time.Since(start)
		start = time.Now()
		if _, err := c.storeAttachment(ctx, s, zAttachment{ID: 1, FileName: "report.pdf", ContentType: "application/pdf", Size: size, ContentURL: srv.URL + "/attachments/token/t/?name=report.pdf"}); err != nil {
			b.Fatal(err)
		}
		outTime += time.Since(start)
		close(stop)
		peak = max(peak, <-peakc)

		start = time.Now()
		out, err := os.Create(copyPath)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(struct{ io.Writer }{out}, mediatest.NewFile(size)); err != nil {
			b.Fatal(err)
		}
		out.Close()
		copyTime += time.Since(start)
	}
	b.StopTimer()
	if got.Load() != digest || host.Last() != digest {
		b.Fatalf("upload sha256 %v, stored %v, want %s", got.Load(), host.Last(), digest)
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/inTime.Seconds(), "in-MB/s")
	b.ReportMetric(mb/outTime.Seconds(), "out-MB/s")
	b.ReportMetric(mb/copyTime.Seconds(), "copy-MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
