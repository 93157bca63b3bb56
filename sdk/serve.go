package sdk

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Serve runs c as a plugin process; it is all a connector's main calls:
//
//	func main() { sdk.Serve(myconnector.New()) }
//
// It returns only when the host ends the plugin. Write logs with Logger,
// never to stdout: go-plugin's handshake owns stdout.
func Serve(c Connector) {
	// The logger must exist before plugin.Serve swaps os.Stderr, so that
	// its lines reach the host's log intact.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       c.Describe().Name,
		JSONFormat: true,
		Output:     os.Stderr,
		Level:      hclog.Info,
	})
	go exitWhenParentDies(os.Getppid(), time.Second)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(c),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, GRPCServerOptions()...)...)
		},
		Logger: logger,
	})
}

// exitWhenParentDies ends the plugin once its host is gone. go-plugin does
// not: a SIGKILLed host leaves its plugins running, re-parented to init,
// and a restarted host would start a second set beside them.
func exitWhenParentDies(parent int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != parent {
			os.Exit(3)
		}
	}
}

// Logger returns a logger whose lines the host reads as the plugin's log,
// with their level and fields kept. Use it in a connector instead of
// printing.
func Logger() *slog.Logger { return newLogger(os.Stderr) }

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		// go-plugin re-emits hclog's JSON keys at the right level.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.TimeKey:
				// go-plugin parses exactly this layout (six fractional
				// digits); anything else and it logs the whole line as
				// one DEBUG message, losing its level and fields.
				a.Key = "@timestamp"
				a.Value = slog.StringValue(a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
			case slog.LevelKey:
				a.Key = "@level"
				a.Value = slog.StringValue(hclogLevel(a.Value.Any().(slog.Level)))
			case slog.MessageKey:
				a.Key = "@message"
			}
			return a
		},
	}))
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
