// Command wahub is the WhatsApp Business integration hub: one binary that
// serves the webhook, routes events and runs the connector plugins, plus the
// commands that operate it. Start reading at newRoot.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/sandbox"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version or VCS revision is used.
var version = ""

// Exit statuses of CONTRACT §1.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// exitError carries the status a command wants, so that main alone decides
// how the process ends.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error   { return &exitError{exitUsage, err} }
func runtimeErr(err error) error { return &exitError{exitRuntime, err} }

func main() {
	servePluginIfAsked(os.Args[1:])
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// cobra's own errors: unknown command or flag, wrong arguments.
		ee = &exitError{exitUsage, err}
	}
	fmt.Fprintf(stderr, "wahub: %s\n", oneLine(ee.err))
	return ee.code
}

// oneLine keeps the first line of a multi-line error on the status line
// and the rest indented below it, so the offending key is always first.
func oneLine(err error) string {
	msg := strings.TrimSpace(err.Error())
	return strings.ReplaceAll(msg, "\n", "\n  ")
}

// globals are the flags every command shares.
type globals struct {
	configPath string
	// env is added to the environment the configuration is read with: a
	// flag such as serve --listen is its WAHUB_ override, so it is
	// validated like the file (the sandbox's loopback rule included).
	env    []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "wahub",
		Short:         "WhatsApp Business integration hub",
		Long:          "wahub receives WhatsApp Cloud API webhooks, keeps every event in SQLite, routes it by rules to teams and delivers it to connector plugins.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	defaultConfig := os.Getenv("WAHUB_CONFIG")
	if defaultConfig == "" {
		defaultConfig = "connectors.yaml"
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", defaultConfig, "configuration file (env WAHUB_CONFIG)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(
		newServeCmd(g),
		newCheckCmd(g),
		newSimulateCmd(g),
		newVersionCmd(g),
		newBenchCmd(g),
		newPluginsCmd(g),
		newPluginCmd(g),
		newDeadLettersCmd(g),
		newRouteCmd(g),
		newSendCmd(g),
		newStatsCmd(g),
		newSandboxCmd(g),
		newBackupCmd(g),
		newTemplatesCmd(g),
		newClusterCmd(g),
		newStoreCmd(g),
	)
	return root
}

// loadConfig reads the configuration; every failure is a bad-configuration
// exit. With sandbox: true the hub's own secrets left unset get the
// sandbox's published values, so that every command agrees with `serve`.
func (g *globals) loadConfig() (*config.Config, error) {
	cfg, err := config.Load(g.configPath, append(os.Environ(), g.env...))
	if err != nil {
		return nil, usageErr(err)
	}
	sandbox.ApplySecrets(cfg)
	return cfg, nil
}

// serveProblems is what keeps a configuration from serving: missing
// secrets, and (with the sandbox off) secrets that are the sandbox's
// published defaults.
func serveProblems(cfg *config.Config) []error {
	return append(cfg.ServeProblems(), sandbox.ProductionProblems(cfg)...)
}

// loadProbeConfig is loadConfig for commands that start plugins without
// serving (check, plugins): a sandbox configuration gets the defaults
// `serve` would give it, so that the plugins validate what they will run.
func (g *globals) loadProbeConfig() (*config.Config, error) {
	cfg, err := g.loadConfig()
	if err == nil && cfg.Sandbox {
		sandbox.Apply(cfg, "http://"+cfg.Server.Listen)
	}
	return cfg, err
}

// newLogger follows log.format: JSON for machines, text on a terminal.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	format := cfg.Log.Format
	if format == "" || format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsAsText writes durations the way an operator reads them and
// the configuration takes them ("1m0s"), not as JSON nanoseconds.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// versionString is the release the binary was stamped with (make build
// stamps `git describe`), else the module's version, else the VCS
// revision Go records when it builds in a checkout, with its time and
// whether the tree had changes. A binary built with -buildvcs=false (as
// CI does) and no stamp says so rather than inventing a version.
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel (no build information)"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel (built without VCS information: make build stamps the version)"
	}
	out := "devel-" + rev[:min(12, len(rev))]
	var notes []string
	if at != "" {
		notes = append(notes, at)
	}
	if modified {
		notes = append(notes, "modified")
	}
	if len(notes) > 0 {
		out += " (" + strings.Join(notes, ", ") + ")"
	}
	return out
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			fmt.Fprintf(g.stdout, "wahub %s %s/%s %s\n", versionString(), runtime.GOOS, runtime.GOARCH, runtime.Version())
			return nil
		},
	}
}
