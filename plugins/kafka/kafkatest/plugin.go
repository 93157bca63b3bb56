package kafkatest

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahub/wahub/plugins/kafka"
	"github.com/wahub/wahub/plugins/registry"
)

// Placeholder is the broker `wahub check` validates a sandbox
// configuration with: the in-process cluster runs only while the hub
// serves, and the connector's check does not fail on a cluster it cannot
// reach.
const Placeholder = "127.0.0.1:9092"

// shown is how many of each topic's newest records GET /sandbox shows.
const shown = 20

// Plugin declares the kafka connector to the hub (package builtin lists
// it). Its sandbox is an in-process Kafka cluster, started when a
// connector with no brokers set first needs it, creating topics as they
// are first written to.
var Plugin = registry.Plugin{Name: kafka.Name, New: kafka.New, Sandbox: &registry.Sandbox{
	Fake: func() registry.Fake {
		f := &sandboxFake{}
		return registry.Fake{Snapshot: f.snapshot, Fill: f.fill, Close: f.close}
	},
	Fill: func(c registry.Config, _ string) { c.Default("brokers", []string{Placeholder}) },
}}

type sandboxFake struct {
	mu  sync.Mutex
	c   *Cluster
	err error
}

func (f *sandboxFake) fill(c registry.Config) {
	if !unset(c["brokers"]) {
		return
	}
	f.mu.Lock()
	if f.c == nil && f.err == nil {
		f.c, f.err = Start(nil, kfake.AllowAutoTopicCreation())
	}
	cl := f.c
	f.mu.Unlock()
	if cl == nil {
		return // the snapshot says why
	}
	c["brokers"] = cl.Brokers()
	if !c.Has("allow_auto_topic_creation") {
		c["allow_auto_topic_creation"] = true
	}
}

func (f *sandboxFake) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.c != nil {
		f.c.Close()
	}
}

// sandboxRecord is one record as GET /sandbox shows it.
type sandboxRecord struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key,omitempty"`
	Headers   map[string]string `json:"headers"`
	Value     string            `json:"value"`
}

func (f *sandboxFake) snapshot() any {
	f.mu.Lock()
	cl, err := f.c, f.err
	f.mu.Unlock()
	switch {
	case err != nil:
		return map[string]any{"error": err.Error()}
	case cl == nil:
		return map[string]any{"running": false}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := map[string]any{"brokers": cl.Brokers()}
	topics, err := cl.Topics(ctx)
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	byTopic := map[string]any{}
	for _, t := range topics {
		recs, err := cl.Records(ctx, t)
		if err != nil {
			byTopic[t] = map[string]any{"error": err.Error()}
			continue
		}
		newest := recs[max(0, len(recs)-shown):]
		list := make([]sandboxRecord, len(newest))
		for i, r := range newest {
			list[i] = sandboxRecord{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Headers: r.Headers, Value: string(r.Value)}
		}
		byTopic[t] = map[string]any{"records": len(recs), "newest": list}
	}
	out["topics"] = byTopic
	return out
}

func unset(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case []string:
		return len(v) == 0
	}
	return false
}
