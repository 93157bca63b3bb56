// Package bitrix24test is a fake of the Bitrix24 REST API as an inbound
// webhook sees it, for the bitrix24 connector's tests, end-to-end tests,
// the fault-injection suite and the hub's sandbox.
//
// It serves https://{portal}/rest/{user_id}/{webhook_code}/{method}[.json]
// relative to its root (mount it anywhere, e.g. under /sandbox/bitrix24/
// with http.StripPrefix), takes JSON bodies, form bodies and PHP-style
// query strings, and answers with the real envelope ({"result", "total",
// "next", "time"}) and the real error bodies ({"error", "error_description"}).
//
// What it reproduces, after §2 of the project's API reference (apis.md):
//   - auth by the webhook code in the path: a wrong one gets 401
//     NO_AUTH_FOUND;
//   - the leaky bucket: each request adds one, the bucket drains 2 per
//     second, above 50 a request gets 503 QUERY_LIMIT_EXCEEDED with no
//     Retry-After (both numbers settable), on an injectable clock;
//   - crm.duplicate.findbycomm answering an empty array `[]` when nothing
//     matches, and an object {"CONTACT": [ids]} when something does;
//   - ids as integers from add and findbycomm, as strings from list; with
//     SetStringIDs the former come as strings too, as some portals do;
//     SetEmptyObjects answers `{}` where the real API answers `[]`;
//   - batch: at most 50 commands, sequential, halt, $result[...]
//     references, always HTTP 200 with result/result_error/result_total/
//     result_next/result_time, empty sections as `[]`;
//   - crm.contact.list: 50 per page, start/next/total, filters with
//     prefixes (>, >=, <, <=, =, !), ordering, and multi-fields (PHONE)
//     only when selected by name; dates in the portal's time zone
//     (+03:00 unless WithTimezone).
//
// Fault injection: FailNext, Script (also per method, inside batches),
// FailEvery. Records: State/Snapshot (contacts, leads, comments, request
// counts, the highest number of requests seen within one second).
package bitrix24test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

// Defaults of the webhook the fake accepts.
const (
	DefaultUserID = "1"
	DefaultToken  = "sandbox0webhook0code"
)

// Server is a fake Bitrix24 portal. It is safe for concurrent use.
type Server struct {
	mu sync.Mutex

	userID, token string
	now           func() time.Time
	tz            *time.Location
	scopes        []string

	// The leaky bucket: level rises by one per request, drains perSecond
	// per second; a request that would take it above burst is refused.
	perSecond float64
	burst     float64
	level     float64
	levelAt   time.Time

	// Switched while requests are served, so atomic: no lock to take.
	stringIDs    atomic.Bool
	emptyObjects atomic.Bool
	rnd          *rand.Rand

	nextID   int
	lists    map[string][]listOption // user fields of type list (enumeration)
	contacts map[int]*Record
	leads    map[int]*Record
	comments []Comment

	maxRequest int64 // 0: DefaultMaxRequest (files.go)

	faults fakeapi.Faults[Fault]

	requests, rejected int
	recent             []time.Time
	maxPerSecond       int
	maxLevel           float64
	calls              fakeapi.Log[Call]
}

// Record is a contact or a lead.
type Record struct {
	ID int `json:"id"`
	// Fields holds the scalar fields as the portal stores them: NAME,
	// LAST_NAME, TITLE, ASSIGNED_BY_ID, SOURCE_ID, UF_CRM_... .
	Fields   map[string]any `json:"fields"`
	Phones   []Phone        `json:"phones,omitempty"`
	Created  time.Time      `json:"created"`
	Modified time.Time      `json:"modified"`
}

// Phone is one value of the PHONE multi-field.
type Phone struct {
	ID        int    `json:"id"`
	Value     string `json:"value"`
	ValueType string `json:"value_type"`
}

// Comment is a timeline comment.
type Comment struct {
	ID         int       `json:"id"`
	EntityType string    `json:"entity_type"`
	EntityID   int       `json:"entity_id"`
	Text       string    `json:"comment"`
	Created    time.Time `json:"created"`
	// Files are the comment's attachments (files.go).
	Files []CommentFile `json:"files,omitempty"`
}

// Call is one HTTP request the fake answered.
type Call struct {
	Method string    `json:"method"`
	At     time.Time `json:"at"`
	Status int       `json:"status"`
	Error  string    `json:"error,omitempty"`
	// Commands are a batch's methods, in order.
	Commands []string `json:"commands,omitempty"`
}

// Fault is a scripted failure.
type Fault struct {
	// Method, when set, fails the next call of that method, whether it
	// comes alone (with Status, default 400) or inside a batch (as an
	// entry of result_error; the batch itself answers 200). When empty,
	// the next request fails as a whole, before the rate limit.
	Method string `json:"method,omitempty"`
	// Status is the HTTP status; with Error empty the real error of that
	// status is sent (503 QUERY_LIMIT_EXCEEDED, 401 NO_AUTH_FOUND, 403
	// insufficient_scope, 429 OPERATION_TIME_LIMIT, 500
	// INTERNAL_SERVER_ERROR, 404 ERROR_METHOD_NOT_FOUND, 400
	// INVALID_REQUEST; 502 and 504 an HTML page, as a gateway sends).
	Status      int    `json:"status,omitempty"`
	Error       string `json:"error,omitempty"`
	Description string `json:"error_description,omitempty"`
}

// Option configures a Server.
type Option func(*Server)

// WithWebhook sets the user id and webhook code the fake accepts in the
// path (default DefaultUserID, DefaultToken).
func WithWebhook(userID, token string) Option {
	return func(s *Server) { s.userID, s.token = userID, token }
}

// WithClock sets the clock the rate limit, timestamps and DATE_MODIFY use.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithRateLimit sets the leaky bucket: drained perSecond per second,
// refusing above burst. perSecond <= 0 turns the limit off. The default
// is the real non-Enterprise limit, 2 and 50.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(s *Server) { s.perSecond, s.burst = perSecond, float64(burst) }
}

// WithTimezone sets the portal's time zone, in which dates are shown.
func WithTimezone(loc *time.Location) Option { return func(s *Server) { s.tz = loc } }

// WithScopes sets what the `scope` method reports (default crm).
func WithScopes(scopes ...string) Option { return func(s *Server) { s.scopes = scopes } }

// WithRandomForms makes the fake pick, per answer, between the forms the
// real API is known to use: ids as numbers or strings, empty results as
// [] or {}, empty fields as null, "" or false.
func WithRandomForms(seed int64) Option {
	return func(s *Server) { s.rnd = rand.New(rand.NewSource(seed)) }
}

// NewServer returns a fake portal with no records. It is an http.Handler
// and listens nowhere: wrap it in httptest.NewServer or mount it.
func NewServer(opts ...Option) *Server {
	s := &Server{
		userID: DefaultUserID, token: DefaultToken,
		now:       time.Now,
		tz:        time.FixedZone("MSK", 3*60*60),
		scopes:    []string{"crm"},
		perSecond: 2, burst: 50,
		nextID:   1,
		contacts: map[int]*Record{},
		leads:    map[int]*Record{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// WebhookPath is the path of the webhook the fake accepts, ending in "/":
// append it to the server's URL to get a webhook_url.
func (s *Server) WebhookPath() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "/rest/" + s.userID + "/" + s.token + "/"
}

// SetRateLimit changes the leaky bucket (see WithRateLimit).
func (s *Server) SetRateLimit(perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perSecond, s.burst = perSecond, float64(burst)
}

// SetStringIDs makes add and findbycomm answer ids as strings.
func (s *Server) SetStringIDs(on bool) { s.stringIDs.Store(on) }

// SetEmptyObjects makes empty results `{}` instead of the real `[]`.
func (s *Server) SetEmptyObjects(on bool) { s.emptyObjects.Store(on) }

// FailNext makes the next n requests fail with status and its real body.
func (s *Server) FailNext(n int, status int) { s.faults.Repeat(n, Fault{Status: status}) }

// Script queues faults; each is used once, in order.
func (s *Server) Script(faults ...Fault) { s.faults.Push(faults...) }

// FailEvery makes every n-th authenticated request fail with status
// (FailEvery(2, 503): half of them); n <= 0 stops it.
func (s *Server) FailEvery(n int, status int) { s.faults.Every(n, Fault{Status: status}) }

// AddContact stores a contact as if a user had created it and returns its
// id. fields are scalar fields (NAME, UF_CRM_TIER, ...); phones are PHONE
// values.
func (s *Server) AddContact(fields map[string]any, phones ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addRecord(s.contacts, fields, phones)
}

// UpdateContact changes fields of a contact, as a user editing it would:
// DATE_MODIFY becomes the clock's now. A nil value clears a field.
func (s *Server) UpdateContact(id int, fields map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.contacts[id]
	if !ok {
		return fmt.Errorf("no contact %d", id)
	}
	for k, v := range fields {
		if v == nil {
			delete(r.Fields, k)
		} else {
			r.Fields[k] = v
		}
	}
	r.Modified = s.now().Truncate(time.Second)
	return nil
}

// listOption is one value of a list user field.
type listOption struct{ ID, Value string }

// AddListField declares a contact user field of type list, as a user
// creating "Tier" with options Gold, Silver would; contacts then hold the
// option's id in that field, and crm.contact.fields lists the options.
// It returns the ids by value.
func (s *Server) AddListField(field string, values ...string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lists == nil {
		s.lists = map[string][]listOption{}
	}
	ids := map[string]string{}
	for _, v := range values {
		id := fmt.Sprint(s.newID())
		s.lists[field] = append(s.lists[field], listOption{ID: id, Value: v})
		ids[v] = id
	}
	return ids
}

// DeleteContact removes a contact (its comments stay, as orphans).
func (s *Server) DeleteContact(id int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.contacts, id)
}

// State is everything the fake holds and has seen.
type State struct {
	Contacts []Record  `json:"contacts"`
	Leads    []Record  `json:"leads"`
	Comments []Comment `json:"comments"`
	// Requests counts authenticated requests, Rejected those refused by
	// the rate limit or a scripted 503.
	Requests int `json:"requests"`
	Rejected int `json:"rejected"`
	// MaxPerSecond is the most requests seen within any one second.
	MaxPerSecond int `json:"max_per_second"`
	// MaxLevel is the highest the leaky bucket rose.
	MaxLevel  float64 `json:"max_bucket_level"`
	RateLimit struct {
		PerSecond float64 `json:"per_second"`
		Burst     float64 `json:"burst"`
	} `json:"rate_limit"`
}

// State returns a copy of what the fake holds.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Contacts: copyRecords(s.contacts), Leads: copyRecords(s.leads),
		Comments: append([]Comment{}, s.comments...),
		Requests: s.requests, Rejected: s.rejected,
		MaxPerSecond: s.maxPerSecond, MaxLevel: s.maxLevel,
	}
	st.RateLimit.PerSecond, st.RateLimit.Burst = s.perSecond, s.burst
	return st
}

// Snapshot is State for GET /sandbox.
func (s *Server) Snapshot() any { return s.State() }

// Contacts returns the contacts, by id.
func (s *Server) Contacts() []Record { return s.State().Contacts }

// Leads returns the leads, by id.
func (s *Server) Leads() []Record { return s.State().Leads }

// Comments returns the timeline comments in the order they were added.
func (s *Server) Comments() []Comment { return s.State().Comments }

// MaxPerSecond is the most requests the fake saw within one second.
func (s *Server) MaxPerSecond() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxPerSecond
}

// Calls returns the requests answered so far.
func (s *Server) Calls() []Call { return s.calls.All() }

func copyRecords(m map[int]*Record) []Record {
	out := make([]Record, 0, len(m))
	for _, r := range m {
		c := *r
		c.Fields = make(map[string]any, len(r.Fields))
		for k, v := range r.Fields {
			c.Fields[k] = v
		}
		c.Phones = append([]Phone(nil), r.Phones...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Server) addRecord(m map[int]*Record, fields map[string]any, phones []string) int {
	now := s.now().Truncate(time.Second)
	r := &Record{ID: s.newID(), Fields: map[string]any{}, Created: now, Modified: now}
	for k, v := range fields {
		r.Fields[k] = v
	}
	if _, ok := r.Fields["ASSIGNED_BY_ID"]; !ok {
		r.Fields["ASSIGNED_BY_ID"] = s.userID
	}
	for _, p := range phones {
		r.Phones = append(r.Phones, Phone{ID: s.newID(), Value: p, ValueType: "WORK"})
	}
	m[r.ID] = r
	return r.ID
}

func (s *Server) newID() int {
	id := s.nextID
	s.nextID++
	return id
}

// apiError is a Bitrix24 error answer.
type apiError struct {
	status      int
	code        string
	description string
	html        bool // a gateway's HTML page instead of JSON
}

func (e *apiError) body() []byte {
	if e.html {
		return []byte(fmt.Sprintf("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
			e.status, http.StatusText(e.status), e.status, http.StatusText(e.status)))
	}
	b, _ := json.Marshal(map[string]string{"error": e.code, "error_description": e.description})
	return b
}

// canonicalErrors are the real error bodies statuses are sent with; 502
// and 504 come from the gateway as HTML, any other status is Bitrix24's
// INTERNAL_SERVER_ERROR.
var canonicalErrors = map[int][2]string{
	503: {"QUERY_LIMIT_EXCEEDED", "Too many requests"},
	401: {"NO_AUTH_FOUND", "Wrong authorization data"},
	403: {"insufficient_scope", "The request requires higher privileges than provided by the webhook token"},
	429: {"OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."},
	404: {"ERROR_METHOD_NOT_FOUND", "Method not found!"},
	400: {"INVALID_REQUEST", "Https required."},
}

// canonical returns the real error a status is sent with.
func canonical(status int) *apiError {
	if status == http.StatusBadGateway || status == http.StatusGatewayTimeout {
		return &apiError{status: status, html: true}
	}
	e, ok := canonicalErrors[status]
	if !ok {
		e = [2]string{"INTERNAL_SERVER_ERROR", "Internal server error"}
	}
	return &apiError{status: status, code: e[0], description: e[1]}
}

func (f Fault) apiError(defaultStatus int) *apiError {
	status := f.Status
	if status == 0 {
		status = defaultStatus
	}
	if f.Error == "" && f.Description == "" {
		return canonical(status)
	}
	return &apiError{status: status, code: f.Error, description: f.Description}
}

// ServeHTTP answers one REST call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.now()

	method, ok := s.parsePath(r.URL.Path)
	call := Call{Method: method, At: start}
	respond := func(status int, body []byte, contentType string) {
		call.Status = status
		s.calls.Add(call)
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}
	fail := func(e *apiError) {
		call.Error = e.code
		ct := "application/json; charset=utf-8"
		if e.html {
			ct = "text/html"
		}
		respond(e.status, e.body(), ct)
	}
	if !ok {
		fail(&apiError{status: 401, code: "NO_AUTH_FOUND", description: "Wrong authorization data"})
		return
	}

	s.requests++
	s.observe(start)

	if f, ok := s.faults.Next(func(f Fault) bool { return f.Method == "" }); ok {
		e := f.apiError(500)
		if e.status == 503 {
			s.rejected++
		}
		fail(e)
		return
	}
	if !s.admit(start) {
		s.rejected++
		fail(canonical(503))
		return
	}

	params, err := s.readParams(r)
	if errors.Is(err, errBodyTooLarge) {
		fail(&apiError{status: http.StatusRequestEntityTooLarge, html: true})
		return
	}
	if err != nil {
		fail(&apiError{status: 400, code: "", description: err.Error()})
		return
	}

	var out response
	if method == "batch" {
		out, call.Commands = s.batch(params, start)
	} else {
		var e *apiError
		out, e = s.dispatch(method, params)
		if e != nil {
			fail(e)
			return
		}
	}
	env := newObject()
	env.set("result", out.result)
	if out.total != nil {
		env.set("total", *out.total)
	}
	if out.next != nil {
		env.set("next", *out.next)
	}
	env.set("time", s.timeInfo(start))
	body, err := json.Marshal(env)
	if err != nil {
		fail(&apiError{status: 500, code: "INTERNAL_SERVER_ERROR", description: err.Error()})
		return
	}
	respond(http.StatusOK, body, "application/json; charset=utf-8")
}

// parsePath checks /rest/{user_id}/{code}/{method}[.json] and returns the
// method.
func (s *Server) parsePath(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "/rest/")
	if !ok {
		return "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] != s.userID || parts[1] != s.token || parts[2] == "" {
		return strings.TrimSuffix(parts[len(parts)-1], ".json"), false
	}
	return strings.ToLower(strings.TrimSuffix(parts[2], ".json")), true
}

// observe records a request's arrival for MaxPerSecond.
func (s *Server) observe(at time.Time) {
	cut := at.Add(-time.Second)
	i := 0
	for i < len(s.recent) && !s.recent[i].After(cut) {
		i++
	}
	s.recent = append(s.recent[i:], at)
	if len(s.recent) > s.maxPerSecond {
		s.maxPerSecond = len(s.recent)
	}
}

// admit runs the leaky bucket.
func (s *Server) admit(at time.Time) bool {
	if s.perSecond <= 0 {
		return true
	}
	if !s.levelAt.IsZero() && at.After(s.levelAt) {
		s.level -= at.Sub(s.levelAt).Seconds() * s.perSecond
		if s.level < 0 {
			s.level = 0
		}
	}
	if at.After(s.levelAt) {
		s.levelAt = at
	}
	if s.level+1 > s.burst {
		return false
	}
	s.level++
	if s.level > s.maxLevel {
		s.maxLevel = s.level
	}
	return true
}

func (s *Server) readParams(r *http.Request) (*object, error) {
	body, err := s.readBody(r.Body)
	if err != nil {
		return nil, err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return parsePHPQuery(r.URL.RawQuery)
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || strings.HasPrefix(strings.TrimSpace(string(body)), "{") {
		v, err := decodeJSON(body)
		if err != nil {
			return nil, fmt.Errorf("Invalid JSON: %v", err)
		}
		o, ok := v.(*object)
		if !ok {
			return newObject(), nil
		}
		return o, nil
	}
	return parsePHPQuery(string(body))
}

func (s *Server) timeInfo(start time.Time) map[string]any {
	f := float64(start.UnixNano()) / 1e9
	return map[string]any{
		"start": f, "finish": f + 0.012, "duration": 0.012, "processing": 0.004,
		"date_start":         start.In(s.tz).Format(time.RFC3339),
		"date_finish":        start.In(s.tz).Format(time.RFC3339),
		"operating_reset_at": start.Unix() + 600,
		"operating":          0,
	}
}

// id renders an id as this answer should show it.
func (s *Server) id(n int) any {
	str := s.stringIDs.Load()
	if s.rnd != nil {
		str = s.rnd.Intn(2) == 0
	}
	if str {
		return fmt.Sprint(n)
	}
	return n
}

// empty is an empty result as this answer should show it.
func (s *Server) empty() any {
	obj := s.emptyObjects.Load()
	if s.rnd != nil {
		obj = s.rnd.Intn(2) == 0
	}
	if obj {
		return newObject()
	}
	return []any{}
}

// emptyField is an unset field's value.
func (s *Server) emptyField() any {
	if s.rnd == nil {
		return nil
	}
	return []any{nil, "", false}[s.rnd.Intn(3)]
}
