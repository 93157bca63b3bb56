package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// BenchmarkUpload streams a 64 MiB file into a Files API endpoint that
// reads and discards it, against a plain POST of the same bytes (the
// baseline): the upload's allocations stay a small constant (the file is
// never held), and its throughput is the baseline's minus the multipart
// framing.
func BenchmarkUpload(b *testing.B) {
	const size = 64 << 20
	data := bytes.Repeat([]byte("wahub-media-"), size/12+1)[:size]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"190000000001"}`)
	}))
	defer srv.Close()
	raw, _ := json.Marshal(map[string]any{"token": "pat-bench", "api_url": srv.URL, "requests_per_10s": 1 << 30, "search_per_second": 1 << 20})
	s, err := parseConfig(sdk.Config{Name: "hubspot", Raw: raw})
	if err != nil {
		b.Fatal(err)
	}
	s.client = sdkhttp.NewClient(1, nil)
	c := New().(*connector)
	info := sdk.MediaInfo{ID: "1", MimeType: "application/pdf", Size: size}

	b.Run("plain-post", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := s.client.Post(srv.URL+pathFiles, "application/octet-stream", bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.upload(context.Background(), s, info, "fatura.pdf", bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
