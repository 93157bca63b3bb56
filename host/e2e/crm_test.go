package e2e

// End-to-end tests of the CRM connectors (issue 7): the real wahub binary
// runs the built-in hubspot and bitrix24 plugins against their fakes,
// served here by httptest behind crmGate, which records every request and
// can hold one to kill the plugin while it is in flight.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
)

// crmRetry is the connector's retry schedule: fast, since the test runs
// on real time, and long enough to outlast half the calls failing.
const crmRetry = `{max_attempts: 30, initial_interval: 50ms, max_interval: 500ms}`

// crmConfig is a hub whose connector "crm" runs plugin with pluginCfg and
// receives every message.received by subscription, whatever the route.
// With vipURL, a rule sends customers whose tier is gold to team vip,
// whose webhook connector posts to vipURL.
func crmConfig(t *testing.T, plugin string, pluginCfg map[string]any, vipURL string) string {
	t.Helper()
	raw, err := json.Marshal(pluginCfg) // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	teams := "  support: {connectors: []}\n"
	routes := "  - {name: default, team: support}\n"
	affinity, extra := "", ""
	if vipURL != "" {
		teams += "  vip: {connectors: [vip-hook]}\n"
		affinity = "affinity: {rules_can_move: [vip]}\n"
		routes = "  - {name: vip, when: {contact: {tier: gold}}, team: vip}\n" + routes
		extra = `
  vip-hook:
    plugin: webhook
    config: {url: "` + vipURL + `", secret: ` + receiverSecret + `}
    retry: ` + crmRetry + `
`
	}
	return `
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
teams:
` + teams + affinity + `routes:
` + routes + `subscriptions:
  - {connector: crm, events: [message.received]}
connectors:
  crm:
    plugin: ` + plugin + `
    config: ` + string(raw) + `
    retry: ` + crmRetry + `
` + extra
}

// crmReq is one request a fake got, as the gate saw it.
type crmReq struct {
	Method, Path string
	Body         []byte
	At           time.Time
}

// crmTrap holds the first request that match accepts: before the fake
// sees it, or (after) once the fake has acted on it, losing its answer as
// a crash would.
type crmTrap struct {
	match  func(method, path string, body []byte) bool
	after  bool
	caught chan struct{}
}

// crmGate sits in front of a fake: it records requests and springs traps.
type crmGate struct {
	next http.Handler
	done chan struct{}
	mu   sync.Mutex
	reqs []crmReq
	trap *crmTrap
}

// crmServe serves fake behind a gate on a loopback listener.
func crmServe(t *testing.T, fake http.Handler) (*crmGate, string) {
	g := &crmGate{next: fake, done: make(chan struct{})}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	// Runs before srv.Close: a held request lets go, so Close returns.
	t.Cleanup(func() { close(g.done) })
	return g, srv.URL
}

func (g *crmGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	g.mu.Lock()
	g.reqs = append(g.reqs, crmReq{Method: r.Method, Path: r.URL.Path, Body: body, At: time.Now()})
	tr := g.trap
	if tr != nil && tr.match(r.Method, r.URL.Path, body) {
		g.trap = nil
	} else {
		tr = nil
	}
	g.mu.Unlock()
	if tr == nil {
		g.next.ServeHTTP(w, r)
		return
	}
	if tr.after {
		g.next.ServeHTTP(httptest.NewRecorder(), r)
	}
	close(tr.caught)
	// Held until the client goes away (the plugin is killed) or the test
	// ends; whatever is written then reaches nobody.
	select {
	case <-r.Context().Done():
	case <-g.done:
	}
	http.Error(w, "held by the test", http.StatusGatewayTimeout)
}

// arm sets a trap; the channel closes when a request is caught.
func (g *crmGate) arm(after bool, match func(method, path string, body []byte) bool) <-chan struct{} {
	tr := &crmTrap{match: match, after: after, caught: make(chan struct{})}
	g.mu.Lock()
	g.trap = tr
	g.mu.Unlock()
	return tr.caught
}

// requests returns the requests seen so far.
func (g *crmGate) requests() []crmReq {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]crmReq(nil), g.reqs...)
}

// crmWait polls cond (which says what it sees) until it holds.
func crmWait(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, within, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func crmCaught(t *testing.T, caught <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-caught:
	case <-time.After(45 * time.Second):
		t.Fatalf("%s: no such request reached the fake within 45s", what)
	}
}

// crmKillPlugin SIGKILLs the connector's plugin and waits for the hub to
// run a new one.
func (h *hubProc) crmKillPlugin(name string) admin.ConnectorStatus {
	h.t.Helper()
	old := h.connectors()[name]
	if old.PID == 0 {
		h.t.Fatalf("connector %s has no plugin pid: %+v", name, old)
	}
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	return h.waitConnector(name, "restarted after SIGKILL", func(c admin.ConnectorStatus) bool {
		return c.State == "running" && c.PID != 0 && c.PID != old.PID
	})
}

// crmQueue posts messages while the connector is paused, so that they
// reach the plugin as one batch when it is resumed.
func (h *hubProc) crmQueue(name string, pendingAfter int64, post func()) {
	h.t.Helper()
	if code := h.api("POST", "/api/v1/connectors/"+name+"/pause", nil, nil); code != 200 {
		h.t.Fatalf("pause: %d", code)
	}
	post()
	h.waitConnector(name, fmt.Sprintf("%d queued", pendingAfter), func(c admin.ConnectorStatus) bool {
		return c.Paused && c.Pending == pendingAfter
	})
}

func (h *hubProc) crmResume(name string) {
	h.t.Helper()
	if code := h.api("POST", "/api/v1/connectors/"+name+"/resume", nil, nil); code != 200 {
		h.t.Fatalf("resume: %d", code)
	}
}

func (h *hubProc) crmContact(waID string) store.Contact {
	h.t.Helper()
	var c store.Contact
	if code := h.api("GET", "/api/v1/contacts/"+waID, nil, &c); code != 200 {
		h.t.Fatalf("GET /api/v1/contacts/%s: %d", waID, code)
	}
	return c
}

// crmTexts are the message texts a customer sends: the first, then five.
func crmTexts(tag string) []string {
	out := []string{tag + " primeira mensagem"}
	for i := 2; i <= 6; i++ {
		out = append(out, fmt.Sprintf("%s mensagem %d", tag, i))
	}
	return out
}

// crmOnceEach checks that every text appears in exactly one of logged,
// and that nothing else was logged.
func crmOnceEach(t *testing.T, what string, logged, texts []string) {
	t.Helper()
	for _, text := range texts {
		n := 0
		for _, l := range logged {
			if strings.Contains(l, text) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %q logged %d times, want once", what, text, n)
		}
	}
	if len(logged) != len(texts) {
		t.Errorf("%s: %d logged, want %d:\n%s", what, len(logged), len(texts), strings.Join(logged, "\n"))
	}
}

// ---- HubSpot ----

func crmHubSpotConfig(apiURL string, extra map[string]any) map[string]any {
	cfg := map[string]any{
		"token":   "pat-na1-e2e-test-token",
		"api_url": apiURL,
		// HubSpot's search shows new contacts after a lag; the fake's is
		// 300ms, and an interrupted creation waits this long before
		// searching for the contact it may have made.
		"search_lag": "1s",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// crmHubSpotContacts are the fake's contacts with this phone number.
func crmHubSpotContacts(fake *hubspottest.Server, waID string) []hubspottest.Record {
	var out []hubspottest.Record
	for _, c := range fake.Contacts() {
		if c.Properties["phone"] == "+"+waID || c.Properties["mobilephone"] == "+"+waID {
			out = append(out, c)
		}
	}
	return out
}

// crmHubSpotLogged are the bodies of the communications on a contact,
// checking each is a WhatsApp communication associated as HubSpot wants.
func crmHubSpotLogged(t *testing.T, fake *hubspottest.Server, contactID string) []string {
	t.Helper()
	var out []string
	for _, c := range fake.Communications() {
		on := false
		for _, a := range c.Associations {
			if a.ToID == contactID && a.TypeID == hubspottest.AssocCommunicationToContact {
				on = true
			}
		}
		if !on {
			continue
		}
		if ch := c.Properties["hs_communication_channel_type"]; ch != "WHATS_APP" {
			t.Errorf("communication %s: channel %q, want WHATS_APP", c.ID, ch)
		}
		out = append(out, c.Properties["hs_communication_body"])
	}
	return out
}

// crmHubSpotState describes what the fake holds for a customer.
func crmHubSpotState(fake *hubspottest.Server, waID string) (contacts, comms int, s string) {
	cs := crmHubSpotContacts(fake, waID)
	for _, c := range cs {
		for _, m := range fake.Communications() {
			for _, a := range m.Associations {
				if a.ToID == c.ID {
					comms++
				}
			}
		}
	}
	return len(cs), comms, fmt.Sprintf("%d contacts, %d communications on them (%d in all)", len(cs), comms, len(fake.Communications()))
}

func TestCRMHubSpotOneContactThroughPluginCrashes(t *testing.T) {
	t.Parallel()
	fake := hubspottest.NewServer(hubspottest.WithSearchLag(300 * time.Millisecond))
	gate, url := crmServe(t, fake)
	h := newHub(t, crmConfig(t, "hubspot", crmHubSpotConfig(url, nil), ""))
	h.waitConnector("crm", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	const waID = "5511900000701"
	texts := crmTexts("hs-crash")
	at := time.Now().Add(-time.Minute)

	// The first message: HubSpot creates the contact, but the plugin dies
	// before it reads the answer. The restarted plugin must find that
	// contact (once search shows it), not create a second.
	caught := gate.arm(true, func(m, p string, _ []byte) bool { return m == "POST" && p == hubspottest.PathContacts })
	h.postText(waID, "wamid.CRM.HS.C.1", texts[0], at)
	crmCaught(t, caught, "the contact creation")
	h.crmKillPlugin("crm")
	crmWait(t, 45*time.Second, "the first message logged after the crash", func() (bool, string) {
		c := h.connectors()["crm"]
		_, comms, s := crmHubSpotState(fake, waID)
		return c.Delivered == 1 && comms == 1, fmt.Sprintf("%s; connector %+v", s, c)
	})
	cs := crmHubSpotContacts(fake, waID)
	if len(cs) != 1 {
		t.Fatalf("%d HubSpot contacts for +%s after an interrupted creation, want 1: %+v", len(cs), waID, cs)
	}
	contact := cs[0]
	if contact.Properties["firstname"] != "Ana" || contact.Properties["lastname"] != "Souza" {
		t.Errorf("contact created as %+v, want the WhatsApp profile name Ana Souza", contact.Properties)
	}

	// Five more, queued and handed over as one batch; the plugin is killed
	// while the third of them is on its way to HubSpot, after the first
	// two were logged. The whole batch comes again: the two must not be
	// logged twice.
	h.crmQueue("crm", 5, func() {
		for i := 1; i < 6; i++ {
			h.postText(waID, fmt.Sprintf("wamid.CRM.HS.C.%d", i+1), texts[i], at.Add(time.Duration(i)*time.Second))
		}
	})
	seen := 0
	caught = gate.arm(false, func(m, p string, _ []byte) bool {
		if m != "POST" || p != hubspottest.PathCommunications {
			return false
		}
		seen++
		return seen == 3
	})
	h.crmResume("crm")
	crmCaught(t, caught, "the third communication of the batch")
	c := h.crmKillPlugin("crm")
	crmWait(t, 45*time.Second, "all six messages logged", func() (bool, string) {
		c := h.connectors()["crm"]
		_, comms, s := crmHubSpotState(fake, waID)
		return c.Delivered == 6 && c.Pending == 0 && comms >= 6, fmt.Sprintf("%s; connector %+v", s, c)
	})
	if c.Restarts < 2 {
		t.Errorf("restarts %d, want 2 (two SIGKILLs)", c.Restarts)
	}
	if cs := crmHubSpotContacts(fake, waID); len(cs) != 1 {
		t.Errorf("%d contacts for +%s, want 1: %+v", len(cs), waID, cs)
	}
	crmOnceEach(t, "HubSpot communications", crmHubSpotLogged(t, fake, contact.ID), texts)
	if n := len(fake.Contacts()); n != 1 {
		t.Errorf("the fake holds %d contacts, want 1", n)
	}
}

func TestCRMHubSpotRateLimitedHalfTheTime(t *testing.T) {
	t.Parallel()
	// The fake enforces 10 requests per 10 s (2 searches per second) and
	// answers every second request with a ten-secondly 429. Its Retry-After
	// is 1: without one the plugin pauses the whole connector 10 s per 429
	// (HubSpot's window, client.go pauseTenSecondly), and these six
	// messages take about 85 s instead of 15.
	limit := hubspottest.RateLimit{Per10Seconds: 10, SearchPerSecond: 2}
	fake := hubspottest.NewServer(hubspottest.WithSearchLag(300*time.Millisecond), hubspottest.WithRateLimit(limit))
	fake.FailEvery(2, hubspottest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"})
	gate, url := crmServe(t, fake)
	h := newHub(t, crmConfig(t, "hubspot", crmHubSpotConfig(url, map[string]any{
		"requests_per_10s": limit.Per10Seconds, "search_per_second": limit.SearchPerSecond,
	}), ""))
	h.waitConnector("crm", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	const waID = "5511900000702"
	texts := crmTexts("hs-429")
	start := time.Now()
	at := start.Add(-time.Minute)
	for i, text := range texts {
		h.postText(waID, fmt.Sprintf("wamid.CRM.HS.R.%d", i+1), text, at.Add(time.Duration(i)*time.Second))
	}
	crmWait(t, 60*time.Second, "six messages delivered through the 429s", func() (bool, string) {
		c := h.connectors()["crm"]
		_, _, s := crmHubSpotState(fake, waID)
		return c.Delivered == 6, fmt.Sprintf("%s; connector %+v", s, c)
	})
	t.Logf("six messages through a HubSpot refusing half the calls took %s", time.Since(start).Round(100*time.Millisecond))
	cs := crmHubSpotContacts(fake, waID)
	if len(cs) != 1 {
		t.Fatalf("%d contacts for +%s, want 1: %+v", len(cs), waID, cs)
	}
	crmOnceEach(t, "HubSpot communications", crmHubSpotLogged(t, fake, cs[0].ID), texts)

	refused := 0
	for _, r := range fake.Requests() {
		if r.Status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 || len(gate.requests()) < 2*refused-1 {
		t.Errorf("%d of %d requests answered 429; the fault injection did not work as meant", refused, len(gate.requests()))
	}
	per10, search := fake.MaxObserved()
	if th := fake.Throttled(); th != 0 || per10 > limit.Per10Seconds || search > limit.SearchPerSecond {
		t.Errorf("the plugin exceeded the fake's limit (%d per 10 s, %d searches per second): it saw at most %d in 10 s and %d searches in 1 s, and refused %d",
			limit.Per10Seconds, limit.SearchPerSecond, per10, search, th)
	}
	t.Logf("%d requests, %d refused by fault injection; at most %d per 10 s and %d searches per second", len(gate.requests()), refused, per10, search)
}

// crmSyncSearchSince returns the lastmodifieddate a sync search starts
// from (epoch ms); ok is false for another request.
func crmSyncSearchSince(r crmReq) (int64, bool) {
	if r.Method != "POST" || r.Path != hubspottest.PathContactSearch {
		return 0, false
	}
	var body struct {
		FilterGroups []struct {
			Filters []struct {
				PropertyName, Operator string
				Value                  any
			}
		}
	}
	if json.Unmarshal(r.Body, &body) != nil {
		return 0, false
	}
	for _, g := range body.FilterGroups {
		for _, f := range g.Filters {
			if f.PropertyName == "lastmodifieddate" {
				ms, err := strconv.ParseInt(fmt.Sprint(f.Value), 10, 64)
				return ms, err == nil
			}
		}
	}
	return 0, false
}

func TestCRMHubSpotSyncTierRoutesAndCursorSurvivesRestart(t *testing.T) {
	t.Parallel()
	fake := hubspottest.NewServer(hubspottest.WithSearchLag(300*time.Millisecond), hubspottest.WithContactProperties("tier"))
	// Contacts from before the hub: the first sync brings them in, and a
	// restart must not read them again.
	old := time.Now().Add(-time.Hour)
	const seedWAID = "5511911110701"
	for i := range 3 {
		fake.AddContact(map[string]string{"phone": fmt.Sprintf("+551191111070%d", i+1), "tier": "silver"}, old.Add(time.Duration(i)*time.Minute))
	}
	gate, url := crmServe(t, fake)
	vip := newReceiver(t)
	h := newHub(t, crmConfig(t, "hubspot", crmHubSpotConfig(url, map[string]any{
		"sync": map[string]any{"properties": []string{"tier"}, "interval": "250ms"},
	}), vip.URL()))
	h.waitConnector("crm", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	crmWait(t, 20*time.Second, "the first sync", func() (bool, string) {
		c := h.crmContactMaybe(seedWAID)
		return c != nil && c.Attributes["tier"] == "silver", fmt.Sprintf("%+v", c)
	})

	const waID = "5511900000703"
	h.postText(waID, "wamid.CRM.HS.S.1", "quero ajuda", time.Now().Add(-time.Minute))
	crmWait(t, 30*time.Second, "the first message logged", func() (bool, string) {
		c := h.connectors()["crm"]
		_, comms, s := crmHubSpotState(fake, waID)
		return c.Delivered == 1 && comms == 1, s
	})
	cs := crmHubSpotContacts(fake, waID)
	if len(cs) != 1 {
		t.Fatalf("%d contacts for +%s, want 1", len(cs), waID)
	}
	if got := h.crmContact(waID).Attributes["tier"]; got != "" {
		t.Fatalf("tier %q before it was set in HubSpot", got)
	}

	// A HubSpot user makes the customer gold.
	changed := time.Now()
	if err := fake.SetContactProperties(cs[0].ID, map[string]string{"tier": "gold"}, changed); err != nil {
		t.Fatal(err)
	}
	crmWait(t, 10*time.Second, "tier gold synced into the contact", func() (bool, string) {
		c := h.crmContact(waID)
		return c.Attributes["tier"] == "gold", fmt.Sprintf("attributes %v", c.Attributes)
	})
	t.Logf("tier gold reached the hub %s after it was set in HubSpot (sync.interval 250ms, search lag 300ms)", time.Since(changed).Round(10*time.Millisecond))
	st := h.connectors()["crm"].Sync
	if st == nil || st.Cursor == "" || st.LastError != "" || st.Contacts < 4 || time.Since(st.At) > 10*time.Second {
		t.Fatalf("GET /api/v1/connectors sync %+v: want a cursor, a recent last_sync_at, contacts_synced ≥ 4 and no error", st)
	}

	// Her next message goes to the VIP team, by the contact: {tier: gold}
	// rule, and is still logged in HubSpot.
	h.postText(waID, "wamid.CRM.HS.S.2", "ainda preciso de ajuda", time.Now())
	got := waitDelivered(t, vip, 1, "the VIP team")
	if ev := got[0]; ev.Message == nil || ev.Message.ID != "wamid.CRM.HS.S.2" || ev.Route == nil || ev.Route.Rule != "vip" || ev.Route.Team != "vip" {
		t.Errorf("VIP team got %+v (route %+v), want message wamid.CRM.HS.S.2 by rule vip", ev.Message, ev.Route)
	}
	crmWait(t, 30*time.Second, "the second message logged", func() (bool, string) {
		_, comms, s := crmHubSpotState(fake, waID)
		return comms == 2, s
	})

	// The cursor survives a hub restart: the first sync after it starts
	// where the last one stopped, not from the beginning. The cursor
	// passes the seeded contacts once her change is older than
	// search_lag.
	seeded := old.Add(2 * time.Minute)
	var before admin.ConnectorStatus
	var curAt time.Time
	crmWait(t, 10*time.Second, "the cursor past the seeded contacts", func() (bool, string) {
		before = h.connectors()["crm"]
		if before.Sync == nil {
			return false, "no sync state"
		}
		date, _, _ := strings.Cut(before.Sync.Cursor, "/")
		var err error
		curAt, err = time.Parse(time.RFC3339Nano, date)
		return err == nil && curAt.After(seeded), fmt.Sprintf("sync %+v", before.Sync)
	})
	cur := before.Sync.Cursor
	h.kill()
	if !processGone(t, before.PID) {
		t.Fatalf("plugin %d still running after its hub was killed", before.PID)
	}
	mark := len(gate.requests())
	h.start()
	var since int64
	crmWait(t, 20*time.Second, "a sync after the restart", func() (bool, string) {
		for _, r := range gate.requests()[mark:] {
			if ms, ok := crmSyncSearchSince(r); ok {
				since = ms
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d requests since the restart", len(gate.requests())-mark)
	})
	if since < curAt.UnixMilli() || since <= seeded.UnixMilli() {
		t.Errorf("first sync after the restart searched from %s; the cursor before it was %q: a full re-sync",
			time.UnixMilli(since).UTC().Format(time.RFC3339Nano), cur)
	}
	if after := h.connectors()["crm"].Sync; after == nil || after.Cursor == "" || after.Contacts < before.Sync.Contacts {
		t.Errorf("sync state after the restart %+v, before %+v", after, before.Sync)
	}
	if got := h.crmContact(waID).Attributes["tier"]; got != "gold" {
		t.Errorf("tier %q after the restart, want gold", got)
	}
}

// crmContactMaybe is the contact, or nil while the hub does not know it.
func (h *hubProc) crmContactMaybe(waID string) *store.Contact {
	h.t.Helper()
	var c store.Contact
	switch code := h.api("GET", "/api/v1/contacts/"+waID, nil, &c); code {
	case 200:
		return &c
	case 404:
		return nil
	default:
		h.t.Fatalf("GET /api/v1/contacts/%s: %d", waID, code)
		return nil
	}
}

// ---- Bitrix24 ----

func crmBitrixConfig(webhookURL string, extra map[string]any) map[string]any {
	cfg := map[string]any{"webhook_url": webhookURL}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// crmBitrixContacts are the fake's contacts with this phone number.
func crmBitrixContacts(fake *bitrix24test.Server, waID string) []bitrix24test.Record {
	var out []bitrix24test.Record
	for _, c := range fake.Contacts() {
		for _, p := range c.Phones {
			if strings.TrimPrefix(p.Value, "+") == waID {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// crmBitrixLogged are the timeline comments on a contact.
func crmBitrixLogged(fake *bitrix24test.Server, contactID int) []string {
	var out []string
	for _, c := range fake.Comments() {
		if c.EntityType == "contact" && c.EntityID == contactID {
			out = append(out, c.Text)
		}
	}
	return out
}

func crmBitrixState(fake *bitrix24test.Server, waID string) (contacts, comments int, s string) {
	cs := crmBitrixContacts(fake, waID)
	for _, c := range cs {
		comments += len(crmBitrixLogged(fake, c.ID))
	}
	st := fake.State()
	return len(cs), comments, fmt.Sprintf("%d contacts for +%s with %d comments (%d contacts, %d comments, %d leads in all)",
		len(cs), waID, comments, len(st.Contacts), len(st.Comments), len(st.Leads))
}

// crmBitrixMethod is the REST method a request calls.
func crmBitrixMethod(path string) string {
	return strings.TrimSuffix(path[strings.LastIndexByte(path, '/')+1:], ".json")
}

func TestCRMBitrix24OneContactThroughPluginCrashes(t *testing.T) {
	t.Parallel()
	fake := bitrix24test.NewServer()
	gate, url := crmServe(t, fake)
	h := newHub(t, crmConfig(t, "bitrix24", crmBitrixConfig(url+fake.WebhookPath(), nil), ""))
	h.waitConnector("crm", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	const waID, other = "5511900000801", "5511900000802"
	texts, otherTexts := crmTexts("bx-crash"), crmTexts("bx-other")[1:]
	at := time.Now().Add(-time.Minute)

	// The first message: the portal adds the contact, and the plugin dies
	// before it reads the answer; the restarted one must find it by phone.
	caught := gate.arm(true, func(_, p string, _ []byte) bool { return crmBitrixMethod(p) == "crm.contact.add" })
	h.postText(waID, "wamid.CRM.BX.C.1", texts[0], at)
	crmCaught(t, caught, "crm.contact.add")
	h.crmKillPlugin("crm")
	crmWait(t, 45*time.Second, "the first message commented after the crash", func() (bool, string) {
		c := h.connectors()["crm"]
		_, n, s := crmBitrixState(fake, waID)
		return c.Delivered == 1 && n == 1, fmt.Sprintf("%s; connector %+v", s, c)
	})
	cs := crmBitrixContacts(fake, waID)
	if len(cs) != 1 {
		t.Fatalf("%d Bitrix24 contacts for +%s after an interrupted crm.contact.add, want 1: %+v", len(cs), waID, cs)
	}
	contact := cs[0]
	if contact.Fields["NAME"] != "Ana Souza" {
		t.Errorf("contact created with fields %v, want NAME Ana Souza", contact.Fields)
	}

	// Five more of hers and five of another customer, as one batch. The
	// plugin comments one message per conversation per batch call; it is
	// killed while the third such call is on its way, after two of each
	// were commented. The whole batch comes again.
	h.crmQueue("crm", 10, func() {
		for i := 1; i < 6; i++ {
			when := at.Add(time.Duration(i) * time.Second)
			h.postText(waID, fmt.Sprintf("wamid.CRM.BX.C.%d", i+1), texts[i], when)
			h.postText(other, fmt.Sprintf("wamid.CRM.BX.O.%d", i), otherTexts[i-1], when)
		}
	})
	seen := 0
	caught = gate.arm(false, func(_, p string, body []byte) bool {
		if crmBitrixMethod(p) != "batch" || !bytes.Contains(body, []byte("crm.timeline.comment.add")) {
			return false
		}
		seen++
		return seen == 3
	})
	h.crmResume("crm")
	crmCaught(t, caught, "the third batch of comments")
	if _, n, s := crmBitrixState(fake, waID); n != 3 {
		t.Logf("when the plugin was killed: %s (want 3: the first and two of the batch)", s)
	}
	c := h.crmKillPlugin("crm")
	crmWait(t, 45*time.Second, "all eleven messages commented", func() (bool, string) {
		c := h.connectors()["crm"]
		st := fake.State()
		return c.Delivered == 11 && c.Pending == 0, fmt.Sprintf("%d comments in all; connector %+v", len(st.Comments), c)
	})
	if c.Restarts < 2 {
		t.Errorf("restarts %d, want 2 (two SIGKILLs)", c.Restarts)
	}
	if cs := crmBitrixContacts(fake, waID); len(cs) != 1 {
		t.Errorf("%d contacts for +%s, want 1: %+v", len(cs), waID, cs)
	}
	crmOnceEach(t, "Bitrix24 comments of +"+waID, crmBitrixLogged(fake, contact.ID), texts)
	others := crmBitrixContacts(fake, other)
	if len(others) != 1 {
		t.Fatalf("%d contacts for +%s, want 1: %+v", len(others), other, others)
	}
	crmOnceEach(t, "Bitrix24 comments of +"+other, crmBitrixLogged(fake, others[0].ID), otherTexts)
	if st := fake.State(); len(st.Contacts) != 2 || len(st.Leads) != 0 || len(st.Comments) != 11 {
		t.Errorf("the fake holds %d contacts, %d leads, %d comments; want 2, 0, 11", len(st.Contacts), len(st.Leads), len(st.Comments))
	}
}

func TestCRMBitrix24QueryLimitHalfTheTime(t *testing.T) {
	t.Parallel()
	// The portal's leaky bucket drains 2 a second, as on a real portal,
	// with a small burst so that any excess shows; and every second
	// request is refused with 503 QUERY_LIMIT_EXCEEDED besides.
	const perSecond, burst = 2, 4
	fake := bitrix24test.NewServer(bitrix24test.WithRateLimit(perSecond, burst))
	fake.FailEvery(2, http.StatusServiceUnavailable)
	gate, url := crmServe(t, fake)
	h := newHub(t, crmConfig(t, "bitrix24", crmBitrixConfig(url+fake.WebhookPath(), map[string]any{"requests_per_second": perSecond}), ""))
	h.waitConnector("crm", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	const waID = "5511900000803"
	texts := crmTexts("bx-503")
	start := time.Now()
	at := start.Add(-time.Minute)
	for i, text := range texts {
		h.postText(waID, fmt.Sprintf("wamid.CRM.BX.R.%d", i+1), text, at.Add(time.Duration(i)*time.Second))
	}
	crmWait(t, 90*time.Second, "six messages delivered through the 503s", func() (bool, string) {
		c := h.connectors()["crm"]
		_, _, s := crmBitrixState(fake, waID)
		return c.Delivered == 6, fmt.Sprintf("%s; connector %+v", s, c)
	})
	t.Logf("six messages through a portal refusing half the calls took %s", time.Since(start).Round(100*time.Millisecond))
	cs := crmBitrixContacts(fake, waID)
	if len(cs) != 1 {
		t.Fatalf("%d contacts for +%s, want 1: %+v", len(cs), waID, cs)
	}
	crmOnceEach(t, "Bitrix24 comments", crmBitrixLogged(fake, cs[0].ID), texts)

	st := fake.State()
	calls := fake.Calls()
	refused := 0
	for _, c := range calls {
		if c.Status == http.StatusServiceUnavailable {
			refused++
		}
	}
	// Every second request is refused by injection; the bucket itself
	// refuses only above burst, which the bucket's highest level shows.
	if st.MaxLevel >= burst || st.Rejected != st.Requests/2 {
		t.Errorf("the plugin overflowed the portal's bucket: highest level %.2f of %d; %d of %d requests refused, %d by injection",
			st.MaxLevel, burst, st.Rejected, st.Requests, st.Requests/2)
	}
	if st.MaxPerSecond > perSecond {
		t.Errorf("the fake saw %d requests within one second, want at most %d", st.MaxPerSecond, perSecond)
	}
	t.Logf("%d requests (%d through the gate), %d refused; at most %d in one second, bucket level at most %.2f of %d",
		st.Requests, len(gate.requests()), refused, st.MaxPerSecond, st.MaxLevel, burst)
	for _, c := range calls {
		t.Logf("  %s %s %d %s %v", c.At.Sub(start).Round(time.Millisecond), c.Method, c.Status, c.Error, c.Commands)
	}
}

// crmBitrixListFilter returns the filter of a crm.contact.list call; ok
// is false for other requests.
func crmBitrixListFilter(r crmReq) (map[string]any, bool) {
	if crmBitrixMethod(r.Path) != "crm.contact.list" {
		return nil, false
	}
	var body struct {
		Filter map[string]any `json:"filter"`
	}
	if json.Unmarshal(r.Body, &body) != nil {
		return nil, false
	}
	if body.Filter == nil {
		body.Filter = map[string]any{}
	}
	return body.Filter, true
}

func TestCRMBitrix24SyncTierRoutesAndCursorSurvivesRestart(t *testing.T) {
	t.Parallel()
	fake := bitrix24test.NewServer()
	// Tier is a list field, as a Bitrix24 user would make it: contacts
	// hold the option's id, and the plugin reports its value.
	tiers := fake.AddListField("UF_CRM_TIER", "Gold", "Silver")
	const seedWAID = "5511911110801"
	for i := range 3 {
		fake.AddContact(map[string]any{"NAME": fmt.Sprintf("Seed %d", i), "UF_CRM_TIER": tiers["Silver"]}, fmt.Sprintf("+551191111080%d", i+1))
	}
	gate, url := crmServe(t, fake)
	vip := newReceiver(t)
	// 10s is the shortest sync.interval the plugin accepts.
	h := newHub(t, crmConfig(t, "bitrix24", crmBitrixConfig(url+fake.WebhookPath(), map[string]any{
		"sync": map[string]any{"interval": "10s", "fields": map[string]string{"tier": "UF_CRM_TIER"}},
	}), vip.URL()))
	h.waitConnector("crm", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	crmWait(t, 20*time.Second, "the first sync", func() (bool, string) {
		c := h.crmContactMaybe(seedWAID)
		return c != nil && c.Attributes["tier"] == "Silver", fmt.Sprintf("%+v", c)
	})

	const waID = "5511900000804"
	h.postText(waID, "wamid.CRM.BX.S.1", "quero ajuda", time.Now().Add(-time.Minute))
	crmWait(t, 30*time.Second, "the first message commented", func() (bool, string) {
		c := h.connectors()["crm"]
		_, n, s := crmBitrixState(fake, waID)
		return c.Delivered == 1 && n == 1, s
	})
	cs := crmBitrixContacts(fake, waID)
	if len(cs) != 1 {
		t.Fatalf("%d contacts for +%s, want 1", len(cs), waID)
	}

	changed := time.Now()
	if err := fake.UpdateContact(cs[0].ID, map[string]any{"UF_CRM_TIER": tiers["Gold"]}); err != nil {
		t.Fatal(err)
	}
	crmWait(t, 25*time.Second, "tier Gold synced into the contact", func() (bool, string) {
		c := h.crmContact(waID)
		return strings.EqualFold(c.Attributes["tier"], "gold"), fmt.Sprintf("attributes %v", c.Attributes)
	})
	t.Logf("tier Gold reached the hub %s after it was set in Bitrix24 (sync.interval 10s)", time.Since(changed).Round(10*time.Millisecond))
	st := h.connectors()["crm"].Sync
	if st == nil || st.Cursor == "" || st.LastError != "" || st.Contacts < 4 || time.Since(st.At) > 20*time.Second {
		t.Fatalf("GET /api/v1/connectors sync %+v: want a cursor, a recent last_sync_at, contacts_synced ≥ 4 and no error", st)
	}

	h.postText(waID, "wamid.CRM.BX.S.2", "ainda preciso de ajuda", time.Now())
	got := waitDelivered(t, vip, 1, "the VIP team")
	if ev := got[0]; ev.Message == nil || ev.Message.ID != "wamid.CRM.BX.S.2" || ev.Route == nil || ev.Route.Rule != "vip" || ev.Route.Team != "vip" {
		t.Errorf("VIP team got %+v (route %+v), want message wamid.CRM.BX.S.2 by rule vip", ev.Message, ev.Route)
	}
	crmWait(t, 30*time.Second, "the second message commented", func() (bool, string) {
		_, n, s := crmBitrixState(fake, waID)
		return n == 2, s
	})

	before := h.connectors()["crm"]
	if before.Sync == nil || before.Sync.Cursor == "" {
		t.Fatalf("sync state %+v before the restart: want a cursor", before.Sync)
	}
	h.kill()
	if !processGone(t, before.PID) {
		t.Fatalf("plugin %d still running after its hub was killed", before.PID)
	}
	mark := len(gate.requests())
	h.start()
	var filter map[string]any
	crmWait(t, 20*time.Second, "a sync after the restart", func() (bool, string) {
		for _, r := range gate.requests()[mark:] {
			if f, ok := crmBitrixListFilter(r); ok {
				filter = f
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d requests since the restart", len(gate.requests())-mark)
	})
	date, _, _ := strings.Cut(before.Sync.Cursor, "#")
	resumed := false
	for k, v := range filter {
		if strings.HasSuffix(k, "DATE_MODIFY") && strings.HasPrefix(k, ">") && fmt.Sprint(v) == date {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("first crm.contact.list after the restart filtered %v; the cursor before it was %q: a full re-sync", filter, before.Sync.Cursor)
	}
	if got := h.crmContact(waID).Attributes["tier"]; !strings.EqualFold(got, "gold") {
		t.Errorf("tier %q after the restart, want Gold", got)
	}
}
