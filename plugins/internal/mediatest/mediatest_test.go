package mediatest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/wahub/wahub/sdk"
)

func TestFileIsDeterministicAndSized(t *testing.T) {
	for _, size := range []int64{0, 1, 1 << 20, 3<<20 + 7} {
		a, _ := io.ReadAll(NewFile(size))
		b, _ := io.ReadAll(NewFile(size))
		if int64(len(a)) != size || !bytes.Equal(a, b) {
			t.Fatalf("size %d: read %d bytes, equal %v", size, len(a), bytes.Equal(a, b))
		}
	}
	// Each megabyte differs from the one before, so a chunk repeated or
	// dropped changes the digest.
	if Digest(2<<20) == Digest(1<<20) || Digest(2<<20) != Digest(2<<20) {
		t.Fatal("digests do not tell files apart")
	}
	two, _ := io.ReadAll(NewFile(2 << 20))
	if bytes.Equal(two[:1<<20], two[1<<20:]) {
		t.Fatal("the second megabyte repeats the first")
	}
}

func TestHashHostKeepsTheDigest(t *testing.T) {
	h := &HashHost{}
	if h.Last() != "" {
		t.Fatal("Last before any file")
	}
	info, err := h.PutMedia(context.Background(), sdk.MediaUpload{MimeType: "application/pdf"}, NewFile(5000))
	if err != nil {
		t.Fatal(err)
	}
	if want := Digest(5000); h.Last() != want || info.SHA256 != want || info.Size != 5000 || info.MimeType != "application/pdf" {
		t.Fatalf("info %+v, last %s, want %s", info, h.Last(), want)
	}
}

func TestPeakHeapSeesAnAllocation(t *testing.T) {
	stop := make(chan struct{})
	peak := PeakHeap(stop)
	held := make([]byte, 32<<20)
	for i := range held {
		held[i] = 1
	}
	close(stop)
	got := <-peak
	held[len(held)-1]++ // live until the sampler has answered
	if got < 16<<20 {
		t.Fatalf("peak %d MB with 32 MB held", got>>20)
	}
}
