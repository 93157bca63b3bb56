package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/wahub/wahub/host/supervisor"
	"github.com/wahub/wahub/plugins/bitrix24"
	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/hubspot"
	"github.com/wahub/wahub/plugins/noop"
	"github.com/wahub/wahub/plugins/slack"
	"github.com/wahub/wahub/plugins/webhook"
	"github.com/wahub/wahub/plugins/zendesk"
	"github.com/wahub/wahub/sdk"
)

// builtins are the connectors compiled into wahub. This is the one file of
// the host that imports plugins. They still run out of process: the
// supervisor re-executes this binary as `wahub __plugin <name>`.
var builtins = map[string]func() sdk.Connector{
	"bitrix24":  bitrix24.New,
	"freshdesk": freshdesk.New,
	"hubspot":   hubspot.New,
	"noop":      noop.New,
	"slack":     slack.New,
	"webhook":   webhook.New,
	"zendesk":   zendesk.New,
}

// servePluginIfAsked serves a built-in connector when the process was
// started as one; it runs before anything else in main, so that no hub
// initialisation (or output on stdout, which go-plugin's handshake owns)
// happens in a plugin process.
func servePluginIfAsked(args []string) {
	if len(args) < 1 || args[0] != supervisor.ServeCommand {
		return
	}
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "wahub: usage: wahub %s <built-in connector>\n", supervisor.ServeCommand)
		os.Exit(exitUsage)
	}
	newConnector, ok := builtins[args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "wahub: no built-in connector %q in this build (built-in: %s)\n", args[1], strings.Join(builtinNames(), ", "))
		os.Exit(exitRuntime)
	}
	sdk.Serve(newConnector())
	os.Exit(exitOK)
}

func builtinNames() []string {
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
