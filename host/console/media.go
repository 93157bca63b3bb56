package console

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Media is the hub's media store as the console shows it: files streamed
// to the browser, and each event's file state.
type Media interface {
	Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error)
	Annotate(ctx context.Context, ev *sdk.Event)
}

// media streams a customer's file to a signed-in operator, so the
// conversation view can show the photo, play the voice note and open the
// document. Images, audio and video show inline; anything else downloads.
func (c *Console) media(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opt.Media == nil {
		http.NotFound(w, r)
		return
	}
	info, rc, err := c.opt.Media.Open(r.Context(), r.PathValue("id"))
	if errors.Is(err, sdk.ErrMediaUnavailable) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		c.opt.Logger.Error("console: media", "media", r.PathValue("id"), "err", err)
		http.Error(w, "the media store could not answer; see the hub's log", http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	h := w.Header()
	if r.URL.Query().Has("thumb") && (info.MimeType == "image/jpeg" || info.MimeType == "image/png") {
		data, ok := c.thumbs.get(info.SHA256)
		if !ok {
			if data, err = thumbnail(rc); err == nil {
				c.thumbs.put(info.SHA256, data)
			}
		}
		if err == nil {
			h.Set("Content-Type", "image/jpeg")
			h.Set("Content-Length", strconv.Itoa(len(data)))
			h.Set("Cache-Control", "private, max-age=3600")
			w.Write(data)
			return
		}
		// Not a picture the hub can scale (damaged, huge): the file itself,
		// which the browser scales.
		rc.Close()
		if info, rc, err = c.opt.Media.Open(r.Context(), r.PathValue("id")); err != nil {
			http.Error(w, "the media store could not answer; see the hub's log", http.StatusInternalServerError)
			return
		}
		defer rc.Close()
	}
	mt := info.MimeType
	if mt == "" {
		mt = "application/octet-stream"
	}
	h.Set("Content-Type", mt)
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	// A file is the same bytes for ever; it is the customer's, so private.
	h.Set("Cache-Control", "private, max-age=3600")
	disposition := "inline"
	if kind := sdk.MediaTypeFor(mt); kind == sdk.MediaDocument {
		// A document could be HTML or SVG: never rendered in the
		// console's origin.
		disposition = "attachment"
	}
	if info.Filename != "" {
		disposition = mime.FormatMediaType(disposition, map[string]string{"filename": info.Filename})
	}
	h.Set("Content-Disposition", disposition)
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// Players ask for ranges (Safari plays audio and video only from a
	// 206, and seeking asks for the rest of the file): one range is
	// answered by reading past the bytes before it, still streamed. A
	// range the hub does not take (several, malformed, beyond the file)
	// gets the whole file, as HTTP allows.
	h.Set("Accept-Ranges", "bytes")
	if start, end, ok := oneRange(r.Header.Get("Range"), info.Size); ok {
		if _, err := io.CopyN(io.Discard, rc, start); err != nil {
			http.Error(w, "the media store could not answer; see the hub's log", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end, 10)+"/"+strconv.FormatInt(info.Size, 10))
		h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		io.CopyN(w, rc, end-start+1)
		return
	}
	io.Copy(w, rc)
}

// oneRange parses a Range header of one byte range (bytes=a-b, bytes=a-,
// bytes=-n) within a file of size bytes; ok is false for anything else.
func oneRange(header string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found || size <= 0 || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	var err error
	switch {
	case a == "": // the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(0, size-n), size - 1, true
	default:
		if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 || start >= size {
			return 0, 0, false
		}
		end = size - 1
		if b != "" {
			if end, err = strconv.ParseInt(b, 10, 64); err != nil || end < start {
				return 0, 0, false
			}
			end = min(end, size-1)
		}
		return start, end, true
	}
}

// annotate gives a bubble's media its current state.
func (c *Console) annotate(ctx context.Context, ev *sdk.Event) {
	if c.opt.Media != nil && ev.Message != nil && ev.Message.Media != nil {
		c.opt.Media.Annotate(ctx, ev)
	}
}

// maxInlineImage bounds the pictures the hub cannot scale (anything but
// JPEG and PNG, whose thumbnails are bounded by maxThumbSource) that a
// conversation shows inline: a browser decodes an <img> whole, so a
// larger one (media.max_size raised, an agent's file) is a link to open,
// not a page that takes the operator's memory. WhatsApp's own limits are
// 5 MB for an image and 500 KB for a sticker.
const maxInlineImage = 8 << 20

// fileView is how a bubble shows its file: inline when the hub holds it,
// else why not.
type fileView struct {
	URL string // empty when the file cannot be shown
	// Thumb is the preview of a photo: scaled by the hub when it can.
	Thumb  string
	Kind   string // image, sticker, audio, video, document
	Name   string
	Note   string
	Size   string // human, when known
	Inline bool   // a photo or sticker shown as one (its thumbnail, or small enough itself)
}

func (c *Console) fileView(m *sdk.Message) *fileView {
	if m == nil || m.Media == nil || m.Media.ID == "" || c.opt.Media == nil {
		return nil
	}
	md := m.Media
	kind := m.Type
	switch kind {
	case sdk.MediaImage, sdk.MediaSticker, sdk.MediaAudio, sdk.MediaVideo, sdk.MediaDocument:
	default:
		kind = sdk.MediaTypeFor(md.MimeType)
	}
	f := &fileView{Kind: kind, Name: md.Filename}
	if f.Name == "" {
		f.Name = kind + " " + md.MimeType
	}
	if md.Size > 0 {
		f.Size = humanSize(md.Size)
	}
	switch md.State {
	case sdk.MediaAvailable:
		f.URL = "/console/media/" + url.PathEscape(md.ID)
		f.Thumb = f.URL
		limit := int64(maxInlineImage)
		if md.MimeType == "image/jpeg" || md.MimeType == "image/png" {
			f.Thumb += "?thumb=1"
			limit = maxThumbSource // the hub scales it (or serves a file no larger)
		}
		f.Inline = (kind == sdk.MediaImage || kind == sdk.MediaSticker) && md.Size <= limit
	case sdk.MediaUnavailable:
		f.Note = "The file could not be retrieved: " + md.Reason
	default:
		f.Note = "The file is being fetched from WhatsApp."
	}
	return f
}

// humanSize is a file size as an operator reads it.
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatInt((n+512)>>10, 10) + " KB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// outFile is an outbound media message's file as the outbox shows it:
// its WhatsApp type, a name, and a link to the stored file when the hub
// holds it (an id of POST /api/v1/media or PutMedia; a URL the hub
// fetches is shown as text, never fetched by the operator's browser).
type outFile struct {
	Kind, Name, URL, Link, Caption, Size, SHA256 string
}

func outboundFile(rec store.OutboundRecord) *outFile {
	m := rec.Request.Media
	if m == nil {
		return nil
	}
	f := &outFile{Kind: m.Type, Name: m.Filename, Caption: m.Caption, Link: m.URL}
	if u := rec.Upload; u != nil {
		if f.Kind == "" {
			f.Kind = sdk.MediaTypeFor(u.MimeType)
		}
		f.Size, f.SHA256 = humanSize(u.Size), u.SHA256
	}
	if f.Kind == "" {
		f.Kind = "media"
	}
	if m.ID != "" {
		f.URL = "/console/media/" + url.PathEscape(m.ID)
		if f.Name == "" {
			f.Name = m.ID
		}
	}
	if f.Name == "" {
		f.Name = m.URL
	}
	return f
}
