// Package admin serves the admin API under /api/v1: what the hub logged,
// routed and delivered, and the operations on it. Every call needs
// "Authorization: Bearer <server.admin_token>".
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Store is what the admin API reads.
type Store interface {
	Events(ctx context.Context, f store.EventFilter) ([]sdk.Event, error)
	Event(ctx context.Context, id string) (sdk.Event, error)
	Contact(ctx context.Context, id string) (store.Contact, error)
}

// API is the admin HTTP handler.
type API struct {
	Token  string
	Store  Store
	Logger *slog.Logger
	mux    *http.ServeMux
}

// New builds the admin API.
func New(token string, st Store, logger *slog.Logger) *API {
	a := &API{Token: token, Store: st, Logger: logger, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /api/v1/events", a.listEvents)
	a.mux.HandleFunc("GET /api/v1/events/{id}", a.getEvent)
	a.mux.HandleFunc("GET /api/v1/contacts/{id}", a.getContact)
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.Token == "" {
		WriteError(w, http.StatusForbidden, "admin_disabled",
			"the admin API is off: set server.admin_token in connectors.yaml (or WAHUB_SERVER__ADMIN_TOKEN) and send it as a bearer token")
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.Token)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wahub"`)
		WriteError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <server.admin_token>")
		return
	}
	// Route misses inside /api/v1 answer in the API's error shape rather
	// than as plain-text 404s.
	if _, pattern := a.mux.Handler(r); pattern == "" {
		WriteError(w, http.StatusNotFound, "not_found", "no such admin API call: "+r.Method+" "+r.URL.Path)
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Without after, the newest events; with it, a page of the log.
	f := store.EventFilter{Type: q.Get("type"), Contact: q.Get("contact"), Tail: !q.Has("after")}
	var err error
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseInt(v, 10, 64); err != nil || f.After < 0 {
			WriteError(w, http.StatusBadRequest, "bad_request", "after: want the seq of an event (a non-negative integer)")
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 1000 {
			WriteError(w, http.StatusBadRequest, "bad_request", "limit: want 1 to 1000")
			return
		}
	}
	events, err := a.Store.Events(r.Context(), f)
	if err != nil {
		a.internal(w, err)
		return
	}
	if events == nil {
		events = []sdk.Event{}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"events": events})
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request) {
	ev, err := a.Store.Event(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no event "+r.PathValue("id"))
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, ev)
}

func (a *API) getContact(w http.ResponseWriter, r *http.Request) {
	c, err := a.Store.Contact(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no contact "+r.PathValue("id")+" (use its wa_id or user_id)")
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, c)
}

func (a *API) internal(w http.ResponseWriter, err error) {
	if a.Logger != nil {
		a.Logger.Error("admin API", "err", err)
	}
	WriteError(w, http.StatusInternalServerError, "internal", "the store could not answer; see the hub's log")
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// WriteError answers in the admin API's error shape:
// {"error": {"code": "...", "message": "..."}}.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
