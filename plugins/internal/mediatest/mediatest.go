// Package mediatest holds what the connectors' media benchmarks share: a
// large file made on the fly (never held), its digest, a sampler of the
// heap's peak growth while a file moves, and a Host whose PutMedia hashes
// what it is given.
package mediatest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/sdk"
)

// File is a deterministic file of a given size made as it is read: 1 MB
// repeated with one byte changed each time, so that a benchmark moves
// 100 MB without holding it and a digest still tells a byte out of place.
type File struct {
	chunk []byte
	left  int64
	off   int
}

// NewFile returns size bytes of the file.
func NewFile(size int64) *File {
	c := make([]byte, 1<<20)
	for i := range c {
		c[i] = byte(i * 31)
	}
	return &File{chunk: c, left: size}
}

func (g *File) Read(p []byte) (int, error) {
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

// Digest is the hex sha256 of NewFile(size).
func Digest(size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, NewFile(size))
	return hex.EncodeToString(h.Sum(nil))
}

// PeakHeap samples the live heap until stop is closed and then sends its
// largest growth over the level at the start: a streamed transfer keeps
// it flat whatever the file's size.
func PeakHeap(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	runtime.GC()
	base := read()
	go func() {
		var peak uint64
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		look := func() {
			if v := read(); v > base && v-base > peak {
				peak = v - base
			}
		}
		for {
			look()
			select {
			case <-stop:
				// One more look, so what is live when the transfer
				// ends counts even between two ticks.
				look()
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// HashHost is the part of the hub a download path uses: PutMedia hashes
// the stream as it reads it and keeps only the digest. Other methods
// panic (the embedded Host is nil) so a benchmark that strays shows it.
type HashHost struct {
	sdk.Host
	last atomic.Value // string
}

// PutMedia reads r to its end and answers the file's info.
func (h *HashHost) PutMedia(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	d := sha256.New()
	n, err := io.Copy(d, r)
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	sum := hex.EncodeToString(d.Sum(nil))
	h.last.Store(sum)
	return sdk.MediaInfo{ID: "med_" + sum[:24], SHA256: sum, Size: n, MimeType: m.MimeType}, nil
}

// Last is the digest of the last file PutMedia read ("" before one).
func (h *HashHost) Last() string {
	s, _ := h.last.Load().(string)
	return s
}
