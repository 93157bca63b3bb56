package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// memMedia is a MediaSource in memory: content-addressed, as the hub's
// media store is.
type memMedia struct {
	mu    sync.Mutex
	files map[string]memFile
	max   int64
	opens int
	// short makes Open serve this many bytes fewer than stored (a store
	// that lost part of a file).
	short int
}

type memFile struct {
	info sdk.MediaInfo
	data []byte
}

func newMemMedia() *memMedia { return &memMedia{files: map[string]memFile{}, max: 200 << 20} }

func (m *memMedia) add(mimeType, filename string, data []byte) sdk.MediaInfo {
	sum := sha256.Sum256(data)
	info := sdk.MediaInfo{ID: "med_" + hex.EncodeToString(sum[:8]), MimeType: mimeType, SHA256: hex.EncodeToString(sum[:]),
		Size: int64(len(data)), Filename: filename}
	m.mu.Lock()
	m.files[info.ID] = memFile{info, data}
	m.mu.Unlock()
	return info
}

func (m *memMedia) Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[id]
	if !ok {
		return sdk.MediaInfo{}, nil, fmt.Errorf("%w: no file %s", sdk.ErrMediaUnavailable, id)
	}
	m.opens++
	return f.info, io.NopCloser(bytes.NewReader(f.data[:len(f.data)-m.short])), nil
}

func (m *memMedia) Put(ctx context.Context, u sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	data, err := io.ReadAll(io.LimitReader(r, m.max+1))
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	if int64(len(data)) > m.max {
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_too_large", Message: "larger than the media store takes"}
	}
	return m.add(u.MimeType, u.Filename, data), nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pattern is a file of n bytes that is not all zeros.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

func TestMediaMessageUploadsThenSends(t *testing.T) {
	media := newMemMedia()
	h := newHarness(t, Options{Media: media})
	h.inbound("5511900000001", t0.Add(-time.Hour))
	jpeg := pattern(300<<10, 1)
	pdf := pattern(2<<20, 2)
	img := media.add("image/jpeg", "broken.jpg", jpeg)
	doc := media.add("application/pdf", "invoice-1042.pdf", pdf)
	voice := media.add("audio/ogg; codecs=opus", "", append(append([]byte{}, opusHead...), pattern(9000, 3)...))

	tests := []struct {
		name     string
		media    sdk.OutboundMedia
		kind     string
		caption  string
		filename string
		file     sdk.MediaInfo
	}{
		{"image with caption", sdk.OutboundMedia{ID: img.ID, Caption: "the part that broke", Filename: "ignored.jpg"}, "image", "the part that broke", "", img},
		{"document keeps its stored filename", sdk.OutboundMedia{ID: doc.ID, Caption: "your invoice"}, "document", "your invoice", "invoice-1042.pdf", doc},
		{"document with a filename of its own", sdk.OutboundMedia{ID: doc.ID, Filename: "fatura.pdf"}, "document", "", "fatura.pdf", doc},
		{"voice note as audio", sdk.OutboundMedia{ID: voice.ID}, "audio", "", "", voice},
	}
	h.run()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &tt.media})
			if err != nil {
				t.Fatal(err)
			}
			h.until(10*time.Millisecond, "accepted", func() bool { return h.state(rec.ID).State == store.OutAccepted })
			ups := h.fake.Uploads()
			if len(ups) != i+1 {
				t.Fatalf("%d uploads, want %d", len(ups), i+1)
			}
			up := ups[i]
			if up.SHA256 != tt.file.SHA256 || up.Size != tt.file.Size || up.MimeType != BaseMIME(tt.file.MimeType) || up.PhoneNumberID != pn {
				t.Errorf("upload %+v, want the file %+v", up, tt.file)
			}
			sent := h.fake.Sent()
			m := sent[len(sent)-1]
			if m.Kind != tt.kind || m.MediaID != up.ID || m.Caption != tt.caption || m.Filename != tt.filename {
				t.Errorf("sent %s id=%s caption=%q filename=%q; want %s id=%s caption=%q filename=%q",
					m.Kind, m.MediaID, m.Caption, m.Filename, tt.kind, up.ID, tt.caption, tt.filename)
			}
			r := h.state(rec.ID)
			if r.Upload == nil || r.Upload.GraphID != up.ID || r.Upload.SHA256 != tt.file.SHA256 {
				t.Errorf("outbox keeps upload %+v, want Graph id %s", r.Upload, up.ID)
			}
			var steps []string
			for _, s := range r.History {
				steps = append(steps, s.State)
			}
			if got := strings.Join(steps, ","); got != "queued,uploaded,accepted" {
				t.Errorf("history %s", got)
			}
		})
	}
	// message.sent names the media.
	evs, err := h.st.Events(context.Background(), store.EventFilter{Type: string(sdk.TypeMessageSent), Limit: 10})
	if err != nil || len(evs) != len(tests) {
		t.Fatalf("%d message.sent, %v", len(evs), err)
	}
	if m := evs[0].Message; m.Type != "image" || m.Media == nil || m.Media.ID != img.ID || m.Media.MimeType != "image/jpeg" {
		t.Errorf("message.sent %+v", m)
	}
}

func TestMediaRefusedBeforeUpload(t *testing.T) {
	media := newMemMedia()
	h := newHarness(t, Options{Media: media})
	h.inbound("5511900000001", t0.Add(-time.Hour))
	h.inbound("5511900000002", t0.Add(-25*time.Hour))
	big := media.add("image/png", "scan.png", pattern(6<<20, 4))
	small := media.add("image/png", "ok.png", pattern(1000, 5))
	mp3 := media.add("audio/mpeg", "note.mp3", pattern(1000, 6))
	zip := media.add("application/zip", "logs.zip", pattern(1000, 7))
	tests := []struct {
		name string
		to   string
		m    sdk.OutboundMedia
		code string
	}{
		{"image over 5 MB", "5511900000001", sdk.OutboundMedia{ID: big.ID}, RefusedMediaTooLarge},
		{"zip", "5511900000001", sdk.OutboundMedia{ID: zip.ID}, RefusedMediaType},
		{"caption on audio", "5511900000001", sdk.OutboundMedia{ID: mp3.ID, Caption: "listen"}, RefusedMediaCaption},
		{"unknown file", "5511900000001", sdk.OutboundMedia{ID: "med_nope"}, RefusedMediaUnavailable},
		{"outside the window", "5511900000002", sdk.OutboundMedia{ID: small.ID}, RefusedOutsideWindow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := h.s.Submit(context.Background(), "connector:slack", sdk.OutboundMessage{To: tt.to, Media: &tt.m})
			var ref *sdk.RefusedError
			if !errors.As(err, &ref) || ref.Code != tt.code {
				t.Fatalf("got %v, want refusal %s", err, tt.code)
			}
			t.Log(ref.Message)
		})
	}
	// The big PNG may go as a document.
	if _, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: big.ID, Type: "document"}}); err != nil {
		t.Errorf("a 6 MB PNG as a document: %v", err)
	}
	if n := len(h.fake.Requests()); n != 0 {
		t.Errorf("%d requests reached Graph while submitting", n)
	}
	// Without a media store nothing can be sent.
	bare := newHarness(t, Options{})
	bare.inbound("5511900000001", t0.Add(-time.Hour))
	_, _, err := bare.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: small.ID}})
	var ref *sdk.RefusedError
	if !errors.As(err, &ref) || ref.Code != RefusedMediaUnavailable {
		t.Errorf("no media store: %v", err)
	}
}

// A send that fails after the upload is retried with the uploaded id.
func TestMediaRetryReusesUpload(t *testing.T) {
	media := newMemMedia()
	h := newHarness(t, Options{Media: media})
	h.inbound("5511900000001", t0.Add(-time.Hour))
	f := media.add("video/mp4", "how-to.mp4", pattern(3<<20, 8))
	h.fake.FailNext(2, graph.ErrSomethingWentWrong)
	rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: f.ID, Caption: "step 1"}})
	if err != nil {
		t.Fatal(err)
	}
	h.run()
	h.until(time.Second, "accepted", func() bool { return h.state(rec.ID).State == store.OutAccepted })
	if n := h.fake.UploadCount(); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
	sends := 0
	for _, r := range h.fake.Requests() {
		if r.Kind == "video" {
			sends++
		}
	}
	if sends != 3 || h.fake.SentCount() != 1 {
		t.Errorf("%d send requests and %d accepted, want 3 and 1", sends, h.fake.SentCount())
	}
	if r := h.state(rec.ID); r.Attempts != 4 {
		t.Errorf("attempts %d, want 4 (one upload, three sends)", r.Attempts)
	}
}

func TestMediaUploadFailures(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(h *harness, m *memMedia)
		state  string
		code   string
		upload int // uploads the fake accepted
	}{
		{"a failed upload is retried", func(h *harness, m *memMedia) { h.fake.FailNextUpload(graph.ErrSomethingWentWrong) }, store.OutAccepted, "", 1},
		{"an upload Graph refuses fails the message", func(h *harness, m *memMedia) { h.fake.FailNextUpload(graph.ErrMediaUpload) }, store.OutFailed, "131053", 0},
		{"a file that reads back short is not sent", func(h *harness, m *memMedia) { m.short = 10 }, store.OutFailed, RefusedMediaUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			media := newMemMedia()
			h := newHarness(t, Options{Media: media})
			h.inbound("5511900000001", t0.Add(-time.Hour))
			f := media.add("application/pdf", "a.pdf", pattern(100<<10, 9))
			rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: f.ID}})
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(h, media)
			h.run()
			h.until(time.Second, tt.state, func() bool { return h.state(rec.ID).State == tt.state })
			r := h.state(rec.ID)
			if r.ErrorCode != tt.code {
				t.Errorf("error code %q (%s), want %q", r.ErrorCode, r.Error, tt.code)
			}
			if n := h.fake.UploadCount(); n != tt.upload {
				t.Errorf("%d uploads, want %d", n, tt.upload)
			}
			if tt.state == store.OutFailed && h.fake.SentCount() != 0 {
				t.Error("a message was sent")
			}
		})
	}
}

// reopen is a second sender on the harness's store, as a restarted hub.
func (h *harness) reopen(media MediaSource) *harness {
	h.t.Helper()
	h.stop()
	h.stop = nil
	srv := httptest.NewServer(h.fake)
	h.t.Cleanup(srv.Close)
	h2 := *h
	h2.s = New(Options{Store: h.st, Clock: h.clock, Graph: graph.New(srv.URL+"/v23.0", "tok", nil), Media: media})
	return &h2
}

func TestMediaAcrossRestarts(t *testing.T) {
	t.Run("stopped while uploading: uploaded again, sent once", func(t *testing.T) {
		media := newMemMedia()
		h := newHarness(t, Options{Media: media})
		h.inbound("5511900000001", t0.Add(-time.Hour))
		f := media.add("image/png", "a.png", pattern(200<<10, 10))
		rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: f.ID}})
		if err != nil {
			t.Fatal(err)
		}
		// The hub that died took it to upload and never recorded one.
		if ok, err := h.st.MarkUploading(context.Background(), rec.ID); !ok || err != nil {
			t.Fatal(ok, err)
		}
		h.run()
		h.until(time.Second, "accepted", func() bool { return h.state(rec.ID).State == store.OutAccepted })
		if h.fake.UploadCount() != 1 || h.fake.SentCount() != 1 {
			t.Errorf("%d uploads, %d sent; want 1, 1", h.fake.UploadCount(), h.fake.SentCount())
		}
	})
	t.Run("stopped after the upload: its id is sent, no second upload", func(t *testing.T) {
		media := newMemMedia()
		h := newHarness(t, Options{Media: media})
		h.inbound("5511900000001", t0.Add(-time.Hour))
		f := media.add("image/png", "a.png", pattern(200<<10, 11))
		rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: f.ID}})
		if err != nil {
			t.Fatal(err)
		}
		// Meta throttles the send for an hour; the hub stops meanwhile.
		h.fake.FailNextWith(&graphtest.ErrorResponse{HTTPStatus: 400, Code: graph.ErrThroughput, Message: "(#130429) Rate limit hit", RetryAfter: time.Hour})
		h.run()
		h.until(time.Millisecond, "uploaded and deferred", func() bool {
			r := h.state(rec.ID)
			return r.Upload != nil && r.State == store.OutQueued && r.ErrorCode == "130429"
		})
		h2 := h.reopen(media)
		h2.run()
		h2.until(time.Minute, "accepted after the restart", func() bool { return h2.state(rec.ID).State == store.OutAccepted })
		if h.fake.UploadCount() != 1 || h.fake.SentCount() != 1 || h.fake.Sent()[0].MediaID != h.fake.Uploads()[0].ID {
			t.Errorf("%d uploads, %d sent; want the one upload sent once", h.fake.UploadCount(), h.fake.SentCount())
		}
	})
	t.Run("stopped while sending: unknown, never sent again", func(t *testing.T) {
		media := newMemMedia()
		h := newHarness(t, Options{Media: media})
		h.inbound("5511900000001", t0.Add(-time.Hour))
		f := media.add("image/png", "a.png", pattern(200<<10, 12))
		rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{ID: f.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := h.st.MarkUploading(context.Background(), rec.ID); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, err := h.st.RecordUpload(context.Background(), rec.ID, store.GraphUpload{GraphID: "1234567890123456", At: t0}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, err := h.st.MarkSending(context.Background(), rec.ID); !ok || err != nil {
			t.Fatal(ok, err)
		}
		h.run()
		h.until(time.Second, "unknown", func() bool { return h.state(rec.ID).State == store.OutUnknown })
		if h.fake.UploadCount() != 0 || len(h.fake.Requests()) != 0 {
			t.Errorf("%d requests after the restart, want none", len(h.fake.Requests()))
		}
	})
}

func TestMediaURL(t *testing.T) {
	pdf := pattern(700<<10, 13)
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/invoice.pdf":
			w.Header().Set("Content-Type", "application/pdf")
			w.Write(pdf)
		case "/download":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Disposition", `attachment; filename="boleto.pdf"`)
			w.Write(pdf)
		case "/huge.png":
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Content-Length", fmt.Sprint(8<<20))
			w.Write(pattern(64, 1)) // the rest never comes: refused on the header
		case "/liar.png": // no length: refused while reading
			w.Header().Set("Content-Type", "image/png")
			for range 6 {
				w.Write(pattern(1<<20, 2))
				w.(http.Flusher).Flush()
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer files.Close()
	media := newMemMedia()
	h := newHarness(t, Options{Media: media, URLClient: files.Client()})
	h.inbound("5511900000001", t0.Add(-time.Hour))
	tests := []struct {
		path, code, filename string
	}{
		{"/invoice.pdf", "", "invoice.pdf"},
		{"/download", "", "boleto.pdf"},
		{"/huge.png", RefusedMediaTooLarge, ""},
		{"/liar.png", RefusedMediaTooLarge, ""},
		{"/gone.pdf", RefusedMediaUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{URL: files.URL + tt.path + "?sig=secret"}})
			if tt.code != "" {
				var ref *sdk.RefusedError
				if !errors.As(err, &ref) || ref.Code != tt.code || strings.Contains(ref.Message, "secret") {
					t.Fatalf("got %v, want refusal %s without the link's query", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			md := rec.Request.Media
			if md.URL != "" || md.ID == "" || md.Type != "document" || md.Filename != tt.filename {
				t.Fatalf("queued media %+v", md)
			}
			_, rc, err := media.Open(context.Background(), md.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			if sum(got) != sum(pdf) {
				t.Error("the stored copy differs from the link's file")
			}
		})
	}
	// The default client reaches only public addresses.
	guarded := newHarness(t, Options{Media: media})
	guarded.inbound("5511900000001", t0.Add(-time.Hour))
	_, _, err := guarded.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Media: &sdk.OutboundMedia{URL: files.URL + "/invoice.pdf"}})
	var ref *sdk.RefusedError
	if !errors.As(err, &ref) || ref.Code != RefusedMediaUnavailable || !strings.Contains(ref.Message, "not a public address") {
		t.Errorf("a link to 127.0.0.1: %v", err)
	}
}

// The store keeps the upload across a reopen (the column survives).
func TestUploadRecordSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "wahub.db"), store.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := st.Enqueue(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", PhoneNumberID: pn, Media: &sdk.OutboundMedia{ID: "med_1", Type: "image"}})
	if err != nil {
		t.Fatal(err)
	}
	st.MarkUploading(context.Background(), rec.ID)
	st.RecordUpload(context.Background(), rec.ID, store.GraphUpload{GraphID: "42", SHA256: "ab", At: t0})
	st.Close()
	st, err = store.Open(filepath.Join(dir, "wahub.db"), store.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	due, err := st.DueOutbound(context.Background(), t0, 10, nil)
	if err != nil || len(due) != 1 || due[0].Upload == nil || due[0].Upload.GraphID != "42" {
		t.Fatalf("due %+v, %v", due, err)
	}
}

// A trigger's reply is queued by the store's dispatch, not Submit: its
// media is settled, and a link fetched, when it is sent.
func TestMediaQueuedWithoutSubmit(t *testing.T) {
	brochure := pattern(900<<10, 14)
	files := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Write(brochure)
	}))
	defer files.Close()
	media := newMemMedia()
	h := newHarness(t, Options{Media: media, URLClient: files.Client()})
	h.inbound("5511900000001", t0.Add(-time.Hour))
	photo := media.add("image/png", "welcome.png", pattern(50<<10, 15))
	tests := []struct {
		name     string
		m        sdk.OutboundMedia
		kind     string
		filename string
		sha      string
	}{
		{"an id without a type", sdk.OutboundMedia{ID: photo.ID, Caption: "bem-vindo", Filename: "dropped.png"}, "image", "", photo.SHA256},
		{"a link", sdk.OutboundMedia{URL: files.URL + "/catalogo.pdf"}, "document", "catalogo.pdf", sum(brochure)},
	}
	h.run()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _, err := h.st.Enqueue(context.Background(), "trigger:welcome", sdk.OutboundMessage{To: "5511900000001", PhoneNumberID: pn, Media: &tt.m})
			if err != nil {
				t.Fatal(err)
			}
			h.s.Wake()
			h.until(10*time.Millisecond, "accepted", func() bool { return h.state(rec.ID).State == store.OutAccepted })
			up, sent := h.fake.Uploads()[i], h.fake.Sent()[i]
			if up.SHA256 != tt.sha || sent.Kind != tt.kind || sent.MediaID != up.ID || sent.Filename != tt.filename {
				t.Errorf("uploaded %+v, sent %s %s %q", up, sent.Kind, sent.MediaID, sent.Filename)
			}
		})
	}
}
