package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
)

// outsidePlugin is a connector in a module of its own, as a plugin author
// writes it in their own repository: it logs with sdk.Logger() created
// inside Deliver, and panics on the text "panic".
const outsidePlugin = `package main

import (
	"context"
	"time"

	"github.com/wahub/wahub/sdk"
)

type conn struct{}

func (conn) Describe() sdk.Info { return sdk.Info{Name: "outside", Version: "0.0.1"} }

func (conn) Configure(context.Context, sdk.Config, sdk.Host) error { return nil }

func (conn) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	out := make([]sdk.Result, 0, len(events))
	for _, ev := range events {
		if ev.Message != nil && ev.Message.Text == "panic" {
			var m map[string]int
			m["boom"]++ // a nil map: the plugin panics
		}
		sdk.Logger().Info("outside: delivered", "event", ev.ID, "took", 1500*time.Millisecond)
		out = append(out, sdk.DeliveredResult(ev.ID))
	}
	return out
}

func main() { sdk.Serve(conn{}) }
`

// buildOutsidePlugin follows the README's "A plugin in its own
// repository": a module outside this one that requires the SDK and
// replaces it with this checkout.
func buildOutsidePlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gomod := "module example.com/outside\n\ngo 1.26\n\n" +
		"require github.com/wahub/wahub v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/wahub/wahub => " + repoRoot + "\n"
	for name, body := range map[string]string{"go.mod": gomod, "main.go": outsidePlugin} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "outside-connector")
	// go build -mod=mod adds the SDK's requirements to go.mod as go mod
	// tidy would, without the test dependencies of dependencies that tidy
	// fetches (a test has no network).
	for _, args := range [][]string{{"build", "-o", exe, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// The module cache already holds every dependency of this
		// checkout, verified when it was downloaded: neither the proxy
		// nor the checksum database is needed (nor reachable in CI).
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in a module outside this one: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return exe
}

// Item 8 of issue 15: a plugin built in its own module, run with the
// sandbox's sha256: dev, logs from inside Deliver; its panic is one
// record; production refuses sha256: dev.
func TestPluginFromItsOwnModule(t *testing.T) {
	exe := buildOutsidePlugin(t)
	cfg := testConfig + `
sandbox: true
connectors:
  outside:
    plugin: ` + exe + `
    sha256: dev
    retry: {max_attempts: 3, initial_interval: 50ms, max_interval: 100ms}
subscriptions:
  - connector: outside
    events: [message.received]
`
	h := newHub(t, cfg)
	h.waitConnector("outside", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	h.waitLog("the unchecked-plugin warning", func(r map[string]any) bool {
		return r["level"] == "WARN" && strings.Contains(r["msg"].(string), "sha256: dev") && r["connector"] == "outside"
	})

	h.postText("5511900000010", "wamid.E2E.outside.1", "olá", time.Now())
	rec := h.waitLog("the plugin's line from inside Deliver", func(r map[string]any) bool { return r["msg"] == "outside: delivered" })
	if rec["level"] != "INFO" || rec["connector"] != "outside" || rec["took"] != "1.5s" {
		t.Errorf("plugin record %v: want INFO from connector outside with took \"1.5s\"", rec)
	}
	if _, twin := rec["timestamp"]; twin {
		t.Errorf("plugin record with both time and timestamp: %v", rec)
	}

	h.postText("5511900000011", "wamid.E2E.outside.2", "panic", time.Now())
	h.waitLog("the panic", func(r map[string]any) bool { return r["msg"] == "plugin panicked" })
	panics := 0
	for _, r := range h.logRecords() {
		if r["msg"] == "plugin panicked" {
			panics++
			if !strings.Contains(r["panic"].(string), "assignment to entry in nil map") || !strings.Contains(r["stack"].(string), "main.conn.Deliver") {
				t.Errorf("panic record %v", r)
			}
		}
		if m, _ := r["msg"].(string); strings.HasPrefix(m, "goroutine ") || strings.HasPrefix(m, "\t") {
			t.Errorf("a line of the stack as a record of its own: %v", r)
		}
	}
	if panics == 0 {
		t.Error("no panic record")
	}

	// Production refuses the override, naming the key.
	prod := strings.Replace(h.cfgPath, "connectors.yaml", "prod.yaml", 1)
	raw, err := os.ReadFile(h.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prod, []byte(strings.Replace(string(raw), "sandbox: true", "sandbox: false", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runWahub(t, h.dir, "check", "--config", prod)
	if code != 2 || !strings.Contains(errOut, "connectors.outside.sha256") || !strings.Contains(errOut, "sandbox: true") {
		t.Errorf("check with sha256: dev and no sandbox: exit %d, %s", code, errOut)
	}
}
