package media_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/sdk"
)

const benchSize = 100 << 20

// generated is a reproducible stream of n bytes that nobody holds whole:
// the benchmark's Graph serves it, so the file is never in memory, not
// even the fake's.
type generated struct {
	n, off int64
}

func (g *generated) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := range p {
		x := g.off + int64(i)
		p[i] = byte(x ^ x>>8 ^ x>>17)
	}
	g.off += int64(len(p))
	return len(p), nil
}

// streamingGraph answers GET /{media-id} and the download like Graph, from
// the generator.
func streamingGraph(b *testing.B, n int64) (url string, shaB64 string) {
	h := sha256.New()
	io.Copy(h, &generated{n: n})
	sum := h.Sum(nil)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/download/") {
			w.Header().Set("Content-Type", "application/pdf")
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, &generated{n: n})
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/v23.0/")
		json.NewEncoder(w).Encode(map[string]any{"url": srv.URL + "/download/" + id, "mime_type": "application/pdf",
			"sha256": hex.EncodeToString(sum), "file_size": n, "id": id, "messaging_product": "whatsapp"})
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/v23.0", base64.StdEncoding.EncodeToString(sum)
}

// peakHeap samples the live heap while running fn and returns its peak
// above what it was before.
func peakHeap(fn func()) (peak uint64) {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	var max atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			if v := read(); v > max.Load() {
				max.Store(v)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	if m := max.Load(); m > base {
		return m - base
	}
	return 0
}

// BenchmarkDocument100MB moves a 100 MB document the way a customer's PDF
// goes: Graph download → spool (digest) → media store → OpenMedia read to
// the end (digest checked again). The baseline in the same run is a plain
// copy of a 100 MB file to a new file, synced: the least
// disk work the media path does (it also hashes twice, goes over HTTP
// and reads the file back). Reported: MB/s, the ratio of the media
// path's time to the copy's (x_copy), and the peak live heap above the
// start (peak_heap_MB): flat, not the file's size.
//
// On local and postgres (the server is another process, so the heap is
// the hub's own); not on s3, whose in-process fake keeps objects in the
// benchmark's own heap.
func BenchmarkDocument100MB(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		dir := b.TempDir()
		st, err := store.Open(filepath.Join(dir, "wahub.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		backend, err := media.NewLocal(filepath.Join(dir, "media"))
		if err != nil {
			b.Fatal(err)
		}
		benchDocument(b, st, backend, dir)
	})
	b.Run("postgres", func(b *testing.B) {
		url := pgtest.URL(b)
		st, err := store.OpenPostgres(url, store.Options{}, store.PostgresOptions{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		backend, err := media.NewPostgres(url)
		if err != nil {
			b.Fatal(err)
		}
		defer backend.Close()
		benchDocument(b, st, backend, b.TempDir())
	})
}

func benchDocument(b *testing.B, st *store.Store, backend media.Backend, dir string) {
	graphURL, shaB64 := streamingGraph(b, benchSize)
	ms, err := media.New(media.Options{Backend: backend, Records: st, Graph: graph.New(graphURL, "t", nil),
		MaxSize: benchSize, SpoolDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	src := filepath.Join(dir, "src.pdf")
	f, _ := os.Create(src)
	io.Copy(f, &generated{n: benchSize})
	f.Close()
	ctx := context.Background()

	var mediaTime, copyTime time.Duration
	var peak uint64
	b.SetBytes(benchSize)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		p := peakHeap(func() {
			id := fmt.Sprintf("bench%d-%d", i, time.Now().UnixNano())
			now := time.Now()
			ev := []sdk.Event{{ID: "evt_" + id, Type: "message.received", OccurredAt: now, ReceivedAt: now,
				Contact: &sdk.Contact{WAID: "5511987650001"},
				Message: &sdk.Message{ID: "wamid." + id, Type: "document", Media: &sdk.Media{ID: id, MimeType: "application/pdf", SHA256: shaB64}}}}
			if _, err := st.Append(ctx, ev); err != nil {
				b.Fatal(err)
			}
			rec, err := ms.FetchNow(ctx, id)
			if err != nil || rec.State != sdk.MediaAvailable {
				b.Fatalf("fetch: %+v %v", rec, err)
			}
			_, rc, err := ms.Open(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, rc); err != nil || n != benchSize {
				b.Fatalf("read %d bytes: %v", n, err)
			}
			rc.Close()
		})
		mediaTime += time.Since(start)
		peak = max(peak, p)

		b.StopTimer()
		start = time.Now()
		plainCopy(b, src, filepath.Join(dir, "copy.pdf"))
		copyTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(mediaTime)/float64(copyTime), "x_copy")
	b.ReportMetric(float64(peak)/(1<<20), "peak_heap_MB")
}

func plainCopy(b *testing.B, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	out.Sync()
	out.Close()
	os.Remove(dst)
}
