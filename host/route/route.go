// Package route decides who sees an event: the first matching route picks a
// team, conversation affinity may keep the team that already has the
// conversation, a closed team hands over to its after-hours team,
// subscriptions add connectors whatever the route, and triggers fire
// actions (reply, set, assign, deliver).
//
// It is a pure decision engine: no I/O, no clock of its own, no locks. The
// dispatcher calls Decide inside the store transaction that records the
// decision, and `wahub route --explain` calls it with a time of its
// choosing, so both read the same Trace.
package route

import (
	"errors"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/sdk"
)

// Step kinds, in the order Decide records them.
const (
	KindRoute        = "route"        // a route tried; Rule is its name
	KindAffinity     = "affinity"     // Rule is the team the conversation is with
	KindAfterHours   = "after_hours"  // Rule is the team whose schedule was looked at
	KindTrigger      = "trigger"      // a trigger whose `on` matched; Rule is its name
	KindAssign       = "assign"       // Rule is the trigger that assigned the team
	KindSubscription = "subscription" // Rule is the subscribed connector
	KindConnector    = "connector"    // a connector left out; Rule is its name
)

// RuleAffinity is Decision.Rule when the open conversation's team was kept.
const RuleAffinity = "affinity"

// State is what the caller knows about the event's conversation and contact
// beyond the event itself.
type State struct {
	// Consent is the contact's consent; "" means never stated.
	Consent sdk.Consent
	// Team is the team that currently has the conversation and LastActive
	// when the conversation last had an event; zero values mean none.
	Team       string
	LastActive time.Time
}

// Decision is where an event goes and why.
type Decision struct {
	// Rule is the route that matched, RuleAffinity when the conversation's
	// team was kept, "" when nothing matched.
	Rule string
	// Team is the team after after-hours handover and trigger assigns; it
	// is what the caller should record as the conversation's team.
	Team string
	// Connectors is the final team's connectors ∪ subscriptions ∪ deliver
	// actions, enabled ones only, sorted and without duplicates.
	Connectors []string
	// Triggers are the triggers that fire, in config order.
	Triggers []string
	// Actions are the actions of those triggers, in config order. Their
	// Reply, Set and Deliver are shared with the configuration: read only.
	Actions []Action
	// Trace says why, step by step: see the Kind constants.
	Trace []Step
}

// ActionKind is what a trigger's action does.
type ActionKind string

// Action kinds, one per key of a trigger's `do`.
const (
	ActionReply   ActionKind = "reply"   // send Reply to the customer
	ActionSet     ActionKind = "set"     // set contact attributes
	ActionAssign  ActionKind = "assign"  // hand the conversation to a team
	ActionDeliver ActionKind = "deliver" // deliver to more connectors
)

// Action is one action of a trigger that fires.
type Action struct {
	Trigger string
	Kind    ActionKind
	Reply   *config.Reply
	Set     map[string]string
	Assign  string
	Deliver []string
}

// Step is one line of a decision's explanation.
type Step struct {
	Kind    string // one of the Kind constants
	Rule    string
	Matched bool
	// Reason is plain English, for people: `keywords: none of [fatura
	// boleto invoice] in "Olá, preciso de ajuda"`.
	Reason string
}

// Router is a compiled configuration. It is immutable, so Decide is safe
// for concurrent use; the *config.Config it was made from must not change
// while the Router is in use (it shares schedules, replies and sets).
type Router struct {
	cfg      *config.Config
	routes   []route
	teams    map[string]*team
	triggers []trigger
	subs     []subscription
	conds    []*cond
	kw       kwIndex
	scheds   map[string]*sched
	idle     time.Duration
	canMove  map[string]bool
	consent  consentWords
	// disabled maps a disabled connector to the id of the reason that
	// says so.
	disabled map[string]int32

	// strs holds every name and fixed reason a trace can need, so that a
	// step records small integers instead of strings while the decision is
	// made; ids is its index, used by New and for rare steps.
	strs []string
	ids  map[string]int32
}

type route struct {
	name   string
	nameID int32
	team   string
	cond   *cond
}

type team struct {
	name       string
	nameID     int32
	connectors []binding
	sched      *sched
	afterHours string
}

type trigger struct {
	name    string
	nameID  int32
	on      globs
	cond    *cond
	actions []Action
	assign  string
	deliver []string
}

// binding is a team's connector; with events, only those types go to it.
type binding struct {
	name   string
	events *globs // nil: every event
	// skip says why an event of another type does not go to it (an id
	// of the Router's string table).
	skip int32
}

type subscription struct {
	connector   string
	connectorID int32
	events      globs
}

// id interns s in the Router's string table.
func (r *Router) id(s string) int32 {
	if id, ok := r.ids[s]; ok {
		return id
	}
	id := int32(len(r.strs))
	r.strs = append(r.strs, s)
	r.ids[s] = id
	return id
}

// Reasons that never change.
const (
	reasonNone      = "no conditions: matches every event"
	reasonNoRoute   = "no route matched: the event goes to no team"
	reasonNoConvers = "the event belongs to no conversation: routed by rules"
	reasonNoLast    = "the conversation's last activity is unknown: routed afresh"
)

// New compiles the configuration's routes, teams, schedules, subscriptions
// and triggers into a Router. A configuration from config.Load always
// compiles; the errors are for one built by hand, and are *config.Error
// naming the key, joined.
func New(cfg *config.Config) (*Router, error) {
	if cfg == nil {
		return nil, errors.New("route: no configuration")
	}
	r := &Router{
		cfg:      cfg,
		teams:    make(map[string]*team, len(cfg.Teams)),
		scheds:   map[string]*sched{},
		idle:     cfg.Affinity.IdleTimeout,
		canMove:  map[string]bool{},
		disabled: map[string]int32{},
		strs:     []string{""},
		ids:      map[string]int32{"": 0},
	}
	for _, reason := range []string{reasonNone, reasonNoRoute, reasonNoConvers, reasonNoLast} {
		r.id(reason)
	}
	if r.idle <= 0 {
		r.idle = 24 * time.Hour
	}
	wa := cfg.WhatsApp
	r.consent = newConsentWords(wa.OptOutKeywords, wa.OptInKeywords, wa.OptOutPayloads, wa.OptInPayloads)
	var errs []error
	connectorRef := func(key, name string) {
		if _, ok := cfg.Connectors[name]; !ok {
			errs = append(errs, &config.Error{Key: key, Msg: "unknown connector " + strconv.Quote(name)})
		}
	}
	teamRef := func(key, name string) {
		if _, ok := cfg.Teams[name]; !ok {
			errs = append(errs, &config.Error{Key: key, Msg: "unknown team " + strconv.Quote(name)})
		}
	}

	for _, name := range sortedKeys(cfg.Connectors) {
		r.id(name)
		if !cfg.Connectors[name].Enabled {
			r.disabled[name] = r.id("disabled (connectors." + name + ".enabled: false): it does not get this event")
		}
	}
	for _, name := range sortedKeys(cfg.Teams) {
		t := cfg.Teams[name]
		key := "teams." + name
		ct := &team{name: name, nameID: r.id(name), afterHours: t.AfterHours}
		for i, c := range t.Connectors {
			bkey := index(key+".connectors", i)
			connectorRef(bkey, c.Name)
			b := binding{name: c.Name}
			if len(c.Events) > 0 {
				g, err := compileGlobs(bkey+".events", c.Events)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				b.events = &g
				b.skip = r.id("the team binds it to " + g.list + " only (" + bkey + ".events): it does not get this event")
			}
			ct.connectors = append(ct.connectors, b)
		}
		if t.Schedule != "" {
			s, err := r.schedule(key+".schedule", t.Schedule)
			if err != nil {
				errs = append(errs, err)
			}
			ct.sched = s
		}
		if t.AfterHours != "" {
			teamRef(key+".after_hours", t.AfterHours)
		}
		r.teams[name] = ct
	}

	names := map[string]bool{}
	for i, rt := range cfg.Routes {
		key := index("routes", i)
		teamRef(key+".team", rt.Team)
		c, err := r.compileCond(key+".when", &rt.When)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		names[rt.Name] = true
		r.routes = append(r.routes, route{name: rt.Name, nameID: r.id(rt.Name), team: rt.Team, cond: c})
	}
	for i, name := range cfg.Affinity.RulesCanMove {
		if !names[name] {
			errs = append(errs, &config.Error{Key: index("affinity.rules_can_move", i), Msg: "unknown route " + strconv.Quote(name)})
		}
		r.canMove[name] = true
	}

	for i, t := range cfg.Triggers {
		key := index("triggers", i)
		on, err := compileGlobs(key+".on", t.On)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c, err := r.compileCond(key+".when", &t.When)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ct := trigger{name: t.Name, nameID: r.id(t.Name), on: on, cond: c, assign: t.Assign, deliver: t.Deliver}
		if t.Reply != nil {
			ct.actions = append(ct.actions, Action{Trigger: t.Name, Kind: ActionReply, Reply: t.Reply})
		}
		if len(t.Set) > 0 {
			ct.actions = append(ct.actions, Action{Trigger: t.Name, Kind: ActionSet, Set: t.Set})
		}
		if t.Assign != "" {
			teamRef(key+".assign", t.Assign)
			ct.actions = append(ct.actions, Action{Trigger: t.Name, Kind: ActionAssign, Assign: t.Assign})
		}
		if len(t.Deliver) > 0 {
			for j, cn := range t.Deliver {
				connectorRef(index(key+".deliver", j), cn)
			}
			ct.actions = append(ct.actions, Action{Trigger: t.Name, Kind: ActionDeliver, Deliver: t.Deliver})
		}
		r.triggers = append(r.triggers, ct)
	}

	for i, s := range cfg.Subscriptions {
		key := index("subscriptions", i)
		bindings := s.Connectors
		if s.Connector != "" {
			bindings = append([]config.Binding{{Name: s.Connector}}, bindings...)
		}
		for j, b := range bindings {
			bkey, ekey, events := key+".connector", key+".events", s.Events
			if s.Connector == "" || j > 0 {
				bkey = index(key+".connectors", j-len(bindings)+len(s.Connectors))
			}
			if len(b.Events) > 0 {
				ekey, events = bkey+".events", b.Events
			}
			connectorRef(bkey, b.Name)
			g, err := compileGlobs(ekey, events)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.subs = append(r.subs, subscription{connector: b.Name, connectorID: r.id(b.Name), events: g})
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// decision is the scratch state of one Decide call. Its buffers are
// pooled: nothing in it outlives the call except the strings copied into
// the Decision.
type decision struct {
	r   *Router
	ev  *sdk.Event
	now time.Time
	st  State
	tr  tracer

	opens []int8 // per schedule: 0 not looked at, 1 open, 2 closed

	textDone bool
	text     string // what keywords look at: message text and button title
	folded   string
	toks     []string
	hits     []uint64 // per cond: a keyword of it is in the text
	quoted   string
}

var decisions = sync.Pool{New: func() any { return new(decision) }}

// maxPooled keeps one pathological event from pinning a huge buffer.
const maxPooled = 1 << 20

func (x *decision) release() {
	if cap(x.tr.buf) > maxPooled {
		return
	}
	clear(x.tr.dyn)
	clear(x.toks)
	*x = decision{
		tr:    tracer{buf: x.tr.buf[:0], heads: x.tr.heads[:0], dyn: x.tr.dyn[:0]},
		opens: x.opens[:0],
		toks:  x.toks[:0],
		hits:  x.hits[:0],
	}
	decisions.Put(x)
}

// Decide routes one event and explains why. now is the time schedules are
// evaluated at; the zero time means the event's own time (OccurredAt, else
// ReceivedAt).
func (r *Router) Decide(ev *sdk.Event, now time.Time, st State) Decision {
	return r.decide(ev, now, st, false)
}

// Route is Decide without the Trace: the same decision, for the hot path.
func (r *Router) Route(ev *sdk.Event, now time.Time, st State) Decision {
	return r.decide(ev, now, st, true)
}

func (r *Router) decide(ev *sdk.Event, now time.Time, st State, quiet bool) Decision {
	if now.IsZero() {
		now = ev.OccurredAt
		if now.IsZero() {
			now = ev.ReceivedAt
		}
	}
	x := decisions.Get().(*decision)
	defer x.release()
	x.r, x.ev, x.now, x.st = r, ev, now, st
	x.tr.r, x.tr.off = r, quiet
	var d Decision

	// Routes: ordered, first match wins.
	var hit *route
	for i := range r.routes {
		rt := &r.routes[i]
		ok := x.check(rt.cond)
		x.tr.stepID(kRoute, rt.nameID, ok)
		if ok {
			hit = rt
			break
		}
	}
	if hit != nil {
		d.Rule, d.Team = hit.name, hit.team
	} else if len(r.routes) > 0 {
		x.tr.static = r.ids[reasonNoRoute]
		x.tr.stepID(kRoute, 0, false)
	}

	d.Rule, d.Team = x.affinity(hit, d.Rule, d.Team)
	d.Team = x.afterHours(d.Team)

	// Triggers run after routing so that an assign overrides the routed
	// (and after-hours) team outright: the trigger named a team on
	// purpose, so its schedule is not consulted again, and the assigned
	// team's connectors replace the routed team's.
	var deliver []string
	for i := range r.triggers {
		t := &r.triggers[i]
		p, ok := t.on.match(string(ev.Type))
		if !ok {
			continue
		}
		start := len(x.tr.buf)
		x.tr.str("on: ").quote(string(ev.Type))
		if p == string(ev.Type) {
			x.tr.str(" is one of ").str(t.on.list)
		} else {
			x.tr.str(" matches ").str(p)
		}
		fired := true
		if !t.cond.empty {
			x.tr.str("; ")
			mark := len(x.tr.buf)
			if fired = x.check(t.cond); !fired {
				// A failure is about the condition alone: "on" held,
				// or the trigger would not be in the trace at all.
				x.tr.buf = append(x.tr.buf[:start], x.tr.buf[mark:]...)
			}
		}
		x.tr.stepID(kTrigger, t.nameID, fired)
		if !fired {
			continue
		}
		d.Triggers = append(d.Triggers, t.name)
		d.Actions = append(d.Actions, t.actions...)
		deliver = append(deliver, t.deliver...)
		if t.assign != "" {
			if d.Team == "" {
				x.tr.str("no team → ").str(t.assign)
			} else {
				x.tr.str("team ").str(d.Team).str(" → ").str(t.assign)
			}
			x.tr.str(" (assigned, so after_hours does not apply)")
			x.tr.stepID(kAssign, t.nameID, true)
			d.Team = t.assign
		}
	}

	d.Connectors = x.connectors(d.Team, deliver)
	d.Trace = x.tr.finish()
	return d
}

// affinity keeps an open conversation with the team that has it, unless
// the route that matched is one the configuration allows to move it.
// Every event of the conversation is subject to it, statuses included: a
// delivery receipt of an agent's reply belongs where the reply came from.
func (x *decision) affinity(hit *route, rule, teamName string) (string, string) {
	st, tr, r := x.st, &x.tr, x.r
	if st.Team == "" {
		return rule, teamName
	}
	switch {
	case x.ev.ConversationID == "":
		tr.static = r.ids[reasonNoConvers]
	case r.teams[st.Team] == nil:
		tr.str("team ").str(st.Team).str(" no longer exists: routed afresh")
	case st.LastActive.IsZero():
		tr.static = r.ids[reasonNoLast]
	default:
		idle := x.now.Sub(st.LastActive)
		if idle >= r.idle {
			tr.str("conversation with team ").str(st.Team).str(" idle for ").str(idle.Round(time.Second).String()).
				str(" (affinity.idle_timeout ").str(r.idle.String()).str("): routed afresh")
			break
		}
		if hit != nil && r.canMove[hit.name] {
			tr.str("route ").str(hit.name).str(" may move the conversation (affinity.rules_can_move): team ").
				str(st.Team).str(" → ").str(hit.team)
			break
		}
		tr.str("conversation is with team ").str(st.Team).str(", last active ")
		if idle >= 0 {
			tr.str(idle.Round(time.Second).String()).str(" before this event")
		} else {
			tr.str((-idle).Round(time.Second).String()).str(" after this event")
		}
		tr.str(" (affinity.idle_timeout ").str(r.idle.String()).str(")")
		if hit != nil {
			tr.str("; route ").str(hit.name).str(" is not in affinity.rules_can_move")
		}
		tr.step(kAffinity, st.Team, true)
		return RuleAffinity, st.Team
	}
	tr.step(kAffinity, st.Team, false)
	return rule, teamName
}

// afterHours hands the event over while a team's schedule is closed, along
// the chain of after_hours teams.
func (x *decision) afterHours(name string) string {
	tr := &x.tr
	var seen []string
	for name != "" {
		t := x.r.teams[name]
		if t == nil || t.sched == nil {
			return name
		}
		open := x.open(t.sched)
		tr.str("team ").str(name).str(": ").str(t.sched.name).str(" ")
		x.schedState(t.sched, open)
		switch {
		case open:
			tr.stepID(kAfterHours, t.nameID, false)
			return name
		case t.afterHours == "":
			tr.str("; no after_hours, so it stays with ").str(name)
			tr.stepID(kAfterHours, t.nameID, false)
			return name
		case slices.Contains(seen, t.afterHours) || t.afterHours == name:
			// config.Load rejects loops; a hand-built config may not.
			tr.str("; after_hours ").str(t.afterHours).str(" leads back around the chain, so it stays with ").str(name)
			tr.stepID(kAfterHours, t.nameID, false)
			return name
		}
		tr.str(": after_hours → ").str(t.afterHours)
		tr.stepID(kAfterHours, t.nameID, true)
		seen = append(seen, name)
		name = t.afterHours
	}
	return name
}

// connectors gathers the final team's connectors, subscriptions and
// deliver actions, each connector once, leaving out disabled ones.
func (x *decision) connectors(teamName string, deliver []string) []string {
	r, tr, ev := x.r, &x.tr, x.ev
	var out []string
	if t := r.teams[teamName]; t != nil {
		for i := range t.connectors {
			b := &t.connectors[i]
			if b.events != nil {
				if _, ok := b.events.match(string(ev.Type)); !ok {
					tr.static = b.skip
					tr.step(kConnector, b.name, false)
					continue
				}
			}
			out = append(out, b.name)
		}
	}
	for i := range r.subs {
		s := &r.subs[i]
		p, ok := s.events.match(string(ev.Type))
		if !ok {
			continue
		}
		tr.str("events: ").quote(string(ev.Type))
		if p == string(ev.Type) {
			tr.str(" is one of ").str(s.events.list)
		} else {
			tr.str(" matches ").str(p)
		}
		tr.stepID(kSubscription, s.connectorID, true)
		out = append(out, s.connector)
	}
	out = append(out, deliver...)
	if len(out) == 0 {
		return nil
	}
	sort.Strings(out)
	out = slices.Compact(out)
	if len(r.disabled) > 0 {
		kept := out[:0]
		for _, c := range out {
			if reason, off := r.disabled[c]; off {
				tr.static = reason
				tr.step(kConnector, c, false)
				continue
			}
			kept = append(kept, c)
		}
		out = kept
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// loadText folds and tokenizes the text once per decision, and only when
// a keyword condition is reached, then finds every keyword condition that
// holds in one pass over the words.
func (x *decision) loadText() {
	if x.textDone {
		return
	}
	x.textDone = true
	x.hits = grow(x.hits, (len(x.r.conds)+63)/64)
	if m := x.ev.Message; m != nil {
		x.text = m.Text
		// Ingest already copies a button's title into Text; a title that
		// differs (an event built elsewhere) is looked at too.
		if m.Button != nil && m.Button.Title != "" && m.Button.Title != m.Text {
			if x.text == "" {
				x.text = m.Button.Title
			} else {
				// A newline is not part of a word, so no phrase spans
				// the text and the title.
				x.text += "\n" + m.Button.Title
			}
		}
	}
	if x.text == "" {
		return
	}
	x.folded = fold(x.text)
	x.toks = tokenize(x.toks[:0], x.folded)
	x.r.kw.scan(x.toks, x.folded, x.hits)
}

func (x *decision) quotedText() string {
	if x.quoted == "" {
		x.quoted = clipQuote(x.text)
	}
	return x.quoted
}

// tracer accumulates every reason of a decision in one buffer and cuts
// the Reason strings out of a few strings at the end. While the decision
// is made a step is only integers: storing strings would cost a write
// barrier each whenever the collector runs, and a 200-route trace is
// written on every event.
type tracer struct {
	r     *Router
	buf   []byte
	heads []stepHead
	dyn   []string // names not in the Router's table (a team State names)
	// static, when set, is the pending step's whole reason, from the
	// Router's table: such a step copies nothing.
	static int32
	// off skips the explanation: the dispatcher stores the decision, not
	// why, and a 200-route trace is most of a decision's cost.
	off bool
}

type stepHead struct {
	end     int32
	rule    int32 // index into Router.strs, or ^i for dyn[i]
	static  int32
	kind    uint8
	matched bool
}

// Step kinds as stored in stepHead.
const (
	kRoute uint8 = iota
	kAffinity
	kAfterHours
	kTrigger
	kAssign
	kSubscription
	kConnector
)

var kinds = [...]string{KindRoute, KindAffinity, KindAfterHours, KindTrigger, KindAssign, KindSubscription, KindConnector}

func (t *tracer) str(s string) *tracer {
	if !t.off {
		t.buf = append(t.buf, s...)
	}
	return t
}

func (t *tracer) quote(s string) *tracer {
	if !t.off {
		t.buf = strconv.AppendQuote(t.buf, s)
	}
	return t
}

// stepID closes the reason written since the previous step.
func (t *tracer) stepID(kind uint8, rule int32, matched bool) {
	if t.off {
		t.static = 0
		return
	}
	t.heads = append(t.heads, stepHead{end: int32(len(t.buf)), rule: rule, static: t.static, kind: kind, matched: matched})
	t.static = 0
}

// step is stepID for a name that may not be in the Router's table.
func (t *tracer) step(kind uint8, rule string, matched bool) {
	id, ok := t.r.ids[rule]
	if !ok {
		t.dyn = append(t.dyn, rule)
		id = ^int32(len(t.dyn) - 1)
	}
	t.stepID(kind, id, matched)
}

func (t *tracer) finish() []Step {
	if len(t.heads) == 0 {
		return nil
	}
	strs := t.r.strs
	steps := make([]Step, len(t.heads))
	// The reasons are cut out of strings of at most chunk bytes: larger
	// ones are allocated page by page outside the size classes, which
	// costs several times more than the copying.
	const chunk = 8 << 10
	var s string
	base, prev := 0, 0
	for i, h := range t.heads {
		st := &steps[i]
		st.Kind, st.Matched = kinds[h.kind], h.matched
		if h.rule >= 0 {
			st.Rule = strs[h.rule]
		} else {
			st.Rule = t.dyn[^h.rule]
		}
		end := int(h.end)
		if h.static != 0 {
			st.Reason = strs[h.static]
		} else if end > prev {
			if end-base > len(s) {
				base = prev
				last := end
				for _, n := range t.heads[i+1:] {
					if int(n.end)-base > chunk {
						break
					}
					last = int(n.end)
				}
				s = string(t.buf[base:last])
			}
			st.Reason = s[prev-base : end-base]
		}
		prev = end
	}
	return steps
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
