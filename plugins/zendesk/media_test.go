package zendesk_test

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
	"time"

	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
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

// mediaEvent is a customer's message carrying a file.
func mediaEvent(id, conv string, typ string, md *sdk.Media) sdk.Event {
	ev := text(id, conv, ana, "")
	ev.Message = &sdk.Message{ID: "wamid." + id, Type: typ, Media: md}
	return ev
}

func TestInboundMediaAttachedByteIdentical(t *testing.T) {
	e := newEnv(t, envOptions{})
	cases := []struct {
		name, typ, mime, filename, wantName string
		voice                               bool
		size                                int
	}{
		{name: "image", typ: "image", mime: "image/jpeg", wantName: "whatsapp-image-20261124-120000.jpg", size: 300 << 10},
		{name: "voice note", typ: "audio", mime: "audio/ogg", voice: true, wantName: "whatsapp-voice-note-20261124-120000.ogg", size: 40 << 10},
		{name: "pdf", typ: "document", mime: "application/pdf", filename: "fatura.pdf", wantName: "fatura.pdf", size: 1<<20 + 17},
		{name: "path and line break", typ: "document", mime: "application/pdf", filename: "..\\x\\evil\r\n.pdf", wantName: "evil.pdf", size: 10},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "m_" + strings.Fields(tc.name)[0]
			if tc.voice {
				id = "m_voice"
			}
			data := fileBytes(byte(i), tc.size)
			e.host.AddMedia(sdk.MediaInfo{ID: id, MimeType: tc.mime}, data)
			ev := mediaEvent("evt_"+id, "conv_a", tc.typ, &sdk.Media{ID: id, MimeType: tc.mime, Filename: tc.filename, Voice: tc.voice, State: sdk.MediaAvailable})
			e.mustDeliver(ev)
			tk := e.onlyTicket()
			last := tk.Comments[len(tk.Comments)-1]
			if !last.Public || last.AuthorID != tk.RequesterID {
				t.Errorf("comment %+v is not the customer's public comment", last)
			}
			if len(last.Attachments) != 1 {
				t.Fatalf("comment %q has %d attachments, want 1", last.Body, len(last.Attachments))
			}
			a := last.Attachments[0]
			if a.SHA256 != sum(data) || a.Size != int64(len(data)) || a.ContentType != tc.mime || a.FileName != tc.wantName {
				t.Errorf("attachment %+v, want %s (%d bytes, %s, sha256 %s)", a, tc.wantName, len(data), tc.mime, sum(data))
			}
		})
	}
	if n := e.fake.Uploads(); n != len(cases) {
		t.Errorf("%d uploads, want %d", n, len(cases))
	}
}

func TestInboundMediaRedeliveryUploadsOnce(t *testing.T) {
	cases := []struct {
		name string
		// lose makes the fake take the comment's write and lose its answer
		// on the first attempt.
		lose bool
	}{
		{name: "delivered twice"},
		{name: "comment written, answer lost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{config: map[string]any{"timeout": "1s"}})
			withTicket(t, e)
			data := fileBytes(9, 64<<10)
			e.host.AddMedia(sdk.MediaInfo{ID: "m1", MimeType: "image/png"}, data)
			ev := mediaEvent("evt_img", "conv_a", "image", &sdk.Media{ID: "m1", MimeType: "image/png", Caption: "a foto"})
			if tc.lose {
				var lost atomic.Bool
				e.setIntercept(func(r *http.Request) *injected {
					if r.Method == http.MethodPut && lost.CompareAndSwap(false, true) {
						return &injected{lose: true}
					}
					return nil
				})
				res := e.deliver(ev)["evt_img"]
				if res.Outcome != sdk.Retry {
					t.Fatalf("first attempt: %s (%s), want retry", res.Outcome, res.Error)
				}
				e.setIntercept(nil)
			} else {
				e.mustDeliver(ev)
			}
			e.mustDeliver(ev)
			tk := e.onlyTicket()
			if len(tk.Comments) != 2 {
				t.Fatalf("comments %q, want the first message and the photo once", bodies(tk))
			}
			if a := tk.Comments[1].Attachments; len(a) != 1 || a[0].SHA256 != sum(data) {
				t.Errorf("attachments %+v", a)
			}
			if n := e.fake.Uploads(); n != 1 {
				t.Errorf("%d uploads, want 1", n)
			}
		})
	}
}

// bigHost holds one file larger than Zendesk takes, without the bytes.
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
		name    string
		media   *sdk.Media
		typ     string
		setup   func(e *env)
		has     []string
		uploads int
	}{
		{name: "unavailable at delivery", typ: "image",
			media: &sdk.Media{ID: "m_gone", MimeType: "image/jpeg", State: sdk.MediaUnavailable, Reason: "the media id is gone at Meta"},
			has:   []string{"[Image]", "(The image could not be retrieved: the media id is gone at Meta.)"}},
		{name: "lost by the hub", typ: "audio",
			media: &sdk.Media{ID: "m_lost", MimeType: "audio/ogg", Voice: true, State: sdk.MediaPending},
			has:   []string{"[Voice message]", `(The voice note could not be retrieved: no media "m_lost".)`}},
		{name: "larger than Zendesk takes", typ: "video",
			media: &sdk.Media{ID: "m_big", MimeType: "video/mp4"},
			has:   []string{"[Video]", "(The video is 60.0 MB, larger than the 50.0 MB Zendesk takes; an admin can download it from wahub: GET /api/v1/media/m_big.)"}},
		{name: "refused by Zendesk with 413", typ: "document",
			media: &sdk.Media{ID: "m_doc", MimeType: "application/pdf", Filename: "scan.pdf"},
			setup: func(e *env) {
				e.host.AddMedia(sdk.MediaInfo{ID: "m_doc", MimeType: "application/pdf"}, []byte("%PDF"))
				e.setIntercept(func(r *http.Request) *injected {
					if strings.HasPrefix(r.URL.Path, "/api/v2/uploads") {
						return &injected{status: 413, body: `{"error":"RequestEntityTooLarge"}`}
					}
					return nil
				})
			},
			has: []string{"[Document: scan.pdf]", "(The document is 4 bytes, larger than the 50.0 MB Zendesk takes; an admin can download it from wahub: GET /api/v1/media/m_doc.)"}},
		{name: "a file type the account does not allow", typ: "document",
			media: &sdk.Media{ID: "m_exe", MimeType: "application/x-msdownload", Filename: "setup.exe"},
			setup: func(e *env) {
				e.host.AddMedia(sdk.MediaInfo{ID: "m_exe", MimeType: "application/x-msdownload"}, []byte("MZ"))
				e.setIntercept(func(r *http.Request) *injected {
					if strings.HasPrefix(r.URL.Path, "/api/v2/uploads") {
						return &injected{status: 422, body: `{"error":"RecordInvalid","description":"Record validation errors","details":{"base":[{"description":"File type is not allowed"}]}}`}
					}
					return nil
				})
			},
			has: []string{"[Document: setup.exe]", "(Zendesk did not take the document: Zendesk answered 422 Unprocessable Entity (RecordInvalid; Record validation errors; base: File type is not allowed); an admin can download it from wahub: GET /api/v1/media/m_exe.)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fh := sdktest.NewFakeHost()
			e := newEnv(t, envOptions{host: bigHost{FakeHost: fh, size: 60 << 20}})
			e.host = fh
			if tc.setup != nil {
				tc.setup(e)
			}
			e.mustDeliver(mediaEvent("evt_m", "conv_a", tc.typ, tc.media))
			c := e.onlyTicket().Comments[0]
			contains(t, "comment", c.Body, tc.has...)
			if len(c.Attachments) != 0 {
				t.Errorf("attachments %+v, want none", c.Attachments)
			}
			// A redelivery writes nothing more.
			e.setIntercept(nil)
			e.mustDeliver(mediaEvent("evt_m", "conv_a", tc.typ, tc.media))
			if n := len(e.onlyTicket().Comments); n != 1 {
				t.Errorf("%d comments after a redelivery, want 1", n)
			}
		})
	}
}

func TestInboundMediaUploadRetried(t *testing.T) {
	e := newEnv(t, envOptions{})
	withTicket(t, e)
	data := fileBytes(3, 10<<10)
	e.host.AddMedia(sdk.MediaInfo{ID: "m1", MimeType: "image/jpeg"}, data)
	e.fake.FailNext(1, http.StatusServiceUnavailable)
	ev := mediaEvent("evt_img", "conv_a", "image", &sdk.Media{ID: "m1", MimeType: "image/jpeg"})
	// The first call of the event is the upload (the ticket is known):
	// refused with 503, the event is retried.
	if res := e.deliver(ev)["evt_img"]; res.Outcome != sdk.Retry {
		t.Fatalf("%s (%s), want retry", res.Outcome, res.Error)
	}
	e.mustDeliver(ev)
	c := e.onlyTicket().Comments[1]
	if len(c.Attachments) != 1 || c.Attachments[0].SHA256 != sum(data) {
		t.Errorf("comment %q attachments %+v", c.Body, c.Attachments)
	}
}

// fileHost serves the fake a second time, as Zendesk's file host on
// another domain: content_url redirects there.
func fileHost(t *testing.T, e *env) {
	srv := httptest.NewServer(e.fake)
	t.Cleanup(srv.Close)
	e.fake.SetFileHost(srv.URL)
}

func TestAgentReplyAttachmentsSent(t *testing.T) {
	e := newEnv(t, envOptions{})
	fileHost(t, e)
	id := withTicket(t, e)
	img, pdf := fileBytes(1, 200<<10), fileBytes(2, 3<<20)
	cid, err := e.fake.AgentCommentFiles(id, "Segue a nota e a foto.", true,
		zendesktest.File{Name: "foto.jpg", ContentType: "image/jpeg", Data: img},
		zendesktest.File{Name: "nota.pdf", ContentType: "application/pdf", Data: pdf})
	if err != nil {
		t.Fatal(err)
	}
	status(t, e.hook(id, cid), 200)
	status(t, e.hook(id, cid), 200) // Zendesk delivered the webhook twice

	sent := e.host.Sent()
	if len(sent) != 3 {
		t.Fatalf("sent %+v, want the text and two files", sent)
	}
	if sent[0].Text != "Segue a nota e a foto." || sent[0].To != ana.WAID || sent[0].Media != nil {
		t.Errorf("first message %+v, want the text", sent[0])
	}
	for i, want := range []struct {
		name, mime string
		data       []byte
	}{{"foto.jpg", "image/jpeg", img}, {"nota.pdf", "application/pdf", pdf}} {
		m := sent[i+1]
		if m.Media == nil || m.Media.Filename != want.name || m.To != ana.WAID || m.PhoneNumberID != biz.PhoneNumberID {
			t.Fatalf("message %d %+v, want %s", i+1, m, want.name)
		}
		got, ok := e.host.MediaBytes(m.Media.ID)
		if !ok || sum(got) != sum(want.data) {
			t.Errorf("%s: the hub holds %d bytes (sha256 %s), want sha256 %s", want.name, len(got), sum(got), sum(want.data))
		}
	}
	if ups := e.host.Uploads(); len(ups) != 2 || ups[0].MimeType != "image/jpeg" || ups[1].Filename != "nota.pdf" {
		t.Errorf("PutMedia calls %+v, want the two files once", ups)
	}
	// content_url with the credentials, the signed URL without them;
	// twice each (two files), once per file despite the second webhook.
	var got []string
	for _, d := range e.fake.Downloads() {
		kind := "content_url"
		if strings.HasPrefix(d.Path, "/_files/") {
			kind = "signed"
		}
		got = append(got, kind+" auth="+map[bool]string{true: "yes", false: "no"}[d.Authorized]+" "+http.StatusText(d.Status))
	}
	want := []string{"content_url auth=yes Found", "signed auth=no OK", "content_url auth=yes Found", "signed auth=no OK"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("downloads %q, want %q", got, want)
	}
}

func TestAgentReplyAttachmentNotSent(t *testing.T) {
	cases := []struct {
		name      string
		maxMedia  int64
		send      func(sdk.OutboundMessage) (sdk.SendResult, error)
		intercept func(*http.Request) *injected
		// sent is how many messages went out; note what the internal note
		// says; stored how many files reached the hub.
		sent   int
		stored int
		note   []string
	}{
		{name: "too large for the hub", maxMedia: 1000, sent: 1, stored: 0,
			note: []string{"wahub sent only part of this reply", "the attachment nota.pdf:", "(media_too_large)", "documents up to 100 MB"}},
		{name: "a type WhatsApp refuses", stored: 1, sent: 1,
			send: func(m sdk.OutboundMessage) (sdk.SendResult, error) {
				if m.Media != nil {
					return sdk.SendResult{}, &sdk.RefusedError{Code: "media_type", Message: "WhatsApp does not send application/x-msdownload files"}
				}
				return sdk.SendResult{ID: "msg_" + m.IdempotencyKey, State: "queued"}, nil
			},
			note: []string{"the attachment nota.pdf: WhatsApp does not send application/x-msdownload files (media_type)"}},
		{name: "window closed", stored: 0, sent: 0,
			send: func(m sdk.OutboundMessage) (sdk.SendResult, error) {
				return sdk.SendResult{}, &sdk.RefusedError{Code: "outside_window", Message: "the customer last wrote 30h ago"}
			},
			note: []string{"wahub did not send this reply on WhatsApp:", "- the text: the customer last wrote 30h ago (outside_window)", "- the attachment nota.pdf: the customer last wrote 30h ago (outside_window)", "approved template"}},
		{name: "the file is gone from Zendesk", stored: 0, sent: 1,
			intercept: func(r *http.Request) *injected {
				if strings.HasPrefix(r.URL.Path, "/attachments/") {
					return &injected{status: 404, body: `{"error":"RecordNotFound","description":"Not found"}`}
				}
				return nil
			},
			note: []string{"the attachment nota.pdf: the file could not be downloaded from Zendesk: Zendesk answered 404 Not Found for the file: RecordNotFound; Not found (media_unavailable)", "Attach the file again"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			id := withTicket(t, e)
			e.host.MaxMedia = tc.maxMedia
			e.host.Send = tc.send
			if tc.intercept != nil {
				e.setIntercept(tc.intercept)
			}
			cid, err := e.fake.AgentCommentFiles(id, "Segue a nota.", true, zendesktest.File{Name: "nota.pdf", ContentType: "application/pdf", Data: fileBytes(5, 4000)})
			if err != nil {
				t.Fatal(err)
			}
			status(t, e.hook(id, cid), 200)
			status(t, e.hook(id, cid), 200)
			if n := len(e.host.Sent()); n != tc.sent {
				t.Errorf("%d messages sent, want %d", n, tc.sent)
			}
			if n := len(e.host.Uploads()); n != tc.stored {
				t.Errorf("%d files stored in the hub, want %d", n, tc.stored)
			}
			var notes []string
			for _, c := range e.onlyTicket().Comments {
				if !c.Public {
					notes = append(notes, c.Body)
				}
			}
			if len(notes) != 1 {
				t.Fatalf("internal notes %q, want one", notes)
			}
			contains(t, "note", notes[0], tc.note...)
		})
	}
}

func TestAgentReplyAttachmentRetriedAfterTransientFailure(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	data := fileBytes(8, 5000)
	cid, err := e.fake.AgentCommentFiles(id, "", true, zendesktest.File{Name: "a.png", ContentType: "image/png", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	e.setIntercept(func(r *http.Request) *injected {
		if strings.HasPrefix(r.URL.Path, "/_files/") {
			return &injected{status: 503}
		}
		return nil
	})
	status(t, e.hook(id, cid), 503)
	e.setIntercept(nil)
	status(t, e.hook(id, cid), 200)
	sent := e.host.Sent()
	if len(sent) != 1 || sent[0].Media == nil || sent[0].Text != "" {
		t.Fatalf("sent %+v, want the file alone", sent)
	}
	if got, _ := e.host.MediaBytes(sent[0].Media.ID); sum(got) != sum(data) {
		t.Errorf("the hub holds sha256 %s, want %s", sum(got), sum(data))
	}
}

func TestAgentReplyAttachmentSentAfterZendeskStopsWaiting(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := withTicket(t, e)
	data := fileBytes(4, 50<<10)
	cid, err := e.fake.AgentCommentFiles(id, "", true, zendesktest.File{Name: "a.pdf", ContentType: "application/pdf", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.setIntercept(func(r *http.Request) *injected {
		if strings.HasPrefix(r.URL.Path, "/_files/") {
			once.Do(func() { close(started) })
			<-release
		}
		return nil
	})
	sent := make(chan sdk.OutboundMessage, 1)
	e.host.Send = func(m sdk.OutboundMessage) (sdk.SendResult, error) {
		sent <- m
		return sdk.SendResult{ID: "msg_1", State: "queued"}, nil
	}
	// Zendesk gives up on the webhook while the file is downloading.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	body := zendesktest.WebhookBody(id, cid)
	go func() {
		_, err := e.r.HandleHook(ctx, &sdk.HookRequest{Method: http.MethodPost, Path: "/hooks/zendesk", Header: e.fake.SignWebhook(body), Body: body})
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; err == nil {
		t.Fatal("HandleHook answered although its caller had gone")
	}
	close(release)
	var m sdk.OutboundMessage
	select {
	case m = <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("the attachment was not sent once Zendesk stopped waiting")
	}
	if got, _ := e.host.MediaBytes(m.Media.ID); sum(got) != sum(data) {
		t.Errorf("sent %+v holding sha256 %s, want %s", m, sum(got), sum(data))
	}
}
