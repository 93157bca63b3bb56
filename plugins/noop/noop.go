// Package noop is a connector that accepts every event and does nothing
// with it. The hub's delivery benchmarks measure the plugin machinery
// against it, and it is a way to keep a connector in a configuration while
// its real destination is not ready.
package noop

import (
	"context"

	"github.com/wahub/wahub/sdk"
)

// Version is reported by Describe.
const Version = "1.0.0"

type connector struct{}

// New returns the no-op connector.
func New() sdk.Connector { return connector{} }

func (connector) Describe() sdk.Info { return sdk.Info{Name: "noop", Version: Version} }

func (connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error {
	var none struct{}
	return cfg.Decode(&none)
}

// Deliver acknowledges every event, unless the hub has already given up on
// the batch.
func (connector) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	out := make([]sdk.Result, len(events))
	for i, ev := range events {
		if ctx.Err() != nil {
			out[i] = sdk.RetryResult(ev.ID, 0, ctx.Err())
			continue
		}
		out[i] = sdk.DeliveredResult(ev.ID)
	}
	return out
}
