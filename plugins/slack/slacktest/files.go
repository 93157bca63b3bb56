package slacktest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Files, as Slack's current API moves them (see shared/reference/apis.md
// §4 and Slack's method pages):
//
//   - files.getUploadURLExternal (filename, length) answers an upload_url
//     and a file_id; length 0 is missing_argument, no filename
//     invalid_arguments;
//   - the upload_url takes the bytes in a POST, raw or multipart, and
//     answers 200 "OK - <bytes>"; an unknown or used ticket is 404;
//   - files.completeUploadExternal (files=[{"id","title"}], channel_id,
//     thread_ts, initial_comment) shares the files as one message in the
//     channel (a reply when thread_ts is set); a file never uploaded is
//     file_not_found. Completing a file that is already shared shares it
//     once more — the fake assumes the worst, so that a connector must
//     not complete twice;
//   - files.info (file) answers the file object with url_private_download,
//     channels and shares; file_not_found, file_deleted;
//   - url_private_download serves the bytes to "Authorization: Bearer
//     <bot token>" only; without it (or with another token) the request
//     is redirected to the workspace's sign-in page, which answers HTML
//     with 200, as files.slack.com does.
//
// The fake keeps every file's sha256 and size, and its bytes up to
// MaxKeptBytes, so that tests compare what arrived with what was sent.

// MaxKeptBytes is how much of an uploaded file the fake keeps in memory;
// beyond it only the digest and size are kept (a 100 MB upload must not
// fill the sandbox's memory).
const MaxKeptBytes = 32 << 20

// File is a file the fake holds: uploaded by the bot, or added by a test
// as an agent's attachment (AddFile).
type File struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Title    string `json:"title,omitempty"`
	Mimetype string `json:"mimetype"`
	User     string `json:"user"`
	// Length is the size files.getUploadURLExternal was told; Size and
	// SHA256 (hex) are of the bytes that arrived.
	Length int64  `json:"length,omitempty"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
	// Uploaded: the bytes arrived at the upload URL. Shares are the
	// messages that show the file: channel → ts, one per completion.
	Uploaded bool                `json:"uploaded"`
	Shares   map[string][]string `json:"shares,omitempty"`
	// Comment is the initial_comment of the last completion.
	Comment  string `json:"initial_comment,omitempty"`
	ThreadTS string `json:"thread_ts,omitempty"`
	Deleted  bool   `json:"deleted,omitempty"`
	// Downloads counts the authorised downloads of url_private_download.
	Downloads int `json:"downloads,omitempty"`

	data []byte
}

// fileState is the fake's files; it lives in Server, guarded by s.mu.
type fileState struct {
	files    map[string]*File
	fileList []string          // ids in the order created
	tickets  map[string]string // upload ticket → file id
	fileSeq  int
	// reqBase is the root of the request being answered (baseURL), for
	// the URLs the answer holds.
	reqBase string
	// uploadFail are scripted answers of the upload URL (SetUploadFailures).
	uploadFail []int
	// holds stall the next request of a kind ("upload", or a method's
	// answer) until released: for crash tests.
	holds map[string]*Hold
}

// Hold stalls one request until Release (or until its client goes away).
type Hold struct {
	reached  chan struct{}
	released chan struct{}
	once     sync.Once
}

// Reached is closed once the held request arrived.
func (h *Hold) Reached() <-chan struct{} { return h.reached }

// Release lets the held request go on.
func (h *Hold) Release() { h.once.Do(func() { close(h.released) }) }

func (h *Hold) wait(ctx context.Context) {
	if h == nil {
		return
	}
	close(h.reached)
	select {
	case <-h.released:
	case <-ctx.Done():
	}
}

// HoldUpload stalls the next POST to an upload URL before it reads any
// byte: a client that dies meanwhile has uploaded nothing.
func (s *Server) HoldUpload() *Hold { return s.hold("upload") }

// HoldDownload stalls the next authorised download before it sends any
// byte.
func (s *Server) HoldDownload() *Hold { return s.hold("download") }

// HoldAnswer lets the next call of method take effect (a file shared, a
// message posted) and stalls its answer: to the caller, what dying just
// after Slack acted looks like.
func (s *Server) HoldAnswer(method string) *Hold { return s.hold(method) }

func (s *Server) hold(kind string) *Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds == nil {
		s.holds = map[string]*Hold{}
	}
	h := &Hold{reached: make(chan struct{}), released: make(chan struct{})}
	s.holds[kind] = h
	return h
}

// takeHold returns (and forgets) the hold of kind; s.mu is held.
func (s *Server) takeHold(kind string) *Hold {
	h := s.holds[kind]
	delete(s.holds, kind)
	return h
}

// SetUploadFailures makes the next n POSTs to an upload URL answer HTTP
// status without taking the bytes, as Slack's file service does when it
// is down.
func (s *Server) SetUploadFailures(n, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.uploadFail = append(s.uploadFail, status)
	}
}

func init() {
	methods["files.getUploadURLExternal"] = (*Server).getUploadURL
	methods["files.completeUploadExternal"] = (*Server).completeUpload
	methods["files.info"] = (*Server).fileInfo
	scopes["files.getUploadURLExternal"] = "files:write"
	scopes["files.completeUploadExternal"] = "files:write"
	scopes["files.info"] = "files:read"
}

func (s *Server) nextFileID() string {
	s.fileSeq++
	if s.files == nil {
		s.files, s.tickets = map[string]*File{}, map[string]string{}
	}
	return fmt.Sprintf("F0WAHUB%05d", s.fileSeq)
}

// AddFile adds a file an agent uploaded in Slack, with its bytes, and
// returns it; FileObject gives the object a message event's files[]
// carries.
func (s *Server) AddFile(name, mimetype, user string, data []byte) File {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &File{ID: s.nextFileID(), Name: name, Title: name, Mimetype: mimetype, User: user, Uploaded: true}
	f.Size, f.SHA256 = int64(len(data)), digest(data)
	f.data = append([]byte(nil), data...)
	s.files[f.ID] = f
	s.fileList = append(s.fileList, f.ID)
	return f.copy()
}

// DeleteFile marks a file deleted: files.info answers file_deleted and
// the download URL 404.
func (s *Server) DeleteFile(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.files[id]; ok {
		f.Deleted = true
	}
}

// Files returns every file the fake holds, in the order created.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.fileList))
	for _, id := range s.fileList {
		out = append(out, s.files[id].copy())
	}
	return out
}

// FileBytes returns the bytes of file id (nil beyond MaxKeptBytes).
func (s *Server) FileBytes(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	if !ok {
		return nil, false
	}
	return append([]byte(nil), f.data...), true
}

// FileObject is file id as a message event's files[] carries it, with
// the URLs of the fake at base (the api_url the connector uses, with its
// trailing slash). checkFileInfo gives the stub Slack sends while a file
// is not ready (or in Slack Connect): {"id", "mode": "file_access",
// "file_access": "check_file_info"}, which only files.info resolves.
func (s *Server) FileObject(base, id string, checkFileInfo bool) json.RawMessage {
	if checkFileInfo {
		raw, _ := json.Marshal(map[string]any{"id": id, "mode": "file_access", "file_access": "check_file_info", "created": 0, "timestamp": 0, "user": ""})
		return raw
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	if !ok {
		return json.RawMessage(`{"id":` + strconv.Quote(id) + `}`)
	}
	raw, _ := json.Marshal(s.fileJSON(f, base))
	return raw
}

// fileJSON is Slack's file object; s.mu is held.
func (s *Server) fileJSON(f *File, base string) map[string]any {
	created := s.now().Unix()
	ft := strings.TrimPrefix(path.Ext(f.Name), ".")
	o := map[string]any{
		"id": f.ID, "created": created, "timestamp": created, "name": f.Name, "title": f.Title,
		"mimetype": f.Mimetype, "filetype": ft, "pretty_type": strings.ToUpper(ft), "user": f.User, "user_team": TeamID,
		"editable": false, "size": f.Size, "mode": "hosted", "is_external": false, "external_type": "",
		"is_public": false, "public_url_shared": false, "display_as_bot": false, "username": "",
		"url_private":          base + "files-pri/" + TeamID + "-" + f.ID + "/" + url.PathEscape(f.Name),
		"url_private_download": base + "files-pri/" + TeamID + "-" + f.ID + "/download/" + url.PathEscape(f.Name),
		"permalink":            "https://wahub-sandbox.slack.com/files/" + f.User + "/" + f.ID + "/" + url.PathEscape(f.Name),
		"has_rich_preview":     false, "file_access": "visible",
	}
	channels, groups := []string{}, []string{}
	public, private := map[string]any{}, map[string]any{}
	names := make([]string, 0, len(f.Shares))
	for ch := range f.Shares {
		names = append(names, ch)
	}
	sort.Strings(names)
	for _, ch := range names {
		var list []map[string]any
		for _, ts := range f.Shares[ch] {
			share := map[string]any{"ts": ts, "channel_name": strings.ToLower(ch), "team_id": TeamID, "share_user_id": BotUserID, "source": "UNKNOWN", "reply_users": []string{}, "reply_users_count": 0, "reply_count": 0}
			if m, ok := s.byTS[ch+"/"+ts]; ok && m.ThreadTS != "" {
				share["thread_ts"] = m.ThreadTS
			}
			list = append(list, share)
		}
		if strings.HasPrefix(ch, "C") {
			channels = append(channels, ch)
			public[ch] = list
		} else {
			groups = append(groups, ch)
			private[ch] = list
		}
	}
	o["channels"], o["groups"], o["ims"] = channels, groups, []string{}
	shares := map[string]any{}
	if len(public) > 0 {
		shares["public"] = public
	}
	if len(private) > 0 {
		shares["private"] = private
	}
	if len(shares) > 0 {
		o["shares"] = shares
	}
	return o
}

// baseURL is the fake's root as the client called it (before any
// http.StripPrefix), with a trailing slash, e.g. http://127.0.0.1:5/api/.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	p := r.URL.Path
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		p = u.Path
	}
	for _, marker := range []string{"/upload/v1/", "/files-pri/", "/signin"} {
		if i := strings.Index(p, marker); i >= 0 {
			return scheme + "://" + r.Host + p[:i+1]
		}
	}
	if i := strings.LastIndex(p, "/"); i >= 0 {
		p = p[:i+1]
	}
	return scheme + "://" + r.Host + p
}

// serveFiles answers the upload URL, the download URL and the sign-in
// page they redirect to; it reports false for any other path.
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	switch {
	case strings.Contains(p, "/upload/v1/") || strings.HasPrefix(p, "upload/v1/"):
		s.serveUpload(w, r, p[strings.LastIndex(p, "/")+1:])
	case strings.Contains(p, "/files-pri/") || strings.HasPrefix(p, "files-pri/"):
		s.serveDownload(w, r)
	case strings.HasSuffix(p, "/signin"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in to wahub sandbox</body></html>")
	default:
		return false
	}
	return true
}

func (s *Server) recordCall(method string, status int, code string) {
	s.calls.Add(Call{Method: method, Status: status, Error: code, At: s.now()})
}

// serveUpload takes the bytes of an upload ticket, streamed: the digest
// is computed as they arrive, and at most MaxKeptBytes kept.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request, ticket string) {
	s.mu.Lock()
	id, ok := s.tickets[ticket]
	var f *File
	if ok {
		f = s.files[id]
	}
	if !ok || f == nil || len(f.Shares) > 0 {
		s.recordCall("upload", http.StatusNotFound, "")
		s.mu.Unlock()
		http.Error(w, "upload ticket not found", http.StatusNotFound)
		return
	}
	if len(s.uploadFail) > 0 {
		status := s.uploadFail[0]
		s.uploadFail = s.uploadFail[1:]
		s.recordCall("upload", status, "")
		s.mu.Unlock()
		http.Error(w, http.StatusText(status), status)
		return
	}
	hold := s.takeHold("upload")
	s.mu.Unlock()
	hold.wait(r.Context())
	if r.Context().Err() != nil {
		return // the client went away while held
	}

	var src io.Reader = r.Body
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r.Body, params["boundary"])
		src = nil
		for {
			part, err := mr.NextPart()
			if err != nil {
				break
			}
			if part.FileName() != "" || part.FormName() == "file" {
				src = part
				break
			}
		}
		if src == nil {
			s.mu.Lock()
			s.recordCall("upload", http.StatusBadRequest, "")
			s.mu.Unlock()
			http.Error(w, "no file part in the multipart body", http.StatusBadRequest)
			return
		}
	}
	h := sha256.New()
	// A file announced as larger than is kept is not buffered at all.
	kept := &capped{max: MaxKeptBytes, over: f.Length > MaxKeptBytes}
	n, err := io.Copy(io.MultiWriter(h, kept), src)
	if err != nil {
		s.mu.Lock()
		s.recordCall("upload", http.StatusBadRequest, "")
		s.mu.Unlock()
		http.Error(w, "upload broke off: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	f.Uploaded, f.Size, f.SHA256 = true, n, hex.EncodeToString(h.Sum(nil))
	f.data = kept.buf
	if kept.over {
		f.data = nil
	}
	s.recordCall("upload", http.StatusOK, "")
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "OK - %d", n)
}

// serveDownload serves url_private(_download) to the bot token only.
func (s *Server) serveDownload(w http.ResponseWriter, r *http.Request) {
	// files-pri/<team>-<file id>/[download/]<name>
	p := r.URL.Path[strings.Index(r.URL.Path, "files-pri/")+len("files-pri/"):]
	seg, _, _ := strings.Cut(p, "/")
	_, id, _ := strings.Cut(seg, "-")
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	if status, ok := s.failNext.Next(nil); ok {
		s.recordCall("download", status, "")
		s.mu.Unlock()
		http.Error(w, http.StatusText(status), status)
		return
	}
	f, ok := s.files[id]
	authorised := token != "" && token == s.token
	switch {
	case !authorised:
		s.recordCall("download", http.StatusFound, "")
	case !ok || f.Deleted || !f.Uploaded:
		s.recordCall("download", http.StatusNotFound, "")
	default:
		f.Downloads++
		s.recordCall("download", http.StatusOK, "")
	}
	var data []byte
	var mimetype string
	var size int64
	if ok {
		data, mimetype, size = f.data, f.Mimetype, f.Size
	}
	var hold *Hold
	if authorised {
		hold = s.takeHold("download")
	}
	s.mu.Unlock()
	hold.wait(r.Context())
	if r.Context().Err() != nil {
		return // the client went away while held
	}
	switch {
	case !authorised:
		// files.slack.com sends whoever lacks access to sign in.
		full := r.URL.Path
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			full = u.Path
		}
		http.Redirect(w, r, baseURL(r)+"signin?redir="+url.QueryEscape(full), http.StatusFound)
		return
	case !ok || f.Deleted || !f.Uploaded || (data == nil && size > 0):
		http.Error(w, "file not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", mimetype)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	_, _ = w.Write(data)
}

func (s *Server) getUploadURL(form url.Values) (map[string]any, string) {
	name := form.Get("filename")
	length, err := strconv.ParseInt(form.Get("length"), 10, 64)
	switch {
	case name == "":
		return nil, "invalid_arguments"
	case err != nil || length <= 0:
		return nil, "missing_argument"
	}
	id := s.nextFileID()
	f := &File{ID: id, Name: name, Title: name, Length: length, User: BotUserID, Mimetype: mimeOf(name)}
	s.files[id] = f
	s.fileList = append(s.fileList, id)
	ticket := "CwABAAAA" + strings.ToLower(id) + strconv.Itoa(s.fileSeq)
	s.tickets[ticket] = id
	return map[string]any{"upload_url": s.reqBase + "upload/v1/" + ticket, "file_id": id}, ""
}

func (s *Server) completeUpload(form url.Values) (map[string]any, string) {
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(form.Get("files")), &list); err != nil || len(list) == 0 {
		return nil, "invalid_arguments"
	}
	channel := form.Get("channel_id")
	if channel == "" && form.Get("channels") != "" {
		channel, _, _ = strings.Cut(form.Get("channels"), ",")
	}
	if channel != "" {
		if code := s.channelError(channel); code != "" {
			return nil, code
		}
	}
	var done []map[string]any
	for _, x := range list {
		f, ok := s.files[x.ID]
		if !ok || !f.Uploaded || f.Deleted {
			return nil, "file_not_found"
		}
		if x.Title != "" {
			f.Title = x.Title
		}
		done = append(done, map[string]any{"id": f.ID, "title": f.Title})
	}
	if channel == "" {
		return map[string]any{"files": done}, "" // private: uploaded, shared nowhere
	}
	m := &Message{
		Channel: channel, TS: s.nextTS(), ThreadTS: form.Get("thread_ts"), Text: form.Get("initial_comment"),
		User: BotUserID, BotID: BotID,
	}
	for _, x := range list {
		f := s.files[x.ID]
		if f.Shares == nil {
			f.Shares = map[string][]string{}
		}
		f.Shares[channel] = append(f.Shares[channel], m.TS)
		f.Comment, f.ThreadTS = m.Text, m.ThreadTS
		m.Files = append(m.Files, f.ID)
	}
	s.store(m)
	return map[string]any{"files": done}, ""
}

func (s *Server) fileInfo(form url.Values) (map[string]any, string) {
	f, ok := s.files[form.Get("file")]
	switch {
	case !ok:
		return nil, "file_not_found"
	case f.Deleted:
		return nil, "file_deleted"
	}
	return map[string]any{"file": s.fileJSON(f, s.reqBase), "comments": []any{}, "response_metadata": map[string]string{"next_cursor": ""}}, ""
}

// filesSnapshot is the files part of Snapshot.
func (s *Server) filesSnapshot() []File { return s.Files() }

func (f *File) copy() File {
	c := *f
	c.data = nil
	if f.Shares != nil {
		c.Shares = map[string][]string{}
		for k, v := range f.Shares {
			c.Shares[k] = append([]string(nil), v...)
		}
	}
	return c
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// mimeOf guesses a MIME type from a file name, as Slack does.
func mimeOf(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf  []byte
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if !c.over {
		if len(c.buf)+len(p) > c.max {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, p...)
		}
	}
	return len(p), nil
}
