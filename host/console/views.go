package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/eventid"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// problem is one thing wrong now, for the overview.
type problem struct {
	Severity string // error, warn
	Text     string
	Link     string
}

// timeRange is a chart window and its bucket width.
type timeRange struct {
	Name  string
	Span  time.Duration
	Step  time.Duration
	Label string // per what one bucket counts
}

var ranges = []timeRange{
	{"1h", time.Hour, time.Minute, "per minute"},
	{"24h", 24 * time.Hour, 10 * time.Minute, "per 10 minutes"},
	{"7d", 7 * 24 * time.Hour, time.Hour, "per hour"},
}

func findRange(name string) timeRange {
	for _, r := range ranges {
		if r.Name == name {
			return r
		}
	}
	return ranges[1]
}

type overviewData struct {
	Range      timeRange
	Ranges     []timeRange
	Problems   []problem
	Charts     []template.HTML
	Stats      store.Stats
	StatsReady bool
	Connectors []admin.ConnectorStatus
	Inbound    int64
	Outbound   int64
	Teams      []teamRow
}

type teamRow struct {
	Team          string
	Inbound       int64
	FirstResponse string
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	rg := findRange(r.URL.Query().Get("range"))
	now := c.opt.Now()
	since := now.Add(-rg.Span).Truncate(rg.Step).Add(rg.Step)
	sr, err := c.series(ctx, since, rg.Step)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	st, ready, err := c.stats(ctx, rg)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	conns, err := c.opt.Ops.Connectors(ctx)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := overviewData{Range: rg, Ranges: ranges, Stats: st, StatsReady: ready, Connectors: conns}
	d.Problems, err = c.problems(r, conns)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, v := range sr.Inbound {
		d.Inbound += v
	}
	for _, v := range sr.Outbound {
		d.Outbound += v
	}
	var deliveries []line
	names := make([]string, 0, len(sr.Delivered))
	for n := range sr.Delivered {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		deliveries = append(deliveries, line{Name: n, Values: sr.Delivered[n]})
	}
	lag := make([]line, 0, len(conns))
	var lagTotal []int64
	for _, cs := range conns {
		if cs.State == "disabled" {
			continue
		}
		lag = append(lag, line{Name: cs.Name, Values: []int64{cs.Lag}})
		_ = lagTotal
	}
	d.Charts = []template.HTML{
		chart("Messages "+rg.Label, sr.Since, sr.Step, []line{{Name: "inbound", Values: sr.Inbound}, {Name: "outbound", Values: sr.Outbound}}),
		chart("Deliveries "+rg.Label, sr.Since, sr.Step, deliveries),
		chart("Failed attempts "+rg.Label, sr.Since, sr.Step, []line{{Name: "retried", Values: sr.Retries}, {Name: "gave up (dead letter)", Values: sr.Failed}}),
		bars("Lag now (events waiting)", lag),
	}
	teams := map[string]*teamRow{}
	for team, n := range st.Inbound.ByTeam {
		teams[team] = &teamRow{Team: team, Inbound: n, FirstResponse: "—"}
	}
	for team, fr := range st.FirstResponse {
		if teams[team] == nil {
			teams[team] = &teamRow{Team: team}
		}
		teams[team].FirstResponse = time.Duration(fr).Round(time.Second).String()
	}
	for _, t := range teams {
		d.Teams = append(d.Teams, *t)
	}
	sort.Slice(d.Teams, func(i, j int) bool { return d.Teams[i].Team < d.Teams[j].Team })
	c.render(w, r, http.StatusOK, "overview", pageData{Session: s, Title: "Overview", Nav: "overview", Live: true, Data: d})
}

// problems is what is wrong now: connectors down or behind, breakers
// open, dead letters waiting, the outbox stuck.
func (c *Console) problems(r *http.Request, conns []admin.ConnectorStatus) ([]problem, error) {
	var out []problem
	now := c.opt.Now()
	for _, cs := range conns {
		link := "/console/connectors#c-" + cs.Name
		switch cs.State {
		case "running", "disabled":
		case "paused":
			out = append(out, problem{"warn", fmt.Sprintf("%s is paused: %d events wait for it", cs.Name, cs.Lag), link})
		default:
			msg := fmt.Sprintf("%s is %s", cs.Name, cs.State)
			if cs.LastError != "" {
				msg += ": " + cs.LastError
			}
			out = append(out, problem{"error", msg, link})
		}
		if cs.Paused && cs.State != "paused" {
			out = append(out, problem{"warn", fmt.Sprintf("%s is paused: %d events wait for it", cs.Name, cs.Lag), link})
		}
		if cs.Breaker != "" && cs.Breaker != "closed" {
			out = append(out, problem{"error", fmt.Sprintf("%s: circuit breaker %s (its endpoint keeps failing)", cs.Name, cs.Breaker), link})
		}
		if cs.Dead > 0 {
			out = append(out, problem{"error", fmt.Sprintf("%d dead letters wait for %s", cs.Dead, cs.Name), "/console/deadletters?connector=" + url.QueryEscape(cs.Name)})
		}
		if cs.OldestAt != nil && now.Sub(*cs.OldestAt) > 5*time.Minute && !cs.Paused {
			out = append(out, problem{"warn", fmt.Sprintf("%s is behind: %d events pending, the oldest from %s ago", cs.Name, cs.Lag, humanDuration(now.Sub(*cs.OldestAt))), link})
		}
	}
	stuck, unknown, err := c.opt.Store.StuckOutbound(r.Context(), 5*time.Minute)
	if err != nil {
		return nil, err
	}
	if stuck > 0 {
		out = append(out, problem{"error", fmt.Sprintf("%d outbound messages have waited more than 5 minutes to be sent", stuck), "/console/outbox?state=queued"})
	}
	if unknown > 0 {
		out = append(out, problem{"warn", fmt.Sprintf("%d outbound messages are in state unknown (the hub stopped while sending them): check and requeue", unknown), "/console/outbox?state=unknown"})
	}
	return out, nil
}

type conversationsData struct {
	Query         string
	Conversations []store.ConversationSummary
}

func (c *Console) conversations(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q != "" {
		if target, err := c.findExact(r, q); err != nil {
			c.fail(w, r, s, err)
			return
		} else if target != "" {
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
	}
	term := q
	if digits := strings.TrimLeft(strings.NewReplacer(" ", "", "-", "", "(", "", ")", "").Replace(q), "+"); digits != "" && strings.Trim(digits, "0123456789") == "" {
		term = digits
	}
	list, err := c.opt.Store.RecentConversations(ctx, term, 100)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "conversations", pageData{Session: s, Title: "Conversations", Nav: "conversations", Live: q == "",
		Data: conversationsData{Query: q, Conversations: list}})
}

// findExact resolves an event id or a wamid to the page that shows it.
func (c *Console) findExact(r *http.Request, q string) (string, error) {
	ctx := r.Context()
	var ids []string
	switch {
	case strings.HasPrefix(q, "evt_"):
		ids = []string{q}
	case strings.HasPrefix(q, "wamid."):
		ids = []string{eventid.Message(q)}
		if rec, err := c.opt.Store.OutboundByWAMID(ctx, q); err == nil {
			return "/console/outbox/" + url.PathEscape(rec.ID), nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	case strings.HasPrefix(q, "msg_"):
		if _, err := c.opt.Store.Outbound(ctx, q); err == nil {
			return "/console/outbox/" + url.PathEscape(q), nil
		}
		return "", nil
	case strings.HasPrefix(q, "conv_"):
		return "/console/conversations/" + url.PathEscape(q), nil
	default:
		return "", nil
	}
	for _, id := range ids {
		ev, err := c.opt.Store.Event(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		return "/console/events/" + url.PathEscape(ev.ID), nil
	}
	return "", nil
}

// bubble is one entry of a conversation's thread.
type bubble struct {
	Ev         sdk.Event
	Dir        string // in, out, note
	Text       string
	File       *fileView // a message's media
	Deliveries []store.DeliveryState
	Out        *store.OutboundRecord
}

type conversationData struct {
	Conv          store.ConversationSummary
	Contact       *store.Contact
	Bubbles       []bubble
	Pending       []store.OutboundRecord
	PhoneNumberID string
	WindowOpen    bool
	WindowCloses  time.Time
	Older         int64
	Nonce         string
}

const threadLength = 100

func (c *Console) conversation(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	id := r.PathValue("id")
	conv, err := c.opt.Store.ConversationOf(ctx, id)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	before, _ := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64)
	evs, err := c.opt.Store.ConversationEvents(ctx, id, before, threadLength)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := conversationData{Conv: conv, Nonce: randomToken()}
	if ct, err := c.opt.Store.Contact(ctx, conv.ContactKey); err == nil {
		d.Contact = &ct
		if ct.LastInboundAt != nil {
			d.WindowCloses = ct.LastInboundAt.Add(24 * time.Hour)
			d.WindowOpen = c.opt.Now().Before(d.WindowCloses)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, err)
		return
	}
	if len(evs) == threadLength {
		d.Older = evs[0].Seq
	}
	seqs := make([]int64, len(evs))
	var outIDs []string
	for i, ev := range evs {
		seqs[i] = ev.Seq
		if ev.Outbound != nil && ev.Outbound.ID != "" {
			outIDs = append(outIDs, ev.Outbound.ID)
		}
		if ev.Business != nil && ev.Business.PhoneNumberID != "" {
			d.PhoneNumberID = ev.Business.PhoneNumberID
		}
	}
	states, err := c.opt.Store.DeliveryStates(ctx, seqs)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	outs, err := c.opt.Store.OutboundStates(ctx, outIDs)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, ev := range evs {
		c.annotate(ctx, &ev)
		b := bubble{Ev: ev, Deliveries: states[ev.Seq], File: c.fileView(ev.Message)}
		switch {
		case ev.Type == sdk.TypeMessageSent:
			b.Dir = "out"
			if ev.Outbound != nil {
				if o, ok := outs[ev.Outbound.ID]; ok {
					b.Out = &o
				}
			}
		case ev.Type == sdk.TypeMessageReceived || ev.Type == sdk.TypeButtonClicked:
			b.Dir = "in"
		default:
			b.Dir = "note"
		}
		b.Text = messageSummary(ev.Message)
		if b.Dir == "note" {
			b.Text = noteText(ev)
		}
		d.Bubbles = append(d.Bubbles, b)
	}
	if before == 0 {
		pending, err := c.opt.Store.OutboundList(ctx, store.OutboundFilter{Recipient: conv.ContactKey, Unsent: true, Limit: 50})
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		for i := len(pending) - 1; i >= 0; i-- { // oldest first, like the thread
			if d.PhoneNumberID == "" || pending[i].PhoneNumberID == "" || pending[i].PhoneNumberID == d.PhoneNumberID {
				d.Pending = append(d.Pending, pending[i])
			}
		}
	}
	title := conv.Name
	if title == "" {
		title = conv.WAID
	}
	if title == "" {
		title = conv.ContactKey
	}
	c.render(w, r, http.StatusOK, "conversation", pageData{Session: s, Title: title, Nav: "conversations", Live: before == 0, Notice: sentNotice(r), Data: d})
}

func sentNotice(r *http.Request) string {
	if id := r.URL.Query().Get("sent"); id != "" {
		return "Message " + id + " queued: it shows here as it is sent, delivered and read."
	}
	return ""
}

// noteText describes an event that is not a chat message.
func noteText(ev sdk.Event) string {
	switch {
	case ev.Preference != nil:
		s := string(ev.Type) + ": " + ev.Preference.Value
		if ev.Preference.Source != "" {
			s += " (" + ev.Preference.Source + ")"
		}
		return s
	case ev.Message != nil && ev.Message.System != nil:
		return string(ev.Type) + ": " + ev.Message.System.Body
	}
	return string(ev.Type)
}

type eventData struct {
	Ev         sdk.Event
	JSON       string
	Deliveries []store.DeliveryRecord
	Explained  *route.Decision
	ExplainErr string
	Outbound   string
}

func (c *Console) event(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ev, err := c.opt.Store.Event(ctx, r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	dels, err := c.opt.Store.EventDeliveries(ctx, ev.Seq)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	b, _ := json.MarshalIndent(ev, "", "  ")
	d := eventData{Ev: ev, JSON: string(b), Deliveries: dels}
	if ev.Outbound != nil {
		d.Outbound = ev.Outbound.ID
	}
	if c.opt.Explain != nil {
		dec, err := c.opt.Explain(ctx, ev)
		if err != nil {
			d.ExplainErr = err.Error()
		} else {
			d.Explained = &dec
		}
	}
	c.render(w, r, http.StatusOK, "event", pageData{Session: s, Title: string(ev.Type) + " " + ev.ID, Nav: "conversations", Live: true, Data: d})
}

type connectorRow struct {
	admin.ConnectorStatus
	PerMinute float64
}

func (c *Console) connectors(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	conns, err := c.opt.Ops.Connectors(ctx)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	now := c.opt.Now()
	sr, err := c.opt.Store.Series(ctx, now.Add(-time.Hour), time.Hour)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	rows := make([]connectorRow, len(conns))
	for i, cs := range conns {
		var n int64
		for _, v := range sr.Delivered[cs.Name] {
			n += v
		}
		rows[i] = connectorRow{ConnectorStatus: cs, PerMinute: float64(n) / 60}
	}
	notice := ""
	switch q := r.URL.Query(); {
	case q.Get("paused") != "":
		notice = q.Get("paused") + " is paused: its events wait, nothing is dropped."
	case q.Get("resumed") != "":
		notice = q.Get("resumed") + " resumed: it delivers what waited."
	}
	c.render(w, r, http.StatusOK, "connectors", pageData{Session: s, Title: "Connectors", Nav: "connectors", Live: true, Notice: notice, Data: rows})
}

func (c *Console) pause(w http.ResponseWriter, r *http.Request, s *session) {
	c.setPaused(w, r, s, true)
}
func (c *Console) resume(w http.ResponseWriter, r *http.Request, s *session) {
	c.setPaused(w, r, s, false)
}

func (c *Console) setPaused(w http.ResponseWriter, r *http.Request, s *session, paused bool) {
	name := r.PathValue("name")
	op, verb := c.opt.Ops.Resume, "resumed"
	if paused {
		op, verb = c.opt.Ops.Pause, "paused"
	}
	if err := op(r.Context(), name); errors.Is(err, admin.ErrUnknownConnector) {
		c.render(w, r, http.StatusNotFound, "error", pageData{Session: s, Title: "Not found", Error: "No enabled connector " + name + "."})
		return
	} else if err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.opt.Logger.Info("console: connector "+verb, "connector", name, "role", s.role.String())
	http.Redirect(w, r, "/console/connectors?"+verb+"="+url.QueryEscape(name), http.StatusSeeOther)
}

type deadLettersData struct {
	Connector, Error string
	Connectors       []string
	Letters          []store.DeadLetter
	Total            int
	Replayed         []replayOutcome
	ReplayedCount    int
}

type replayOutcome struct {
	Connector, EventID string
	State, LastError   string
	Attempts           int
}

const maxShownDeadLetters = 500

func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	d := deadLettersData{Connector: q.Get("connector"), Error: q.Get("error")}
	all, err := c.allDeadLetters(r, d.Connector)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	conns, err := c.opt.Ops.Connectors(ctx)
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	for _, cs := range conns {
		d.Connectors = append(d.Connectors, cs.Name)
	}
	needle := strings.ToLower(d.Error)
	for _, dl := range all {
		if needle != "" && !strings.Contains(strings.ToLower(dl.LastError), needle) {
			continue
		}
		d.Total++
		if len(d.Letters) < maxShownDeadLetters {
			d.Letters = append(d.Letters, dl)
		}
	}
	if rp := q["replayed"]; len(rp) > 0 {
		d.ReplayedCount, _ = strconv.Atoi(q.Get("n"))
		if d.Replayed, err = c.replayOutcomes(r, rp); err != nil {
			c.fail(w, r, s, err)
			return
		}
	}
	c.render(w, r, http.StatusOK, "deadletters", pageData{Session: s, Title: "Dead letters", Nav: "deadletters", Live: len(d.Replayed) > 0, Data: d})
}

// maxScannedDeadLetters bounds the dead letters a filter looks through.
const maxScannedDeadLetters = 20_000

// allDeadLetters reads the dead letters of a connector (all: "") page by
// page, up to maxScannedDeadLetters.
func (c *Console) allDeadLetters(r *http.Request, connector string) ([]store.DeadLetter, error) {
	var out []store.DeadLetter
	f := store.DeadLetterFilter{Connector: connector, Limit: 1000}
	for len(out) < maxScannedDeadLetters {
		page, err := c.opt.Store.DeadLetters(r.Context(), f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			break
		}
		f.After = page[len(page)-1].Cursor
	}
	return out, nil
}

// replayOutcomes is where each replayed event stands now with its
// connector: pending while it is retried, delivered, or dead again.
func (c *Console) replayOutcomes(r *http.Request, items []string) ([]replayOutcome, error) {
	ctx := r.Context()
	var out []replayOutcome
	var seqs []int64
	seqOf := map[int64][]int{}
	for _, it := range items {
		conn, id, ok := strings.Cut(it, "|")
		if !ok {
			continue
		}
		ev, err := c.opt.Store.Event(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, replayOutcome{Connector: conn, EventID: id})
		seqs = append(seqs, ev.Seq)
		seqOf[ev.Seq] = append(seqOf[ev.Seq], len(out)-1)
	}
	states, err := c.opt.Store.DeliveryStates(ctx, seqs)
	if err != nil {
		return nil, err
	}
	for seq, idx := range seqOf {
		for _, i := range idx {
			for _, ds := range states[seq] {
				if ds.Connector == out[i].Connector {
					out[i].State, out[i].LastError, out[i].Attempts = ds.State, ds.LastError, ds.Attempts
				}
			}
		}
	}
	return out, nil
}

// maxOutcomes bounds the replayed events whose outcome the page follows.
const maxOutcomes = 50

func (c *Console) replay(w http.ResponseWriter, r *http.Request, s *session) {
	ids := r.PostForm["id"]
	byConn := map[string][]string{}
	var order []string
	for _, it := range ids {
		conn, id, ok := strings.Cut(it, "|")
		if !ok || conn == "" || id == "" {
			continue
		}
		if byConn[conn] == nil {
			order = append(order, conn)
		}
		byConn[conn] = append(byConn[conn], id)
	}
	back := url.Values{}
	if v := r.PostFormValue("connector"); v != "" {
		back.Set("connector", v)
	}
	if v := r.PostFormValue("error"); v != "" {
		back.Set("error", v)
	}
	if len(order) == 0 {
		c.render(w, r, http.StatusBadRequest, "error", pageData{Session: s, Title: "Nothing selected", Error: "Select the dead letters to replay first."})
		return
	}
	n := 0
	for _, conn := range order {
		m, err := c.opt.Ops.Replay(r.Context(), conn, byConn[conn])
		if errors.Is(err, admin.ErrUnknownConnector) {
			c.render(w, r, http.StatusNotFound, "error", pageData{Session: s, Title: "Not found", Error: "No enabled connector " + conn + "."})
			return
		}
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		n += m
		for _, id := range byConn[conn] {
			if len(back["replayed"]) < maxOutcomes {
				back.Add("replayed", conn+"|"+id)
			}
		}
	}
	back.Set("n", strconv.Itoa(n))
	c.opt.Logger.Info("console: dead letters replayed", "count", n, "role", s.role.String())
	http.Redirect(w, r, "/console/deadletters?"+back.Encode(), http.StatusSeeOther)
}

type outboxData struct {
	State    string
	States   []string
	Messages []store.OutboundRecord
	Refusals []Refusal
	Form     sendForm
}

type sendForm struct {
	To, PhoneNumberID, Kind, Text, Template, Language, Components, Nonce, Return string
}

var outStates = []string{store.OutQueued, store.OutUploading, store.OutSending, store.OutAccepted, store.OutSent, store.OutDelivered, store.OutRead, store.OutFailed, store.OutUnknown}

func (c *Console) outbox(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderOutbox(w, r, s, http.StatusOK, sendForm{Kind: "text", Language: "pt_BR"}, "")
}

func (c *Console) renderOutbox(w http.ResponseWriter, r *http.Request, s *session, status int, form sendForm, errMsg string) {
	state := r.URL.Query().Get("state")
	msgs, err := c.opt.Store.OutboundList(r.Context(), store.OutboundFilter{State: state, Limit: 200})
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	d := outboxData{State: state, States: outStates, Messages: msgs, Form: form}
	if c.opt.Refusals != nil {
		d.Refusals = c.opt.Refusals()
	}
	if d.Form.Nonce == "" {
		d.Form.Nonce = randomToken()
	}
	c.render(w, r, status, "outbox", pageData{Session: s, Title: "Outbox", Nav: "outbox", Live: errMsg == "", Error: errMsg, Data: d})
}

func (c *Console) outboxMessage(w http.ResponseWriter, r *http.Request, s *session) {
	rec, err := c.opt.Store.Outbound(r.Context(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, s, err)
		return
	}
	conv := ""
	if rec.PhoneNumberID != "" && rec.To != "" {
		conv = store.ConversationID(rec.PhoneNumberID, rec.To)
	}
	c.render(w, r, http.StatusOK, "message", pageData{Session: s, Title: "Message " + rec.ID, Nav: "outbox", Live: true, Notice: sentNotice(r),
		Data: struct {
			Rec  store.OutboundRecord
			Conv string
		}{rec, conv}})
}

// send queues a message through the admin API's own path: the same
// policy checks, the same refusals.
func (c *Console) send(w http.ResponseWriter, r *http.Request, s *session) {
	f := sendForm{
		To: strings.TrimSpace(r.PostFormValue("to")), PhoneNumberID: strings.TrimSpace(r.PostFormValue("phone_number_id")),
		Kind: r.PostFormValue("kind"), Text: r.PostFormValue("text"), Template: strings.TrimSpace(r.PostFormValue("template")),
		Language: strings.TrimSpace(r.PostFormValue("language")), Components: strings.TrimSpace(r.PostFormValue("components")),
		Nonce: r.PostFormValue("nonce"), Return: r.PostFormValue("return"),
	}
	msg := sdk.OutboundMessage{To: f.To, PhoneNumberID: f.PhoneNumberID}
	if f.Nonce != "" {
		// A form posted twice (a double click, a reload) sends once.
		msg.IdempotencyKey = "console:" + f.Nonce
	}
	var bad string
	switch f.Kind {
	case "template":
		msg.Template = &sdk.Template{Name: f.Template, Language: f.Language}
		if f.Template == "" || f.Language == "" {
			bad = "A template needs its name and language (pt_BR, en_US, …)."
		}
		if f.Components != "" {
			if err := json.Unmarshal([]byte(f.Components), &msg.Template.Components); err != nil {
				bad = `Components: want a JSON list as the Graph API takes it, e.g. [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}].`
			}
		}
	default:
		f.Kind, msg.Text = "text", f.Text
		if strings.TrimSpace(f.Text) == "" {
			bad = "Write the message's text."
		}
	}
	if bad == "" {
		rec, _, err := c.opt.Ops.SendMessage(r.Context(), msg)
		var ref *sdk.RefusedError
		var inv *admin.InvalidError
		switch {
		case errors.As(err, &ref):
			bad = "Refused (" + ref.Code + "): " + ref.Message
		case errors.As(err, &inv):
			bad = inv.Message
		case err != nil:
			c.fail(w, r, s, err)
			return
		default:
			c.opt.Logger.Info("console: message queued", "id", rec.ID, "role", s.role.String())
			if ret := safeNext(f.Return); f.Return != "" && ret != "/console/" {
				sep := "?"
				if strings.Contains(ret, "?") {
					sep = "&"
				}
				http.Redirect(w, r, ret+sep+"sent="+url.QueryEscape(rec.ID), http.StatusSeeOther)
				return
			}
			http.Redirect(w, r, "/console/outbox/"+url.PathEscape(rec.ID)+"?sent="+url.QueryEscape(rec.ID), http.StatusSeeOther)
			return
		}
	}
	// Keep what was typed, with a fresh nonce: the refused request was
	// not queued, so the corrected one must not collide with it.
	f.Nonce = randomToken()
	c.renderOutbox(w, r, s, http.StatusUnprocessableEntity, f, bad)
}

type clusterData struct {
	Single    bool
	StoreKind string
	Nodes     []Node
}

func (c *Console) cluster(w http.ResponseWriter, r *http.Request, s *session) {
	d := clusterData{StoreKind: c.opt.StoreKind}
	if c.opt.Cluster == nil {
		d.Single = true
		if c.opt.Self != nil {
			d.Nodes = []Node{c.opt.Self()}
		}
	} else {
		nodes, err := c.opt.Cluster(r.Context())
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		d.Nodes = nodes
	}
	c.render(w, r, http.StatusOK, "cluster", pageData{Session: s, Title: "Cluster", Nav: "cluster", Live: !d.Single, Data: d})
}
