// Package noop is a connector that accepts every event and does nothing
// with it. The hub's delivery benchmarks measure the plugin machinery
// against it, and it is a way to keep a connector in a configuration while
// its real destination is not ready.
package noop

import (
	"context"

	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/sdk"
)

// Name is the connector's built-in name.
const Name = "noop"

// Version is reported by Describe.
const Version = "1.0.0"

// Plugin declares the connector to the hub; it has no external system to
// fake in the sandbox.
var Plugin = registry.Plugin{Name: Name, New: New}

// New returns the no-op connector.
func New() sdk.Connector {
	return sdk.NewConnector(sdk.Info{Name: Name, Version: Version}, configure)
}

type instance struct{}

// configure takes no keys: any key is a typo worth reporting.
func configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (instance, error) {
	var none struct{}
	return instance{}, cfg.Decode(&none)
}

// Deliver acknowledges every event, unless the hub has already given up on
// the batch.
func (instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
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
