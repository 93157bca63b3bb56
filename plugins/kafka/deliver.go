package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wahub/wahub/plugins/internal/stream"
	"github.com/wahub/wahub/sdk"
)

// Deliver produces every event of the batch and answers once the brokers
// have answered for each record: a result is Delivered only for a record
// every in-sync replica has.
func (st *state) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	outcomes := make([]stream.Outcome, len(events))
	flights := make([]*flight, len(events))
	pctx, cancel := context.WithTimeout(ctx, st.deliveryTimeout)
	defer cancel()
	for i := range events {
		ev := &events[i]
		st.mu.Lock()
		f := st.inflight[ev.ID]
		st.mu.Unlock()
		if f != nil {
			// Still in the producer from a batch that ended before the
			// broker answered (it was down): wait for that record rather
			// than write the event a second time.
			flights[i] = f
			continue
		}
		rec, err := st.record(ev)
		if err != nil {
			outcomes[i] = stream.Outcome{Err: err}
			continue
		}
		f = &flight{done: make(chan struct{})}
		st.mu.Lock()
		st.inflight[ev.ID] = f
		st.mu.Unlock()
		flights[i] = f
		id := ev.ID
		// Produce keeps the order of calls within a partition, and a
		// conversation is one partition: its events are written in the
		// batch's order, which is the log's.
		st.client.Produce(pctx, rec, func(_ *kgo.Record, err error) {
			st.mu.Lock()
			defer st.mu.Unlock()
			f.err = err
			// A record stored after its batch was answered "not
			// delivered" stays known until the hub sends the event
			// again, which is then answered without a second write.
			if err != nil || !f.abandoned {
				delete(st.inflight, id)
			}
			close(f.done)
		})
	}
	// The batch is complete: send it now rather than after the linger,
	// in as few requests as there are partitions. Flush fails only when
	// pctx ends, which the loop below answers record by record.
	_ = st.client.Flush(pctx)
	for i, f := range flights {
		if f == nil {
			continue
		}
		select {
		case <-f.done:
		case <-pctx.Done():
			// The delivery timeout passed, or the hub gave up on the
			// batch. A record already in a request whose answer was lost
			// cannot be failed without breaking the idempotent sequence,
			// so franz-go keeps it until the broker is back; the hub
			// hears "not delivered" and sends it again, and then this
			// process waits for (or reports) the same record instead of
			// writing a second one.
		}
		st.mu.Lock()
		select {
		case <-f.done:
			outcomes[i] = stream.Outcome{Err: f.err}
			if st.inflight[events[i].ID] == f {
				delete(st.inflight, events[i].ID)
			}
		default:
			f.abandoned = true
			outcomes[i] = stream.Outcome{Pending: true}
		}
		st.mu.Unlock()
	}
	return stream.Results(events, outcomes, st.classify)
}

// flight is one record the producer has not answered for yet, or that
// it stored after its batch had been answered.
type flight struct {
	done chan struct{}
	// err and abandoned are guarded by state.mu; err is set before done
	// closes.
	err error
	// abandoned: its batch was answered before the producer answered for
	// it.
	abandoned bool
}

// record builds ev's Kafka record.
func (st *state) record(ev *sdk.Event) (*kgo.Record, error) {
	body, headers, err := st.enc.Encode(ev)
	if err != nil {
		return nil, err
	}
	rec := &kgo.Record{Topic: st.topic.Expand(ev), Value: body, Headers: make([]kgo.RecordHeader, len(headers))}
	for i, h := range headers {
		rec.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)}
	}
	// The conversation is the key: one customer, one partition. An
	// account-level event (no conversation) has no key and goes to
	// whichever partition the sticky partitioner fills.
	if ev.ConversationID != "" {
		rec.Key = []byte(ev.ConversationID)
	}
	// The record's timestamp stays the produce time: franz-go measures
	// the delivery timeout from it, and occurred_at is in the body (and
	// in ce_time).
	return rec, nil
}

// classify decides what an error of one record means for its event.
func (st *state) classify(ev *sdk.Event, err error) sdk.Result {
	topic := st.topic.Expand(ev)
	if reason, fatal := fatalReason(err, topic); fatal {
		return sdk.FailedResult(ev.ID, errors.New(reason))
	}
	return sdk.RetryResult(ev.ID, 0, fmt.Errorf("kafka: topic %s: %w", topic, err))
}

// fatalReason tells the errors no retry can fix, with what to do about
// them. Everything else (a broker down, a leader election, a timeout,
// too few in-sync replicas) is retried by the hub.
func fatalReason(err error, topic string) (string, bool) {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Sprintf("kafka: topic %s does not exist: create it (or set allow_auto_topic_creation if the cluster allows it), then replay the dead letters", topic), true
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return fmt.Sprintf("kafka: not authorised to write to topic %s: grant the connector's principal WRITE and DESCRIBE on it, then replay the dead letters", topic), true
	case errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return fmt.Sprintf("kafka: not authorised for idempotent writes (%v): grant the principal IDEMPOTENT_WRITE on the cluster, then replay the dead letters", err), true
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Sprintf("kafka: SASL authentication failed (%v): fix connectors.*.config.sasl, then replay the dead letters", err), true
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return fmt.Sprintf("kafka: topic %s: the event is larger than the broker accepts (max.message.bytes): %v", topic, err), true
	case errors.Is(err, kerr.InvalidTopicException):
		return fmt.Sprintf("kafka: %q is not a valid topic: fix config.topic", topic), true
	case errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.PolicyViolation):
		return fmt.Sprintf("kafka: topic %s: the broker refused the record: %v", topic, err), true
	}
	// Any other broker error, including ones Kafka calls non-retriable
	// but franz-go recovers from (an out-of-order sequence, a fenced
	// producer epoch), is retried: a dead letter must mean a person has
	// something to fix.
	return "", false
}
