package zendesktest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Files, as Zendesk keeps them (developer.zendesk.com, "Ticket
// Attachments" and "Adding ticket attachments with the API"):
//
//   - POST /api/v2/uploads?filename=<name> takes the file as the raw
//     body, its type in Content-Type, and answers 201
//     {"upload": {"token", "expires_at", "attachment", "attachments"}};
//     a file over MaxUploadBytes is a 413. The token is good for 60
//     minutes; a comment names it in "uploads": [token] and the file
//     becomes that comment's attachment (once: the token is spent).
//   - An attachment's content_url is on the account's host,
//     /attachments/token/<token>/?name=<file>. With private attachments
//     (Zendesk's setting "Require authentication to download", on here)
//     it answers 401 without the API credentials and, with them, 302 to a
//     signed, expiring URL on the file host (WithFileHost; the account's
//     own host by default) that needs no credentials, and must not get
//     them: Zendesk documents that content_url "may be hosted externally
//     so take care not to inadvertently send Zendesk authentication
//     credentials".

// MaxUploadBytes is the largest file Zendesk takes: 50 MB.
const MaxUploadBytes = 50 << 20

// UploadTTL is how long an upload token can be attached to a comment.
const UploadTTL = 60 * time.Minute

// SignedURLTTL is how long the signed download URL of a content_url
// redirect works.
const SignedURLTTL = 5 * time.Minute

// Attachment is a file on a comment, as tests and the sandbox see it.
type Attachment struct {
	ID          int64  `json:"id"`
	FileName    string `json:"file_name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	// SHA256 is the hex digest of the bytes the fake received.
	SHA256 string `json:"sha256"`
}

// File is an agent's attachment for AgentCommentFiles.
type File struct {
	Name        string
	ContentType string
	Data        []byte
}

// Download is one request for a file's bytes: the content_url or the
// signed URL it redirects to.
type Download struct {
	Path string `json:"path"`
	// Authorized says whether the request carried an Authorization
	// header.
	Authorized bool `json:"authorized"`
	Status     int  `json:"status"`
}

type attachment struct {
	Attachment
	token string // of the content_url
	data  []byte
}

type upload struct {
	token     string
	att       *attachment
	expiresAt time.Time
	used      bool
}

// files is what the Server keeps of uploads and attachments; guarded by
// Server.mu.
type files struct {
	uploads   map[string]*upload
	byToken   map[string]*attachment
	byComment map[int64][]*attachment
	nextID    int64
	base      string // the account's address, as the last API call reached it
	fileHost  string // where content_url redirects; "" = base
	signKey   []byte
	downloads []Download
	limit     int64 // the largest upload; MaxUploadBytes unless WithUploadLimit
	hold      *Hold
}

func (s *Server) fs() *files {
	if s.files == nil {
		key := make([]byte, 16)
		_, _ = rand.Read(key)
		s.files = &files{uploads: map[string]*upload{}, byToken: map[string]*attachment{}, byComment: map[int64][]*attachment{}, nextID: 36000, signKey: key, limit: MaxUploadBytes}
	}
	return s.files
}

// WithFileHost makes content_url redirect to signed URLs under base (a
// second listener of the same Server, standing for Zendesk's file host
// on another domain), so that tests can check that credentials stay on
// the account's host.
func WithFileHost(base string) Option {
	return func(s *Server) { s.fs().fileHost = strings.TrimSuffix(base, "/") }
}

// WithUploadLimit lowers the largest upload the fake takes, so that tests
// meet the 413 without sending 50 MB.
func WithUploadLimit(n int64) Option { return func(s *Server) { s.fs().limit = n } }

func (s *Server) uploadLimit() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fs().limit
}

// SetFileHost is WithFileHost after NewServer.
func (s *Server) SetFileHost(base string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fs().fileHost = strings.TrimSuffix(base, "/")
}

// requestBase is the account's address as r reached it, prefix included
// when the fake is mounted under one (http.StripPrefix keeps RequestURI).
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

func randomToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (a *attachment) json(base string) map[string]any {
	content := base + "/attachments/token/" + a.token + "/?name=" + url.QueryEscape(a.FileName)
	return map[string]any{
		"id": a.ID, "url": base + "/api/v2/attachments/" + itoa(a.ID) + ".json",
		"file_name": a.FileName, "content_url": content, "mapped_content_url": content,
		"content_type": a.ContentType, "size": a.Size, "width": nil, "height": nil,
		"inline": false, "deleted": false, "malware_access_override": false, "malware_scan_result": "malware_not_found",
		"thumbnails": []any{},
	}
}

// createUpload is POST /api/v2/uploads. Called with s.mu held.
func (s *Server) createUpload(w http.ResponseWriter, r *http.Request, body []byte, now time.Time) {
	name := strings.TrimSpace(r.URL.Query().Get("filename"))
	if name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidValue", "description": "filename is required"})
		return
	}
	if len(body) == 0 {
		writeJSON(w, http.StatusUnprocessableEntity, invalid("file", "File: cannot be blank", "BlankValue"))
		return
	}
	fs := s.fs()
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/binary"
	}
	fs.nextID++
	sum := sha256.Sum256(body)
	a := &attachment{Attachment: Attachment{ID: fs.nextID, FileName: name, ContentType: ct, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])},
		token: randomToken(), data: append([]byte(nil), body...)}
	up := &upload{token: randomToken(), att: a, expiresAt: now.Add(UploadTTL)}
	fs.uploads[up.token] = up
	fs.byToken[a.token] = a
	aj := a.json(fs.base)
	writeJSON(w, http.StatusCreated, map[string]any{"upload": map[string]any{
		"token": up.token, "expires_at": up.expiresAt.Format(time.RFC3339), "attachment": aj, "attachments": []any{aj},
	}})
}

// attach makes the files of upload tokens the comment's attachments; a
// token that is unknown, spent or expired adds nothing, as on Zendesk.
// Called with s.mu held.
func (s *Server) attach(c *comment, tokens []string, now time.Time) {
	fs := s.fs()
	for _, tok := range tokens {
		up := fs.uploads[tok]
		if up == nil || up.used || now.After(up.expiresAt) {
			continue
		}
		up.used = true
		fs.byComment[c.ID] = append(fs.byComment[c.ID], up.att)
	}
}

// attachmentsJSON is a comment's "attachments". Called with s.mu held.
func (s *Server) attachmentsJSON(commentID int64) []any {
	fs := s.fs()
	out := []any{}
	for _, a := range fs.byComment[commentID] {
		out = append(out, a.json(fs.base))
	}
	return out
}

func (s *Server) commentAttachments(commentID int64) []Attachment {
	var out []Attachment
	for _, a := range s.fs().byComment[commentID] {
		out = append(out, a.Attachment)
	}
	return out
}

// AttachmentBytes returns the bytes the fake holds for an attachment.
func (s *Server) AttachmentBytes(id int64) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.fs().byToken {
		if a.ID == id {
			return append([]byte(nil), a.data...), true
		}
	}
	return nil, false
}

// Uploads counts the files uploaded, attached or not.
func (s *Server) Uploads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.fs().uploads)
}

// Downloads returns the requests for files' bytes, in order.
func (s *Server) Downloads() []Download {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Download(nil), s.fs().downloads...)
}

// AgentCommentFiles is AgentComment with attachments, as an agent's reply
// with files added in the agent workspace.
func (s *Server) AgentCommentFiles(ticketID int64, body string, public bool, files ...File) (int64, error) {
	s.mu.Lock()
	t := s.tickets[ticketID]
	if t == nil {
		s.mu.Unlock()
		return 0, ErrNoTicket
	}
	if t.Status == "closed" {
		s.mu.Unlock()
		return 0, errClosed
	}
	now := s.clock.Now().UTC()
	c := s.addComment(t, AgentID, body, public, now)
	fs := s.fs()
	for _, f := range files {
		fs.nextID++
		sum := sha256.Sum256(f.Data)
		a := &attachment{Attachment: Attachment{ID: fs.nextID, FileName: f.Name, ContentType: f.ContentType, Size: int64(len(f.Data)), SHA256: hex.EncodeToString(sum[:])},
			token: randomToken(), data: append([]byte(nil), f.Data...)}
		fs.byToken[a.token] = a
		fs.byComment[c.ID] = append(fs.byComment[c.ID], a)
	}
	target := s.hookTarget
	s.mu.Unlock()
	if public && target != "" {
		s.fireWebhook(target, ticketID, c.ID)
	}
	return c.ID, nil
}

// serveFile answers the file paths outside the API: a content_url and the
// signed URL it redirects to. It reports whether the path was one.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case strings.HasPrefix(r.URL.Path, "/attachments/token/") && r.Method == http.MethodGet:
		tok := strings.Trim(strings.TrimPrefix(r.URL.Path, "/attachments/token/"), "/")
		s.mu.Lock()
		defer s.mu.Unlock()
		fs := s.fs()
		d := Download{Path: r.URL.Path, Authorized: r.Header.Get("Authorization") != ""}
		a := fs.byToken[tok]
		switch {
		case a == nil:
			d.Status = http.StatusNotFound
			writeJSON(w, d.Status, notFound)
		case !s.authorized(r):
			d.Status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Basic realm="Web Password"`)
			writeJSON(w, d.Status, map[string]any{"error": "Couldn't authenticate you"})
		default:
			host := fs.fileHost
			if host == "" {
				host = requestBase(r)
			}
			exp := strconv.FormatInt(s.clock.Now().Add(SignedURLTTL).Unix(), 10)
			d.Status = http.StatusFound
			w.Header().Set("Location", host+"/_files/"+tok+"?expires="+exp+"&signature="+fs.sign(tok, exp))
			w.WriteHeader(d.Status)
		}
		fs.downloads = append(fs.downloads, d)
		return true
	case strings.HasPrefix(r.URL.Path, "/_files/") && r.Method == http.MethodGet:
		tok := strings.TrimPrefix(r.URL.Path, "/_files/")
		q := r.URL.Query()
		s.mu.Lock()
		fs := s.fs()
		a := fs.byToken[tok]
		exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
		d := Download{Path: r.URL.Path, Authorized: r.Header.Get("Authorization") != "", Status: http.StatusOK}
		switch {
		case a == nil || !hmac.Equal([]byte(q.Get("signature")), []byte(fs.sign(tok, q.Get("expires")))):
			d.Status = http.StatusForbidden
		case s.clock.Now().Unix() > exp:
			d.Status = http.StatusForbidden
		}
		fs.downloads = append(fs.downloads, d)
		s.mu.Unlock()
		if d.Status != http.StatusOK {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(d.Status)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired or the signature does not match</Message></Error>`))
			return true
		}
		w.Header().Set("Content-Type", a.ContentType)
		w.Header().Set("Content-Length", strconv.FormatInt(a.Size, 10))
		w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(a.FileName, `"`, "")+`"`)
		_, _ = w.Write(a.data)
		return true
	}
	return false
}

func (fs *files) sign(tok, exp string) string {
	mac := hmac.New(sha256.New, fs.signKey)
	mac.Write([]byte(tok + "\n" + exp))
	return hex.EncodeToString(mac.Sum(nil))
}

// Hold stalls uploads part-way, for crash tests: each upload reads its
// first After bytes, then waits for Release.
type Hold struct {
	after    int64
	started  chan struct{}
	once     sync.Once
	released chan struct{}
	rel      sync.Once
}

// Started is closed when an upload reached the hold.
func (h *Hold) Started() <-chan struct{} { return h.started }

// Release lets held and later uploads go on.
func (h *Hold) Release() { h.rel.Do(func() { close(h.released) }) }

// HoldUploads stalls every upload after its first after bytes until the
// hold is released.
func (s *Server) HoldUploads(after int64) *Hold {
	h := &Hold{after: after, started: make(chan struct{}), released: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fs().hold = h
	return h
}

func (s *Server) uploadHold() *Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fs().hold
}

// heldBody reads an upload's body through its hold.
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
