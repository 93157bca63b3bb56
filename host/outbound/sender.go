package outbound

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Graph is the WhatsApp send API; *graph.Client, or a test's double.
type Graph interface {
	Send(ctx context.Context, phoneNumberID string, m graph.Message) (graph.Accepted, error)
}

// Store is the outbox and what the sender's policy reads.
type Store interface {
	Changed() <-chan struct{}
	LookupRecipient(ctx context.Context, to string, withNumber bool) (store.Recipient, error)
	KnownBusinessNumber(ctx context.Context, phoneNumberID string) (bool, error)
	Enqueue(ctx context.Context, source string, msg sdk.OutboundMessage) (store.OutboundRecord, bool, error)
	OutboundByKey(ctx context.Context, source, key string) (store.OutboundRecord, error)
	DueOutbound(ctx context.Context, now time.Time, limit int, busy map[string]bool) ([]store.OutboundRecord, error)
	NextOutboundDue(ctx context.Context) (time.Time, bool, error)
	MarkSending(ctx context.Context, id string, fence ...store.Lease) (bool, error)
	MarkUploading(ctx context.Context, id string, fence ...store.Lease) (bool, error)
	RecordUpload(ctx context.Context, id string, u store.GraphUpload) (bool, error)
	DeferOutbound(ctx context.Context, id, recipient string, at time.Time, code, reason string) error
	FailOutbound(ctx context.Context, id, code, reason string) error
	UnconfirmedOutbound(ctx context.Context, id, reason string) error
	AcceptOutbound(ctx context.Context, id, wamid string, sent *sdk.Event) error
	RecoverSending(ctx context.Context) (int, error)
	LatestInbound(ctx context.Context, contactKey, phoneNumberID string) (string, error)
}

// Options assemble a Sender.
type Options struct {
	Store  Store
	Graph  Graph
	Policy Policy
	Clock  clockwork.Clock
	Logger *slog.Logger
	// MessagesPerSecond is each business number's throughput (default 80).
	MessagesPerSecond float64
	// PairInterval and PairBurst limit messages to one recipient (default
	// one per 6 s, burst 3).
	PairInterval time.Duration
	PairBurst    int
	// Concurrency is how many requests may be in flight (default 32): the
	// rate limits, not this, set the pace; it only hides Meta's latency.
	Concurrency int
	// MaxAttempts bounds retries of one message (default 10).
	MaxAttempts int
	Registry    prometheus.Registerer
	// Leader, when several hubs share the store, says whether this hub
	// holds the outbox lease (and until when it may trust it); only that
	// hub sends, so the per-number and per-recipient limits hold across
	// the cluster. LeaderChanged is closed when that may have changed.
	// Nil: this hub sends.
	Leader        func() (store.Lease, time.Time, bool)
	LeaderChanged func() <-chan struct{}
	// Media holds the files media messages send; nil: media messages are
	// refused. The Graph must then also be an Uploader.
	Media MediaSource
	// URLClient fetches media "url" links (default: one that connects
	// only to public addresses); URLTimeout bounds one fetch (default 2
	// minutes).
	URLClient  *http.Client
	URLTimeout time.Duration
}

// Sender sends the outbox.
type Sender struct {
	opt       Options
	log       *slog.Logger
	wake      chan struct{}
	urlClient *http.Client

	mu      sync.Mutex
	numbers map[string]*rate.Limiter
	// wire paces each number again right before the request leaves:
	// marking a message sending is a commit, and commits of several
	// messages can finish together (group commit, a slow database), which
	// would otherwise bunch requests paced evenly before it.
	wire  map[string]*window
	pairs map[string]*rate.Limiter
	busy  map[string]bool // recipients with a request in flight
	// marked is the message last marked read per conversation.
	marked map[string]string

	// known remembers business numbers found in the log: once a webhook
	// came for a number it stays known.
	known sync.Map

	messages *prometheus.CounterVec
	waited   *prometheus.CounterVec

	// refusals keeps the latest policy refusals for the console: a
	// refused message is never stored, yet an operator asks why a reply
	// did not go out.
	refusalsMu sync.Mutex
	refusals   []Refusal
}

// Refusal is a message the policy refused.
type Refusal struct {
	At      time.Time
	Source  string
	To      string
	Code    string
	Message string
}

// keptRefusals bounds the refusals kept in memory.
const keptRefusals = 100

// Refusals returns the latest policy refusals, newest first.
func (s *Sender) Refusals() []Refusal {
	s.refusalsMu.Lock()
	defer s.refusalsMu.Unlock()
	out := make([]Refusal, len(s.refusals))
	for i, r := range s.refusals {
		out[len(out)-1-i] = r
	}
	return out
}

func (s *Sender) refused(source, to string, ref *sdk.RefusedError) {
	s.refusalsMu.Lock()
	defer s.refusalsMu.Unlock()
	if len(s.refusals) == keptRefusals {
		s.refusals = append(s.refusals[:0], s.refusals[1:]...)
	}
	s.refusals = append(s.refusals, Refusal{At: s.opt.Clock.Now(), Source: source, To: to, Code: ref.Code, Message: ref.Message})
}

// New builds a Sender; Run starts it.
func New(opt Options) *Sender {
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.MessagesPerSecond <= 0 {
		opt.MessagesPerSecond = 80
	}
	if opt.PairInterval <= 0 {
		opt.PairInterval = 6 * time.Second
	}
	if opt.PairBurst <= 0 {
		opt.PairBurst = 3
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = 32
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 10
	}
	if opt.URLTimeout <= 0 {
		opt.URLTimeout = 2 * time.Minute
	}
	s := &Sender{
		opt: opt, log: opt.Logger, wake: make(chan struct{}, 1), urlClient: opt.URLClient,
		numbers: map[string]*rate.Limiter{}, wire: map[string]*window{}, pairs: map[string]*rate.Limiter{}, busy: map[string]bool{}, marked: map[string]string{},
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_outbound_messages_total",
			Help: "Outbound messages by what became of them (queued, accepted, retried, failed, refused, unknown) and error code.",
		}, []string{"outcome", "code"}),
		waited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wahub_outbound_ratelimit_wait_seconds_total",
			Help: "Time sending waited for a rate limit: the business number's throughput or a recipient's pair limit.",
		}, []string{"limit"}),
	}
	if s.urlClient == nil {
		s.urlClient = publicClient()
	}
	if opt.Registry != nil {
		opt.Registry.MustRegister(s.messages, s.waited)
	}
	return s
}

// Submit checks msg against the policy and queues it for source
// ("connector:slack", "api", ...). A message whose idempotency key source
// already used is not queued again: the first one's record comes back,
// created false. A policy refusal is a *sdk.RefusedError; a message that
// is not one is an *InvalidError.
func (s *Sender) Submit(ctx context.Context, source string, msg sdk.OutboundMessage) (store.OutboundRecord, bool, error) {
	if msg.IdempotencyKey != "" {
		rec, err := s.opt.Store.OutboundByKey(ctx, source, msg.IdempotencyKey)
		if err == nil {
			return rec, false, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return rec, false, err
		}
	}
	msg.To = normalizeRecipient(msg.To)
	if msg.To == "" {
		return store.OutboundRecord{}, false, &InvalidError{`"to" is required: the customer's wa_id (phone number) or user_id`}
	}
	r, err := s.opt.Store.LookupRecipient(ctx, msg.To, msg.PhoneNumberID == "")
	if err != nil {
		return store.OutboundRecord{}, false, err
	}
	pn, err := s.opt.Policy.check(ctx, s.knownNumber, &msg, r, s.opt.Clock.Now())
	if err == nil && msg.Media != nil {
		// After the policy: a customer outside the window is told so
		// without a file being fetched or read.
		err = s.prepareMedia(ctx, &msg)
	}
	if err != nil {
		var ref *sdk.RefusedError
		if errors.As(err, &ref) {
			s.messages.WithLabelValues("refused", ref.Code).Inc()
			s.refused(source, msg.To, ref)
		}
		return store.OutboundRecord{}, false, err
	}
	msg.PhoneNumberID = pn
	if r.Known {
		msg.To = r.Key
	}
	rec, created, err := s.opt.Store.Enqueue(ctx, source, msg)
	if err == nil && created {
		s.messages.WithLabelValues("queued", "").Inc()
		s.Wake()
	}
	return rec, created, err
}

func (s *Sender) knownNumber(ctx context.Context, pn string) (bool, error) {
	if _, ok := s.known.Load(pn); ok {
		return true, nil
	}
	ok, err := s.opt.Store.KnownBusinessNumber(ctx, pn)
	if ok {
		s.known.Store(pn, true)
	}
	return ok, err
}

// Wake makes the sender look at the outbox now.
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends until ctx ends, then waits for requests in flight. With a
// Leader, it sends only while this hub leads, starting each term by
// recovering what the previous leader left in sending.
func (s *Sender) Run(ctx context.Context) {
	if s.opt.Leader == nil {
		s.run(ctx, nil)
		return
	}
	for ctx.Err() == nil {
		changed := s.opt.LeaderChanged()
		l, _, ok := s.opt.Leader()
		if !ok {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		term, cancel := context.WithCancel(ctx)
		go func() {
			for {
				ch := s.opt.LeaderChanged()
				if cur, _, ok := s.opt.Leader(); !ok || cur.Epoch != l.Epoch {
					cancel()
					return
				}
				select {
				case <-ch:
				case <-term.Done():
					return
				case <-s.opt.Clock.After(time.Second):
				}
			}
		}()
		s.log.Info("outbox: this hub sends the outbox", "epoch", l.Epoch)
		s.run(term, []store.Lease{l})
		cancel()
	}
}

// leading reports whether a fenced sender may still send.
func (s *Sender) leading(fence []store.Lease) bool {
	if fence == nil {
		return true
	}
	l, until, ok := s.opt.Leader()
	return ok && l.Epoch == fence[0].Epoch && s.opt.Clock.Now().Before(until)
}

func (s *Sender) run(ctx context.Context, fence []store.Lease) {
	if n, err := s.opt.Store.RecoverSending(ctx); err != nil {
		s.log.Error("outbox: recovering messages left in sending failed", "err", err)
	} else if n > 0 {
		s.log.Warn("outbox: messages were being sent when the hub stopped; WhatsApp may have them, so they are not sent again",
			"messages", n, "state", store.OutUnknown)
	}
	sem := make(chan struct{}, s.opt.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	clock := s.opt.Clock
	for ctx.Err() == nil {
		changed := s.opt.Store.Changed()
		s.mu.Lock()
		busy := make(map[string]bool, len(s.busy))
		for k := range s.busy {
			busy[k] = true
		}
		s.mu.Unlock()
		free := s.opt.Concurrency - len(busy)
		var due []store.OutboundRecord
		if free > 0 {
			var err error
			if due, err = s.opt.Store.DueOutbound(ctx, clock.Now(), free, busy); err != nil {
				if ctx.Err() == nil {
					s.log.Error("outbox: reading due messages failed", "err", err)
				}
			}
		}
		for _, m := range due {
			if !s.admit(ctx, m) {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				s.release(m.To)
				return
			}
			wg.Add(1)
			go func(m store.OutboundRecord) {
				defer func() { <-sem; s.release(m.To); wg.Done(); s.Wake() }()
				s.send(ctx, m, fence)
			}(m)
		}
		if len(due) > 0 {
			continue
		}
		// With every slot taken, only a finishing request (wake) can
		// change anything.
		var timer <-chan time.Time
		if free > 0 {
			if at, ok, err := s.opt.Store.NextOutboundDue(ctx); err == nil && ok {
				timer = clock.After(max(at.Sub(clock.Now()), time.Millisecond))
			}
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-changed:
		case <-timer:
		}
	}
}

func (s *Sender) release(to string) {
	s.mu.Lock()
	delete(s.busy, to)
	s.mu.Unlock()
}

// admit applies the rate limits to a due message: a recipient over its
// pair limit waits in the queue (with its later messages) without holding
// up others; the number's throughput is waited for here, so messages leave
// evenly spaced. It reports whether the message may be sent now.
func (s *Sender) admit(ctx context.Context, m store.OutboundRecord) bool {
	clock := s.opt.Clock
	now := clock.Now()
	s.mu.Lock()
	pair := s.pairs[m.To]
	if pair == nil {
		if len(s.pairs) > 100_000 {
			s.pairs = map[string]*rate.Limiter{} // forget idle recipients rather than grow forever
		}
		pair = rate.NewLimiter(rate.Every(s.opt.PairInterval), s.opt.PairBurst)
		s.pairs[m.To] = pair
	}
	num := s.numbers[m.PhoneNumberID]
	if num == nil {
		num = rate.NewLimiter(rate.Limit(s.opt.MessagesPerSecond), 1)
		s.numbers[m.PhoneNumberID] = num
	}
	s.mu.Unlock()

	r := pair.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		s.waited.WithLabelValues("pair").Add(d.Seconds())
		if err := s.opt.Store.DeferOutbound(ctx, m.ID, m.To, now.Add(d), "", ""); err != nil && ctx.Err() == nil {
			s.log.Error("outbox: deferring a message failed", "id", m.ID, "err", err)
		}
		return false
	}
	nr := num.ReserveN(now, 1)
	if d := nr.DelayFrom(now); d > 0 {
		s.waited.WithLabelValues("throughput").Add(d.Seconds())
		select {
		case <-clock.After(d):
		case <-ctx.Done():
			nr.CancelAt(now)
			r.CancelAt(now)
			return false
		}
	}
	s.mu.Lock()
	s.busy[m.To] = true
	s.mu.Unlock()
	return true
}

// send sends one message and records what became of it.
func (s *Sender) send(ctx context.Context, m store.OutboundRecord, fence []store.Lease) {
	st, clock := s.opt.Store, s.opt.Clock
	bg := context.WithoutCancel(ctx)
	// The rules again, at send time: a trigger's reply was queued without
	// them, and a customer may have opted out since.
	r, err := st.LookupRecipient(ctx, m.To, false)
	if err != nil {
		s.log.Error("outbox: looking up the recipient failed; will retry", "id", m.ID, "err", err)
		s.recorded("deferring a message", m.ID, st.DeferOutbound(bg, m.ID, m.To, clock.Now().Add(time.Second), "", ""))
		return
	}
	msg := m.Request
	msg.PhoneNumberID = m.PhoneNumberID
	if _, err := s.opt.Policy.check(ctx, s.knownNumber, &msg, r, clock.Now()); err != nil {
		code := "invalid"
		var ref *sdk.RefusedError
		if errors.As(err, &ref) {
			code = ref.Code
		}
		s.messages.WithLabelValues("refused", code).Inc()
		if ferr := st.FailOutbound(bg, m.ID, code, err.Error()); ferr != nil {
			s.log.Error("outbox: recording a refusal failed", "id", m.ID, "err", ferr)
		}
		return
	}
	if !s.leading(fence) {
		return // no longer this hub's outbox; it stays queued for the leader
	}
	if msg.Media != nil {
		// The file first, its Graph id recorded; the message is queued
		// again with it and marked sending below, like any message.
		if !s.upload(ctx, &m, fence) {
			return
		}
		if !s.leading(fence) {
			return // the upload outlasted this hub's lead: queued, upload recorded, for the leader
		}
	}
	ok, err := st.MarkSending(ctx, m.ID, fence...)
	if errors.Is(err, store.ErrLeaseLost) {
		return // another hub sends the outbox now; the message stays queued for it
	}
	if err != nil {
		// Still queued: the next pass takes it again.
		s.log.Error("outbox: marking a message as sending failed; it stays queued", "id", m.ID, "err", err)
		return
	}
	if !ok {
		return // another pass took it, or it was cancelled meanwhile
	}
	if msg.MarkRead {
		s.markRead(bg, m, r)
	}
	s.mu.Lock()
	wire := s.wire[m.PhoneNumberID]
	if wire == nil {
		wire = newWindow(s.opt.MessagesPerSecond)
		s.wire[m.PhoneNumberID] = wire
	}
	s.mu.Unlock()
	if d := wire.reserve(clock.Now()); d > 0 {
		<-clock.After(d) // not cancelled: the message is marked sending and goes
	}
	if !s.leading(fence) {
		// The wait outlasted this hub's lead: the next leader sends at the
		// number's rate from now on, and this request would come on top.
		// Back to the queue, unless the new leader already recovered it
		// (then it is unknown, and was not sent).
		if err := st.DeferOutbound(bg, m.ID, m.To, clock.Now(), "", ""); err != nil {
			s.log.Error("outbox: returning a message to the queue failed", "id", m.ID, "err", err)
		}
		return
	}
	gm := graphMessage(m, r)
	acc, err := s.opt.Graph.Send(bg, m.PhoneNumberID, gm)
	if err == nil {
		s.messages.WithLabelValues("accepted", "").Inc()
		if err := st.AcceptOutbound(bg, m.ID, acc.WAMID, sentEvent(m, r, acc.WAMID, clock.Now())); err != nil {
			s.log.Error("outbox: recording an accepted message failed", "id", m.ID, "wamid", acc.WAMID, "err", err)
		}
		return
	}
	retry, code := graph.Classify(err)
	switch {
	case graph.MaybeSent(err):
		s.messages.WithLabelValues("unknown", code).Inc()
		s.recorded("recording an unconfirmed message", m.ID,
			st.UnconfirmedOutbound(bg, m.ID, "no answer from WhatsApp after the request was sent ("+err.Error()+"); not sent again"))
	case retry && code == graph.CodeCanceled:
		// Shutting down: back to the queue without spending an attempt.
		s.recorded("requeueing a message at shutdown", m.ID, st.DeferOutbound(bg, m.ID, m.To, clock.Now(), "", ""))
	case retry && m.Attempts+1 < s.opt.MaxAttempts:
		s.messages.WithLabelValues("retried", code).Inc()
		s.recorded("scheduling a retry", m.ID,
			st.DeferOutbound(bg, m.ID, m.To, clock.Now().Add(s.backoff(m.Attempts+1, code, graph.RetryAfter(err))), code, err.Error()))
	default:
		s.messages.WithLabelValues("failed", code).Inc()
		reason := err.Error()
		if retry {
			reason = "gave up after " + strconv.Itoa(m.Attempts+1) + " attempts: " + reason
		}
		s.recorded("recording a failed message", m.ID, st.FailOutbound(bg, m.ID, code, reason))
	}
}

// recorded logs a state change of the outbox that could not be stored. The
// message then stays in its previous state: one left "sending" is found by
// the sender's recovery at the next start and reported unconfirmed, never
// sent twice.
func (s *Sender) recorded(what, id string, err error) {
	if err != nil {
		s.log.Error("outbox: "+what+" failed", "id", id, "err", err)
	}
}

// ReadMarker is implemented by a Graph that can mark a customer's message
// read with the typing indicator (*graph.Client).
type ReadMarker interface {
	MarkReadTyping(ctx context.Context, phoneNumberID, wamid string) error
}

// markRead marks the customer's newest message read and shows the typing
// indicator before an agent's answer goes out. It is a courtesy: a failure
// is logged and never holds up the message, and a message already marked
// is not marked again.
func (s *Sender) markRead(ctx context.Context, m store.OutboundRecord, r store.Recipient) {
	rm, ok := s.opt.Graph.(ReadMarker)
	if !ok || r.Key == "" {
		return
	}
	wamid, err := s.opt.Store.LatestInbound(ctx, r.Key, m.PhoneNumberID)
	if err != nil || wamid == "" {
		if err != nil {
			s.log.Warn("outbox: finding the message to mark read failed", "id", m.ID, "err", err)
		}
		return
	}
	conv := m.PhoneNumberID + "\x00" + r.Key
	s.mu.Lock()
	done := s.marked[conv] == wamid
	s.mu.Unlock()
	if done {
		return
	}
	if err := rm.MarkReadTyping(ctx, m.PhoneNumberID, wamid); err != nil {
		s.log.Warn("outbox: marking the customer's message read failed; sending anyway", "id", m.ID, "wamid", wamid, "err", err)
		return
	}
	s.mu.Lock()
	if len(s.marked) > 100_000 {
		s.marked = map[string]string{}
	}
	s.marked[conv] = wamid
	s.mu.Unlock()
}

// backoff is the wait before attempt n+1: what Meta asked for, else
// exponential from 1 s (6 s for a pair limit, whose window is that long),
// capped at 5 minutes.
func (s *Sender) backoff(n int, code string, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, time.Hour)
	}
	d := time.Second
	if code == "131056" {
		d = s.opt.PairInterval
	}
	for i := 1; i < n && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

func graphMessage(m store.OutboundRecord, r store.Recipient) graph.Message {
	req := m.Request
	gm := graph.Message{Text: req.Text, Interactive: req.Interactive, ReplyTo: req.ReplyTo, CallbackData: m.ID, Media: graphMedia(m)}
	if r := req.Reaction; r != nil {
		gm.Reaction = &graph.Reaction{MessageID: r.MessageID, Emoji: r.Emoji}
	}
	switch {
	case r.WAID != "":
		gm.To = "+" + r.WAID
	case r.UserID != "":
		gm.UserID = r.UserID
	case graph.IsBSUID(m.To):
		gm.UserID = m.To
	default:
		gm.To = "+" + m.To
	}
	if t := req.Template; t != nil {
		gm.Template = &graph.Template{Name: t.Name, Language: t.Language, Components: t.Components}
	}
	return gm
}

// sentEvent is the message.sent event announcing an accepted message. Its
// id derives from the outbox id: it is appended once.
func sentEvent(m store.OutboundRecord, r store.Recipient, wamid string, now time.Time) *sdk.Event {
	req := m.Request
	c := &sdk.Contact{WAID: r.WAID, UserID: r.UserID}
	if c.Key() == "" {
		if graph.IsBSUID(m.To) {
			c.UserID = m.To
		} else {
			c.WAID = m.To
		}
	}
	msg := &sdk.Message{ID: wamid, Type: "text", Text: req.Text}
	switch {
	case req.Template != nil:
		msg.Type, msg.Text = "template", "[template "+req.Template.Name+" ("+req.Template.Language+")]"
	case len(req.Interactive) > 0:
		msg.Type = "interactive"
	case req.Reaction != nil:
		msg.Type, msg.Reaction = "reaction", &sdk.Reaction{MessageID: req.Reaction.MessageID, Emoji: req.Reaction.Emoji}
	case req.Media != nil:
		msg.Type = req.Media.Type
		msg.Media = &sdk.Media{ID: req.Media.ID, Caption: req.Media.Caption, Filename: req.Media.Filename, State: sdk.MediaAvailable}
		if u := m.Upload; u != nil {
			msg.Media.MimeType, msg.Media.Size = u.MimeType, u.Size
		}
	}
	if req.ReplyTo != "" {
		msg.Context = &sdk.Context{ID: req.ReplyTo}
	}
	key := req.IdempotencyKey
	return &sdk.Event{
		ID:         ingest.EventID("sent:" + m.ID),
		Type:       sdk.TypeMessageSent,
		OccurredAt: now,
		ReceivedAt: now,
		Business:   &sdk.Business{PhoneNumberID: m.PhoneNumberID},
		Contact:    c,
		Message:    msg,
		Outbound:   &sdk.Outbound{ID: m.ID, Source: m.Source, IdempotencyKey: strings.TrimSpace(key)},
	}
}

// window holds a number to its rate in every window of time, as Meta
// counts: at most n requests in any span (n per second at the configured
// rate), with a small margin for the way to Meta. Requests reserve their
// place in turn.
type window struct {
	mu    sync.Mutex
	n     int
	span  time.Duration
	times []time.Time // the last n reserved send times, oldest first
}

// windowMargin absorbs the jitter between a request leaving and Meta
// counting it (a receiver that stalls and then takes queued requests at
// once sees them closer together than they left): 100 ms costs at most a
// tenth of the number's throughput at the edge of a busy second, and
// Meta's own limits leave no margin to spend.
const windowMargin = 100 * time.Millisecond

func newWindow(perSecond float64) *window {
	n := max(1, int(perSecond))
	return &window{n: n, span: time.Duration(float64(n)/perSecond*float64(time.Second)) + windowMargin}
}

// reserve returns how long to wait before sending, having reserved that
// time.
func (w *window) reserve(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	at := now
	if len(w.times) == w.n {
		if next := w.times[0].Add(w.span); next.After(at) {
			at = next
		}
		w.times = w.times[1:]
	}
	if k := len(w.times); k > 0 && w.times[k-1].After(at) {
		at = w.times[k-1]
	}
	w.times = append(w.times, at)
	return at.Sub(now)
}
