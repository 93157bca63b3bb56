package kafka_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahub/wahub/plugins/internal/stream/streamtest"
	"github.com/wahub/wahub/plugins/kafka"
	"github.com/wahub/wahub/plugins/kafka/kafkatest"
	"github.com/wahub/wahub/sdk"
)

func startCluster(t *testing.T, topics []string, opts ...kfake.Opt) *kafkatest.Cluster {
	t.Helper()
	c, err := kafkatest.Start(topics, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func records(t *testing.T, c *kafkatest.Cluster, topics ...string) []kafkatest.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := c.Records(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestConfigErrors(t *testing.T) {
	streamtest.ConfigErrors(t, kafka.New, []streamtest.ConfigError{
		{Name: "no brokers", Config: map[string]any{"topic": "t"}, Want: "config.brokers: required"},
		{Name: "scheme in broker", Config: map[string]any{"brokers": []string{"kafka://h:9092"}, "topic": "t"}, Want: "config.brokers[0]"},
		{Name: "brokers not a list", Config: map[string]any{"brokers": 9092, "topic": "t"}, Want: "config"},
		{Name: "no topic", Config: map[string]any{"brokers": []string{"h:9092"}}, Want: "config.topic: required"},
		{Name: "bad topic char", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "a b"}, Want: "config.topic"},
		{Name: "unknown placeholder", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "wahub.{kind}"}, Want: "unknown placeholder {kind}"},
		{Name: "bad format", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "format": "avro"}, Want: "config.format"},
		{Name: "bad timeout", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "delivery_timeout": "soon"}, Want: "config.delivery_timeout"},
		{Name: "timeout under 1s", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "delivery_timeout": "300ms"}, Want: "at least 1s"},
		{Name: "bad compression", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "compression": "brotli"}, Want: "config.compression"},
		{Name: "sasl mechanism", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "sasl": map[string]any{"mechanism": "GSSAPI", "username": "u", "password": "p"}}, Want: "config.sasl.mechanism"},
		{Name: "sasl no password", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "sasl": map[string]any{"mechanism": "PLAIN", "username": "u"}}, Want: "config.sasl.password"},
		{Name: "tls ca missing", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "tls": map[string]any{"ca_file": "/nonexistent/ca.pem"}}, Want: "config.tls.ca_file"},
		{Name: "tls half pair", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "tls": map[string]any{"cert_file": "c.pem"}}, Want: "set both"},
		{Name: "unknown key", Config: map[string]any{"brokers": []string{"h:9092"}, "topic": "t", "partitioner": "rr"}, Want: "config.partitioner: unknown key"},
	})
}

// 2,000 events of 40 conversations in batches of 100: every event is one
// record keyed by its conversation, each conversation in one partition in
// log order, with the event id and type in headers.
func TestDeliverKeepsEachConversationInOnePartitionInOrder(t *testing.T) {
	cl := startCluster(t, []string{"wahub.events"})
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "wahub.events"})
	evs := streamtest.Events(2000, 40, sdk.TypeMessageReceived)
	for i := 0; i < len(evs); i += 100 {
		res := c.Deliver(context.Background(), evs[i:i+100])
		if o := streamtest.Outcomes(res); o[sdk.Delivered] != 100 {
			t.Fatalf("batch %d: %v: %+v", i/100, o, res[0])
		}
	}
	recs := records(t, cl, "wahub.events")
	if len(recs) != 2000 {
		t.Fatalf("%d records, want 2000", len(recs))
	}
	partOf := map[string]int32{}
	lastSeq := map[string]int64{}
	parts := map[int32]bool{}
	for _, r := range recs {
		var ev sdk.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if r.Key != ev.ConversationID || r.Headers["wahub-event-id"] != ev.ID || r.Headers["wahub-event-type"] != string(ev.Type) || r.Headers["content-type"] != "application/json" {
			t.Fatalf("record key %q headers %v for event %s/%s", r.Key, r.Headers, ev.ConversationID, ev.ID)
		}
		if p, ok := partOf[r.Key]; ok && p != r.Partition {
			t.Fatalf("conversation %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		partOf[r.Key] = r.Partition
		parts[r.Partition] = true
		if ev.Seq <= lastSeq[r.Key] {
			t.Fatalf("conversation %s: seq %d after %d", r.Key, ev.Seq, lastSeq[r.Key])
		}
		lastSeq[r.Key] = ev.Seq
	}
	if len(parts) < 2 {
		t.Fatalf("40 conversations all in one partition: the key does not spread them")
	}
}

func TestCloudEventsBinaryMode(t *testing.T) {
	cl := startCluster(t, []string{"ce"})
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "ce", "format": "cloudevents", "source": "/wahub/acme"})
	evs := streamtest.Events(1, 1, sdk.TypeButtonClicked)
	if o := streamtest.Outcomes(c.Deliver(context.Background(), evs)); o[sdk.Delivered] != 1 {
		t.Fatal(o)
	}
	r := records(t, cl, "ce")[0]
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": evs[0].ID, "ce_type": "button.clicked", "ce_source": "/wahub/acme",
		"ce_time": "2026-11-24T12:00:00Z", "ce_subject": "conv_00", "content-type": "application/json",
	}
	for k, v := range want {
		if r.Headers[k] != v {
			t.Errorf("header %s = %q, want %q (all: %v)", k, r.Headers[k], v, r.Headers)
		}
	}
	var ev sdk.Event
	if err := json.Unmarshal(r.Value, &ev); err != nil || ev.ID != evs[0].ID {
		t.Fatalf("data is not the event JSON: %v %s", err, r.Value)
	}
}

// A topic per type: the types whose topic exists are delivered; the one
// whose topic is missing becomes a dead letter saying so, and wahub check
// says it beforehand.
func TestTopicTemplateMissingTopicIsDeadLetterAndCheckSaysSo(t *testing.T) {
	names := []string{"wahub.message.received", "wahub.button.clicked", "wahub.message.sent", "wahub.status.sent",
		"wahub.status.delivered", "wahub.status.read", "wahub.status.failed", "wahub.optin.granted",
		"wahub.optin.revoked", "wahub.contact.changed"} // no wahub.status.played
	cl := startCluster(t, names)
	cfg := map[string]any{"brokers": cl.Brokers(), "topic": "wahub.{type}", "delivery_timeout": "20s"}
	_, err := streamtest.Configure(t, kafka.New, cfg, true)
	if err == nil || !strings.Contains(err.Error(), "topic wahub.status.played does not exist") {
		t.Fatalf("check: %v, want it to name the missing topic", err)
	}
	c := streamtest.MustConfigure(t, kafka.New, cfg)
	evs := append(streamtest.Events(3, 3, sdk.TypeMessageReceived), streamtest.Events(1, 1, sdk.TypeStatusPlayed)...)
	evs[3].ID, evs[3].ConversationID = "evt_played", "conv_09"
	res := c.Deliver(context.Background(), evs)
	for _, r := range res[:3] {
		if r.Outcome != sdk.Delivered {
			t.Fatalf("%+v", r)
		}
	}
	if r := res[3]; r.Outcome != sdk.Failed || !strings.Contains(r.Error, "topic wahub.status.played does not exist") {
		t.Fatalf("event to the missing topic: %+v, want a dead letter naming the topic", r)
	}
	if got := len(records(t, cl, "wahub.message.received")); got != 3 {
		t.Fatalf("%d records, want 3", got)
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			cl := startCluster(t, []string{"secure"}, kfake.EnableSASL(), kfake.Superuser(mech, "wahub", "s3cret"))
			good := map[string]any{"brokers": cl.Brokers(), "topic": "secure", "sasl": map[string]any{"mechanism": mech, "username": "wahub", "password": "s3cret"}}
			if _, err := streamtest.Configure(t, kafka.New, good, true); err != nil {
				t.Fatalf("check with the right password: %v", err)
			}
			c := streamtest.MustConfigure(t, kafka.New, good)
			if o := streamtest.Outcomes(c.Deliver(context.Background(), streamtest.Events(5, 2, sdk.TypeMessageReceived))); o[sdk.Delivered] != 5 {
				t.Fatal(o)
			}
			bad := map[string]any{"brokers": cl.Brokers(), "topic": "secure", "sasl": map[string]any{"mechanism": mech, "username": "wahub", "password": "wrong"}}
			if _, err := streamtest.Configure(t, kafka.New, bad, true); err == nil || !strings.Contains(err.Error(), "config.sasl") {
				t.Fatalf("check with a wrong password: %v, want an error naming config.sasl", err)
			}
		})
	}
}

func TestNotAuthorisedIsDeadLetter(t *testing.T) {
	cl := startCluster(t, []string{"private"}, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "admin"),
		kfake.EnableACLs(), kfake.User("PLAIN", "intruder", "pw"))
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "private", "delivery_timeout": "20s",
		"sasl": map[string]any{"mechanism": "PLAIN", "username": "intruder", "password": "pw"}})
	res := c.Deliver(context.Background(), streamtest.Events(2, 1, sdk.TypeMessageReceived))
	if res[0].Outcome != sdk.Failed || !strings.Contains(res[0].Error, "not authorised") {
		t.Fatalf("%+v, want a dead letter saying the connector is not authorised", res[0])
	}
	if res[1].Outcome == sdk.Delivered {
		t.Fatalf("%+v", res[1])
	}
}

// A cluster that is down makes the batch retry — held behind each
// conversation's first event — and the same events go through once it is
// back, each once.
func TestBrokerDownRetriesAndDeliversWhenBack(t *testing.T) {
	cl := startCluster(t, []string{"t"})
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "t", "delivery_timeout": "1s"})
	evs := streamtest.Events(20, 4, sdk.TypeMessageReceived)
	streamtest.MustDeliver(t, c, evs[:4])
	cl.SetDown(true)
	streamtest.WantHeld(t, c.Deliver(context.Background(), evs[4:]), 4, 12)
	cl.SetDown(false)
	// As the hub does: send again what was not delivered, in order,
	// until the producer has reconnected.
	streamtest.Redeliver(t, c, evs[4:], 30)
	// Every event is stored once, each conversation's in order. A record
	// whose request was lost when the broker went away stays in the
	// producer until the broker is back; the hub's retry of it waits for
	// that record instead of writing another.
	seen := map[string]int{}
	last := map[string]int64{}
	dups := 0
	for _, r := range records(t, cl, "t") {
		var ev sdk.Event
		json.Unmarshal(r.Value, &ev)
		seen[ev.ID]++
		if seen[ev.ID] > 1 {
			dups++
			continue
		}
		if ev.Seq < last[ev.ConversationID] {
			t.Errorf("conversation %s: seq %d first stored after %d", ev.ConversationID, ev.Seq, last[ev.ConversationID])
		}
		last[ev.ConversationID] = ev.Seq
	}
	for _, ev := range evs {
		if seen[ev.ID] == 0 {
			t.Errorf("%s never stored", ev.ID)
		}
	}
	if dups > 0 {
		t.Errorf("%d duplicates: a retried event still in the producer was written again", dups)
	}
}

func TestHealth(t *testing.T) {
	cl := startCluster(t, []string{"t"})
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "t"})
	if err := c.(sdk.HealthChecker).Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	c = streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "absent"})
	if err := c.(sdk.HealthChecker).Health(context.Background()); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("health with a missing topic: %v", err)
	}
}

// A record the broker stores only after its batch was answered "not
// delivered" (the broker came back a moment too late) is not written a
// second time when the hub sends the event again.
func TestLateAckIsNotWrittenTwice(t *testing.T) {
	cl := startCluster(t, []string{"t"})
	c := streamtest.MustConfigure(t, kafka.New, map[string]any{"brokers": cl.Brokers(), "topic": "t", "delivery_timeout": "1s"})
	evs := streamtest.Events(8, 2, sdk.TypeMessageReceived)
	if o := streamtest.Outcomes(c.Deliver(context.Background(), evs[:2])); o[sdk.Delivered] != 2 {
		t.Fatal(o)
	}
	cl.SetDown(true)
	if o := streamtest.Outcomes(c.Deliver(context.Background(), evs[2:])); o[sdk.Delivered] != 0 {
		t.Fatalf("with the broker down: %v", o)
	}
	cl.SetDown(false)
	// The producer still holds the records and stores them on its own.
	for attempt := 0; len(records(t, cl, "t")) < 8; attempt++ {
		if attempt > 600 {
			t.Fatal("the producer never stored the records it kept")
		}
		time.Sleep(50 * time.Millisecond) // the producer reconnects on its own schedule
	}
	if o := streamtest.Outcomes(c.Deliver(context.Background(), evs[2:])); o[sdk.Delivered] != 6 {
		t.Fatalf("redelivery: %v", o)
	}
	if n := len(records(t, cl, "t")); n != 8 {
		t.Fatalf("%d records, want 8: a redelivered event was written again", n)
	}
}
