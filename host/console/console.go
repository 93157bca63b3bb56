// Package console serves the operator's web console under /console: what
// the hub received, where each event went and why, what failed and what
// waits, with the operations to act on it (pause, replay, send).
//
// Pages are rendered on the server from embedded templates and work with
// no network beyond the hub; a little JavaScript refreshes them live over
// server-sent events. Sign-in takes server.admin_token (everything) or
// server.viewer_token (read only) once and starts an HttpOnly,
// SameSite=Strict session cookie; every action also needs the session's
// CSRF token.
package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Store is what the console reads. *store.Store implements it.
type Store interface {
	Event(ctx context.Context, id string) (sdk.Event, error)
	EventDeliveries(ctx context.Context, seq int64) ([]store.DeliveryRecord, error)
	DeliveryStates(ctx context.Context, seqs []int64) (map[int64][]store.DeliveryState, error)
	DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetter, error)
	Contact(ctx context.Context, id string) (store.Contact, error)
	RecentConversations(ctx context.Context, query string, limit int) ([]store.ConversationSummary, error)
	ConversationOf(ctx context.Context, id string) (store.ConversationSummary, error)
	ConversationEvents(ctx context.Context, conversation string, before int64, limit int) ([]sdk.Event, error)
	Outbound(ctx context.Context, id string) (store.OutboundRecord, error)
	OutboundList(ctx context.Context, f store.OutboundFilter) ([]store.OutboundRecord, error)
	OutboundStates(ctx context.Context, ids []string) (map[string]store.OutboundRecord, error)
	OutboundByWAMID(ctx context.Context, wamid string) (store.OutboundRecord, error)
	Series(ctx context.Context, since time.Time, step time.Duration) (store.Series, error)
	Stats(ctx context.Context, since time.Time) (store.Stats, error)
	StuckOutbound(ctx context.Context, age time.Duration) (stuck, unknown int64, err error)
	// Changed is closed at the next commit: the live view's signal.
	Changed() <-chan struct{}
}

// Refusal is a message the outbound policy refused.
type Refusal struct {
	At      time.Time
	Source  string
	To      string
	Code    string
	Message string
}

// Node is one hub sharing the store.
type Node struct {
	ID        string
	Addr      string
	StartedAt time.Time
	LastSeen  time.Time
	Leases    []string
}

// Options assemble the console.
type Options struct {
	// AdminToken signs in with every right; ViewerToken sees everything
	// and changes nothing. Without either the console only says how to
	// set one.
	AdminToken, ViewerToken string
	// Secure marks the session cookie Secure: set it when the hub serves
	// TLS itself or sits behind a proxy that does.
	Secure bool
	Store  Store
	// Ops are the admin API's operations, shared so that the console and
	// the API check and do the same.
	Ops admin.Ops
	// Explain routes an event again with the same engine as
	// `wahub route --explain`, against what the store knows now.
	Explain func(ctx context.Context, ev sdk.Event) (route.Decision, error)
	// Refusals are the outbound policy's recent refusals, newest first.
	Refusals func() []Refusal
	// Cluster lists the hubs sharing the store; nil for a store that has
	// no cluster (SQLite): the page says so.
	Cluster func(ctx context.Context) ([]Node, error)
	// Self describes this hub for the cluster page of a single hub.
	Self func() Node
	// StoreKind names the store ("SQLite data/wahub.db").
	StoreKind string
	// Sandbox is the sandbox's fakes, nil when sandbox mode is off.
	Sandbox Sandbox
	// Media shows customers' files in conversations (nil: not shown).
	Media  Media
	Logger *slog.Logger
	Now    func() time.Time
	// Keepalive is how often the live stream sends a comment and a
	// refresh while nothing changes (default 10s).
	Keepalive time.Duration
}

// Console is the /console handler.
type Console struct {
	opt Options
	// thumbs keeps photo previews by digest (media.go).
	thumbs   *thumbCache
	mux      *http.ServeMux
	sessions *sessions
	pages    *pages
	login    *loginLimiter
	cop      *http.CrossOriginProtection

	statsCache  statsCache
	seriesCache seriesCache
}

// New builds the console.
func New(opt Options) (*Console, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Keepalive <= 0 {
		opt.Keepalive = 10 * time.Second
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{opt: opt, mux: http.NewServeMux(), thumbs: newThumbCache(256), sessions: newSessions(opt.Now), pages: p,
		login: newLoginLimiter(opt.Now), cop: http.NewCrossOriginProtection()}
	static, _ := fs.Sub(assets, "static")
	c.mux.Handle("GET /console/static/", cacheStatic(http.StripPrefix("/console/static/", http.FileServerFS(static))))
	c.mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
	})
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.signIn)
	c.mux.Handle("POST /console/logout", c.action(c.signOut, viewer))

	c.mux.Handle("GET /console/{$}", c.view(c.overview))
	c.mux.Handle("GET /console/conversations", c.view(c.conversations))
	c.mux.Handle("GET /console/conversations/{id}", c.view(c.conversation))
	c.mux.Handle("GET /console/events/{id}", c.view(c.event))
	c.mux.Handle("GET /console/connectors", c.view(c.connectors))
	c.mux.Handle("POST /console/connectors/{name}/pause", c.action(c.pause, admin_))
	c.mux.Handle("POST /console/connectors/{name}/resume", c.action(c.resume, admin_))
	c.mux.Handle("GET /console/deadletters", c.view(c.deadLetters))
	c.mux.Handle("POST /console/deadletters/replay", c.action(c.replay, admin_))
	c.mux.Handle("GET /console/outbox", c.view(c.outbox))
	c.mux.Handle("GET /console/outbox/{id}", c.view(c.outboxMessage))
	c.mux.Handle("POST /console/outbox/send", c.action(c.send, admin_))
	c.mux.Handle("GET /console/cluster", c.view(c.cluster))
	c.mux.Handle("GET /console/sandbox", c.view(c.sandbox))
	c.mux.Handle("POST /console/sandbox/{action}", c.action(c.sandboxAction, admin_))
	c.mux.Handle("GET /console/live", c.view(c.live))
	c.mux.Handle("GET /console/media/{id}", c.view(c.media))
	return c, nil
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Assets change with the binary only; a short cache keeps an
		// upgraded hub from serving yesterday's script for long.
		w.Header().Set("Cache-Control", "private, max-age=300")
		h.ServeHTTP(w, r)
	})
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if _, pattern := c.mux.Handler(r); pattern == "" {
		if c.sessions.get(r) == nil {
			c.toLogin(w, r)
			return
		}
		c.render(w, r, http.StatusNotFound, "error", pageData{Title: "Not found", Error: "There is no console page at " + r.URL.Path + "."})
		return
	}
	c.mux.ServeHTTP(w, r)
}

// Roles. A viewer sees everything; only an admin acts.
type role int

const (
	viewer role = iota + 1
	admin_
)

func (r role) String() string {
	if r == admin_ {
		return "admin"
	}
	return "viewer"
}

// view wraps a page: it needs a session of any role.
func (c *Console) view(h func(w http.ResponseWriter, r *http.Request, s *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r)
		if s == nil {
			c.toLogin(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	})
}

// action wraps a change: it needs a session of at least need, the
// session's CSRF token, and a same-origin request.
func (c *Console) action(h func(w http.ResponseWriter, r *http.Request, s *session), need role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessions.get(r)
		if s == nil {
			http.Error(w, "no console session: sign in at /console/login", http.StatusUnauthorized)
			return
		}
		if err := c.cop.Check(r); err != nil {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "unreadable form: "+err.Error(), http.StatusBadRequest)
			return
		}
		got := r.Header.Get("X-CSRF-Token")
		if got == "" {
			got = r.PostFormValue("csrf_token")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
			c.render(w, r, http.StatusForbidden, "error", pageData{Session: s, Title: "Refused",
				Error: "The form's security token is missing or out of date. Reload the page and try again."})
			return
		}
		if s.role < need {
			c.render(w, r, http.StatusForbidden, "error", pageData{Session: s, Title: "Read-only session",
				Error: "You signed in with the viewer token, which sees everything and changes nothing. Sign in with server.admin_token to do this."})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, s)
	})
}

func (c *Console) toLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || r.URL.Path == "/console/live" {
		http.Error(w, "no console session: sign in at /console/login", http.StatusUnauthorized)
		return
	}
	next := r.URL.RequestURI()
	http.Redirect(w, r, "/console/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/console/"
	}
	return next
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.sessions.get(r) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", pageData{Title: "Sign in", Data: loginData{Next: safeNext(r.URL.Query().Get("next")), Configured: c.opt.AdminToken != "" || c.opt.ViewerToken != ""}})
}

type loginData struct {
	Next       string
	Configured bool
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if err := c.cop.Check(r); err != nil {
		http.Error(w, "cross-origin sign-in refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := safeNext(r.PostFormValue("next"))
	data := loginData{Next: next, Configured: c.opt.AdminToken != "" || c.opt.ViewerToken != ""}
	if !c.login.allow(clientIP(r)) {
		w.Header().Set("Retry-After", "60")
		c.render(w, r, http.StatusTooManyRequests, "login", pageData{Title: "Sign in", Error: "Too many wrong tokens from your address: wait a minute and try again.", Data: data})
		return
	}
	token := r.PostFormValue("token")
	var got role
	switch {
	case token == "":
	case c.opt.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(c.opt.AdminToken)) == 1:
		got = admin_
	case c.opt.ViewerToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(c.opt.ViewerToken)) == 1:
		got = viewer
	}
	if got == 0 {
		c.login.failed(clientIP(r))
		c.opt.Logger.Warn("console: sign-in with a wrong token", "remote", r.RemoteAddr)
		msg := "That token is neither server.admin_token nor server.viewer_token."
		if !data.Configured {
			msg = "The console is off: set server.admin_token (and optionally server.viewer_token) in connectors.yaml."
		}
		c.render(w, r, http.StatusUnauthorized, "login", pageData{Title: "Sign in", Error: msg, Data: data})
		return
	}
	s := c.sessions.create(got)
	http.SetCookie(w, c.cookie(r, s.id, s.expires()))
	c.opt.Logger.Info("console: signed in", "role", got.String(), "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	c.sessions.delete(s.id)
	ck := c.cookie(r, "", time.Unix(1, 0))
	ck.MaxAge = -1
	http.SetCookie(w, ck)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

func (c *Console) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: cookieName, Value: value, Path: "/console", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		// Behind a TLS-terminating proxy the header says so; trusting it
		// can only make the cookie stricter.
		Secure: c.opt.Secure || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")}
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}

// errStatus maps a store error to the page a person should see.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if errors.Is(err, store.ErrNotFound) {
		c.render(w, r, http.StatusNotFound, "error", pageData{Session: s, Title: "Not found", Error: "Nothing by that id: it may have been pruned (store.retention_days) or never existed."})
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	c.opt.Logger.Error("console", "path", r.URL.Path, "err", err)
	c.render(w, r, http.StatusInternalServerError, "error", pageData{Session: s, Title: "Error", Error: "The hub could not answer this page; its log says why."})
}
