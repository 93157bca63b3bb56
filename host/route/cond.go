package route

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wahub/wahub/host/config"
)

// globs matches event types against exact names and path.Match patterns,
// the semantics config validation checks them with. The common shapes get
// a fast path: "*" and "prefix.*" never reach path.Match.
type globs struct {
	all      string   // the pattern that matches everything, if any
	exact    []string // a handful at most: a slice beats a map
	prefixes []prefixGlob
	patterns []string
	list     string // for reasons: "[a b c]"
}

type prefixGlob struct{ prefix, pattern string }

func compileGlobs(key string, pats []string) (globs, error) {
	g := globs{list: listString(pats)}
	for i, p := range pats {
		if _, err := path.Match(p, ""); err != nil {
			return g, &config.Error{Key: index(key, i), Msg: "bad pattern " + strconv.Quote(p) + ": " + err.Error()}
		}
		switch {
		case p == "*":
			if g.all == "" {
				g.all = p
			}
		case !strings.ContainsAny(p, `*?[\`):
			g.exact = append(g.exact, p)
		case strings.HasSuffix(p, "*") && !strings.ContainsAny(p[:len(p)-1], `*?[\`):
			g.prefixes = append(g.prefixes, prefixGlob{p[:len(p)-1], p})
		default:
			g.patterns = append(g.patterns, p)
		}
	}
	return g, nil
}

func (g *globs) empty() bool {
	return g.list == ""
}

// match returns the pattern that matched t.
func (g *globs) match(t string) (string, bool) {
	if g.all != "" {
		return g.all, true
	}
	for _, e := range g.exact {
		if e == t {
			return e, true
		}
	}
	for _, p := range g.prefixes {
		if strings.HasPrefix(t, p.prefix) {
			return p.pattern, true
		}
	}
	for _, p := range g.patterns {
		if ok, _ := path.Match(p, t); ok {
			return p, true
		}
	}
	return "", false
}

// cond is a compiled Conditions. Its id indexes the keyword hit bitset.
type cond struct {
	id    int32
	empty bool

	events   globs
	phones   []string
	phoneLst string
	buttons  []string
	buttonL  string
	contact  []attrCond
	consent  []string
	consentL string
	country  []string
	countryL string
	within   *sched
	outside  *sched

	keywords []keyword
	kwList   string
	regexps  []*regexp.Regexp
	reList   string

	// Failure reasons that depend on nothing but the configuration and
	// a small set of inputs, compiled once (ids into Router.strs).
	eventFail  map[string]int32 // by known event type
	phoneNone  int32
	buttonNone int32
	consentNot map[string]int32
	countryBS  int32 // the contact has only a BSUID
	countryNo  int32
	kwNoText   int32
}

type attrCond struct {
	name   string
	values []string
	list   string
	notSet int32
}

// sched is a schedule with the index of its memo slot in a decision.
type sched struct {
	id   int
	name string
	s    *config.Schedule
}

func (r *Router) compileCond(key string, c *config.Conditions) (*cond, error) {
	k := &cond{id: int32(len(r.conds))}
	r.conds = append(r.conds, k)
	var err error
	if k.events, err = compileGlobs(key+".event", c.Event); err != nil {
		return nil, err
	}
	k.phones, k.phoneLst = c.PhoneNumberID, listString(c.PhoneNumberID)
	k.buttons, k.buttonL = c.Button, listString(c.Button)
	if !k.events.empty() {
		k.eventFail = map[string]int32{}
		for _, t := range config.EventTypes {
			if _, ok := k.events.match(t); !ok {
				k.eventFail[t] = r.id("event: " + strconv.Quote(t) + " is not one of " + k.events.list)
			}
		}
	}
	if len(k.phones) > 0 {
		k.phoneNone = r.id("phone_number_id: the event has no business phone number id (wanted one of " + k.phoneLst + ")")
	}
	if len(k.buttons) > 0 {
		k.buttonNone = r.id("button: the event has no button or list reply (wanted one of " + k.buttonL + ")")
	}
	for _, name := range sortedKeys(c.Contact) {
		vals := c.Contact[name]
		a := attrCond{name: name, values: vals, list: listString(vals)}
		a.notSet = r.id("contact." + name + ": not set (wanted one of " + a.list + ")")
		k.contact = append(k.contact, a)
	}
	k.consent, k.consentL = c.Consent, listString(c.Consent)
	if len(k.consent) > 0 {
		k.consentNot = map[string]int32{}
		for _, v := range []string{"granted", "revoked", "unknown"} {
			if !slices.Contains(k.consent, v) {
				k.consentNot[v] = r.id("consent: " + strconv.Quote(v) + " is not one of " + k.consentL)
			}
		}
	}
	for _, cc := range c.CountryCode {
		k.country = append(k.country, strings.TrimPrefix(strings.TrimSpace(cc), "+"))
	}
	k.countryL = listString(k.country)
	if len(k.country) > 0 {
		// A business-scoped user id says nothing reliable about the
		// customer's number, so no country is guessed from it.
		k.countryBS = r.id("country_code: the contact has only a user_id, no wa_id, so its country is unknown (wanted one of " + k.countryL + ")")
		k.countryNo = r.id("country_code: the event has no contact wa_id (wanted one of " + k.countryL + ")")
	}
	if c.Within != "" {
		if k.within, err = r.schedule(key+".within", c.Within); err != nil {
			return nil, err
		}
	}
	if c.Outside != "" {
		if k.outside, err = r.schedule(key+".outside", c.Outside); err != nil {
			return nil, err
		}
	}
	for _, kw := range c.Keywords {
		ck := compileKeyword(kw)
		if len(ck.words) == 0 && ck.sub == "" {
			return nil, &config.Error{Key: key + ".keywords", Msg: "empty keyword; remove it"}
		}
		k.keywords = append(k.keywords, ck)
		r.kw.add(k.id, ck)
	}
	k.kwList = listString(c.Keywords)
	if len(k.keywords) > 0 {
		k.kwNoText = r.id("keywords: none of " + k.kwList + ": the event has no text")
	}
	// A Conditions built by hand rather than by config.Load has no
	// compiled regexps yet.
	k.regexps = c.Regexps
	if len(k.regexps) != len(c.Regex) {
		k.regexps = make([]*regexp.Regexp, len(c.Regex))
		for i, expr := range c.Regex {
			if k.regexps[i], err = regexp.Compile(expr); err != nil {
				return nil, &config.Error{Key: index(key+".regex", i), Msg: "invalid regular expression: " + err.Error()}
			}
		}
	}
	if len(k.regexps) > 0 {
		var b strings.Builder
		for i, re := range k.regexps {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("/" + re.String() + "/")
		}
		k.reList = b.String()
	}
	k.empty = k.events.empty() && len(k.phones) == 0 && len(k.buttons) == 0 && len(k.contact) == 0 &&
		len(k.consent) == 0 && len(k.country) == 0 && k.within == nil && k.outside == nil &&
		len(k.keywords) == 0 && len(k.regexps) == 0
	return k, nil
}

func (r *Router) schedule(key, name string) (*sched, error) {
	if s, ok := r.scheds[name]; ok {
		return s, nil
	}
	cs := r.cfg.Schedules[name]
	if cs == nil {
		return nil, &config.Error{Key: key, Msg: "unknown schedule " + strconv.Quote(name)}
	}
	s := &sched{id: len(r.scheds), name: name, s: cs}
	r.scheds[name] = s
	return s, nil
}

// check evaluates c, writing into the trace buffer why it holds (every
// condition) or why not (the first that fails, cheap ones first so that
// the message text is only looked at when it decides).
func (x *decision) check(c *cond) bool {
	tr := &x.tr
	start := len(tr.buf)
	if c.empty {
		tr.static = x.r.ids[reasonNone]
		return true
	}
	ev := x.ev
	fail := func() { tr.buf = tr.buf[:start] }
	sep := func() {
		if len(tr.buf) > start {
			tr.str("; ")
		}
	}

	if !c.events.empty() {
		p, ok := c.events.match(string(ev.Type))
		if !ok {
			fail()
			if tr.static = c.eventFail[string(ev.Type)]; tr.static == 0 {
				tr.str("event: ").quote(string(ev.Type)).str(" is not one of ").str(c.events.list)
			}
			return false
		}
		sep()
		tr.str("event: ").quote(string(ev.Type))
		if p == string(ev.Type) {
			tr.str(" is one of ").str(c.events.list)
		} else {
			tr.str(" matches ").str(p)
		}
	}

	if len(c.phones) > 0 {
		var id string
		if ev.Business != nil {
			id = ev.Business.PhoneNumberID
		}
		switch {
		case id == "":
			fail()
			tr.static = c.phoneNone
			return false
		case !slices.Contains(c.phones, id):
			fail()
			tr.str("phone_number_id: ").quote(id).str(" is not one of ").str(c.phoneLst)
			return false
		}
		sep()
		tr.str("phone_number_id: ").quote(id).str(" is one of ").str(c.phoneLst)
	}

	if len(c.buttons) > 0 {
		var id string
		if ev.Message != nil && ev.Message.Button != nil {
			id = ev.Message.Button.ID
		}
		switch {
		case id == "":
			fail()
			tr.static = c.buttonNone
			return false
		case !slices.Contains(c.buttons, id):
			fail()
			tr.str("button: ").quote(id).str(" is not one of ").str(c.buttonL)
			return false
		}
		sep()
		tr.str("button: ").quote(id).str(" is one of ").str(c.buttonL)
	}

	for i := range c.contact {
		a := &c.contact[i]
		var v string
		var set bool
		if ev.Contact != nil {
			v, set = ev.Contact.Attributes[a.name]
		}
		if !set {
			fail()
			tr.static = a.notSet
			return false
		}
		if !containsFold(a.values, v) {
			fail()
			tr.str("contact.").str(a.name).str(": ").quote(v).str(" is not one of ").str(a.list)
			return false
		}
		sep()
		tr.str("contact.").str(a.name).str(": ").quote(v).str(" is one of ").str(a.list)
	}

	if len(c.consent) > 0 {
		// Rules name consent as configured text: granted, revoked, unknown.
		v := string(x.st.Consent)
		if v == "" {
			v = "unknown"
		}
		if !slices.Contains(c.consent, v) {
			fail()
			if tr.static = c.consentNot[v]; tr.static == 0 {
				tr.str("consent: ").quote(v).str(" is not one of ").str(c.consentL)
			}
			return false
		}
		sep()
		tr.str("consent: ").quote(v).str(" is one of ").str(c.consentL)
	}

	if len(c.country) > 0 {
		var waID string
		if ev.Contact != nil {
			waID = strings.TrimPrefix(ev.Contact.WAID, "+")
		}
		if waID == "" {
			fail()
			if ev.Contact != nil && ev.Contact.UserID != "" {
				tr.static = c.countryBS
			} else {
				tr.static = c.countryNo
			}
			return false
		}
		// Calling codes are a prefix code (no code is the start of
		// another), so a prefix test is exact.
		hit := ""
		for _, cc := range c.country {
			if strings.HasPrefix(waID, cc) {
				hit = cc
				break
			}
		}
		if hit == "" {
			fail()
			tr.str("country_code: wa_id ").quote(waID).str(" does not start with one of ").str(c.countryL)
			return false
		}
		sep()
		tr.str("country_code: wa_id ").quote(waID).str(" starts with ").str(hit)
	}

	if c.within != nil {
		open := x.open(c.within)
		if !open {
			fail()
			tr.str("within ").str(c.within.name).str(": ")
			x.schedState(c.within, false)
			return false
		}
		sep()
		tr.str("within ").str(c.within.name).str(": ")
		x.schedState(c.within, true)
	}
	if c.outside != nil {
		open := x.open(c.outside)
		if open {
			fail()
			tr.str("outside ").str(c.outside.name).str(": ")
			x.schedState(c.outside, true)
			return false
		}
		sep()
		tr.str("outside ").str(c.outside.name).str(": ")
		x.schedState(c.outside, false)
	}

	if len(c.keywords) > 0 {
		x.loadText()
		if x.hits[c.id>>6]&(1<<(c.id&63)) == 0 {
			fail()
			if x.text == "" {
				tr.static = c.kwNoText
			} else {
				tr.str("keywords: none of ").str(c.kwList).str(" in ").str(x.quotedText())
			}
			return false
		}
		sep()
		for i := range c.keywords {
			if c.keywords[i].in(x.toks, x.folded) {
				tr.str("keywords: ").quote(c.keywords[i].orig).str(" in ").str(x.quotedText())
				break
			}
		}
	}

	if len(c.regexps) > 0 {
		var text string
		if ev.Message != nil {
			text = ev.Message.Text
		}
		var hit *regexp.Regexp
		for _, re := range c.regexps {
			if re.MatchString(text) {
				hit = re
				break
			}
		}
		if hit == nil {
			fail()
			tr.str("regex: none of ").str(c.reList).str(" matches ").str(clipQuote(text))
			return false
		}
		sep()
		tr.str("regex: /").str(hit.String()).str("/ matches ").str(clipQuote(text))
	}
	return true
}

// containsFold compares attribute values as people type them: a CRM that
// says "Gold" and a rule that says gold mean the same customer.
func containsFold(vals []string, v string) bool {
	v = strings.TrimSpace(v)
	for _, w := range vals {
		if strings.EqualFold(strings.TrimSpace(w), v) {
			return true
		}
	}
	return false
}

// open memoises Schedule.Open per decision: it formats a date for the
// holiday lookup, and several rules often name the same schedule.
func (x *decision) open(s *sched) bool {
	if len(x.opens) == 0 {
		x.opens = grow(x.opens, len(x.r.scheds))
	}
	switch x.opens[s.id] {
	case 1:
		return true
	case 2:
		return false
	}
	open := s.s.Open(x.now)
	if open {
		x.opens[s.id] = 1
	} else {
		x.opens[s.id] = 2
	}
	return open
}

// schedState writes "open at 2026-11-24 14:00 America/Sao_Paulo".
func (x *decision) schedState(s *sched, open bool) {
	tr := &x.tr
	if open {
		tr.str("open at ")
	} else {
		tr.str("closed at ")
	}
	loc := s.s.Location
	if loc == nil {
		loc = time.UTC
	}
	lt := x.now.In(loc)
	tr.buf = lt.AppendFormat(tr.buf, "2006-01-02 15:04 ")
	tr.str(loc.String())
	if !open && s.s.Holidays[lt.Format(time.DateOnly)] {
		tr.str(" (a holiday)")
	}
}

const clipRunes = 80

// clipQuote quotes text for a reason, cut short: a trace names the text to
// make the reason recognisable, not to archive it.
func clipQuote(s string) string {
	if utf8.RuneCountInString(s) > clipRunes {
		n := 0
		for i := range s {
			if n == clipRunes {
				s = s[:i] + "…"
				break
			}
			n++
		}
	}
	return strconv.Quote(s)
}

// listString writes values as [a b c], quoting those a space would make
// ambiguous.
func listString(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(' ')
		}
		if v == "" || strings.ContainsAny(v, " \t\n\"[]") {
			b.WriteString(strconv.Quote(v))
		} else {
			b.WriteString(v)
		}
	}
	b.WriteByte(']')
	return b.String()
}

func index(key string, i int) string { return key + "[" + strconv.Itoa(i) + "]" }

// grow returns s with length n, zeroed, reusing its array when it can.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}
