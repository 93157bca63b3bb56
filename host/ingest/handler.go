// Package ingest receives Meta's WhatsApp webhooks: it answers the
// verification handshake, checks each POST's signature over the raw bytes,
// turns the body into events and appends them to the log. It answers 200
// only once the events are committed, so Meta retries anything the hub did
// not keep.
package ingest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahub/wahub/sdk"
)

// DefaultMaxBody is the body limit when none is configured. Meta's payloads
// are at most about 3 MB.
const DefaultMaxBody = 4 << 20

// Log is where accepted events go; the store implements it.
type Log interface {
	// Append commits events durably, skipping those already present. It
	// sets Seq on the new ones and returns how many there were.
	Append(ctx context.Context, events []sdk.Event) (int, error)
}

// Handler serves GET and POST on the WhatsApp webhook path.
type Handler struct {
	// Secrets are the app secrets a POST may be signed with.
	Secrets [][]byte
	// VerifyToken answers Meta's GET handshake; empty refuses every handshake.
	VerifyToken string
	MaxBody     int64
	Log         Log
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics
}

// Metrics are the ingest series on /metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	events   *prometheus.CounterVec
	dups     prometheus.Counter
}

// NewMetrics registers the ingest series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_ingest_requests_total",
			Help: "Webhook requests on /webhooks/whatsapp by result.",
		}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wahub_ingest_request_seconds",
			Help:    "Time from receiving a webhook request to answering it, by result.",
			Buckets: []float64{.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_ingest_events_total",
			Help: "New events appended to the log, by type.",
		}, []string{"type"}),
		dups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wahub_ingest_duplicate_events_total",
			Help: "Events received again (Meta's retries) and not appended.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.events, m.dups)
	return m
}

func (m *Metrics) observe(result string, start time.Time) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(result).Inc()
	m.latency.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.verify(w, r)
	case http.MethodPost:
		h.receive(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET for verification and POST for events")
	}
}

// verify answers Meta's subscription handshake. The challenge goes back
// byte for byte as plain text: escaping it breaks verification.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token := q.Get("hub.verify_token")
	if q.Get("hub.mode") != "subscribe" || h.VerifyToken == "" ||
		subtle.ConstantTimeCompare([]byte(token), []byte(h.VerifyToken)) != 1 {
		h.logger().Warn("webhook verification refused", "mode", q.Get("hub.mode"),
			"hint", "the verify token in Meta's dashboard must equal whatsapp.verify_token")
		http.Error(w, "verification failed", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, q.Get("hub.challenge"))
}

func (h *Handler) receive(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	now := h.Now
	if now == nil {
		now = time.Now
	}
	received := now().UTC()
	maxBody := h.MaxBody
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if r.ContentLength > maxBody {
		h.Metrics.observe("too_large", start)
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "body exceeds "+strconv.FormatInt(maxBody, 10)+" bytes (server.max_body_bytes)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.Metrics.observe("too_large", start)
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "body exceeds "+strconv.FormatInt(maxBody, 10)+" bytes (server.max_body_bytes)")
			return
		}
		h.Metrics.observe("bad_request", start)
		writeError(w, http.StatusBadRequest, "unreadable_body", "could not read the body")
		return
	}
	if !VerifySignature(r.Header.Get(SignatureHeader), body, h.Secrets) {
		h.Metrics.observe("bad_signature", start)
		h.logger().Warn("webhook signature rejected", "remote", r.RemoteAddr,
			"has_header", r.Header.Get(SignatureHeader) != "",
			"hint", "the POST must be signed with whatsapp.app_secret (the app secret, not the verify token)")
		writeError(w, http.StatusUnauthorized, "bad_signature", "X-Hub-Signature-256 is missing or does not match the body")
		return
	}
	// JSON is UTF-8 (RFC 8259 §8.1). A body that is not would be stored
	// and served back, byte for byte in each event's raw item, as invalid
	// JSON to the admin API and every connector: refuse it whole.
	if !utf8.Valid(body) {
		h.Metrics.observe("bad_request", start)
		h.logger().Info("webhook refused: the body is not valid UTF-8", "remote", r.RemoteAddr)
		writeError(w, http.StatusBadRequest, "invalid_utf8", "the body is not valid UTF-8")
		return
	}
	events, err := Parse(body, received)
	if err != nil {
		h.Metrics.observe("bad_request", start)
		writeError(w, http.StatusBadRequest, "not_an_envelope", err.Error())
		return
	}
	added, err := h.Log.Append(r.Context(), events)
	if err != nil {
		h.Metrics.observe("store_error", start)
		h.logger().Error("webhook not stored; Meta will retry it", "events", len(events), "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "store_unavailable", "the events could not be stored; retry later")
		return
	}
	if h.Metrics != nil {
		for _, ev := range events {
			if ev.Seq != 0 {
				h.Metrics.events.WithLabelValues(string(ev.Type)).Inc()
			}
		}
		h.Metrics.dups.Add(float64(len(events) - added))
	}
	h.Metrics.observe("ok", start)
	h.logger().Debug("webhook stored", "events", len(events), "new", added)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"events": len(events), "new": added})
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// writeError answers in the hub's one error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
