package freshdesktest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Attachments, as Freshdesk takes and gives them (developers.freshdesk.com
// API v2, "Create a Ticket" / "Create a Note" with attachments):
//
//   - A ticket, note or reply with files is sent as multipart/form-data:
//     each field a part (arrays as "tags[]" repeated), each file an
//     "attachments[]" part with its file name and Content-Type. Fields are
//     strings on the wire; Freshdesk casts numbers and booleans.
//   - All the files of one ticket, note or reply together may be 20 MB
//     (MaxAttachmentBytes); more is a 400 validation error on the field
//     "attachments".
//   - Each conversation lists its files as {id, name, content_type, size,
//     attachment_url, created_at, updated_at}; attachment_url is a
//     pre-signed link on the file store (Amazon S3 on Freshdesk) that works
//     without the API key for a few minutes (AttachmentURLTTL), then
//     answers 403. Every read of the conversations signs a fresh one.

// MaxAttachmentBytes is the most the files of one ticket, note or reply may
// be together.
const MaxAttachmentBytes = 20 << 20

// AttachmentURLTTL is how long an attachment_url works.
const AttachmentURLTTL = 5 * time.Minute

// Attachment is a file on a ticket or conversation, in the API's shape.
type Attachment struct {
	ID            int64     `json:"id"`
	Name          string    `json:"name"`
	ContentType   string    `json:"content_type"`
	Size          int64     `json:"size"`
	AttachmentURL string    `json:"attachment_url"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// File is an agent's attachment for AgentReplyFiles.
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// upFile is a file part of a multipart request, before it is stored.
type upFile struct {
	name, contentType string
	data              []byte
}

// stored is a file the fake holds.
type storedFile struct {
	Attachment
	data []byte
}

// fileStore is the fake's files; guarded by Server.mu.
type fileStore struct {
	byID  map[int64]*storedFile
	key   []byte
	base  string // the fake's address, as the last request reached it
	host  string // where attachment_urls point; "" = base
	limit int64
	hold  *Hold
}

func (s *Server) fs() *fileStore {
	if s.files == nil {
		key := make([]byte, 16)
		_, _ = rand.Read(key)
		s.files = &fileStore{byID: map[int64]*storedFile{}, key: key, limit: MaxAttachmentBytes}
	}
	return s.files
}

// WithAttachmentLimit lowers the 20 MB limit, so that tests meet it
// without sending 20 MB.
func WithAttachmentLimit(n int64) Option { return func(s *Server) { s.fs().limit = n } }

// SetFileHost makes attachment_urls point at base: a second listener of
// the same Server, standing for Freshdesk's file store on another domain
// (Amazon S3), so that tests can check the API key stays on the account's
// host.
func (s *Server) SetFileHost(base string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fs().host = strings.TrimSuffix(base, "/")
}

func isMultipart(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt == "multipart/form-data"
}

// maxMultipart bounds what the fake reads of one multipart request.
const maxMultipart = 64 << 20

// decodeMultipart reads a multipart/form-data body into the same shape
// decodeBody gives a JSON one: numbers as json.Number, "true"/"false" as
// booleans (formString, cast by the field's type), "name[]" parts as an
// array, files under "attachments".
func decodeMultipart(w http.ResponseWriter, r *http.Request, allowed ...string) (map[string]any, bool) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid multipart format"})
		return nil, false
	}
	ok := map[string]bool{}
	for _, f := range allowed {
		ok[f] = true
	}
	body := map[string]any{}
	var errs []fieldError
	var total int64
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid multipart format"})
			return nil, false
		}
		name := p.FormName()
		data, err := io.ReadAll(io.LimitReader(p, maxMultipart-total+1))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid multipart format"})
			return nil, false
		}
		total += int64(len(data))
		if total > maxMultipart {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"code": "request_too_large", "message": "The request is too large"})
			return nil, false
		}
		key, isArray := strings.CutSuffix(name, "[]")
		if !ok[key] {
			errs = append(errs, fieldError{Field: key, Message: "Unexpected/invalid field in request", Code: "invalid_field"})
			continue
		}
		if key == "attachments" {
			if p.FileName() == "" {
				errs = append(errs, fieldError{Field: "attachments", Message: "It should be a/an valid file format", Code: "invalid_value"})
				continue
			}
			files, _ := body[key].([]upFile)
			ct := p.Header.Get("Content-Type")
			if ct == "" {
				ct = "application/octet-stream"
			}
			body[key] = append(files, upFile{name: p.FileName(), contentType: ct, data: data})
			continue
		}
		v := formString(data)
		if isArray {
			list, _ := body[key].([]any)
			body[key] = append(list, string(data))
			continue
		}
		body[key] = v
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
		validation(w, http.StatusBadRequest, errs...)
		return nil, false
	}
	return body, true
}

// formString is a multipart field's value: a string on the wire that
// Freshdesk casts to the type the field has (str, integer, boolean).
type formString string

// attachFiles stores the files of a request body; over the limit is the
// validation error Freshdesk answers. Called with s.mu held.
func (s *Server) attachFiles(body map[string]any, now time.Time) ([]any, *fieldError) {
	out := []any{}
	files, _ := body["attachments"].([]upFile)
	if v, ok := body["attachments"]; ok && files == nil && v != nil {
		return nil, &fieldError{Field: "attachments", Message: "It should be in the 'multipart/form-data' format", Code: "invalid_value"}
	}
	fs := s.fs()
	var total int64
	for _, f := range files {
		total += int64(len(f.data))
	}
	if total > fs.limit {
		return nil, &fieldError{Field: "attachments", Message: fmt.Sprintf("The cumulative size of all attachments must not exceed %d MB", fs.limit>>20), Code: "invalid_size"}
	}
	for _, f := range files {
		out = append(out, s.storeFile(f.name, f.contentType, f.data, now))
	}
	return out, nil
}

// storeFile keeps a file and returns its Attachment. Called with s.mu held.
func (s *Server) storeFile(name, contentType string, data []byte, now time.Time) Attachment {
	fs := s.fs()
	a := &storedFile{Attachment: Attachment{ID: s.id("attachment"), Name: name, ContentType: contentType, Size: int64(len(data)), CreatedAt: now, UpdatedAt: now},
		data: append([]byte(nil), data...)}
	fs.byID[a.ID] = a
	a.AttachmentURL = s.signedURL(a.ID, now)
	return a.Attachment
}

// signedURL is a fresh pre-signed link to a file. Called with s.mu held.
func (s *Server) signedURL(id int64, now time.Time) string {
	fs := s.fs()
	exp := strconv.FormatInt(now.Add(AttachmentURLTTL).Unix(), 10)
	host := fs.host
	if host == "" {
		host = fs.base
	}
	return host + "/_files/" + strconv.FormatInt(id, 10) + "?" + url.Values{"X-Amz-Expires": {exp}, "X-Amz-Signature": {fs.sign(id, exp)}}.Encode()
}

func (fs *fileStore) sign(id int64, exp string) string {
	mac := hmac.New(sha256.New, fs.key)
	fmt.Fprintf(mac, "%d\n%s", id, exp)
	return hex.EncodeToString(mac.Sum(nil))
}

// freshURLs re-signs the attachment_urls of conversations being listed.
// Called with s.mu held.
func (s *Server) freshURLs(convs []Conversation, now time.Time) {
	for i := range convs {
		atts := make([]any, len(convs[i].Attachments))
		for j, v := range convs[i].Attachments {
			if a, ok := v.(Attachment); ok {
				a.AttachmentURL = s.signedURL(a.ID, now)
				v = a
			}
			atts[j] = v
		}
		convs[i].Attachments = atts
	}
}

// requestBase is the fake's address as r reached it, with the prefix it
// is mounted under (http.StripPrefix keeps RequestURI).
func requestBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && strings.HasSuffix(u.Path, r.URL.Path) {
		prefix = strings.TrimSuffix(u.Path, r.URL.Path)
	}
	return scheme + "://" + r.Host + prefix
}

// Download is one request for a file's bytes.
type Download struct {
	ID         int64 `json:"id"`
	Authorized bool  `json:"authorized"`
	Status     int   `json:"status"`
}

// serveFile answers GET /_files/{id}: a pre-signed link, no API key (one
// is not refused, but recorded, so tests can see it was not sent).
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/_files/")
	if !ok || r.Method != http.MethodGet {
		return false
	}
	id, _ := strconv.ParseInt(rest, 10, 64)
	q := r.URL.Query()
	s.mu.Lock()
	fs := s.fs()
	f := fs.byID[id]
	exp, _ := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	d := Download{ID: id, Authorized: r.Header.Get("Authorization") != "", Status: http.StatusOK}
	switch {
	case f == nil || !hmac.Equal([]byte(q.Get("X-Amz-Signature")), []byte(fs.sign(id, q.Get("X-Amz-Expires")))):
		d.Status = http.StatusForbidden
	case s.clock.Now().Unix() > exp:
		d.Status = http.StatusForbidden
	}
	s.downloads = append(s.downloads, d)
	s.mu.Unlock()
	if d.Status != http.StatusOK {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(d.Status)
		_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>`)
		return true
	}
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
	_, _ = w.Write(f.data)
	return true
}

// Downloads returns the requests for files' bytes, in order.
func (s *Server) Downloads() []Download {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Download(nil), s.downloads...)
}

// FileBytes returns the bytes of an attachment.
func (s *Server) FileBytes(id int64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fs().byID[id]
	if f == nil {
		return nil, false
	}
	return append([]byte(nil), f.data...), true
}

// AgentReplyFiles is AgentReply with attachments, as an agent's reply
// with files from Freshdesk's editor.
func (s *Server) AgentReplyFiles(ticketID int64, text string, files ...File) (Conversation, error) {
	c, err := s.AgentReply(ticketID, text)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(ticketID)
	last := &t.conversations[len(t.conversations)-1]
	now := s.clock.Now().UTC()
	for _, f := range files {
		last.Attachments = append(last.Attachments, s.storeFile(f.Name, f.ContentType, f.Data, now))
	}
	return *last, nil
}

// Hold stalls multipart requests (tickets and notes with files) part-way,
// for crash tests: each reads its first After bytes, then waits for
// Release.
type Hold struct {
	after    int64
	started  chan struct{}
	once     sync.Once
	released chan struct{}
	rel      sync.Once
}

// Started is closed when a request reached the hold.
func (h *Hold) Started() <-chan struct{} { return h.started }

// Release lets held and later requests go on.
func (h *Hold) Release() { h.rel.Do(func() { close(h.released) }) }

// HoldMultipart stalls every multipart request after its first after
// bytes until the hold is released.
func (s *Server) HoldMultipart(after int64) *Hold {
	h := &Hold{after: after, started: make(chan struct{}), released: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fs().hold = h
	return h
}

// heldBody reads a request's body through its hold.
type heldBody struct {
	io.ReadCloser
	h *Hold
	n int64
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.n >= b.h.after {
		b.h.once.Do(func() { close(b.h.started) })
		<-b.h.released
	} else if rest := b.h.after - b.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
