package sdk

import (
	"errors"
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
//	func main() {
//		if err := sdk.Serve(myconnector.New()); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//	}
//
// It returns when the host ends the plugin (nil, or the error closing the
// connector's Instance), or at once with an error when the process was not
// started by a hub. Write logs with Logger, never to stdout: go-plugin's
// handshake owns stdout.
func Serve(c Connector, opts ...ServeOption) error {
	o := serveOptions{protocols: Protocols, parentCheck: time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	if os.Getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		return ErrNotStartedByHub
	}
	ignoreStopSignals()
	// The logger must exist before plugin.Serve swaps os.Stderr, so that
	// its lines reach the host's log intact.
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       c.Describe().Name,
		JSONFormat: true,
		Output:     logOutput,
		Level:      hclog.Info,
	})
	if o.parentCheck > 0 {
		go exitWhenParentDies(os.Getppid(), o.parentCheck)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(c, o.protocols...),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, GRPCServerOptions()...)...)
		},
		Logger: logger,
	})
	if cl, ok := c.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// ErrNotStartedByHub is Serve's answer when a person runs a plugin binary
// by hand: it speaks only to a hub, which starts it from connectors.yaml.
var ErrNotStartedByHub = errors.New("this is a wahub connector plugin: it is started by the hub (name it in connectors.yaml as plugin: /path/to/it), not run by hand")

// ServeOption changes how Serve runs a plugin.
type ServeOption func(*serveOptions)

type serveOptions struct {
	protocols   []int
	parentCheck time.Duration
}

// WithProtocols limits the protocol versions the plugin offers (default:
// all of Protocols), for a plugin that must behave as one built against an
// older SDK, and for the tests that prove a newer hub still talks to it.
func WithProtocols(versions ...int) ServeOption {
	return func(o *serveOptions) { o.protocols = versions }
}

// WithParentCheck sets how often the plugin looks whether the hub that
// started it is still alive (default every second; 0 turns it off).
func WithParentCheck(every time.Duration) ServeOption {
	return func(o *serveOptions) { o.parentCheck = every }
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

// logOutput is the plugin's stderr as the process started with it. The
// host reads that file as the plugin's log; plugin.Serve replaces
// os.Stderr with a pipe whose lines go nowhere the host logs, so a logger
// made on os.Stderr after Serve started (inside Configure or Deliver)
// would lose every line.
var logOutput = os.Stderr

// Logger returns a logger whose lines the host reads as the plugin's log,
// with their level and fields kept. Use it in a connector instead of
// printing; it works wherever it is called, before Serve or inside
// Deliver.
func Logger() *slog.Logger { return newLogger(logOutput) }

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		// go-plugin re-emits hclog's JSON keys at the right level.
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				// As the host's log and connectors.yaml write them.
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
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
