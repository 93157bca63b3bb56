package outbound

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// MediaSource holds the files media messages send: the hub's media store.
// Open streams a file by id (a file POST /api/v1/media or Host.PutMedia
// stored, or an inbound message's media; a missing one is an error
// wrapping sdk.ErrMediaUnavailable); Put stores a file the hub fetched
// from a media "url".
type MediaSource interface {
	Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error)
	Put(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error)
}

// Uploader is a Graph that uploads media files (*graph.Client).
type Uploader interface {
	Upload(ctx context.Context, phoneNumberID string, f graph.MediaFile) (string, error)
}

// uploadTTL is how long an uploaded file is sent by its Graph id: Meta
// keeps uploads 30 days; a message retried later uploads again.
const uploadTTL = 29 * 24 * time.Hour

// prepareMedia applies WhatsApp's rules to a media message's file before
// it is queued, fetching a "url" into the media store first, and settles
// its type and filename. msg.Media is replaced, never changed in place.
func (s *Sender) prepareMedia(ctx context.Context, msg *sdk.OutboundMessage) error {
	md := *msg.Media
	if s.opt.Media == nil {
		return refuse(RefusedMediaUnavailable, "this hub keeps no media store, so it cannot send files (configure media: in connectors.yaml)")
	}
	if md.URL != "" {
		info, err := s.fetchURL(ctx, md)
		if err != nil {
			return err
		}
		// From here on the message sends the copy the hub keeps: a retry
		// sends the same bytes, whatever the link serves by then.
		md.ID, md.URL = info.ID, ""
	}
	info, rc, err := s.opt.Media.Open(ctx, md.ID)
	if err != nil {
		if errors.Is(err, sdk.ErrMediaUnavailable) {
			return refuse(RefusedMediaUnavailable, "media %s: the hub holds no such file (%v); upload it with POST /api/v1/media first", md.ID, err)
		}
		return fmt.Errorf("media %s: %w", md.ID, err)
	}
	head, err := readHead(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("media %s: %w", md.ID, err)
	}
	typ, err := checkMedia(md.Type, info, head, md.Caption)
	if err != nil {
		return err
	}
	md.Type = typ
	if typ == sdk.MediaDocument {
		if md.Filename == "" {
			md.Filename = info.Filename
		}
	} else {
		md.Filename = "" // only a document shows one; Graph takes none for the others
	}
	msg.Media = &md
	return nil
}

// readHead reads the first MediaHead bytes of a file (fewer if it is
// shorter).
func readHead(r io.Reader) ([]byte, error) {
	head := make([]byte, MediaHead)
	n, err := io.ReadFull(r, head)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return head[:n], err
}

// upload makes sure a media message's file is at Graph, and reports whether
// the message may now be sent; when not, what became of it is recorded.
// The file is read from the media store and streamed to Graph, checked
// against the rules once more on the bytes that actually go, and its Graph
// id recorded before anything is sent: a retry or a restart sends that id.
func (s *Sender) upload(ctx context.Context, m *store.OutboundRecord, fence []store.Lease) bool {
	st, clock := s.opt.Store, s.opt.Clock
	bg := context.WithoutCancel(ctx)
	if m.Upload != nil && clock.Since(m.Upload.At) < uploadTTL {
		return true
	}
	md := m.Request.Media
	up, ok := s.opt.Graph.(Uploader)
	if !ok || s.opt.Media == nil {
		s.messages.WithLabelValues("failed", RefusedMediaUnavailable).Inc()
		s.recorded("recording a failed message", m.ID, st.FailOutbound(bg, m.ID, RefusedMediaUnavailable,
			"this hub cannot send files: no media store or no Graph upload"))
		return false
	}
	ok, err := st.MarkUploading(ctx, m.ID, fence...)
	if errors.Is(err, store.ErrLeaseLost) {
		return false
	}
	if err != nil {
		s.log.Error("outbox: marking a message as uploading failed; it stays queued", "id", m.ID, "err", err)
		return false
	}
	if !ok {
		return false
	}
	attempts := m.Attempts + 1
	fail := func(code, reason string) bool {
		s.messages.WithLabelValues("failed", code).Inc()
		s.recorded("recording a failed message", m.ID, st.FailOutbound(bg, m.ID, code, reason))
		return false
	}
	retry := func(code string, err error, after time.Duration) bool {
		if code == graph.CodeCanceled {
			s.recorded("requeueing a message at shutdown", m.ID, st.DeferOutbound(bg, m.ID, m.To, clock.Now(), "", ""))
			return false
		}
		if attempts >= s.opt.MaxAttempts {
			return fail(code, "gave up after "+fmt.Sprint(attempts)+" attempts: uploading the file: "+err.Error())
		}
		s.messages.WithLabelValues("retried", code).Inc()
		s.recorded("scheduling a retry", m.ID, st.DeferOutbound(bg, m.ID, m.To,
			clock.Now().Add(s.backoff(attempts, code, after)), code, "uploading the file: "+err.Error()))
		return false
	}

	id := md.ID
	if md.URL != "" {
		// Queued without Submit (a trigger's reply with a link): the
		// link is fetched now, into the media store.
		got, err := s.fetchURL(ctx, *md)
		var ref *sdk.RefusedError
		var inv *InvalidError
		switch {
		case errors.As(err, &ref):
			return fail(ref.Code, ref.Message)
		case errors.As(err, &inv):
			return fail("invalid", inv.Msg)
		case err != nil:
			return retry("media_store", err, 0)
		}
		id = got.ID
	}
	info, rc, err := s.opt.Media.Open(ctx, id)
	if err != nil {
		if errors.Is(err, sdk.ErrMediaUnavailable) {
			return fail(RefusedMediaUnavailable, "the file "+id+" can no longer be read: "+err.Error())
		}
		code := "media_store"
		if ctx.Err() != nil {
			code = graph.CodeCanceled
		}
		return retry(code, err, 0)
	}
	defer rc.Close()
	head, err := readHead(rc)
	if err != nil {
		return retry("media_store", err, 0)
	}
	typ, err := checkMedia(md.Type, info, head, md.Caption)
	if err != nil {
		var ref *sdk.RefusedError
		if errors.As(err, &ref) {
			return fail(ref.Code, ref.Message)
		}
		return fail("invalid", err.Error())
	}
	// What prepareMedia settles at Submit, settled again here for a
	// message queued without it (a trigger's reply).
	c := *md
	c.Type, c.ID, c.URL = typ, id, ""
	if typ != sdk.MediaDocument {
		c.Filename = ""
	} else if c.Filename == "" {
		c.Filename = info.Filename
	}
	m.Request.Media, md = &c, &c
	digest := sha256.New()
	body := &exactReader{r: io.TeeReader(io.MultiReader(bytes.NewReader(head), rc), digest), left: info.Size}
	mt := BaseMIME(info.MimeType)
	graphID, err := up.Upload(ctx, m.PhoneNumberID, graph.MediaFile{MimeType: mt, Filename: uploadName(md, info), Size: info.Size, Body: body})
	if err == nil && body.err != nil {
		err = body.err
	}
	if err != nil {
		if body.err != nil {
			// The store gave other bytes than it described: sending them
			// would not be the file that passed the rules.
			return fail(RefusedMediaUnavailable, "the file "+id+" did not read back as stored: "+body.err.Error())
		}
		again, code := graph.Classify(err)
		if ctx.Err() != nil {
			again, code = true, graph.CodeCanceled
		}
		if again {
			return retry(code, err, graph.RetryAfter(err))
		}
		return fail(code, "WhatsApp refused the file: "+err.Error())
	}
	sum := hex.EncodeToString(digest.Sum(nil))
	if info.SHA256 != "" && !strings.EqualFold(info.SHA256, sum) {
		return fail(RefusedMediaUnavailable, "the file "+id+" read back with sha256 "+sum+", not "+info.SHA256+" as stored; not sent")
	}
	u := store.GraphUpload{GraphID: graphID, SHA256: sum, MimeType: mt, Size: info.Size, At: clock.Now().UTC()}
	ok, err = st.RecordUpload(bg, m.ID, u)
	if err != nil || !ok {
		// Not recorded: the message is still uploading (a restart queues
		// it again and uploads again) or another hub recovered it; either
		// way it is not sent from here.
		s.recorded("recording an upload", m.ID, err)
		return false
	}
	m.Upload = &u
	m.Attempts = attempts
	return true
}

// uploadName is the filename the upload carries.
func uploadName(md *sdk.OutboundMedia, info sdk.MediaInfo) string {
	if md.Filename != "" {
		return md.Filename
	}
	return info.Filename
}

// exactReader passes exactly left bytes: a file that ends early, or goes
// on past its stored size, is an error rather than other bytes sent.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

var errMediaLength = errors.New("the file's length differs from its stored size")

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		var one [1]byte
		if n, _ := e.r.Read(one[:]); n > 0 {
			e.err = errMediaLength
			return 0, e.err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.err = errMediaLength
		return n, e.err
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// graphMedia is the media part of a message sent with its uploaded file.
func graphMedia(m store.OutboundRecord) *graph.Media {
	md := m.Request.Media
	if md == nil || m.Upload == nil {
		return nil
	}
	return &graph.Media{Type: md.Type, ID: m.Upload.GraphID, Caption: md.Caption, Filename: md.Filename}
}

// ---- media "url" ----

// fetchURL fetches a media "url" into the media store, applying the rules
// on what the link serves before and while it is read.
func (s *Sender) fetchURL(ctx context.Context, md sdk.OutboundMedia) (sdk.MediaInfo, error) {
	u, err := url.Parse(md.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return sdk.MediaInfo{}, &InvalidError{`media: "url" must be an https link`}
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.URLTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, md.URL, nil)
	if err != nil {
		return sdk.MediaInfo{}, &InvalidError{"media: url: " + err.Error()}
	}
	unavailable := func(format string, args ...any) error {
		return refuse(RefusedMediaUnavailable, "media url %s: %s", redactURL(u), fmt.Sprintf(format, args...))
	}
	resp, err := s.urlClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return sdk.MediaInfo{}, unavailable("could not be fetched: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sdk.MediaInfo{}, unavailable("answered %s; the link must serve the file itself", resp.Status)
	}
	name := ""
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name = path.Base(params["filename"])
	}
	if name == "" || name == "." || name == "/" {
		name = path.Base(resp.Request.URL.Path)
		if name == "." || name == "/" {
			name = ""
		}
	}
	mt := BaseMIME(resp.Header.Get("Content-Type"))
	if mt == "" || mt == "application/octet-stream" || mt == "binary/octet-stream" {
		// Many file hosts serve everything as octet-stream; the name says more.
		if byExt := BaseMIME(mime.TypeByExtension(path.Ext(name))); byExt != "" {
			mt = byExt
		}
	}
	head, err := readHead(resp.Body)
	if err != nil {
		return sdk.MediaInfo{}, unavailable("reading it failed: %v", err)
	}
	typ := md.Type
	if typ == "" {
		typ = sdk.MediaTypeFor(mt)
	}
	// The rules on what the link declares, before the body is read.
	probe := sdk.MediaInfo{MimeType: mt, Filename: name, Size: max(resp.ContentLength, int64(len(head)))}
	if _, err := checkMedia(typ, probe, head, md.Caption); err != nil {
		return sdk.MediaInfo{}, err
	}
	limit := limitFor(typ, head)
	body := &capReader{r: io.MultiReader(bytes.NewReader(head), resp.Body), left: limit}
	declared := int64(0)
	if resp.ContentLength > 0 {
		declared = resp.ContentLength
	}
	info, err := s.opt.Media.Put(ctx, sdk.MediaUpload{MimeType: mt, Filename: name, Size: declared}, body)
	if body.over {
		return sdk.MediaInfo{}, refuse(RefusedMediaTooLarge, "the file at the media url is larger than WhatsApp sends as %s (%s)", typ, size(limit))
	}
	if err != nil {
		var ref *sdk.RefusedError
		if errors.As(err, &ref) {
			return sdk.MediaInfo{}, err
		}
		if ctx.Err() != nil {
			return sdk.MediaInfo{}, unavailable("not fetched within %s", s.opt.URLTimeout)
		}
		return sdk.MediaInfo{}, fmt.Errorf("media url: storing the file: %w", err)
	}
	return info, nil
}

// capReader fails once more than left bytes come.
type capReader struct {
	r    io.Reader
	left int64
	over bool
}

var errTooLarge = errors.New("file larger than WhatsApp allows")

func (c *capReader) Read(p []byte) (int, error) {
	if c.over {
		return 0, errTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if int64(n) > c.left {
		c.over = true
		return 0, errTooLarge
	}
	c.left -= int64(n)
	return n, err
}

// redactURL keeps a link's host and path for messages: its query may hold
// a signature.
func redactURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// publicClient fetches media links. It connects only to public addresses,
// checked on the address actually dialled (after DNS, on every redirect):
// a link must not reach the hub's own network (cloud metadata, admin
// ports, databases) through the hub.
func publicClient() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: refusePrivate}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.Proxy = nil // a proxy would dial for us, past the check
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return errors.New("redirected to a link that is not https")
			}
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return nil
		},
	}
}

func refusePrivate(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !isPublic(ip) {
		return fmt.Errorf("%s is not a public address", host)
	}
	return nil
}

var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

func isPublic(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || cgnat.Contains(ip))
}
