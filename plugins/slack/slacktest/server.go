// Package slacktest is a fake of the Slack Web API methods the slack
// connector calls, and the helpers to sign Events API requests the way
// Slack does, for unit tests, end-to-end tests of the real binary and the
// hub's sandbox.
//
// The Server is an http.Handler that serves paths relative to its root
// ("/chat.postMessage", ...), so it can be mounted anywhere with
// http.StripPrefix; point the connector's api_url at its root with a
// trailing slash:
//
//	fake := slacktest.NewServer()
//	srv := httptest.NewServer(fake)
//	// connector config: api_url: srv.URL + "/", token: slacktest.DefaultToken
//
// It answers like Slack does (see shared/reference/apis.md §4):
//   - errors come with HTTP 200 as {"ok":false,"error":"channel_not_found"};
//   - the token is read from the form body (token=…, which slack-go sends
//     for chat.postMessage) or from "Authorization: Bearer …";
//     none is not_authed, a wrong one invalid_auth;
//   - a rate limit is HTTP 429 with "Retry-After: <seconds>" (or, scripted,
//     without it: slack-go then reports a plain status error);
//   - every posted message gets a unique, increasing ts "seconds.micros",
//     unlike slack-go's own slacktest, whose ts repeats within a second.
//
// Everything posted is recorded (Messages, Roots, Replies, Reactions) and
// shown by Snapshot. Socket Mode is faked too (socket.go).
package slacktest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

// Defaults of a NewServer, also what the sandbox configures the connector
// with when the user sets nothing.
const (
	DefaultToken         = "xoxb-wahub-sandbox-token"
	DefaultSigningSecret = "wahub-sandbox-signing-secret"
	// DefaultChannel is a channel the sandbox can configure; the fake
	// takes any channel that has no error set.
	DefaultChannel = "C0WAHUBSANDBOX"
	// The bot the token belongs to, as auth.test and posted messages name it.
	BotUserID = "U0WAHUBBOT"
	BotID     = "B0WAHUBBOT"
	TeamID    = "T0SANDBOX"
	AppID     = "A0WAHUBAPP"
)

// Message is a message the fake holds: posted through chat.postMessage by
// the bot, or by a person through PostAsUser.
type Message struct {
	Channel  string `json:"channel"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts,omitempty"`
	Text     string `json:"text"`
	// Blocks is the blocks form field as posted (a JSON array), if any.
	Blocks json.RawMessage `json:"blocks,omitempty"`
	User   string          `json:"user"`
	BotID  string          `json:"bot_id,omitempty"`
	// Form holds the other form fields of the post (unfurl_links, ...),
	// without the token.
	Form      map[string]string `json:"form,omitempty"`
	Reactions []string          `json:"reactions,omitempty"`
	Edited    bool              `json:"edited,omitempty"`
	// Files are the ids of the files the message shares (files.go).
	Files []string `json:"files,omitempty"`
}

// Reaction is one reactions.add the fake accepted.
type Reaction struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
	Name    string `json:"name"`
}

// Ephemeral is one chat.postEphemeral the fake accepted.
type Ephemeral struct {
	Channel   string `json:"channel"`
	User      string `json:"user"`
	ThreadTS  string `json:"thread_ts,omitempty"`
	Text      string `json:"text"`
	MessageTS string `json:"message_ts"`
}

// Call is one request the fake answered.
type Call struct {
	Method string `json:"method"`
	Status int    `json:"status"`
	// Error is the Slack error code of an ok:false answer.
	Error   string `json:"error,omitempty"`
	Channel string `json:"channel,omitempty"`
	At      time.Time
}

// Option configures a NewServer.
type Option func(*Server)

// WithToken sets the token requests must carry (default DefaultToken).
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithClock sets the clock ts values and rate limits follow (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// Server is the fake Slack Web API. It is safe for concurrent use.
type Server struct {
	mu         sync.Mutex
	token      string
	now        func() time.Time
	lastMicros int64

	messages   []*Message
	byTS       map[string]*Message // channel + "/" + ts
	reactions  []Reaction
	ephemerals []Ephemeral
	calls      fakeapi.Log[Call]

	channelErr map[string]string
	methodErr  map[string]string
	failNext   fakeapi.Faults[int] // statuses
	limited    fakeapi.Faults[scriptedLimit]
	perSecond  float64
	burst      float64
	buckets    map[string]*bucket // channel → chat.postMessage allowance

	socketState
	fileState
}

// scriptedLimit is a 429 RateLimitNext queued for a method.
type scriptedLimit struct {
	method     string
	retryAfter time.Duration
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewServer returns an empty fake. It listens nowhere: serve it with
// httptest.NewServer or mount it in a mux.
func NewServer(opts ...Option) *Server {
	s := &Server{
		token:       DefaultToken,
		socketState: socketState{appToken: DefaultAppToken},
		now:         time.Now,
		byTS:        map[string]*Message{},
		channelErr:  map[string]string{},
		methodErr:   map[string]string{},
		buckets:     map[string]*bucket{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SetToken changes the token requests must carry, e.g. to make the
// connector's token wrong (invalid_auth) in the middle of a test.
func (s *Server) SetToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// SetChannelError makes every call about channel answer Slack error code
// (channel_not_found, not_in_channel, is_archived, ...); "" clears it.
func (s *Server) SetChannelError(channel, code string) { s.setError(s.channelErr, channel, code) }

// SetMethodError makes every call of method (e.g. "reactions.add")
// answer Slack error code (missing_scope, ...); "" clears it.
func (s *Server) SetMethodError(method, code string) { s.setError(s.methodErr, method, code) }

// setError sets or, for "", clears the scripted error code of key in m.
func (s *Server) setError(m map[string]string, key, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == "" {
		delete(m, key)
		return
	}
	m[key] = code
}

// FailNext makes the next n requests, whatever the method, answer HTTP
// status (a 5xx, say) with the HTML body Slack's front end sends.
func (s *Server) FailNext(n int, status int) { s.failNext.Repeat(n, status) }

// RateLimitNext makes the next n calls of method (e.g. "chat.postMessage")
// answer 429 with Retry-After in whole seconds. A retryAfter of 0 sends
// the 429 without the header, which slack-go reports as a plain
// StatusCodeError rather than a RateLimitedError.
func (s *Server) RateLimitNext(method string, n int, retryAfter time.Duration) {
	s.limited.Repeat(n, scriptedLimit{method: method, retryAfter: retryAfter})
}

// SetRateLimit enforces Slack's chat.postMessage limit per channel: about
// perSecond messages a second with bursts of burst, on the server's
// clock; beyond it the answer is 429 with the seconds to wait. 0 turns it
// off (the default).
func (s *Server) SetRateLimit(perSecond float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perSecond, s.burst = perSecond, float64(max(burst, 1))
	s.buckets = map[string]*bucket{}
}

// PostAsUser records a message a person wrote in channel (in the thread
// threadTS when set) and returns it with a fresh ts: what a test needs
// before it sends the matching Events API callback, and what reactions
// are then added to.
func (s *Server) PostAsUser(channel, threadTS, user, text string) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Message{Channel: channel, TS: s.nextTS(), ThreadTS: threadTS, Text: text, User: user}
	s.store(m)
	return *m
}

// Messages returns every message held, in the order posted.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = copyMessage(m)
	}
	return out
}

// Roots returns the messages of channel that are not thread replies, in
// order ("" for every channel).
func (s *Server) Roots(channel string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.ThreadTS == "" && (channel == "" || m.Channel == channel) {
			out = append(out, m)
		}
	}
	return out
}

// Replies returns the replies in the thread of threadTS in channel, in
// order.
func (s *Server) Replies(channel, threadTS string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.Channel == channel && m.ThreadTS == threadTS && m.TS != threadTS {
			out = append(out, m)
		}
	}
	return out
}

// Message returns the message with ts in channel.
func (s *Server) Message(channel, ts string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.byTS[channel+"/"+ts]
	if !ok {
		return Message{}, false
	}
	return copyMessage(m), true
}

// Reactions returns the reactions added, in order.
func (s *Server) Reactions() []Reaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reaction(nil), s.reactions...)
}

// Ephemerals returns the ephemeral messages posted, in order.
func (s *Server) Ephemerals() []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Ephemeral(nil), s.ephemerals...)
}

// Calls returns every request answered, in order.
func (s *Server) Calls() []Call { return s.calls.All() }

// CallCount returns how many requests of method were answered.
func (s *Server) CallCount(method string) int {
	return s.calls.Count(func(c Call) bool { return c.Method == method })
}

// Snapshot is a JSON-friendly view of what the fake holds, for GET
// /sandbox: the threads per channel, reactions, ephemerals and the number
// of calls per method and answer.
func (s *Server) Snapshot() any {
	msgs := s.Messages()
	type thread struct {
		Message
		Replies []Message `json:"replies,omitempty"`
	}
	channels := map[string][]*thread{}
	roots := map[string]*thread{}
	for _, m := range msgs {
		if m.ThreadTS == "" || m.ThreadTS == m.TS {
			t := &thread{Message: m}
			roots[m.Channel+"/"+m.TS] = t
			channels[m.Channel] = append(channels[m.Channel], t)
		}
	}
	for _, m := range msgs {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			if t, ok := roots[m.Channel+"/"+m.ThreadTS]; ok {
				t.Replies = append(t.Replies, m)
			} else {
				// A reply to a thread the fake never saw: still shown.
				channels[m.Channel] = append(channels[m.Channel], &thread{Message: m})
			}
		}
	}
	counts := map[string]int{}
	for _, c := range s.Calls() {
		k := c.Method + " " + strconv.Itoa(c.Status)
		if c.Error != "" {
			k += " " + c.Error
		}
		counts[k]++
	}
	return map[string]any{
		"channels":   channels,
		"reactions":  s.Reactions(),
		"ephemerals": s.Ephemerals(),
		"envelopes":  s.Envelopes(),
		"files":      s.filesSnapshot(),
		"calls":      counts,
	}
}

// handler answers one Web API method; it runs with s.mu held and returns
// the JSON fields of an ok answer, or a Slack error code.
type handler func(s *Server, form url.Values) (map[string]any, string)

var methods = map[string]handler{
	"auth.test":          (*Server).authTest,
	"chat.postMessage":   (*Server).postMessage,
	"chat.postEphemeral": (*Server).postEphemeral,
	"chat.update":        (*Server).update,
	"reactions.add":      (*Server).addReaction,
	"reactions.remove":   (*Server).removeReaction,
}

// ServeHTTP answers one Web API call, at "/<method>".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.Trim(r.URL.Path, "/")
	if i := strings.LastIndex(method, "/"); i >= 0 {
		// Served under a prefix that was not stripped: the method is the
		// last element, as Slack's own /api/<method>.
		method = method[i+1:]
	}
	if method == "socket-mode" {
		s.serveSocket(w, r)
		return
	}
	if s.serveFiles(w, r) {
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"ok": false, "error": "method_not_supported"})
		return
	}
	// ParseForm reads both the query and an urlencoded body; a JSON body
	// (apps may post application/json) is read as its top-level strings.
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	form := url.Values{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err == nil {
			for k, v := range m {
				switch v := v.(type) {
				case string:
					form.Set(k, v)
				default:
					b, _ := json.Marshal(v)
					form.Set(k, string(b))
				}
			}
		}
		for k, v := range r.URL.Query() {
			form[k] = v
		}
	} else if err := r.ParseForm(); err == nil {
		form = r.Form
	}

	s.mu.Lock()
	s.reqBase = baseURL(r)
	call := Call{Method: method, Channel: form.Get("channel"), At: s.now()}
	var status int
	var body map[string]any
	var header http.Header
	if method == "apps.connections.open" {
		status, body, header = s.openConnection(form, r.Header.Get("Authorization"), socketURL(r))
	} else {
		status, body, header = s.answer(method, form, r.Header.Get("Authorization"))
	}
	call.Status = status
	if e, ok := body["error"].(string); ok {
		call.Error = e
	}
	s.calls.Add(call)
	hold := s.takeHold(method)
	s.mu.Unlock()
	hold.wait(r.Context())

	for k, v := range header {
		w.Header()[k] = v
	}
	if status >= 500 {
		// Slack's front end answers 5xx with an HTML page, not JSON.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", status, http.StatusText(status))
		return
	}
	writeJSON(w, status, body)
}

// tokenOf is the token a call carries: the token argument, as
// slack-go's form posts send it, else the Authorization bearer.
func tokenOf(form url.Values, authz string) string {
	if token := form.Get("token"); token != "" {
		return token
	}
	token, _ := strings.CutPrefix(authz, "Bearer ")
	return token
}

// failed is Slack's answer to a refused call: HTTP 200, ok false.
func failed(code string) (int, map[string]any, http.Header) {
	return http.StatusOK, map[string]any{"ok": false, "error": code}, nil
}

// answer decides the response; s.mu is held.
func (s *Server) answer(method string, form url.Values, authz string) (int, map[string]any, http.Header) {
	if status, ok := s.failNext.Next(nil); ok {
		return status, map[string]any{"ok": false, "error": "fake_failure"}, nil
	}
	if l, ok := s.limited.Next(func(l scriptedLimit) bool { return l.method == method }); ok {
		return rateLimited(l.retryAfter)
	}
	h, ok := methods[method]
	if !ok {
		return http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method", "req_method": method}, nil
	}
	switch token := tokenOf(form, authz); {
	case token == "":
		return failed("not_authed")
	case token != s.token:
		return failed("invalid_auth")
	}
	if method == "chat.postMessage" && s.perSecond > 0 {
		if wait := s.take(form.Get("channel")); wait > 0 {
			return rateLimited(wait)
		}
	}
	if code := s.methodErr[method]; code != "" {
		body := map[string]any{"ok": false, "error": code}
		if code == "missing_scope" {
			body["needed"], body["provided"] = scopeFor(method), "chat:write"
		}
		return http.StatusOK, body, nil
	}
	fields, code := h(s, form)
	if code != "" {
		return http.StatusOK, map[string]any{"ok": false, "error": code}, nil
	}
	fields["ok"] = true
	return http.StatusOK, fields, nil
}

// scopes names the bot scope a method needs, where it is not chat:write.
var scopes = map[string]string{"reactions.add": "reactions:write"}

func scopeFor(method string) string {
	if sc, ok := scopes[method]; ok {
		return sc
	}
	return "chat:write"
}

func rateLimited(retryAfter time.Duration) (int, map[string]any, http.Header) {
	h := http.Header{}
	if retryAfter > 0 {
		secs := int64(math.Ceil(retryAfter.Seconds()))
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	return http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"}, h
}

// take spends one message of channel's allowance, or says how long until
// there is one.
func (s *Server) take(channel string) time.Duration {
	now := s.now()
	b, ok := s.buckets[channel]
	if !ok {
		b = &bucket{tokens: s.burst, at: now}
		s.buckets[channel] = b
	}
	b.tokens = math.Min(s.burst, b.tokens+now.Sub(b.at).Seconds()*s.perSecond)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / s.perSecond * float64(time.Second))
}

func (s *Server) authTest(url.Values) (map[string]any, string) {
	return map[string]any{
		"url": "https://wahub-sandbox.slack.com/", "team": "wahub sandbox", "user": "wahub",
		"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID,
	}, ""
}

func (s *Server) channelError(channel string) string {
	if channel == "" {
		return "channel_not_found"
	}
	return s.channelErr[channel]
}

func (s *Server) postMessage(form url.Values) (map[string]any, string) {
	channel := form.Get("channel")
	if code := s.channelError(channel); code != "" {
		return nil, code
	}
	blocks, code := checkBlocks(form.Get("blocks"))
	if code != "" {
		return nil, code
	}
	text := form.Get("text")
	if text == "" && blocks == nil && form.Get("attachments") == "" {
		return nil, "no_text"
	}
	if len(text) > 40000 {
		return nil, "msg_too_long"
	}
	m := &Message{
		Channel: channel, TS: s.nextTS(), ThreadTS: form.Get("thread_ts"), Text: text, Blocks: blocks,
		User: BotUserID, BotID: BotID, Form: otherFields(form, "token", "channel", "text", "blocks", "thread_ts"),
	}
	s.store(m)
	msg := map[string]any{
		"type": "message", "subtype": "bot_message", "text": text, "ts": m.TS,
		"user": BotUserID, "bot_id": BotID, "app_id": AppID, "team": TeamID,
	}
	if m.ThreadTS != "" {
		msg["thread_ts"] = m.ThreadTS
	}
	if blocks != nil {
		msg["blocks"] = blocks
	}
	return map[string]any{"channel": channel, "ts": m.TS, "message": msg}, ""
}

func (s *Server) postEphemeral(form url.Values) (map[string]any, string) {
	channel := form.Get("channel")
	if code := s.channelError(channel); code != "" {
		return nil, code
	}
	if form.Get("user") == "" {
		return nil, "user_not_in_channel"
	}
	blocks, code := checkBlocks(form.Get("blocks"))
	if code != "" {
		return nil, code
	}
	if form.Get("text") == "" && blocks == nil && form.Get("attachments") == "" {
		return nil, "no_text"
	}
	e := Ephemeral{Channel: channel, User: form.Get("user"), ThreadTS: form.Get("thread_ts"), Text: form.Get("text"), MessageTS: s.nextTS()}
	s.ephemerals = append(s.ephemerals, e)
	return map[string]any{"message_ts": e.MessageTS}, ""
}

func (s *Server) update(form url.Values) (map[string]any, string) {
	channel := form.Get("channel")
	if code := s.channelError(channel); code != "" {
		return nil, code
	}
	m, ok := s.byTS[channel+"/"+form.Get("ts")]
	switch {
	case !ok:
		return nil, "message_not_found"
	case m.BotID != BotID:
		return nil, "cant_update_message"
	}
	blocks, code := checkBlocks(form.Get("blocks"))
	if code != "" {
		return nil, code
	}
	if form.Has("text") {
		m.Text = form.Get("text")
	}
	if blocks != nil {
		m.Blocks = blocks
	}
	m.Edited = true
	return map[string]any{"channel": channel, "ts": m.TS, "text": m.Text}, ""
}

// reacted is the message a reactions.add or .remove call is about and
// the reaction's name, or the error code Slack answers the call with.
func (s *Server) reacted(form url.Values) (m *Message, name, code string) {
	channel, ts, name := form.Get("channel"), form.Get("timestamp"), strings.Trim(form.Get("name"), ":")
	if channel == "" || ts == "" {
		return nil, "", "no_item_specified"
	}
	if code := s.channelError(channel); code != "" {
		return nil, "", code
	}
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return nil, "", "invalid_name"
	}
	m, ok := s.byTS[channel+"/"+ts]
	if !ok {
		return nil, "", "message_not_found"
	}
	return m, name, ""
}

func (s *Server) addReaction(form url.Values) (map[string]any, string) {
	m, name, code := s.reacted(form)
	if code != "" {
		return nil, code
	}
	for _, r := range m.Reactions {
		if r == name {
			return nil, "already_reacted"
		}
	}
	m.Reactions = append(m.Reactions, name)
	s.reactions = append(s.reactions, Reaction{Channel: m.Channel, TS: m.TS, Name: name})
	return map[string]any{}, ""
}

// removeReaction answers reactions.remove as Slack does: no_reaction when
// the bot had not reacted so.
func (s *Server) removeReaction(form url.Values) (map[string]any, string) {
	m, name, code := s.reacted(form)
	if code != "" {
		return nil, code
	}
	for i, r := range m.Reactions {
		if r == name {
			m.Reactions = append(m.Reactions[:i], m.Reactions[i+1:]...)
			return map[string]any{}, ""
		}
	}
	return nil, "no_reaction"
}

// checkBlocks validates the blocks field the way Slack rejects it:
// invalid_blocks for anything but an array of typed blocks with section
// texts of at most 3000 characters.
func checkBlocks(raw string) (json.RawMessage, string) {
	if raw == "" {
		return nil, ""
	}
	var blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"text"`
		Elements []json.RawMessage `json:"elements"`
	}
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return nil, "invalid_blocks_format"
	}
	if len(blocks) > 50 {
		return nil, "invalid_blocks"
	}
	for _, b := range blocks {
		switch {
		case b.Type == "":
			return nil, "invalid_blocks"
		case b.Type == "section" && (b.Text == nil || b.Text.Text == "" || len([]rune(b.Text.Text)) > 3000):
			return nil, "invalid_blocks"
		case b.Type == "context" && (len(b.Elements) == 0 || len(b.Elements) > 10):
			return nil, "invalid_blocks"
		}
	}
	return json.RawMessage(raw), ""
}

func otherFields(form url.Values, skip ...string) map[string]string {
	out := map[string]string{}
	for k, v := range form {
		if len(v) > 0 && !contains(skip, k) {
			out[k] = v[0]
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// nextTS returns a ts after every earlier one: the clock's time in
// microseconds, bumped when two calls fall within the same microsecond.
func (s *Server) nextTS() string {
	us := s.now().UnixMicro()
	if us <= s.lastMicros {
		us = s.lastMicros + 1
	}
	s.lastMicros = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

func (s *Server) store(m *Message) {
	s.messages = append(s.messages, m)
	s.byTS[m.Channel+"/"+m.TS] = m
}

func copyMessage(m *Message) Message {
	c := *m
	c.Reactions = append([]string(nil), m.Reactions...)
	c.Files = append([]string(nil), m.Files...)
	if m.Form != nil {
		c.Form = map[string]string{}
		for k, v := range m.Form {
			c.Form[k] = v
		}
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	fakeapi.WriteJSON(w, status, fakeapi.ContentTypeJSON, v)
}
