// Package hubspottest is a fake of the parts of the HubSpot CRM API the
// hubspot connector uses, for its tests, end-to-end tests, the
// fault-injection suite and the hub's sandbox. It is an http.Handler with
// no listener of its own (serve it with httptest.NewServer, or mount it
// under a prefix with http.StripPrefix): every path is relative to its
// root.
//
// What it reproduces, from /work/shared/reference/apis.md §1:
//
//   - private-app auth (Authorization: Bearer …; 401 INVALID_AUTHENTICATION
//     with HubSpot's body) and scopes (403 MISSING_SCOPES naming the
//     required scope in errors[].context.requiredScopes);
//   - POST /crm/v3/objects/contacts/search: filterGroups OR-ed, filters
//     AND-ed, operators EQ NEQ LT LTE GT GTE IN HAS_PROPERTY
//     NOT_HAS_PROPERTY, one sort, limit ≤ 200, paging with "after" and
//     the 10,000-result cap (400 past it), {"total":0,"results":[]} when
//     nothing matches, and SEARCH LAG: a created or changed contact shows
//     up in search (with its new values) only after a configurable delay
//     on the injectable clock;
//   - POST /crm/v3/objects/contacts (201; 409 CONFLICT "Contact already
//     exists. Existing ID: …" on a duplicate email; 400 for unknown
//     properties), GET and PATCH /crm/v3/objects/contacts/{id},
//     GET /crm/v3/objects/contacts (list);
//   - POST /crm/v3/objects/communications (channel type WHATS_APP,
//     LINKEDIN_MESSAGE or SMS; logged_from must be CRM; association type
//     81 to a contact) and POST /crm/v3/objects/notes (hs_timestamp
//     required; association type 202);
//   - the Files API's upload (files.go) and hs_attachment_ids on
//     engagements;
//   - rate limits as HubSpot answers them: the ten-secondly limit (429
//     policyName TEN_SECONDLY_ROLLING, Retry-After only if asked for), the
//     search API's own per-second limit (429 "You have reached your
//     secondly limit.", category RATE_LIMITS, no Retry-After, no rate
//     headers) and the daily limit (429 policyName DAILY). It records the
//     highest request rate it ever saw, so a test can prove a client stayed
//     under the limit.
//
// Fault injection: FailNext, FailEvery and Script.
package hubspottest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

// Paths the fake serves (the classic v3 style; see apis.md §1).
const (
	PathContacts       = "/crm/v3/objects/contacts"
	PathContactSearch  = "/crm/v3/objects/contacts/search"
	PathCommunications = "/crm/v3/objects/communications"
	PathNotes          = "/crm/v3/objects/notes"
)

// Scopes a private app can be given, as HubSpot names them. Engagements
// (communications, notes) on contacts need the contacts write scope. [U]
const (
	ScopeContactsRead  = "crm.objects.contacts.read"
	ScopeContactsWrite = "crm.objects.contacts.write"
)

// Association type ids (HUBSPOT_DEFINED) the fake accepts.
const (
	AssocCommunicationToContact = 81
	AssocNoteToContact          = 202
)

// Rate-limit policies, as HubSpot names them in 429 bodies. PolicySearch
// is the search API's own per-second limit, whose 429 has no policyName.
const (
	PolicyTenSecondly = "TEN_SECONDLY_ROLLING"
	PolicyDaily       = "DAILY"
	PolicySearch      = "SECONDLY"
)

// SearchCap is the number of results search pages through at most: a
// request with after ≥ SearchCap is refused with 400.
const SearchCap = 10000

const maxSearchLimit = 200

// RateLimit is the limit the fake enforces. Zero fields are not enforced.
type RateLimit struct {
	// Per10Seconds limits all requests (search included) in any rolling
	// ten-second window.
	Per10Seconds int `json:"per_10_seconds,omitempty"`
	// SearchPerSecond limits search requests in any rolling second.
	SearchPerSecond int `json:"search_per_second,omitempty"`
	// Daily limits requests per UTC day of the fake's clock.
	Daily int `json:"daily,omitempty"`
	// RetryAfter, when set, is sent as Retry-After on ten-secondly 429s.
	// HubSpot documents none; leave it empty to be faithful.
	RetryAfter string `json:"retry_after,omitempty"`
}

// Fault is a scripted answer that replaces the normal one.
type Fault struct {
	Status int `json:"status"`
	// Policy picks the 429 body: PolicyTenSecondly (the default),
	// PolicySearch or PolicyDaily.
	Policy string `json:"policy,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string `json:"retry_after,omitempty"`
	// Body replaces the default body for Status.
	Body string `json:"body,omitempty"`
	// AfterProcessing lets the request take effect before the fault is
	// answered: the answer to a successful create is lost, as with a
	// gateway timeout.
	AfterProcessing bool `json:"after_processing,omitempty"`
	// Method and Path, when set, limit the fault to requests with this
	// method and exactly this path; other requests pass and do not use it
	// up.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// BodyContains, when set, limits the fault further to requests whose
	// body holds it: with conversations delivered concurrently, it is how
	// a test picks which one meets the fault.
	BodyContains string `json:"body_contains,omitempty"`
}

func (f *Fault) applies(method, path string, body []byte) bool {
	return (f.Method == "" || f.Method == method) && (f.Path == "" || f.Path == path) &&
		(f.BodyContains == "" || bytes.Contains(body, []byte(f.BodyContains)))
}

// Association is one association of a created engagement.
type Association struct {
	ToID     string `json:"to_id"`
	Category string `json:"category"`
	TypeID   int    `json:"type_id"`
}

// Record is a CRM object as the fake holds it.
type Record struct {
	ID           string            `json:"id"`
	Properties   map[string]string `json:"properties"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	Associations []Association     `json:"associations,omitempty"`
	// SearchableAt is when search first saw the record (contacts only).
	SearchableAt time.Time `json:"searchable_at,omitzero"`
}

// Request is one request the fake answered.
type Request struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Status int       `json:"status"`
	At     time.Time `json:"at"`
}

// Snapshot is what GET /sandbox shows of the fake.
type Snapshot struct {
	Contacts       []Record  `json:"contacts"`
	Communications []Record  `json:"communications"`
	Notes          []Record  `json:"notes"`
	Files          []File    `json:"files"`
	Requests       int       `json:"requests"`
	RateLimit      RateLimit `json:"rate_limit"`
	// Throttled counts the 429s the fake's own rate limit answered
	// (scripted faults not included).
	Throttled          int       `json:"throttled"`
	MaxPer10Seconds    int       `json:"max_per_10_seconds"`
	MaxSearchPerSecond int       `json:"max_search_per_second"`
	Recent             []Request `json:"recent"`
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock that rates, search lag and timestamps use;
// the default is time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithToken makes the fake accept only this bearer token; by default any
// non-empty token is accepted (the sandbox does not know the user's).
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithSearchLag sets how long a created or changed contact stays
// invisible (or shows its old values) to search.
func WithSearchLag(d time.Duration) Option { return func(s *Server) { s.lag = d } }

// WithScopes sets the scopes the token has; by default it has all.
func WithScopes(scopes ...string) Option {
	return func(s *Server) {
		s.scopes = map[string]bool{}
		for _, sc := range scopes {
			s.scopes[sc] = true
		}
	}
}

// WithContactProperties defines custom contact properties (tier, ...)
// besides HubSpot's default ones; writing an undefined one is a 400.
func WithContactProperties(names ...string) Option {
	return func(s *Server) {
		for _, n := range names {
			s.contactProps[n] = true
		}
	}
}

// WithRateLimit enforces a rate limit from the start.
func WithRateLimit(l RateLimit) Option { return func(s *Server) { s.limit = l } }

// Server is the fake HubSpot API. It is safe for concurrent use.
type Server struct {
	mu           sync.Mutex
	now          func() time.Time
	token        string
	lag          time.Duration
	scopes       map[string]bool // nil: all
	contactProps map[string]bool

	nextID   int64
	nextCorr int64
	contacts []*contact
	byID     map[string]*contact
	comms    []*Record
	notes    []*Record
	files    fileStore // files.go

	faults fakeapi.Faults[Fault]

	limit       RateLimit
	window      []time.Time // arrivals in the last 10 s
	searchWin   []time.Time // search arrivals in the last second
	day         string
	dayCount    int
	maxPer10s   int
	maxSearch1s int
	throttled   int

	requests fakeapi.Log[Request]
}

// contact keeps every version of a contact, so that search can serve the
// one its index has caught up with.
type contact struct {
	id        string
	createdAt time.Time
	versions  []version
}

type version struct {
	props     map[string]string
	at        time.Time // lastmodifieddate
	visibleAt time.Time // when search sees this version
}

func (c *contact) current() version { return c.versions[len(c.versions)-1] }

// searchable is the newest version search sees at now, if any.
func (c *contact) searchable(now time.Time) (version, bool) {
	for i := len(c.versions) - 1; i >= 0; i-- {
		if !c.versions[i].visibleAt.After(now) {
			return c.versions[i], true
		}
	}
	return version{}, false
}

// defaultContactProps are HubSpot default contact properties a client
// may write (a small, relevant subset).
var defaultContactProps = []string{
	"firstname", "lastname", "email", "phone", "mobilephone", "company",
	"hubspot_owner_id", "lifecyclestage", "hs_lead_status", "jobtitle", "city", "country",
	"hs_whatsapp_phone_number",
}

// readOnlyProps are set by HubSpot itself.
var readOnlyProps = map[string]bool{"createdate": true, "lastmodifieddate": true, "hs_object_id": true}

// NewServer returns an empty fake.
func NewServer(opts ...Option) *Server {
	s := &Server{
		now:          time.Now,
		contactProps: map[string]bool{},
		byID:         map[string]*contact{},
		nextID:       51000,
	}
	for _, p := range defaultContactProps {
		s.contactProps[p] = true
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// ---- fault injection and settings ----

// FailNext answers the next n requests with status and HubSpot's body
// for it (a 429 is the ten-secondly one, without Retry-After).
func (s *Server) FailNext(n int, status int) { s.faults.Repeat(n, Fault{Status: status}) }

// Script queues faults for the next requests, in order.
func (s *Server) Script(faults ...Fault) { s.faults.Push(faults...) }

// FailEvery answers every k-th authenticated request with f (k = 2: half
// of them); k ≤ 0 stops it.
func (s *Server) FailEvery(k int, f Fault) { s.faults.Every(k, f) }

// SetRateLimit replaces the enforced rate limit.
func (s *Server) SetRateLimit(l RateLimit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = l
}

// SetSearchLag changes the search lag for contacts written from now on.
func (s *Server) SetSearchLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = d
}

// SetScopes replaces the token's scopes.
func (s *Server) SetScopes(scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	WithScopes(scopes...)(s)
}

// ---- test accessors ----

// AddContact seeds a contact that existed before the test: it is
// searchable at once, with createdate and lastmodifieddate = modified.
func (s *Server) AddContact(props map[string]string, modified time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &contact{id: s.newID(), createdAt: modified}
	p := copyProps(props)
	s.stamp(p, c, modified)
	c.versions = []version{{props: p, at: modified}}
	s.contacts = append(s.contacts, c)
	s.byID[c.id] = c
	return c.id
}

// SetContactProperties changes a contact as a HubSpot user would, with
// lastmodifieddate = modified; search sees the change after the lag. An
// empty value clears the property.
func (s *Server) SetContactProperties(id string, props map[string]string, modified time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("no contact %s", id)
	}
	s.update(c, props, modified)
	return nil
}

// DeleteContact removes a contact, as a HubSpot user deleting it would.
func (s *Server) DeleteContact(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[id]; !ok {
		return false
	}
	delete(s.byID, id)
	for i, c := range s.contacts {
		if c.id == id {
			s.contacts = append(s.contacts[:i:i], s.contacts[i+1:]...)
			break
		}
	}
	return true
}

// Contacts returns the contacts as they are now (not as search sees
// them), in creation order.
func (s *Server) Contacts() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.contactRecords()
}

// Communications returns the communications created, in order.
func (s *Server) Communications() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyRecords(s.comms)
}

// Notes returns the notes created, in order.
func (s *Server) Notes() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyRecords(s.notes)
}

// Requests returns every request answered so far.
func (s *Server) Requests() []Request { return s.requests.All() }

// Calls counts the requests with this method whose path starts with
// prefix.
func (s *Server) Calls(method, prefix string) int {
	return s.requests.Count(func(r Request) bool { return r.Method == method && strings.HasPrefix(r.Path, prefix) })
}

// MaxObserved returns the most requests seen in any rolling ten seconds
// and the most search requests seen in any rolling second.
func (s *Server) MaxObserved() (per10s, searchPerSecond int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxPer10s, s.maxSearch1s
}

// Throttled returns how many requests the fake's own rate limit refused.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Snapshot is a JSON-friendly view of everything the fake holds.
func (s *Server) Snapshot() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		Contacts:           s.contactRecords(),
		Communications:     copyRecords(s.comms),
		Notes:              copyRecords(s.notes),
		Files:              s.fileSnapshot(),
		Requests:           s.requests.Len(),
		RateLimit:          s.limit,
		Throttled:          s.throttled,
		MaxPer10Seconds:    s.maxPer10s,
		MaxSearchPerSecond: s.maxSearch1s,
		Recent:             s.requests.Last(50),
	}
}

func (s *Server) contactRecords() []Record {
	out := make([]Record, 0, len(s.contacts))
	for _, c := range s.contacts {
		v := c.current()
		r := Record{ID: c.id, Properties: copyProps(v.props), CreatedAt: c.createdAt, UpdatedAt: v.at}
		if len(c.versions) > 0 {
			r.SearchableAt = c.versions[0].visibleAt
		}
		out = append(out, r)
	}
	return out
}

func copyRecords(in []*Record) []Record {
	out := make([]Record, 0, len(in))
	for _, r := range in {
		c := *r
		c.Properties = copyProps(r.Properties)
		c.Associations = append([]Association(nil), r.Associations...)
		out = append(out, c)
	}
	return out
}

func copyProps(p map[string]string) map[string]string {
	out := make(map[string]string, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

// ---- HTTP ----

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.URL.Path != PathFiles {
		// An upload's handler reads its multipart body as a stream.
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, 4<<20)); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	rec := &fakeapi.Recorder{ResponseWriter: w}
	s.serve(rec, r, body)
	s.requests.Add(Request{Method: r.Method, Path: r.URL.Path, Status: rec.Status, At: s.now()})
}

// route is one endpoint: its scope and handler.
type route struct {
	scope  string
	search bool
	handle func(s *Server, w http.ResponseWriter, r *http.Request, body []byte, id string)
}

func match(method, path string) (*route, string) {
	if rt, id := filesRoute(method, path); rt != nil {
		return rt, id
	}
	switch {
	case path == PathContactSearch && method == http.MethodPost:
		return &route{scope: ScopeContactsRead, search: true, handle: (*Server).search}, ""
	case path == PathContacts && method == http.MethodPost:
		return &route{scope: ScopeContactsWrite, handle: (*Server).createContact}, ""
	case path == PathContacts && method == http.MethodGet:
		return &route{scope: ScopeContactsRead, handle: (*Server).listContacts}, ""
	case strings.HasPrefix(path, PathContacts+"/") && !strings.Contains(path[len(PathContacts)+1:], "/"):
		id := path[len(PathContacts)+1:]
		switch method {
		case http.MethodGet:
			return &route{scope: ScopeContactsRead, handle: (*Server).getContact}, id
		case http.MethodPatch:
			return &route{scope: ScopeContactsWrite, handle: (*Server).patchContact}, id
		}
	case path == PathCommunications && method == http.MethodPost:
		return &route{scope: ScopeContactsWrite, handle: (*Server).createCommunication}, ""
	case path == PathNotes && method == http.MethodPost:
		return &route{scope: ScopeContactsWrite, handle: (*Server).createNote}, ""
	}
	return nil, ""
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	now := s.now()
	corr := s.correlationID()
	w.Header().Set("X-HubSpot-Correlation-Id", corr)
	rt, id := match(r.Method, r.URL.Path)
	isSearch := rt != nil && rt.search
	s.count(now, isSearch)

	// Auth comes first, as at HubSpot: a bad token never learns more.
	got, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !bearer || got == "" || (s.token != "" && got != s.token) {
		s.mu.Unlock()
		writeJSON(w, http.StatusUnauthorized, errorBody(corr, "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", "INVALID_AUTHENTICATION"))
		return
	}
	if rt == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, errorBody(corr, fmt.Sprintf("No route for %s %s", r.Method, r.URL.Path), "OBJECT_NOT_FOUND"))
		return
	}
	if s.scopes != nil && !s.scopes[rt.scope] {
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, scopeBody(corr, rt.scope))
		return
	}
	if policy, ok := s.overLimit(now, isSearch); ok {
		s.throttled++
		limit := s.limit
		s.mu.Unlock()
		writeRateLimited(w, corr, policy, limit.RetryAfter, limit)
		return
	}
	fault := s.nextFault(r.Method, r.URL.Path, body)
	if fault == nil && !isSearch {
		// Search answers carry no rate headers (apis.md §1.4).
		s.rateHeaders(w)
	}
	s.mu.Unlock()

	if fault != nil && !fault.AfterProcessing {
		s.writeFault(w, corr, fault, rt.scope)
		return
	}
	if fault != nil {
		// The request takes effect; its answer is lost.
		rt.handle(s, &fakeapi.Discard{Headers: w.Header().Clone()}, r, body, id)
		s.writeFault(w, corr, fault, rt.scope)
		return
	}
	rt.handle(s, w, r, body, id)
}

// count records an arrival in the rolling windows. Every request counts,
// refused ones too: that is what a client's pacing must keep down.
func (s *Server) count(now time.Time, search bool) {
	s.window = append(prune(s.window, now.Add(-10*time.Second)), now)
	s.maxPer10s = max(s.maxPer10s, len(s.window))
	if search {
		s.searchWin = append(prune(s.searchWin, now.Add(-time.Second)), now)
		s.maxSearch1s = max(s.maxSearch1s, len(s.searchWin))
	}
	day := now.UTC().Format("2006-01-02")
	if day != s.day {
		s.day, s.dayCount = day, 0
	}
	s.dayCount++
}

// prune drops the times at or before cut: the window is (now-W, now].
func prune(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

func (s *Server) overLimit(now time.Time, search bool) (string, bool) {
	l := s.limit
	switch {
	case l.Daily > 0 && s.dayCount > l.Daily:
		return PolicyDaily, true
	case search && l.SearchPerSecond > 0 && len(s.searchWin) > l.SearchPerSecond:
		return PolicySearch, true
	case l.Per10Seconds > 0 && len(s.window) > l.Per10Seconds:
		return PolicyTenSecondly, true
	}
	return "", false
}

func (s *Server) nextFault(method, path string, body []byte) *Fault {
	f, ok := s.faults.Next(func(f Fault) bool { return f.applies(method, path, body) })
	if !ok {
		return nil
	}
	return &f
}

func (s *Server) rateHeaders(w http.ResponseWriter) {
	h := w.Header()
	daily := s.limit.Daily
	if daily == 0 {
		daily = 250000
	}
	h.Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(daily))
	h.Set("X-HubSpot-RateLimit-Daily-Remaining", strconv.Itoa(max(0, daily-s.dayCount)))
	per := s.limit.Per10Seconds
	if per == 0 {
		per = 100
	}
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
	h.Set("X-HubSpot-RateLimit-Max", strconv.Itoa(per))
	h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(0, per-len(s.window))))
}

func (s *Server) writeFault(w http.ResponseWriter, corr string, f *Fault, scope string) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return
	}
	switch f.Status {
	case http.StatusTooManyRequests:
		policy := f.Policy
		if policy == "" {
			policy = PolicyTenSecondly
		}
		writeJSON(w, f.Status, rateLimitBody(corr, policy))
	case http.StatusUnauthorized:
		writeJSON(w, f.Status, errorBody(corr, "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", "INVALID_AUTHENTICATION"))
	case http.StatusForbidden:
		writeJSON(w, f.Status, scopeBody(corr, scope))
	case http.StatusBadRequest:
		writeJSON(w, f.Status, errorBody(corr, "Property values were not valid: [{\"isValid\":false,\"message\":\"Simulated validation error\",\"error\":\"INVALID_OPTION\",\"name\":\"hs_communication_body\"}]", "VALIDATION_ERROR"))
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// HubSpot's edge answers these with a page, not the JSON envelope.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><h1>%d %s</h1></body></html>", f.Status, http.StatusText(f.Status), f.Status, http.StatusText(f.Status))
	default:
		writeJSON(w, f.Status, errorBody(corr, strings.ToLower(http.StatusText(f.Status)), categoryFor(f.Status)))
	}
}

func categoryFor(status int) string {
	switch status {
	case http.StatusNotFound:
		return "OBJECT_NOT_FOUND"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusLocked:
		return "LOCKED"
	}
	return "INTERNAL_ERROR"
}

func writeRateLimited(w http.ResponseWriter, corr, policy, retryAfter string, l RateLimit) {
	switch policy {
	case PolicySearch:
		// A recorded search 429 carried the daily headers and nothing
		// else: no Retry-After, no secondly headers.
		w.Header().Set("X-HubSpot-RateLimit-Daily", strconv.Itoa(max(l.Daily, 250000)))
	case PolicyTenSecondly:
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
	}
	writeJSON(w, http.StatusTooManyRequests, rateLimitBody(corr, policy))
}

func rateLimitBody(corr, policy string) any {
	switch policy {
	case PolicySearch:
		return map[string]any{"status": "error", "message": "You have reached your secondly limit.", "correlationId": corr, "category": "RATE_LIMITS"}
	case PolicyDaily:
		return map[string]any{"status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
			"correlationId": corr, "policyName": PolicyDaily, "requestId": corr}
	}
	return map[string]any{"status": "error", "message": "You have reached your ten_secondly_rolling limit.", "errorType": "RATE_LIMIT",
		"correlationId": corr, "policyName": PolicyTenSecondly, "requestId": corr}
}

func errorBody(corr, msg, category string) map[string]any {
	return map[string]any{"status": "error", "message": msg, "correlationId": corr, "category": category}
}

func scopeBody(corr, scope string) map[string]any {
	b := errorBody(corr, "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.", "MISSING_SCOPES")
	b["errors"] = []any{map[string]any{"message": "One or more of the following scopes are required.", "context": map[string]any{"requiredScopes": []string{scope}}}}
	b["links"] = map[string]string{"scopes": "https://developers.hubspot.com/scopes"}
	return b
}

func validationError(w http.ResponseWriter, corr, msg string) {
	writeJSON(w, http.StatusBadRequest, errorBody(corr, msg, "VALIDATION_ERROR"))
}

// invalidProps is HubSpot's 400 for property values it refuses.
func invalidProps(w http.ResponseWriter, corr string, errs []map[string]any) {
	detail, _ := json.Marshal(errs)
	validationError(w, corr, "Property values were not valid: "+string(detail))
}

// writeJSON answers with HubSpot's Content-Type, no space before charset.
func writeJSON(w http.ResponseWriter, status int, v any) {
	fakeapi.WriteJSON(w, status, "application/json;charset=utf-8", v)
}

func (s *Server) correlationID() string {
	s.nextCorr++
	return fmt.Sprintf("0195f0c2-0000-7000-8000-%012d", s.nextCorr)
}

func (s *Server) newID() string {
	s.nextID++
	return strconv.FormatInt(s.nextID, 10)
}

// ---- timestamps and values ----

const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// parseTime reads a datetime as HubSpot takes it: epoch milliseconds or
// ISO 8601.
func parseTime(v string) (time.Time, bool) {
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

var datetimeProps = map[string]bool{"createdate": true, "lastmodifieddate": true, "hs_timestamp": true, "hs_lastmodifieddate": true}

// stamp sets the properties HubSpot maintains.
func (s *Server) stamp(p map[string]string, c *contact, modified time.Time) {
	p["hs_object_id"] = c.id
	p["createdate"] = formatTime(c.createdAt)
	p["lastmodifieddate"] = formatTime(modified)
}

func (s *Server) update(c *contact, props map[string]string, modified time.Time) {
	p := copyProps(c.current().props)
	for k, v := range props {
		if v == "" {
			delete(p, k)
		} else {
			p[k] = v
		}
	}
	s.stamp(p, c, modified)
	c.versions = append(c.versions, version{props: p, at: modified, visibleAt: s.now().Add(s.lag)})
}

// ---- contacts ----

type objectInput struct {
	Properties   map[string]any `json:"properties"`
	Associations []struct {
		To struct {
			ID json.RawMessage `json:"id"`
		} `json:"to"`
		Types []struct {
			AssociationCategory string `json:"associationCategory"`
			AssociationTypeID   int    `json:"associationTypeId"`
		} `json:"types"`
	} `json:"associations"`
}

// decodeInput parses a create/update body the way HubSpot does: values
// must be strings, numbers or booleans (sent on as strings).
func decodeInput(w http.ResponseWriter, corr string, body []byte) (*objectInput, map[string]string, bool) {
	var in objectInput
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		validationError(w, corr, "Invalid input JSON on line 1, column 1: "+err.Error())
		return nil, nil, false
	}
	props := map[string]string{}
	for k, v := range in.Properties {
		switch x := v.(type) {
		case string:
			props[k] = x
		case float64:
			props[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			props[k] = strconv.FormatBool(x)
		case nil:
			props[k] = ""
		default:
			validationError(w, corr, fmt.Sprintf("Invalid input JSON: property %q must be a string", k))
			return nil, nil, false
		}
	}
	return &in, props, true
}

func (s *Server) checkContactProps(props map[string]string) []map[string]any {
	var errs []map[string]any
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if readOnlyProps[k] {
			errs = append(errs, map[string]any{"isValid": false, "message": fmt.Sprintf("%s is a read only property; its value cannot be set.", k), "error": "READ_ONLY_VALUE", "name": k})
		} else if !s.contactProps[k] {
			errs = append(errs, map[string]any{"isValid": false, "message": fmt.Sprintf("Property \"%s\" does not exist", k), "error": "PROPERTY_DOESNT_EXIST", "name": k})
		}
	}
	return errs
}

func (s *Server) createContact(w http.ResponseWriter, r *http.Request, body []byte, _ string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	_, props, ok := decodeInput(w, corr, body)
	if !ok {
		return
	}
	s.mu.Lock()
	if errs := s.checkContactProps(props); errs != nil {
		s.mu.Unlock()
		invalidProps(w, corr, errs)
		return
	}
	if email := strings.ToLower(props["email"]); email != "" {
		for _, c := range s.contacts {
			if strings.ToLower(c.current().props["email"]) == email {
				s.mu.Unlock()
				writeJSON(w, http.StatusConflict, errorBody(corr, "Contact already exists. Existing ID: "+c.id, "CONFLICT"))
				return
			}
		}
	}
	now := s.now()
	c := &contact{id: s.newID(), createdAt: now}
	p := map[string]string{}
	for k, v := range props {
		if v != "" {
			p[k] = v
		}
	}
	s.stamp(p, c, now)
	c.versions = []version{{props: p, at: now, visibleAt: now.Add(s.lag)}}
	s.contacts = append(s.contacts, c)
	s.byID[c.id] = c
	out := objectJSON(c.id, p, c.createdAt, now)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) getContact(w http.ResponseWriter, r *http.Request, _ []byte, id string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	s.mu.Lock()
	c, ok := s.byID[id]
	if !ok {
		s.mu.Unlock()
		notFound(w, corr, id)
		return
	}
	v := c.current()
	out := objectJSON(c.id, selectProps(v.props, splitList(r.URL.Query().Get("properties"))), c.createdAt, v.at)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func notFound(w http.ResponseWriter, corr, id string) {
	b := errorBody(corr, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
	b["context"] = map[string][]string{"id": {id}}
	writeJSON(w, http.StatusNotFound, b)
}

func (s *Server) patchContact(w http.ResponseWriter, r *http.Request, body []byte, id string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	_, props, ok := decodeInput(w, corr, body)
	if !ok {
		return
	}
	s.mu.Lock()
	c, found := s.byID[id]
	if !found {
		s.mu.Unlock()
		notFound(w, corr, id)
		return
	}
	if errs := s.checkContactProps(props); errs != nil {
		s.mu.Unlock()
		invalidProps(w, corr, errs)
		return
	}
	s.update(c, props, s.now())
	v := c.current()
	out := objectJSON(c.id, v.props, c.createdAt, v.at)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listContacts(w http.ResponseWriter, r *http.Request, _ []byte, _ string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			validationError(w, corr, "limit must be between 1 and 100")
			return
		}
		limit = n
	}
	after := 0
	s.mu.Lock()
	if v := q.Get("after"); v != "" {
		// List paging is by id: after is the last id seen.
		after, _ = strconv.Atoi(v)
	}
	var results []any
	next := ""
	for _, c := range s.contacts {
		if n, _ := strconv.Atoi(c.id); n <= after {
			continue
		}
		if len(results) == limit {
			next = strconv.Itoa(after)
			break
		}
		v := c.current()
		results = append(results, objectJSON(c.id, selectProps(v.props, splitList(q.Get("properties"))), c.createdAt, v.at))
		after, _ = strconv.Atoi(c.id)
	}
	s.mu.Unlock()
	out := map[string]any{"results": nonNil(results)}
	if next != "" {
		out["paging"] = map[string]any{"next": map[string]string{"after": next, "link": "?after=" + next}}
	}
	writeJSON(w, http.StatusOK, out)
}

func nonNil(a []any) []any {
	if a == nil {
		return []any{}
	}
	return a
}

func splitList(v string) []string {
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// selectProps is what HubSpot returns of a record: the requested
// properties (null when unset) or a default set, plus the ones it always
// sends.
func selectProps(p map[string]string, want []string) map[string]any {
	if len(want) == 0 {
		want = []string{"firstname", "lastname", "email"}
	}
	out := map[string]any{}
	for _, k := range want {
		if v, ok := p[k]; ok {
			out[k] = v
		} else {
			out[k] = nil
		}
	}
	for _, k := range []string{"createdate", "lastmodifieddate", "hs_object_id"} {
		out[k] = p[k]
	}
	return out
}

func objectJSON[P map[string]string | map[string]any](id string, props P, created, updated time.Time) map[string]any {
	return map[string]any{"id": id, "properties": props, "createdAt": formatTime(created), "updatedAt": formatTime(updated), "archived": false}
}

// ---- search ----

type searchFilter struct {
	PropertyName string   `json:"propertyName"`
	Operator     string   `json:"operator"`
	Value        any      `json:"value"`
	Values       []any    `json:"values"`
	HighValue    any      `json:"highValue"`
	valueStrings []string // Value or Values, as strings
}

type searchRequest struct {
	FilterGroups []struct {
		Filters []searchFilter `json:"filters"`
	} `json:"filterGroups"`
	Sorts      []json.RawMessage `json:"sorts"`
	Properties []string          `json:"properties"`
	Limit      *int              `json:"limit"`
	After      json.RawMessage   `json:"after"`
	Query      string            `json:"query"`
}

func anyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (s *Server) search(w http.ResponseWriter, r *http.Request, body []byte, _ string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	var req searchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		validationError(w, corr, "Invalid input JSON on line 1, column 1: "+err.Error())
		return
	}
	// Current docs: up to 5 groups, 6 filters per group, 18 in all.
	total := 0
	for _, g := range req.FilterGroups {
		if len(g.Filters) > 6 {
			validationError(w, corr, "Too many filters in a filter group: the maximum is 6")
			return
		}
		total += len(g.Filters)
	}
	if len(req.FilterGroups) > 5 || total > 18 {
		validationError(w, corr, "Too many filter groups or filters: the maximum is 5 groups and 18 filters")
		return
	}
	for gi := range req.FilterGroups {
		for fi := range req.FilterGroups[gi].Filters {
			f := &req.FilterGroups[gi].Filters[fi]
			switch f.Operator {
			case "EQ", "NEQ", "LT", "LTE", "GT", "GTE":
				f.valueStrings = []string{anyString(f.Value)}
			case "IN", "NOT_IN":
				for _, v := range f.Values {
					f.valueStrings = append(f.valueStrings, anyString(v))
				}
			case "HAS_PROPERTY", "NOT_HAS_PROPERTY":
			default:
				validationError(w, corr, fmt.Sprintf("Unsupported filter operator %q", f.Operator))
				return
			}
		}
	}
	limit := 10
	if req.Limit != nil {
		limit = *req.Limit
	}
	if limit < 0 || limit > maxSearchLimit {
		validationError(w, corr, fmt.Sprintf("limit must be between 0 and %d", maxSearchLimit))
		return
	}
	after := 0
	if len(req.After) > 0 && string(req.After) != "null" {
		var a any
		_ = json.Unmarshal(req.After, &a)
		n, err := strconv.Atoi(anyString(a))
		if err != nil || n < 0 {
			validationError(w, corr, fmt.Sprintf("Invalid after value %s", req.After))
			return
		}
		after = n
	}
	if after >= SearchCap {
		// The search API pages through 10,000 results at most.
		validationError(w, corr, fmt.Sprintf("There was a problem with the request. The maximum number of results that can be paged through is %d.", SearchCap))
		return
	}
	sortProp, desc := "hs_object_id", false
	if len(req.Sorts) > 1 {
		validationError(w, corr, "Only one sort is supported")
		return
	}
	if len(req.Sorts) == 1 {
		var obj struct {
			PropertyName string `json:"propertyName"`
			Direction    string `json:"direction"`
		}
		var str string
		switch {
		case json.Unmarshal(req.Sorts[0], &obj) == nil && obj.PropertyName != "":
			sortProp, desc = obj.PropertyName, obj.Direction == "DESCENDING"
		case json.Unmarshal(req.Sorts[0], &str) == nil && str != "":
			sortProp, desc = strings.TrimPrefix(str, "-"), strings.HasPrefix(str, "-")
		default:
			validationError(w, corr, "Invalid sort")
			return
		}
	}

	s.mu.Lock()
	now := s.now()
	type hit struct {
		c *contact
		v version
	}
	var hits []hit
	for _, c := range s.contacts {
		v, ok := c.searchable(now)
		if !ok || !matches(v.props, &req) {
			continue
		}
		hits = append(hits, hit{c, v})
	}
	s.mu.Unlock()
	sort.SliceStable(hits, func(i, j int) bool {
		a, b := hits[i].v.props[sortProp], hits[j].v.props[sortProp]
		if c := compare(sortProp, a, b); c != 0 {
			return (c < 0) != desc
		}
		ai, _ := strconv.Atoi(hits[i].c.id)
		bi, _ := strconv.Atoi(hits[j].c.id)
		return ai < bi
	})
	out := map[string]any{"total": len(hits)}
	results := []any{}
	for i := after; i < len(hits) && i < after+limit; i++ {
		h := hits[i]
		results = append(results, objectJSON(h.c.id, selectProps(h.v.props, req.Properties), h.c.createdAt, h.v.at))
	}
	out["results"] = results
	if after+limit < len(hits) {
		next := strconv.Itoa(after + limit)
		out["paging"] = map[string]any{"next": map[string]string{"after": next}}
	}
	writeJSON(w, http.StatusOK, out)
}

func matches(p map[string]string, req *searchRequest) bool {
	if len(req.FilterGroups) == 0 {
		return true
	}
	for _, g := range req.FilterGroups {
		all := true
		for i := range g.Filters {
			if !filterMatches(p, &g.Filters[i]) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func filterMatches(p map[string]string, f *searchFilter) bool {
	v, has := p[f.PropertyName]
	switch f.Operator {
	case "HAS_PROPERTY":
		return has
	case "NOT_HAS_PROPERTY":
		return !has
	case "IN":
		for _, want := range f.valueStrings {
			if has && compare(f.PropertyName, v, want) == 0 {
				return true
			}
		}
		return false
	case "NOT_IN":
		for _, want := range f.valueStrings {
			if has && compare(f.PropertyName, v, want) == 0 {
				return false
			}
		}
		return true
	}
	if !has {
		return f.Operator == "NEQ"
	}
	c := compare(f.PropertyName, v, f.valueStrings[0])
	switch f.Operator {
	case "EQ":
		return c == 0
	case "NEQ":
		return c != 0
	case "LT":
		return c < 0
	case "LTE":
		return c <= 0
	case "GT":
		return c > 0
	case "GTE":
		return c >= 0
	}
	return false
}

// compare orders two values of a property: datetimes by instant, numbers
// numerically, anything else as exact strings (phone numbers match only
// in the same format, as at HubSpot).
func compare(prop, a, b string) int {
	if datetimeProps[prop] {
		ta, oka := parseTime(a)
		tb, okb := parseTime(b)
		if oka && okb {
			return ta.Compare(tb)
		}
	}
	if prop == "hs_object_id" {
		fa, erra := strconv.ParseFloat(a, 64)
		fb, errb := strconv.ParseFloat(b, 64)
		if erra == nil && errb == nil {
			switch {
			case fa < fb:
				return -1
			case fa > fb:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(a, b)
}

// ---- engagements ----

var channelTypes = []string{"WHATS_APP", "LINKEDIN_MESSAGE", "SMS"}

var communicationProps = map[string]bool{
	"hs_communication_channel_type": true, "hs_communication_logged_from": true,
	"hs_communication_body": true, "hs_timestamp": true, "hubspot_owner_id": true,
	"hs_attachment_ids": true,
}

var noteProps = map[string]bool{"hs_note_body": true, "hs_timestamp": true, "hubspot_owner_id": true, "hs_attachment_ids": true}

func (s *Server) createCommunication(w http.ResponseWriter, r *http.Request, body []byte, _ string) {
	s.createEngagement(w, body, s.files.communicationProps(), AssocCommunicationToContact, &s.comms, func(p map[string]string) []map[string]any {
		var errs []map[string]any
		if ct := p["hs_communication_channel_type"]; !contains(channelTypes, ct) {
			errs = append(errs, map[string]any{"isValid": false, "message": fmt.Sprintf("%s was not one of the allowed options: [%s]", ct, strings.Join(channelTypes, ", ")), "error": "INVALID_OPTION", "name": "hs_communication_channel_type"})
		}
		if lf := p["hs_communication_logged_from"]; lf != "CRM" {
			errs = append(errs, map[string]any{"isValid": false, "message": fmt.Sprintf("%s was not one of the allowed options: [CRM]", lf), "error": "INVALID_OPTION", "name": "hs_communication_logged_from"})
		}
		return errs
	}, false)
}

func (s *Server) createNote(w http.ResponseWriter, r *http.Request, body []byte, _ string) {
	s.createEngagement(w, body, noteProps, AssocNoteToContact, &s.notes, func(p map[string]string) []map[string]any {
		if len(p["hs_note_body"]) > 65536 {
			return []map[string]any{{"isValid": false, "message": "hs_note_body is longer than 65536 characters", "error": "INVALID_STRING_LENGTH", "name": "hs_note_body"}}
		}
		return nil
	}, true)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Server) createEngagement(w http.ResponseWriter, body []byte, known map[string]bool, assocType int, into *[]*Record,
	check func(map[string]string) []map[string]any, timestampRequired bool) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	in, props, ok := decodeInput(w, corr, body)
	if !ok {
		return
	}
	var errs []map[string]any
	for k := range props {
		if !known[k] {
			errs = append(errs, map[string]any{"isValid": false, "message": fmt.Sprintf("Property \"%s\" does not exist", k), "error": "PROPERTY_DOESNT_EXIST", "name": k})
		}
	}
	errs = append(errs, check(props)...)
	errs = append(errs, s.checkAttachments(props)...)
	ts, hasTS := props["hs_timestamp"]
	switch {
	case hasTS:
		t, ok := parseTime(ts)
		if !ok {
			errs = append(errs, map[string]any{"isValid": false, "message": fmt.Sprintf("%s was not a valid long.", ts), "error": "INVALID_LONG", "name": "hs_timestamp"})
		} else {
			props["hs_timestamp"] = formatTime(t)
		}
	case timestampRequired:
		errs = append(errs, map[string]any{"isValid": false, "message": "hs_timestamp is required", "error": "REQUIRED", "name": "hs_timestamp"})
	}
	if errs != nil {
		sort.Slice(errs, func(i, j int) bool { return fmt.Sprint(errs[i]["name"]) < fmt.Sprint(errs[j]["name"]) })
		invalidProps(w, corr, errs)
		return
	}
	s.mu.Lock()
	var assocs []Association
	for _, a := range in.Associations {
		var idv any
		_ = json.Unmarshal(a.To.ID, &idv)
		to := anyString(idv)
		for _, t := range a.Types {
			if t.AssociationCategory != "HUBSPOT_DEFINED" || t.AssociationTypeID != assocType {
				s.mu.Unlock()
				// [U] the exact wording of HubSpot's answer.
				validationError(w, corr, fmt.Sprintf("Invalid association type: %s %d is not a valid association from this object to a contact (use HUBSPOT_DEFINED %d)", t.AssociationCategory, t.AssociationTypeID, assocType))
				return
			}
			if _, ok := s.byID[to]; !ok {
				s.mu.Unlock()
				// [U] the exact wording of HubSpot's answer.
				validationError(w, corr, fmt.Sprintf("One or more associations are invalid: contact %s does not exist", to))
				return
			}
			assocs = append(assocs, Association{ToID: to, Category: t.AssociationCategory, TypeID: t.AssociationTypeID})
		}
	}
	now := s.now()
	if !hasTS {
		props["hs_timestamp"] = formatTime(now)
	}
	rec := &Record{ID: s.newID(), Properties: props, CreatedAt: now, UpdatedAt: now, Associations: assocs}
	rec.Properties["hs_object_id"] = rec.ID
	rec.Properties["hs_createdate"] = formatTime(now)
	rec.Properties["hs_lastmodifieddate"] = formatTime(now)
	*into = append(*into, rec)
	out := objectJSON(rec.ID, copyProps(rec.Properties), now, now)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}
