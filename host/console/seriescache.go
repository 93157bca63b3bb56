package console

import (
	"context"
	"sync"
	"time"

	"github.com/wahub/wahub/host/store"
)

// The charts count what was stamped at the time it happened (an event's
// receipt, a delivery settling, an attempt), so a bucket that has ended
// no longer changes. Ended buckets are kept per bucket width, and a
// refresh of a live overview counts only the current bucket: over a week
// of a busy hub that is a few thousand index entries instead of millions.
// (Pruning removes old events without telling the cache; the next hub
// start forgets it.)

type seriesCache struct {
	mu sync.Mutex
	by map[time.Duration]store.Series // ended buckets, by step
}

func (c *Console) series(ctx context.Context, since time.Time, step time.Duration) (store.Series, error) {
	sc := &c.seriesCache
	now := c.opt.Now()
	current := now.Truncate(step) // the bucket still filling
	sc.mu.Lock()
	cached, ok := sc.by[step]
	sc.mu.Unlock()
	from := since
	if ok && !cached.Since.After(since) {
		if end := cached.Since.Add(time.Duration(len(cached.Inbound)) * step); !end.Before(since) {
			from = end
		}
	}
	fresh, err := c.opt.Store.Series(ctx, from, step)
	if err != nil {
		return store.Series{}, err
	}
	n := int(now.Sub(since)/step) + 1
	out := store.Series{Since: since.UTC(), Step: step, Inbound: make([]int64, n), Outbound: make([]int64, n),
		Retries: make([]int64, n), Failed: make([]int64, n), Delivered: map[string][]int64{}}
	place := func(src store.Series, skipFrom time.Time) {
		off := int(src.Since.Sub(since) / step)
		for i := range src.Inbound {
			j := off + i
			if j < 0 || j >= n || !src.Since.Add(time.Duration(i)*step).Before(skipFrom) {
				continue
			}
			out.Inbound[j], out.Outbound[j], out.Retries[j], out.Failed[j] = src.Inbound[i], src.Outbound[i], src.Retries[i], src.Failed[i]
			for conn, vs := range src.Delivered {
				if out.Delivered[conn] == nil {
					out.Delivered[conn] = make([]int64, n)
				}
				out.Delivered[conn][j] = vs[i]
			}
		}
	}
	if from != since {
		place(cached, from)
	}
	place(fresh, now.Add(step))
	// Keep what has ended: every bucket before the current one.
	keep := int(current.Sub(since) / step)
	if keep > 0 && keep <= n {
		ended := store.Series{Since: out.Since, Step: step, Inbound: out.Inbound[:keep:keep], Outbound: out.Outbound[:keep:keep],
			Retries: out.Retries[:keep:keep], Failed: out.Failed[:keep:keep], Delivered: map[string][]int64{}}
		for conn, vs := range out.Delivered {
			ended.Delivered[conn] = vs[:keep:keep]
		}
		sc.mu.Lock()
		if sc.by == nil {
			sc.by = map[time.Duration]store.Series{}
		}
		sc.by[step] = ended
		sc.mu.Unlock()
	}
	return out, nil
}
