package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Clock is a test clock the stores of one test share.
type Clock struct{ ms atomic.Int64 }

// NewClock returns a clock that reads T0.
func NewClock() *Clock {
	c := &Clock{}
	c.ms.Store(T0.UnixMilli())
	return c
}

// Now reads the clock.
func (c *Clock) Now() time.Time { return time.UnixMilli(c.ms.Load()).UTC() }

// Advance moves the clock on.
func (c *Clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// RunCluster runs the tests of what several hubs on one store rely on:
// leases and fencing on every backend, and races between hubs where the
// backend can be shared.
func RunCluster(t *testing.T, b Backend) {
	single := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"LeasesAndFencing", testLeasesAndFencing},
		{"FencedMarkSending", testFencedMarkSending},
		{"Nodes", testNodes},
	}
	for _, tt := range single {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
	shared := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"LeaseRace", testLeaseRace},
		{"AppendRaceOneContact", testAppendRaceOneContact},
		{"DispatchOnceInOrder", testDispatchOnceInOrder},
		{"KVCompareAndSwapRace", testKVCompareAndSwapRace},
		{"OutboxIdempotencyRace", testOutboxIdempotencyRace},
		{"ChangedAcrossHubs", testChangedAcrossHubs},
	}
	for _, tt := range shared {
		t.Run(tt.name, func(t *testing.T) {
			if b.Share == nil {
				t.Skip("one hub owns this backend")
			}
			tt.fn(t, b)
		})
	}
}

func testLeasesAndFencing(t *testing.T, b Backend) {
	clock := NewClock()
	s := b.Open(t, clock.Now)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("e1", "5511", "", "", t0)}); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, func(*sdk.Event, store.RouteState) store.Decision { return store.Decision{Connectors: []string{"c"}} })

	a, err := s.AcquireLeases(ctx, "hubA", []string{"p"}, 10*time.Second, 0)
	if err != nil || len(a) != 1 || a[0].Epoch != 1 {
		t.Fatalf("A acquires: %+v %v", a, err)
	}
	if got, _ := s.AcquireLeases(ctx, "hubB", []string{"p"}, 10*time.Second, 0); len(got) != 0 {
		t.Fatalf("B took a lease A holds: %+v", got)
	}
	// A again keeps its epoch (a renewal, not a change of hands).
	if again, _ := s.AcquireLeases(ctx, "hubA", []string{"p"}, 10*time.Second, 0); len(again) != 1 || again[0].Epoch != 1 {
		t.Fatalf("A re-acquires: %+v", again)
	}
	clock.Advance(11 * time.Second) // A went silent past its lease
	bl, err := s.AcquireLeases(ctx, "hubB", []string{"p"}, 10*time.Second, 0)
	if err != nil || len(bl) != 1 || bl[0].Epoch != 2 {
		t.Fatalf("B takes over the expired lease: %+v %v, want epoch 2", bl, err)
	}
	if kept, _ := s.RenewLeases(ctx, "hubA", a, 10*time.Second); len(kept) != 0 {
		t.Fatalf("A renewed a lease B took: %+v", kept)
	}
	due, err := s.DueIn(ctx, "c", []int{store.Partition(store.ConversationID("pn1", "5511"))}, clock.Now(), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due in the partition: %d %v", len(due), err)
	}
	if other, _ := s.DueIn(ctx, "c", []int{}, clock.Now(), 10); len(other) != 0 {
		t.Fatalf("no partitions held, yet %d due", len(other))
	}
	done := []store.Attempt{{DeliveryID: due[0].ID, At: clock.Now(), Outcome: store.AttemptDelivered, State: store.StateDelivered}}
	// The River #1302 regression: a late owner's outcome changes nothing.
	if err := s.RecordAttempts(ctx, done, a...); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("A records under a lost lease: %v, want ErrLeaseLost", err)
	}
	if c, _ := s.ConnectorCounts(ctx); c["c"].Pending != 1 {
		t.Fatalf("a fenced-out record changed the delivery: %+v", c["c"])
	}
	if err := s.RecordAttempts(ctx, done, bl...); err != nil {
		t.Fatalf("B records: %v", err)
	}
	if c, _ := s.ConnectorCounts(ctx); c["c"].Delivered != 1 {
		t.Fatalf("B's record not stored: %+v", c["c"])
	}
	if err := s.ReleaseLeases(ctx, "hubB", bl); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.AcquireLeases(ctx, "hubC", []string{"p"}, 10*time.Second, 0); len(got) != 1 || got[0].Epoch != 3 {
		t.Fatalf("C after B released: %+v, want it at once with epoch 3", got)
	}
	// limit bounds how many are taken.
	got, _ := s.AcquireLeases(ctx, "hubD", []string{"q1", "q2", "q3"}, time.Second, 2)
	if len(got) != 2 {
		t.Fatalf("limit 2 took %d", len(got))
	}
}

func testFencedMarkSending(t *testing.T, b Backend) {
	clock := NewClock()
	s := b.Open(t, clock.Now)
	ctx := context.Background()
	rec, _, err := s.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511", Text: "oi"})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := s.AcquireLeases(ctx, "hubA", []string{"leader"}, 10*time.Second, 0)
	clock.Advance(11 * time.Second)
	if _, err := s.AcquireLeases(ctx, "hubB", []string{"leader"}, 10*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.MarkSending(ctx, rec.ID, l...); ok || !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale leader marks sending: ok=%v err=%v, want ErrLeaseLost", ok, err)
	}
	if got, _ := s.Outbound(ctx, rec.ID); got.State != store.OutQueued || got.Attempts != 0 {
		t.Fatalf("message after a fenced-out mark: %s, %d attempts", got.State, got.Attempts)
	}
}

func testNodes(t *testing.T, b Backend) {
	clock := NewClock()
	s := b.Open(t, clock.Now)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := s.Heartbeat(ctx, store.Node{ID: id, Addr: "127.0.0.1:1", StartedAt: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	s.AcquireLeases(ctx, "a", []string{"x", "y"}, 10*time.Second, 0)
	clock.Advance(5 * time.Second)
	s.Heartbeat(ctx, store.Node{ID: "a", StartedAt: T0})
	nodes, err := s.Nodes(ctx, clock.Now().Add(-3*time.Second))
	if err != nil || len(nodes) != 1 || nodes[0].ID != "a" || nodes[0].Leases != 2 {
		t.Fatalf("live nodes = %+v (%v), want a with 2 leases (b is silent)", nodes, err)
	}
}

func testLeaseRace(t *testing.T, b Backend) {
	clock := NewClock()
	hubs := b.Share(t, clock.Now, 3)
	ctx := context.Background()
	names := make([]string, 16)
	for i := range names {
		names[i] = "d:c:" + strconv.Itoa(i)
	}
	var mu sync.Mutex
	owner := map[string]string{}
	var wg sync.WaitGroup
	for h, s := range hubs {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("hub%d", h)
				got, err := s.AcquireLeases(ctx, id, names, 10*time.Second, 6)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, l := range got {
					if o, ok := owner[l.Name]; ok && o != id {
						t.Errorf("%s handed to %s and %s", l.Name, o, id)
					}
					owner[l.Name] = id
				}
			}()
		}
	}
	wg.Wait()
	leases, _ := hubs[0].Leases(ctx)
	if len(leases) != 16 {
		t.Fatalf("%d leases held, want all 16", len(leases))
	}
}

func testAppendRaceOneContact(t *testing.T, b Backend) {
	hubs := b.Share(t, func() time.Time { return T0 }, 2)
	ctx := context.Background()
	var wg sync.WaitGroup
	for h, s := range hubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				// One person: hub 0 sees the BSUID with the number, hub 1 the
				// number alone, at the same time.
				user := ""
				if h == 0 {
					user = "BR.1"
				}
				ev := textEvent(fmt.Sprintf("h%d-%d", h, i), "5511", user, "", t0)
				if _, err := s.Append(ctx, []sdk.Event{ev}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	evs, err := hubs[0].Events(ctx, store.EventFilter{Limit: 1000})
	if err != nil || len(evs) != 40 {
		t.Fatalf("%d events (%v), want 40", len(evs), err)
	}
	for _, ev := range evs {
		if ev.ConversationID != evs[0].ConversationID {
			t.Fatalf("one person got two conversations: %s and %s", evs[0].ConversationID, ev.ConversationID)
		}
	}
}

func testDispatchOnceInOrder(t *testing.T, b Backend) {
	hubs := b.Share(t, func() time.Time { return T0 }, 3)
	ctx := context.Background()
	routed, lastSeq := map[string]int{}, map[string]int64{}
	decide := func(ev *sdk.Event, _ store.RouteState) store.Decision {
		// Decide runs in the write transaction; a rolled-back batch is
		// redone, so count what commits, below, not calls.
		return store.Decision{Connectors: []string{"c"}}
	}
	var wg, appenders sync.WaitGroup
	stop := make(chan struct{})
	for h, s := range hubs {
		wg.Add(1)
		appenders.Add(1)
		go func() { // appender: 5 customers, messages in order per customer
			defer appenders.Done()
			for i := 0; i < 30; i++ {
				ev := textEvent(fmt.Sprintf("h%d-%02d", h, i), fmt.Sprintf("55%d%d", h, i%5), "", "", t0)
				if _, err := s.Append(ctx, []sdk.Event{ev}); err != nil {
					t.Error(err)
				}
			}
		}()
		go func() { // dispatcher on every hub
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Dispatch(ctx, 7, decide); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	appenders.Wait()
	dispatchAll(t, hubs[0], decide)
	close(stop)
	wg.Wait()
	due, err := hubs[0].Due(ctx, "c", T0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		routed[d.EventID]++
		if d.Seq <= lastSeq[d.Conversation] {
			t.Errorf("conversation %s: seq %d after %d", d.Conversation, d.Seq, lastSeq[d.Conversation])
		}
		lastSeq[d.Conversation] = d.Seq
	}
	if len(due) != 90 || len(routed) != 90 {
		t.Fatalf("%d deliveries for %d events, want one per event (90)", len(due), len(routed))
	}
}

func testKVCompareAndSwapRace(t *testing.T, b Backend) {
	hubs := b.Share(t, func() time.Time { return T0 }, 3)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, s := range hubs {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				kv := s.KV("conn")
				for i := 0; i < 10; i++ {
					for {
						cur, ok, err := kv.Get(ctx, "n")
						if err != nil {
							t.Error(err)
							return
						}
						n := 0
						if ok {
							n, _ = strconv.Atoi(string(cur))
						}
						var old []byte
						if ok {
							old = cur
						}
						swapped, err := kv.CompareAndSwap(ctx, "n", old, []byte(strconv.Itoa(n+1)))
						if err != nil {
							t.Error(err)
							return
						}
						if swapped {
							break
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	v, _, _ := hubs[0].KV("conn").Get(ctx, "n")
	if !bytes.Equal(v, []byte("120")) {
		t.Fatalf("counter = %s after 120 increments from 3 hubs, want 120", v)
	}
}

func testOutboxIdempotencyRace(t *testing.T, b Backend) {
	hubs := b.Share(t, func() time.Time { return T0 }, 3)
	ctx := context.Background()
	var wg sync.WaitGroup
	var created atomic.Int64
	for _, s := range hubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, c, err := s.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511", Text: "oi", IdempotencyKey: "k1"})
			if err != nil {
				t.Error(err)
			}
			if c {
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("one idempotency key queued %d messages", created.Load())
	}
}

// The backend's Share must not poll (a long poll interval), so that only
// a notification can wake the second hub.
func testChangedAcrossHubs(t *testing.T, b Backend) {
	hubs := b.Share(t, func() time.Time { return T0 }, 2)
	// The first wake-up may be the listener's own (it wakes the hub when it
	// connects); the second can only be the other hub's notification.
	for i := 0; i < 2; i++ {
		ch := hubs[1].Changed()
		if _, err := hubs[0].Append(context.Background(), []sdk.Event{textEvent(fmt.Sprint("x", i), "551", "", "", t0)}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatal("the other hub was not woken by a commit")
		}
	}
}
