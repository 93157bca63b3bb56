// Package zendesktest is a fake of the Zendesk Support REST API for tests
// of the zendesk connector, end-to-end tests, the fault-injection suite and
// the hub's sandbox. It keeps users, tickets and comments in memory and
// answers the way the real API does, as far as
// ../shared/reference/apis.md §3.1 records it:
//
//   - paths under /api/v2, with or without the ".json" suffix;
//   - API-token basic auth ("{email}/token:{token}"); anything else is a
//     401 {"error":"Couldn't authenticate you"};
//   - X-Rate-Limit / X-Rate-Limit-Remaining on every answer, a per-minute
//     limit (700 by default) answered with 429 in one of the three forms
//     seen in the wild (Retry-After and a text/plain body; the text body
//     alone; nothing at all), see RateLimitStyle;
//   - search (/search, /users/search?query=) that only sees users after an
//     index lag (60s by default), while /users/search?external_id= and
//     /tickets?external_id= read the database and see everything at once;
//   - ticket statuses new, open, pending, hold, solved and closed; an
//     end user's comment reopens a pending or solved ticket; a closed
//     ticket refuses every update with 422 "Status closed prevents ticket
//     update";
//   - error envelopes {"error":"RecordInvalid","description":...,"details":...}
//     (422) and {"error":"RecordNotFound","description":"Not found"} (404).
//
// It is an http.Handler with no listener: tests serve it with
// httptest.NewServer, the sandbox mounts it under /sandbox/zendesk/ with
// http.StripPrefix, so it never assumes a host.
//
// For the other direction it plays the agent and the Zendesk trigger:
// AgentComment adds an agent's comment, WebhookRequest builds the signed
// request the trigger documented in package zendesk sends, and with
// SetWebhookTarget the fake POSTs it itself after each public agent
// comment, as Zendesk would. POST /_fake/agent_comments does the same over
// HTTP, for the sandbox.
package zendesktest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

// Credentials and secret the fake accepts unless told otherwise.
const (
	DefaultEmail         = "wahub@acme.example"
	DefaultToken         = "zendesk-sandbox-token"
	DefaultWebhookSecret = "zendesk-sandbox-webhook-secret"
	// DefaultRateLimit is Zendesk's documented per-minute limit of the
	// Team plan, the one its headers report in most examples.
	DefaultRateLimit = 700
	// DefaultSearchLag is how long a new or changed user stays invisible to
	// search: Zendesk's index is "not instant", usually a minute or two.
	DefaultSearchLag = 60 * time.Second
)

// IDs of the two agents every fake account has.
const (
	// APIUserID is the agent the API credentials belong to; comments sent
	// without author_id are theirs.
	APIUserID int64 = 1
	// AgentID is a second agent, the one AgentComment writes as.
	AgentID int64 = 2
)

// RateLimitText is the body of the real 429, text/plain, not JSON.
const RateLimitText = "Number of allowed API requests per minute exceeded"

// RateLimitStyle is how a 429 looks.
type RateLimitStyle int

const (
	// RetryAfterHeader: Retry-After: <seconds> and the text/plain body,
	// as documented.
	RetryAfterHeader RateLimitStyle = iota
	// TextBodyOnly: the text/plain body without Retry-After, as reported
	// for updates of a single user.
	TextBodyOnly
	// Bare: no Retry-After and an empty body.
	Bare
)

func (s RateLimitStyle) String() string {
	switch s {
	case RetryAfterHeader:
		return "retry-after"
	case TextBodyOnly:
		return "text-only"
	case Bare:
		return "bare"
	}
	return "unknown"
}

// Option configures a Server.
type Option func(*Server)

// WithCredentials sets the agent email and API token the fake accepts.
func WithCredentials(email, token string) Option {
	return func(s *Server) { s.email, s.token = email, token }
}

// WithWebhookSecret sets the signing secret of the fake's webhook.
func WithWebhookSecret(secret string) Option {
	return func(s *Server) { s.webhookSecret = secret }
}

// WithClock sets the fake's clock (timestamps, rate-limit windows, search
// lag, webhook timestamps); the default is time.Now.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.clock.Set(now) } }

// WithRateLimit sets the requests allowed per minute; 0 turns the limit
// off.
func WithRateLimit(perMinute int) Option { return func(s *Server) { s.limit = perMinute } }

// WithSearchLag sets how long new users stay invisible to search.
func WithSearchLag(d time.Duration) Option { return func(s *Server) { s.searchLag = d } }

// Server is the fake Zendesk account. It is safe for concurrent use.
type Server struct {
	mu            sync.Mutex
	email, token  string
	webhookSecret string
	clock         fakeapi.Clock
	limit         int
	style         RateLimitStyle
	searchLag     time.Duration

	users    map[int64]*user
	tickets  map[int64]*ticket
	nextUser int64
	nextTkt  int64
	nextCmt  int64
	nextAud  int64

	faults fakeapi.Faults[int] // statuses

	window      int64 // the minute (Unix seconds / 60) being counted
	inWindow    int
	maxInWindow int
	requests    fakeapi.Log[Request]

	hookTarget string
	hookClient *http.Client
	hooks      fakeapi.Log[HookDelivery]

	files *files // uploads and attachments: uploads.go
}

// Request is one API call the fake answered.
type Request struct {
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Query  string    `json:"query,omitempty"`
	Status int       `json:"status"`
	At     time.Time `json:"at"`
	// Body is the request body as sent (JSON), for tests that check what
	// the connector wrote.
	Body json.RawMessage `json:"body,omitempty"`
}

// NewServer returns an empty account with two agents (APIUserID, whose
// credentials the API accepts, and AgentID).
func NewServer(opts ...Option) *Server {
	s := &Server{
		email: DefaultEmail, token: DefaultToken, webhookSecret: DefaultWebhookSecret,
		limit: DefaultRateLimit, searchLag: DefaultSearchLag,
		users: map[int64]*user{}, tickets: map[int64]*ticket{},
		nextUser: 1000, nextTkt: 1, nextCmt: 5000, nextAud: 9000,
		hookClient: &http.Client{Timeout: 15 * time.Second},
	}
	for _, o := range opts {
		o(s)
	}
	// Agents exist from the start, long indexed.
	at := s.clock.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	s.users[APIUserID] = &user{ID: APIUserID, Name: "wahub API", Email: s.email, Role: "admin", CreatedAt: at, UpdatedAt: at, Active: true, Verified: true}
	s.users[AgentID] = &user{ID: AgentID, Name: "Alex Agent", Email: "alex@acme.example", Role: "agent", CreatedAt: at, UpdatedAt: at, Active: true, Verified: true}
	return s
}

// SetClock replaces the clock.
func (s *Server) SetClock(now func() time.Time) { s.clock.Set(now) }

// SetRateLimit sets the requests allowed per minute (0: unlimited).
func (s *Server) SetRateLimit(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit = perMinute
}

// SetRateLimitStyle chooses how 429s look, those of the limit and those
// FailNext injects.
func (s *Server) SetRateLimitStyle(style RateLimitStyle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.style = style
}

// SetSearchLag sets how long new users stay invisible to search.
func (s *Server) SetSearchLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searchLag = d
}

// FailNext answers the next n API requests with status, with the body the
// real API sends for it (a 429 in the current RateLimitStyle). They are
// counted and logged but change nothing.
func (s *Server) FailNext(n, status int) { s.faults.Repeat(n, status) }

// Requests returns the API calls so far, in arrival order.
func (s *Server) Requests() []Request { return s.requests.All() }

// CountRequests counts the calls with this method whose path (without
// .json) is path.
func (s *Server) CountRequests(method, path string) int {
	return s.requests.Count(func(r Request) bool { return r.Method == method && r.Path == path })
}

// MaxPerMinute is the most requests seen in one minute window.
func (s *Server) MaxPerMinute() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInWindow
}

// maxBody bounds a request body; Zendesk's own limit is far above what
// the connector sends.
const maxBody = 4 << 20

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveFile(w, r) {
		return
	}
	path := strings.TrimSuffix(r.URL.Path, ".json")
	limit := int64(maxBody)
	if path == "/api/v2/uploads" {
		limit = s.uploadLimit()
		if h := s.uploadHold(); h != nil {
			r.Body = &heldBody{ReadCloser: r.Body, h: h}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "RequestEntityTooLarge",
			"description": "The file is larger than " + strconv.FormatInt(limit, 10) + " bytes, the most an upload may be"})
		return
	}
	if strings.HasPrefix(path, "/_fake/") {
		s.serveControl(w, r, path, body)
		return
	}
	rec := &fakeapi.Recorder{ResponseWriter: w}
	s.serveAPI(rec, r, path, body)
	req := Request{Method: r.Method, Path: path, Query: r.URL.RawQuery, Status: rec.Status, At: s.clock.Now().UTC()}
	if json.Valid(body) {
		req.Body = json.RawMessage(body)
	}
	s.requests.Add(req)
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now().UTC()

	// Every request counts against the minute, refused ones included, as
	// Zendesk counts them.
	if win := now.Unix() / 60; win != s.window {
		s.window, s.inWindow = win, 0
	}
	s.inWindow++
	s.maxInWindow = max(s.maxInWindow, s.inWindow)
	if s.limit > 0 {
		w.Header().Set("X-Rate-Limit", strconv.Itoa(s.limit))
		w.Header().Set("X-Rate-Limit-Remaining", strconv.Itoa(max(0, s.limit-s.inWindow)))
	}
	if strings.HasSuffix(path, "/search") || (r.Method == http.MethodGet && (path == "/api/v2/tickets" || strings.HasSuffix(path, "/comments"))) {
		if s.limit > 0 {
			reset := 60 - now.Unix()%60
			w.Header().Set("ratelimit-limit", strconv.Itoa(s.limit))
			w.Header().Set("ratelimit-remaining", strconv.Itoa(max(0, s.limit-s.inWindow)))
			w.Header().Set("ratelimit-reset", strconv.FormatInt(reset, 10))
		}
	}

	if status, ok := s.faults.Next(nil); ok {
		s.writeFault(w, status, now)
		return
	}
	if s.limit > 0 && s.inWindow > s.limit {
		s.writeFault(w, http.StatusTooManyRequests, now)
		return
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Web Password"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "Couldn't authenticate you"})
		return
	}
	s.fs().base = requestBase(r)
	s.route(w, r, path, body, now)
}

// writeFault answers an injected or rate-limit failure.
func (s *Server) writeFault(w http.ResponseWriter, status int, now time.Time) {
	switch status {
	case http.StatusTooManyRequests:
		switch s.style {
		case RetryAfterHeader:
			w.Header().Set("Retry-After", strconv.FormatInt(60-now.Unix()%60, 10))
			writeText(w, status, RateLimitText)
		case TextBodyOnly:
			writeText(w, status, RateLimitText)
		default:
			w.WriteHeader(status)
		}
	case http.StatusUnauthorized:
		writeJSON(w, status, map[string]any{"error": "Couldn't authenticate you"})
	case http.StatusForbidden:
		writeJSON(w, status, map[string]any{"error": "Forbidden", "description": "You do not have access to this page. Please contact the account owner of this help desk for further help."})
	case http.StatusNotFound:
		writeJSON(w, status, notFound)
	case http.StatusUnprocessableEntity:
		writeJSON(w, status, invalid("base", "Record validation errors", "InvalidValue"))
	case http.StatusConflict:
		writeJSON(w, status, map[string]any{"error": "UpdateConflict", "description": "The ticket was updated by another request; try again"})
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// What the edge answers when the application is away: HTML-ish
		// text, not the API's JSON.
		writeText(w, status, http.StatusText(status))
	default:
		writeJSON(w, status, map[string]any{"error": strings.ReplaceAll(http.StatusText(status), " ", ""), "description": http.StatusText(status)})
	}
}

var notFound = map[string]any{"error": "RecordNotFound", "description": "Not found"}

// invalid is the 422 envelope with one detail.
func invalid(field, description, code string) map[string]any {
	return map[string]any{
		"error":       "RecordInvalid",
		"description": "Record validation errors",
		"details":     map[string]any{field: []map[string]string{{"description": description, "error": code}}},
	}
}

func (s *Server) authorized(r *http.Request) bool {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	if !ok {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return false
	}
	return string(raw) == s.email+"/token:"+s.token
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, path string, body []byte, now time.Time) {
	parts := strings.Split(strings.TrimPrefix(path, "/api/v2/"), "/")
	if !strings.HasPrefix(path, "/api/v2/") {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "InvalidEndpoint", "description": "Not found"})
		return
	}
	get, post, put := r.Method == http.MethodGet, r.Method == http.MethodPost, r.Method == http.MethodPut
	q := r.URL.Query()
	switch {
	case len(parts) == 2 && parts[0] == "users" && parts[1] == "me" && get:
		writeJSON(w, http.StatusOK, map[string]any{"user": s.users[APIUserID].json()})
	case len(parts) == 2 && parts[0] == "users" && parts[1] == "search" && get:
		s.usersSearch(w, q, now)
	case len(parts) == 2 && parts[0] == "users" && parts[1] == "create_or_update" && post:
		s.createOrUpdateUser(w, body, now)
	case len(parts) == 2 && parts[0] == "users" && get:
		id, _ := strconv.ParseInt(parts[1], 10, 64)
		if u := s.users[id]; u != nil {
			writeJSON(w, http.StatusOK, map[string]any{"user": u.json()})
		} else {
			writeJSON(w, http.StatusNotFound, notFound)
		}
	case len(parts) == 1 && parts[0] == "uploads" && post:
		s.createUpload(w, r, body, now)
	case len(parts) == 1 && parts[0] == "search" && get:
		s.search(w, q.Get("query"), now)
	case len(parts) == 1 && parts[0] == "tickets" && get:
		s.listTickets(w, q)
	case len(parts) == 1 && parts[0] == "tickets" && post:
		s.createTicket(w, body, now)
	case len(parts) >= 2 && parts[0] == "tickets":
		id, err := strconv.ParseInt(parts[1], 10, 64)
		t := s.tickets[id]
		if err != nil || t == nil {
			writeJSON(w, http.StatusNotFound, notFound)
			return
		}
		switch {
		case len(parts) == 2 && get:
			writeJSON(w, http.StatusOK, map[string]any{"ticket": t.json()})
		case len(parts) == 2 && put:
			s.updateTicket(w, t, body, now)
		case len(parts) == 3 && parts[2] == "comments" && get:
			s.listComments(w, t, q)
		case len(parts) == 3 && parts[2] == "metrics" && get:
			writeJSON(w, http.StatusOK, map[string]any{"ticket_metric": t.metric()})
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "InvalidEndpoint", "description": "Not found"})
		}
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "InvalidEndpoint", "description": "Not found"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	fakeapi.WriteJSON(w, status, fakeapi.ContentTypeJSON, v)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

// page wraps a list the way Zendesk's offset-paginated lists answer.
func page(key string, items any, n int) map[string]any {
	return map[string]any{key: items, "next_page": nil, "previous_page": nil, "count": n}
}

func sortedIDs[T any](m map[int64]T) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
