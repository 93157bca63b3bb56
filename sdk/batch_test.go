package sdk

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestByConversationKeepsOrderAndBound(t *testing.T) {
	var events []Event
	for i := range 30 {
		events = append(events, Event{ID: fmt.Sprint(i), ConversationID: fmt.Sprint("c", i%5)})
	}
	events = append(events, Event{ID: "account-1"}, Event{ID: "account-2"})
	var mu sync.Mutex
	seen := map[string][]string{}
	var running, peak atomic.Int32
	ByConversation(events, 3, func(idx []int) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer running.Add(-1)
		mu.Lock()
		defer mu.Unlock()
		for _, i := range idx {
			key := events[i].ConversationID
			if key == "" {
				key = events[i].ID
			}
			seen[key] = append(seen[key], events[i].ID)
		}
	})
	if len(seen) != 7 {
		t.Fatalf("%d groups, want 5 conversations and 2 lone events", len(seen))
	}
	for c := range 5 {
		got := seen[fmt.Sprint("c", c)]
		for k, id := range got {
			if id != fmt.Sprint(c+5*k) {
				t.Fatalf("conversation c%d in order %v", c, got)
			}
		}
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("%d conversations at once, want at most 3", p)
	}
}
