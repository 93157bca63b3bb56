package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
)

const receiverSecret = "receiver-secret"

// webhookConfig routes every event to one webhook connector posting to
// url, with retries fast enough for a test that runs on real time.
func webhookConfig(url string) string {
	return testConfig + `
connectors:
  hook:
    plugin: webhook
    config:
      url: ` + url + `
      secret: ` + receiverSecret + `
      timeout: 5s
    retry: {max_attempts: 6, initial_interval: 50ms, max_interval: 200ms}
subscriptions:
  - connector: hook
    events: ["*"]
`
}

func newReceiver(t *testing.T) *webhooktest.Receiver {
	r := webhooktest.NewReceiver([]byte(receiverSecret))
	t.Cleanup(r.Close)
	return r
}

func TestWebhookRetriesUntilDeliveredWithValidSignature(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Script(webhooktest.Response{Status: 503}, webhooktest.Response{Status: 503}, webhooktest.Response{Status: 503})
	h := newHub(t, webhookConfig(rcv.URL()))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	if out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("text.json")); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	h.waitConnector("hook", "delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 1 })
	got := rcv.Received()
	if len(got) != 4 {
		t.Fatalf("receiver got %d requests, want 3 refused and 1 accepted", len(got))
	}
	for _, d := range got {
		if !d.Valid {
			t.Errorf("attempt %d: signature invalid: %s", d.Attempt, d.Error)
		}
		if d.ID != got[0].ID {
			t.Errorf("attempt %d has webhook-id %s, want the same id every time (%s)", d.Attempt, d.ID, got[0].ID)
		}
	}
	if ev := got[3].Event; ev.Type != "message.received" || ev.Message == nil || ev.Seq == 0 || ev.ConversationID == "" {
		t.Errorf("delivered event %+v lacks the contract's fields", ev)
	}
}

func TestWebhookPermanentFailureIsDeadLetterAndReplays(t *testing.T) {
	rcv := newReceiver(t)
	rcv.SetHandler(func(*http.Request, []byte) webhooktest.Response {
		return webhooktest.Response{Status: 400, Body: `{"error":"unknown field"}`}
	})
	h := newHub(t, webhookConfig(rcv.URL()))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	h.wahub("simulate", "--url", h.url(""), fixture("text.json"))
	h.waitConnector("hook", "dead letter", func(c admin.ConnectorStatus) bool { return c.Dead == 1 })
	out, errOut, code := h.wahub("deadletters", "list", "--url", h.url(""))
	if code != 0 || !strings.Contains(out, "400") {
		t.Fatalf("deadletters list: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(rcv.Received()); n != 1 {
		t.Fatalf("a 400 was retried: %d requests", n)
	}
	rcv.SetHandler(nil)
	rcv.Script() // fixed: 200 from now on
	out, errOut, code = h.wahub("deadletters", "replay", "--url", h.url(""), "--connector", "hook")
	if code != 0 || !strings.Contains(out, "replayed 1") {
		t.Fatalf("deadletters replay: exit %d\n%s%s", code, out, errOut)
	}
	h.waitConnector("hook", "delivered after replay", func(c admin.ConnectorStatus) bool { return c.Delivered == 1 && c.Dead == 0 })
}

func TestWebhookRetryAfterIsHonoured(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Script(webhooktest.Response{Status: 429, RetryAfter: "2"})
	h := newHub(t, webhookConfig(rcv.URL()))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	h.wahub("simulate", "--url", h.url(""), fixture("text.json"))
	h.waitConnector("hook", "delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 1 })
	got := rcv.Received()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	// The retry schedule alone would have retried after at most 200ms.
	if gap := got[1].At.Sub(got[0].At); gap < 2*time.Second {
		t.Fatalf("retried %s after a 429 with Retry-After: 2", gap)
	}
}

func TestPluginKilledMidBatchIsRestartedAndRedelivers(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Script(webhooktest.Response{Hang: true})
	h := newHub(t, webhookConfig(rcv.URL()))
	first := h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	h.wahub("simulate", "--url", h.url(""), fixture("batch_mixed.json"))
	// The receiver holds the first request: the plugin is mid-batch.
	deadline := time.Now().Add(30 * time.Second)
	for len(rcv.Received()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no request reached the receiver")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c := h.waitConnector("hook", "all 4 delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 4 })
	if c.Restarts < 1 || c.PID == first.PID {
		t.Fatalf("status %+v: want a restarted plugin with a new pid", c)
	}
	ids := map[string]bool{}
	for _, ev := range rcv.Delivered() {
		ids[ev.ID] = true
	}
	if len(ids) != 4 {
		t.Fatalf("receiver accepted %d distinct events, want 4", len(ids))
	}
}

func TestOrderPerConversationWhileAnotherFails(t *testing.T) {
	rcv := newReceiver(t)
	rcv.SetHandler(func(_ *http.Request, body []byte) webhooktest.Response {
		if strings.Contains(string(body), `"wa_id":"5599000000000"`) {
			return webhooktest.Response{Status: 503}
		}
		return webhooktest.Response{}
	})
	cfg := strings.Replace(webhookConfig(rcv.URL()), "max_attempts: 6", "max_attempts: 1000", 1)
	h := newHub(t, cfg)
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	// One body with the failing customer's messages first, then 200 of
	// another customer's.
	var msgs []string
	for i := 0; i < 5; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"from":"5599000000000","id":"wamid.BAD.%d","timestamp":"1764001000","type":"text","text":{"body":"bad %d"}}`, i, i))
	}
	for i := 0; i < 200; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"from":"5511000000001","id":"wamid.GOOD.%03d","timestamp":"1764001000","type":"text","text":{"body":"good %d"}}`, i, i))
	}
	body := `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"messages":[` +
		strings.Join(msgs, ",") + `]}}]}]}`
	path := filepath.Join(h.dir, "order.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	h.wahub("simulate", "--url", h.url(""), path)
	h.waitConnector("hook", "200 delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 200 })
	var last int64
	n := 0
	for _, ev := range rcv.Delivered() {
		if ev.Contact == nil || ev.Contact.WAID != "5511000000001" {
			t.Fatalf("delivered an event of the failing conversation: %+v", ev.Contact)
		}
		if ev.Seq <= last {
			t.Fatalf("event seq %d after %d: out of order", ev.Seq, last)
		}
		last = ev.Seq
		n++
	}
	if n != 200 {
		t.Fatalf("%d delivered, want 200", n)
	}
	// The failing conversation only ever sent its first message.
	for _, d := range rcv.Received() {
		if strings.Contains(string(d.Body), "wamid.BAD.") && !strings.Contains(string(d.Body), "wamid.BAD.0") {
			t.Fatalf("a later message of the failing conversation was sent before its first was delivered")
		}
	}
}
