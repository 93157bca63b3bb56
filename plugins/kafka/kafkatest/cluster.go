// Package kafkatest runs a Kafka cluster in the process (franz-go's kfake,
// a real implementation of the protocol) for the kafka connector's tests,
// the end-to-end tests and the hub's sandbox, and reads back what it holds.
package kafkatest

import (
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is an in-process Kafka cluster listening on loopback.
type Cluster struct {
	*kfake.Cluster
	mu   sync.Mutex
	down bool
}

// Start starts a cluster of one broker on a free loopback port with the
// topics given (3 partitions each) and any further kfake options.
func Start(topics []string, opts ...kfake.Opt) (*Cluster, error) {
	c := &Cluster{}
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(3),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }),
	}
	if len(topics) > 0 {
		base = append(base, kfake.SeedTopics(3, topics...))
	}
	kc, err := kfake.NewCluster(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: start kfake: %w", err)
	}
	c.Cluster = kc
	kc.Control(func(kmsg.Request) (kmsg.Response, error, bool) {
		// Handling a request drops a control function unless it asks to
		// be kept.
		kc.KeepControl()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.down {
			// An error closes the connection without an answer, which is
			// what a client sees of a broker that went away.
			return nil, errDown, true
		}
		return nil, nil, false
	})
	return c, nil
}

var errDown = fmt.Errorf("kafkatest: broker is down")

// Brokers are the addresses to bootstrap from.
func (c *Cluster) Brokers() []string { return c.ListenAddrs() }

// SetDown makes every broker drop every connection's requests (down) or
// serve them again.
func (c *Cluster) SetDown(down bool) {
	c.mu.Lock()
	c.down = down
	c.mu.Unlock()
}

// Record is one record as a consumer reads it.
type Record struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	Value     []byte            `json:"-"`
	Timestamp time.Time         `json:"timestamp"`
}

// Records reads every record of the topics from the start, in partition
// and offset order.
func (c *Cluster) Records(ctx context.Context, topics ...string) ([]Record, error) {
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ends, err := endOffsets(ctx, admin, topics)
	if err != nil {
		return nil, err
	}
	want := map[string]map[int32]kgo.Offset{}
	remaining := 0
	for tp, end := range ends {
		if end == 0 {
			continue
		}
		if want[tp.topic] == nil {
			want[tp.topic] = map[int32]kgo.Offset{}
		}
		want[tp.topic][tp.partition] = kgo.NewOffset().AtStart()
		remaining += int(end)
	}
	if remaining == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...), kgo.ConsumePartitions(want))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []Record
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafkatest: read %d records, %d missing: %w", len(out), remaining, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[tp{r.Topic, r.Partition}] {
				return
			}
			rec := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: r.Value, Timestamp: r.Timestamp, Headers: map[string]string{}}
			for _, h := range r.Headers {
				rec.Headers[h.Key] = string(h.Value)
			}
			out = append(out, rec)
			remaining--
		})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return out, nil
}

type tp struct {
	topic     string
	partition int32
}

// Topics lists the cluster's topics.
func (c *Cluster) Topics(ctx context.Context) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers()...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out = append(out, *t.Topic)
		}
	}
	sort.Strings(out)
	return out, nil
}

// endOffsets is each partition's high watermark.
func endOffsets(ctx context.Context, cl *kgo.Client, topics []string) (map[tp]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		meta.Topics = append(meta.Topics, rt)
	}
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	for _, t := range mresp.Topics {
		if t.Topic == nil || t.ErrorCode != 0 {
			continue
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = *t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp = -1 // latest
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, err
	}
	out := map[tp]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return nil, fmt.Errorf("kafkatest: list offsets %s/%d: error code %d", t.Topic, p.Partition, p.ErrorCode)
			}
			out[tp{t.Topic, p.Partition}] = p.Offset
		}
	}
	return out, nil
}
