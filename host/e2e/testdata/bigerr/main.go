// Command bigerr is an external connector plugin whose every delivery
// fails with about a megabyte of error text, as a plugin that pastes a
// whole HTML error page (or a hostile one) would. The e2e tests build it.
package main

import (
	"context"
	"errors"
	"strings"

	"github.com/wahub/wahub/sdk"
)

type connector struct{}

func (connector) Describe() sdk.Info { return sdk.Info{Name: "bigerr", Version: "1.0.0"} }

func (connector) Configure(ctx context.Context, cfg sdk.Config, host sdk.Host) error { return nil }

var page = "502 from upstream: <html><body>" + strings.Repeat("<p>Ошибка шлюза — gateway error</p>", 1<<20/40) + "</body></html>"

func (connector) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	out := make([]sdk.Result, len(events))
	for i, ev := range events {
		out[i] = sdk.FailedResult(ev.ID, errors.New(page))
	}
	return out
}

func main() { sdk.Serve(connector{}) }
