package graphtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MediaURLLifetime is how long a download URL from GET /{media-id} works,
// as on the real API.
const MediaURLLifetime = 5 * time.Minute

// mediaDownloadPath is where the fake serves files: the real API hands
// out lookaside.fbsbx.com URLs; the fake's are on itself.
const mediaDownloadPath = "/whatsapp_business/attachments/"

// MediaFile is a file the fake holds for a media id.
type MediaFile struct {
	ID       string `json:"id"`
	MimeType string `json:"mime_type"`
	// SHA256 is hex, as GET /{media-id} answers; SHA256Base64 is what a
	// webhook carries.
	SHA256       string `json:"sha256"`
	SHA256Base64 string `json:"sha256_base64"`
	Size         int    `json:"file_size"`
	Filename     string `json:"filename,omitempty"`
	// Gone: the id no longer resolves (deleted, or older than 30 days).
	Gone      bool `json:"gone,omitempty"`
	Downloads int  `json:"downloads"`
	data      []byte
}

// mediaState is the fake's media side.
type mediaState struct {
	mu    sync.Mutex
	files map[string]*MediaFile
	next  uint64
	// epoch grows with ExpireMediaURLs: URLs of an older epoch are
	// expired, as if five minutes had passed.
	epoch    int
	key      []byte
	hold     *MediaHold
	failures int
	resolves int
	// expireNext URLs handed out are expired already.
	expireNext int
}

func (s *Server) mediaSide() *mediaState {
	s.mediaOnce.Do(func() {
		s.media = &mediaState{files: map[string]*MediaFile{}, next: 1003383421380000, key: []byte(s.prefix)}
	})
	return s.media
}

// AddMedia makes data available under a media id ("" picks a new one, in
// Meta's numeric style) and returns the file as a webhook would describe
// it.
func (s *Server) AddMedia(id, mimeType, filename string, data []byte) MediaFile {
	m := s.mediaSide()
	m.mu.Lock()
	defer m.mu.Unlock()
	if id == "" {
		m.next++
		id = strconv.FormatUint(m.next, 10)
	}
	sum := sha256.Sum256(data)
	f := &MediaFile{ID: id, MimeType: mimeType, Filename: filename, SHA256: hex.EncodeToString(sum[:]),
		SHA256Base64: base64.StdEncoding.EncodeToString(sum[:]), Size: len(data), data: append([]byte(nil), data...)}
	m.files[id] = f
	return *f
}

// RemoveMedia makes a media id gone: GET /{media-id} answers Graph's
// unknown-object error, and its URLs 404.
func (s *Server) RemoveMedia(id string) {
	m := s.mediaSide()
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.files[id]; ok {
		f.Gone = true
	}
}

// ExpireMediaURLs makes every download URL handed out so far expired, as
// five minutes passing would.
func (s *Server) ExpireMediaURLs() {
	m := s.mediaSide()
	m.mu.Lock()
	m.epoch++
	m.mu.Unlock()
}

// ExpireNextMediaURLs hands out the next n download URLs already expired,
// as if the fetch had waited longer than their five minutes.
func (s *Server) ExpireNextMediaURLs(n int) {
	m := s.mediaSide()
	m.mu.Lock()
	m.expireNext += n
	m.mu.Unlock()
}

// FailMediaDownloads makes the next n downloads answer 500.
func (s *Server) FailMediaDownloads(n int) {
	m := s.mediaSide()
	m.mu.Lock()
	m.failures += n
	m.mu.Unlock()
}

// Media returns a file and how often it was downloaded.
func (s *Server) Media(id string) (MediaFile, bool) {
	m := s.mediaSide()
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[id]
	if !ok {
		return MediaFile{}, false
	}
	return *f, true
}

// MediaResolves counts GET /{media-id} requests that found a file.
func (s *Server) MediaResolves() int {
	m := s.mediaSide()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolves
}

// MediaHold stalls downloads part-way, for crash tests: each download
// sends its first After bytes and then waits until Release (or the client
// goes away).
type MediaHold struct {
	After    int
	started  chan string
	released chan struct{}
	once     sync.Once
}

// Started yields the media id of each download that reached the hold.
func (h *MediaHold) Started() <-chan string { return h.started }

// Release lets held and later downloads finish.
func (h *MediaHold) Release() { h.once.Do(func() { close(h.released) }) }

// HoldMediaDownloads stalls every download after its first after bytes
// until the hold is released.
func (s *Server) HoldMediaDownloads(after int) *MediaHold {
	h := &MediaHold{After: after, started: make(chan string, 64), released: make(chan struct{})}
	m := s.mediaSide()
	m.mu.Lock()
	m.hold = h
	m.mu.Unlock()
	return h
}

func (m *mediaState) sign(id string, epoch int, exp int64) string {
	mac := hmac.New(sha256.New, m.key)
	mac.Write([]byte(id + "\x00" + strconv.Itoa(epoch) + "\x00" + strconv.FormatInt(exp, 10)))
	return hex.EncodeToString(mac.Sum(nil))[:32]
}

// serveMedia answers GET /{version}/{media-id} and the download URLs; it
// reports false for any other request.
func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if strings.HasPrefix(r.URL.Path, mediaDownloadPath) {
		s.serveMediaDownload(w, r)
		return true
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) > 0 && isVersion(segs[0]) {
		segs = segs[1:]
	}
	if len(segs) != 1 || segs[0] == "" {
		return false
	}
	m := s.mediaSide()
	m.mu.Lock()
	f, ok := m.files[segs[0]]
	m.mu.Unlock()
	if !ok {
		return false // unknown objects are answered as for any other GET
	}
	req := &Request{Time: s.now(), Method: r.Method, Path: r.URL.Path, Token: bearer(r), Header: r.Header.Clone(), Kind: "media"}
	s.record(req)
	if s.token != "" && req.Token != s.token {
		s.refuse(w, req, badToken(req.Token == ""))
		return true
	}
	if f.Gone {
		s.refuse(w, req, unknownObject(r.Method, f.ID))
		return true
	}
	exp := s.now().Add(MediaURLLifetime).Unix()
	m.mu.Lock()
	m.resolves++
	epoch := m.epoch
	if m.expireNext > 0 {
		m.expireNext--
		exp = s.now().Add(-time.Second).Unix()
	}
	m.mu.Unlock()
	q := url.Values{"mid": {f.ID}, "ext": {strconv.FormatInt(exp, 10)}, "ep": {strconv.Itoa(epoch)}, "hash": {m.sign(f.ID, epoch, exp)}}
	req.Status = http.StatusOK
	writeJSON(w, http.StatusOK, map[string]any{
		"messaging_product": "whatsapp",
		"url":               baseURL(r) + mediaDownloadPath + "?" + q.Encode(),
		"mime_type":         f.MimeType,
		"sha256":            f.SHA256,
		"file_size":         f.Size,
		"id":                f.ID,
	})
	return true
}

// baseURL is where the fake is reachable, as the client addressed it:
// behind http.StripPrefix the stripped prefix is still in RequestURI.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	full := r.RequestURI
	if i := strings.IndexByte(full, '?'); i >= 0 {
		full = full[:i]
	}
	if u, err := url.Parse(full); err == nil && u.Path != "" {
		full = u.Path
	}
	prefix := strings.TrimSuffix(full, r.URL.Path)
	return scheme + "://" + r.Host + prefix
}

func (s *Server) serveMediaDownload(w http.ResponseWriter, r *http.Request) {
	req := &Request{Time: s.now(), Method: r.Method, Path: r.URL.Path, Token: bearer(r), Header: r.Header.Clone(), Kind: "media_download"}
	s.record(req)
	fail := func(status int, msg string) {
		req.Status = status
		http.Error(w, msg, status)
	}
	if s.token != "" && req.Token != s.token {
		// Meta's media URLs need the same bearer token as the API.
		fail(http.StatusUnauthorized, "the media URL needs the access token (Authorization: Bearer)")
		return
	}
	q := r.URL.Query()
	id := q.Get("mid")
	exp, _ := strconv.ParseInt(q.Get("ext"), 10, 64)
	epoch, _ := strconv.Atoi(q.Get("ep"))
	m := s.mediaSide()
	m.mu.Lock()
	f, ok := m.files[id]
	valid := ok && hmac.Equal([]byte(q.Get("hash")), []byte(m.sign(id, epoch, exp)))
	expired := epoch != m.epoch || s.now().Unix() > exp
	failing := m.failures > 0
	if failing {
		m.failures--
	}
	hold := m.hold
	var data []byte
	if ok && valid && !expired && !f.Gone && !failing {
		f.Downloads++
		data = f.data
	}
	var mime string
	if ok {
		mime = f.MimeType
	}
	m.mu.Unlock()
	switch {
	case !valid:
		fail(http.StatusForbidden, "URL signature mismatch")
		return
	case f.Gone:
		fail(http.StatusNotFound, "not found")
		return
	case expired:
		fail(http.StatusNotFound, "URL signature expired")
		return
	case failing:
		fail(http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", mime)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	req.Status = http.StatusOK
	w.WriteHeader(http.StatusOK)
	if hold != nil && hold.After < len(data) {
		w.Write(data[:hold.After])
		http.NewResponseController(w).Flush()
		select {
		case hold.started <- id:
		default:
		}
		select {
		case <-hold.released:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
		w.Write(data[hold.After:])
		return
	}
	w.Write(data)
}

func (s *Server) record(req *Request) {
	s.mu.Lock()
	s.seq++
	req.Seq = int(s.seq)
	s.requests = append(s.requests, req)
	s.mu.Unlock()
}

// MediaFiles lists the files the fake holds, by id.
func (s *Server) MediaFiles() []MediaFile {
	m := s.mediaSide()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MediaFile, 0, len(m.files))
	for _, f := range m.files {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
