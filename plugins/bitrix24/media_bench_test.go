package bitrix24

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkFileComment streams a 64 MiB file, base64-encoded into the
// JSON of crm.timeline.comment.add, to a portal that reads and discards
// it, against a plain POST of the same bytes already encoded (the
// baseline, which holds the encoded file in memory): the streamed
// call's allocations stay a small constant.
func BenchmarkFileComment(b *testing.B) {
	const size = 64 << 20
	data := bytes.Repeat([]byte("wahub-media-"), size/12+1)[:size]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result":42,"time":{"start":1}}`)
	}))
	defer srv.Close()
	s := &settings{name: "crm", base: srv.URL + "/rest/1/code/", portal: srv.URL, timeout: time.Minute, rate: 1e9}
	c := newClient(s, realClock{}, nopLog{})
	prefix, suffix, err := fileCommentJSON(7, "contact", "WhatsApp message from Ana", "fatura.pdf")
	if err != nil {
		b.Fatal(err)
	}
	n := int64(len(prefix) + base64.StdEncoding.EncodedLen(size) + len(suffix))

	b.Run("plain-post", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			body := append(append(append([]byte(nil), prefix...), base64.StdEncoding.EncodeToString(data)...), suffix...)
			if _, err := c.do(context.Background(), "crm.timeline.comment.add", bytes.NewReader(body), n, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("streamed", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			open := func() (io.ReadCloser, int64, error) {
				return encodeBody(prefix, suffix, io.NopCloser(bytes.NewReader(data))), n, nil
			}
			if _, err := c.callStream(context.Background(), "crm.timeline.comment.add", open, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type nopLog struct{}

func (nopLog) Warn(string, ...any) {}
