// Package delivery moves events from the log to the connectors: a
// dispatcher stores each event's routing decision and one pending delivery
// per connector, and one worker per connector sends its due deliveries in
// batches to the connector's plugin and records every outcome.
//
// Delivery is at least once and per connector: a connector that is down
// delays only itself. Order is kept per conversation, and a conversation
// waiting for its retry never holds up the others. Retries back off
// exponentially with jitter and honour a Retry-After the plugin reports;
// after the last attempt the event becomes a dead letter that can be
// replayed. Progress is recorded only after the plugin answered.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/time/rate"

	"github.com/wahub/wahub/host/errtext"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Store is the durable state the engine works on.
type Store interface {
	Dispatch(ctx context.Context, limit int, decide store.DecideFunc) (int, error)
	// DueIn and NextDueIn keep to the given delivery partitions (nil: all).
	DueIn(ctx context.Context, connector string, parts []int, now time.Time, limit int) ([]store.Delivery, error)
	NextDueIn(ctx context.Context, connector string, parts []int) (time.Time, bool, error)
	// RecordAttempts stores outcomes unless a lease of the fence changed
	// hands (store.ErrLeaseLost).
	RecordAttempts(ctx context.Context, attempts []store.Attempt, fence ...store.Lease) error
	Paused(ctx context.Context, connector string) (bool, error)
	SetPaused(ctx context.Context, connector string, paused bool) error
	Changed() <-chan struct{}
}

// Cluster says which delivery partitions this hub holds when several hubs
// share the store (nil: one hub delivers everything).
type Cluster interface {
	// Parts returns the partitions of connector this hub holds, the
	// leases that fence their writes, and until when the hub may trust
	// them without renewing (its local deadline).
	Parts(connector string) (parts []int, fence []store.Lease, until time.Time)
	// Changed is closed when the hub's leases change.
	Changed() <-chan struct{}
}

// Deliverer is a connector as the engine calls it: events go as the JSON
// the store keeps (sdk.Remote implements it).
type Deliverer interface {
	DeliverJSON(ctx context.Context, events [][]byte) ([]sdk.Result, error)
}

// Connectors gives the engine each connector's running plugin.
type Connectors interface {
	// Deliverer returns the connector's plugin, or an error while it is
	// down.
	Deliverer(name string) (Deliverer, error)
	// Running returns a channel closed while the plugin is up.
	Running(name string) <-chan struct{}
}

// Policy is how one connector is delivered to.
type Policy struct {
	BatchSize   int
	MaxAttempts int
	Initial     time.Duration // first retry delay
	Max         time.Duration // largest retry delay
	// RatePerSecond limits events per second (0: unlimited).
	RatePerSecond float64
	// Timeout bounds one batch.
	Timeout time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.BatchSize <= 0 {
		p.BatchSize = 100
	}
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 12
	}
	if p.Initial <= 0 {
		p.Initial = time.Second
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Minute
	}
	if p.Timeout <= 0 {
		p.Timeout = time.Minute
	}
	return p
}

// maxRetryAfter caps how long a Retry-After may hold an event back.
const maxRetryAfter = 24 * time.Hour

// Options assemble an Engine.
type Options struct {
	Store      Store
	Connectors Connectors
	Cluster    Cluster
	// Decide routes one event (see store.DecideFunc for where it runs).
	Decide   store.DecideFunc
	Policies map[string]Policy // by connector name
	Clock    clockwork.Clock
	Logger   *slog.Logger
	Metrics  *Metrics
	// Rand makes jitter reproducible in tests.
	Rand *rand.Rand
	// DispatchBatch is how many events one dispatch transaction takes.
	DispatchBatch int
	// MaxBatchBytes bounds the encoded events of one plugin call (default:
	// just below sdk.MaxMessageSize, which gRPC enforces).
	MaxBatchBytes int
	// Prepare, when set, gives each event to the plugin as it is now (the
	// state of its media file), or holds it back until hold (a file still
	// being fetched): held events spend no attempt, and their
	// conversation waits behind them.
	Prepare func(ctx context.Context, body []byte) (out []byte, hold time.Time, err error)
}

// batchOverhead is what the Deliver request adds around all its events
// (and eventOverhead around each: a field tag and a length).
const (
	batchOverhead = 64 << 10
	eventOverhead = 16
)

// Engine runs the dispatcher and the connector workers.
type Engine struct {
	opt     Options
	log     *slog.Logger
	workers map[string]*worker
	randMu  sync.Mutex
}

// New builds an engine; Run starts it.
func New(opt Options) *Engine {
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Rand == nil {
		opt.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if opt.DispatchBatch <= 0 {
		opt.DispatchBatch = 500
	}
	if opt.MaxBatchBytes <= 0 {
		opt.MaxBatchBytes = sdk.MaxMessageSize - batchOverhead
	}
	e := &Engine{opt: opt, log: opt.Logger, workers: map[string]*worker{}}
	for name, pol := range opt.Policies {
		pol = pol.withDefaults()
		w := &worker{e: e, name: name, pol: pol, wake: make(chan struct{}, 1), breaker: newBreaker(opt.Clock)}
		if pol.RatePerSecond > 0 {
			burst := int(math.Ceil(pol.RatePerSecond))
			w.limiter = rate.NewLimiter(rate.Limit(pol.RatePerSecond), burst)
			// A batch larger than the burst could never be admitted.
			w.pol.BatchSize = min(w.pol.BatchSize, burst)
		}
		e.workers[name] = w
	}
	return e
}

// Run dispatches and delivers until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.dispatch(ctx)
	}()
	for _, w := range e.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
}

// dispatch follows the log, storing decisions and pending deliveries.
func (e *Engine) dispatch(ctx context.Context) {
	for ctx.Err() == nil {
		changed := e.opt.Store.Changed()
		n, err := e.opt.Store.Dispatch(ctx, e.opt.DispatchBatch, e.opt.Decide)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Error("dispatch failed; retrying", "err", err)
			e.sleep(ctx, time.Second)
			continue
		}
		if n == e.opt.DispatchBatch {
			continue // more waiting
		}
		select {
		case <-changed:
		case <-ctx.Done():
		}
	}
}

func (e *Engine) sleep(ctx context.Context, d time.Duration) {
	t := e.opt.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
	case <-ctx.Done():
	}
}

// Pause stops deliveries to a connector; its events wait, nothing is lost.
func (e *Engine) Pause(ctx context.Context, name string) error {
	return e.setPaused(ctx, name, true)
}

// Resume restarts deliveries to a connector.
func (e *Engine) Resume(ctx context.Context, name string) error {
	return e.setPaused(ctx, name, false)
}

// ErrUnknownConnector is returned for a connector that is not configured.
var ErrUnknownConnector = errors.New("unknown connector")

func (e *Engine) setPaused(ctx context.Context, name string, paused bool) error {
	w, ok := e.workers[name]
	if !ok {
		return ErrUnknownConnector
	}
	if err := e.opt.Store.SetPaused(ctx, name, paused); err != nil {
		return err
	}
	w.poke()
	return nil
}

// Wake makes a connector's worker look for due deliveries now (after a
// replay, say).
func (e *Engine) Wake(name string) {
	if w, ok := e.workers[name]; ok {
		w.poke()
	}
}

// Breaker reports a connector's circuit breaker state.
func (e *Engine) Breaker(name string) string {
	if w, ok := e.workers[name]; ok {
		return w.breaker.state()
	}
	return ""
}

func (e *Engine) jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	e.randMu.Lock()
	defer e.randMu.Unlock()
	// Equal jitter: at least half the backoff, so retries stay spaced,
	// with the rest random, so that many conversations retrying after one
	// outage do not stampede together.
	half := d / 2
	return half + time.Duration(e.opt.Rand.Int64N(int64(d-half)+1))
}

// worker delivers to one connector.
type worker struct {
	e       *Engine
	name    string
	pol     Policy
	limiter *rate.Limiter
	breaker *breaker
	wake    chan struct{}
	retries retryLog
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run(ctx context.Context) {
	st, clock := w.e.opt.Store, w.e.opt.Clock
	for ctx.Err() == nil {
		paused, err := st.Paused(ctx, w.name)
		if err != nil {
			w.wait(ctx, nil, clock.Now().Add(time.Second))
			continue
		}
		if paused {
			w.wait(ctx, nil, time.Time{})
			continue
		}
		select {
		case <-w.e.opt.Connectors.Running(w.name):
		case <-w.wake:
			continue
		case <-ctx.Done():
			return
		}
		if ready := w.breaker.readyAt(); ready.After(clock.Now()) {
			w.wait(ctx, nil, ready)
			continue
		}
		changed := st.Changed()
		var (
			parts []int
			fence []store.Lease
			until time.Time
		)
		if c := w.e.opt.Cluster; c != nil {
			leases := c.Changed()
			if parts, fence, until = c.Parts(w.name); len(parts) == 0 {
				// Other hubs have all of this connector's partitions.
				select {
				case <-leases:
				case <-w.wake:
				case <-ctx.Done():
				}
				continue
			}
		}
		batch, err := st.DueIn(ctx, w.name, parts, clock.Now(), w.pol.BatchSize)
		if err != nil {
			if ctx.Err() == nil {
				w.e.log.Error("reading due deliveries", "connector", w.name, "err", err)
			}
			w.wait(ctx, nil, clock.Now().Add(time.Second))
			continue
		}
		if len(batch) == 0 {
			next, ok, err := st.NextDueIn(ctx, w.name, parts)
			if err != nil || !ok {
				next = time.Time{}
			}
			w.wait(ctx, changed, next)
			continue
		}
		if w.limiter != nil {
			r := w.limiter.ReserveN(clock.Now(), len(batch))
			if delay := r.DelayFrom(clock.Now()); delay > 0 {
				w.e.opt.Metrics.rateWait(w.name, delay)
				w.e.sleep(ctx, delay)
				if ctx.Err() != nil {
					return
				}
			}
		}
		w.deliver(ctx, batch, fence, until)
	}
}

// wait blocks until changed fires, until (if not zero) passes, the worker
// is poked, or ctx ends.
func (w *worker) wait(ctx context.Context, changed <-chan struct{}, until time.Time) {
	var timer <-chan time.Time
	if !until.IsZero() {
		t := w.e.opt.Clock.NewTimer(until.Sub(w.e.opt.Clock.Now()))
		defer t.Stop()
		timer = t.Chan()
	}
	select {
	case <-changed:
	case <-timer:
	case <-w.wake:
	case <-ctx.Done():
	}
}

// deliver sends the due deliveries in calls that each fit in one gRPC
// message, in order. An event too large to fit alone fails by itself, as
// a dead letter saying why; the others go. Once a conversation has an
// event that did not get through, its later events in this round are held
// (not attempted, no retry spent) until that event's next attempt, which
// keeps their order; after a call that fails as a whole, every later
// event waits with it.
//
// With a fence, each call goes to the plugin only while the hub may still
// trust its leases (until), is bounded by that deadline, and its outcomes
// are stored only if the leases are still the hub's: a hub that stalled
// past its lease timeout does not deliver work another hub took.
func (w *worker) deliver(ctx context.Context, batch []store.Delivery, fence []store.Lease, until time.Time) {
	limit := w.e.opt.MaxBatchBytes
	var settled []store.Attempt // too large, or held
	batch, settled = w.prepare(ctx, batch)
	var chunks [][]store.Delivery
	var cur []store.Delivery
	size := 0
	for _, d := range batch {
		n := len(d.JSON) + eventOverhead
		if n > limit {
			settled = append(settled, store.Attempt{DeliveryID: d.ID, At: w.e.opt.Clock.Now(), Outcome: store.AttemptFailed, State: store.StateDead,
				Error: fmt.Sprintf("the event is %d bytes as JSON, over the %d bytes one plugin call may carry; it cannot be delivered (inspect it with GET /api/v1/events/%s)",
					len(d.JSON), limit, d.EventID)})
			w.e.log.Error("dead letter: the event is too large for one plugin call", "connector", w.name, "event", d.EventID, "bytes", len(d.JSON))
			continue
		}
		if len(cur) > 0 && size+n > limit {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, d)
		size += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	hold := func(d store.Delivery, until time.Time, why string) {
		settled = append(settled, store.Attempt{DeliveryID: d.ID, At: w.e.opt.Clock.Now(), Outcome: store.AttemptHeld, Held: true,
			State: store.StatePending, NextAt: until, Error: why})
	}
	held := map[string]time.Time{} // conversation → not before
	for i, chunk := range chunks {
		var send []store.Delivery
		for _, d := range chunk {
			if until, ok := held[d.Conversation]; ok {
				hold(d, until, "held behind an earlier event of its conversation")
				continue
			}
			send = append(send, d)
		}
		if len(send) == 0 {
			continue
		}
		attempts, ok := w.deliverChunk(ctx, send, fence, until)
		if attempts == nil {
			break // no call made (plugin down, shutting down): all stay as they were
		}
		var earliest time.Time
		for j, a := range attempts {
			if a.State != store.StatePending {
				continue
			}
			if c := send[j].Conversation; a.NextAt.After(held[c]) {
				held[c] = a.NextAt
			}
			if earliest.IsZero() || a.NextAt.Before(earliest) {
				earliest = a.NextAt
			}
		}
		if !ok {
			for _, rest := range chunks[i+1:] {
				for _, d := range rest {
					until := earliest
					if h := held[d.Conversation]; h.After(until) {
						until = h
					}
					hold(d, until, "held: the plugin call before it failed")
				}
			}
			break
		}
	}
	if len(settled) > 0 {
		if err := w.e.opt.Store.RecordAttempts(context.WithoutCancel(ctx), settled, fence...); err != nil {
			w.e.log.Error("recording delivery outcomes failed", "connector", w.name, "err", err)
		}
	}
}

// prepare runs Options.Prepare over a batch: the events to send, as they
// are now, and holds for those (and the later events of their
// conversations) that must wait.
func (w *worker) prepare(ctx context.Context, batch []store.Delivery) ([]store.Delivery, []store.Attempt) {
	if w.e.opt.Prepare == nil {
		return batch, nil
	}
	var held []store.Attempt
	waiting := map[string]time.Time{}
	send := batch[:0:0]
	for _, d := range batch {
		if until, ok := waiting[d.Conversation]; ok {
			// Behind the held one, and released with it (the store ties
			// the two by MediaFollowReason).
			held = append(held, store.Attempt{DeliveryID: d.ID, At: w.e.opt.Clock.Now(), Outcome: store.AttemptHeld, Held: true,
				State: store.StatePending, NextAt: until, Error: store.MediaFollowReason})
			continue
		}
		body, hold, err := w.e.opt.Prepare(ctx, d.JSON)
		if err != nil {
			// The event goes as it was stored rather than not at all.
			w.e.log.Warn("preparing an event for delivery failed; delivering it as stored", "connector", w.name, "event", d.EventID, "err", err)
			send = append(send, d)
			continue
		}
		if !hold.IsZero() {
			waiting[d.Conversation] = hold
			held = append(held, store.Attempt{DeliveryID: d.ID, At: w.e.opt.Clock.Now(), Outcome: store.AttemptHeld, Held: true,
				State: store.StatePending, NextAt: hold, Error: store.MediaHoldReason})
			continue
		}
		d.JSON = body
		send = append(send, d)
	}
	return send, held
}

// deliverChunk sends one batch and records what became of each event. ok
// is false when the call failed as a whole (or was not made).
func (w *worker) deliverChunk(ctx context.Context, batch []store.Delivery, fence []store.Lease, until time.Time) (attempts []store.Attempt, ok bool) {
	clock := w.e.opt.Clock
	timeout := w.pol.Timeout
	if fence != nil {
		left := until.Sub(clock.Now())
		if left <= 0 {
			w.e.log.Warn("delivery leases not renewed in time; leaving the batch to their next owner", "connector", w.name)
			return nil, false
		}
		timeout = min(timeout, left)
	}
	d, err := w.e.opt.Connectors.Deliverer(w.name)
	if err != nil {
		return nil, false // the plugin went down between the checks; Running waits
	}
	events := make([][]byte, len(batch))
	for i := range batch {
		events[i] = batch[i].JSON
	}
	start := clock.Now()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	results, err := d.DeliverJSON(cctx, events)
	cancel()
	end := clock.Now()
	if err != nil && ctx.Err() != nil {
		// Shutting down: the outcome is unknown, and not the events'
		// fault. They stay pending as they were and go again next start.
		return nil, false
	}
	attempts, answered := w.outcomes(batch, results, err, start, end)
	w.breaker.record(answered)
	w.e.opt.Metrics.batch(w.name, end.Sub(start), attempts)
	// Recorded even if ctx ended meanwhile: the plugin has answered, and
	// forgetting a delivered outcome would only cause a duplicate.
	if rerr := w.e.opt.Store.RecordAttempts(context.WithoutCancel(ctx), attempts, fence...); errors.Is(rerr, store.ErrLeaseLost) {
		w.e.log.Warn("delivery lease lost during the batch; its new owner delivers it again", "connector", w.name, "events", len(batch), "err", rerr)
		return nil, false
	} else if rerr != nil {
		w.e.log.Error("recording delivery outcomes failed; the batch will be delivered again", "connector", w.name, "err", rerr)
	}
	if logEnabled(w.e.log, attempts) {
		w.logOutcomes(clock, batch, attempts)
	}
	return attempts, err == nil
}

// outcomes turns the plugin's answer into per-event attempts. ok is false
// when the batch as a whole failed (for the circuit breaker).
func (w *worker) outcomes(batch []store.Delivery, results []sdk.Result, callErr error, start, end time.Time) ([]store.Attempt, bool) {
	byID := make(map[string]sdk.Result, len(results))
	for _, r := range results {
		if _, dup := byID[r.EventID]; !dup {
			byID[r.EventID] = r
		}
	}
	attempts := make([]store.Attempt, 0, len(batch))
	anyOK := false
	for _, d := range batch {
		a := store.Attempt{DeliveryID: d.ID, At: start, Duration: end.Sub(start)}
		res, found := byID[d.EventID]
		// outcome decides the state; a.Outcome only records it. Zero: no
		// answer for this event.
		var outcome sdk.Outcome
		switch {
		case callErr != nil:
			a.Outcome, a.Error = store.AttemptError, callErr.Error()
		case !found:
			a.Outcome, a.Error = store.AttemptError, "the plugin returned no result for this event"
		default:
			outcome = res.Outcome
			a.Outcome, a.Error, a.RetryAfter = store.OutcomeOf(outcome), res.Error, res.RetryAfter
		}
		if found && callErr == nil && res.NotAttempted && res.Outcome == sdk.Retry {
			// Not the event's failure: it waits behind its conversation
			// without spending its retry budget.
			a.Outcome, a.Held, a.State = store.AttemptHeld, true, store.StatePending
			a.NextAt = end.Add(w.delay(max(d.Attempts, 1), a.RetryAfter))
			a.Error = errtext.Cap(a.Error)
			attempts = append(attempts, a)
			continue
		}
		switch outcome {
		case sdk.Delivered:
			a.State, anyOK = store.StateDelivered, true
		case sdk.Skipped:
			a.State, anyOK = store.StateSkipped, true
		case sdk.Failed:
			a.State = store.StateDead
			anyOK = true // the connector answered; the event is bad, not the connector
		default: // retry, error, unknown
			if d.Attempts+1 >= w.pol.MaxAttempts {
				a.State = store.StateDead
				a.Error = "gave up after " + strconv.Itoa(d.Attempts+1) + " attempts: " + a.Error
			} else {
				a.State = store.StatePending
				a.NextAt = end.Add(w.delay(d.Attempts+1, a.RetryAfter))
			}
		}
		a.Error = errtext.Cap(a.Error)
		attempts = append(attempts, a)
	}
	return attempts, anyOK
}

// delay is how long to wait before attempt n+1 after attempt n failed.
func (w *worker) delay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	d := w.pol.Initial
	for i := 1; i < n && d < w.pol.Max; i++ {
		d *= 2
	}
	return w.e.jitter(min(d, w.pol.Max))
}
