package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
)

// -faults.duration runs the fault-injection suite longer than CI's short
// version: go test ./host/e2e -run Faults -faults.duration=10m
var faultsDuration = flag.Duration("faults.duration", 8*time.Second, "how long the fault-injection test keeps up its load")

// Sustained signed load while the hub and its plugin are SIGKILLed at
// random moments and the receiving endpoint answers 503, 429 or hangs:
// every event the hub acknowledged reaches the endpoint, and every
// message queued through the admin API reaches the fake WhatsApp at most
// once.
func TestFaultsNothingAcknowledgedIsLost(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	var rngMu sync.Mutex
	roll := func(n int) int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(n) }

	rcv := newReceiver(t)
	rcv.SetHandler(func(*http.Request, []byte) webhooktest.Response {
		switch r := roll(100); {
		case r < 15:
			return webhooktest.Response{Status: 503}
		case r < 22:
			return webhooktest.Response{Status: 429, RetryAfter: "0"}
		case r < 24:
			return webhooktest.Response{Hang: true} // the plugin's 200ms timeout ends it
		}
		return webhooktest.Response{Status: 200}
	})
	graphFake, graphURL := newGraph(t)
	cfg := outboundConfig(graphURL, 200) + `
connectors:
  hook:
    plugin: webhook
    config: {url: "` + rcv.URL() + `", secret: ` + receiverSecret + `, timeout: 200ms}
    retry: {max_attempts: 1000, initial_interval: 20ms, max_interval: 200ms}
subscriptions:
  - {connector: hook, events: ["message.received"]}
`
	// A fixed port: the load keeps one address across restarts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg = strings.Replace(cfg, "listen: 127.0.0.1:0", "listen: "+addr, 1)
	base := "http://" + addr
	h := newHub(t, cfg)
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	api := func(cl *http.Client, method, path string, body, out any) int {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := cl.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}

	var (
		mu    sync.Mutex
		acked = map[string]bool{} // wamids the hub answered 200 for
		sent  = map[string]bool{} // idempotency keys answered 202
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 2 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				wamid := fmt.Sprintf("wamid.FAULT.%d.%d", w, i)
				wa := fmt.Sprintf("5511%07d", (w*100000+i)%40)
				body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},"contacts":[{"profile":{"name":"Load"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":"%d","type":"text","text":{"body":"carga %d"}}]}}]}]}`,
					businessNumber, wa, wa, wamid, time.Now().Unix(), i))
				req, _ := http.NewRequest("POST", base+"/webhooks/whatsapp", bytes.NewReader(body))
				req.Header.Set("X-Hub-Signature-256", ingest.Sign([]byte("test-app-secret"), body))
				resp, err := cl.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						acked[wamid] = true
						mu.Unlock()
					}
				} else {
					time.Sleep(20 * time.Millisecond) // the hub is down; Meta would back off too
				}
				if i%10 == 0 {
					key := fmt.Sprintf("reply-%d-%d", w, i)
					var a sendAnswer
					if api(cl, "POST", "/api/v1/messages", map[string]any{"to": wa, "text": "ok " + key, "idempotency_key": key}, &a) == 202 {
						mu.Lock()
						sent[key] = true
						mu.Unlock()
					}
				}
			}
		}()
	}

	deadline := time.Now().Add(*faultsDuration)
	kills := map[string]int{}
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(300+roll(700)) * time.Millisecond)
		if roll(2) == 0 {
			h.kill()
			kills["hub"]++
			h.start()
			continue
		}
		var list struct {
			Connectors []admin.ConnectorStatus `json:"connectors"`
		}
		api(http.DefaultClient, "GET", "/api/v1/connectors", nil, &list)
		for _, c := range list.Connectors {
			if c.Name == "hook" && c.PID > 0 {
				syscall.Kill(c.PID, syscall.SIGKILL)
				kills["plugin"]++
			}
		}
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	// The faults end; the backlog they built drains. A long run builds a
	// long one, so wait for the queue to empty rather than a fixed time.
	rcv.SetHandler(func(*http.Request, []byte) webhooktest.Response { return webhooktest.Response{Status: 200} })
	c := h.waitConnectorFor(10*time.Minute, "hook", "drained", func(c admin.ConnectorStatus) bool {
		return c.State == "running" && c.Pending == 0
	})
	if c.Dead > 0 {
		t.Errorf("%d dead letters", c.Dead)
	}
	// Everything acknowledged reaches the endpoint (duplicates allowed).
	settle := time.Now().Add(30 * time.Second)
	for {
		got := map[string]bool{}
		for _, ev := range rcv.Delivered() {
			if ev.Message != nil {
				got[ev.Message.ID] = true
			}
		}
		missing := 0
		for w := range acked {
			if !got[w] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("%d of %d acknowledged events never reached the endpoint", missing, len(acked))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// No outbound message twice.
	seen := map[string]int{}
	for _, s := range graphFake.Sent() {
		seen[s.Text]++
	}
	for text, n := range seen {
		if n > 1 {
			t.Errorf("%q sent %d times", text, n)
		}
	}
	t.Logf("acknowledged %d events, queued %d messages (%d reached WhatsApp), %d endpoint requests; killed the hub %d times, the plugin %d times",
		len(acked), len(sent), len(seen), len(rcv.Received()), kills["hub"], kills["plugin"])
	if len(acked) == 0 || kills["hub"] == 0 {
		t.Errorf("the test exercised nothing: %d events, %v kills", len(acked), kills)
	}
}
