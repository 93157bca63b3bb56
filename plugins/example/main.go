// Command example-connector is a complete wahub connector plugin, small
// enough to read in one sitting and meant to be copied: it appends every
// event the hub delivers to a JSON Lines file, and turns a POST to
// /hooks/<name> into a WhatsApp text. README.md says how to build and
// configure it; connector.go is the connector itself.
package main

import (
	"fmt"
	"os"

	"github.com/wahub/wahub/sdk"
)

// main hands the connector to the SDK, which speaks the plugin protocol
// with the hub until the hub ends this process. Nothing else belongs
// here: the hub starts the plugin and reads its stdout for the handshake,
// so a plugin must never print to stdout (log with sdk.Logger instead).
func main() {
	if err := sdk.Serve(New()); err != nil {
		fmt.Fprintln(os.Stderr, "example-connector:", err)
		os.Exit(1)
	}
}
