package admin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Media is the hub's media store as the admin API serves it.
type Media interface {
	Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error)
	Put(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error)
	Delete(ctx context.Context, id string) error
	DeleteContact(ctx context.Context, contact string) (int, error)
	MaxSize() int64
	// Annotate fills an event's message.media with the file's state.
	Annotate(ctx context.Context, ev *sdk.Event)
}

// notFound is implemented by Media's errors for an id the hub never had:
// 404 rather than 410.
type notFound interface{ NotFound() bool }

// mediaTransferTime bounds one file's upload or download, beyond the
// server's usual timeouts that are sized for JSON answers.
const mediaTransferTime = 30 * time.Minute

func (a *API) mediaRoutes() {
	if a.Media == nil {
		return
	}
	a.mux.HandleFunc("GET /api/v1/media/{id}", a.getMedia)
	a.mux.HandleFunc("DELETE /api/v1/media/{id}", a.deleteMedia)
	a.mux.HandleFunc("POST /api/v1/media", a.postMedia)
	a.mux.HandleFunc("DELETE /api/v1/contacts/{id}/media", a.deleteContactMedia)
}

func (a *API) mediaError(w http.ResponseWriter, id string, err error) {
	var refused *sdk.RefusedError
	var nf notFound
	switch {
	case errors.As(err, &nf) && nf.NotFound():
		WriteError(w, http.StatusNotFound, "not_found", "no media "+id+" (an inbound message's media id, or an id POST /api/v1/media returned)")
	case errors.Is(err, sdk.ErrMediaUnavailable):
		WriteError(w, http.StatusGone, "media_unavailable", err.Error())
	case errors.As(err, &refused) && refused.Code == "media_too_large":
		WriteError(w, http.StatusRequestEntityTooLarge, refused.Code, refused.Message)
	case errors.As(err, &refused):
		WriteError(w, http.StatusUnprocessableEntity, refused.Code, refused.Message)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		WriteError(w, http.StatusServiceUnavailable, "timeout", "the file could not be had in time: try again")
	default:
		if a.Logger != nil {
			a.Logger.Error("admin API: media", "media", id, "err", err)
		}
		WriteError(w, http.StatusInternalServerError, "internal", "the media store could not answer; see the hub's log")
	}
}

// getMedia streams a file: Content-Type, Content-Length, and a
// Content-Disposition that names it (attachment for documents, so a
// browser saves rather than renders them).
func (a *API) getMedia(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	info, rc, err := a.Media.Open(r.Context(), id)
	if err != nil {
		a.mediaError(w, id, err)
		return
	}
	defer rc.Close()
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(mediaTransferTime))
	h := w.Header()
	mt := info.MimeType
	if mt == "" {
		mt = "application/octet-stream"
	}
	h.Set("Content-Type", mt)
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	// A customer's file opened in a browser runs nothing, whatever it is.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "private, max-age=3600")
	if info.SHA256 != "" {
		h.Set("ETag", `"`+info.SHA256+`"`)
		h.Set("X-Wahub-SHA256", info.SHA256)
	}
	disposition := "inline"
	if sdk.MediaTypeFor(mt) == sdk.MediaDocument {
		disposition = "attachment"
	}
	name := info.Filename
	if name == "" && disposition == "attachment" {
		name = id + extension(mt)
	}
	if name != "" {
		if v := mime.FormatMediaType(disposition, map[string]string{"filename": name}); v != "" {
			disposition = v
		}
	}
	h.Set("Content-Disposition", disposition)
	if match := r.Header.Get("If-None-Match"); match != "" && info.SHA256 != "" && strings.Contains(match, info.SHA256) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, rc); err != nil && a.Logger != nil && r.Context().Err() == nil {
		// Headers are out: all that is left is to cut the answer short,
		// which the client sees as a short body against Content-Length.
		a.Logger.Error("admin API: streaming media failed", "media", id, "err", err)
	}
}

func extension(mimeType string) string {
	if exts, _ := mime.ExtensionsByType(mimeType); len(exts) > 0 {
		return exts[0]
	}
	return ""
}

// postMedia stores a file for sending: multipart/form-data with the file
// in a part named "file" (as Graph's own upload), or the raw bytes with
// their Content-Type (and ?filename=). It answers {"id", "mime_type",
// "sha256", "size", "filename"}.
func (a *API) postMedia(w http.ResponseWriter, r *http.Request) {
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(mediaTransferTime))
	limit := a.Media.MaxSize()
	if r.ContentLength > 0 && r.ContentLength > limit+64<<10 {
		WriteError(w, http.StatusRequestEntityTooLarge, "media_too_large",
			fmt.Sprintf("the request is %d bytes; this hub keeps files of at most %d (media.max_size)", r.ContentLength, limit))
		return
	}
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", "send the file as multipart/form-data (part \"file\") or as the raw body with its Content-Type")
		return
	}
	up := sdk.MediaUpload{MimeType: ct, Filename: r.URL.Query().Get("filename")}
	var body io.Reader = r.Body
	if ct == "multipart/form-data" {
		if params["boundary"] == "" {
			WriteError(w, http.StatusBadRequest, "bad_request", "multipart/form-data without a boundary")
			return
		}
		mr, err := r.MultipartReader()
		if err != nil {
			WriteError(w, http.StatusBadRequest, "bad_request", "multipart body: "+err.Error())
			return
		}
		var found bool
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				WriteError(w, http.StatusBadRequest, "bad_request", "multipart body: "+err.Error())
				return
			}
			if p.FormName() != "file" {
				p.Close()
				continue
			}
			up.MimeType, up.Filename, body, found = p.Header.Get("Content-Type"), p.FileName(), p, true
			break
		}
		if !found {
			WriteError(w, http.StatusBadRequest, "bad_request", "the multipart body has no part named \"file\"")
			return
		}
	} else {
		if up.Filename == "" {
			if _, dp, err := mime.ParseMediaType(r.Header.Get("Content-Disposition")); err == nil {
				up.Filename = dp["filename"]
			}
		}
		if r.ContentLength > 0 {
			up.Size = r.ContentLength
		}
	}
	br := bufio.NewReaderSize(body, 512)
	if mt, _, _ := mime.ParseMediaType(up.MimeType); mt == "" || mt == "application/octet-stream" {
		head, _ := br.Peek(512)
		up.MimeType = http.DetectContentType(head)
	} else {
		up.MimeType = mt
	}
	info, err := a.Media.Put(r.Context(), up, br)
	if err != nil {
		a.mediaError(w, "", err)
		return
	}
	WriteJSON(w, http.StatusOK, info)
}

func (a *API) deleteMedia(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.Media.Delete(r.Context(), id); err != nil {
		a.mediaError(w, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteContactMedia deletes every file of a contact, records and bytes.
func (a *API) deleteContactMedia(w http.ResponseWriter, r *http.Request) {
	n, err := a.Media.DeleteContact(r.Context(), r.PathValue("id"))
	if err != nil {
		a.mediaError(w, "", err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"deleted": n})
}
