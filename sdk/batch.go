package sdk

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ByConversation runs fn for each conversation of a batch, at most
// concurrency conversations at a time, passing the indexes of that
// conversation's events in batch order — which the hub guarantees is log
// order within a conversation. An event without a conversation (an
// account-level webhook field) goes alone. It returns when every fn has.
//
// Most connectors want DeliverInOrder, which is built on it.
func ByConversation(events []Event, concurrency int, fn func(idx []int)) {
	var convs [][]int
	at := map[string]int{}
	for i, ev := range events {
		if ev.ConversationID == "" {
			convs = append(convs, []int{i})
			continue
		}
		j, ok := at[ev.ConversationID]
		if !ok {
			j = len(convs)
			at[ev.ConversationID] = j
			convs = append(convs, nil)
		}
		convs[j] = append(convs[j], i)
	}
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(max(concurrency, 1), len(convs)) {
		wg.Go(func() {
			for idx := range work {
				fn(idx)
			}
		})
	}
	for _, idx := range convs {
		work <- idx
	}
	close(work)
	wg.Wait()
}

// DeliverInOrder is the Deliver of a connector whose external system must
// see each conversation in order (a ticket's comments, a Slack thread, a
// CRM timeline): it runs one at a time through one conversation's events,
// up to concurrency conversations at once, and returns one Result per
// event, in the order of events.
//
// The rule: an event that is Delivered or Skipped lets the next one of its
// conversation go — a Skipped event asks nothing of the external system,
// so nothing written later can overtake it. Once an event is answered
// Retry or Failed, the rest of its conversation in the batch is held
// (HeldResult, not counted as an attempt) with the same wait as the event
// that blocks it: sending them sooner would only find it still pending.
// When deliver itself answers a held result (NotAttempted: a connector
// pausing the whole batch after a rate limit), the rest get that same
// answer. Once ctx ends the remaining events are answered Retry without
// calling deliver: the hub gave up on the batch and sends it again.
func DeliverInOrder(ctx context.Context, events []Event, concurrency int, deliver func(ctx context.Context, ev *Event) Result) []Result {
	results := make([]Result, len(events))
	ByConversation(events, concurrency, func(idx []int) {
		for k, i := range idx {
			ev := &events[i]
			if ctx.Err() != nil {
				results[i] = RetryResult(ev.ID, 0, errCancelled)
				continue
			}
			res := deliver(ctx, ev)
			if res.EventID == "" {
				res.EventID = ev.ID
			}
			results[i] = res
			if res.Outcome == Delivered || res.Outcome == Skipped {
				continue
			}
			reason := res.Error
			var after time.Duration
			if res.Outcome == Retry {
				after = res.RetryAfter
			}
			if !res.NotAttempted {
				reason = fmt.Sprintf("not sent, to keep the conversation in order: the earlier event %s was not delivered (%s)", ev.ID, res.Outcome)
			}
			for _, j := range idx[k+1:] {
				results[j] = HeldResult(events[j].ID, after, reason)
			}
			return
		}
	})
	return results
}

var errCancelled = fmt.Errorf("not sent: the delivery was cancelled")
