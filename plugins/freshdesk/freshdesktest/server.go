// Package freshdesktest is a fake of the Freshdesk API v2 for tests of the
// freshdesk connector, end-to-end tests and the sandbox. It keeps contacts,
// tickets and their conversations in memory and answers the way the real
// API does, as far as the reference (shared/reference/apis.md §3.2) and
// Freshdesk's own open-sourced helpkit code tell:
//
//   - Basic auth with the API key as the user name (the password is
//     ignored; clients send "X"); anything else is a 401 with
//     {"code":"invalid_credentials","message":"You have to be logged in to
//     perform this action."}.
//   - Lists (GET /api/v2/contacts?phone=, ?mobile=, GET /api/v2/tickets,
//     GET /api/v2/tickets/{id}/conversations) answer a bare JSON array,
//     not an envelope.
//   - Validation errors are 400 {"description":"Validation failed",
//     "errors":[{"field","message","code"}]}; a contact whose phone,
//     mobile, email or unique_external_id is taken is a 409 with code
//     duplicate_value and additional_info.user_id naming the holder.
//   - A per-minute rate limit shared by every call (invalid ones too):
//     X-RateLimit-Total, X-RateLimit-Remaining and
//     X-RateLimit-Used-CurrentRequest on every answer; over the limit a 429
//     with Retry-After (seconds) and {"message": "..."}.
//   - Ticket statuses 2 open, 3 pending, 4 resolved, 5 closed; priorities
//     1–4; GET /api/v2/tickets/{id}?include=stats adds resolved_at and
//     closed_at and costs one more credit.
//
// It is an http.Handler serving paths relative to its root, so that the
// sandbox can mount it under /sandbox/freshdesk/ with http.StripPrefix;
// tests serve it with httptest.NewServer.
package freshdesktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

// DefaultAPIKey is the key a Server accepts unless WithAPIKey says
// otherwise; the sandbox configures the connector with it.
const DefaultAPIKey = "sandbox-freshdesk-api-key"

// DefaultRateLimit is the calls per minute a Server allows unless told
// otherwise; about a mid-tier Freshdesk plan.
const DefaultRateLimit = 200

// maxRequests bounds the call log Requests and Snapshot show: a long
// sandbox session keeps the latest calls only.
const maxRequests = 10000

// AgentID and AgentName are the agent who owns the API key, and who is
// the author of agent replies made with AgentReply.
const (
	AgentID   int64 = 1
	AgentName       = "Sandbox Agent"
)

// Ticket statuses.
const (
	StatusOpen     = 2
	StatusPending  = 3
	StatusResolved = 4
	StatusClosed   = 5
)

// Conversation sources, as conversations carry them: 0 a reply, 2 a note.
const (
	SourceReply = 0
	SourceNote  = 2
)

// Contact is a Freshdesk contact, in the API's shape.
type Contact struct {
	ID               int64          `json:"id"`
	Name             string         `json:"name"`
	Email            *string        `json:"email"`
	Phone            *string        `json:"phone"`
	Mobile           *string        `json:"mobile"`
	UniqueExternalID *string        `json:"unique_external_id"`
	TwitterID        *string        `json:"twitter_id"`
	Active           bool           `json:"active"`
	Address          *string        `json:"address"`
	CompanyID        *int64         `json:"company_id"`
	Description      *string        `json:"description"`
	JobTitle         *string        `json:"job_title"`
	Language         string         `json:"language"`
	TimeZone         string         `json:"time_zone"`
	OtherEmails      []string       `json:"other_emails"`
	Tags             []string       `json:"tags"`
	CustomFields     map[string]any `json:"custom_fields"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
}

// Ticket is a Freshdesk ticket, in the API's shape. Stats is sent only
// for ?include=stats.
type Ticket struct {
	ID              int64          `json:"id"`
	Subject         string         `json:"subject"`
	Description     string         `json:"description"`
	DescriptionText string         `json:"description_text"`
	Status          int            `json:"status"`
	Priority        int            `json:"priority"`
	Source          int            `json:"source"`
	RequesterID     int64          `json:"requester_id"`
	ResponderID     *int64         `json:"responder_id"`
	GroupID         *int64         `json:"group_id"`
	CompanyID       *int64         `json:"company_id"`
	Type            *string        `json:"type"`
	Tags            []string       `json:"tags"`
	CCEmails        []string       `json:"cc_emails"`
	FwdEmails       []string       `json:"fwd_emails"`
	ReplyCCEmails   []string       `json:"reply_cc_emails"`
	ToEmails        []string       `json:"to_emails"`
	Spam            bool           `json:"spam"`
	IsEscalated     bool           `json:"is_escalated"`
	FrEscalated     bool           `json:"fr_escalated"`
	DueBy           time.Time      `json:"due_by"`
	FrDueBy         time.Time      `json:"fr_due_by"`
	CustomFields    map[string]any `json:"custom_fields"`
	Attachments     []any          `json:"attachments"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	Stats           *Stats         `json:"stats,omitempty"`
}

// Stats is a ticket's ?include=stats block.
type Stats struct {
	AgentRespondedAt     *time.Time `json:"agent_responded_at"`
	RequesterRespondedAt *time.Time `json:"requester_responded_at"`
	FirstRespondedAt     *time.Time `json:"first_responded_at"`
	StatusUpdatedAt      *time.Time `json:"status_updated_at"`
	ReopenedAt           *time.Time `json:"reopened_at"`
	ResolvedAt           *time.Time `json:"resolved_at"`
	ClosedAt             *time.Time `json:"closed_at"`
	PendingSince         *time.Time `json:"pending_since"`
}

// Conversation is a reply or a note on a ticket, in the API's shape.
type Conversation struct {
	ID           int64     `json:"id"`
	Body         string    `json:"body"`
	BodyText     string    `json:"body_text"`
	Incoming     bool      `json:"incoming"`
	Private      bool      `json:"private"`
	UserID       int64     `json:"user_id"`
	SupportEmail *string   `json:"support_email"`
	Source       int       `json:"source"`
	TicketID     int64     `json:"ticket_id"`
	ToEmails     []string  `json:"to_emails"`
	FromEmail    *string   `json:"from_email"`
	CCEmails     []string  `json:"cc_emails"`
	BCCEmails    []string  `json:"bcc_emails"`
	Attachments  []any     `json:"attachments"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// TicketRecord is a ticket with its conversations, as Snapshot shows it.
type TicketRecord struct {
	Ticket
	Conversations []Conversation `json:"conversations"`
}

// Fault is an answer injected in place of the next API calls' own.
type Fault struct {
	Status int `json:"status"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string `json:"retry_after,omitempty"`
	// Body is sent as is; empty means the real API's body for Status.
	Body string `json:"body,omitempty"`
}

// Request is one call the Server answered.
type Request struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	Status int       `json:"status"`
	At     time.Time `json:"at"`
}

// Server is the fake Freshdesk. It is safe for concurrent use.
type Server struct {
	mux *http.ServeMux

	mu         sync.Mutex
	apiKey     string
	clock      fakeapi.Clock
	limit      int // calls per minute; 0: unlimited
	window     time.Time
	used       int
	maxUsed    int
	faults     fakeapi.Faults[Fault]
	groups     map[int64]bool
	contacts   []*Contact
	tickets    []*ticket
	requests   fakeapi.Log[Request]
	nextID     map[string]int64
	unsafeJSON bool

	files     *fileStore // attachments.go
	downloads []Download
}

type ticket struct {
	Ticket
	stats         Stats
	conversations []Conversation
}

// Option configures a Server.
type Option func(*Server)

// WithAPIKey sets the API key the Server accepts.
func WithAPIKey(key string) Option { return func(s *Server) { s.apiKey = key } }

// WithClock sets the Server's clock (timestamps, the rate-limit window).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.clock.Set(now) } }

// WithRateLimit sets the calls allowed per minute; 0 means unlimited.
func WithRateLimit(perMinute int) Option { return func(s *Server) { s.limit = perMinute } }

// WithGroups makes the Server know these group ids; a ticket naming any
// other group_id is refused, as the real API refuses it.
func WithGroups(ids ...int64) Option {
	return func(s *Server) {
		for _, id := range ids {
			s.groups[id] = true
		}
	}
}

// NewServer returns an empty fake Freshdesk account. It does not listen:
// serve it with httptest.NewServer or mount it in a mux.
func NewServer(opts ...Option) *Server {
	s := &Server{
		apiKey:   DefaultAPIKey,
		limit:    DefaultRateLimit,
		groups:   map[int64]bool{},
		nextID:   map[string]int64{"contact": 1000, "ticket": 0, "conversation": 5000, "attachment": 43000000},
		requests: fakeapi.Log[Request]{Max: maxRequests},
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/contacts", s.listContacts)
	mux.HandleFunc("POST /api/v2/contacts", s.createContact)
	mux.HandleFunc("GET /api/v2/contacts/{id}", s.showContact)
	mux.HandleFunc("GET /api/v2/tickets", s.listTickets)
	mux.HandleFunc("POST /api/v2/tickets", s.createTicket)
	mux.HandleFunc("GET /api/v2/tickets/{id}", s.onTicket(s.showTicket))
	mux.HandleFunc("PUT /api/v2/tickets/{id}", s.updateTicket)
	mux.HandleFunc("POST /api/v2/tickets/{id}/notes", s.createNote)
	mux.HandleFunc("POST /api/v2/tickets/{id}/reply", s.createReply)
	mux.HandleFunc("GET /api/v2/tickets/{id}/conversations", s.onTicket(s.listConversations))
	s.mux = mux
	return s
}

// SetClock replaces the Server's clock.
func (s *Server) SetClock(now func() time.Time) { s.clock.Set(now) }

// SetRateLimit sets the calls allowed per minute (0: unlimited) and starts
// a new window.
func (s *Server) SetRateLimit(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.used, s.window = perMinute, 0, time.Time{}
}

// FailNext answers the next n API calls with status and the real API's
// body for it (a 429 with Retry-After: 60).
func (s *Server) FailNext(n, status int) {
	f := Fault{Status: status}
	if status == http.StatusTooManyRequests {
		f.RetryAfter = "60"
	}
	s.Inject(n, f)
}

// Inject answers the next n API calls with f.
func (s *Server) Inject(n int, f Fault) { s.faults.Repeat(n, f) }

// SetUnescapedWebhooks makes AutomationWebhook insert placeholder values
// into the JSON body without escaping them, which breaks the JSON as soon
// as a reply contains a double quote: whether Freshdesk escapes them is
// not documented, and a receiver must survive either.
func (s *Server) SetUnescapedWebhooks(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsafeJSON = on
}

// ServeHTTP answers one API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveFile(w, r) {
		return
	}
	rec := &fakeapi.Recorder{ResponseWriter: w}
	s.serve(rec, r)
	s.requests.Add(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.Status, At: s.clock.Now()})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/api/v2/") {
		writeJSON(w, http.StatusNotFound, map[string]string{"code": "not_found", "message": "This is the Freshdesk sandbox: the API is under /api/v2/"})
		return
	}
	if f, ok := s.faults.Next(nil); ok {
		writeFault(w, f)
		return
	}
	s.mu.Lock()
	// The throttle runs before authentication, so invalid calls use up
	// the limit too, as Freshdesk documents.
	cost := 1
	if strings.Contains(r.URL.Query().Get("include"), "stats") {
		cost = 2
	}
	if s.limit > 0 {
		now := s.clock.Now()
		if s.window.IsZero() || now.Sub(s.window) >= time.Minute {
			s.window, s.used = now, 0
		}
		if s.used+cost > s.limit {
			wait := s.window.Add(time.Minute).Sub(now)
			secs := int((wait + time.Second - 1) / time.Second)
			s.mu.Unlock()
			w.Header().Set("X-RateLimit-Total", strconv.Itoa(s.limit))
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			// The body helpkit's ApiThrottler sends.
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "You have exceeded the limit of requests per hour"})
			return
		}
		s.used += cost
		s.maxUsed = max(s.maxUsed, s.used)
		w.Header().Set("X-RateLimit-Total", strconv.Itoa(s.limit))
		w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(s.limit-s.used))
		w.Header().Set("X-RateLimit-Used-CurrentRequest", strconv.Itoa(cost))
	}
	key := s.apiKey
	s.fs().base = requestBase(r)
	if h := s.fs().hold; h != nil && isMultipart(r) {
		r.Body = &heldBody{ReadCloser: r.Body, h: h}
	}
	s.mu.Unlock()

	if !authorized(r, key) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"code": "invalid_credentials", "message": "You have to be logged in to perform this action."})
		return
	}
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") && !isMultipart(r) {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"code": "invalid_content_type", "message": "Content-Type header should have application/json"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

func authorized(r *http.Request, key string) bool {
	user, _, ok := r.BasicAuth()
	return ok && key != "" && user == key
}

func writeFault(w http.ResponseWriter, f Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	body := f.Body
	if body == "" {
		switch f.Status {
		case http.StatusUnauthorized:
			body = `{"code":"invalid_credentials","message":"You have to be logged in to perform this action."}`
		case http.StatusForbidden:
			body = `{"code":"access_denied","message":"You are not authorized to perform this action."}`
		case http.StatusBadRequest:
			body = `{"description":"Validation failed","errors":[{"field":"requester_id","message":"There is no contact matching the given requester_id","code":"invalid_value"}]}`
		case http.StatusNotFound:
			body = ""
		case http.StatusTooManyRequests:
			body = `{"message":"You have exceeded the limit of requests per hour"}`
		default:
			body = `{"code":"internal_error","message":"We're sorry, but something went wrong."}`
		}
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(f.Status)
	io.WriteString(w, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	fakeapi.WriteJSON(w, status, fakeapi.ContentTypeJSON, v)
}

// fieldError is one entry of a validation error's errors array.
type fieldError struct {
	Field          string         `json:"field"`
	Message        string         `json:"message"`
	Code           string         `json:"code"`
	AdditionalInfo map[string]any `json:"additional_info,omitempty"`
}

func validation(w http.ResponseWriter, status int, errs ...fieldError) {
	writeJSON(w, status, map[string]any{"description": "Validation failed", "errors": errs})
}

// decodeBody reads a JSON object, answering the real API's errors for a
// body that is not one or that has fields the endpoint does not take.
func decodeBody(w http.ResponseWriter, r *http.Request, allowed ...string) (map[string]any, bool) {
	if isMultipart(r) {
		return decodeMultipart(w, r, allowed...)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid json format"})
		return nil, false
	}
	var body map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil || body == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"code": "invalid_json", "message": "Request body has invalid json format"})
		return nil, false
	}
	ok := map[string]bool{}
	for _, f := range allowed {
		ok[f] = true
	}
	var errs []fieldError
	for k := range body {
		if !ok[k] {
			errs = append(errs, fieldError{Field: k, Message: "Unexpected/invalid field in request", Code: "invalid_field"})
		}
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
		validation(w, http.StatusBadRequest, errs...)
		return nil, false
	}
	return body, true
}

func str(body map[string]any, k string) (string, bool, *fieldError) {
	v, ok := body[k]
	if !ok || v == nil {
		return "", false, nil
	}
	if f, ok := v.(formString); ok {
		return string(f), true, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", true, &fieldError{Field: k, Message: "Value set is of type " + jsonType(v) + ".It should be a/an String", Code: "datatype_mismatch"}
	}
	return s, true, nil
}

func integer(body map[string]any, k string) (int64, bool, *fieldError) {
	v, ok := body[k]
	if !ok || v == nil {
		return 0, false, nil
	}
	if f, ok := v.(formString); ok {
		if i, err := strconv.ParseInt(string(f), 10, 64); err == nil {
			return i, true, nil
		}
	}
	n, isNum := v.(json.Number)
	if isNum {
		if i, err := n.Int64(); err == nil {
			return i, true, nil
		}
	}
	return 0, true, &fieldError{Field: k, Message: "Value set is of type " + jsonType(v) + ".It should be a/an Integer", Code: "datatype_mismatch"}
}

func boolean(body map[string]any, k string) (bool, bool, *fieldError) {
	v, ok := body[k]
	if !ok || v == nil {
		return false, false, nil
	}
	if f, ok := v.(formString); ok && (f == "true" || f == "false") {
		return f == "true", true, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, true, &fieldError{Field: k, Message: "Value set is of type " + jsonType(v) + ".It should be a/an Boolean", Code: "datatype_mismatch"}
	}
	return b, true, nil
}

func stringList(body map[string]any, k string) ([]string, bool, *fieldError) {
	v, ok := body[k]
	if !ok || v == nil {
		return nil, false, nil
	}
	arr, isArr := v.([]any)
	bad := &fieldError{Field: k, Message: "Value set is of type " + jsonType(v) + ".It should be a/an Array", Code: "datatype_mismatch"}
	if !isArr {
		return nil, true, bad
	}
	out := []string{}
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, true, bad
		}
		out = append(out, s)
	}
	return out, true, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case string, formString:
		return "String"
	case json.Number:
		return "Integer"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "key/value pair"
	}
	return "Null"
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		w.WriteHeader(http.StatusNotFound)
		return 0, false
	}
	return id, true
}

func (s *Server) id(kind string) int64 {
	s.nextID[kind]++
	return s.nextID[kind]
}

func ptr[T any](v T) *T { return &v }

// contactField names the identity fields of a contact, each unique in the
// account.
var contactFields = []string{"email", "phone", "mobile", "unique_external_id"}

func (c *Contact) field(name string) *string {
	switch name {
	case "email":
		return c.Email
	case "phone":
		return c.Phone
	case "mobile":
		return c.Mobile
	case "unique_external_id":
		return c.UniqueExternalID
	}
	return nil
}

func (s *Server) listContacts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Contact{}
	for _, c := range s.contacts {
		match := true
		for _, f := range contactFields {
			if want := q.Get(f); want != "" {
				v := c.field(f)
				match = match && v != nil && strings.EqualFold(*v, want)
			}
		}
		if match {
			out = append(out, *c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) showContact(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.contact(id); c != nil {
		writeJSON(w, http.StatusOK, c)
		return
	}
	w.WriteHeader(http.StatusNotFound)
}

func (s *Server) contact(id int64) *Contact {
	for _, c := range s.contacts {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (s *Server) createContact(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r, "name", "email", "phone", "mobile", "unique_external_id", "twitter_id",
		"address", "description", "job_title", "language", "time_zone", "tags", "custom_fields", "company_id", "other_emails")
	if !ok {
		return
	}
	var errs []fieldError
	name, hasName, e := str(body, "name")
	if e != nil {
		errs = append(errs, *e)
	} else if !hasName || strings.TrimSpace(name) == "" {
		errs = append(errs, fieldError{Field: "name", Message: "It should be a/an String", Code: "missing_field"})
	}
	c := &Contact{Name: name, Language: "en", TimeZone: "Eastern Time (US & Canada)", OtherEmails: []string{}, Tags: []string{}, CustomFields: map[string]any{}}
	identities := 0
	for _, f := range contactFields {
		v, has, e := str(body, f)
		if e != nil {
			errs = append(errs, *e)
			continue
		}
		if has && v != "" {
			identities++
			switch f {
			case "email":
				c.Email = ptr(v)
			case "phone":
				c.Phone = ptr(v)
			case "mobile":
				c.Mobile = ptr(v)
			case "unique_external_id":
				c.UniqueExternalID = ptr(v)
			}
		}
	}
	if identities == 0 && len(errs) == 0 {
		errs = append(errs, fieldError{Field: "requester_id", Message: "Please fill at least 1 of email, mobile, phone, twitter_id, unique_external_id fields", Code: "missing_field"})
	}
	if tags, has, e := stringList(body, "tags"); e != nil {
		errs = append(errs, *e)
	} else if has {
		c.Tags = tags
	}
	if len(errs) > 0 {
		validation(w, http.StatusBadRequest, errs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range contactFields {
		v := c.field(f)
		if v == nil {
			continue
		}
		for _, other := range s.contacts {
			if o := other.field(f); o != nil && strings.EqualFold(*o, *v) {
				validation(w, http.StatusConflict, fieldError{Field: f, Message: "It should be a unique value", Code: "duplicate_value",
					AdditionalInfo: map[string]any{"user_id": other.ID}})
				return
			}
		}
	}
	now := s.clock.Now().UTC()
	c.ID, c.CreatedAt, c.UpdatedAt = s.id("contact"), now, now
	s.contacts = append(s.contacts, c)
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) ticket(id int64) *ticket {
	for _, t := range s.tickets {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func (s *Server) listTickets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var requester int64
	if v := q.Get("requester_id"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			validation(w, http.StatusBadRequest, fieldError{Field: "requester_id", Message: "It should be a/an Positive Integer", Code: "invalid_value"})
			return
		}
		requester = n
	}
	perPage := 30
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			validation(w, http.StatusBadRequest, fieldError{Field: "per_page", Message: "It should be a Positive Integer less than or equal to 100", Code: "invalid_value"})
			return
		}
		perPage = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Without updated_since the list holds the last 30 days only.
	since := s.clock.Now().Add(-30 * 24 * time.Hour)
	out := []Ticket{}
	for _, t := range s.tickets {
		if (requester == 0 || t.RequesterID == requester) && t.CreatedAt.After(since) {
			out = append(out, t.Ticket)
		}
	}
	asc := q.Get("order_type") == "asc"
	sort.SliceStable(out, func(i, j int) bool {
		if asc {
			return out[i].CreatedAt.Before(out[j].CreatedAt) || out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID
		}
		return out[i].CreatedAt.After(out[j].CreatedAt) || out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID > out[j].ID
	})
	if len(out) > perPage {
		out = out[:perPage]
	}
	writeJSON(w, http.StatusOK, out)
}

var validStatus = map[int64]bool{2: true, 3: true, 4: true, 5: true}

// validSource lists the ticket sources the API takes on create.
var validSource = map[int64]bool{1: true, 2: true, 3: true, 5: true, 6: true, 7: true, 9: true, 11: true, 10: true}

func (s *Server) createTicket(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r, "subject", "description", "status", "priority", "source", "requester_id", "email", "phone",
		"name", "tags", "group_id", "responder_id", "type", "custom_fields", "cc_emails", "due_by", "fr_due_by", "company_id", "unique_external_id", "attachments")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()
	t := &ticket{Ticket: Ticket{Status: StatusOpen, Priority: 1, Source: 2, Tags: []string{}, CCEmails: []string{}, FwdEmails: []string{},
		ReplyCCEmails: []string{}, CustomFields: map[string]any{}, Attachments: []any{}, CreatedAt: now, UpdatedAt: now,
		DueBy: now.Add(72 * time.Hour), FrDueBy: now.Add(24 * time.Hour)}}
	var errs []fieldError
	add := func(e *fieldError) {
		if e != nil {
			errs = append(errs, *e)
		}
	}
	subject, has, e := str(body, "subject")
	add(e)
	if e == nil && (!has || subject == "") {
		errs = append(errs, fieldError{Field: "subject", Message: "It should be a/an String", Code: "missing_field"})
	}
	desc, has, e := str(body, "description")
	add(e)
	if e == nil && (!has || desc == "") {
		errs = append(errs, fieldError{Field: "description", Message: "It should be a/an String", Code: "missing_field"})
	}
	t.Subject, t.Description, t.DescriptionText = subject, desc, textOf(desc)
	for _, f := range []struct {
		name  string
		valid func(int64) bool
		msg   string
		set   func(int64)
	}{
		{"status", func(v int64) bool { return validStatus[v] }, "It should be one of these values: '2,3,4,5'", func(v int64) { t.Status = int(v) }},
		{"priority", func(v int64) bool { return v >= 1 && v <= 4 }, "It should be one of these values: '1,2,3,4'", func(v int64) { t.Priority = int(v) }},
		{"source", func(v int64) bool { return validSource[v] }, "It should be one of these values: '1,2,3,5,6,7,9,11,10'", func(v int64) { t.Source = int(v) }},
	} {
		v, has, e := integer(body, f.name)
		add(e)
		if has && e == nil {
			if !f.valid(v) {
				errs = append(errs, fieldError{Field: f.name, Message: f.msg, Code: "invalid_value"})
			} else {
				f.set(v)
			}
		}
	}
	if tags, has, e := stringList(body, "tags"); e != nil {
		add(e)
	} else if has {
		t.Tags = tags
	}
	if g, has, e := integer(body, "group_id"); e != nil {
		add(e)
	} else if has {
		if !s.groups[g] {
			errs = append(errs, fieldError{Field: "group_id", Message: "There is no group matching the given group_id", Code: "invalid_value"})
		}
		t.GroupID = ptr(g)
	}
	rid, hasRID, e := integer(body, "requester_id")
	add(e)
	phone, hasPhone, e := str(body, "phone")
	add(e)
	email, hasEmail, e := str(body, "email")
	add(e)
	name, _, e := str(body, "name")
	add(e)
	switch {
	case hasRID:
		if s.contact(rid) == nil {
			errs = append(errs, fieldError{Field: "requester_id", Message: "There is no contact matching the given requester_id", Code: "invalid_value"})
		}
		t.RequesterID = rid
	case hasEmail || hasPhone:
		if hasPhone && !hasEmail && name == "" {
			errs = append(errs, fieldError{Field: "name", Message: "It should be a/an String", Code: "missing_field"})
			break
		}
		var found *Contact
		for _, c := range s.contacts {
			if hasEmail && c.Email != nil && strings.EqualFold(*c.Email, email) || !hasEmail && c.Phone != nil && *c.Phone == phone {
				found = c
				break
			}
		}
		if found == nil && len(errs) == 0 {
			found = &Contact{ID: s.id("contact"), Name: name, Language: "en", TimeZone: "Eastern Time (US & Canada)", OtherEmails: []string{},
				Tags: []string{}, CustomFields: map[string]any{}, CreatedAt: now, UpdatedAt: now}
			if hasEmail {
				found.Email = ptr(email)
			}
			if hasPhone {
				found.Phone = ptr(phone)
			}
			s.contacts = append(s.contacts, found)
		}
		if found != nil {
			t.RequesterID = found.ID
		}
	default:
		errs = append(errs, fieldError{Field: "requester_id", Message: "Please fill at least 1 of requester_id, phone, email, twitter_id, facebook_id, unique_external_id fields", Code: "missing_field"})
	}
	if len(errs) == 0 {
		atts, e := s.attachFiles(body, now)
		add(e)
		t.Attachments = atts
	}
	if len(errs) > 0 {
		validation(w, http.StatusBadRequest, errs...)
		return
	}
	t.ID = s.id("ticket")
	setStatus(&t.stats, t.Status, 0, now)
	s.tickets = append(s.tickets, t)
	writeJSON(w, http.StatusCreated, t.Ticket)
}

// setStatus records a status change in the ticket's stats.
func setStatus(st *Stats, to, from int, at time.Time) {
	st.StatusUpdatedAt = ptr(at)
	switch {
	case to == StatusResolved:
		st.ResolvedAt = ptr(at)
	case to == StatusClosed:
		st.ClosedAt = ptr(at)
		if st.ResolvedAt == nil {
			st.ResolvedAt = ptr(at)
		}
	case from == StatusResolved || from == StatusClosed:
		st.ReopenedAt = ptr(at)
	}
	if to == StatusPending {
		st.PendingSince = ptr(at)
	} else {
		st.PendingSince = nil
	}
}

// onTicket serves a read of the ticket named by the path: h runs with
// s.mu held; an unknown ticket is a bare 404, as Freshdesk answers it.
func (s *Server) onTicket(h func(w http.ResponseWriter, r *http.Request, t *ticket)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t := s.ticket(id)
		if t == nil {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h(w, r, t)
	}
}

func (s *Server) showTicket(w http.ResponseWriter, r *http.Request, t *ticket) {
	out := t.Ticket
	if strings.Contains(r.URL.Query().Get("include"), "stats") {
		st := t.stats
		out.Stats = &st
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) updateTicket(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	body, ok := decodeBody(w, r, "status", "priority", "tags", "group_id", "responder_id", "subject", "type", "custom_fields", "due_by", "fr_due_by")
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(id)
	if t == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	var errs []fieldError
	upd := t.Ticket
	if v, has, e := integer(body, "status"); e != nil {
		errs = append(errs, *e)
	} else if has {
		if !validStatus[v] {
			errs = append(errs, fieldError{Field: "status", Message: "It should be one of these values: '2,3,4,5'", Code: "invalid_value"})
		}
		upd.Status = int(v)
	}
	if v, has, e := integer(body, "priority"); e != nil {
		errs = append(errs, *e)
	} else if has {
		if v < 1 || v > 4 {
			errs = append(errs, fieldError{Field: "priority", Message: "It should be one of these values: '1,2,3,4'", Code: "invalid_value"})
		}
		upd.Priority = int(v)
	}
	if tags, has, e := stringList(body, "tags"); e != nil {
		errs = append(errs, *e)
	} else if has {
		upd.Tags = tags
	}
	if v, has, e := str(body, "subject"); e != nil {
		errs = append(errs, *e)
	} else if has {
		upd.Subject = v
	}
	if len(errs) > 0 {
		validation(w, http.StatusBadRequest, errs...)
		return
	}
	now := s.clock.Now().UTC()
	if upd.Status != t.Status {
		setStatus(&t.stats, upd.Status, t.Status, now)
	}
	upd.UpdatedAt = now
	t.Ticket = upd
	writeJSON(w, http.StatusOK, t.Ticket)
}

func (s *Server) createNote(w http.ResponseWriter, r *http.Request) {
	s.addConversation(w, r, SourceNote, "body", "private", "incoming", "user_id", "notify_emails", "attachments")
}

func (s *Server) createReply(w http.ResponseWriter, r *http.Request) {
	s.addConversation(w, r, SourceReply, "body", "user_id", "from_email", "cc_emails", "bcc_emails", "attachments")
}

func (s *Server) addConversation(w http.ResponseWriter, r *http.Request, source int, allowed ...string) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	body, ok := decodeBody(w, r, allowed...)
	if !ok {
		return
	}
	var errs []fieldError
	text, has, e := str(body, "body")
	if e != nil {
		errs = append(errs, *e)
	} else if !has || strings.TrimSpace(text) == "" {
		errs = append(errs, fieldError{Field: "body", Message: "It should be a/an String", Code: "missing_field"})
	}
	c := Conversation{Body: text, BodyText: textOf(text), Source: source, UserID: AgentID, ToEmails: []string{}, CCEmails: []string{}, BCCEmails: []string{}, Attachments: []any{}}
	if source == SourceNote {
		c.Private = true // the API's default for notes
		if v, has, e := boolean(body, "private"); e != nil {
			errs = append(errs, *e)
		} else if has {
			c.Private = v
		}
		if v, has, e := boolean(body, "incoming"); e != nil {
			errs = append(errs, *e)
		} else if has {
			c.Incoming = v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, has, e := integer(body, "user_id"); e != nil {
		errs = append(errs, *e)
	} else if has {
		if v != AgentID && s.contact(v) == nil {
			errs = append(errs, fieldError{Field: "user_id", Message: "There is no contact matching the given user_id", Code: "invalid_value"})
		}
		c.UserID = v
	}
	t := s.ticket(id)
	if t == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	now := s.clock.Now().UTC()
	if len(errs) == 0 {
		atts, e := s.attachFiles(body, now)
		if e != nil {
			errs = append(errs, *e)
		}
		c.Attachments = atts
	}
	if len(errs) > 0 {
		validation(w, http.StatusBadRequest, errs...)
		return
	}
	c.ID, c.TicketID, c.CreatedAt, c.UpdatedAt = s.id("conversation"), t.ID, now, now
	t.conversations = append(t.conversations, c)
	t.UpdatedAt = now
	if source == SourceReply {
		t.stats.AgentRespondedAt = ptr(now)
		if t.stats.FirstRespondedAt == nil {
			t.stats.FirstRespondedAt = ptr(now)
		}
	}
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) listConversations(w http.ResponseWriter, r *http.Request, t *ticket) {
	q := r.URL.Query()
	page, perPage := 1, 30
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			validation(w, http.StatusBadRequest, fieldError{Field: "page", Message: "It should be a Positive Integer", Code: "invalid_value"})
			return
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			validation(w, http.StatusBadRequest, fieldError{Field: "per_page", Message: "It should be a Positive Integer less than or equal to 100", Code: "invalid_value"})
			return
		}
		perPage = n
	}
	out := []Conversation{}
	if from := (page - 1) * perPage; from < len(t.conversations) {
		out = append(out, t.conversations[from:min(from+perPage, len(t.conversations))]...)
		s.freshURLs(out, s.clock.Now().UTC())
		if from+perPage < len(t.conversations) {
			next := *r.URL
			nq := next.Query()
			nq.Set("page", strconv.Itoa(page+1))
			next.RawQuery = nq.Encode()
			w.Header().Set("Link", "<"+next.RequestURI()+">; rel=\"next\"")
		}
	}
	writeJSON(w, http.StatusOK, out)
}

var (
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	breakRE = regexp.MustCompile(`(?i)<br\s*/?>|</(p|div|li|h[1-6])>`)
)

// textOf is the body_text Freshdesk derives from an HTML body.
func textOf(h string) string {
	t := breakRE.ReplaceAllString(h, "\n")
	t = tagRE.ReplaceAllString(t, "")
	return strings.TrimSpace(html.UnescapeString(t))
}

var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// AgentReply makes the API key's agent reply on a ticket, as if from
// Freshdesk's UI: a public outgoing conversation with source 0. It goes
// around the rate limit and fault injection.
func (s *Server) AgentReply(ticketID int64, text string) (Conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(ticketID)
	if t == nil {
		return Conversation{}, fmt.Errorf("freshdesktest: no ticket %d", ticketID)
	}
	now := s.clock.Now().UTC()
	// Like Freshdesk's editor, quotes stay as they are in text.
	body := "<div>" + strings.ReplaceAll(textEscaper.Replace(text), "\n", "<br>") + "</div>"
	c := Conversation{ID: s.id("conversation"), Body: body, BodyText: textOf(body), Source: SourceReply, UserID: AgentID, TicketID: ticketID,
		ToEmails: []string{}, CCEmails: []string{}, BCCEmails: []string{}, Attachments: []any{}, CreatedAt: now, UpdatedAt: now}
	t.conversations = append(t.conversations, c)
	t.UpdatedAt = now
	return c, nil
}

// AgentNote adds a note by the agent, private or public, as from the UI.
func (s *Server) AgentNote(ticketID int64, text string, private bool) (Conversation, error) {
	c, err := s.AgentReply(ticketID, text)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(ticketID)
	last := &t.conversations[len(t.conversations)-1]
	last.Source, last.Private = SourceNote, private
	return *last, nil
}

// SetStatus changes a ticket's status as an agent would in the UI (a
// resolution, a closure), going around the rate limit.
func (s *Server) SetStatus(ticketID int64, status int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(ticketID)
	if t == nil {
		return fmt.Errorf("freshdesktest: no ticket %d", ticketID)
	}
	now := s.clock.Now().UTC()
	setStatus(&t.stats, status, t.Status, now)
	t.Status, t.UpdatedAt = status, now
	return nil
}

// DeleteTicket removes a ticket, as an agent deleting it would.
func (s *Server) DeleteTicket(ticketID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range s.tickets {
		if t.ID == ticketID {
			s.tickets = append(s.tickets[:i], s.tickets[i+1:]...)
			return
		}
	}
}

// AddContact creates a contact directly, as an agent would in the UI.
func (s *Server) AddContact(c Contact) Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()
	c.ID, c.CreatedAt, c.UpdatedAt = s.id("contact"), now, now
	if c.Language == "" {
		c.Language = "en"
	}
	c.OtherEmails, c.Tags, c.CustomFields = []string{}, []string{}, map[string]any{}
	s.contacts = append(s.contacts, &c)
	return c
}

// AutomationWebhook is the body Freshdesk's automation rule posts after
// the latest public conversation of the ticket, with the JSON template
// the connector documents (freshdesk.WebhookTemplate) filled in the way
// Freshdesk fills placeholders: {{ticket.latest_public_comment}} is the
// author's name, " : " and the HTML body.
func (s *Server) AutomationWebhook(ticketID int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(ticketID)
	if t == nil {
		return nil, fmt.Errorf("freshdesktest: no ticket %d", ticketID)
	}
	var latest string
	for i := len(t.conversations) - 1; i >= 0; i-- {
		c := t.conversations[i]
		if c.Private {
			continue
		}
		author := AgentName
		if c.UserID != AgentID {
			if ct := s.contact(c.UserID); ct != nil {
				author = ct.Name
			}
		}
		latest = author + " : " + c.Body
		break
	}
	esc := func(v string) string {
		if s.unsafeJSON {
			return v
		}
		b, _ := json.Marshal(v)
		return string(b[1 : len(b)-1])
	}
	body := strings.NewReplacer(
		"{{ticket.id}}", strconv.FormatInt(t.ID, 10),
		"{{ticket.latest_public_comment}}", esc(latest),
		"{{ticket.status}}", statusName(t.Status),
		"{{ticket.agent.name}}", esc(AgentName),
	).Replace(freshdesk.WebhookTemplate)
	return []byte(body), nil
}

// WebhookRequest is the automation rule's POST to hookURL (the hub's
// /hooks/<name>) about the ticket, carrying secret in the header the
// connector checks, as the rule is documented to be set up.
func (s *Server) WebhookRequest(hookURL, secret string, ticketID int64) (*http.Request, error) {
	body, err := s.AutomationWebhook(ticketID)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, hookURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Freshdesk")
	if secret != "" {
		req.Header.Set(freshdesk.SecretHeader, secret)
	}
	return req, nil
}

func statusName(st int) string {
	switch st {
	case StatusOpen:
		return "Open"
	case StatusPending:
		return "Pending"
	case StatusResolved:
		return "Resolved"
	case StatusClosed:
		return "Closed"
	}
	return strconv.Itoa(st)
}

// Contacts returns the contacts, oldest first.
func (s *Server) Contacts() []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, *c)
	}
	return out
}

// Tickets returns the tickets with their conversations, oldest first.
func (s *Server) Tickets() []TicketRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TicketRecord, 0, len(s.tickets))
	for _, t := range s.tickets {
		tk := t.Ticket
		st := t.stats
		tk.Stats = &st
		out = append(out, TicketRecord{Ticket: tk, Conversations: append([]Conversation{}, t.conversations...)})
	}
	return out
}

// Ticket returns one ticket with its conversations.
func (s *Server) Ticket(id int64) (TicketRecord, bool) {
	for _, t := range s.Tickets() {
		if t.ID == id {
			return t, true
		}
	}
	return TicketRecord{}, false
}

// Requests returns the API calls answered so far, in order.
func (s *Server) Requests() []Request { return s.requests.All() }

// Calls counts the answered calls with this method and path.
func (s *Server) Calls(method, path string) int {
	return s.requests.Count(func(r Request) bool { return r.Method == method && r.Path == path })
}

// MaxPerMinute is the most credits used within one rate-limit window.
func (s *Server) MaxPerMinute() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxUsed
}

// Snapshot is what the Server holds, for GET /sandbox: contacts, tickets
// with their conversations, and the calls it answered.
func (s *Server) Snapshot() any {
	reqs := s.Requests()
	s.mu.Lock()
	limit, used := s.limit, s.used
	s.mu.Unlock()
	return map[string]any{
		"contacts": s.Contacts(),
		"tickets":  s.Tickets(),
		"requests": reqs,
		"rate_limit": map[string]int{
			"per_minute":         limit,
			"used_in_window":     used,
			"max_used_in_window": s.MaxPerMinute(),
		},
	}
}

// BasicAuth is the Authorization header value for key, as Freshdesk
// clients send it.
func BasicAuth(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key+":X"))
}
