package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/wahub/wahub/host/supervisor"
	"github.com/wahub/wahub/plugins/builtin"
	"github.com/wahub/wahub/sdk"
)

// servePluginIfAsked serves a built-in connector (package builtin lists
// them) when the process was started as one: they run out of process too,
// the supervisor re-executing this binary as `wahub __plugin <name>`. It
// runs before anything else in main, so that no hub initialisation (or
// output on stdout, which go-plugin's handshake owns) happens in a plugin
// process.
func servePluginIfAsked(args []string) {
	if len(args) < 1 || args[0] != supervisor.ServeCommand {
		return
	}
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "wahub: usage: wahub %s <built-in connector>\n", supervisor.ServeCommand)
		os.Exit(exitUsage)
	}
	p, ok := builtin.Plugins.Lookup(args[1])
	if !ok {
		fmt.Fprintf(os.Stderr, "wahub: no built-in connector %q in this build (built-in: %s)\n", args[1], strings.Join(builtinNames(), ", "))
		os.Exit(exitRuntime)
	}
	if err := sdk.Serve(p.New()); err != nil {
		fmt.Fprintf(os.Stderr, "wahub: built-in connector %s: %v\n", args[1], err)
		os.Exit(exitRuntime)
	}
	os.Exit(exitOK)
}

func builtinNames() []string { return builtin.Plugins.Names() }
