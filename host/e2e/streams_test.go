package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/plugins/kafka/kafkatest"
	"github.com/wahub/wahub/plugins/nats/natstest"
	"github.com/wahub/wahub/sdk"
)

// The brokers run in the test process, on loopback; the hub's plugin
// processes connect to them as they would to real ones.
type brokers struct {
	kafka *kafkatest.Cluster
	nats  *natstest.Server
}

func startBrokers(t *testing.T) brokers {
	t.Helper()
	kc, err := kafkatest.Start([]string{"wahub.events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	ns, err := natstest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	if err := ns.AddStream(context.Background(), "WAHUB", 0, "wahub.>"); err != nil {
		t.Fatal(err)
	}
	return brokers{kc, ns}
}

// streamsConfig has a kafka, a nats and a webhook connector take every
// message, on a fixed address so that a load survives hub restarts.
func streamsConfig(t *testing.T, b brokers, hookURL string) (cfg, base string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg = strings.Replace(testConfig, "listen: 127.0.0.1:0", "listen: "+addr, 1) + `
connectors:
  kafka:
    plugin: kafka
    config: {brokers: "` + strings.Join(b.kafka.Brokers(), ",") + `", topic: wahub.events, delivery_timeout: 2s}
    retry: {max_attempts: 1000, initial_interval: 20ms, max_interval: 200ms}
  nats:
    plugin: nats
    config: {url: "` + b.nats.URL() + `", subject: "wahub.{type}", format: cloudevents, delivery_timeout: 2s}
    retry: {max_attempts: 1000, initial_interval: 20ms, max_interval: 200ms}
  hook:
    plugin: webhook
    config: {url: "` + hookURL + `", secret: ` + receiverSecret + `, timeout: 5s}
    retry: {max_attempts: 1000, initial_interval: 20ms, max_interval: 200ms}
subscriptions:
  - {connector: kafka, events: ["message.received"]}
  - {connector: nats, events: ["message.received"]}
  - {connector: hook, events: ["message.received"]}
`
	return cfg, "http://" + addr
}

// streamLoad posts signed one-message webhooks, conversation i%convs, and
// re-posts each until the hub answers 200 (it may be down meanwhile).
type streamLoad struct {
	base  string
	convs int
	mu    sync.Mutex
	acked []string // wamids, in the order acknowledged
}

func (l *streamLoad) post(t *testing.T, i int) {
	wa := fmt.Sprintf("5511%07d", i%l.convs)
	wamid := fmt.Sprintf("wamid.STREAM.%05d", i)
	body := []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":%q},"contacts":[{"profile":{"name":"Load"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":"%d","type":"text","text":{"body":"evento %d"}}]}}]}]}`,
		businessNumber, wa, wa, wamid, time.Now().Unix(), i))
	cl := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("POST", l.base+"/webhooks/whatsapp", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", ingest.Sign([]byte("test-app-secret"), body))
		resp, err := cl.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				l.mu.Lock()
				l.acked = append(l.acked, wamid)
				l.mu.Unlock()
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // the hub is restarting; Meta backs off too
	}
	t.Errorf("%s never acknowledged", wamid)
}

// streamEvent is one event as a stream holds it, with where.
type streamEvent struct {
	ev    sdk.Event
	where string // partition or subject
}

func kafkaEvents(t *testing.T, kc *kafkatest.Cluster) []streamEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := kc.Records(ctx, "wahub.events")
	if err != nil {
		t.Fatal(err)
	}
	out := make([]streamEvent, len(recs))
	for i, r := range recs {
		if err := json.Unmarshal(r.Value, &out[i].ev); err != nil {
			t.Fatal(err)
		}
		if r.Key != out[i].ev.ConversationID || r.Headers["wahub-event-id"] != out[i].ev.ID {
			t.Fatalf("record key %q headers %v for event %s of %s", r.Key, r.Headers, out[i].ev.ID, out[i].ev.ConversationID)
		}
		out[i].where = fmt.Sprint("partition ", r.Partition)
	}
	return out
}

func natsEvents(t *testing.T, ns *natstest.Server) []streamEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	msgs, err := ns.Messages(ctx, "WAHUB", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]streamEvent, len(msgs))
	for i, m := range msgs {
		if err := json.Unmarshal(m.Data, &out[i].ev); err != nil {
			t.Fatal(err)
		}
		if m.Headers["Nats-Msg-Id"] != out[i].ev.ID || m.Headers["ce-id"] != out[i].ev.ID || m.Headers["ce-type"] != "message.received" {
			t.Fatalf("message headers %v for event %s", m.Headers, out[i].ev.ID)
		}
		out[i].where = m.Subject
	}
	return out
}

// verifyStream checks that every acknowledged message is in the stream,
// each conversation in one place in log order (first copies; a later copy
// is a duplicate), and returns the number of duplicates.
func verifyStream(t *testing.T, name string, got []streamEvent, acked []string) int {
	t.Helper()
	seen := map[string]bool{}
	where := map[string]string{}
	last := map[string]int64{}
	dups := 0
	for _, g := range got {
		ev := g.ev
		if seen[ev.ID] {
			dups++
			continue
		}
		seen[ev.ID] = true
		if w, ok := where[ev.ConversationID]; ok && w != g.where {
			t.Errorf("%s: conversation %s in %s and %s", name, ev.ConversationID, w, g.where)
		}
		where[ev.ConversationID] = g.where
		if ev.Seq <= last[ev.ConversationID] {
			t.Errorf("%s: conversation %s: seq %d after %d", name, ev.ConversationID, ev.Seq, last[ev.ConversationID])
		}
		last[ev.ConversationID] = ev.Seq
	}
	wamids := map[string]bool{}
	for _, g := range got {
		if g.ev.Message != nil {
			wamids[g.ev.Message.ID] = true
		}
	}
	missing := 0
	for _, w := range acked {
		if !wamids[w] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%s: %d of %d acknowledged events are not in the stream", name, missing, len(acked))
	}
	return dups
}

func (h *hubProc) killPlugin(name string) int {
	h.t.Helper()
	c := h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" && c.PID > 0 })
	if err := syscall.Kill(c.PID, syscall.SIGKILL); err != nil {
		h.t.Fatal(err)
	}
	return c.PID
}

// 2,000 events of 40 conversations into Kafka and NATS while both plugins
// and then the hub are SIGKILLed mid-stream: every acknowledged event is
// in both streams, each conversation in one partition / subject in log
// order; NATS holds no duplicate, Kafka only the in-flight batches'.
func TestStreamsKafkaAndNATSSurviveKills(t *testing.T) {
	b := startBrokers(t)
	rcv := newReceiver(t)
	cfg, base := streamsConfig(t, b, rcv.URL())
	h := newHub(t, cfg)
	for _, name := range []string{"kafka", "nats", "hook"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	const total, convs = 2000, 40
	load := &streamLoad{base: base, convs: convs}
	post := func(from, to int) {
		// One poster per conversation group keeps each conversation's
		// messages in order, as Meta sends them.
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := from; i < to; i++ {
					if i%4 == w {
						load.post(t, i)
					}
				}
			})
		}
		wg.Wait()
	}
	post(0, 600)
	// The plugins die mid-stream, with batches in flight.
	h.waitConnector("kafka", "some delivered", func(c admin.ConnectorStatus) bool { return c.Delivered > 100 })
	killedKafka, killedNATS := h.killPlugin("kafka"), h.killPlugin("nats")
	post(600, 1300)
	// Then the hub, while the load goes on.
	h.waitConnector("nats", "more delivered", func(c admin.ConnectorStatus) bool { return c.Delivered > 700 })
	done := make(chan struct{})
	go func() { post(1300, total); close(done) }()
	h.kill()
	h.start()
	<-done
	for _, name := range []string{"kafka", "nats", "hook"} {
		h.waitConnectorFor(3*time.Minute, name, "drained", func(c admin.ConnectorStatus) bool {
			return c.State == "running" && c.Pending == 0 && c.Retrying == 0
		})
	}
	if c := h.connectors()["kafka"]; c.PID == killedKafka {
		t.Fatalf("kafka plugin was not restarted: %+v", c)
	}
	if c := h.connectors()["nats"]; c.PID == killedNATS {
		t.Fatalf("nats plugin was not restarted: %+v", c)
	}
	load.mu.Lock()
	acked := load.acked
	load.mu.Unlock()
	if len(acked) != total {
		t.Fatalf("%d of %d posts acknowledged", len(acked), total)
	}
	kafkaDups := verifyStream(t, "kafka", kafkaEvents(t, b.kafka), acked)
	natsDups := verifyStream(t, "nats", natsEvents(t, b.nats), acked)
	if natsDups != 0 {
		t.Errorf("nats: %d duplicates; the Nats-Msg-Id window must drop every redelivery", natsDups)
	}
	// Two kills (the plugin, the hub) can each lose the answer to at most
	// the batch in flight (batch_size 100).
	if kafkaDups > 2*100 {
		t.Errorf("kafka: %d duplicates, more than the two in-flight batches", kafkaDups)
	}
	t.Logf("kafka: %d duplicates of %d events after a plugin and a hub SIGKILL; nats: %d", kafkaDups, total, natsDups)
}

// Both brokers go away: the webhook connector keeps delivering, the stream
// connectors wait, and when the brokers come back everything arrives once
// (NATS) or in order (Kafka). The outage lasts as long as it takes the
// hub to try and fail, not a wall-clock minute.
func TestStreamsBrokerOutageDelaysOnlyItsConnector(t *testing.T) {
	b := startBrokers(t)
	rcv := newReceiver(t)
	cfg, base := streamsConfig(t, b, rcv.URL())
	h := newHub(t, cfg)
	for _, name := range []string{"kafka", "nats", "hook"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	load := &streamLoad{base: base, convs: 10}
	for i := range 20 {
		load.post(t, i)
	}
	for _, name := range []string{"kafka", "nats"} {
		h.waitConnector(name, "first 20", func(c admin.ConnectorStatus) bool { return c.Delivered == 20 })
	}
	b.kafka.SetDown(true)
	b.nats.Stop()
	for i := 20; i < 220; i++ {
		load.post(t, i)
	}
	// The webhook is not held up by the brokers...
	h.waitConnector("hook", "all 220", func(c admin.ConnectorStatus) bool { return c.Delivered == 220 })
	// ...while the stream connectors have tried and wait to retry.
	for _, name := range []string{"kafka", "nats"} {
		c := h.waitConnector(name, "a failed attempt", func(c admin.ConnectorStatus) bool { return c.Retrying > 0 })
		if c.Delivered != 20 || c.Dead != 0 {
			t.Fatalf("%s during the outage: %+v", name, c)
		}
	}
	b.kafka.SetDown(false)
	if err := b.nats.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kafka", "nats"} {
		c := h.waitConnectorFor(3*time.Minute, name, "all 220 after the outage", func(c admin.ConnectorStatus) bool { return c.Delivered == 220 && c.Pending == 0 })
		if c.Dead != 0 {
			t.Fatalf("%s: %d dead letters", name, c.Dead)
		}
	}
	load.mu.Lock()
	acked := load.acked
	load.mu.Unlock()
	kafkaDups := verifyStream(t, "kafka", kafkaEvents(t, b.kafka), acked)
	if natsDups := verifyStream(t, "nats", natsEvents(t, b.nats), acked); natsDups != 0 {
		t.Errorf("nats: %d duplicates", natsDups)
	}
	if kafkaDups != 0 {
		t.Errorf("kafka: %d duplicates: a retry of a record still in the producer wrote it again", kafkaDups)
	}
}
