package cluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/store"
)

// Two hubs on one store (one Store value stands for the shared database;
// the leases live in it): each takes its share, a joining hub gets work,
// and a hub that goes silent loses everything to the other after the
// lease timeout, while its own view stops trusting what it held.
func TestShareJoinAndTakeOver(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	st, err := store.Open(filepath.Join(t.TempDir(), "w.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	newHub := func(id string) *Cluster {
		return New(Options{Store: st, NodeID: id, Connectors: []string{"a", "b"}, LeaseTimeout: 9 * time.Second, Clock: clock})
	}
	parts := func(c *Cluster) (a, b int) {
		pa, _, _ := c.Parts("a")
		pb, _, _ := c.Parts("b")
		return len(pa), len(pb)
	}
	one := newHub("one")
	one.tick(ctx)
	if a, b := parts(one); a != store.Partitions || b != store.Partitions || !one.IsLeader() {
		t.Fatalf("alone: %d/%d partitions, leader %v; want all and the lead", a, b, one.IsLeader())
	}

	two := newHub("two")
	for i := 0; i < 3; i++ {
		clock.Advance(3 * time.Second)
		one.tick(ctx)
		two.tick(ctx)
	}
	a1, b1 := parts(one)
	a2, b2 := parts(two)
	if a1+a2 != store.Partitions || b1+b2 != store.Partitions || a2 < 7 || b2 < 7 {
		t.Fatalf("after a join: one %d/%d, two %d/%d; want the partitions split about evenly, none twice", a1, b1, a2, b2)
	}
	if one.IsLeader() == two.IsLeader() {
		t.Fatalf("leaders: one %v, two %v; want exactly one", one.IsLeader(), two.IsLeader())
	}
	_, fenceBefore, _ := one.Parts("a")

	// one goes silent (SIGSTOP): two keeps ticking past the lease timeout.
	for i := 0; i < 4; i++ {
		clock.Advance(3 * time.Second)
		two.tick(ctx)
	}
	if a, b := parts(two); a != store.Partitions || b != store.Partitions || !two.IsLeader() {
		t.Fatalf("after one went silent: two has %d/%d partitions, leader %v; want everything", a, b, two.IsLeader())
	}
	if a, b := parts(one); a != 0 || b != 0 || one.IsLeader() {
		t.Fatalf("the silent hub still trusts %d/%d partitions (leader %v)", a, b, one.IsLeader())
	}
	// What it did under its old leases is refused.
	if err := st.RecordAttempts(ctx, []store.Attempt{{DeliveryID: 1, State: store.StateDelivered}}, fenceBefore...); err == nil {
		t.Fatal("a write under the silent hub's old leases was accepted")
	}
	// Back, it takes its share again.
	for i := 0; i < 3; i++ {
		clock.Advance(3 * time.Second)
		one.tick(ctx)
		two.tick(ctx)
	}
	if a, _ := parts(one); a < 7 {
		t.Fatalf("the hub that came back has %d partitions of a", a)
	}
}

// A round that comes late lets the hub's trust in its leases lapse, so a
// worker asking meanwhile gets no partitions and waits on Changed; the
// late round renews the very same leases and must wake it, or it waits
// until some lease changes hands (what CI saw: a conversation stuck for
// minutes on a loaded machine after two SIGKILLs).
func TestLateRenewalWakesWorkers(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	st, err := store.Open(filepath.Join(t.TempDir(), "w.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	c := New(Options{Store: st, NodeID: "one", Connectors: []string{"a"}, LeaseTimeout: 9 * time.Second, Clock: clock})
	c.tick(ctx)
	for _, tc := range []struct {
		name    string
		advance time.Duration
		wake    bool
	}{
		{name: "on time: nothing changed, nobody woken", advance: 3 * time.Second, wake: false},
		{name: "late: the window lapsed, the same leases wake the workers", advance: 7 * time.Second, wake: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.Advance(tc.advance)
			changed := c.Changed()
			parts, _, _ := c.Parts("a")
			if lapsed := len(parts) == 0; lapsed != tc.wake {
				t.Fatalf("before the round: %d partitions trusted", len(parts))
			}
			c.tick(ctx)
			woken := false
			select {
			case <-changed:
				woken = true
			default:
			}
			if woken != tc.wake {
				t.Fatalf("woken %v, want %v", woken, tc.wake)
			}
			if parts, _, _ := c.Parts("a"); len(parts) != store.Partitions {
				t.Fatalf("after the round: %d partitions, want all %d", len(parts), store.Partitions)
			}
		})
	}
}
