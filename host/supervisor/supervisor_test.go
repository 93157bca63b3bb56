package supervisor

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/sdk"
)

// TestMain lets this test binary serve the plugins the tests start, as
// wahub serves its built-ins: `<test binary> __plugin <kind>`.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == ServeCommand {
		os.Exit(servePlugin(os.Args[2]))
	}
	os.Exit(m.Run())
}

// syncer is a connector whose configuration sets its sync interval.
type syncer struct{ every time.Duration }

func newSyncer() sdk.Connector {
	return sdk.NewConnector(sdk.Info{Name: "syncer", Version: "1"}, func(ctx context.Context, cfg sdk.Config, host sdk.Host) (*syncer, error) {
		var c struct {
			Every sdk.Duration `json:"every"`
		}
		if err := cfg.Decode(&c); err != nil {
			return nil, err
		}
		return &syncer{every: c.Every.D()}, nil
	})
}

func (s *syncer) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	out := make([]sdk.Result, len(events))
	for i, ev := range events {
		out[i] = sdk.DeliveredResult(ev.ID)
	}
	return out
}

func (s *syncer) Sync(ctx context.Context, cursor string) (sdk.SyncResult, error) {
	return sdk.SyncResult{NextCursor: cursor + "+"}, nil
}

func (s *syncer) SyncInterval() time.Duration { return s.every }

func servePlugin(kind string) int {
	switch kind {
	case "current":
		if err := sdk.Serve(newSyncer()); err != nil {
			return 1
		}
	case "crasher":
		if err := sdk.Serve(sdk.NewConnector(sdk.Info{Name: "crasher"}, func(context.Context, sdk.Config, sdk.Host) (crasher, error) {
			return crasher{}, nil
		})); err != nil {
			return 1
		}
	case "protocol1":
		// A frozen copy of how the SDK before protocol 2 served: one
		// unversioned plugin set under handshake version 1.
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: plugin.HandshakeConfig{
				ProtocolVersion:  1,
				MagicCookieKey:   "WAHUB_CONNECTOR_PLUGIN",
				MagicCookieValue: "d1c6f1c4-wahub-connector",
			},
			Plugins:    sdk.VersionedPlugins(newSyncer(), 1)[1],
			GRPCServer: plugin.DefaultGRPCServer,
		})
	default:
		return 2
	}
	return 0
}

// A hub of this protocol runs a plugin built against protocol 1 and one of
// protocol 2 side by side: both deliver; the older one cannot report its
// sync interval and is synced on the default, the newer one on what its
// configuration says.
func TestNewerHubRunsAPluginOfThePreviousProtocol(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sup := New(Options{Executable: exe, Host: func(string) sdk.Host { return nil }, StartTimeout: 20 * time.Second})
	cfg := json.RawMessage(`{"every": "2m"}`)
	sup.Start(context.Background(), []Spec{
		{Name: "old", Plugin: "protocol1", Config: cfg},
		{Name: "new", Plugin: "current", Config: cfg},
	})
	t.Cleanup(sup.Stop)
	for _, tc := range []struct {
		name     string
		protocol int
		every    time.Duration
	}{
		{"old", 1, sdk.DefaultSyncInterval},
		{"new", 2, 2 * time.Minute},
	} {
		remote, desc, err := sup.Remote(tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if desc.Protocol != tc.protocol || desc.SyncEvery() != tc.every || !desc.Has(sdk.CapabilitySync) {
			t.Errorf("%s: protocol %d, sync every %v, capabilities %v; want protocol %d every %v with sync",
				tc.name, desc.Protocol, desc.SyncEvery(), desc.Capabilities, tc.protocol, tc.every)
		}
		res, err := remote.Deliver(context.Background(), []sdk.Event{{ID: "e1", Type: sdk.TypeMessageReceived}})
		if err != nil || len(res) != 1 || res[0].Outcome != sdk.Delivered {
			t.Errorf("%s: deliver %+v, %v", tc.name, res, err)
		}
		if got, err := remote.Sync(context.Background(), "c"); err != nil || got.NextCursor != "c+" {
			t.Errorf("%s: sync %+v, %v", tc.name, got, err)
		}
	}
}

// An older hub, which offers only protocol 1, still runs a plugin of this
// SDK: the plugin falls back to protocol 1.
func TestOlderHubRunsAPluginOfThisProtocol(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		// The hub before protocol 2: one unversioned set, version 1.
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.VersionedPlugins(nil, 1)[1],
		Cmd:              exec.Command(exe, ServeCommand, "current"),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     20 * time.Second,
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	remote := raw.(*sdk.Remote)
	if v := client.NegotiatedVersion(); v != 1 || remote.Protocol() != 1 {
		t.Errorf("negotiated %d (remote says %d), want 1", v, remote.Protocol())
	}
	ctx := context.Background()
	if err := remote.Configure(ctx, sdk.Config{Name: "x", Raw: json.RawMessage(`{"every":"2m"}`)}, nil); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Describe(ctx)
	if err != nil || desc.Name != "syncer" || desc.SyncInterval != 0 {
		t.Errorf("describe %+v, %v: want the name and no sync interval under protocol 1", desc, err)
	}
	if res, err := remote.Deliver(ctx, []sdk.Event{{ID: "e1"}}); err != nil || res[0].Outcome != sdk.Delivered {
		t.Errorf("deliver %+v, %v", res, err)
	}
}

// crasher exits its process on the first delivery: a plugin that crashes.
type crasher struct{}

func (crasher) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	os.Exit(3)
	return nil
}

// A crashed plugin is restarted after the backoff, on the supervisor's
// clock: nothing happens until the clock moves, then it runs again with
// one restart counted.
func TestCrashedPluginRestartsAfterBackoffOnTheClock(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	clk := clockwork.NewFakeClock()
	sup := New(Options{Executable: exe, Clock: clk, BackoffBase: 30 * time.Second, StartTimeout: 20 * time.Second})
	sup.Start(context.Background(), []Spec{{Name: "c", Plugin: "crasher"}})
	t.Cleanup(sup.Stop)
	remote, _, err := sup.Remote("c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Deliver(context.Background(), []sdk.Event{{ID: "e1"}}); err == nil {
		t.Fatal("a delivery to a plugin that exits succeeded")
	}
	// The watcher notices the exit and waits out the backoff on clk.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := clk.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("the supervisor never waited on its clock: %v", err)
	}
	st := sup.Statuses()[0]
	if st.State != StateRestarting || st.Restarts != 1 || st.PID != 0 {
		t.Fatalf("after the crash: %+v, want restarting with 1 restart and no pid", st)
	}
	running := sup.Running("c")
	select {
	case <-running:
		t.Fatal("restarted before the backoff passed")
	default:
	}
	clk.Advance(30 * time.Second)
	select {
	case <-running:
	case <-ctx.Done():
		t.Fatal("not restarted after the backoff")
	}
	if st := sup.Statuses()[0]; st.State != StateRunning || st.Restarts != 1 || st.PID == 0 {
		t.Errorf("after the restart: %+v", st)
	}
}
