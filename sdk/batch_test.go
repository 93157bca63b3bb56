package sdk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

func TestDeliverInOrder(t *testing.T) {
	ev := func(id, conv string) Event { return Event{ID: id, ConversationID: conv} }
	cases := []struct {
		name    string
		events  []Event
		answers map[string]Result // by event id; absent: delivered
		want    map[string]Result // expected outcome, NotAttempted and RetryAfter
		called  []string          // events deliver must see (any order across conversations)
	}{
		{
			name:   "all delivered",
			events: []Event{ev("a1", "a"), ev("a2", "a"), ev("b1", "b")},
			want: map[string]Result{
				"a1": {Outcome: Delivered}, "a2": {Outcome: Delivered}, "b1": {Outcome: Delivered},
			},
			called: []string{"a1", "a2", "b1"},
		},
		{
			name:    "skipped lets the conversation go on",
			events:  []Event{ev("a1", "a"), ev("a2", "a")},
			answers: map[string]Result{"a1": SkippedResult("a1", "not for us")},
			want:    map[string]Result{"a1": {Outcome: Skipped}, "a2": {Outcome: Delivered}},
			called:  []string{"a1", "a2"},
		},
		{
			name:    "retry holds the rest of its conversation with its wait, not others",
			events:  []Event{ev("a1", "a"), ev("a2", "a"), ev("a3", "a"), ev("b1", "b")},
			answers: map[string]Result{"a1": RetryResult("a1", 7*time.Second, errors.New("429"))},
			want: map[string]Result{
				"a1": {Outcome: Retry, RetryAfter: 7 * time.Second},
				"a2": {Outcome: Retry, RetryAfter: 7 * time.Second, NotAttempted: true},
				"a3": {Outcome: Retry, RetryAfter: 7 * time.Second, NotAttempted: true},
				"b1": {Outcome: Delivered},
			},
			called: []string{"a1", "b1"},
		},
		{
			name:    "failed holds the rest with the hub's backoff",
			events:  []Event{ev("a1", "a"), ev("a2", "a"), ev("a3", "a")},
			answers: map[string]Result{"a2": FailedResult("a2", errors.New("422"))},
			want: map[string]Result{
				"a1": {Outcome: Delivered},
				"a2": {Outcome: Failed},
				"a3": {Outcome: Retry, NotAttempted: true},
			},
			called: []string{"a1", "a2"},
		},
		{
			name:    "a held answer from deliver is passed on as it is",
			events:  []Event{ev("a1", "a"), ev("a2", "a")},
			answers: map[string]Result{"a1": HeldResult("a1", 3*time.Second, "paused")},
			want: map[string]Result{
				"a1": {Outcome: Retry, RetryAfter: 3 * time.Second, NotAttempted: true, Error: "paused"},
				"a2": {Outcome: Retry, RetryAfter: 3 * time.Second, NotAttempted: true, Error: "paused"},
			},
			called: []string{"a1"},
		},
		{
			name:    "events without a conversation do not hold each other",
			events:  []Event{ev("x", ""), ev("y", "")},
			answers: map[string]Result{"x": FailedResult("x", errors.New("no"))},
			want:    map[string]Result{"x": {Outcome: Failed}, "y": {Outcome: Delivered}},
			called:  []string{"x", "y"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var called []string
			got := DeliverInOrder(context.Background(), tc.events, 2, func(_ context.Context, ev *Event) Result {
				mu.Lock()
				called = append(called, ev.ID)
				mu.Unlock()
				if r, ok := tc.answers[ev.ID]; ok {
					return r
				}
				return DeliveredResult(ev.ID)
			})
			if len(got) != len(tc.events) {
				t.Fatalf("%d results for %d events", len(got), len(tc.events))
			}
			for i, r := range got {
				id := tc.events[i].ID
				w := tc.want[id]
				if r.EventID != id || r.Outcome != w.Outcome || r.RetryAfter != w.RetryAfter || r.NotAttempted != w.NotAttempted {
					t.Errorf("%s: got %+v, want %+v", id, r, w)
				}
				if w.Error != "" && r.Error != w.Error {
					t.Errorf("%s: error %q, want %q", id, r.Error, w.Error)
				}
			}
			slices.Sort(called)
			want := slices.Clone(tc.called)
			slices.Sort(want)
			if !slices.Equal(called, want) {
				t.Errorf("deliver saw %v, want %v", called, want)
			}
		})
	}
}

func TestDeliverInOrderStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	events := []Event{{ID: "a1", ConversationID: "a"}, {ID: "a2", ConversationID: "a"}}
	got := DeliverInOrder(ctx, events, 1, func(_ context.Context, ev *Event) Result {
		cancel() // the hub gives up during the first event
		return DeliveredResult(ev.ID)
	})
	if got[0].Outcome != Delivered || got[1].Outcome != Retry || got[1].NotAttempted {
		t.Errorf("results %+v: want the first delivered, the second retried as an attempt the hub ended", got)
	}
}
