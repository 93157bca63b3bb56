package freshdesk_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileBytes is deterministic content of n bytes that differs per seed.
func fileBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>8)
	}
	return b
}

func mediaEvent(id, conv, typ string, md *sdk.Media) sdk.Event {
	ev := text(id, conv, ana, "")
	ev.Message = &sdk.Message{ID: "wamid." + id, Type: typ, Media: md}
	return ev
}

// attachments returns the files of a ticket's description or a
// conversation, as the fake holds them.
func attachments(t *testing.T, list []any) []freshdesktest.Attachment {
	t.Helper()
	var out []freshdesktest.Attachment
	for _, v := range list {
		a, ok := v.(freshdesktest.Attachment)
		if !ok {
			t.Fatalf("attachment %#v is not one the fake stored", v)
		}
		out = append(out, a)
	}
	return out
}

// countingBody counts what a request body gives.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

func TestInboundMediaAttachedByteIdentical(t *testing.T) {
	// Each multipart request says its length (Content-Length, not
	// chunked), and it is the body's.
	type length struct {
		declared, sent int64
		chunked        bool
	}
	var mu sync.Mutex
	var lengths []length
	e := newEnv(t, setup{handler: func(fake http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
				fake.ServeHTTP(w, r)
				return
			}
			body := &countingBody{ReadCloser: r.Body}
			r.Body = body
			fake.ServeHTTP(w, r)
			_, _ = io.Copy(io.Discard, body)
			mu.Lock()
			lengths = append(lengths, length{r.ContentLength, body.n, len(r.TransferEncoding) > 0})
			mu.Unlock()
		})
	}})
	cases := []struct {
		name, id, typ, mime, filename, wantName string
		voice                                   bool
		size                                    int
	}{
		// The first opens the ticket (multipart create), the others are
		// notes (multipart notes).
		{name: "image", id: "m_img", typ: "image", mime: "image/jpeg", wantName: "whatsapp-image-20261124-120000.jpg", size: 300 << 10},
		{name: "voice note", id: "m_voice", typ: "audio", mime: "audio/ogg", voice: true, wantName: "whatsapp-voice-note-20261124-120000.ogg", size: 40 << 10},
		{name: "pdf", id: "m_pdf", typ: "document", mime: "application/pdf", filename: "fatura \"março\".pdf", wantName: "fatura \"março\".pdf", size: 1<<20 + 17},
		{name: "a name with a path and a line break", id: "m_evil", typ: "document", mime: "application/pdf", filename: "../../etc/evil\r\nX-Injected: 1.pdf", wantName: "evilX-Injected: 1.pdf", size: 100},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := fileBytes(byte(i), tc.size)
			e.host.AddMedia(sdk.MediaInfo{ID: tc.id, MimeType: tc.mime}, data)
			e.mustDeliver(mediaEvent("evt_"+tc.id, "conv_ana", tc.typ, &sdk.Media{ID: tc.id, MimeType: tc.mime, Filename: tc.filename, Voice: tc.voice}))
			tk := e.onlyTicket()
			list := tk.Attachments
			if i > 0 {
				last := tk.Conversations[len(tk.Conversations)-1]
				if !last.Incoming || last.Private || last.UserID != tk.RequesterID {
					t.Errorf("note %+v is not the customer's incoming public note", last)
				}
				list = last.Attachments
			}
			atts := attachments(t, list)
			if len(atts) != 1 {
				t.Fatalf("%d attachments, want 1", len(atts))
			}
			a := atts[0]
			got, _ := e.fake.FileBytes(a.ID)
			if sum(got) != sum(data) || a.Size != int64(len(data)) || a.ContentType != tc.mime || a.Name != tc.wantName {
				t.Errorf("attachment %+v (sha256 %s), want %s (%d bytes, %s, sha256 %s)", a, sum(got), tc.wantName, len(data), tc.mime, sum(data))
			}
		})
	}
	mu.Lock()
	if len(lengths) != 4 {
		t.Errorf("%d multipart requests, want 4", len(lengths))
	}
	for _, l := range lengths {
		if l.declared <= 0 || l.declared != l.sent || l.chunked {
			t.Errorf("multipart request: Content-Length %d, body %d bytes, chunked %t", l.declared, l.sent, l.chunked)
		}
	}
	mu.Unlock()
	// Delivered again: nothing more is attached.
	e.mustDeliver(mediaEvent("evt_m_pdf", "conv_ana", "document", &sdk.Media{ID: "m_pdf", MimeType: "application/pdf"}))
	if n := len(e.onlyTicket().Conversations); n != len(cases)-1 {
		t.Errorf("%d notes after a redelivery, want %d", n, len(cases)-1)
	}
}

// bigHost holds one file larger than Freshdesk takes, without the bytes.
type bigHost struct {
	*sdktest.FakeHost
	size int64
}

func (h bigHost) OpenMedia(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error) {
	if id != "m_big" {
		return h.FakeHost.OpenMedia(ctx, id)
	}
	return sdk.MediaInfo{ID: id, MimeType: "video/mp4", Size: h.size}, io.NopCloser(strings.NewReader("")), nil
}

func TestInboundMediaNotAttached(t *testing.T) {
	cases := []struct {
		name  string
		typ   string
		media *sdk.Media
		opts  []freshdesktest.Option
		data  []byte // added to the host under the media id
		note  bool   // the file comes with a second message, as a note
		has   string
	}{
		{name: "unavailable at delivery", typ: "image",
			media: &sdk.Media{ID: "m_gone", MimeType: "image/jpeg", State: sdk.MediaUnavailable, Reason: "the media id is gone at Meta"},
			has:   "<em>The image could not be retrieved: the media id is gone at Meta.</em>"},
		{name: "lost by the hub", typ: "audio", note: true,
			media: &sdk.Media{ID: "m_lost", MimeType: "audio/ogg", Voice: true},
			has:   "<em>The voice note could not be retrieved: no media &#34;m_lost&#34;.</em>"},
		{name: "over the 20 MB Freshdesk takes", typ: "video",
			media: &sdk.Media{ID: "m_big", MimeType: "video/mp4"},
			has:   "<em>The video is 25.0 MB, larger than the 20.0 MB Freshdesk takes per ticket or note; an admin can download it from wahub: GET /api/v1/media/m_big.</em>"},
		{name: "refused by Freshdesk, ticket", typ: "document", opts: []freshdesktest.Option{freshdesktest.WithAttachmentLimit(10)},
			media: &sdk.Media{ID: "m_doc", MimeType: "application/pdf", Filename: "scan.pdf"}, data: fileBytes(1, 100),
			has: "<em>Freshdesk did not take the document (The cumulative size of all attachments must not exceed 0 MB); an admin can download it from wahub: GET /api/v1/media/m_doc.</em>"},
		{name: "refused by Freshdesk, note", typ: "document", note: true, opts: []freshdesktest.Option{freshdesktest.WithAttachmentLimit(10)},
			media: &sdk.Media{ID: "m_doc", MimeType: "application/pdf", Filename: "scan.pdf"}, data: fileBytes(1, 100),
			has: "<em>Freshdesk did not take the document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := sdktest.NewFakeHost()
			e := newEnv(t, setup{opts: tc.opts, host: bigHost{FakeHost: fh, size: 25 << 20}})
			if tc.data != nil {
				fh.AddMedia(sdk.MediaInfo{ID: tc.media.ID, MimeType: tc.media.MimeType}, tc.data)
			}
			if tc.note {
				e.mustDeliver(text("evt_1", "conv_ana", ana, "Olá"))
			}
			ev := mediaEvent("evt_m", "conv_ana", tc.typ, tc.media)
			e.mustDeliver(ev)
			e.mustDeliver(ev) // a redelivery adds nothing
			tk := e.onlyTicket()
			body, list := tk.Description, tk.Attachments
			if tc.note {
				if len(tk.Conversations) != 1 {
					t.Fatalf("%d notes, want 1", len(tk.Conversations))
				}
				body, list = tk.Conversations[0].Body, tk.Conversations[0].Attachments
			} else if len(tk.Conversations) != 0 {
				t.Errorf("notes %q, want none", bodies(tk.Conversations))
			}
			if !strings.Contains(body, tc.has) {
				t.Errorf("%q lacks %q", body, tc.has)
			}
			if len(list) != 0 {
				t.Errorf("attachments %+v, want none", list)
			}
		})
	}
}

// fileStore serves the fake a second time, as Freshdesk's file store on
// another domain: attachment_urls point there.
func fileStore(t *testing.T, e *env) {
	srv := httptest.NewServer(e.fake)
	t.Cleanup(srv.Close)
	e.fake.SetFileHost(srv.URL)
}

func TestAgentReplyAttachmentsSent(t *testing.T) {
	e := newEnv(t, setup{})
	fileStore(t, e)
	id := e.ticketFor()
	img, pdf := fileBytes(1, 200<<10), fileBytes(2, 3<<20)
	if _, err := e.fake.AgentReplyFiles(id, "Segue a nota e a foto.",
		freshdesktest.File{Name: "foto.jpg", ContentType: "image/jpeg", Data: img},
		freshdesktest.File{Name: "nota.pdf", ContentType: "application/pdf", Data: pdf}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // Freshdesk delivers the webhook twice
		if status, body := e.hook(e.webhook(id, secret)); status != 200 || body["ok"] != true {
			t.Fatalf("answer %d %v", status, body)
		}
	}
	sent := e.host.Sent()
	if len(sent) != 3 {
		t.Fatalf("sent %+v, want the text and two files", sent)
	}
	if sent[0].Text != "Segue a nota e a foto." || sent[0].Media != nil || sent[0].To != ana.WAID {
		t.Errorf("first message %+v", sent[0])
	}
	for i, want := range []struct {
		name string
		data []byte
	}{{"foto.jpg", img}, {"nota.pdf", pdf}} {
		m := sent[i+1]
		if m.Media == nil || m.Media.Filename != want.name || m.PhoneNumberID != biz.PhoneNumberID {
			t.Fatalf("message %d %+v, want %s", i+1, m, want.name)
		}
		got, _ := e.host.MediaBytes(m.Media.ID)
		if sum(got) != sum(want.data) {
			t.Errorf("%s: the hub holds sha256 %s, want %s", want.name, sum(got), sum(want.data))
		}
	}
	if n := len(e.host.Uploads()); n != 2 {
		t.Errorf("%d files stored in the hub, want 2", n)
	}
	downloads := e.fake.Downloads()
	if len(downloads) != 2 {
		t.Fatalf("downloads %+v, want one per file", downloads)
	}
	for _, d := range downloads {
		if d.Authorized || d.Status != 200 {
			t.Errorf("download %+v: the file store got the API key or refused", d)
		}
	}
}

func TestAgentReplyAttachmentNotSent(t *testing.T) {
	cases := []struct {
		name     string
		maxMedia int64
		send     func(sdk.OutboundMessage) (sdk.SendResult, error)
		handler  func(http.Handler) http.Handler
		sent     int
		stored   int
		note     []string
	}{
		{name: "too large for the hub", maxMedia: 1000, sent: 1,
			note: []string{"Only part of this reply was delivered", "<li>the attachment nota.pdf:", "(media_too_large)</li>", "documents up to 100 MB"}},
		{name: "a type WhatsApp refuses", stored: 1, sent: 1,
			send: func(m sdk.OutboundMessage) (sdk.SendResult, error) {
				if m.Media != nil {
					return sdk.SendResult{}, &sdk.RefusedError{Code: "media_type", Message: "WhatsApp does not send application/x-msdownload files"}
				}
				return sdk.SendResult{ID: "msg_" + m.IdempotencyKey, State: "queued"}, nil
			},
			note: []string{"<li>the attachment nota.pdf: WhatsApp does not send application/x-msdownload files (media_type)</li>"}},
		{name: "window closed",
			send: func(m sdk.OutboundMessage) (sdk.SendResult, error) {
				return sdk.SendResult{}, &sdk.RefusedError{Code: "outside_window", Message: "the customer last wrote 30h ago"}
			},
			note: []string{"This reply was not delivered on WhatsApp:", "<li>the text: the customer last wrote 30h ago (outside_window)</li>", "<li>the attachment nota.pdf: the customer last wrote 30h ago (outside_window)</li>", "approved templates"}},
		{name: "the download link expired", sent: 1,
			handler: func(fake http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasPrefix(r.URL.Path, "/_files/") {
						w.WriteHeader(http.StatusForbidden)
						return
					}
					fake.ServeHTTP(w, r)
				})
			},
			note: []string{"<li>the attachment nota.pdf: the file could not be downloaded from Freshdesk: its file store answered 403 Forbidden (the download link expired or is not valid) (media_unavailable)</li>", "Attach the file again"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, setup{handler: tc.handler})
			id := e.ticketFor()
			e.host.MaxMedia = tc.maxMedia
			e.host.Send = tc.send
			if _, err := e.fake.AgentReplyFiles(id, "Segue a nota.", freshdesktest.File{Name: "nota.pdf", ContentType: "application/pdf", Data: fileBytes(5, 4000)}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if status, body := e.hook(e.webhook(id, secret)); status != 200 {
					t.Fatalf("answer %d %v", status, body)
				}
			}
			if n := len(e.host.Sent()); n != tc.sent {
				t.Errorf("%d messages sent, want %d", n, tc.sent)
			}
			if n := len(e.host.Uploads()); n != tc.stored {
				t.Errorf("%d files stored in the hub, want %d", n, tc.stored)
			}
			var notes []string
			for _, c := range e.onlyTicket().Conversations {
				if c.Private {
					notes = append(notes, c.Body)
				}
			}
			if len(notes) != 1 {
				t.Fatalf("private notes %q, want one", notes)
			}
			for _, s := range tc.note {
				if !strings.Contains(notes[0], s) {
					t.Errorf("note %q lacks %q", notes[0], s)
				}
			}
		})
	}
}

func TestAgentReplyAttachmentRetriedAfterTransientFailure(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	e := newEnv(t, setup{handler: func(fake http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fail.Load() && strings.HasPrefix(r.URL.Path, "/_files/") {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fake.ServeHTTP(w, r)
		})
	}})
	id := e.ticketFor()
	data := fileBytes(8, 5000)
	if _, err := e.fake.AgentReplyFiles(id, "", freshdesktest.File{Name: "a.png", ContentType: "image/png", Data: data}); err != nil {
		t.Fatal(err)
	}
	if status, body := e.hook(e.webhook(id, secret)); status != 503 {
		t.Fatalf("answer %d %v, want 503 while the file store fails", status, body)
	}
	fail.Store(false)
	if status, body := e.hook(e.webhook(id, secret)); status != 200 {
		t.Fatalf("answer %d %v", status, body)
	}
	sent := e.host.Sent()
	if len(sent) != 1 || sent[0].Media == nil || sent[0].Text != "" {
		t.Fatalf("sent %+v, want the file alone", sent)
	}
	if got, _ := e.host.MediaBytes(sent[0].Media.ID); sum(got) != sum(data) {
		t.Errorf("the hub holds sha256 %s, want %s", sum(got), sum(data))
	}
}

func TestInboundMediaNoteAddedOnceWhenTheAnswerIsLost(t *testing.T) {
	var lost atomic.Bool
	e := newEnv(t, setup{handler: func(fake http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/notes") && lost.CompareAndSwap(false, true) {
				// Freshdesk adds the note; the answer never arrives.
				fake.ServeHTTP(httptest.NewRecorder(), r)
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			fake.ServeHTTP(w, r)
		})
	}})
	e.mustDeliver(text("evt_1", "conv_ana", ana, "Olá"))
	data := fileBytes(6, 70<<10)
	e.host.AddMedia(sdk.MediaInfo{ID: "m1", MimeType: "image/jpeg"}, data)
	ev := mediaEvent("evt_img", "conv_ana", "image", &sdk.Media{ID: "m1", MimeType: "image/jpeg", Caption: "a foto"})
	if res := e.deliver(ev)["evt_img"]; res.Outcome != sdk.Retry {
		t.Fatalf("first attempt: %s %s, want retry", res.Outcome, res.Error)
	}
	e.mustDeliver(ev)
	e.mustDeliver(ev)
	tk := e.onlyTicket()
	if len(tk.Conversations) != 1 {
		t.Fatalf("notes %q, want the photo once", bodies(tk.Conversations))
	}
	atts := attachments(t, tk.Conversations[0].Attachments)
	if got, _ := e.fake.FileBytes(atts[0].ID); len(atts) != 1 || sum(got) != sum(data) {
		t.Errorf("attachments %+v", atts)
	}
}
