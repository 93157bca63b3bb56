package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
)

// Several hubs on one PostgreSQL database, as real processes.

const leaseTimeout = 3 * time.Second

// pgConfig is a hub on the PostgreSQL database url with the webhook
// connector posting every event to receiverURL (when set) and the Graph
// API at graphURL (when set).
func pgConfig(url, receiverURL, graphURL string, mps int) string {
	cfg := fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {driver: postgres, url: %q, lease_timeout: %s}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: %q
  messages_per_second: %d
teams: {support: {connectors: []}}
routes: [{name: default, team: support}]
`, url, leaseTimeout, graphURL, mps)
	if receiverURL != "" {
		cfg += `
connectors:
  hook:
    plugin: webhook
    config: {url: ` + receiverURL + `, secret: ` + receiverSecret + `, timeout: 5s}
    retry: {max_attempts: 20, initial_interval: 50ms, max_interval: 500ms}
subscriptions:
  - connector: hook
    events: ["message.received"]
`
	}
	return cfg
}

func startHubs(t *testing.T, n int, cfg string) []*hubProc {
	hubs := make([]*hubProc, n)
	for i := range hubs {
		hubs[i] = newHub(t, cfg)
	}
	return hubs
}

// post posts a signed webhook body to one hub, reporting whether it was
// acknowledged (200).
func post(addr string, body []byte) bool {
	req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/whatsapp", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", ingest.Sign([]byte("test-app-secret"), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// orderedLoad posts, for each of convs customers, msgs messages in order
// (each only once the previous one was acknowledged), each to a random
// running hub, retrying elsewhere as Meta does. It returns the wamids
// acknowledged, per customer in posted order.
type loadGen struct {
	mu   sync.Mutex
	hubs []*hubProc
	down map[int]bool
	// round makes each run's messages new ones (their wamids differ).
	round int
}

func (g *loadGen) pick(r *rand.Rand) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		i := r.IntN(len(g.hubs))
		if !g.down[i] {
			return g.hubs[i].addr
		}
	}
}

func (g *loadGen) setDown(i int, down bool) {
	g.mu.Lock()
	g.down[i] = down
	g.mu.Unlock()
}

func (g *loadGen) run(t *testing.T, convs, msgs int, progress func(int)) map[string][]string {
	var wg sync.WaitGroup
	var mu sync.Mutex
	g.round++
	round := g.round
	acked := map[string][]string{}
	total := 0
	start := time.Now()
	for c := 0; c < convs; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			wa := fmt.Sprintf("5511977%05d", c)
			for k := 0; k < msgs; k++ {
				wamid := fmt.Sprintf("wamid.SO.r%d.%d.%03d", round, c, k)
				body := textBody(wa, wamid, start, fmt.Sprintf("k=%03d", k))
				deadline := time.Now().Add(60 * time.Second)
				for !post(g.pick(r), body) {
					if time.Now().After(deadline) {
						t.Errorf("%s: no hub acknowledged it within 60s", wamid)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				acked[wa] = append(acked[wa], wamid+".0") // textBody numbers the messages of a body
				total++
				n := total
				mu.Unlock()
				if progress != nil {
					progress(n)
				}
			}
		}()
	}
	wg.Wait()
	return acked
}

// checkDelivered waits for every acknowledged message to reach the
// receiver and checks each customer's first receipts are in posted order.
// It returns how many receipts were duplicates.
func checkDelivered(t *testing.T, h *hubProc, rcv *webhooktest.Receiver, acked map[string][]string, within time.Duration) int {
	t.Helper()
	want := 0
	for _, ids := range acked {
		want += len(ids)
	}
	deadline := time.Now().Add(within)
	for {
		got := map[string]bool{}
		for _, d := range rcv.Received() {
			if d.Event.Message != nil {
				got[d.Event.Message.ID] = true
			}
		}
		if len(got) >= want {
			break
		}
		if time.Now().After(deadline) {
			var missing []string
			for _, ids := range acked {
				for _, id := range ids {
					if !got[id] {
						missing = append(missing, id)
					}
				}
			}
			sort.Strings(missing)
			for _, id := range missing[:min(len(missing), 3)] {
				var ev map[string]any
				code := h.api("GET", "/api/v1/events/"+ingest.EventID("m:"+id), nil, &ev)
				t.Logf("missing %s: GET /api/v1/events: %d %v", id, code, ev)
			}
			t.Fatalf("%d of %d acknowledged messages delivered within %s; missing %v", len(got), want, within, missing[:min(len(missing), 10)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := map[string][]string{} // customer → wamids in order of first receipt
	seen := map[string]bool{}
	dups := 0
	for _, d := range rcv.Received() {
		m := d.Event.Message
		if m == nil || d.Event.Contact == nil {
			continue
		}
		if seen[m.ID] {
			dups++
			continue
		}
		seen[m.ID] = true
		wa := d.Event.Contact.WAID
		first[wa] = append(first[wa], m.ID)
	}
	for wa, ids := range acked {
		if fmt.Sprint(first[wa]) != fmt.Sprint(ids) {
			t.Errorf("customer %s: delivered in order %v, posted %v", wa, first[wa], ids)
		}
	}
	return dups
}

// Ordered load through three hubs while one is SIGKILLed and restarted,
// then another: every acknowledged message arrives, each customer's in the
// order posted.
func TestScaleOutOrderedLoadThroughKills(t *testing.T) {
	rcv := newReceiver(t)
	url := pgtest.URL(t)
	hubs := startHubs(t, 3, pgConfig(url, rcv.URL(), "http://127.0.0.1:1", 80))
	g := &loadGen{hubs: hubs, down: map[int]bool{}}
	const convs, msgs = 24, 25
	kills := make(chan int, 2)
	var once [2]sync.Once
	acked := make(chan map[string][]string, 1)
	go func() {
		acked <- g.run(t, convs, msgs, func(n int) {
			// A third of the way: kill hub 0; two thirds: hub 1.
			if n == convs*msgs/3 {
				once[0].Do(func() { kills <- 0 })
			}
			if n == 2*convs*msgs/3 {
				once[1].Do(func() { kills <- 1 })
			}
		})
	}()
	var result map[string][]string
	for done := false; !done; {
		select {
		case i := <-kills:
			g.setDown(i, true)
			hubs[i].kill()
			t.Logf("SIGKILLed hub %d", i)
			hubs[i].start()
			g.setDown(i, false)
		case result = <-acked:
			done = true
		}
	}
	dups := checkDelivered(t, hubs[2], rcv, result, 120*time.Second)
	t.Logf("%d messages over %d customers through 3 hubs with 2 SIGKILLs: %d duplicate deliveries (batches in flight at a kill)",
		convs*msgs, convs, dups)
	var cl struct{ Nodes []store.Node }
	hubs[2].api("GET", "/api/v1/cluster", nil, &cl)
	if len(cl.Nodes) != 3 {
		t.Errorf("GET /api/v1/cluster lists %d live hubs, want 3: %+v", len(cl.Nodes), cl.Nodes)
	}
	out, _, code := hubs[0].wahub("cluster", "--url", hubs[0].url(""))
	if code != 0 || strings.Count(out, "127.0.0.1:") != 3 {
		t.Errorf("wahub cluster: exit %d\n%s", code, out)
	}
}

// A hub SIGSTOPped past its lease timeout loses its partitions to the
// others, which deliver everything meanwhile; resumed, it re-delivers at
// most what it had in flight and then works normally.
func TestScaleOutStalledHubLosesLeases(t *testing.T) {
	rcv := newReceiver(t)
	url := pgtest.URL(t)
	hubs := startHubs(t, 2, pgConfig(url, rcv.URL(), "http://127.0.0.1:1", 80))
	stalled, other := hubs[0], hubs[1]
	waitLeases := func(h *hubProc, cond func(map[string]int) bool, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var cl struct{ Nodes []store.Node }
			h.api("GET", "/api/v1/cluster", nil, &cl)
			by := map[string]int{}
			for _, n := range cl.Nodes {
				by[n.Addr] = n.Leases
			}
			if cond(by) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s: %v", what, by)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLeases(other, func(by map[string]int) bool { return by[stalled.addr] >= 8 && by[other.addr] >= 8 }, "both hubs hold partitions")
	g := &loadGen{hubs: []*hubProc{other}, down: map[int]bool{}}
	before := g.run(t, 8, 5, nil)

	stalled.cmd.Process.Signal(syscall.SIGSTOP)
	waitLeases(other, func(by map[string]int) bool { _, ok := by[stalled.addr]; return !ok && by[other.addr] >= 16 },
		"the stalled hub's partitions taken over")
	during := g.run(t, 8, 5, nil) // the same customers: their next messages
	for wa, ids := range during {
		before[wa] = append(before[wa], ids...)
	}
	checkDelivered(t, other, rcv, before, 60*time.Second)

	stalled.cmd.Process.Signal(syscall.SIGCONT)
	waitLeases(other, func(by map[string]int) bool { return by[stalled.addr] >= 8 }, "the resumed hub takes its share again")
	g.hubs = hubs
	after := g.run(t, 8, 5, nil)
	for wa, ids := range after {
		before[wa] = append(before[wa], ids...)
	}
	dups := checkDelivered(t, other, rcv, before, 60*time.Second)
	if dups > 100 { // one batch (batch_size) at most
		t.Errorf("%d duplicates after the stall, more than the stalled hub's one batch in flight", dups)
	}
	t.Logf("a hub SIGSTOPped past the %s lease timeout and resumed: %d duplicate deliveries", leaseTimeout, dups)
}

// 150 sends spread over three hubs with messages_per_second 15: the Graph
// fake never sees more than 15 in any one-second window, and each message
// is sent once, also when the hub sending the outbox is SIGKILLed.
func TestScaleOutSharedSendRate(t *testing.T) {
	fake, graphURL := newGraph(t)
	url := pgtest.URL(t)
	hubs := startHubs(t, 3, pgConfig(url, "", graphURL, 15))
	hubs[0].postText("5511987650001", "wamid.SO.rate.in", "oi", time.Now())
	const n = 150
	ids := make([]string, n)
	for i := range n {
		code, a := hubs[i%3].send(map[string]any{"to": fmt.Sprintf("55119%08d", i), "phone_number_id": businessNumber,
			"template": map[string]any{"name": "promo", "language": "pt_BR"}, "idempotency_key": fmt.Sprint("rate-", i)})
		if code != 202 {
			t.Fatalf("send %d: %d %+v", i, code, a.Error)
		}
		ids[i] = a.ID
	}
	deadline := time.Now().Add(30 * time.Second)
	for fake.SentCount() < 40 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d sent", fake.SentCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	killed := -1
	for i, h := range hubs {
		if strings.Contains(h.log(), "this hub sends the outbox") {
			killed = i
		}
	}
	if killed < 0 {
		t.Fatal("no hub says it sends the outbox")
	}
	killedAt := time.Now()
	hubs[killed].kill()
	t.Logf("SIGKILLed the sending hub %d after %d sends", killed, fake.SentCount())
	alive := hubs[(killed+1)%3]
	unknown := 0
	for _, id := range ids {
		rec := alive.waitMessageFor(90*time.Second, id, func(r store.OutboundRecord) bool {
			return r.State == store.OutAccepted || r.State == store.OutUnknown || r.State == store.OutFailed
		})
		switch rec.State {
		case store.OutUnknown:
			unknown++
		case store.OutFailed:
			t.Errorf("message %s failed: %s", id, rec.Error)
		}
	}
	sent := fake.Sent()
	per := map[string]int{}
	times := make([]time.Time, 0, len(sent))
	for _, s := range sent {
		per[s.WAID]++
		times = append(times, s.Time)
	}
	for wa, c := range per {
		if c > 1 {
			t.Errorf("%s got its message %d times", wa, c)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	maxIn := 0
	var maxAt time.Time
	for i, j := 0, 0; i < len(times); i++ {
		for times[i].Sub(times[j]) >= time.Second {
			j++
		}
		if i-j+1 > maxIn {
			maxIn, maxAt = i-j+1, times[j]
		}
	}
	t.Logf("the busiest second began %s after the kill", maxAt.Sub(killedAt))
	if maxIn > 15 {
		t.Errorf("the Graph fake saw %d sends in one second, limit 15 across all hubs", maxIn)
	}
	if len(per) < n-unknown {
		t.Errorf("%d of %d recipients reached (%d unknown)", len(per), n, unknown)
	}
	t.Logf("%d sends over 3 hubs at 15/s with the sender killed: at most %d in any second, %d unknown (in flight at the kill), none twice",
		len(sent), maxIn, unknown)
}

func (h *hubProc) waitMessageFor(limit time.Duration, id string, cond func(store.OutboundRecord) bool) store.OutboundRecord {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var rec store.OutboundRecord
		h.api("GET", "/api/v1/messages/"+id, nil, &rec)
		if cond(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("message %s not settled within %s: %+v", id, limit, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A SQLite hub's store migrated to PostgreSQL: the hub on the database
// routes only what is new (the dispatch cursor moved over) and keeps the
// conversation with the team SQLite had it with (affinity).
func TestScaleOutMigrateRoundTrip(t *testing.T) {
	rcv := newReceiver(t)
	routing := `
teams: {support: {connectors: [hook]}, sales: {connectors: [hook]}}
routes:
  - {name: buyers, when: {keywords: [comprar]}, team: sales}
  - {name: default, team: support}
connectors:
  hook:
    plugin: webhook
    config: {url: ` + rcv.URL() + `, secret: ` + receiverSecret + `, timeout: 5s}
`
	base := `
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
log: {level: debug, format: json}
whatsapp: {app_secret: test-app-secret, verify_token: test-verify-token}
` + routing
	lite := newHub(t, base+"store: {path: {{DIR}}/wahub.db}\n")
	lite.postText("5511900000009", "wamid.SO.mig.1", "quero comprar", time.Now())
	if route := lite.storedRoute(ingest.EventID("m:wamid.SO.mig.1")); !strings.Contains(route, `"team":"sales"`) {
		t.Fatalf("first message routed %s, want sales", route)
	}
	// Delivered as the hub records it, not only as the receiver saw it: a
	// stop between the two leaves the delivery pending, and the migrated
	// hub rightly sends it again (at least once).
	lite.waitConnector("hook", "delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 1 })
	if code := lite.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	url := pgtest.URL(t)
	out, errOut, code := lite.wahub("store", "migrate", "--to", url)
	if code != 0 || !strings.Contains(out, "events") {
		t.Fatalf("store migrate: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := lite.wahub("store", "migrate", "--to", url); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("second migrate into the same database: exit %d %s", code, errOut)
	}
	cfg := strings.ReplaceAll(base, "{{DIR}}", lite.dir) + fmt.Sprintf("store: {driver: postgres, url: %q}\n", url)
	if err := os.WriteFile(filepath.Join(lite.dir, "connectors.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	lite.start()
	lite.postText("5511900000009", "wamid.SO.mig.2", "oi de novo", time.Now())
	route := lite.storedRoute(ingest.EventID("m:wamid.SO.mig.2"))
	if !strings.Contains(route, `"team":"sales"`) || !strings.Contains(route, "affinity") {
		t.Fatalf("after the migration the follow-up routed %s, want sales by affinity", route)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(rcv.Received()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := map[string]int{}
	for _, d := range rcv.Received() {
		if d.Event.Message != nil {
			got[d.Event.Message.ID]++
		}
	}
	if got["wamid.SO.mig.1"] != 1 || got["wamid.SO.mig.2"] != 1 {
		t.Fatalf("receipts %v: want each message once (the old one not routed again)", got)
	}
}
