package outbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// fileMedia serves one file from disk, as the hub's local media store does.
type fileMedia struct {
	path string
	info sdk.MediaInfo
}

func (f *fileMedia) Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error) {
	r, err := os.Open(f.path)
	return f.info, r, err
}

func (f *fileMedia) Put(context.Context, sdk.MediaUpload, io.Reader) (sdk.MediaInfo, error) {
	panic("not used")
}

// writeFile writes n pseudo-random bytes to path, a chunk at a time, and
// returns their sha256.
func writeFile(b *testing.B, path string, n int64) string {
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	h := sha256.New()
	chunk := pattern(1<<20, 42)
	for left := n; left > 0; left -= int64(len(chunk)) {
		c := chunk[:min(int64(len(chunk)), left)]
		out.Write(c)
		h.Write(c)
		chunk[0]++ // not the same megabyte again
	}
	return hex.EncodeToString(h.Sum(nil))
}

// peakHeap samples the live heap until stop, and returns the largest
// value seen above the level at its start.
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

// BenchmarkMediaSend sends a 100 MB document through the whole outbound
// path: Submit (rules, outbox), then the sender's upload, streamed from the
// file through the multipart body to the fake Graph over loopback (which
// hashes it as it reads), the recorded upload and the send. It reports the
// heap's peak growth while it runs (flat: the file is never held) and its
// throughput against a plain copy of the same file to disk in the same run.
func BenchmarkMediaSend(b *testing.B) {
	const size = 100 << 20
	dir := b.TempDir()
	path := filepath.Join(dir, "report.pdf")
	digest := writeFile(b, path, size)
	src := &fileMedia{path: path, info: sdk.MediaInfo{ID: "med_report", MimeType: "application/pdf", SHA256: digest, Size: size, Filename: "report.pdf"}}

	st, err := store.Open(filepath.Join(dir, "wahub.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithPhoneNumber(pn, "15550783881"))
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	now := time.Now()
	if _, err := st.Append(ctx, []sdk.Event{{ID: "evt_seed", Type: sdk.TypeMessageReceived, OccurredAt: now, ReceivedAt: now,
		Business: &sdk.Business{PhoneNumberID: pn}, Contact: &sdk.Contact{WAID: "5511999999999"},
		Message: &sdk.Message{ID: "wamid.seed", Type: "text", Text: "oi"}}}); err != nil {
		b.Fatal(err)
	}
	s := New(Options{Store: st, Graph: graph.New(srv.URL+"/v23.0", "tok", nil), Media: src,
		MessagesPerSecond: 1e6, PairInterval: time.Nanosecond, PairBurst: 1 << 20})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	var sendTime, copyTime time.Duration
	var peak atomic.Uint64
	b.SetBytes(size)
	b.ResetTimer()
	for range b.N {
		stop := make(chan struct{})
		peakc := peakHeap(stop)
		start := time.Now()
		rec, _, err := s.Submit(ctx, "api", sdk.OutboundMessage{To: "5511999999999", Media: &sdk.OutboundMedia{ID: src.info.ID}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			r, err := st.Outbound(ctx, rec.ID)
			if err != nil {
				b.Fatal(err)
			}
			if r.State == store.OutAccepted {
				break
			}
			if r.State == store.OutFailed {
				b.Fatalf("failed: %s", r.Error)
			}
			time.Sleep(time.Millisecond)
		}
		sendTime += time.Since(start)
		close(stop)
		if p := <-peakc; p > peak.Load() {
			peak.Store(p)
		}

		start = time.Now()
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dir, "copy.pdf"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(struct{ io.Writer }{out}, in); err != nil { // plain read/write, no copy_file_range shortcut
			b.Fatal(err)
		}
		in.Close()
		out.Close()
		copyTime += time.Since(start)
	}
	b.StopTimer()
	if ups := fake.Uploads(); len(ups) != b.N || ups[0].SHA256 != digest {
		b.Fatalf("%d uploads, first %+v; want %d of sha256 %s", len(ups), ups, b.N, digest)
	}
	mb := float64(size) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/sendTime.Seconds(), "send-MB/s")
	b.ReportMetric(mb/copyTime.Seconds(), "copy-MB/s")
	b.ReportMetric(copyTime.Seconds()/sendTime.Seconds(), "x-copy")
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
}
