// Package cluster shares the work of several hubs on one PostgreSQL store.
//
// Each hub heartbeats a row in nodes and holds leases (store.Lease, with
// an epoch that grows on every change of hands):
//
//   - "d:<connector>:<n>", one per delivery partition: a conversation
//     belongs to one partition, so it is delivered by one hub at a time and
//     in order. Each hub takes about its share (partitions / live hubs) and
//     gives back what is over it, so a hub that joins gets work and one that
//     dies (SIGKILL, or silent past the lease timeout: SIGSTOP, a
//     partition) loses its partitions to the others.
//   - "leader": the hub that runs the periodic jobs (CRM sync, retention)
//     and sends the outbox, so each runs once and the outbound limits (per
//     business number, per recipient) hold across the cluster.
//
// A hub trusts a lease until its local deadline, a renewal interval short
// of the lease's expiry, and every write made under it is fenced in the
// store by (owner, epoch): a hub that stalled and came back can neither
// deliver nor commit what it no longer owns.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/store"
)

// Store is what the cluster needs of the store.
type Store interface {
	Heartbeat(ctx context.Context, n store.Node) error
	Nodes(ctx context.Context, since time.Time) ([]store.Node, error)
	AcquireLeases(ctx context.Context, owner string, names []string, ttl time.Duration, limit int) ([]store.Lease, error)
	RenewLeases(ctx context.Context, owner string, held []store.Lease, ttl time.Duration) ([]store.Lease, error)
	ReleaseLeases(ctx context.Context, owner string, held []store.Lease) error
}

// LeaderLease names the lease of the hub that runs periodic jobs and sends
// the outbox.
const LeaderLease = "leader"

// Options assemble a Cluster.
type Options struct {
	Store Store
	// NodeID names this hub (default: host name, process id and a random
	// suffix, new at every start).
	NodeID string
	// Addr is where this hub listens, for `wahub cluster`.
	Addr string
	// Connectors are the connectors whose partitions are shared.
	Connectors []string
	// LeaseTimeout is how long a silent hub keeps its leases (default
	// 10 s); leases are renewed every third of it.
	LeaseTimeout time.Duration
	Clock        clockwork.Clock
	Logger       *slog.Logger
}

// Cluster is this hub's membership: its heartbeat and leases.
type Cluster struct {
	opt     Options
	renew   time.Duration
	started time.Time

	mu      sync.Mutex
	held    map[string]store.Lease
	until   time.Time // local deadline of every held lease
	changed chan struct{}
	// releasing are partitions over this hub's share: no longer used,
	// and given back one round later, so that a batch in flight under
	// them still commits instead of being delivered twice.
	releasing []store.Lease
}

// New builds a Cluster; Run joins it.
func New(opt Options) *Cluster {
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.LeaseTimeout <= 0 {
		opt.LeaseTimeout = 10 * time.Second
	}
	if opt.NodeID == "" {
		opt.NodeID = DefaultNodeID()
	}
	return &Cluster{opt: opt, renew: opt.LeaseTimeout / 3, started: opt.Clock.Now(),
		held: map[string]store.Lease{}, changed: make(chan struct{})}
}

// DefaultNodeID is host-pid-random: unique per process, readable in logs.
func DefaultNodeID() string {
	host, _ := os.Hostname()
	var b [3]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// SetAddr sets where this hub listens, once it knows.
func (c *Cluster) SetAddr(addr string) {
	c.mu.Lock()
	c.opt.Addr = addr
	c.mu.Unlock()
}

// ID is this hub's node id.
func (c *Cluster) ID() string { return c.opt.NodeID }

// Run heartbeats and keeps this hub's share of leases until ctx ends, then
// gives them back so that the others take over at once.
func (c *Cluster) Run(ctx context.Context) {
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			c.mu.Lock()
			held := c.snapshot()
			c.held = map[string]store.Lease{}
			c.signal()
			c.mu.Unlock()
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.opt.Store.ReleaseLeases(rctx, c.opt.NodeID, held); err != nil {
				c.opt.Logger.Warn("cluster: giving back leases failed; they expire by themselves", "err", err)
			}
			cancel()
			return
		case <-c.opt.Clock.After(c.renew):
		}
	}
}

func (c *Cluster) snapshot() []store.Lease {
	out := make([]store.Lease, 0, len(c.held))
	for _, l := range c.held {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (c *Cluster) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// tick is one round: heartbeat, renew, give back what is over this hub's
// share, take what is free up to it.
func (c *Cluster) tick(ctx context.Context) {
	st, log, ttl := c.opt.Store, c.opt.Logger, c.opt.LeaseTimeout
	start := c.opt.Clock.Now()
	c.mu.Lock()
	addr := c.opt.Addr
	c.mu.Unlock()
	if err := st.Heartbeat(ctx, store.Node{ID: c.opt.NodeID, Addr: addr, StartedAt: c.started}); err != nil {
		if ctx.Err() == nil {
			log.Error("cluster: heartbeat failed; leases lapse unless it recovers", "err", err)
		}
		c.expireLocal(start)
		return
	}
	nodes, err := st.Nodes(ctx, start.Add(-ttl))
	if err != nil {
		c.expireLocal(start)
		return
	}
	live := max(len(nodes), 1)
	index := 0
	for i, n := range nodes {
		if n.ID == c.opt.NodeID {
			index = i
		}
	}
	c.mu.Lock()
	held := c.snapshot()
	c.mu.Unlock()
	kept, err := st.RenewLeases(ctx, c.opt.NodeID, held, ttl)
	if err != nil {
		c.expireLocal(start)
		return
	}
	if len(kept) < len(held) {
		log.Warn("cluster: leases were lost (this hub was too slow to renew them); another hub does that work now", "lost", len(held)-len(kept))
	}
	mine := map[string]store.Lease{}
	for _, l := range kept {
		mine[l.Name] = l
	}
	share := (store.Partitions + live - 1) / live
	var surplus []store.Lease
	for _, conn := range c.opt.Connectors {
		var have []string
		for p := 0; p < store.Partitions; p++ {
			if _, ok := mine[partName(conn, p)]; ok {
				have = append(have, partName(conn, p))
			}
		}
		for len(have) > share {
			name := have[len(have)-1]
			have = have[:len(have)-1]
			surplus = append(surplus, mine[name])
			delete(mine, name)
		}
		if len(have) < share {
			// Start looking at a place of its own, so that hubs do not
			// all contend for partition 0.
			var want []string
			for i := 0; i < store.Partitions; i++ {
				name := partName(conn, (index*share+i)%store.Partitions)
				if _, ok := mine[name]; !ok {
					want = append(want, name)
				}
			}
			got, err := st.AcquireLeases(ctx, c.opt.NodeID, want, ttl, share-len(have))
			if err != nil {
				continue
			}
			for _, l := range got {
				mine[l.Name] = l
			}
		}
	}
	if _, ok := mine[LeaderLease]; !ok {
		if got, err := st.AcquireLeases(ctx, c.opt.NodeID, []string{LeaderLease}, ttl, 1); err == nil {
			for _, l := range got {
				log.Info("cluster: this hub is now the leader (periodic jobs, outbox)", "node", c.opt.NodeID, "epoch", l.Epoch)
				mine[l.Name] = l
			}
		}
	}
	if len(c.releasing) > 0 {
		if err := st.ReleaseLeases(ctx, c.opt.NodeID, c.releasing); err != nil {
			log.Warn("cluster: giving back partitions failed; they expire by themselves", "err", err)
		}
	}
	c.releasing = surplus
	c.mu.Lock()
	same := len(mine) == len(c.held)
	for name, l := range mine {
		if old, ok := c.held[name]; !ok || old.Epoch != l.Epoch {
			same = false
		}
	}
	c.held = mine
	// A late round (a loaded machine, a slow database) let the trust
	// window lapse: Parts answered nothing meanwhile, and the workers
	// that asked wait on Changed. Renewing the same leases must wake
	// them, or they wait for the next change of hands, which may never
	// come.
	lapsed := !c.opt.Clock.Now().Before(c.until)
	// Trust the leases one renewal short of their expiry, counted from
	// before the renewal was asked for.
	c.until = start.Add(ttl - c.renew)
	if !same || lapsed {
		c.signal()
	}
	c.mu.Unlock()
}

// expireLocal stops trusting leases that could not be renewed in time.
func (c *Cluster) expireLocal(start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) > 0 && !start.Before(c.until) {
		c.held = map[string]store.Lease{}
		c.signal()
	}
}

func partName(connector string, p int) string { return "d:" + connector + ":" + strconv.Itoa(p) }

// Parts implements delivery.Cluster.
func (c *Cluster) Parts(connector string) ([]int, []store.Lease, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opt.Clock.Now().Before(c.until) {
		return nil, nil, time.Time{}
	}
	var parts []int
	var fence []store.Lease
	for p := 0; p < store.Partitions; p++ {
		if l, ok := c.held[partName(connector, p)]; ok {
			parts = append(parts, p)
			fence = append(fence, l)
		}
	}
	return parts, fence, c.until
}

// Leader returns the leader lease when this hub holds it, with the local
// deadline until which it may act on it.
func (c *Cluster) Leader() (store.Lease, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.held[LeaderLease]
	if !ok || !c.opt.Clock.Now().Before(c.until) {
		return store.Lease{}, time.Time{}, false
	}
	return l, c.until, true
}

// Held is how many leases this hub holds and trusts now.
func (c *Cluster) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.opt.Clock.Now().Before(c.until) {
		return 0
	}
	return len(c.held)
}

// IsLeader reports whether this hub runs the periodic jobs now.
func (c *Cluster) IsLeader() bool {
	_, _, ok := c.Leader()
	return ok
}

// Changed is closed when this hub's leases change.
func (c *Cluster) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}
