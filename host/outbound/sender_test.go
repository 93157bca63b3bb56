package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const pn = "106540352242922"

type harness struct {
	t     *testing.T
	st    *store.Store
	clock *clockwork.FakeClock
	fake  *graphtest.Server
	s     *Sender
	stop  func()
}

func newHarness(t *testing.T, opt Options, fakeOpts ...graphtest.Option) *harness {
	t.Helper()
	clock := clockwork.NewFakeClockAt(t0)
	st, err := store.Open(filepath.Join(t.TempDir(), "wahub.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fake := graphtest.NewServer(append([]graphtest.Option{graphtest.WithAccessToken("tok"), graphtest.WithPhoneNumber(pn, "15550783881"),
		graphtest.WithClock(clock.Now)}, fakeOpts...)...)
	srv := httptest.NewServer(fake)
	opt.Store, opt.Clock = st, clock
	opt.Graph = graph.New(srv.URL+"/v23.0", "tok", nil)
	h := &harness{t: t, st: st, clock: clock, fake: fake, s: New(opt)}
	t.Cleanup(func() {
		if h.stop != nil {
			h.stop()
		}
		srv.Close()
		fake.Close()
		st.Close()
	})
	return h
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.s.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done }
}

// inbound logs a customer message at at, opening the window.
func (h *harness) inbound(waID string, at time.Time) {
	h.t.Helper()
	ev := sdk.Event{ID: "evt_in_" + waID + at.Format("150405"), Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at,
		Business: &sdk.Business{PhoneNumberID: pn}, Contact: &sdk.Contact{WAID: waID},
		Message: &sdk.Message{ID: "wamid.in." + waID + at.Format("150405"), Type: "text", Text: "oi"}}
	if _, err := h.st.Append(context.Background(), []sdk.Event{ev}); err != nil {
		h.t.Fatal(err)
	}
}

// inFlight counts the requests the sender has under way.
func (h *harness) inFlight() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return len(h.s.busy)
}

// until steps the fake clock each time the sender waits on it with no
// request under way (so that fake time never passes during a request),
// until cond holds; it returns the fake time that passed.
func (h *harness) until(step time.Duration, what string, cond func() bool) time.Duration {
	h.t.Helper()
	start := h.clock.Now()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not reached within 60s (fake time %s)", what, h.clock.Now().Sub(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		if h.clock.BlockUntilContext(ctx, 1) == nil && h.inFlight() == 0 {
			h.clock.Advance(step)
		}
		cancel()
	}
	return h.clock.Now().Sub(start)
}

func (h *harness) state(id string) store.OutboundRecord {
	h.t.Helper()
	r, err := h.st.Outbound(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func TestPolicyRefusals(t *testing.T) {
	h := newHarness(t, Options{Policy: Policy{BlockedCountryCodes: []string{"53", "98"}, TemplateCategories: map[string]string{"order_update": "utility"}}})
	h.inbound("5511900000001", t0.Add(-time.Hour))    // window open
	h.inbound("5511900000002", t0.Add(-25*time.Hour)) // window closed
	h.inbound("5398765432", t0.Add(-time.Hour))       // Cuba
	h.inbound("5511900000003", t0.Add(-time.Hour))    // opts out below
	if _, err := h.st.SetConsent(context.Background(), "5511900000003", sdk.ConsentRevoked, "api", nil); err != nil {
		t.Fatal(err)
	}
	promo := &sdk.Template{Name: "promo", Language: "pt_BR"}
	utility := &sdk.Template{Name: "order_update", Language: "pt_BR"}
	tests := []struct {
		name string
		msg  sdk.OutboundMessage
		code string // "" accepted
	}{
		{"text in the window", sdk.OutboundMessage{To: "+55 11 90000-0001", Text: "oi"}, ""},
		{"text outside the window", sdk.OutboundMessage{To: "5511900000002", Text: "oi"}, RefusedOutsideWindow},
		{"template outside the window", sdk.OutboundMessage{To: "5511900000002", Template: promo}, ""},
		{"text to someone who never wrote", sdk.OutboundMessage{To: "5511900000009", PhoneNumberID: pn, Text: "oi"}, RefusedOutsideWindow},
		{"blocked country", sdk.OutboundMessage{To: "5398765432", Text: "hola"}, RefusedBlockedCountry},
		{"opted out: text", sdk.OutboundMessage{To: "5511900000003", Text: "oi"}, RefusedOptedOut},
		{"opted out: marketing template", sdk.OutboundMessage{To: "5511900000003", Template: promo}, RefusedOptedOut},
		{"opted out: utility template", sdk.OutboundMessage{To: "5511900000003", Template: utility}, ""},
		{"unknown business number", sdk.OutboundMessage{To: "5511900000001", PhoneNumberID: "999", Text: "oi"}, RefusedUnknownNumber},
		{"no number to send from", sdk.OutboundMessage{To: "5511900000009", Template: promo}, RefusedUnknownNumber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, _, err := h.s.Submit(context.Background(), "api", tt.msg)
			var ref *sdk.RefusedError
			switch {
			case tt.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.code == "":
				if rec.State != store.OutQueued || rec.PhoneNumberID != pn {
					t.Errorf("queued %+v", rec)
				}
			case !errors.As(err, &ref) || ref.Code != tt.code:
				t.Fatalf("err %v, want refusal %s", err, tt.code)
			}
		})
	}
	if _, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001"}); !errors.As(err, new(*InvalidError)) {
		t.Errorf("no content: %v, want InvalidError", err)
	}
	// The console shows the refusals, newest first: nothing else keeps
	// a message that was never queued.
	var want []string
	for _, tt := range tests {
		if tt.code != "" {
			want = append([]string{tt.code}, want...)
		}
	}
	var got []string
	for _, r := range h.s.Refusals() {
		got = append(got, r.Code)
		if r.Source != "api" || r.To == "" || r.Message == "" || !r.At.Equal(t0) {
			t.Errorf("refusal %+v lacks its source, recipient, reason or time", r)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("refusals %v, want %v", got, want)
	}
}

func TestIdempotentSubmitSendsOnce(t *testing.T) {
	h := newHarness(t, Options{})
	h.inbound("5511900000001", t0)
	msg := sdk.OutboundMessage{To: "5511900000001", Text: "oi", IdempotencyKey: "Ev123"}
	a, created, err := h.s.Submit(context.Background(), "connector:slack", msg)
	if err != nil || !created {
		t.Fatal(err)
	}
	h.run()
	h.until(10*time.Millisecond, "accepted", func() bool { return h.state(a.ID).State == store.OutAccepted })
	b, created, err := h.s.Submit(context.Background(), "connector:slack", msg)
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("second submit: %+v created=%v %v", b, created, err)
	}
	// Another source's key is its own.
	if _, created, _ := h.s.Submit(context.Background(), "connector:zendesk", msg); !created {
		t.Error("zendesk's Ev123 was taken by slack's")
	}
	var ev []sdk.Event
	h.until(10*time.Millisecond, "two message.sent", func() bool {
		ev, err = h.st.Events(context.Background(), store.EventFilter{Type: string(sdk.TypeMessageSent), Limit: 10})
		return err != nil || len(ev) == 2
	})
	if h.fake.SentCount() != 2 || err != nil || ev[0].Outbound == nil || ev[0].Outbound.IdempotencyKey != "Ev123" || ev[0].Message.ID == "" {
		t.Fatalf("message.sent events %+v %v", ev, err)
	}
}

func TestRetriesAndPermanentErrors(t *testing.T) {
	tests := []struct {
		name     string
		fail     []int
		state    string
		code     string
		requests int
	}{
		{"throttled then sent", []int{graph.ErrThroughput}, store.OutAccepted, "", 2},
		{"pair limit then sent", []int{graph.ErrPairRateLimit}, store.OutAccepted, "", 2},
		{"5xx twice then sent", []int{503, 500}, store.OutAccepted, "", 3},
		{"undeliverable fails at once", []int{graph.ErrUndeliverable}, store.OutFailed, "131026", 1},
		{"window closed at Meta fails at once", []int{graph.ErrReengagement}, store.OutFailed, "131047", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.inbound("5511900000001", t0)
			for _, code := range tt.fail {
				h.fake.FailNext(1, code)
			}
			rec, _, err := h.s.Submit(context.Background(), "api", sdk.OutboundMessage{To: "5511900000001", Text: "oi"})
			if err != nil {
				t.Fatal(err)
			}
			h.run()
			h.until(500*time.Millisecond, "settled", func() bool {
				s := h.state(rec.ID).State
				return s == store.OutAccepted || s == store.OutFailed
			})
			got := h.state(rec.ID)
			if got.State != tt.state || got.ErrorCode != tt.code {
				t.Errorf("state %s code %q (%s), want %s %q", got.State, got.ErrorCode, got.Error, tt.state, tt.code)
			}
			if n := len(h.fake.Requests()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
			want := 0
			if tt.state == store.OutAccepted {
				want = 1
			}
			if n := h.fake.SentCount(); n != want {
				t.Errorf("%d messages accepted by the fake, want %d", n, want)
			}
		})
	}
}

// Statuses arrive out of order, and one before the send answer is stored:
// the outbox state only moves forward and nothing is lost.
func TestStatusesAreMonotonic(t *testing.T) {
	h := newHarness(t, Options{})
	h.inbound("5511900000001", t0)
	ctx := context.Background()
	decide := func(*sdk.Event, store.RouteState) store.Decision { return store.Decision{} }
	dispatch := func() {
		for {
			n, err := h.st.Dispatch(ctx, 100, decide)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	status := func(wamid string, typ sdk.EventType, at time.Time) {
		t.Helper()
		ev := sdk.Event{ID: "evt_" + wamid + string(typ), Type: typ, OccurredAt: at, ReceivedAt: at,
			Business: &sdk.Business{PhoneNumberID: pn}, Contact: &sdk.Contact{WAID: "5511900000001"},
			Status: &sdk.Status{MessageID: wamid, Status: string(typ[len("status."):])}}
		if _, err := h.st.Append(ctx, []sdk.Event{ev}); err != nil {
			t.Fatal(err)
		}
		dispatch()
	}
	rec, _, _ := h.s.Submit(ctx, "api", sdk.OutboundMessage{To: "5511900000001", Text: "oi"})
	h.run()
	h.until(10*time.Millisecond, "accepted", func() bool { return h.state(rec.ID).WAMID != "" })
	wamid := h.state(rec.ID).WAMID
	status(wamid, sdk.TypeStatusRead, t0.Add(3*time.Second))
	status(wamid, sdk.TypeStatusDelivered, t0.Add(2*time.Second))
	status(wamid, sdk.TypeStatusSent, t0.Add(time.Second))
	got := h.state(rec.ID)
	if got.State != store.OutRead {
		t.Errorf("state %s after read, delivered, sent; want read", got.State)
	}
	var states []string
	for _, s := range got.History {
		states = append(states, s.State)
	}
	if fmt.Sprint(states) != "[queued accepted read delivered sent]" {
		t.Errorf("history %v", states)
	}
	evs, _ := h.st.Events(ctx, store.EventFilter{Type: string(sdk.TypeStatusRead), Limit: 1})
	if len(evs) != 1 || evs[0].Outbound == nil || evs[0].Outbound.ID != rec.ID {
		t.Errorf("status event %+v does not name its outbox message", evs)
	}

	// A status for a wamid the outbox does not know yet is kept, and
	// applied when the send answer is recorded.
	h.stop()
	h.stop = nil
	rec2, _, _ := h.s.Submit(ctx, "api", sdk.OutboundMessage{To: "5511900000001", Text: "de novo", IdempotencyKey: "k2"})
	status("wamid.EARLY", sdk.TypeStatusDelivered, t0.Add(time.Minute))
	if ok, err := h.st.MarkSending(ctx, rec2.ID); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := h.st.AcceptOutbound(ctx, rec2.ID, "wamid.EARLY", nil); err != nil {
		t.Fatal(err)
	}
	if s := h.state(rec2.ID).State; s != store.OutDelivered {
		t.Errorf("early delivered status lost: state %s", s)
	}
}

// A hub that stops mid-request leaves the message unknown: it is not sent
// again on restart.
func TestMessagesLeftSendingAreNotResent(t *testing.T) {
	h := newHarness(t, Options{})
	h.inbound("5511900000001", t0)
	ctx := context.Background()
	rec, _, _ := h.s.Submit(ctx, "api", sdk.OutboundMessage{To: "5511900000001", Text: "oi"})
	if ok, err := h.st.MarkSending(ctx, rec.ID); !ok || err != nil {
		t.Fatal(ok, err)
	}
	other, _, _ := h.s.Submit(ctx, "api", sdk.OutboundMessage{To: "5511900000001", Text: "outro", IdempotencyKey: "x"})
	h.run()
	h.until(10*time.Millisecond, "the queued one sent", func() bool { return h.state(other.ID).State == store.OutAccepted })
	if got := h.state(rec.ID); got.State != store.OutUnknown || h.fake.SentCount() != 1 {
		t.Fatalf("left-in-sending message: %s, fake got %d", got.State, h.fake.SentCount())
	}
}

// 2,000 messages to 2,000 recipients on one number at 80/s take 25 s of
// (fake) time, and the fake never sees more than 80 in a second.
// TestThroughputIsPaced runs in a synctest bubble: the sender's token
// bucket, the store and the fake Graph API (served in memory, since a real
// socket keeps a bubble's time still) all see the bubble's clock, which
// moves only while every goroutine waits. So the 25 s the pacing takes are
// fake seconds, measured exactly, however busy the machine is.
func TestThroughputIsPaced(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 sends")
	}
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		const n = 2000
		clock := clockwork.NewRealClock() // the bubble's time
		st, err := store.Open(filepath.Join(dir, "wahub.db"), store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		fake := graphtest.NewServer(graphtest.WithAccessToken("tok"), graphtest.WithPhoneNumber(pn, "15550783881"),
			graphtest.WithClock(clock.Now), graphtest.WithThroughput(80))
		defer fake.Close()
		s := New(Options{Store: st, Clock: clock, MessagesPerSecond: 80,
			Graph: graph.New("http://graph.test/v23.0", "tok", &http.Client{Transport: handlerTransport{fake}})})
		ctx := context.Background()
		evs := make([]sdk.Event, n)
		now := clock.Now()
		for i := range evs {
			wa := fmt.Sprintf("55119%08d", i)
			evs[i] = sdk.Event{ID: "evt_in_" + wa, Type: sdk.TypeMessageReceived, OccurredAt: now, ReceivedAt: now,
				Business: &sdk.Business{PhoneNumberID: pn}, Contact: &sdk.Contact{WAID: wa},
				Message: &sdk.Message{ID: "wamid.in." + wa, Type: "text", Text: "oi"}}
		}
		if _, err := st.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if _, _, err := s.Submit(ctx, "api", sdk.OutboundMessage{To: fmt.Sprintf("55119%08d", i), Text: "promo"}); err != nil {
				t.Fatal(err)
			}
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		start := time.Now()
		go func() { s.Run(runCtx); close(done) }()
		for fake.SentCount() < n {
			time.Sleep(10 * time.Millisecond)
		}
		took := time.Since(start)
		stop()
		<-done
		if took < 22500*time.Millisecond || took > 27500*time.Millisecond {
			t.Errorf("%d messages at 80/s took %s, want 25s ± 10%%", n, took)
		}
		if r := fake.MaxRate(pn); r > 80 {
			t.Errorf("fake saw %d messages in a second", r)
		}
		if len(fake.Requests()) != n {
			t.Errorf("%d requests for %d messages: some were throttled", len(fake.Requests()), n)
		}
		t.Logf("%d messages: %s of bubble time", n, took)
	})
}

// handlerTransport serves requests with a handler in memory, for tests in
// a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
