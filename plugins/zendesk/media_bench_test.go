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
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// genFile is a deterministic file of size bytes made on the fly, never
// held: 1 MB repeated with one byte changed each time.
type genFile struct {
	chunk []byte
	left  int64
	off   int
}

func newGenFile(size int64) *genFile {
	c := make([]byte, 1<<20)
	for i := range c {
		c[i] = byte(i * 31)
	}
	return &genFile{chunk: c, left: size}
}

func (g *genFile) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.chunk[g.off:])
	n = int(min(int64(n), g.left))
	g.off += n
	g.left -= int64(n)
	if g.off == len(g.chunk) {
		g.off = 0
		g.chunk[0]++
	}
	return n, nil
}

func genDigest(size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, newGenFile(size))
	return hex.EncodeToString(h.Sum(nil))
}

// peakHeap samples the live heap until stop and returns its largest
// growth over the level at the start.
func peakHeap(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	go func() {
		var peak uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > base && v-base > peak {
				peak = v - base
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// hashHost is the part of the hub the download path uses: PutMedia
// hashes the stream as it reads it.
type hashHost struct {
	sdk.Host
	last atomic.Value // string
}

func (h *hashHost) PutMedia(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	d := sha256.New()
	n, err := io.Copy(d, r)
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	sum := hex.EncodeToString(d.Sum(nil))
	h.last.Store(sum)
	return sdk.MediaInfo{ID: "med_" + sum[:24], SHA256: sum, Size: n, MimeType: m.MimeType}, nil
}

// BenchmarkMediaTransfer moves a 100 MB document through the connector
// both ways over loopback: in (streamed into POST /api/v2/uploads, which
// hashes the body as it reads) and out (an agent's attachment downloaded
// through the content_url redirect into Host.PutMedia, which hashes it).
// It reports the heap's peak growth (flat: the file is never held) and
// the throughput against a plain copy of the same bytes to a file.
func BenchmarkMediaTransfer(b *testing.B) {
	const size = 100 << 20
	digest := genDigest(size)
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
		_, _ = io.Copy(w, newGenFile(size))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := &hashHost{}
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
		peakc := peakHeap(stop)
		start := time.Now()
		if _, err := s.uploadFile(ctx, "report.pdf", "application/pdf", size, newGenFile(size)); err != nil {
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
		if _, err := io.Copy(struct{ io.Writer }{out}, newGenFile(size)); err != nil {
			b.Fatal(err)
		}
		out.Close()
		copyTime += time.Since(start)
	}
	b.StopTimer()
	if got.Load() != digest || host.last.Load() != digest {
		b.Fatalf("upload sha256 %v, stored %v, want %s", got.Load(), host.last.Load(), digest)
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/inTime.Seconds(), "in-MB/s")
	b.ReportMetric(mb/outTime.Seconds(), "out-MB/s")
	b.ReportMetric(mb/copyTime.Seconds(), "copy-MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
}
