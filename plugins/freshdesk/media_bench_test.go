package freshdesk

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
// both ways over loopback: in (a note's multipart body streamed from the
// file, which the server reads part by part and hashes) and out (an
// agent's attachment downloaded from its attachment_url into
// Host.PutMedia, which hashes it). It reports the heap's peak growth
// (flat: the file is never held) and the throughput against a plain copy
// of the same bytes to a file.
func BenchmarkMediaTransfer(b *testing.B) {
	const size = 100 << 20
	digest := mediatest.Digest(size)
	var got atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v2/tickets/1/notes", func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if p.FormName() == "attachments[]" {
				h := sha256.New()
				_, _ = io.Copy(h, p)
				got.Store(hex.EncodeToString(h.Sum(nil)))
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":9}`)
	})
	mux.HandleFunc("GET /files/1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, mediatest.NewFile(size))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := &mediatest.HashHost{}
	s := &settings{name: "freshdesk", base: srv.URL, apiKey: "k", timeout: time.Minute, client: sdkhttp.NewClient(2, nil), host: host}
	s.files = &http.Client{Transport: s.client.Transport, CheckRedirect: sdkhttp.FollowFileRedirects(s.base, maxRedirects)}
	c := &connector{now: time.Now, log: sdk.Logger()}
	ctx := context.Background()
	copyPath := filepath.Join(b.TempDir(), "copy.pdf")
	fields := map[string]any{"body": "<p>report</p>", "private": false, "incoming": true, "user_id": int64(7)}

	var inTime, outTime, copyTime time.Duration
	var peak uint64
	b.SetBytes(2 * size)
	b.ResetTimer()
	for range b.N {
		stop := make(chan struct{})
		peakc := mediatest.PeakHeap(stop)
		start := time.Now()
		file := &inboundFile{id: "m1", info: sdk.MediaInfo{ID: "m1", Size: size}, name: "report.pdf", mime: "application/pdf", r: io.NopCloser(mediatest.NewFile(size))}
		var note conversation
		if err := c.callMultipart(ctx, s, "/api/v2/tickets/1/notes", fields, file, &note); err != nil {
			b.Fatal(err)
		}
		inTime += time.Since(start)
		start = time.Now()
		if _, err := c.storeAttachment(ctx, s, fdAttachment{ID: 1, Name: "report.pdf", ContentType: "application/pdf", Size: size, AttachmentURL: srv.URL + "/files/1"}); err != nil {
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
		b.Fatalf("attached sha256 %v, stored %v, want %s", got.Load(), host.Last(), digest)
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/inTime.Seconds(), "in-MB/s")
	b.ReportMetric(mb/outTime.Seconds(), "out-MB/s")
	b.ReportMetric(mb/copyTime.Seconds(), "copy-MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
