package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Partitions is how many delivery partitions each connector's queue has.
// A conversation belongs to one (Partition), and a hub delivers only the
// partitions whose lease it holds, so a conversation is delivered by one
// hub at a time and in order, while the partitions spread the work.
const Partitions = 16

// Partition is the delivery partition of a conversation (or, for an event
// without one, of its id).
func Partition(conversation string) int {
	h := fnv.New32a()
	h.Write([]byte(conversation))
	return int(h.Sum32() % Partitions)
}

// ErrLeaseLost is returned by a fenced write whose lease another hub took
// (or that expired): the write is not made.
var ErrLeaseLost = errors.New("store: lease lost: another hub owns this work now")

// Lease is the right of one hub (Owner) to do one piece of shared work
// until Expires. Epoch grows each time the lease changes hands; a write
// fenced by a lease commits only if the lease still has that owner and
// epoch and has not expired.
type Lease struct {
	Name    string    `json:"name"`
	Owner   string    `json:"owner"`
	Epoch   int64     `json:"epoch"`
	Expires time.Time `json:"expires_at"`
}

// AcquireLeases takes, of names in order, those that are free, expired or
// already owner's, up to limit (0: no limit), for ttl, and returns the
// leases owner holds among names afterwards. A lease owner already held
// keeps its epoch; one taken over gets the next.
func (s *Store) AcquireLeases(ctx context.Context, owner string, names []string, ttl time.Duration, limit int) ([]Lease, error) {
	var out []Lease
	err := s.write(ctx, func(tx *txn) error {
		out = out[:0]
		now := s.now()
		exp := now.Add(ttl).UnixMilli()
		taken := 0
		for _, name := range names {
			if limit > 0 && taken >= limit {
				break
			}
			var cur string
			var epoch, expires int64
			err := tx.QueryRow(`SELECT owner, epoch, expires_at FROM leases WHERE name = ?`, name).Scan(&cur, &epoch, &expires)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				epoch = 1
				if _, err := tx.Exec(`INSERT INTO leases (name, owner, epoch, expires_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
					name, owner, epoch, exp, now.UnixMilli()); err != nil {
					return err
				}
			case err != nil:
				return err
			case cur == owner && expires >= now.UnixMilli():
				if _, err := tx.Exec(`UPDATE leases SET expires_at = ?, updated_at = ? WHERE name = ?`, exp, now.UnixMilli(), name); err != nil {
					return err
				}
			case expires < now.UnixMilli():
				epoch++
				if _, err := tx.Exec(`UPDATE leases SET owner = ?, epoch = ?, expires_at = ?, updated_at = ? WHERE name = ?`,
					owner, epoch, exp, now.UnixMilli(), name); err != nil {
					return err
				}
			default:
				continue // another hub's
			}
			taken++
			out = append(out, Lease{Name: name, Owner: owner, Epoch: epoch, Expires: time.UnixMilli(exp).UTC()})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: acquire leases: %w", err)
	}
	return out, nil
}

// RenewLeases extends, for ttl, those of held that owner still holds at
// the same epoch, and returns them; the others were lost.
func (s *Store) RenewLeases(ctx context.Context, owner string, held []Lease, ttl time.Duration) ([]Lease, error) {
	var out []Lease
	err := s.write(ctx, func(tx *txn) error {
		out = out[:0]
		now := s.now()
		exp := now.Add(ttl).UnixMilli()
		for _, l := range held {
			res, err := tx.Exec(`UPDATE leases SET expires_at = ?, updated_at = ? WHERE name = ? AND owner = ? AND epoch = ? AND expires_at >= ?`,
				exp, now.UnixMilli(), l.Name, owner, l.Epoch, now.UnixMilli())
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				l.Expires = time.UnixMilli(exp).UTC()
				out = append(out, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: renew leases: %w", err)
	}
	return out, nil
}

// ReleaseLeases gives up leases (expiring them now), so that another hub
// can take them at once.
func (s *Store) ReleaseLeases(ctx context.Context, owner string, held []Lease) error {
	if len(held) == 0 {
		return nil
	}
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		for _, l := range held {
			if _, err := tx.Exec(`UPDATE leases SET expires_at = ?, updated_at = ? WHERE name = ? AND owner = ? AND epoch = ?`,
				now-1, now, l.Name, owner, l.Epoch); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkFence fails with ErrLeaseLost unless every lease of fence still
// has its owner and epoch and has not expired. It runs in the write
// transaction of the fenced write.
func (s *Store) checkFence(tx *txn, fence []Lease) error {
	now := s.now().UnixMilli()
	for _, l := range fence {
		var owner string
		var epoch, expires int64
		err := tx.QueryRow(`SELECT owner, epoch, expires_at FROM leases WHERE name = ?`, l.Name).Scan(&owner, &epoch, &expires)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (owner != l.Owner || epoch != l.Epoch || expires < now)) {
			return fmt.Errorf("%w (%s)", ErrLeaseLost, l.Name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Leases lists every lease that has not expired.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT name, owner, epoch, expires_at FROM leases WHERE expires_at >= ? ORDER BY name`, s.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: leases: %w", err)
	}
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var exp int64
		if err := rows.Scan(&l.Name, &l.Owner, &l.Epoch, &exp); err != nil {
			return nil, err
		}
		l.Expires = time.UnixMilli(exp).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// Node is one hub sharing the store.
type Node struct {
	ID        string    `json:"id"`
	Addr      string    `json:"addr"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen"`
	// Leases is how many leases the hub holds.
	Leases int `json:"leases"`
}

// Heartbeat records that a hub is alive.
func (s *Store) Heartbeat(ctx context.Context, n Node) error {
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`INSERT INTO nodes (id, addr, started_at, last_seen) VALUES (?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, last_seen = excluded.last_seen`,
			n.ID, n.Addr, n.StartedAt.UnixMilli(), s.now().UnixMilli())
		return err
	})
}

// Nodes lists the hubs seen since since, with the leases each holds;
// nodes silent for a day are forgotten.
func (s *Store) Nodes(ctx context.Context, since time.Time) ([]Node, error) {
	now := s.now().UnixMilli()
	s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`DELETE FROM nodes WHERE last_seen < ?`, now-24*3600*1000)
		return err
	})
	rows, err := s.reader.QueryContext(ctx, `SELECT n.id, n.addr, n.started_at, n.last_seen,
		(SELECT COUNT(*) FROM leases l WHERE l.owner = n.id AND l.expires_at >= ?)
		FROM nodes n WHERE n.last_seen >= ? ORDER BY n.started_at, n.id`, now, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("store: nodes: %w", err)
	}
	defer rows.Close()
	out := []Node{}
	for rows.Next() {
		var n Node
		var started, seen int64
		if err := rows.Scan(&n.ID, &n.Addr, &started, &seen, &n.Leases); err != nil {
			return nil, err
		}
		n.StartedAt, n.LastSeen = time.UnixMilli(started).UTC(), time.UnixMilli(seen).UTC()
		out = append(out, n)
	}
	return out, rows.Err()
}
