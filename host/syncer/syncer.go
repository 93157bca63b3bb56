// Package syncer pulls changed contacts from connectors with the sync
// capability (CRMs) on the interval each one's plugin reports through
// Describe (sdk.Description.SyncEvery), and stores their
// attributes with the cursor in one commit: a failed page leaves the cursor
// where it was, and a restart resumes from it.
package syncer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Plugins finds a connector's running plugin.
type Plugins interface {
	// Syncer returns the connector's sync call and how often its plugin
	// asks to be synced, or an error while the plugin is not running;
	// every is 0 when the connector does not sync.
	Syncer(name string) (sync func(ctx context.Context, cursor string) (sdk.SyncResult, error), every time.Duration, err error)
	// Running is closed once the connector's plugin runs.
	Running(name string) <-chan struct{}
}

// Store is where sync progress and contacts are kept.
type Store interface {
	SyncCursor(ctx context.Context, connector string) (store.SyncState, error)
	ApplySync(ctx context.Context, connector string, contacts []sdk.ContactUpdate, next string) error
	SyncFailed(ctx context.Context, connector, reason string) error
}

// Options assemble a Syncer.
type Options struct {
	Store   Store
	Plugins Plugins
	// Connectors are the enabled connectors; those whose plugin reports a
	// sync interval are synced.
	Connectors []string
	Clock      clockwork.Clock
	Logger     *slog.Logger
	// Leader, when several hubs share the store, reports whether this
	// hub runs the periodic jobs; the others do not sync, and a hub that
	// becomes leader waits out the interval since the last sync.
	Leader func() bool
}

// maxPages bounds one run, so that a connector paging forever (a bug, or
// a huge first sync) still leaves room for the next interval's check.
const maxPages = 1000

// Run syncs each connector every interval until ctx ends.
func Run(ctx context.Context, opt Options) {
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	var wg sync.WaitGroup
	for _, name := range opt.Connectors {
		wg.Go(func() { loop(ctx, opt, name) })
	}
	wg.Wait()
}

func loop(ctx context.Context, opt Options, name string) {
	log := opt.Logger.With("connector", name)
	for {
		select {
		case <-opt.Plugins.Running(name):
		case <-ctx.Done():
			return
		}
		// Asked each time: the interval is the running plugin's answer.
		_, every, err := opt.Plugins.Syncer(name)
		if err == nil && every <= 0 {
			return // this connector's configuration does not sync
		}
		if err != nil {
			// The plugin went down between Running and now; its restart
			// closes Running again.
			every = sdk.DefaultSyncInterval
		}
		if opt.Leader != nil {
			wait := 5 * time.Second
			if opt.Leader() {
				st, err := opt.Store.SyncCursor(ctx, name)
				wait = 0
				if err == nil && !st.At.IsZero() {
					wait = st.At.Add(every).Sub(opt.Clock.Now())
				}
			}
			if wait > 0 {
				select {
				case <-opt.Clock.After(min(wait, 5*time.Second)):
				case <-ctx.Done():
					return
				}
				continue
			}
		}
		n, err := Once(ctx, opt.Store, opt.Plugins, name)
		switch {
		case errors.Is(err, errNoCapability):
			return
		case err != nil && ctx.Err() == nil:
			log.Warn("sync failed; the cursor stays, next try at the next interval", "err", err, "interval", every.String())
			if serr := opt.Store.SyncFailed(context.WithoutCancel(ctx), name, err.Error()); serr != nil {
				log.Error("sync failed and its failure could not be recorded; GET /api/v1/connectors shows the previous state", "err", serr)
			}
		case n > 0:
			log.Info("sync stored contact changes", "contacts", n)
		}
		select {
		case <-opt.Clock.After(every):
		case <-ctx.Done():
			return
		}
	}
}

var errNoCapability = errors.New("no sync capability")

// Once runs one sync of a connector: page after page from the stored
// cursor, each stored with its contacts. It returns how many contacts it
// stored.
func Once(ctx context.Context, st Store, p Plugins, name string) (int, error) {
	call, every, err := p.Syncer(name)
	if err != nil {
		return 0, err
	}
	if every <= 0 {
		return 0, errNoCapability
	}
	total := 0
	for range maxPages {
		cur, err := st.SyncCursor(ctx, name)
		if err != nil {
			return total, err
		}
		res, err := call(ctx, cur.Cursor)
		if err != nil {
			return total, err
		}
		if err := st.ApplySync(ctx, name, res.Contacts, res.NextCursor); err != nil {
			return total, err
		}
		total += len(res.Contacts)
		if !res.More {
			break
		}
	}
	return total, nil
}
