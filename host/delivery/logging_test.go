package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// logBuffer collects the engine's JSON log and tells each write.
type logBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{wrote: make(chan struct{}, 1)} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return l.b.Write(p)
}

func (l *logBuffer) records() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func (l *logBuffer) count(level, msg string) int {
	n := 0
	for _, r := range l.records() {
		if r["level"] == level && r["msg"] == msg {
			n++
		}
	}
	return n
}

// waitLogs waits until cond holds over the log, re-checking on each write.
func (h *harness) waitLogs(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-h.logs.wrote:
		case <-deadline:
			h.t.Fatalf("%s: not in the log within 10s:\n%s", what, h.logs.b.String())
		}
	}
}

const (
	retryMsg   = "delivery failed; will retry"
	summaryMsg = "more delivery retries were not logged one by one"
	deadMsg    = "delivery gave up: the event is a dead letter (GET /api/v1/deadletters, replay with wahub deadletters replay)"
)

// A failing connector logs a WARN per retry, at most retryLogBurst a
// minute with the rest summed up, and an ERROR per dead letter; the
// records name the connector, event, attempt, error and next try, with
// durations as text.
func TestRetriesAndDeadLettersAreLogged(t *testing.T) {
	down := errors.New("endpoint answered 503")
	h := start(t, Policy{BatchSize: 10, MaxAttempts: 3, Initial: time.Second, Max: time.Second},
		newFake(func(_ int, ev sdk.Event) sdk.Result { return sdk.RetryResult(ev.ID, 0, down) }))
	// Eight conversations in one commit, so that one batch takes them.
	var evs []sdk.Event
	var ids []string
	for _, conv := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		id := "55" + conv + "-000"
		evs = append(evs, sdk.Event{ID: id, Type: sdk.TypeMessageReceived, OccurredAt: t0, ReceivedAt: t0,
			Business: &sdk.Business{PhoneNumberID: "pn"}, Contact: &sdk.Contact{WAID: "55" + conv},
			Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: "hi"}})
		ids = append(ids, id)
	}
	if _, err := h.st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}

	// Attempt 1 of eight events: five WARNs, three counted.
	if n := len(h.next()); n != 8 {
		t.Fatalf("first batch: %d events", n)
	}
	h.waitLogs("five retries", func() bool { return h.logs.count("WARN", retryMsg) == retryLogBurst })
	var first map[string]any
	for _, r := range h.logs.records() {
		if r["msg"] == retryMsg {
			first = r
			break
		}
	}
	if first["connector"] != "c" || first["event"] != ids[0] || first["attempt"] != float64(1) || first["err"] != down.Error() {
		t.Errorf("retry record %v", first)
	}
	if d, err := time.ParseDuration(first["retry_in"].(string)); err != nil || d <= 0 || d > time.Second {
		t.Errorf("retry_in %v: want text like \"750ms\" within the policy's 1s", first["retry_in"])
	}
	if _, err := time.Parse(time.RFC3339, first["next_at"].(string)); err != nil {
		t.Errorf("next_at %v: %v", first["next_at"], err)
	}

	// Attempt 2 within the same minute: nothing more one by one.
	h.advance(time.Second)
	h.next()
	// Attempt 3 is the last: eight dead letters, each an ERROR.
	h.advance(time.Second)
	h.next()
	h.waitLogs("eight dead letters", func() bool { return h.logs.count("ERROR", deadMsg) == 8 })
	if n := h.logs.count("WARN", retryMsg); n != retryLogBurst {
		t.Errorf("%d retries logged within one minute, want %d", n, retryLogBurst)
	}
	for _, r := range h.logs.records() {
		if r["msg"] == deadMsg && (r["connector"] != "c" || r["attempts"] != float64(3) || !strings.Contains(r["err"].(string), down.Error())) {
			t.Errorf("dead letter record %v", r)
		}
	}

	// A minute later the next retry sums up the eleven not logged.
	h.clock.Advance(retryLogWindow)
	h.append("55z", 1)
	h.next()
	h.waitLogs("the summary", func() bool { return h.logs.count("WARN", summaryMsg) == 1 })
	for _, r := range h.logs.records() {
		if r["msg"] == summaryMsg && (r["retries"] != float64(11) || r["last_err"] != down.Error()) {
			t.Errorf("summary %v, want 11 retries", r)
		}
	}
	h.waitLogs("the new retry", func() bool { return h.logs.count("WARN", retryMsg) == retryLogBurst+1 })
}
