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
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

// Store is what the admin API reads.
type Store interface {
	Events(ctx context.Context, f store.EventFilter) ([]sdk.Event, error)
	Event(ctx context.Context, id string) (sdk.Event, error)
	EventDeliveries(ctx context.Context, seq int64) ([]store.DeliveryRecord, error)
	Contact(ctx context.Context, id string) (store.Contact, error)
	DeadLetters(ctx context.Context, f store.DeadLetterFilter) ([]store.DeadLetter, error)
	Outbound(ctx context.Context, id string) (store.OutboundRecord, error)
	OutboundByKey(ctx context.Context, source, key string) (store.OutboundRecord, error)
	Requeue(ctx context.Context, id string) error
	Stats(ctx context.Context, since time.Time) (store.Stats, error)
	TemplateCatalogue(ctx context.Context) (store.Catalogue, error)
}

// Ops are the operations on the running hub.
type Ops interface {
	Connectors(ctx context.Context) ([]ConnectorStatus, error)
	Pause(ctx context.Context, name string) error
	Resume(ctx context.Context, name string) error
	// Replay revives dead letters of a connector (all when ids is empty).
	Replay(ctx context.Context, connector string, ids []string) (int, error)
	// UpdateContact applies a PATCH of a contact; a *InvalidError says
	// what in it is wrong.
	UpdateContact(ctx context.Context, id string, p ContactPatch) error
	// SendMessage checks and queues an outbound message; a refusal is a
	// *sdk.RefusedError, a request that is no message an *InvalidError.
	SendMessage(ctx context.Context, msg sdk.OutboundMessage) (rec store.OutboundRecord, created bool, err error)
	// RefreshTemplates fetches the template catalogue from the Graph API
	// now; ErrNoBusinessAccount when none is configured.
	RefreshTemplates(ctx context.Context) (templates.Result, error)
	// Cluster lists the hubs sharing the store (one, on SQLite) and the
	// leases each holds.
	Cluster(ctx context.Context) ([]store.Node, error)
}

// ErrNoBusinessAccount: the template catalogue cannot be fetched without
// whatsapp.business_account_id.
var ErrNoBusinessAccount = errors.New("whatsapp.business_account_id is not set: the template catalogue comes from template webhooks only; set it to fetch the catalogue from the Graph API")

// ContactPatch is the body of PATCH /api/v1/contacts/{id}. Absent fields
// change nothing.
type ContactPatch struct {
	// Attributes are set; a null value deletes one.
	Attributes map[string]*string `json:"attributes,omitempty"`
	// Consent is "granted" or "revoked"; a change emits optin.granted or
	// optin.revoked.
	Consent sdk.Consent `json:"consent,omitempty"`
	// Team hands the contact's conversations to a team (affinity); null
	// closes them, so the next message is routed afresh.
	Team json.RawMessage `json:"team,omitempty"`
}

// InvalidError is a request that names something that does not exist or
// a value out of range; the admin API answers 422 with it.
type InvalidError struct{ Field, Message string }

func (e *InvalidError) Error() string { return e.Field + ": " + e.Message }

// ErrUnknownConnector is what Ops return for a name not configured.
var ErrUnknownConnector = errors.New("unknown connector")

// ConnectorStatus is a connector as GET /api/v1/connectors shows it.
type ConnectorStatus struct {
	Name         string     `json:"name"`
	Plugin       string     `json:"plugin"`
	State        string     `json:"state"` // running, starting, restarting, failed, stopped, paused, disabled
	PID          int        `json:"pid,omitempty"`
	Restarts     int        `json:"restarts"`
	Version      string     `json:"version,omitempty"`
	Capabilities []string   `json:"capabilities,omitempty"`
	LastError    string     `json:"last_error,omitempty"`
	Paused       bool       `json:"paused"`
	Breaker      string     `json:"breaker,omitempty"`
	Delivered    int64      `json:"delivered"`
	Skipped      int64      `json:"skipped"`
	Pending      int64      `json:"pending"`
	Retrying     int64      `json:"retrying"`
	Dead         int64      `json:"dead"`
	Lag          int64      `json:"lag"` // events waiting for this connector
	Cursor       int64      `json:"cursor"`
	OldestAt     *time.Time `json:"oldest_pending_at,omitempty"`
	// Sync is the contact sync's progress, for connectors that sync.
	Sync *store.SyncState `json:"sync,omitempty"`
}

// Options assemble the admin API.
type Options struct {
	Token string
	Store Store
	Ops   Ops
	// Media serves /api/v1/media (nil: those calls are not found).
	Media  Media
	Logger *slog.Logger
}

// API is the admin HTTP handler.
type API struct {
	Options
	mux *http.ServeMux
}

// New builds the admin API.
func New(opt Options) *API {
	a := &API{Options: opt, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /api/v1/events", a.listEvents)
	a.mux.HandleFunc("GET /api/v1/events/{id}", a.getEvent)
	a.mux.HandleFunc("GET /api/v1/contacts/{id}", a.getContact)
	a.mux.HandleFunc("PATCH /api/v1/contacts/{id}", a.patchContact)
	a.mux.HandleFunc("GET /api/v1/stats", a.stats)
	a.mux.HandleFunc("GET /api/v1/cluster", a.cluster)
	a.mux.HandleFunc("POST /api/v1/messages", a.sendMessage)
	a.mux.HandleFunc("GET /api/v1/messages/{id}", a.getMessage)
	a.mux.HandleFunc("GET /api/v1/messages", a.findMessage)
	a.mux.HandleFunc("POST /api/v1/messages/{id}/requeue", a.requeue)
	a.mux.HandleFunc("GET /api/v1/templates", a.listTemplates)
	a.mux.HandleFunc("POST /api/v1/templates/refresh", a.refreshTemplates)
	a.mux.HandleFunc("GET /api/v1/connectors", a.listConnectors)
	a.mux.HandleFunc("POST /api/v1/connectors/{name}/pause", a.pause)
	a.mux.HandleFunc("POST /api/v1/connectors/{name}/resume", a.resume)
	a.mux.HandleFunc("GET /api/v1/deadletters", a.listDeadLetters)
	a.mux.HandleFunc("POST /api/v1/deadletters/replay", a.replay)
	a.mediaRoutes()
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.Token == "" {
		WriteError(w, http.StatusForbidden, "admin_disabled",
			"the admin API is off: set server.admin_token in connectors.yaml (or WAHUB_SERVER__ADMIN_TOKEN) and send it as a bearer token")
		return
	}
	got, ok := BearerToken(r.Header.Get("Authorization"))
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

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 9110 §11.1), and spaces
// around the token are not part of it.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
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
	if a.Media != nil {
		for i := range events {
			a.Media.Annotate(r.Context(), &events[i])
		}
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
	if a.Media != nil {
		a.Media.Annotate(r.Context(), &ev)
	}
	deliveries, err := a.Store.EventDeliveries(r.Context(), ev.Seq)
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, struct {
		sdk.Event
		Deliveries []store.DeliveryRecord `json:"deliveries"`
	}{ev, deliveries})
}

func (a *API) listConnectors(w http.ResponseWriter, r *http.Request) {
	cs, err := a.Ops.Connectors(r.Context())
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"connectors": cs})
}

func (a *API) pause(w http.ResponseWriter, r *http.Request)  { a.setPaused(w, r, true) }
func (a *API) resume(w http.ResponseWriter, r *http.Request) { a.setPaused(w, r, false) }

func (a *API) setPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	name := r.PathValue("name")
	op := a.Ops.Resume
	if paused {
		op = a.Ops.Pause
	}
	if err := op(r.Context(), name); errors.Is(err, ErrUnknownConnector) {
		WriteError(w, http.StatusNotFound, "not_found", "no enabled connector "+name)
		return
	} else if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"name": name, "paused": paused})
}

// listDeadLetters answers a page: ?limit= (1 to 1000, default 100) and
// ?after= (the "next_after" of the previous page). next_after is present
// while more may follow.
func (a *API) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.DeadLetterFilter{Connector: q.Get("connector"), Limit: 100}
	var err error
	if v := q.Get("after"); v != "" {
		if f.After, err = strconv.ParseInt(v, 10, 64); err != nil || f.After < 0 {
			WriteError(w, http.StatusBadRequest, "bad_request", "after: want the next_after of the previous page (a non-negative integer)")
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > 1000 {
			WriteError(w, http.StatusBadRequest, "bad_request", "limit: want 1 to 1000")
			return
		}
	}
	dl, err := a.Store.DeadLetters(r.Context(), f)
	if err != nil {
		a.internal(w, err)
		return
	}
	out := map[string]any{"deadletters": dl}
	if len(dl) == f.Limit {
		out["next_after"] = dl[len(dl)-1].Cursor
	}
	WriteJSON(w, http.StatusOK, out)
}

func (a *API) replay(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Connector string   `json:"connector"`
		IDs       []string `json:"ids"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Connector == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", `want {"connector": "<name>", "ids": ["evt_…"]} (no ids: every dead letter of that connector)`)
		return
	}
	n, err := a.Ops.Replay(r.Context(), req.Connector, req.IDs)
	if errors.Is(err, ErrUnknownConnector) {
		WriteError(w, http.StatusNotFound, "not_found", "no enabled connector "+req.Connector)
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"connector": req.Connector, "replayed": n})
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

func (a *API) patchContact(w http.ResponseWriter, r *http.Request) {
	var p ContactPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request",
			`want {"attributes": {"tier": "gold", "old": null}, "consent": "granted"|"revoked", "team": "<team>"|null}: `+err.Error())
		return
	}
	err := a.Ops.UpdateContact(r.Context(), r.PathValue("id"), p)
	var inv *InvalidError
	switch {
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, http.StatusNotFound, "not_found", "no contact "+r.PathValue("id")+" (use its wa_id or user_id)")
		return
	case errors.As(err, &inv):
		WriteError(w, http.StatusUnprocessableEntity, "invalid", inv.Error())
		return
	case err != nil:
		a.internal(w, err)
		return
	}
	a.getContact(w, r)
}

func (a *API) sendMessage(w http.ResponseWriter, r *http.Request) {
	var msg sdk.OutboundMessage
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&msg); err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request",
			`want {"to": "<wa_id or user_id>", "text": "…" | "template": {"name": "…", "language": "pt_BR", "components": [...]} | "interactive": {…} | "reaction": {"message_id", "emoji"} | "media": {"type", "id" | "url", "caption", "filename"}, "reply_to": "wamid…", "idempotency_key": "…"}: `+err.Error())
		return
	}
	rec, created, err := a.Ops.SendMessage(r.Context(), msg)
	var ref *sdk.RefusedError
	var inv *InvalidError
	switch {
	case errors.As(err, &ref):
		WriteError(w, http.StatusUnprocessableEntity, ref.Code, ref.Message)
		return
	case errors.As(err, &inv):
		WriteError(w, http.StatusBadRequest, "bad_request", inv.Message)
		return
	case err != nil:
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusAccepted, map[string]any{"id": rec.ID, "state": rec.State, "duplicate": !created})
}

// listTemplates answers GET /api/v1/templates?status=&name=: the
// catalogue, with when it was last fetched.
func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) {
	c, err := a.Store.TemplateCatalogue(r.Context())
	if err != nil {
		a.internal(w, err)
		return
	}
	q := r.URL.Query()
	if status, name := strings.ToUpper(q.Get("status")), q.Get("name"); status != "" || name != "" {
		kept := c.Templates[:0]
		for _, t := range c.Templates {
			if (status == "" || t.Status == status) && (name == "" || t.Name == name) {
				kept = append(kept, t)
			}
		}
		c.Templates = kept
	}
	WriteJSON(w, http.StatusOK, c)
}

func (a *API) refreshTemplates(w http.ResponseWriter, r *http.Request) {
	res, err := a.Ops.RefreshTemplates(r.Context())
	switch {
	case errors.Is(err, ErrNoBusinessAccount):
		WriteError(w, http.StatusConflict, "no_business_account", err.Error())
		return
	case err != nil:
		WriteError(w, http.StatusBadGateway, "graph_error", "fetching the template catalogue failed: "+err.Error())
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"templates": res.Templates, "added": res.Added, "changed": res.Changed, "removed": res.Removed})
}

func (a *API) getMessage(w http.ResponseWriter, r *http.Request) {
	rec, err := a.Store.Outbound(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no message "+r.PathValue("id"))
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, rec)
}

// findMessage finds a message by who queued it and its idempotency key
// (?source=connector:slack&idempotency_key=Ev0123): what became of a
// reply a connector sent.
func (a *API) findMessage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	source, key := q.Get("source"), q.Get("idempotency_key")
	if source == "" || key == "" {
		WriteError(w, http.StatusBadRequest, "bad_request", "give source (api, connector:<name>, trigger:<name>) and idempotency_key")
		return
	}
	rec, err := a.Store.OutboundByKey(r.Context(), source, key)
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no message from "+source+" with idempotency key "+key)
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, rec)
}

func (a *API) requeue(w http.ResponseWriter, r *http.Request) {
	err := a.Store.Requeue(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no unknown or failed message "+r.PathValue("id"))
		return
	}
	if err != nil {
		a.internal(w, err)
		return
	}
	a.getMessage(w, r)
}

// stats answers GET /api/v1/stats?since=, since being RFC 3339 or a
// duration back from now ("24h", the default).
func (a *API) stats(w http.ResponseWriter, r *http.Request) {
	since := time.Now().Add(-24 * time.Hour)
	if v := r.URL.Query().Get("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			since = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			since = time.Now().Add(-d)
		} else {
			WriteError(w, http.StatusBadRequest, "bad_request", "since: want RFC 3339 (2026-11-24T00:00:00Z) or a duration (24h)")
			return
		}
	}
	st, err := a.Store.Stats(r.Context(), since)
	if err != nil {
		a.internal(w, err)
		return
	}
	// Every configured connector has its row, a new or idle one too, so
	// that a connector that has delivered nothing shows as 0, not absent.
	if cs, err := a.Ops.Connectors(r.Context()); err == nil {
		window := min(max(time.Since(since), time.Second), store.RateWindow)
		for _, c := range cs {
			if _, ok := st.Connectors[c.Name]; !ok {
				st.Connectors[c.Name] = store.ConnectorStats{PerMinuteWindow: store.Duration(window)}
			}
		}
	}
	WriteJSON(w, http.StatusOK, st)
}

// cluster answers GET /api/v1/cluster.
func (a *API) cluster(w http.ResponseWriter, r *http.Request) {
	nodes, err := a.Ops.Cluster(r.Context())
	if err != nil {
		a.internal(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
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
