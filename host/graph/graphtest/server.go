// Package graphtest is a fake of the WhatsApp Cloud API's send endpoint for
// unit tests, end-to-end tests, fault injection and the hub's sandbox.
//
// It answers POST /{version}/{phone-number-id}/messages (any version prefix,
// or none) with the real success body or the real error envelope, checks
// the token and the phone number id, validates bodies the way Graph does,
// and can enforce the throughput and pair rate limits and the 24-hour
// window against an injected clock. It records every request and every
// accepted message, and can post signed status webhooks back to the hub.
// Paths are relative to wherever it is mounted, so it works behind
// http.StripPrefix and never assumes a host.
package graphtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/host/graph"
)

// maxBody bounds a request body; real sends are a few kilobytes.
const maxBody = 4 << 20

// Option configures a Server.
type Option func(*Server)

// WithAccessToken makes the fake require this bearer token (or the
// access_token query parameter). Without it any token, or none, is accepted.
func WithAccessToken(token string) Option {
	return func(s *Server) { s.token = token }
}

// WithPhoneNumber declares a business number and its display number (used
// in status webhooks' metadata). Once any number is declared, others get
// Graph's unknown-object error.
func WithPhoneNumber(id, displayPhoneNumber string) Option {
	return func(s *Server) { s.numbers[id] = displayPhoneNumber }
}

// WithPhoneNumbers declares business numbers without display numbers.
func WithPhoneNumbers(ids ...string) Option {
	return func(s *Server) {
		for _, id := range ids {
			if _, ok := s.numbers[id]; !ok {
				s.numbers[id] = ""
			}
		}
	}
}

// WithWABA sets the WhatsApp Business Account id sent as entry[].id in
// status webhooks.
func WithWABA(id string) Option {
	return func(s *Server) { s.waba = id }
}

// WithClock sets the clock for timestamps and rate limits, so tests can
// step time instead of sleeping.
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithThroughput limits accepted messages per phone number id to mps per
// second (burst: one second's worth); beyond it sends get 130429.
func WithThroughput(mps int) Option {
	return func(s *Server) { s.mps = mps }
}

// WithPairLimit limits messages from one number to one recipient to one
// per every, after a burst (Meta: one per 6 s, bursts up to 45 that borrow
// from the future); beyond it sends get 131056.
func WithPairLimit(every time.Duration, burst int) Option {
	return func(s *Server) { s.pairEvery, s.pairBurst = every, max(burst, 1) }
}

// WithTemplates declares the approved templates; others get 132001.
// Without it every template name is accepted.
func WithTemplates(names ...string) Option {
	return func(s *Server) {
		if s.templates == nil {
			s.templates = map[string]bool{}
		}
		for _, n := range names {
			s.templates[n] = true
		}
	}
}

// WithStatusWebhook makes the fake post status webhooks to the hub.
func WithStatusWebhook(h StatusWebhook) Option {
	return func(s *Server) { s.hook = &h }
}

// WithAutoStatuses emits statuses after every accepted message, in a
// goroutine, waiting gap (real time) before each: by default sent,
// delivered, read. Close stops them.
func WithAutoStatuses(gap time.Duration, steps ...string) Option {
	return func(s *Server) {
		if len(steps) == 0 {
			steps = defaultSteps
		}
		s.autoSteps, s.autoGap = steps, gap
	}
}

// WithAsyncErrors answers window (131047) and undeliverable (131026)
// refusals the way the Cloud API usually does: the send is accepted and a
// failed status webhook follows. Without it they are refused synchronously.
func WithAsyncErrors() Option {
	return func(s *Server) { s.asyncErrors = true }
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	token       string
	numbers     map[string]string
	waba        string
	now         func() time.Time
	mps         int
	pairEvery   time.Duration
	pairBurst   int
	templates   map[string]bool
	hook        *StatusWebhook
	autoSteps   []string
	autoGap     time.Duration
	asyncErrors bool
	prefix      string

	ctx       context.Context // for webhook posts; Close cancels it
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu            sync.Mutex
	closed        bool
	seq           uint64
	sent          []Sent
	byWAMID       map[string]int
	requests      []*Request
	fails         []*ErrorResponse
	script        func(Request) *ErrorResponse
	closedWindows map[string]bool
	undeliverable map[string]bool
	hang          time.Duration
	hangAccepted  time.Duration
	throughput    map[string]*bucket
	pairs         map[string]*bucket
	rates         map[string]*rateWindow
	statuses      []Status
	reads         []Read
	catalog       []Template
	listings      int
	up            *uploads // media uploads (upload.go)

	mediaOnce sync.Once
	media     *mediaState // media.go
}

// NewServer returns a fake that accepts every well-formed send until
// configured otherwise.
func NewServer(opts ...Option) *Server {
	s := &Server{
		numbers:       map[string]string{},
		waba:          "102290129340398",
		now:           time.Now,
		prefix:        randomHex(10),
		done:          make(chan struct{}),
		byWAMID:       map[string]int{},
		closedWindows: map[string]bool{},
		undeliverable: map[string]bool{},
		throughput:    map[string]*bucket{},
		pairs:         map[string]*bucket{},
		rates:         map[string]*rateWindow{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, o := range opts {
		o(s)
	}
	return s
}

// Request is one HTTP request the fake received, refused or not.
type Request struct {
	Seq           int         `json:"seq"`
	Time          time.Time   `json:"time"`
	Method        string      `json:"method"`
	Path          string      `json:"path"`
	PhoneNumberID string      `json:"phone_number_id"`
	Token         string      `json:"-"` // the bearer token presented
	Header        http.Header `json:"-"`
	Body          []byte      `json:"-"`
	Kind          string      `json:"kind,omitempty"` // text, template, ..., "read"; "" if unparseable
	To            string      `json:"to,omitempty"`   // "to" or "recipient"

	// The answer, filled in once sent.
	Status int    `json:"status"`
	Code   int    `json:"code,omitempty"` // Graph error code
	WAMID  string `json:"wamid,omitempty"`
}

// Sent is one message the fake accepted.
type Sent struct {
	PhoneNumberID string `json:"phone_number_id"`
	To            string `json:"to"`                // as sent: "to" or "recipient"
	WAID          string `json:"wa_id,omitempty"`   // for phone numbers
	UserID        string `json:"user_id,omitempty"` // for BSUIDs
	Kind          string `json:"kind"`
	Text          string `json:"text,omitempty"`
	Template      string `json:"template,omitempty"`
	Language      string `json:"language,omitempty"`
	ReplyTo       string `json:"reply_to,omitempty"`
	CallbackData  string `json:"callback_data,omitempty"`
	// A media message's file: the uploaded id (see Uploads) or the link.
	MediaID  string          `json:"media_id,omitempty"`
	Link     string          `json:"link,omitempty"`
	Caption  string          `json:"caption,omitempty"`
	Filename string          `json:"filename,omitempty"`
	WAMID    string          `json:"wamid"`
	Time     time.Time       `json:"time"`
	Body     json.RawMessage `json:"body"`
}

// Read is one mark-as-read request the fake accepted.
type Read struct {
	PhoneNumberID string `json:"phone_number_id"`
	MessageID     string `json:"message_id"`
	// Typing is the typing indicator shown with it ("text"), if any.
	Typing string    `json:"typing,omitempty"`
	Time   time.Time `json:"time"`
}

// FailNext makes the next n sends (mark-as-read excluded) fail with Meta's
// answer for code (see ErrorFor; 500-599 give a plain HTTP error). Queued
// failures come before validation, window and limits.
func (s *Server) FailNext(n int, code int) {
	for range n {
		s.FailNextWith(ErrorFor(code))
	}
}

// FailNextWith queues one arbitrary refusal for the next send.
func (s *Server) FailNextWith(e *ErrorResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, e)
}

// Script sets a function consulted for every authorised request to a known
// number, before anything else; a non-nil answer is sent instead. nil
// removes it. It runs without the fake's lock, so it may call the fake.
func (s *Server) Script(fn func(req Request) *ErrorResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = fn
}

// CloseWindow makes the 24-hour customer service window with a recipient
// (phone number or BSUID) closed: anything but a template fails with 131047.
func (s *Server) CloseWindow(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closedWindows[recipientKey(to)] = true
}

// OpenWindow undoes CloseWindow.
func (s *Server) OpenWindow(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.closedWindows, recipientKey(to))
}

// MakeUndeliverable makes every message to a recipient fail with 131026
// (not on WhatsApp, terms not accepted, old app).
func (s *Server) MakeUndeliverable(to string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.undeliverable[recipientKey(to)] = true
}

// Hang holds every following request for d before answering it, or, for
// d < 0, until the client gives up or Close. 0 stops hanging. Held requests
// are recorded but never accepted: the timeout a sender sees is the plain
// "no answer" case.
func (s *Server) Hang(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang = d
}

// HangAccepted accepts and records sends but holds the answer for d (d < 0:
// until the client gives up or Close): the message goes out although the
// sender times out, the case that tempts a duplicate retry.
func (s *Server) HangAccepted(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangAccepted = d
}

// Sent returns the accepted messages in order.
func (s *Server) Sent() []Sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sent(nil), s.sent...)
}

// SentCount is len(Sent()) without the copy, for polling.
func (s *Server) SentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

// Requests returns every request received, including refused ones.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// MarkedRead returns the accepted mark-as-read requests.
func (s *Server) MarkedRead() []Read {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Read(nil), s.reads...)
}

// MaxRate is the most messages a phone number had accepted within any
// one-second window (by the injected clock).
func (s *Server) MaxRate(phoneNumberID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rates[phoneNumberID]; r != nil {
		return r.max
	}
	return 0
}

// Reset forgets recorded requests, messages, statuses, queued failures,
// windows and limit state; options stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent, s.requests, s.fails, s.statuses, s.reads = nil, nil, nil, nil, nil
	s.byWAMID = map[string]int{}
	s.closedWindows = map[string]bool{}
	s.undeliverable = map[string]bool{}
	s.throughput = map[string]*bucket{}
	s.pairs = map[string]*bucket{}
	s.rates = map[string]*rateWindow{}
	s.up = nil
}

// Close stops automatic statuses, releases held requests and waits for
// status posts in flight. The fake still answers afterwards.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		s.cancel()
	})
	s.wg.Wait()
}

// Snapshot is a JSON view for the sandbox page: the latest 500 messages and
// statuses, counts, the highest rates and closed windows. Tokens and
// request bodies other than accepted messages are left out.
func (s *Server) Snapshot() any {
	const keep = 500
	s.mu.Lock()
	defer s.mu.Unlock()
	tail := func(n int) int { return max(0, n-keep) }
	refused := 0
	for _, r := range s.requests {
		if r.Status >= 300 {
			refused++
		}
	}
	rates := map[string]int{}
	for id, r := range s.rates {
		rates[id] = r.max
	}
	windows := make([]string, 0, len(s.closedWindows))
	for k := range s.closedWindows {
		windows = append(windows, k)
	}
	sort.Strings(windows)
	return snapshot{
		Requests:      len(s.requests),
		Refused:       refused,
		SentTotal:     len(s.sent),
		Sent:          append([]Sent{}, s.sent[tail(len(s.sent)):]...),
		StatusesTotal: len(s.statuses),
		Statuses:      append([]Status{}, s.statuses[tail(len(s.statuses)):]...),
		MarkedRead:    len(s.reads),
		MaxRate:       rates,
		ClosedWindows: windows,
		Uploads:       s.uploadSnapshot(keep),
		Media:         s.MediaFiles(),
	}
}

type snapshot struct {
	Requests      int            `json:"requests"`
	Refused       int            `json:"refused"`
	SentTotal     int            `json:"sent_total"`
	Sent          []Sent         `json:"sent"`
	StatusesTotal int            `json:"statuses_total"`
	Statuses      []Status       `json:"statuses"`
	MarkedRead    int            `json:"marked_read"`
	MaxRate       map[string]int `json:"max_rate_per_second"`
	ClosedWindows []string       `json:"closed_windows"`
	Uploads       []Upload       `json:"uploads"` // the latest media files uploaded for sending
	Media         []MediaFile    `json:"media,omitempty"`
}

// ServeHTTP answers one Graph request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveUpload(w, r) { // streams its body: never read whole
		return
	}
	if s.serveMedia(w, r) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if waba, ok := templatesPath(r.URL.Path); ok {
		req := &Request{Time: s.now(), Method: r.Method, Path: r.URL.Path, Token: bearer(r), Header: r.Header.Clone(), Kind: "templates"}
		s.mu.Lock()
		s.seq++
		req.Seq = int(s.seq)
		s.requests = append(s.requests, req)
		s.mu.Unlock()
		s.serveTemplates(w, r, waba, req)
		return
	}
	pnid, pathOK := parsePath(r.URL.Path)
	req := &Request{
		Time: s.now(), Method: r.Method, Path: r.URL.Path, PhoneNumberID: pnid,
		Token: bearer(r), Header: r.Header.Clone(), Body: body,
	}
	var p parsed
	var verr *ErrorResponse
	if pathOK && r.Method == http.MethodPost {
		p, verr = validate(body)
		req.Kind = p.kind
		req.To = p.to + p.recipient
	}

	s.mu.Lock()
	s.seq++
	req.Seq = int(s.seq)
	s.requests = append(s.requests, req)
	hang := s.hang
	s.mu.Unlock()

	if hang != 0 && !s.wait(r.Context(), hang) {
		s.refuse(w, req, PlainHTTP(http.StatusServiceUnavailable))
		return
	}
	if e := s.gate(r, req, pathOK); e != nil {
		s.refuse(w, req, e)
		return
	}

	s.mu.Lock()
	script := s.script
	s.mu.Unlock()
	if script != nil {
		if e := script(*req); e != nil {
			s.refuse(w, req, e)
			return
		}
	}

	s.mu.Lock()
	if !p.read && len(s.fails) > 0 {
		e := s.fails[0]
		s.fails = s.fails[1:]
		s.mu.Unlock()
		s.refuse(w, req, e)
		return
	}
	if verr != nil {
		s.mu.Unlock()
		s.refuse(w, req, verr)
		return
	}
	if p.read {
		s.reads = append(s.reads, Read{PhoneNumberID: pnid, MessageID: p.messageID, Typing: p.typing, Time: req.Time})
		req.Status = http.StatusOK
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		return
	}
	m, asyncErr, e := s.accept(req, p)
	hangAccepted := s.hangAccepted
	s.mu.Unlock()
	if e != nil {
		s.refuse(w, req, e)
		return
	}

	switch {
	case asyncErr != 0:
		s.autoEmit(m, []string{"failed"}, []StatusError{StatusErrorFor(asyncErr)})
	case len(s.autoSteps) > 0:
		s.autoEmit(m, s.autoSteps, nil)
	}
	if hangAccepted != 0 && !s.wait(r.Context(), hangAccepted) && r.Context().Err() != nil {
		return // the client is gone; when closing, answer what happened
	}
	writeJSON(w, http.StatusOK, successBody(m))
}

// gate applies Graph's checks that come before the request is looked at:
// the token, then the object.
func (s *Server) gate(r *http.Request, req *Request, pathOK bool) *ErrorResponse {
	if s.token != "" && req.Token != s.token {
		return badToken(req.Token == "")
	}
	if !pathOK || r.Method != http.MethodPost {
		id := req.PhoneNumberID
		if id == "" {
			id = strings.Trim(r.URL.Path, "/")
		}
		return unknownObject(r.Method, id)
	}
	if len(s.numbers) > 0 {
		if _, ok := s.numbers[req.PhoneNumberID]; !ok {
			return unknownObject(r.Method, req.PhoneNumberID)
		}
	}
	return nil
}

// accept applies templates, window, reachability and limits, and records
// the message. It returns the code of a refusal to report asynchronously
// instead. Called with s.mu held.
func (s *Server) accept(req *Request, p parsed) (Sent, int, *ErrorResponse) {
	now := req.Time
	if s.templates != nil && p.kind == "template" && !s.templates[p.template] {
		return Sent{}, 0, withDetails(graph.ErrTemplateMissing, "",
			"template name ("+p.template+") does not exist in "+p.language)
	}
	if p.kind == "template" {
		if e := s.catalogRefusal(req.Body, p.template, p.language); e != nil {
			return Sent{}, 0, e
		}
	}
	if e := s.checkMediaMessage(p); e != nil {
		return Sent{}, 0, e
	}
	asyncErr := 0
	switch {
	case s.closedWindows[p.key] && p.kind != "template":
		asyncErr = graph.ErrReengagement
	case s.undeliverable[p.key]:
		asyncErr = graph.ErrUndeliverable
	}
	if asyncErr != 0 && !s.asyncErrors {
		return Sent{}, 0, ErrorFor(asyncErr)
	}

	var tb, pb *bucket
	if s.mps > 0 {
		if tb = s.throughput[req.PhoneNumberID]; tb == nil {
			tb = newBucket(time.Second/time.Duration(s.mps), s.mps, now)
			s.throughput[req.PhoneNumberID] = tb
		}
		if !tb.ready(now) {
			return Sent{}, 0, ErrorFor(graph.ErrThroughput)
		}
	}
	if s.pairEvery > 0 {
		k := req.PhoneNumberID + "\x00" + p.key
		if pb = s.pairs[k]; pb == nil {
			pb = newBucket(s.pairEvery, s.pairBurst, now)
			s.pairs[k] = pb
		}
		if !pb.ready(now) {
			return Sent{}, 0, ErrorFor(graph.ErrPairRateLimit)
		}
	}
	if tb != nil {
		tb.take()
	}
	if pb != nil {
		pb.take()
	}
	rw := s.rates[req.PhoneNumberID]
	if rw == nil {
		rw = &rateWindow{}
		s.rates[req.PhoneNumberID] = rw
	}
	rw.add(now)

	m := Sent{
		PhoneNumberID: req.PhoneNumberID,
		To:            p.to + p.recipient,
		WAID:          p.waID,
		UserID:        p.userID,
		Kind:          p.kind,
		Text:          p.text,
		Template:      p.template,
		Language:      p.language,
		ReplyTo:       p.replyTo,
		CallbackData:  p.callbackData,
		MediaID:       p.mediaID,
		Link:          p.link,
		Caption:       p.caption,
		Filename:      p.filename,
		WAMID:         newWAMID(s.prefix, s.seq, p.waID+p.userID),
		Time:          now,
		Body:          json.RawMessage(req.Body),
	}
	s.byWAMID[m.WAMID] = len(s.sent)
	s.sent = append(s.sent, m)
	req.Status, req.WAMID = http.StatusOK, m.WAMID
	return m, asyncErr, nil
}

func (s *Server) refuse(w http.ResponseWriter, req *Request, e *ErrorResponse) {
	s.mu.Lock()
	req.Status, req.Code = e.HTTPStatus, e.Code
	if req.Status == 0 {
		req.Status = http.StatusBadRequest
	}
	s.mu.Unlock()
	e.write(w, traceID())
}

// wait holds a request; false if the client left or the fake closed.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

type wireContact struct {
	Input  string `json:"input"`
	WAID   string `json:"wa_id,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

type wireMessageID struct {
	ID            string `json:"id"`
	MessageStatus string `json:"message_status,omitempty"`
}

func successBody(m Sent) any {
	id := wireMessageID{ID: m.WAMID}
	if m.Kind == "template" {
		// Meta adds message_status for (paced) templates only.
		id.MessageStatus = "accepted"
	}
	return struct {
		MessagingProduct string          `json:"messaging_product"`
		Contacts         []wireContact   `json:"contacts"`
		Messages         []wireMessageID `json:"messages"`
	}{"whatsapp", []wireContact{{Input: m.To, WAID: m.WAID, UserID: m.UserID}}, []wireMessageID{id}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// parsePath accepts /{version}/{id}/messages and /{id}/messages.
func parsePath(path string) (id string, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > 0 && isVersion(segs[0]) {
		segs = segs[1:]
	}
	if len(segs) == 2 && segs[0] != "" && segs[1] == "messages" {
		return segs[0], true
	}
	if len(segs) > 0 {
		return segs[0], false
	}
	return "", false
}

func isVersion(s string) bool {
	major, minor, _ := strings.Cut(strings.TrimPrefix(s, "v"), ".")
	if !strings.HasPrefix(s, "v") || major == "" {
		return false
	}
	for _, c := range major + minor {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, scheme := range []string{"Bearer ", "OAuth "} {
		if len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) {
			return strings.TrimSpace(h[len(scheme):])
		}
	}
	return r.URL.Query().Get("access_token")
}

// recipientKey is how the fake keys per-recipient state: the BSUID, or the
// digits of a phone number, so "+1 650-555-1234" and "16505551234" match.
func recipientKey(to string) string {
	if graph.IsBSUID(to) {
		return to
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, to)
}

func trimCodePrefix(msg string) string {
	if strings.HasPrefix(msg, "(#") {
		if i := strings.Index(msg, ") "); i > 0 {
			return msg[i+2:]
		}
	}
	return msg
}
