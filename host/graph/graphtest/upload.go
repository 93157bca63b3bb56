package graphtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wahub/wahub/host/graph"
)

// The upload side of media messages: POST /{phone-number-id}/media takes a
// multipart form (messaging_product=whatsapp, type=<MIME type>, file) and
// answers {"id": "<media id>"}; a media message then names that id. The
// fake reads the file as a stream (a 100 MB document is never held),
// keeping its size and sha256, so tests compare what arrived byte for byte.
//
// Limits, as the Cloud API documents them (Supported media types,
// developers.facebook.com/docs/whatsapp/cloud-api/reference/media): the
// upload takes the MIME types below and at most 100 MB; the per-type size
// limits apply when a message uses the file (a 10 MB PNG may go as a
// document, not as an image).

// Upload is one file the fake accepted.
type Upload struct {
	ID            string    `json:"id"`
	PhoneNumberID string    `json:"phone_number_id"`
	MimeType      string    `json:"mime_type"` // the form's "type"
	Filename      string    `json:"filename,omitempty"`
	Size          int64     `json:"size"`
	SHA256        string    `json:"sha256"` // hex
	Time          time.Time `json:"time"`
}

// maxUpload is the largest file Graph takes (a document).
const maxUpload = 100 << 20

type mediaLimit struct {
	mimes []string
	max   int64
}

// uploadMIMEs are the upload's "type" options; mediaLimits what each
// message type takes.
var (
	documentTypes = []string{"text/plain", "application/pdf", "application/vnd.ms-powerpoint", "application/msword",
		"application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
		"application/vnd.openxmlformats-officedocument.presentationml.presentation",
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
	mediaLimits = map[string]mediaLimit{
		"image":   {[]string{"image/jpeg", "image/png"}, 5 << 20},
		"audio":   {[]string{"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}, 16 << 20},
		"video":   {[]string{"video/mp4", "video/3gpp"}, 16 << 20},
		"sticker": {[]string{"image/webp"}, 500 << 10},
	}
	uploadMIMEs = slices.Concat(documentTypes, mediaLimits["image"].mimes, mediaLimits["audio"].mimes,
		mediaLimits["video"].mimes, mediaLimits["sticker"].mimes)
)

func init() {
	mediaLimits["document"] = mediaLimit{uploadMIMEs, maxUpload}
}

// uploads is the fake's media state.
type uploads struct {
	byID  map[string]*Upload
	order []string
	fails []*ErrorResponse
}

func (s *Server) uploadState() *uploads {
	if s.up == nil {
		s.up = &uploads{byID: map[string]*Upload{}}
	}
	return s.up
}

// Uploads returns the files accepted, in order.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.uploadState()
	out := make([]Upload, 0, len(m.order))
	for _, id := range m.order {
		out = append(out, *m.byID[id])
	}
	return out
}

// uploadSnapshot is the latest keep uploads; called with s.mu held.
func (s *Server) uploadSnapshot(keep int) []Upload {
	m := s.uploadState()
	out := []Upload{}
	for _, id := range m.order[max(0, len(m.order)-keep):] {
		out = append(out, *m.byID[id])
	}
	return out
}

// UploadCount is len(Uploads()) without the copy, for polling.
func (s *Server) UploadCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.uploadState().order)
}

// FailNextUpload makes the next upload fail with Meta's answer for code
// (see ErrorFor), after its file was read.
func (s *Server) FailNextUpload(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadState().fails = append(s.uploadState().fails, ErrorFor(code))
}

// uploadPath accepts /{version}/{id}/media and /{id}/media.
func uploadPath(path string) (id string, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > 0 && isVersion(segs[0]) {
		segs = segs[1:]
	}
	if len(segs) == 2 && segs[0] != "" && segs[1] == "media" {
		return segs[0], true
	}
	return "", false
}

// serveUpload answers an upload; false if r is not one.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) bool {
	pnid, ok := uploadPath(r.URL.Path)
	if !ok {
		return false
	}
	req := &Request{Time: s.now(), Method: r.Method, Path: r.URL.Path, PhoneNumberID: pnid, Token: bearer(r),
		Header: r.Header.Clone(), Kind: "upload"}
	s.mu.Lock()
	s.seq++
	req.Seq = int(s.seq)
	s.requests = append(s.requests, req)
	script := s.script
	s.mu.Unlock()
	if e := s.gate(r, req, true); e != nil {
		s.refuse(w, req, e)
		return true
	}
	if script != nil {
		if e := script(*req); e != nil {
			s.refuse(w, req, e)
			return true
		}
	}
	up, e := s.readUpload(r, pnid)
	if e == nil {
		s.mu.Lock()
		m := s.uploadState()
		if len(m.fails) > 0 {
			e, m.fails = m.fails[0], m.fails[1:]
		} else {
			m.byID[up.ID] = up
			m.order = append(m.order, up.ID)
			req.Status = http.StatusOK
		}
		s.mu.Unlock()
	}
	if e != nil {
		s.refuse(w, req, e)
		return true
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": up.ID})
	return true
}

// readUpload reads the form the way Graph does: the parameters by name, the
// file streamed through the digest.
func (s *Server) readUpload(r *http.Request, pnid string) (*Upload, *ErrorResponse) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, withDetails(graph.ErrInvalidParameter, "(#100) The parameter messaging_product is required.", "")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, withDetails(graph.ErrInvalidParameter, "(#100) The parameter messaging_product is required.", "")
	}
	up := &Upload{PhoneNumberID: pnid, Time: s.now()}
	var product string
	gotFile := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, withDetails(graph.ErrMediaUpload, "", "The upload was cut short: "+err.Error())
		}
		switch part.FormName() {
		case "messaging_product":
			b, _ := io.ReadAll(io.LimitReader(part, 64))
			product = string(b)
		case "type":
			b, _ := io.ReadAll(io.LimitReader(part, 256))
			up.MimeType = string(b)
		case "file":
			gotFile = true
			up.Filename = part.FileName()
			h := sha256.New()
			n, err := io.Copy(h, io.LimitReader(part, maxUpload+1))
			if err != nil {
				return nil, withDetails(graph.ErrMediaUpload, "", "The upload was cut short: "+err.Error())
			}
			if n > maxUpload {
				return nil, withDetails(graph.ErrMediaUpload, "", fmt.Sprintf("File size exceeds the maximum of %d bytes.", maxUpload))
			}
			up.Size, up.SHA256 = n, hex.EncodeToString(h.Sum(nil))
		default:
			return nil, withDetails(graph.ErrInvalidParameter, "(#100) Unexpected parameter "+part.FormName()+".", "")
		}
		part.Close()
	}
	switch {
	case product == "":
		return nil, withDetails(graph.ErrInvalidParameter, "(#100) The parameter messaging_product is required.", "")
	case product != "whatsapp":
		return nil, withDetails(graph.ErrInvalidParameter, fmt.Sprintf("(#100) Param messaging_product must be one of {WHATSAPP} - got %q.", product), "")
	case up.MimeType == "":
		return nil, withDetails(graph.ErrInvalidParameter, "(#100) The parameter type is required.", "")
	case !gotFile:
		return nil, withDetails(graph.ErrInvalidParameter, "(#100) The parameter file is required.", "")
	case !slices.Contains(uploadMIMEs, up.MimeType):
		return nil, withDetails(graph.ErrInvalidParameter, "(#100) Param file must be a file with one of the following types: "+
			strings.Join(uploadMIMEs, ", ")+". Received file of type '"+up.MimeType+"'.", "")
	case up.Size == 0:
		return nil, withDetails(graph.ErrMediaUpload, "", "The file is empty.")
	}
	up.ID = newMediaID()
	return up, nil
}

// checkMediaMessage holds a media message to the file it names: one this
// fake took, of a MIME type and size its message type allows. Called with
// s.mu held.
func (s *Server) checkMediaMessage(p parsed) *ErrorResponse {
	if p.mediaID == "" {
		return nil // a link: Meta fetches it later, and reports a failure as a status
	}
	up := s.uploadState().byID[p.mediaID]
	if up == nil {
		return withDetails(graph.ErrInvalidParameter, "(#100) Invalid parameter", "Param "+p.kind+"['id'] is not a valid media id: "+p.mediaID)
	}
	lim := mediaLimits[p.kind]
	if !slices.Contains(lim.mimes, up.MimeType) {
		return withDetails(graph.ErrMediaUpload, "", fmt.Sprintf("Media of type %s cannot be sent as %s.", up.MimeType, p.kind))
	}
	if up.Size > lim.max {
		return withDetails(graph.ErrMediaUpload, "", fmt.Sprintf("The %s is %d bytes; the limit is %d.", p.kind, up.Size, lim.max))
	}
	return nil
}

// newMediaID looks like Meta's: 15 to 16 digits.
func newMediaID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(9e15))
	return fmt.Sprint(1e15 + n.Int64())
}
