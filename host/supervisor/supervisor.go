// Package supervisor runs connector plugins as separate processes with
// hashicorp/go-plugin (gRPC, AutoMTLS) and keeps them running: a crashed
// plugin is restarted with backoff and configured again; one that keeps
// crashing is marked failed and reported while the hub keeps its events.
//
// Built-in connectors run out of process too: the hub re-executes its own
// binary with the hidden subcommand "__plugin <name>". External plugins are
// executables whose sha256 must match the configuration.
package supervisor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/errtext"
	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/sdk"
)

// ServeCommand is the hidden subcommand under which the hub binary serves a
// built-in connector.
const ServeCommand = "__plugin"

// Spec is one connector to run.
type Spec struct {
	Name string // its key in connectors.yaml
	// Plugin is a built-in connector name, or a path to an executable.
	Plugin registry.PluginRef
	SHA256 string // required for an executable
	// Unchecked runs an executable without checking its digest
	// (connectors.yaml's sha256: dev, which only a sandbox accepts).
	Unchecked bool
	Config    json.RawMessage
}

// Builtin reports whether the spec names a built-in connector.
func (s Spec) Builtin() bool { return s.Plugin.Builtin() }

// States of a connector's plugin.
const (
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateFailed     = "failed" // keeps crashing or cannot start; retried slowly
	StateStopped    = "stopped"
)

// Status is a connector's plugin as an operator sees it.
type Status struct {
	Name         string   `json:"name"`
	Plugin       string   `json:"plugin"`
	State        string   `json:"state"`
	PID          int      `json:"pid,omitempty"`
	Restarts     int      `json:"restarts"`
	Version      string   `json:"version,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	// SyncInterval is how often the plugin last asked to be synced (0:
	// never); it stays while the plugin restarts.
	SyncInterval time.Duration `json:"-"`
	LastError    string        `json:"last_error,omitempty"`
	Since        time.Time     `json:"since"`
}

// Options tune a Supervisor.
type Options struct {
	// Executable is the wahub binary that serves built-ins (default: this
	// process's executable).
	Executable string
	Logger     *slog.Logger
	// Host returns what a connector's plugin calls back.
	Host func(connector string) sdk.Host
	// Restart backoff: Base doubling up to Max.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// A plugin that crashes MaxCrashes times within CrashWindow is marked
	// failed (it is still retried every BackoffMax).
	MaxCrashes  int
	CrashWindow time.Duration
	// StartTimeout bounds launch, handshake and Configure.
	StartTimeout time.Duration
	// Clock times the restart backoff and the crash window (default: the
	// real one); tests drive it.
	Clock clockwork.Clock
}

// Supervisor runs and watches the plugins.
type Supervisor struct {
	opt Options
	log *slog.Logger

	mu      sync.Mutex
	procs   map[string]*proc
	ctx     context.Context // Start's: done once the plugins are asked to stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped bool

	// probe: one launch for inspection (Probe), not a supervised run.
	probe, checkConfig bool
}

// proc is one connector's plugin over its successive processes.
type proc struct {
	spec    Spec
	status  Status
	remote  *sdk.Remote
	desc    sdk.Description
	client  *plugin.Client
	running chan struct{} // closed while a process is up; replaced on exit
}

// New returns a Supervisor; Start launches the plugins.
func New(opt Options) *Supervisor {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.BackoffBase <= 0 {
		opt.BackoffBase = time.Second
	}
	if opt.BackoffMax <= 0 {
		opt.BackoffMax = time.Minute
	}
	if opt.MaxCrashes <= 0 {
		opt.MaxCrashes = 5
	}
	if opt.CrashWindow <= 0 {
		opt.CrashWindow = 5 * time.Minute
	}
	if opt.StartTimeout <= 0 {
		opt.StartTimeout = 30 * time.Second
	}
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	return &Supervisor{opt: opt, log: opt.Logger, procs: map[string]*proc{}}
}

// Start launches every spec and keeps it running until Stop. It returns
// once each has started or failed its first start; a failure does not stop
// the others.
func (s *Supervisor) Start(ctx context.Context, specs []Spec) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.ctx, s.cancel = ctx, cancel
	for _, spec := range specs {
		s.procs[spec.Name] = &proc{spec: spec, running: make(chan struct{}),
			status: Status{Name: spec.Name, Plugin: string(spec.Plugin), State: StateStarting, Since: s.opt.Clock.Now()}}
	}
	s.mu.Unlock()
	var first sync.WaitGroup
	for _, spec := range specs {
		first.Add(1)
		s.wg.Add(1)
		go s.keep(ctx, spec.Name, &first)
	}
	first.Wait()
}

// keep runs one connector's plugin, restarting it after every exit.
func (s *Supervisor) keep(ctx context.Context, name string, first *sync.WaitGroup) {
	defer s.wg.Done()
	once := sync.OnceFunc(first.Done)
	defer once()
	var crashes []time.Time
	backoff := s.opt.BackoffBase
	for attempt := 0; ; attempt++ {
		p := s.proc(name)
		client, remote, desc, err := s.launch(ctx, p.spec)
		if err == nil {
			s.update(name, func(p *proc) {
				p.client, p.remote, p.desc = client, remote, desc
				p.status.State = StateRunning
				p.status.PID = client.ReattachConfig().Pid
				p.status.Version = desc.Version
				p.status.Capabilities = desc.Capabilities
				p.status.SyncInterval = desc.SyncEvery()
				p.status.LastError = ""
				p.status.Since = s.opt.Clock.Now()
				close(p.running)
			})
			s.log.Info("connector plugin running", "connector", name, "plugin", p.spec.Plugin, "pid", p.status.PID, "version", desc.Version)
			once()
			select {
			case <-ctx.Done():
				client.Kill()
				s.update(name, func(p *proc) { p.status.State = StateStopped; p.status.PID = 0 })
				return
			case <-remote.Done():
			}
			client.Kill()
			err = errors.New("plugin process exited")
			if p.status.Since.Add(s.opt.CrashWindow).Before(s.opt.Clock.Now()) {
				// It ran well for a while: start the backoff over.
				backoff = s.opt.BackoffBase
			}
		}
		if ctx.Err() != nil {
			s.update(name, func(p *proc) { p.status.State = StateStopped; p.status.PID = 0 })
			return
		}
		now := s.opt.Clock.Now()
		crashes = append(crashes, now)
		for len(crashes) > 0 && now.Sub(crashes[0]) > s.opt.CrashWindow {
			crashes = crashes[1:]
		}
		state := StateRestarting
		if len(crashes) >= s.opt.MaxCrashes || errors.Is(err, errPermanent) {
			state = StateFailed
			backoff = s.opt.BackoffMax
		}
		s.update(name, func(p *proc) {
			if p.remote != nil {
				p.running = make(chan struct{})
			}
			p.client, p.remote = nil, nil
			p.status.State = state
			p.status.PID = 0
			p.status.LastError = errtext.Cap(err.Error())
			p.status.Since = now
			if attempt > 0 || p.status.Restarts > 0 || p.desc.Name != "" {
				p.status.Restarts++
			}
		})
		level := slog.LevelWarn
		if state == StateFailed {
			level = slog.LevelError
		}
		s.log.Log(ctx, level, "connector plugin down; its events wait for it", "connector", name, "state", state, "err", err, "retry_in", backoff)
		once()
		select {
		case <-ctx.Done():
			s.update(name, func(p *proc) { p.status.State = StateStopped })
			return
		case <-s.opt.Clock.After(backoff):
		}
		backoff = min(backoff*2, s.opt.BackoffMax)
	}
}

// errPermanent marks start failures that a restart cannot fix.
var errPermanent = errors.New("permanent")

// Probe starts a connector's plugin once, asks what it is and (with
// checkConfig) has it validate its configuration without connecting
// anywhere, then stops it. wahub check and wahub plugins use it.
func Probe(ctx context.Context, spec Spec, checkConfig bool, opt Options) (sdk.Description, error) {
	s := New(opt)
	s.probe = true
	s.checkConfig = checkConfig
	client, _, desc, err := s.launch(ctx, spec)
	if err != nil {
		return desc, err
	}
	client.Kill()
	return desc, nil
}

// launch starts one plugin process, handshakes, and configures it.
func (s *Supervisor) launch(ctx context.Context, spec Spec) (*plugin.Client, *sdk.Remote, sdk.Description, error) {
	cmd, secure, err := s.command(spec)
	if err != nil {
		return nil, nil, sdk.Description{}, fmt.Errorf("%w: %w", errPermanent, err)
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		VersionedPlugins: sdk.VersionedPlugins(nil),
		Cmd:              cmd,
		// cmd.Env is the allowlist below; go-plugin would otherwise
		// append the hub's whole environment, secrets included.
		SkipHostEnv:      true,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     s.opt.StartTimeout,
		Logger:           newPluginLogger(s.log.With("connector", spec.Name), s.stopping),
	})
	remote, desc, err := s.handshake(ctx, client, spec)
	if err != nil {
		client.Kill()
		return nil, nil, sdk.Description{}, err
	}
	return client, remote, desc, nil
}

func (s *Supervisor) handshake(ctx context.Context, client *plugin.Client, spec Spec) (*sdk.Remote, sdk.Description, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, sdk.Description{}, fmt.Errorf("start plugin %s: %w", spec.Plugin, err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return nil, sdk.Description{}, fmt.Errorf("plugin %s: %w", spec.Plugin, err)
	}
	remote, ok := raw.(*sdk.Remote)
	if !ok {
		return nil, sdk.Description{}, fmt.Errorf("plugin %s: unexpected client type %T", spec.Plugin, raw)
	}
	cctx, cancel := context.WithTimeout(ctx, s.opt.StartTimeout)
	defer cancel()
	desc, err := remote.Describe(cctx)
	if err != nil {
		return nil, sdk.Description{}, fmt.Errorf("plugin %s: describe: %w", spec.Plugin, err)
	}
	if s.probe && !s.checkConfig {
		return remote, desc, nil
	}
	var host sdk.Host
	if s.opt.Host != nil && !s.probe {
		host = s.opt.Host(spec.Name)
	}
	if err := remote.Configure(cctx, sdk.Config{Name: spec.Name, Raw: spec.Config, CheckOnly: s.probe}, host); err != nil {
		// The same configuration will be refused again.
		return nil, sdk.Description{}, fmt.Errorf("%w: %w", errPermanent, err)
	}
	if remote.Protocol() >= 2 && !s.probe {
		// What the plugin needs of the hub (its sync interval) follows
		// from its configuration, so it is known only now.
		if desc, err = remote.Describe(cctx); err != nil {
			return nil, sdk.Description{}, fmt.Errorf("plugin %s: describe after configure: %w", spec.Plugin, err)
		}
	}
	return remote, desc, nil
}

// command builds a fresh exec.Cmd for each start: go-plugin cannot reuse
// one.
func (s *Supervisor) command(spec Spec) (*exec.Cmd, *plugin.SecureConfig, error) {
	if spec.Builtin() {
		exe := s.opt.Executable
		if exe == "" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return nil, nil, fmt.Errorf("find the wahub executable to run built-in %q: %w", spec.Plugin, err)
			}
		}
		cmd := exec.Command(exe, ServeCommand, string(spec.Plugin))
		cmd.Env = PluginEnv(os.Environ())
		return cmd, nil, nil
	}
	if spec.Unchecked {
		if _, err := os.Stat(string(spec.Plugin)); err != nil {
			return nil, nil, fmt.Errorf("connectors.%s.plugin: %w", spec.Name, err)
		}
		if s.log != nil {
			s.log.Warn("running a plugin without checking its sha256 (sha256: dev, sandbox only)", "connector", spec.Name, "plugin", spec.Plugin)
		}
		return exec.Command(string(spec.Plugin)), nil, nil
	}
	want, err := hex.DecodeString(spec.SHA256)
	if err != nil || len(want) != sha256.Size {
		return nil, nil, fmt.Errorf("connectors.%s.sha256: want the 64 hex digits of `sha256sum %s`", spec.Name, spec.Plugin)
	}
	got, err := fileSHA256(string(spec.Plugin))
	if err != nil {
		return nil, nil, fmt.Errorf("connectors.%s.plugin: %w", spec.Name, err)
	}
	if got != strings.ToLower(spec.SHA256) {
		return nil, nil, fmt.Errorf("connectors.%s.sha256: %s has sha256 %s, the configuration expects %s; refusing to run it (if you rebuilt it on purpose, update the sha256)",
			spec.Name, spec.Plugin, got, strings.ToLower(spec.SHA256))
	}
	// go-plugin checks the checksum again right before exec, closing the
	// window between this check and the start.
	cmd := exec.Command(string(spec.Plugin))
	cmd.Env = PluginEnv(os.Environ())
	return cmd, &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}, nil
}

// pluginEnvNames are the variables a plugin process inherits from the hub:
// what any program needs to find executables, write temporary files, tell
// the time and language, trust certificates and reach the network through
// a proxy. Nothing else: the hub's environment holds every connector's
// secrets (WHATSAPP_ACCESS_TOKEN, SLACK_BOT_TOKEN, ...), and a plugin gets
// its own configuration, secrets included, over gRPC only. go-plugin adds
// its handshake variables (magic cookie, AutoMTLS certificate) itself.
var pluginEnvNames = map[string]bool{
	"PATH": true, "HOME": true, "TMPDIR": true, "TZ": true, "LANG": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true,
	"http_proxy": true, "https_proxy": true, "no_proxy": true,
}

// PluginEnv filters environ (as os.Environ returns it) down to what a
// plugin may see: pluginEnvNames and the LC_* locale variables.
func PluginEnv(environ []string) []string {
	out := []string{}
	for _, kv := range environ {
		name, _, ok := strings.Cut(kv, "=")
		if ok && (pluginEnvNames[name] || strings.HasPrefix(name, "LC_")) {
			out = append(out, kv)
		}
	}
	return out
}

// VerifyExecutable checks an external plugin's checksum, for wahub check.
func VerifyExecutable(spec Spec) error {
	if spec.Builtin() {
		return nil
	}
	_, _, err := (&Supervisor{}).command(spec) // no log: nothing runs
	return err
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open plugin executable: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read plugin executable: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (s *Supervisor) proc(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

func (s *Supervisor) update(name string, fn func(*proc)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.procs[name])
}

// ErrUnknownConnector is returned for a name that is not configured.
var ErrUnknownConnector = errors.New("unknown connector")

// NotRunningError is returned while a connector's plugin is down.
type NotRunningError struct {
	Name, State, LastError string
}

func (e *NotRunningError) Error() string {
	msg := fmt.Sprintf("connector %s is %s", e.Name, e.State)
	if e.LastError != "" {
		msg += ": " + e.LastError
	}
	return msg
}

// Remote returns the running plugin of a connector and what it described.
func (s *Supervisor) Remote(name string) (*sdk.Remote, sdk.Description, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.procs[name]
	if !ok {
		return nil, sdk.Description{}, fmt.Errorf("%w %q", ErrUnknownConnector, name)
	}
	if p.remote == nil {
		return nil, sdk.Description{}, &NotRunningError{Name: name, State: p.status.State, LastError: p.status.LastError}
	}
	return p.remote, p.desc, nil
}

// Running returns a channel closed while the connector's plugin is up, for
// workers that wait for it to come back.
func (s *Supervisor) Running(name string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.procs[name]; ok {
		return p.running
	}
	return nil
}

// Statuses reports every connector's plugin, by name.
func (s *Supervisor) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, p.status)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stop kills every plugin and waits for the watchers to end.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	cancel := s.cancel
	s.stopped = true
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// stopping reports whether the plugins have been asked to stop: a plugin
// process that exits then has done what it was asked, whatever its status.
func (s *Supervisor) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx != nil && s.ctx.Err() != nil
}
