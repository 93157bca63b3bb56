// Package webhooktest is a fake Standard Webhooks endpoint for tests of
// the webhook connector, end-to-end tests and the sandbox, the way
// net/http/httptest fakes a server: a Receiver verifies each request's
// signature, records it, counts attempts per webhook-id and answers as
// scripted.
//
//	rcv := webhooktest.NewReceiver([]byte("secret"))
//	defer rcv.Close()
//	rcv.Script(webhooktest.Response{Status: 503, RetryAfter: "30"})
//	// configure the connector with url: rcv.URL(), secret: secret
//	// ... deliver ...
//	rcv.Attempts("evt_1") // 2: the 503, then the redelivery
//
// Like a real receiver it treats webhook-id as the idempotency key:
// Delivered lists each accepted event once, however often it came.
package webhooktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
	"github.com/wahub/wahub/plugins/webhook"
	"github.com/wahub/wahub/sdk"
)

// maxBody bounds what one request may send; the hub's events are far
// smaller.
const maxBody = 16 << 20

// Response is how the Receiver answers one request.
type Response struct {
	// Status is the HTTP status; 0 means 200.
	Status int `json:"status,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string `json:"retry_after,omitempty"`
	// Header holds more response headers (a redirect's Location).
	Header http.Header `json:"header,omitempty"`
	Body   string      `json:"body,omitempty"`
	// Hang makes the receiver never answer: the request is held until
	// the client gives up (its timeout, a cancelled context) or the
	// Receiver is closed. It is how tests produce a timeout without
	// sleeping.
	Hang bool `json:"hang,omitempty"`
}

// Delivery is one request the Receiver got.
type Delivery struct {
	// ID is the webhook-id header.
	ID     string `json:"id"`
	Method string `json:"method"`
	// Path is the request's path and query.
	Path string `json:"path"`
	// Attempt counts the requests with this ID so far, this one included.
	Attempt int         `json:"attempt"`
	Header  http.Header `json:"header"`
	Body    []byte      `json:"-"`
	// Event is the body decoded; zero if it did not decode.
	Event sdk.Event `json:"event"`
	// Valid reports whether webhook.Verify accepted the request; Error
	// says why not (or why the body did not decode).
	Valid    bool      `json:"valid"`
	Error    string    `json:"error,omitempty"`
	Response Response  `json:"response"`
	At       time.Time `json:"at"`
}

// Receiver is a fake webhook endpoint. It is an http.Handler: NewReceiver
// serves it on a loopback httptest.Server, NewHandler leaves mounting it
// to the caller (the sandbox).
type Receiver struct {
	secret    []byte
	srv       *httptest.Server
	closed    chan struct{}
	closeOnce sync.Once

	clock  fakeapi.Clock
	script fakeapi.Faults[Response]

	mu        sync.Mutex
	tolerance time.Duration
	handler   func(*http.Request, []byte) Response
	received  []Delivery
	attempts  map[string]int
	accepted  map[string]bool
	delivered []sdk.Event
}

// NewReceiver starts a Receiver verifying signatures under secret (the
// key bytes: for a "whsec_" secret, what webhook.DecodeSecret returns).
// Close it when done.
func NewReceiver(secret []byte) *Receiver {
	r := NewHandler(secret)
	r.srv = httptest.NewServer(r)
	return r
}

// NewHandler returns a Receiver that is not listening anywhere; serve it
// with any http.Server or mux.
func NewHandler(secret []byte) *Receiver {
	return &Receiver{
		secret:   append([]byte(nil), secret...),
		closed:   make(chan struct{}),
		attempts: map[string]int{},
		accepted: map[string]bool{},
	}
}

// URL is where NewReceiver's server listens; "" for NewHandler's.
func (r *Receiver) URL() string {
	if r.srv == nil {
		return ""
	}
	return r.srv.URL
}

// Close releases hanging requests and stops the server.
func (r *Receiver) Close() {
	r.closeOnce.Do(func() { close(r.closed) })
	if r.srv != nil {
		r.srv.Close()
	}
}

// Script queues answers for the next requests with a valid signature, in
// order; once they are used up the Receiver answers 200.
func (r *Receiver) Script(responses ...Response) { r.script.Push(responses...) }

// SetHandler answers every request with h instead of the script, whether
// its signature is valid or not (Received still tells). h gets the raw
// body and may be called concurrently.
func (r *Receiver) SetHandler(h func(req *http.Request, body []byte) Response) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handler = h
}

// SetClock sets the clock timestamps are checked against, for a sender
// whose clock a test fixed; the default is time.Now.
func (r *Receiver) SetClock(now func() time.Time) { r.clock.Set(now) }

// SetTolerance sets how far a timestamp may be from the clock;
// 0 means webhook.DefaultTolerance.
func (r *Receiver) SetTolerance(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tolerance = d
}

// Received returns every request so far, in arrival order.
func (r *Receiver) Received() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.received...)
}

// Attempts returns how many requests came with webhook-id id.
func (r *Receiver) Attempts(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

// Delivered returns the events the Receiver accepted (valid signature,
// 2xx answer), each webhook-id once, in the order first accepted: what a
// receiver that deduplicates by webhook-id, as Standard Webhooks asks,
// would have processed.
func (r *Receiver) Delivered() []sdk.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdk.Event(nil), r.delivered...)
}

// ServeHTTP verifies, records and answers one request.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	tolerance, handler := r.tolerance, r.handler
	r.mu.Unlock()

	d := Delivery{ID: req.Header.Get(webhook.HeaderID), Method: req.Method, Path: req.URL.RequestURI(), Header: req.Header.Clone(), Body: body, At: r.clock.Now()}
	verr := webhook.Verify(r.secret, req.Header, body, d.At, tolerance)
	d.Valid = verr == nil
	if verr != nil {
		d.Error = verr.Error()
	}
	if err := json.Unmarshal(body, &d.Event); err != nil && d.Error == "" {
		d.Error = "body is not an event: " + err.Error()
	}

	// Recorded on arrival, so that Received and Attempts show a request
	// a handler is still holding.
	var resp Response
	r.mu.Lock()
	r.attempts[d.ID]++
	d.Attempt = r.attempts[d.ID]
	i := len(r.received)
	r.received = append(r.received, d)
	if handler == nil {
		if !d.Valid {
			resp = Response{Status: http.StatusUnauthorized, Body: verr.Error()}
		} else if scripted, ok := r.script.Next(nil); ok {
			resp = scripted
		}
	}
	r.mu.Unlock()
	if handler != nil {
		// Outside the lock: a handler may block (to test concurrency) or
		// call back into the Receiver.
		resp = handler(req, body)
	}
	if resp.Status == 0 && !resp.Hang {
		resp.Status = http.StatusOK
	}
	r.mu.Lock()
	r.received[i].Response = resp
	if d.Valid && resp.Status >= 200 && resp.Status < 300 && !r.accepted[d.ID] {
		r.accepted[d.ID] = true
		r.delivered = append(r.delivered, d.Event)
	}
	r.mu.Unlock()

	if resp.Hang {
		select {
		case <-req.Context().Done():
		case <-r.closed:
		}
		return
	}
	for name, values := range resp.Header {
		w.Header()[http.CanonicalHeaderKey(name)] = values
	}
	if resp.RetryAfter != "" {
		w.Header().Set("Retry-After", resp.RetryAfter)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(resp.Status)
	fmt.Fprint(w, resp.Body)
}
