package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/errtext"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// fakeConnector is a scripted plugin: answer decides each event's result,
// and every call is reported on calls.
type fakeConnector struct {
	mu     sync.Mutex
	answer func(call int, ev sdk.Event) sdk.Result
	fail   error // the whole call fails (plugin unreachable)
	calls  chan []sdk.Event
	n      int
	up     chan struct{}
}

func newFake(answer func(call int, ev sdk.Event) sdk.Result) *fakeConnector {
	up := make(chan struct{})
	close(up)
	return &fakeConnector{answer: answer, calls: make(chan []sdk.Event, 1000), up: up}
}

func (f *fakeConnector) DeliverJSON(ctx context.Context, raws [][]byte) ([]sdk.Result, error) {
	events := make([]sdk.Event, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &events[i]); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	f.n++
	call, fail := f.n, f.fail
	f.mu.Unlock()
	f.calls <- events
	if fail != nil {
		return nil, fail
	}
	out := make([]sdk.Result, len(events))
	for i, ev := range events {
		out[i] = f.answer(call, ev)
		out[i].EventID = ev.ID
	}
	return out, nil
}

func (f *fakeConnector) Deliverer(string) (Deliverer, error) { return f, nil }
func (f *fakeConnector) Running(string) <-chan struct{}      { return f.up }

type harness struct {
	t      *testing.T
	logs   *logBuffer
	st     *store.Store
	clock  *clockwork.FakeClock
	fake   *fakeConnector
	engine *Engine
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, pol Policy, fake *fakeConnector) *harness {
	t.Helper()
	return startWith(t, pol, fake, nil)
}

// startWith is start with a chance to change the engine's options.
func startWith(t *testing.T, pol Policy, fake *fakeConnector, edit func(*Options)) *harness {
	t.Helper()
	clock := clockwork.NewFakeClockAt(t0)
	st, err := store.Open(filepath.Join(t.TempDir(), "wahub.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogBuffer()
	opt := Options{
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Store:      st,
		Connectors: fake,
		Decide:     func(*sdk.Event, store.RouteState) store.Decision { return store.Decision{Connectors: []string{"c"}} },
		Policies:   map[string]Policy{"c": pol},
		Clock:      clock,
		Rand:       rand.New(rand.NewPCG(1, 2)),
	}
	if edit != nil {
		edit(&opt)
	}
	e := New(opt)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, logs: logs, st: st, clock: clock, fake: fake, engine: e, cancel: cancel, done: make(chan struct{})}
	go func() { e.Run(ctx); close(h.done) }()
	t.Cleanup(func() {
		cancel()
		<-h.done
		st.Close()
	})
	return h
}

// append logs n text messages, conversation by conversation.
func (h *harness) append(conv string, n int) []string {
	h.t.Helper()
	var evs []sdk.Event
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%03d", conv, i)
		evs = append(evs, sdk.Event{ID: id, Type: sdk.TypeMessageReceived, OccurredAt: t0, ReceivedAt: t0,
			Business: &sdk.Business{PhoneNumberID: "pn"}, Contact: &sdk.Contact{WAID: conv},
			Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: "hi"}})
		ids = append(ids, id)
	}
	if _, err := h.st.Append(context.Background(), evs); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// next waits for the plugin's next call.
func (h *harness) next() []sdk.Event {
	h.t.Helper()
	select {
	case evs := <-h.fake.calls:
		return evs
	case <-time.After(10 * time.Second):
		h.t.Fatal("no delivery within 10s")
		return nil
	}
}

// idle waits until the worker sleeps on the clock, then moves it by d.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
		h.t.Fatalf("worker never waited on the clock: %v", err)
	}
	h.clock.Advance(d)
}

// stepUntil moves the clock by step each time the worker sleeps on it,
// until cond holds (checked after every commit of the store).
func (h *harness) stepUntil(step time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		changed := h.st.Changed()
		if cond() {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		waiting := make(chan error, 1)
		go func() { waiting <- h.clock.BlockUntilContext(ctx, 1) }()
		select {
		case err := <-waiting:
			if err == nil {
				h.clock.Advance(step)
			}
		case <-changed:
		case <-deadline:
			cancel()
			h.t.Fatal("condition not reached within 20s")
		}
		cancel()
	}
}

func (h *harness) deliveries(id string) []store.DeliveryRecord {
	h.t.Helper()
	ev, err := h.st.Event(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	recs, err := h.st.EventDeliveries(context.Background(), ev.Seq)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// settle waits until every delivery of the connector is out of pending.
func (h *harness) counts() store.ConnectorCounts {
	h.t.Helper()
	c, err := h.st.ConnectorCounts(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	if c["c"] == nil {
		return store.ConnectorCounts{}
	}
	return *c["c"]
}

func delivered(int, sdk.Event) sdk.Result { return sdk.Result{Outcome: sdk.Delivered} }

func TestDeliversInLogOrder(t *testing.T) {
	h := start(t, Policy{BatchSize: 10}, newFake(delivered))
	ids := h.append("5511", 25)
	var got []string
	for len(got) < 25 {
		for _, ev := range h.next() {
			got = append(got, ev.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("order %v", got)
	}
	// Wait for the last batch's outcome to be recorded: the worker goes
	// back to waiting for new events, which is not on the clock, so poll
	// the store through the Changed signal.
	waitFor(t, h.st, func() bool { return h.counts().Delivered == 25 })
	if rec := h.deliveries(ids[0]); len(rec) != 1 || rec[0].State != store.StateDelivered || len(rec[0].Attempts) != 1 {
		t.Fatalf("deliveries of first event: %+v", rec)
	}
}

// waitFor re-checks cond after every commit of the store.
func waitFor(t *testing.T, st *store.Store, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch := st.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("condition not reached within 10s")
		}
	}
}

func TestFailingConversationDoesNotBlockOthers(t *testing.T) {
	fake := newFake(func(call int, ev sdk.Event) sdk.Result {
		if ev.Contact.WAID == "bad" {
			return sdk.Result{Outcome: sdk.Retry, Error: "503"}
		}
		return sdk.Result{Outcome: sdk.Delivered}
	})
	h := start(t, Policy{BatchSize: 50, MaxAttempts: 100}, fake)
	h.append("bad", 3)
	ids := h.append("good", 200)
	var got []string
	for len(got) < 200 {
		var bad []string
		for _, ev := range h.next() {
			if ev.Contact.WAID == "good" {
				got = append(got, ev.ID)
			} else {
				bad = append(bad, ev.ID)
			}
		}
		// bad-000 never gets through, so a batch may carry bad events
		// only in order and starting with it.
		for i, id := range bad {
			if id != fmt.Sprintf("bad-%03d", i) {
				t.Fatalf("bad conversation sent as %v: order broken", bad)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("good conversation out of order")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	fake := newFake(func(call int, ev sdk.Event) sdk.Result {
		if call == 1 {
			return sdk.Result{Outcome: sdk.Retry, RetryAfter: 30 * time.Second, Error: "429"}
		}
		return sdk.Result{Outcome: sdk.Delivered}
	})
	h := start(t, Policy{}, fake)
	ids := h.append("5511", 1)
	h.next()
	h.advance(29 * time.Second)
	select {
	case <-fake.calls:
		t.Fatal("retried before Retry-After passed")
	default:
	}
	h.advance(time.Second)
	h.next()
	waitFor(t, h.st, func() bool { return h.counts().Delivered == 1 })
	rec := h.deliveries(ids[0])[0]
	if len(rec.Attempts) != 2 || rec.Attempts[0].Outcome != "retry" || rec.Attempts[0].RetryAfter != 30000 {
		t.Fatalf("attempts %+v", rec.Attempts)
	}
}

func TestBackoffGrowsAndEndsInDeadLetterThenReplay(t *testing.T) {
	var mu sync.Mutex
	fixed := false
	fake := newFake(func(call int, ev sdk.Event) sdk.Result {
		mu.Lock()
		defer mu.Unlock()
		if fixed {
			return sdk.Result{Outcome: sdk.Delivered}
		}
		return sdk.Result{Outcome: sdk.Retry, Error: "503 Service Unavailable"}
	})
	h := start(t, Policy{MaxAttempts: 4, Initial: time.Second, Max: 3 * time.Second}, fake)
	ids := h.append("5511", 1)
	h.stepUntil(100*time.Millisecond, func() bool { return h.counts().Dead == 1 })
	var times []time.Time
	for len(fake.calls) > 0 {
		<-fake.calls
	}
	for _, a := range h.deliveries(ids[0])[0].Attempts {
		times = append(times, a.At)
	}
	if len(times) != 4 {
		t.Fatalf("%d attempts, want 4", len(times))
	}
	// Equal jitter: the n-th delay is in [d/2, d] with d = 1s, 2s, 3s
	// (capped), seen through 100ms clock steps.
	bounds := [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}, {1500 * time.Millisecond, 3 * time.Second}}
	for i := range bounds {
		g := times[i+1].Sub(times[i])
		if g < bounds[i][0] || g > bounds[i][1]+100*time.Millisecond {
			t.Errorf("retry %d after %s, want within %v", i+1, g, bounds[i])
		}
	}
	waitFor(t, h.st, func() bool { return h.counts().Dead == 1 })
	dl, err := h.st.DeadLetters(context.Background(), store.DeadLetterFilter{Connector: "c"})
	if err != nil || len(dl) != 1 || dl[0].EventID != ids[0] || dl[0].Attempts != 4 {
		t.Fatalf("dead letters %+v %v", dl, err)
	}
	mu.Lock()
	fixed = true
	mu.Unlock()
	if n, err := h.st.Replay(context.Background(), "c", nil); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	h.engine.Wake("c")
	h.next()
	waitFor(t, h.st, func() bool { return h.counts().Delivered == 1 })
}

func TestPermanentFailureIsDeadAtOnce(t *testing.T) {
	h := start(t, Policy{}, newFake(func(int, sdk.Event) sdk.Result {
		return sdk.Result{Outcome: sdk.Failed, Error: "400 Bad Request"}
	}))
	h.append("5511", 2)
	h.next()
	waitFor(t, h.st, func() bool { return h.counts().Dead == 2 })
}

func TestUnreachablePluginRetriesTheBatch(t *testing.T) {
	fake := newFake(delivered)
	fake.fail = errors.New("plugin unavailable: connection reset")
	h := start(t, Policy{}, fake)
	ids := h.append("5511", 3)
	if got := h.next(); len(got) != 3 {
		t.Fatalf("first batch %d events", len(got))
	}
	fake.mu.Lock()
	fake.fail = nil
	fake.mu.Unlock()
	h.advance(2 * time.Second)
	h.next()
	waitFor(t, h.st, func() bool { return h.counts().Delivered == 3 })
	rec := h.deliveries(ids[2])[0]
	if len(rec.Attempts) != 2 || rec.Attempts[0].Outcome != "error" {
		t.Fatalf("attempts %+v", rec.Attempts)
	}
}

func TestPauseKeepsEverythingAndResumeDelivers(t *testing.T) {
	h := start(t, Policy{}, newFake(delivered))
	if err := h.engine.Pause(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	h.append("5511", 5)
	waitFor(t, h.st, func() bool { return h.counts().Pending == 5 })
	select {
	case <-h.fake.calls:
		t.Fatal("delivered while paused")
	default:
	}
	if err := h.engine.Resume(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	h.next()
	waitFor(t, h.st, func() bool { return h.counts().Delivered == 5 })
	if err := h.engine.Pause(context.Background(), "nope"); !errors.Is(err, ErrUnknownConnector) {
		t.Fatalf("pause of unknown connector: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	h := start(t, Policy{RatePerSecond: 2, BatchSize: 100}, newFake(delivered))
	h.append("5511", 6)
	// Burst 2: batches of at most 2, one batch per second after the first.
	if got := h.next(); len(got) != 2 {
		t.Fatalf("first batch %d events, want 2 (the burst)", len(got))
	}
	for i := 0; i < 2; i++ {
		h.advance(time.Second)
		if got := h.next(); len(got) != 2 {
			t.Fatalf("batch %d: %d events", i+2, len(got))
		}
	}
}

func TestBreaker(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	b := newBreaker(clock)
	steps := []struct {
		ok        bool
		advance   time.Duration
		wantState string
		wantWait  time.Duration
	}{
		{false, 0, "closed", 0},
		{false, 0, "closed", 0},
		{false, 0, "closed", 0},
		{false, 0, "closed", 0},
		{false, 0, "open", breakerMinCooldown}, // 5th failure in a row trips it
		{false, breakerMinCooldown, "open", 2 * breakerMinCooldown},
		{true, 0, "closed", 0},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		b.record(s.ok)
		if got := b.state(); got != s.wantState {
			t.Errorf("step %d: state %s, want %s", i, got, s.wantState)
		}
		wait := time.Duration(0)
		if r := b.readyAt(); r.After(clock.Now()) {
			wait = r.Sub(clock.Now())
		}
		if wait != s.wantWait {
			t.Errorf("step %d: wait %s, want %s", i, wait, s.wantWait)
		}
	}
	clock.Advance(breakerMaxCooldown * 10)
	for i := 0; i < 20; i++ {
		b.record(false)
	}
	if r := b.readyAt(); r.Sub(clock.Now()) != breakerMaxCooldown {
		t.Errorf("cool-down grew to %s, want the cap %s", r.Sub(clock.Now()), breakerMaxCooldown)
	}
}

func TestOpenBreakerHoldsDeliveries(t *testing.T) {
	fake := newFake(delivered)
	fake.fail = errors.New("unavailable")
	h := start(t, Policy{MaxAttempts: 100, Initial: time.Second, Max: time.Second}, fake)
	h.append("5511", 1)
	h.stepUntil(100*time.Millisecond, func() bool { return h.engine.Breaker("c") == "open" })
	calls := len(fake.calls)
	fake.mu.Lock()
	fake.fail = nil
	fake.mu.Unlock()
	// The retry is due after 1s, but the breaker holds it for its cool-down.
	h.stepUntil(100*time.Millisecond, func() bool { return h.counts().Delivered == 1 })
	if got := h.clock.Since(h.deliveries("5511-000")[0].Attempts[breakerThreshold-1].At); got < breakerMinCooldown {
		t.Errorf("delivered %s after the breaker opened, want at least the %s cool-down", got, breakerMinCooldown)
	}
	if calls != breakerThreshold {
		t.Errorf("%d calls before the breaker opened, want %d", calls, breakerThreshold)
	}
}

// An event the connector held back behind a failing one of its
// conversation keeps its retry budget: only the failing event dies.
func TestHeldEventsKeepTheirRetryBudget(t *testing.T) {
	fake := newFake(func(call int, ev sdk.Event) sdk.Result {
		if strings.HasSuffix(ev.ID, "-000") {
			return sdk.Result{Outcome: sdk.Retry, Error: "503 Service Unavailable"}
		}
		if call <= 3 {
			return sdk.HeldResult(ev.ID, 0, "behind 5511-000")
		}
		return sdk.Result{Outcome: sdk.Delivered}
	})
	h := start(t, Policy{MaxAttempts: 3, Initial: time.Second, Max: time.Second}, fake)
	ids := h.append("5511", 2)
	h.stepUntil(100*time.Millisecond, func() bool { c := h.counts(); return c.Dead == 1 && c.Delivered == 1 })
	if got := h.deliveries(ids[0])[0]; got.State != store.StateDead || len(got.Attempts) != 3 {
		t.Fatalf("failing event: state %s, %d attempts; want dead after 3", got.State, len(got.Attempts))
	}
	got := h.deliveries(ids[1])[0]
	if got.State != store.StateDelivered || len(got.Attempts) != 1 || got.Attempts[0].Outcome != "delivered" {
		t.Fatalf("held event: %+v; want delivered with its one real attempt recorded", got)
	}
}

// appendText logs one text message per entry of texts in conversation conv.
func (h *harness) appendText(conv string, texts ...string) []string {
	h.t.Helper()
	var evs []sdk.Event
	var ids []string
	for i, text := range texts {
		id := fmt.Sprintf("%s-%03d", conv, i)
		evs = append(evs, sdk.Event{ID: id, Type: sdk.TypeMessageReceived, OccurredAt: t0, ReceivedAt: t0,
			Business: &sdk.Business{PhoneNumberID: "pn"}, Contact: &sdk.Contact{WAID: conv},
			Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: text}})
		ids = append(ids, id)
	}
	if _, err := h.st.Append(context.Background(), evs); err != nil {
		h.t.Fatal(err)
	}
	return ids
}

// Batches are split by encoded size below the plugin call's limit; an
// event larger than the limit by itself becomes a dead letter saying so,
// and the others are delivered.
func TestBatchesSplitBySize(t *testing.T) {
	const limit = 4000
	var mu sync.Mutex
	var sizes []int
	fake := newFake(delivered)
	h := startWith(t, Policy{BatchSize: 100}, fake, func(o *Options) {
		o.MaxBatchBytes = limit
		// Recorded by a wrapper: what each call carried in bytes.
		o.Connectors = sizeRecorder{fake, func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }}
	})
	big := strings.Repeat("x", 1500)
	texts := []string{big, big, big, strings.Repeat("y", limit+1), big, big}
	ids := h.appendText("5511", texts...)
	waitFor(t, h.st, func() bool { c := h.counts(); return c.Delivered == 5 && c.Dead == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) < 3 {
		t.Errorf("%d calls for five ~1.9 kB events under a %d-byte limit; want them split", len(sizes), limit)
	}
	for i, n := range sizes {
		if n > limit {
			t.Errorf("call %d carried %d bytes, over the %d limit", i, n, limit)
		}
	}
	recs := h.deliveries(ids[3])
	if len(recs) != 1 || recs[0].State != store.StateDead || !strings.Contains(recs[0].LastError, "over the 4000 bytes one plugin call may carry") {
		t.Fatalf("the oversized event: %+v", recs)
	}
}

type sizeRecorder struct {
	*fakeConnector
	record func(int)
}

func (s sizeRecorder) Deliverer(string) (Deliverer, error) { return s, nil }

func (s sizeRecorder) DeliverJSON(ctx context.Context, raws [][]byte) ([]sdk.Result, error) {
	n := 0
	for _, r := range raws {
		n += len(r) + eventOverhead
	}
	s.record(n)
	return s.fakeConnector.DeliverJSON(ctx, raws)
}

// A conversation whose event did not get through in one part of a split
// batch sends nothing more in that round: its order holds.
func TestSplitBatchKeepsConversationOrder(t *testing.T) {
	var mu sync.Mutex
	failFirst := true
	var order []string
	fake := newFake(func(call int, ev sdk.Event) sdk.Result {
		mu.Lock()
		defer mu.Unlock()
		if ev.ID == "5511-000" && failFirst {
			failFirst = false
			return sdk.Result{Outcome: sdk.Retry, Error: "429"}
		}
		order = append(order, ev.ID)
		return sdk.Result{Outcome: sdk.Delivered}
	})
	h := startWith(t, Policy{BatchSize: 100, Initial: time.Second}, fake, func(o *Options) { o.MaxBatchBytes = 2500 })
	big := strings.Repeat("x", 1500)
	h.appendText("5511", big, big, big)
	h.stepUntil(time.Second, func() bool { return h.counts().Delivered == 3 })
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"5511-000", "5511-001", "5511-002"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("delivered in order %v, want %v", order, want)
	}
}

func TestRecordedErrorsAreCapped(t *testing.T) {
	huge := strings.Repeat("<html>\xff", 100_000)
	h := start(t, Policy{}, newFake(func(int, sdk.Event) sdk.Result {
		return sdk.Result{Outcome: sdk.Failed, Error: huge}
	}))
	ids := h.append("5511", 1)
	waitFor(t, h.st, func() bool { return h.counts().Dead == 1 })
	recs := h.deliveries(ids[0])
	if len(recs) != 1 || len(recs[0].LastError) > errtext.Max || !utf8.ValidString(recs[0].LastError) ||
		len(recs[0].Attempts) != 1 || len(recs[0].Attempts[0].Error) > errtext.Max {
		t.Fatalf("recorded error of %d bytes (valid UTF-8 %v), want at most %d", len(recs[0].LastError), utf8.ValidString(recs[0].LastError), errtext.Max)
	}
}
