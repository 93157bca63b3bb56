package e2e

import (
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
)

const businessNumber = "106540352242922"

func newGraph(t *testing.T, opts ...graphtest.Option) (*graphtest.Server, string) {
	fake := graphtest.NewServer(append([]graphtest.Option{graphtest.WithAccessToken("graph-token"),
		graphtest.WithPhoneNumber(businessNumber, "15550783881")}, opts...)...)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	return fake, srv.URL + "/v23.0"
}

func outboundConfig(graphURL string, mps int) string {
	return fmt.Sprintf(`
server: {listen: 127.0.0.1:0, admin_token: test-admin-token}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: %s
  messages_per_second: %d
  blocked_country_codes: ["53"]
teams: {support: {connectors: []}}
routes: [{name: default, team: support}]
`, graphURL, mps)
}

type sendAnswer struct {
	ID        string `json:"id"`
	State     string `json:"state"`
	Duplicate bool   `json:"duplicate"`
	Error     struct{ Code, Message string }
}

func (h *hubProc) send(body map[string]any) (int, sendAnswer) {
	h.t.Helper()
	var a sendAnswer
	code := h.api("POST", "/api/v1/messages", body, &a)
	return code, a
}

func (h *hubProc) waitMessage(id, what string, cond func(store.OutboundRecord) bool) store.OutboundRecord {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rec store.OutboundRecord
		h.api("GET", "/api/v1/messages/"+id, nil, &rec)
		if cond(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("message %s: %s not reached within 30s: %+v", id, what, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOutboundPolicyIdempotencyAndErrors(t *testing.T) {
	fake, url := newGraph(t)
	h := newHub(t, outboundConfig(url, 80))
	// Ana writes now: her window is open.
	h.postText("5511987650001", "wamid.E2E.out.in", "oi", time.Now())
	waitContact := func() {
		deadline := time.Now().Add(10 * time.Second)
		for h.api("GET", "/api/v1/contacts/5511987650001", nil, nil) != 200 {
			if time.Now().After(deadline) {
				t.Fatal("contact never stored")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitContact()

	refusals := []struct {
		name string
		body map[string]any
		code string
	}{
		{"never wrote: text outside the window", map[string]any{"to": "5511900000099", "phone_number_id": businessNumber, "text": "oi"}, "outside_window"},
		{"blocked country", map[string]any{"to": "5351234567", "phone_number_id": businessNumber, "template": map[string]any{"name": "hello", "language": "es"}}, "blocked_country"},
		{"unknown business number", map[string]any{"to": "5511987650001", "phone_number_id": "999", "text": "oi"}, "unknown_business_number"},
	}
	for _, tt := range refusals {
		code, a := h.send(tt.body)
		if code != 422 || a.Error.Code != tt.code {
			t.Errorf("%s: %d %+v, want 422 %s", tt.name, code, a.Error, tt.code)
		}
	}

	// The same key twice: one message, one send.
	body := map[string]any{"to": "5511987650001", "text": "Sua fatura", "idempotency_key": "inv-1"}
	code, first := h.send(body)
	if code != 202 || first.ID == "" {
		t.Fatalf("send: %d %+v", code, first)
	}
	code, second := h.send(body)
	if code != 202 || second.ID != first.ID || !second.Duplicate {
		t.Fatalf("second send: %d %+v, want the same id", code, second)
	}
	h.waitMessage(first.ID, "accepted", func(r store.OutboundRecord) bool { return r.WAMID != "" })

	// Throttled once, then sent once.
	fake.FailNext(1, graph.ErrThroughput)
	_, a := h.send(map[string]any{"to": "5511987650001", "text": "throttled"})
	rec := h.waitMessage(a.ID, "accepted after a 130429", func(r store.OutboundRecord) bool { return r.State == store.OutAccepted })
	if len(rec.History) < 3 || rec.History[1].ErrorCode != "130429" {
		t.Errorf("history %+v, want queued, retry 130429, accepted", rec.History)
	}

	// Undeliverable: failed at once, never retried.
	fake.FailNext(1, graph.ErrUndeliverable)
	_, a = h.send(map[string]any{"to": "5511987650001", "text": "to nowhere"})
	rec = h.waitMessage(a.ID, "failed", func(r store.OutboundRecord) bool { return r.State == store.OutFailed })
	if rec.ErrorCode != "131026" {
		t.Errorf("failed with %q, want 131026", rec.ErrorCode)
	}
	counts := map[string]int{}
	for _, s := range fake.Sent() {
		counts[s.Text]++
	}
	if counts["Sua fatura"] != 1 || counts["throttled"] != 1 || counts["to nowhere"] != 0 {
		t.Errorf("fake accepted %v", counts)
	}
	requests := 0
	for _, r := range fake.Requests() {
		if strings.Contains(string(r.Body), "to nowhere") {
			requests++
		}
	}
	if requests != 1 {
		t.Errorf("131026 message requested %d times, want 1", requests)
	}

	// Statuses out of order: read, then a late delivered.
	wamid := h.waitMessage(first.ID, "wamid", func(r store.OutboundRecord) bool { return r.WAMID != "" }).WAMID
	for _, st := range []string{"read", "delivered"} {
		b := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},"statuses":[{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"5511987650001"}]}}]}]}`,
			businessNumber, wamid, st, time.Now().Unix()))
		h.postRaw(b)
	}
	h.waitMessage(first.ID, "read", func(r store.OutboundRecord) bool { return r.State == store.OutRead && len(r.History) >= 4 })
	rec = h.waitMessage(first.ID, "read", func(r store.OutboundRecord) bool { return r.State == store.OutRead })
	if rec.State != store.OutRead {
		t.Errorf("late delivered downgraded read: %s", rec.State)
	}
}

// SIGKILL while 500 messages are queued: after the restart every message
// reaches the fake once; none twice.
func TestOutboundSurvivesSIGKILL(t *testing.T) {
	fake, url := newGraph(t)
	h := newHub(t, outboundConfig(url, 100))
	h.postText("5511987650001", "wamid.E2E.crash.in", "oi", time.Now())
	const n = 500
	ids := make([]string, n)
	for i := range n {
		code, a := h.send(map[string]any{"to": fmt.Sprintf("55119%08d", i), "phone_number_id": businessNumber,
			"template": map[string]any{"name": "promo", "language": "pt_BR"}, "idempotency_key": fmt.Sprint("crash-", i)})
		if code != 202 {
			t.Fatalf("send %d: %d %+v", i, code, a.Error)
		}
		ids[i] = a.ID
	}
	deadline := time.Now().Add(30 * time.Second)
	for fake.SentCount() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d sent", fake.SentCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.kill()
	killedAt := fake.SentCount()
	h.start()

	unknown := 0
	for _, id := range ids {
		rec := h.waitMessage(id, "settled", func(r store.OutboundRecord) bool {
			return r.State == store.OutAccepted || r.State == store.OutUnknown || r.State == store.OutFailed
		})
		if rec.State == store.OutUnknown {
			unknown++
		}
		if rec.State == store.OutFailed {
			t.Errorf("message %s failed: %s", id, rec.Error)
		}
	}
	per := map[string]int{}
	for _, s := range fake.Sent() {
		per[s.WAID]++
	}
	var twice []string
	for wa, c := range per {
		if c > 1 {
			twice = append(twice, wa)
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Errorf("%d recipients got their message twice, e.g. %v", len(twice), twice[:min(5, len(twice))])
	}
	// A message the hub was sending at the kill is unknown: it reached
	// the fake (Meta had it) or, in a window of microseconds, not.
	if len(per) < n-unknown || len(per) > n {
		t.Errorf("%d of %d recipients reached (%d unknown)", len(per), n, unknown)
	}
	if len(per) != n {
		t.Logf("%d recipients not reached: killed between marking and sending", n-len(per))
	}
	t.Logf("killed after %d sends; %d unknown after restart; %d reached", killedAt, unknown, len(per))
}
