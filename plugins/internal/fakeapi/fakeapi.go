// Package fakeapi is the core the connectors' fake APIs (hubspottest,
// zendesktest, freshdesktest, bitrix24test, slacktest, webhooktest) share:
// a settable clock, a queue of scripted faults, a log of the requests
// they answered and a ResponseWriter that remembers the status. What a
// fault or a request record holds, and how an error looks, stays with
// each fake: those are what mimic one real API.
package fakeapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Clock is a fake's clock, replaceable while requests are served. The
// zero value is time.Now.
type Clock struct {
	mu  sync.Mutex
	now func() time.Time
}

// Set replaces the clock; nil goes back to time.Now.
func (c *Clock) Set(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	now := c.now
	c.mu.Unlock()
	if now == nil {
		return time.Now()
	}
	return now()
}

// Faults is a fake's scripted failures: a queue of faults, each used
// once, and optionally one fault answered to every k-th request it
// applies to. The zero value is empty and ready to use; it is safe for
// concurrent use.
type Faults[F any] struct {
	mu     sync.Mutex
	queue  []F
	every  int
	everyF F
	seen   int
}

// Push queues faults for the next requests, in order.
func (q *Faults[F]) Push(faults ...F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, faults...)
}

// Repeat queues f n times.
func (q *Faults[F]) Repeat(n int, f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.queue = append(q.queue, f)
	}
}

// Every answers every k-th request f applies to with f, counting from
// now (k = 2: half of them); k ≤ 0 stops it.
func (q *Faults[F]) Every(k int, f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.every, q.everyF, q.seen = k, f, 0
}

// Next takes the fault that answers a request: the first queued one that
// applies to it (applies nil: every fault applies), else the every-k
// fault when its turn has come. Faults that do not apply stay queued.
func (q *Faults[F]) Next(applies func(F) bool) (F, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, f := range q.queue {
		if applies == nil || applies(f) {
			q.queue = append(q.queue[:i:i], q.queue[i+1:]...)
			return f, true
		}
	}
	if q.every > 0 && (applies == nil || applies(q.everyF)) {
		q.seen++
		if q.seen%q.every == 0 {
			return q.everyF, true
		}
	}
	var zero F
	return zero, false
}

// Log is the record of what a fake answered, in arrival order. With Max
// set it keeps the latest Max/2 to Max entries, so that a long sandbox
// session does not grow without bound. The zero value is an unbounded,
// empty log; it is safe for concurrent use.
type Log[R any] struct {
	Max int

	mu      sync.Mutex
	entries []R
}

// Add appends r.
func (l *Log[R]) Add(r R) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max > 0 && len(l.entries) >= l.Max {
		l.entries = append(l.entries[:0], l.entries[len(l.entries)-l.Max/2:]...)
	}
	l.entries = append(l.entries, r)
}

// All returns a copy of the log.
func (l *Log[R]) All() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]R(nil), l.entries...)
}

// Last returns a copy of the latest n entries at most.
func (l *Log[R]) Last(n int) []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]R(nil), l.entries[max(0, len(l.entries)-n):]...)
}

// Len is the number of entries.
func (l *Log[R]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

// Count counts the entries match accepts.
func (l *Log[R]) Count(match func(R) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.entries {
		if match(r) {
			n++
		}
	}
	return n
}

// Recorder is a ResponseWriter that remembers the status sent: the first
// WriteHeader's, or 200 when the handler wrote a body without one, as
// net/http would send it. Status is 0 while nothing was written.
type Recorder struct {
	http.ResponseWriter
	Status int
}

// WriteHeader records code and passes it on.
func (r *Recorder) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and passes b on.
func (r *Recorder) Write(b []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Discard is a ResponseWriter that swallows an answer, for a fault that
// lets a request take effect and then loses its answer.
type Discard struct{ Headers http.Header }

// Header is the answer's header, kept apart from the real one.
func (d *Discard) Header() http.Header {
	if d.Headers == nil {
		d.Headers = http.Header{}
	}
	return d.Headers
}

// Write drops b.
func (d *Discard) Write(b []byte) (int, error) { return len(b), nil }

// WriteHeader drops the status.
func (d *Discard) WriteHeader(int) {}

// Digits keeps the digits of s: how the fakes compare phone numbers that
// a client and a user wrote differently (+55 11 98765-0001, 5511987650001).
func Digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// ContentTypeJSON is the Content-Type most APIs answer JSON with.
const ContentTypeJSON = "application/json; charset=utf-8"

// WriteJSON answers status with v as JSON, under contentType (the exact
// spelling is part of what a fake mimics: HubSpot writes no space before
// charset), without the newline a json.Encoder would add. v must encode:
// a fake's answers are its own types, so a failure is a bug in the fake
// and panics.
func WriteJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("fakeapi: encode answer: " + err.Error())
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
