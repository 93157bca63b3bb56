package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

var connectorName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// validate checks what types cannot: ranges, formats and references
// between sections. It also fills the derived fields (schedules, compiled
// regexps). Values are quoted in messages only where they are names or
// formats, never free text that may hold a credential.
func validate(c *Config, l *loader) {
	v := &validator{c: c, l: l}
	v.server()
	v.store()
	v.media()
	v.log()
	v.whatsapp()
	v.schedules()
	v.connectors()
	v.teams()
	v.routes()
	v.affinity()
	v.triggers()
	v.subscriptions()
}

type validator struct {
	c *Config
	l *loader
}

func (v *validator) add(key, format string, args ...any) {
	v.l.fail(key, format, args...)
}

// show quotes a value for a message, unless it came from the environment.
func (v *validator) show(key, val string) string {
	if src := v.l.source(key); src != "" {
		return src
	}
	return strconv.Quote(clip(val, 80))
}

func (v *validator) server() {
	s := &v.c.Server
	if host, ok := v.listen("server.listen", s.Listen); ok && v.c.Sandbox && !v.c.SandboxPublic && !isLoopback(host) {
		v.add("server.listen", "sandbox: true serves fake WhatsApp and connector APIs that accept anything, so it only listens on a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT), and %s is not one; set sandbox: false for production, or sandbox_public: true to expose the sandbox anyway", v.show("server.listen", s.Listen))
	}
	if s.MetricsListen != "" {
		v.listen("server.metrics_listen", s.MetricsListen)
	}
	if s.WriteTimeout <= 0 {
		v.add("server.write_timeout", "must be more than 0 (the default is 60s)")
	}
	if s.MaxBodyBytes <= 0 {
		v.add("server.max_body_bytes", "must be more than 0 (the default is 4194304, 4 MiB)")
	}
	if s.ShutdownTimeout <= 0 {
		v.add("server.shutdown_timeout", "must be more than 0, such as 15s")
	}
	if vt := s.ViewerToken.Reveal(); vt != "" {
		switch {
		case vt == s.AdminToken.Reveal():
			v.add("server.viewer_token", "is the same as server.admin_token: the read-only token must differ, or a viewer could do everything")
		case strings.TrimSpace(vt) != vt:
			v.add("server.viewer_token", "has leading or trailing spaces (an artefact of quoting?); remove them")
		case len(vt) < 16:
			v.add("server.viewer_token", "is %d characters: use at least 16 random ones (openssl rand -hex 16)", len(vt))
		}
	}
}

// listen checks a host:port and returns the host.
func (v *validator) listen(key, addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add(key, "%s is not host:port; write it like 127.0.0.1:8080, [::1]:8080 or :8080 (every interface)", v.show(key, addr))
		return "", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(key, "%s has no valid port: give a number from 0 to 65535, as in 127.0.0.1:8080", v.show(key, addr))
		return "", false
	}
	return host, true
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) store() {
	v.enum("store.driver", v.c.Store.Driver, "sqlite", "postgres")
	switch v.c.Store.Driver {
	case "postgres":
		u := v.c.Store.URL.Reveal()
		if strings.TrimSpace(u) == "" {
			v.add("store.url", "must name the PostgreSQL database when store.driver is postgres, such as postgres://wahub:secret@db:5432/wahub (or ${DATABASE_URL})")
		} else if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
			v.add("store.url", "must be a postgres:// URL")
		}
		if v.c.Store.LeaseTimeout < 3*time.Second {
			v.add("store.lease_timeout", "must be at least 3s (leases are renewed every third of it)")
		}
	default:
		if strings.TrimSpace(v.c.Store.Path) == "" {
			v.add("store.path", "must name the SQLite file, such as data/wahub.db")
		}
	}
	if v.c.Store.BusyTimeout < 0 {
		v.add("store.busy_timeout", "must not be negative")
	}
}

func (v *validator) log() {
	v.enum("log.level", v.c.Log.Level, "debug", "info", "warn", "error")
	v.enum("log.format", v.c.Log.Format, "auto", "json", "text")
}

func (v *validator) enum(key, val string, allowed ...string) {
	if !slices.Contains(allowed, val) {
		v.add(key, "%s is not one of %s", v.show(key, val), strings.Join(allowed, ", "))
	}
}

func (v *validator) whatsapp() {
	w := &v.c.WhatsApp
	// An empty secret would let anyone sign with the empty key, so a
	// ${VAR} that expanded to nothing means "not configured".
	secrets := w.AppSecret[:0]
	for _, s := range w.AppSecret {
		if s != "" {
			secrets = append(secrets, s)
		}
	}
	w.AppSecret = secrets

	if u, err := url.Parse(w.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add("whatsapp.api_url", "must be an absolute http(s) URL, such as https://graph.facebook.com/v23.0")
	}
	if w.MessagesPerSecond <= 0 {
		v.add("whatsapp.messages_per_second", "must be more than 0 (Meta allows 80 per business number by default)")
	}
	for i, cc := range w.BlockedCountryCodes {
		v.countryCode(index("whatsapp.blocked_country_codes", i), cc)
	}
	if id := w.BusinessAccountID; id != "" && strings.Trim(id, "0123456789") != "" {
		v.add("whatsapp.business_account_id", "must be the WhatsApp Business Account's numeric id (entry[].id of its webhooks), such as 102290129340398")
	}
	if w.TemplatesRefresh < time.Minute {
		v.add("whatsapp.templates_refresh", "must be at least 1m (Meta allows 200 management calls an hour; webhooks update templates in between)")
	}
	v.nonEmpty("whatsapp.opt_out_keywords", w.OptOutKeywords, "keyword")
	v.nonEmpty("whatsapp.opt_in_keywords", w.OptInKeywords, "keyword")
	v.nonEmpty("whatsapp.opt_out_payloads", w.OptOutPayloads, "payload")
	v.nonEmpty("whatsapp.opt_in_payloads", w.OptInPayloads, "payload")
}

func (v *validator) countryCode(key, cc string) {
	if len(cc) < 1 || len(cc) > 4 || !allDigits(cc) {
		v.add(key, "%s is not a country calling code: write 1 to 4 digits without +, such as 55 or 1", v.show(key, cc))
	}
}

func (v *validator) nonEmpty(key string, list []string, what string) {
	for i, s := range list {
		if strings.TrimSpace(s) == "" {
			v.add(index(key, i), "empty %s; remove it", what)
		}
	}
}

func (v *validator) schedules() {
	for _, name := range sortedKeys(v.c.Schedules) {
		s := v.c.Schedules[name]
		key := join("schedules", name)
		if s.Timezone == "" {
			v.add(key+".timezone", "required: an IANA time zone such as America/Sao_Paulo or UTC")
		} else if loc, err := time.LoadLocation(s.Timezone); err != nil {
			v.add(key+".timezone", "unknown time zone %s: use an IANA name such as America/Sao_Paulo, Europe/Lisbon or UTC", v.show(key+".timezone", s.Timezone))
		} else {
			s.Location = loc
		}
		if len(s.Hours) == 0 {
			v.add(key+".hours", "required: at least one day, such as mon-fri: [\"09:00-18:00\"]")
		}
		claimed := map[time.Weekday]string{}
		for _, spec := range sortedKeys(s.Hours) {
			hkey := join(key+".hours", spec)
			days, err := parseDays(spec)
			if err != nil {
				v.add(hkey, "%v", err)
				continue
			}
			var ivs []Interval
			for i, text := range s.Hours[spec] {
				iv, err := parseInterval(strings.TrimSpace(text))
				if err != nil {
					v.add(index(hkey, i), "%v", err)
					continue
				}
				ivs = append(ivs, iv)
			}
			for _, d := range days {
				if other, dup := claimed[d]; dup {
					v.add(hkey, "%s is already listed under %q; list each day once", shortDay(d), other)
					continue
				}
				claimed[d] = spec
				s.Weekly[d] = append(s.Weekly[d], ivs...)
			}
		}
		for d := range s.Weekly {
			sort.Slice(s.Weekly[d], func(i, j int) bool { return s.Weekly[d][i].Start < s.Weekly[d][j].Start })
		}
		s.Holidays = make(map[string]bool, len(s.HolidayDates))
		for i, h := range s.HolidayDates {
			day, err := time.Parse(time.DateOnly, strings.TrimSpace(h))
			if err != nil {
				v.add(index(key+".holidays", i), "%q is not a date: write YYYY-MM-DD, such as 2026-12-25", clip(h, 30))
				continue
			}
			s.Holidays[day.Format(time.DateOnly)] = true
		}
	}
}

func shortDay(d time.Weekday) string { return strings.ToLower(d.String()[:3]) }

func (v *validator) connectors() {
	for _, name := range sortedKeys(v.c.Connectors) {
		cc := v.c.Connectors[name]
		key := join("connectors", name)
		if !connectorName.MatchString(name) {
			v.add(key, "bad connector name: use lowercase letters, digits, - and _, starting with a letter or digit (it appears in the URL /hooks/%s)", name)
		}
		switch {
		case cc.Plugin == "":
			v.add(key+".plugin", "required: a built-in plugin (%s) or a path to an executable", strings.Join(Builtins, ", "))
		case cc.External():
			switch {
			case cc.SHA256 == "":
				v.add(key+".sha256", "required for an external plugin: the SHA-256 of the executable as 64 hex digits (see sha256sum %s)", cc.Plugin)
			case cc.SHA256 == DevSHA256:
				if !v.c.Sandbox {
					v.add(key+".sha256", "%q runs whatever %s is, unchecked: a development override allowed only with sandbox: true; in production give the 64 hex digits of sha256sum %s", DevSHA256, cc.Plugin, cc.Plugin)
				}
			case !isSHA256(cc.SHA256):
				v.add(key+".sha256", "must be 64 hex digits, the SHA-256 of the executable (see sha256sum %s; quote it, or YAML may read a digest of digits as a number)", cc.Plugin)
			default:
				cc.SHA256 = strings.ToLower(cc.SHA256)
			}
		case !slices.Contains(Builtins, string(cc.Plugin)):
			v.add(key+".plugin", "unknown plugin %q (built-in: %s; or a path to an executable, such as ./bin/%s)", clip(string(cc.Plugin), 60), strings.Join(Builtins, ", "), clip(string(cc.Plugin), 60))
		case cc.SHA256 != "":
			v.add(key+".sha256", "only an external plugin (a path) is checked against a SHA-256; %q is built in, remove sha256", cc.Plugin)
		}
		if cc.RatePerSecond < 0 {
			v.add(key+".rate_per_second", "must not be negative (0 means unlimited)")
		}
		if cc.BatchSize <= 0 {
			v.add(key+".batch_size", "must be more than 0 (the default is 100)")
		}
		r := cc.Retry
		if r.MaxAttempts <= 0 {
			v.add(key+".retry.max_attempts", "must be more than 0 (the default is 12)")
		}
		if r.InitialInterval <= 0 {
			v.add(key+".retry.initial_interval", "must be more than 0, such as 1s")
		}
		if r.MaxInterval <= 0 {
			v.add(key+".retry.max_interval", "must be more than 0, such as 30m")
		} else if r.InitialInterval > r.MaxInterval {
			v.add(key+".retry.initial_interval", "%s is longer than max_interval %s", r.InitialInterval, r.MaxInterval)
		}
		v.c.Connectors[name] = cc
	}
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (v *validator) teams() {
	for _, name := range sortedKeys(v.c.Teams) {
		t := v.c.Teams[name]
		key := join("teams", name)
		for i, b := range t.Connectors {
			v.binding(index(key+".connectors", i), b)
		}
		if t.Schedule != "" {
			v.scheduleRef(key+".schedule", t.Schedule)
		}
		if t.AfterHours != "" {
			if v.teamRef(key+".after_hours", t.AfterHours) && t.Schedule == "" {
				v.add(key+".after_hours", "has no effect without a schedule: set %s.schedule, or remove after_hours", key)
			}
		}
	}
	v.afterHoursLoops()
}

// afterHoursLoops rejects chains of after_hours that come back to a team:
// outside hours the router would hand a conversation around forever.
func (v *validator) afterHoursLoops() {
	reported := map[string]bool{}
	for _, start := range sortedKeys(v.c.Teams) {
		seen := map[string]int{}
		var chain []string
		for cur := start; cur != ""; cur = v.c.Teams[cur].AfterHours {
			if _, ok := v.c.Teams[cur]; !ok {
				break
			}
			if at, ok := seen[cur]; ok {
				loop := chain[at:]
				first := slices.Min(loop)
				if !reported[first] {
					for _, t := range loop {
						reported[t] = true
					}
					// Start the loop at its smallest name so the message
					// is the same whichever team the walk began from.
					i := slices.Index(loop, first)
					ordered := append(append([]string{}, loop[i:]...), loop[:i]...)
					ordered = append(ordered, first)
					v.add(join("teams", first)+".after_hours", "after_hours loop: %s; one team in the chain must have no after_hours", strings.Join(ordered, " → "))
				}
				break
			}
			seen[cur] = len(chain)
			chain = append(chain, cur)
		}
	}
}

func (v *validator) routes() {
	names := map[string]int{}
	for i := range v.c.Routes {
		r := &v.c.Routes[i]
		key := index("routes", i)
		v.uniqueName(key, r.Name, "route", names, i, "routes")
		if r.Team == "" {
			v.add(key+".team", "required: the team that gets the conversations this route matches")
		} else {
			v.teamRef(key+".team", r.Team)
		}
		v.conditions(key+".when", &r.When)
	}
}

func (v *validator) uniqueName(key, name, what string, seen map[string]int, i int, list string) {
	if strings.TrimSpace(name) == "" {
		v.add(key+".name", "required: a name for this %s, unique among %s", what, list)
		return
	}
	if first, dup := seen[name]; dup {
		v.add(key+".name", "duplicate %s name %q (also %s[%d]); names must be unique", what, name, list, first)
		return
	}
	seen[name] = i
}

func (v *validator) conditions(key string, c *Conditions) {
	for i, e := range c.Event {
		v.eventType(index(key+".event", i), e)
	}
	v.nonEmpty(key+".keywords", c.Keywords, "keyword")
	c.Regexps = c.Regexps[:0]
	for i, expr := range c.Regex {
		re, err := regexp.Compile(expr)
		if err != nil {
			v.add(index(key+".regex", i), "invalid regular expression: %v", err)
			continue
		}
		c.Regexps = append(c.Regexps, re)
	}
	v.nonEmpty(key+".button", c.Button, "button id")
	for _, attr := range sortedKeys(c.Contact) {
		if strings.TrimSpace(attr) == "" {
			v.add(key+".contact", "empty attribute name")
		}
		if len(c.Contact[attr]) == 0 {
			v.add(join(key+".contact", attr), "give at least one value (a value or a list of values)")
		}
	}
	v.nonEmpty(key+".phone_number_id", c.PhoneNumberID, "phone number id")
	for i, cc := range c.CountryCode {
		v.countryCode(index(key+".country_code", i), cc)
	}
	if c.Within != "" {
		v.scheduleRef(key+".within", c.Within)
	}
	if c.Outside != "" {
		v.scheduleRef(key+".outside", c.Outside)
	}
	for i, s := range c.Consent {
		v.enum(index(key+".consent", i), s, "granted", "revoked", "unknown")
	}
}

// eventType accepts the types of CONTRACT §4, whatsapp.<field>, and globs
// that match at least one of them, so that a typo does not silently match
// nothing.
func (v *validator) eventType(key, e string) {
	if strings.HasPrefix(e, "whatsapp.") && len(e) > len("whatsapp.") {
		if _, err := path.Match(e, ""); err != nil {
			v.add(key, "bad pattern %q: %v", e, err)
		}
		return
	}
	if !strings.ContainsAny(e, "*?[") {
		if !slices.Contains(EventTypes, e) {
			v.add(key, "unknown event type %q (known: %s, whatsapp.<field>; or a pattern such as status.*)", clip(e, 60), strings.Join(EventTypes, ", "))
		}
		return
	}
	if _, err := path.Match(e, ""); err != nil {
		v.add(key, "bad pattern %q: %v", e, err)
		return
	}
	for _, t := range append(slices.Clone(EventTypes), "whatsapp.x") {
		if ok, _ := path.Match(e, t); ok {
			return
		}
	}
	v.add(key, "pattern %q matches no event type (known: %s, whatsapp.<field>)", clip(e, 60), strings.Join(EventTypes, ", "))
}

func (v *validator) affinity() {
	a := &v.c.Affinity
	if a.IdleTimeout <= 0 {
		v.add("affinity.idle_timeout", "must be more than 0, such as 24h")
	}
	for i, name := range a.RulesCanMove {
		if !slices.ContainsFunc(v.c.Routes, func(r Route) bool { return r.Name == name }) {
			v.add(index("affinity.rules_can_move", i), "unknown route %q (%s)", name, listNames("routes", routeNames(v.c.Routes)))
		}
	}
}

func routeNames(rs []Route) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		if r.Name != "" {
			out = append(out, r.Name)
		}
	}
	return out
}

func (v *validator) triggers() {
	names := map[string]int{}
	for i := range v.c.Triggers {
		t := &v.c.Triggers[i]
		key := index("triggers", i)
		v.uniqueName(key, t.Name, "trigger", names, i, "triggers")
		if len(t.On) == 0 {
			v.add(key+".on", "required: the event types that fire this trigger, such as [message.received]")
		}
		for j, e := range t.On {
			v.eventType(index(key+".on", j), e)
		}
		v.conditions(key+".when", &t.When)
		if t.Reply == nil && len(t.Set) == 0 && t.Assign == "" && len(t.Deliver) == 0 {
			v.add(key, "no action: give at least one of reply, set, assign, deliver")
		}
		if r := t.Reply; r != nil {
			n := 0
			for _, set := range []bool{r.Text != "", r.Template != nil, len(r.Interactive) > 0, r.Media != nil} {
				if set {
					n++
				}
			}
			switch {
			case n > 1:
				v.add(key+".reply", "give one of text, template, interactive or media, not several")
			case n == 0:
				v.add(key+".reply", "give text (a message), template ({name, language}), interactive (reply buttons or a list) or media ({id | url, caption})")
			case r.Media != nil:
				v.replyMedia(key+".reply.media", r.Media)
			case r.Template != nil:
				if r.Template.Name == "" {
					v.add(key+".reply.template.name", "required: the approved template's name")
				}
				if r.Template.Language == "" {
					v.add(key+".reply.template.language", "required: the template's language code, such as pt_BR or en_US")
				}
			}
		}
		if _, empty := t.Set[""]; empty {
			v.add(key+".set", "empty attribute name")
		}
		if t.Assign != "" {
			v.teamRef(key+".assign", t.Assign)
		}
		for j, cn := range t.Deliver {
			v.connectorRef(index(key+".deliver", j), cn)
		}
	}
}

func (v *validator) subscriptions() {
	for i, s := range v.c.Subscriptions {
		key := index("subscriptions", i)
		switch {
		case s.Connector == "" && len(s.Connectors) == 0:
			v.add(key+".connector", "required: the connector that receives these events (or connectors: [a, {name: b, events: [...]}])")
		case s.Connector != "" && len(s.Connectors) > 0:
			v.add(key+".connectors", "give connector or connectors, not both")
		case s.Connector != "":
			v.connectorRef(key+".connector", s.Connector)
		}
		own := true
		for j, b := range s.Connectors {
			v.binding(index(key+".connectors", j), b)
			own = own && len(b.Events) > 0
		}
		if len(s.Events) == 0 && !(len(s.Connectors) > 0 && own) {
			v.add(key+".events", "required: the event types to send, such as [message.received, \"status.*\"]")
		}
		for j, e := range s.Events {
			v.eventType(index(key+".events", j), e)
		}
	}
}

// binding checks one connector binding: a known connector and, when it
// has events, valid event types.
func (v *validator) binding(key string, b Binding) {
	if b.Name == "" {
		v.add(key, "a connector's name, or {name: <connector>, events: [...]}")
		return
	}
	v.connectorRef(key, b.Name)
	if b.Events != nil && len(b.Events) == 0 {
		v.add(key+".events", "empty: leave events out to deliver every event, or list the types (\"status.failed\", \"deadletter.*\")")
	}
	for j, e := range b.Events {
		v.eventType(index(key+".events", j), e)
	}
}

func (v *validator) teamRef(key, name string) bool {
	if _, ok := v.c.Teams[name]; ok {
		return true
	}
	v.add(key, "unknown team %q (%s)", clip(name, 60), listNames("teams", sortedKeys(v.c.Teams)))
	return false
}

func (v *validator) connectorRef(key, name string) {
	if _, ok := v.c.Connectors[name]; !ok {
		v.add(key, "unknown connector %q (%s)", clip(name, 60), listNames("connectors", sortedKeys(v.c.Connectors)))
	}
}

func (v *validator) scheduleRef(key, name string) {
	if _, ok := v.c.Schedules[name]; !ok {
		v.add(key, "unknown schedule %q (%s)", clip(name, 60), listNames("schedules", sortedKeys(v.c.Schedules)))
	}
}

func listNames(section string, names []string) string {
	if len(names) == 0 {
		return fmt.Sprintf("no %s are defined; add one under %s:", section, section)
	}
	return section + ": " + strings.Join(names, ", ")
}

// replyMedia checks a trigger's file as far as the configuration shows it;
// WhatsApp's rules on the file itself apply when the reply is sent.
func (v *validator) replyMedia(key string, m *ReplyMedia) {
	switch {
	case (m.ID == "") == (m.URL == ""):
		v.add(key, "give id (a file POST /api/v1/media returned) or url (an https link), one of them")
	case m.URL != "" && !strings.HasPrefix(strings.ToLower(m.URL), "https://"):
		v.add(key+".url", "must be an https link")
	}
	switch m.Type {
	case "", "image", "audio", "video", "document", "sticker":
	default:
		v.add(key+".type", "%q is not a WhatsApp media type (image, audio, video, document, sticker; empty: from the file)", m.Type)
	}
	if m.Caption != "" && (m.Type == "audio" || m.Type == "sticker") {
		v.add(key+".caption", "WhatsApp shows no caption on %s messages", m.Type)
	}
}
