package sdk

import "sync"

// ByConversation runs fn for each conversation of a batch, at most
// concurrency conversations at a time, passing the indexes of that
// conversation's events in batch order — which the hub guarantees is log
// order within a conversation. An event without a conversation (an
// account-level webhook field) goes alone. It returns when every fn has.
//
// A connector's Deliver uses it to write conversations in parallel while
// keeping each one in order: fn delivers its events one by one and, once
// one is not delivered, answers the rest with HeldResult.
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
