package console

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// The conversation view shows a customer's photo inline, plays the voice
// note, links the document, and says why a lost file is missing; the
// files come from /console/media/{id} to a signed-in operator only.
func TestConversationShowsMedia(t *testing.T) {
	var ms *media.Store
	e := newEnv(t, func(o *Options) {
		b, err := media.NewLocal(filepath.Join(t.TempDir(), "media"))
		if err != nil {
			t.Fatal(err)
		}
		if ms, err = media.New(media.Options{Backend: b, Records: o.Store.(*store.Store), Logger: slog.New(slog.DiscardHandler)}); err != nil {
			t.Fatal(err)
		}
		o.Media = ms
	})
	ctx := context.Background()
	photo := bigJPEG(t, 1200, 900)
	files := []struct {
		id, kind, mime, name string
		data                 []byte
		state                sdk.MediaState
		want                 string
	}{
		{"m-photo", "image", "image/jpeg", "", photo, sdk.MediaAvailable, `<a href="/console/media/m-photo"><img src="/console/media/m-photo?thumb=1"`},
		{"m-damaged", "image", "image/jpeg", "", []byte("\xff\xd8 not really"), sdk.MediaAvailable, `<img src="/console/media/m-damaged?thumb=1"`},
		{"m-voice", "audio", "audio/ogg; codecs=opus", "", []byte("OggS voice"), sdk.MediaAvailable, `<audio controls preload="none" src="/console/media/m-voice">`},
		{"m-pdf", "document", "application/pdf", "fatura.pdf", []byte("%PDF-1.4"), sdk.MediaAvailable, `<a class="file" href="/console/media/m-pdf">fatura.pdf</a>`},
		{"m-gone", "image", "image/jpeg", "", nil, sdk.MediaUnavailable, `The file could not be retrieved: gone at WhatsApp`},
		// A browser decodes an <img> whole: past maxInlineImage it is a link.
		{"m-huge", "image", "image/webp", "", bytes.Repeat([]byte{0xff}, maxInlineImage+1), sdk.MediaAvailable,
			`<a class="file" href="/console/media/m-huge">image image/webp</a> <span class="file-size">(8.0 MB: too large to show here)</span>`},
	}
	var evs []sdk.Event
	for _, f := range files {
		evs = append(evs, sdk.Event{ID: "evt_" + f.id, Type: sdk.TypeMessageReceived, OccurredAt: e.clock.Now(), ReceivedAt: e.clock.Now(),
			Business: &sdk.Business{PhoneNumberID: "pn"}, Contact: &sdk.Contact{WAID: "5511987650001"},
			Message: &sdk.Message{ID: "wamid." + f.id, Type: f.kind, Media: &sdk.Media{ID: f.id, MimeType: f.mime, Filename: f.name}}})
	}
	if _, err := e.st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Dispatch(ctx, 100, func(*sdk.Event, store.RouteState) store.Decision {
		return store.Decision{Route: &sdk.Route{Rule: "r", Team: "support"}, Team: "support"}
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		out := store.MediaOutcome{ID: f.id, State: f.state, Reason: "gone at WhatsApp"}
		if f.data != nil {
			// Keep the bytes as the fetcher would, under the media id.
			info, err := ms.Put(ctx, sdk.MediaUpload{MimeType: f.mime}, bytes.NewReader(f.data))
			if err != nil {
				t.Fatal(err)
			}
			out = store.MediaOutcome{ID: f.id, State: f.state, SHA256: info.SHA256, Size: info.Size}
		}
		if err := e.st.FinishMediaFetch(ctx, out); err != nil {
			t.Fatal(err)
		}
	}
	viewer, _ := e.signIn(viewerTok)
	_, page := viewer.get("/console/conversations/" + evs[0].ConversationID)
	for _, f := range files {
		if !strings.Contains(page, f.want) {
			t.Errorf("conversation lacks %s", f.want)
		}
	}
	resp, body := viewer.get("/console/media/m-photo")
	if resp.StatusCode != 200 || body != string(photo) || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("GET /console/media/m-photo: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	// The preview is a JPEG of at most 320 px; a picture the hub cannot
	// decode comes as it is.
	resp, body = viewer.get("/console/media/m-photo?thumb=1")
	cfg, err := jpeg.DecodeConfig(strings.NewReader(body))
	if resp.StatusCode != 200 || err != nil || cfg.Width != 320 || cfg.Height != 240 || len(body) >= len(photo) {
		t.Fatalf("thumbnail: %d, %v, %dx%d, %d bytes of %d", resp.StatusCode, err, cfg.Width, cfg.Height, len(body), len(photo))
	}
	if resp, body := viewer.get("/console/media/m-damaged?thumb=1"); resp.StatusCode != 200 || body != "\xff\xd8 not really" {
		t.Fatalf("preview of a damaged picture: %d %q, want the file itself", resp.StatusCode, body)
	}
	if resp, _ := viewer.get("/console/media/m-pdf"); !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("a document is served %q, want as an attachment", resp.Header.Get("Content-Disposition"))
	}
	if strings.Contains(page, `<img src="/console/media/m-huge"`) {
		t.Error("an image over maxInlineImage is shown inline")
	}
	// A player's range request: 206 with those bytes, streamed.
	req, _ := http.NewRequest("GET", e.srv.URL+"/console/media/m-voice", nil)
	req.Header.Set("Range", "bytes=2-5")
	if resp, body := viewer.do(req); resp.StatusCode != http.StatusPartialContent || body != "gS v" ||
		resp.Header.Get("Content-Range") != "bytes 2-5/10" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("GET /console/media/m-voice Range bytes=2-5: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	if resp, _ := viewer.get("/console/media/m-gone"); resp.StatusCode != 404 {
		t.Errorf("a lost file: %d, want 404", resp.StatusCode)
	}
	anon := &client{e: e}
	if resp, body := anon.get("/console/media/m-photo"); resp.StatusCode == 200 || body == string(photo) {
		t.Fatalf("without a session: %d", resp.StatusCode)
	}
}

func bigJPEG(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The outbox shows a media message's type and file, linked to the
// stored file when the hub holds it, and a link the hub fetches as text.
func TestOutboxShowsMediaMessages(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	held, _, err := e.st.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511987650001",
		Media: &sdk.OutboundMedia{Type: sdk.MediaDocument, ID: "med_abc", Filename: "recibo.pdf", Caption: "Segue o recibo"}})
	if err != nil {
		t.Fatal(err)
	}
	linked, _, err := e.st.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511987650001",
		Media: &sdk.OutboundMedia{URL: "https://cdn.example/foto.jpg"}})
	if err != nil {
		t.Fatal(err)
	}
	viewer, _ := e.signIn(viewerTok)
	_, page := viewer.get("/console/outbox")
	for _, want := range []string{
		`<span class="kind">document</span> <a class="file" href="/console/media/med_abc">recibo.pdf</a> — Segue o recibo`,
		`<span class="kind">media</span> <code>https://cdn.example/foto.jpg</code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("outbox lacks %s", want)
		}
	}
	if strings.Contains(page, `href="https://cdn.example`) {
		t.Error("the outbox links a URL the hub fetches: the operator's browser would fetch it")
	}
	_, page = viewer.get("/console/outbox/" + held.ID)
	if want := `<p data-testid="msg-file">document: <a class="file" href="/console/media/med_abc">recibo.pdf</a> · caption “Segue o recibo”</p>`; !strings.Contains(page, want) {
		t.Errorf("message page lacks %s", want)
	}
	if _, page = viewer.get("/console/outbox/" + linked.ID); !strings.Contains(page, `<code>https://cdn.example/foto.jpg</code>`) {
		t.Error("message page lacks the media URL")
	}
}

func TestOneRange(t *testing.T) {
	for _, tc := range []struct {
		header     string
		start, end int64
		ok         bool
	}{
		{"bytes=0-", 0, 9, true},
		{"bytes=2-5", 2, 5, true},
		{"bytes=8-20", 8, 9, true}, // clipped to the file
		{"bytes=-3", 7, 9, true},
		{"bytes=-30", 0, 9, true},
		{"", 0, 0, false},
		{"bytes=10-", 0, 0, false}, // beyond the file: the whole file
		{"bytes=5-2", 0, 0, false},
		{"bytes=0-1,4-5", 0, 0, false},
		{"bytes=-0", 0, 0, false},
		{"items=0-1", 0, 0, false},
		{"bytes=x-1", 0, 0, false},
	} {
		start, end, ok := oneRange(tc.header, 10)
		if ok != tc.ok || (ok && (start != tc.start || end != tc.end)) {
			t.Errorf("oneRange(%q, 10) = %d, %d, %v; want %d, %d, %v", tc.header, start, end, ok, tc.start, tc.end, tc.ok)
		}
	}
}
