package e2e

import (
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
)

const noopConfig = testConfig + `
connectors:
  sink:
    plugin: noop
subscriptions:
  - connector: sink
    events: ["*"]
`

// connectors returns the admin API's view of the connectors, by name.
func (h *hubProc) connectors() map[string]admin.ConnectorStatus {
	h.t.Helper()
	var out struct {
		Connectors []admin.ConnectorStatus `json:"connectors"`
	}
	if code := h.api("GET", "/api/v1/connectors", nil, &out); code != http.StatusOK {
		h.t.Fatalf("GET /api/v1/connectors: %d", code)
	}
	m := map[string]admin.ConnectorStatus{}
	for _, c := range out.Connectors {
		m[c.Name] = c
	}
	return m
}

// waitConnector polls the admin API until cond holds for the connector:
// the hub works in its own process, so there is nothing to wait on but its
// answers.
func (h *hubProc) waitConnector(name string, what string, cond func(admin.ConnectorStatus) bool) admin.ConnectorStatus {
	h.t.Helper()
	return h.waitConnectorFor(60*time.Second, name, what, cond)
}

func (h *hubProc) waitConnectorFor(limit time.Duration, name string, what string, cond func(admin.ConnectorStatus) bool) admin.ConnectorStatus {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		c := h.connectors()[name]
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("connector %s: %s not reached within %s; last status %+v", name, what, limit, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBuiltinPluginRunsOutOfProcessAndGetsEvents(t *testing.T) {
	h := newHub(t, noopConfig)
	c := h.waitConnector("sink", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	if c.PID == 0 || c.Version == "" {
		t.Fatalf("status %+v: want a pid and a version", c)
	}
	out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("text.json"), fixture("batch_mixed.json"))
	if code != 0 {
		t.Fatalf("simulate: %s %s", out, errOut)
	}
	h.waitConnector("sink", "5 delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 5 })
	var ev struct {
		Deliveries []struct {
			Connector, State string
			Attempts         []struct{ Outcome string }
		} `json:"deliveries"`
	}
	evs := h.allEvents()
	if code := h.api("GET", "/api/v1/events/"+evs[0].ID, nil, &ev); code != 200 {
		t.Fatalf("GET event: %d", code)
	}
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != "delivered" || len(ev.Deliveries[0].Attempts) != 1 {
		t.Fatalf("deliveries %+v", ev.Deliveries)
	}
	resp, err := http.Get(h.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d with every connector running", resp.StatusCode)
	}
	if code := h.api("POST", "/hooks/sink", map[string]string{}, nil); code != http.StatusNotFound {
		t.Errorf("hook to a connector without hooks: %d, want 404", code)
	}
	if code := h.api("POST", "/hooks/nope", map[string]string{}, nil); code != http.StatusNotFound {
		t.Errorf("hook to an unknown connector: %d, want 404", code)
	}
	if !strings.Contains(h.log(), `"msg":"connector plugin running"`) {
		t.Errorf("plugin start not logged")
	}
}

// processGone waits for a pid to disappear (up to 10s): the plugin's
// watchdog notices its parent's death once a second.
func processGone(t *testing.T, pid int) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func TestHubKilledWithQueuedEventsDeliversAfterRestart(t *testing.T) {
	h := newHub(t, noopConfig)
	c := h.waitConnector("sink", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	if code := h.api("POST", "/api/v1/connectors/sink/pause", nil, nil); code != 200 {
		t.Fatalf("pause: %d", code)
	}
	if out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("text.json"), fixture("batch_mixed.json")); code != 0 {
		t.Fatalf("simulate: %s %s", out, errOut)
	}
	h.waitConnector("sink", "5 queued", func(c admin.ConnectorStatus) bool { return c.Pending == 5 && c.Paused })
	h.kill()
	if !processGone(t, c.PID) {
		t.Fatalf("plugin %d still running 10s after its hub was SIGKILLed", c.PID)
	}
	h.start()
	// Paused survives the restart: nothing is delivered until resumed.
	c = h.waitConnector("sink", "running again", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	if !c.Paused || c.Delivered != 0 || c.Pending != 5 {
		t.Fatalf("after restart: %+v, want still paused with 5 pending", c)
	}
	if code := h.api("POST", "/api/v1/connectors/sink/resume", nil, nil); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	h.waitConnector("sink", "5 delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 5 && c.Pending == 0 })
}

func TestExternalPluginWithWrongChecksumIsRefused(t *testing.T) {
	cfg := testConfig + `
connectors:
  erp:
    plugin: ` + binary + `
    sha256: "` + strings.Repeat("0", 64) + `"
`
	dir := t.TempDir()
	path := dir + "/connectors.yaml"
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(cfg, "{{DIR}}", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runWahub(t, dir, "check", "--config", path)
	if code != 2 || !strings.Contains(errOut, "connectors.erp.sha256") || !strings.Contains(errOut, "refusing to run it") {
		t.Fatalf("check: exit %d\n%s%s", code, out, errOut)
	}
	h := newHub(t, cfg)
	c := h.waitConnector("erp", "failed", func(c admin.ConnectorStatus) bool { return c.State == "failed" })
	if !strings.Contains(c.LastError, "sha256") {
		t.Fatalf("last error %q does not explain the checksum", c.LastError)
	}
	resp, err := http.Get(h.url("/readyz"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "connector:erp") {
		t.Fatalf("readyz %d %s, want 503 naming the connector", resp.StatusCode, body)
	}
}
