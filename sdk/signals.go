package sdk

import (
	"os"
	"os/signal"
	"syscall"
)

// A plugin's life is its host's to end. A service manager that signals
// the whole process group (systemd's KillMode=control-group, a terminal's
// Ctrl-C) would otherwise kill every plugin while the host is still
// draining, and the host would log each as crashed. So a plugin ignores
// SIGTERM and SIGINT, and exits when the host asks (go-plugin's Kill:
// a graceful shutdown over gRPC, then SIGKILL) or dies (the watchdog in
// Serve).
//
// It starts at package initialisation, before main, when the process was
// started by a wahub host (go-plugin's cookie is in its environment): a
// signal that arrives while the plugin is still starting must not kill it
// either.
func init() {
	if os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue {
		ignoreStopSignals()
	}
}

func ignoreStopSignals() { signal.Ignore(syscall.SIGTERM, syscall.SIGINT) }
