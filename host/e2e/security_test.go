package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// runWahubEnv is runWahub with exactly env (plus PATH and HOME): the
// tests here decide which variables the hub sees.
func runWahubEnv(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "WAHUB_CONFIG="}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running wahub %v: %v", args, err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// shippedFile copies the repository's connectors.yaml, as it is, into a
// fresh directory with the store there and a free port.
func shippedFile(t *testing.T) (dir, path string) {
	t.Helper()
	shipped, err := os.ReadFile(filepath.Join(repoRoot, "connectors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(shipped), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	dir = t.TempDir()
	cfg = strings.Replace(cfg, "path: data/wahub.db", "path: "+dir+"/wahub.db", 1)
	path = filepath.Join(dir, "connectors.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// The shipped file with the sandbox off never runs on the sandbox's
// published secrets: not when the variables are unset, and not when they
// are set to the published values.
func TestSandboxSecretsRefusedInProduction(t *testing.T) {
	dir, path := shippedFile(t)
	listCfg := filepath.Join(dir, "list.yaml")
	if err := os.WriteFile(listCfg, []byte(strings.ReplaceAll(testConfig, "{{DIR}}", dir)+"sandbox: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	public := []string{
		"WHATSAPP_APP_SECRET=sandbox-app-secret", "WHATSAPP_VERIFY_TOKEN=sandbox-verify-token",
		"WAHUB_ADMIN_TOKEN=sandbox-admin-token", "SLACK_SIGNING_SECRET=wahub-sandbox-signing-secret",
		"ZENDESK_WEBHOOK_SECRET=zendesk-sandbox-webhook-secret", "AUDIT_WEBHOOK_SECRET=sandbox-webhook-secret",
	}
	for _, tc := range []struct {
		name   string
		config string
		env    []string
		keys   []string
	}{
		{"no variables", path, []string{"WAHUB_SANDBOX=false"},
			[]string{"whatsapp.app_secret: ", "whatsapp.verify_token: "}},
		{"published values", path, append([]string{"WAHUB_SANDBOX=false"}, public...),
			[]string{"whatsapp.app_secret: holds a published sandbox default", "whatsapp.verify_token: holds",
				"server.admin_token: holds", "connectors.slack.config.signing_secret: holds",
				"connectors.zendesk.config.webhook_secret: holds", "connectors.audit.config.secret: holds"}},
		{"one of a rotation list", listCfg, []string{"WAHUB_WHATSAPP__APP_SECRET=real-secret,sandbox-app-secret"},
			[]string{"whatsapp.app_secret[1]: holds a published sandbox default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"check", "serve"} {
				_, errOut, code := runWahubEnv(t, dir, tc.env, cmd, "--config", tc.config)
				if code != 2 {
					t.Fatalf("wahub %s: exit %d, want 2; stderr:\n%s", cmd, code, errOut)
				}
				for _, k := range tc.keys {
					if !strings.Contains(errOut, k) {
						t.Errorf("wahub %s: stderr does not name %q:\n%s", cmd, k, errOut)
					}
				}
				if strings.Contains(errOut, "real-secret") {
					t.Errorf("wahub %s printed a secret:\n%s", cmd, errOut)
				}
			}
		})
	}
}

// A plugin starts with an allowlisted environment: a variable the hub has
// (here a canary standing for WHATSAPP_ACCESS_TOKEN and every other
// connector's secret) is not in the plugin process's environment.
func TestPluginEnvironmentIsAllowlisted(t *testing.T) {
	const canary = "WAHUB_E2E_CANARY=canary-7f3a91"
	t.Setenv("WAHUB_E2E_CANARY", "canary-7f3a91")
	t.Setenv("WHATSAPP_ACCESS_TOKEN", "canary-access-token")
	t.Setenv("LC_TIME", "C")
	h := newHub(t, noopConfig)
	c := h.waitConnector("sink", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" && c.PID != 0 })
	environ := func(pid int) ([]string, error) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), err
	}
	// The hub is non-dumpable, so only root reads its environment; a test
	// running as another user cannot (nor can a plugin), and that is fine.
	hub, err := environ(h.cmd.Process.Pid)
	switch {
	case errors.Is(err, fs.ErrPermission):
	case err != nil:
		t.Fatal(err)
	case !slices.Contains(hub, canary):
		t.Fatalf("the hub itself lacks the canary; the test proves nothing: %q", hub)
	}
	plugin, err := environ(c.PID)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range plugin {
		if strings.Contains(kv, "canary") {
			t.Errorf("plugin environment has %q", kv)
		}
	}
	names := map[string]bool{}
	for _, kv := range plugin {
		name, _, _ := strings.Cut(kv, "=")
		names[name] = true
	}
	for _, want := range []string{"PATH", "LC_TIME", "PLUGIN_CLIENT_CERT"} {
		if !names[want] {
			t.Errorf("plugin environment lacks %s: %q", want, slices.Sorted(maps.Keys(names)))
		}
	}
}

// newHubIn is newHub in a directory the test prepared.
func newHubIn(t *testing.T, dir, cfg string) *hubProc {
	t.Helper()
	h := &hubProc{t: t, dir: dir, cfgPath: filepath.Join(dir, "connectors.yaml")}
	if err := os.WriteFile(h.cfgPath, []byte(strings.ReplaceAll(cfg, "{{DIR}}", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	t.Cleanup(func() {
		if h.running() {
			h.kill()
		}
		if t.Failed() {
			t.Logf("hub log:\n%s", h.log())
		}
	})
	return h
}

// gitData makes dir/data as a checkout of the repository has it: 0755
// (from git and the umask) with a .gitkeep.
func gitData(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", ".gitkeep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// relativeStore is testConfig with the shipped file's relative store path.
var relativeStore = strings.Replace(testConfig, "path: {{DIR}}/wahub.db", "path: data/wahub.db", 1)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The store holds customer messages: its directory is 0700 and the
// database, its WAL and SHM, the lock and every backup 0600, whatever the
// umask; a directory shared with other files is left alone, with a
// warning.
func TestStoreFilesArePrivate(t *testing.T) {
	// The most permissive umask: every mode below is the hub's doing.
	defer syscall.Umask(syscall.Umask(0))
	dir := t.TempDir()
	gitData(t, dir)
	h := newHubIn(t, dir, relativeStore)
	if out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("text.json")); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	backup := filepath.Join(dir, "backup.db")
	if out, errOut, code := h.wahub("backup", backup); code != 0 {
		t.Fatalf("backup: %s%s", out, errOut)
	}
	data := filepath.Join(dir, "data")
	if m := mode(t, data); m != 0o700 {
		t.Errorf("%s: mode %04o, want 0700", data, m)
	}
	for _, f := range []string{"data/wahub.db", "data/wahub.db-wal", "data/wahub.db-shm", "data/wahub.db.lock", "backup.db"} {
		if m := mode(t, filepath.Join(dir, f)); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, m)
		}
	}
	if strings.Contains(h.log(), "accessible to other users") {
		t.Errorf("warned about a directory it tightened:\n%s", h.log())
	}

	// A directory that holds other things is the operator's: warn, do
	// not chmod it.
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shared, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h2 := newHubIn(t, shared, testConfig)
	if m := mode(t, shared); m != 0o755 {
		t.Errorf("the hub changed a shared directory to %04o", m)
	}
	if m := mode(t, filepath.Join(shared, "wahub.db")); m != 0o600 {
		t.Errorf("wahub.db in a shared directory: mode %04o, want 0600", m)
	}
	if !strings.Contains(h2.log(), "accessible to other users") || !strings.Contains(h2.log(), "chmod 700 "+shared) {
		t.Errorf("no warning about the shared directory:\n%s", h2.log())
	}
}

// One SQLite store, one hub: a second `wahub serve` on the same file
// exits naming the first one's pid, while backup and route --explain
// still work; once the first is gone (even SIGKILLed) a new hub starts.
func TestSecondHubOnSameStoreRefused(t *testing.T) {
	dir := t.TempDir()
	gitData(t, dir)
	h := newHubIn(t, dir, relativeStore)
	_, errOut, code := h.wahub("serve")
	want := fmt.Sprintf("store data/wahub.db is in use by another wahub (pid %d)", h.cmd.Process.Pid)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code == 0 || lines[len(lines)-1] != "wahub: "+want {
		t.Fatalf("second serve: exit %d, stderr %q; want non-zero and %q", code, errOut, "wahub: "+want)
	}
	if out, errOut, code := h.wahub("backup", filepath.Join(dir, "copy.db")); code != 0 {
		t.Errorf("backup while the hub runs: exit %d: %s%s", code, out, errOut)
	}
	if out, errOut, code := h.wahub("route", "--explain", fixture("text.json")); code != 0 {
		t.Errorf("route --explain while the hub runs: exit %d: %s%s", code, out, errOut)
	}
	h.kill()
	// The kernel drops the lock with the process, plugins included.
	h2 := newHubIn(t, dir, relativeStore)
	if code := h2.stop(); code != 0 {
		t.Fatalf("hub after the first was killed: exit %d\n%s", code, h2.log())
	}
}

// buildPlugin builds the external plugin in testdata/NAME and returns its
// path and sha256.
func buildPlugin(t *testing.T, name string) (path, sum string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", path, "./host/e2e/testdata/"+name)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("%x", sha256.Sum256(raw))
}

type deadLetterPage struct {
	DeadLetters []store.DeadLetter `json:"deadletters"`
	NextAfter   int64              `json:"next_after"`
}

// A plugin's error text is stored capped (a few KiB of valid UTF-8 with a
// marker), in the dead letter and in every attempt; the dead-letter list
// pages, and `wahub deadletters list` reads every page.
func TestHugePluginErrorIsStoredCapped(t *testing.T) {
	plugin, sum := buildPlugin(t, "bigerr")
	h := newHub(t, testConfig+fmt.Sprintf(`
connectors:
  bad:
    plugin: %s
    sha256: %s
subscriptions:
  - connector: bad
    events: ["*"]
`, plugin, sum))
	if out, errOut, code := h.wahub("simulate", "--url", h.url(""), fixture("text.json"), fixture("batch_mixed.json")); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	h.waitConnector("bad", "5 dead letters", func(c admin.ConnectorStatus) bool { return c.Dead == 5 })
	var all deadLetterPage
	if code := h.api("GET", "/api/v1/deadletters?connector=bad", nil, &all); code != http.StatusOK || len(all.DeadLetters) != 5 {
		t.Fatalf("GET /api/v1/deadletters: %d, %d dead letters", code, len(all.DeadLetters))
	}
	for _, dl := range all.DeadLetters {
		if len(dl.LastError) > 4096 || !utf8.ValidString(dl.LastError) ||
			!strings.HasPrefix(dl.LastError, "502 from upstream: <html>") || !strings.Contains(dl.LastError, "[truncated, ") {
			t.Errorf("dead letter %s: %d bytes of last_error, ending %q", dl.EventID, len(dl.LastError), dl.LastError[max(0, len(dl.LastError)-60):])
		}
		var ev struct {
			Deliveries []struct {
				Attempts []struct{ Error string }
			}
		}
		h.api("GET", "/api/v1/events/"+dl.EventID, nil, &ev)
		for _, d := range ev.Deliveries {
			for _, a := range d.Attempts {
				if len(a.Error) > 4096 {
					t.Errorf("event %s: an attempt's error is %d bytes", dl.EventID, len(a.Error))
				}
			}
		}
	}

	// Two at a time: three pages, the last without next_after.
	var seen []string
	after := int64(0)
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("paging never ended")
		}
		var page deadLetterPage
		path := fmt.Sprintf("/api/v1/deadletters?connector=bad&limit=2&after=%d", after)
		if code := h.api("GET", path, nil, &page); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		for _, dl := range page.DeadLetters {
			seen = append(seen, dl.EventID)
		}
		if page.NextAfter == 0 {
			break
		}
		after = page.NextAfter
	}
	var want []string
	for _, dl := range all.DeadLetters {
		want = append(want, dl.EventID)
	}
	if !slices.Equal(seen, want) {
		t.Errorf("paged %v, want %v", seen, want)
	}
	if code := h.api("GET", "/api/v1/deadletters?limit=5000", nil, nil); code != http.StatusBadRequest {
		t.Errorf("limit=5000: %d, want 400", code)
	}
	out, errOut, code := h.wahub("deadletters", "list", "--url", h.url(""), "--connector", "bad")
	if code != 0 || strings.Count(out, "\n") != 6 || len(out) > 6*4096+1000 {
		t.Errorf("deadletters list: exit %d, %d bytes:\n%.2000s%s", code, len(out), out, errOut)
	}
}

// 12 events of about 6 MiB each (a 3 MiB text, and the raw item with it)
// are 72 MiB, over the 64 MiB gRPC message between hub and plugin: the hub
// splits the batch by size and every event is delivered, each at its first
// attempt.
func TestLargeEventsBatchIsSplit(t *testing.T) {
	h := newHub(t, strings.Replace(noopConfig, "server:\n", "server:\n  max_body_bytes: 8388608\n", 1))
	h.waitConnector("sink", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	// Paused, so that all twelve are due together in one batch.
	if code := h.api("POST", "/api/v1/connectors/sink/pause", nil, nil); code != http.StatusOK {
		t.Fatalf("pause: %d", code)
	}
	text := strings.Repeat("fatura ", 3<<20/7)
	const n = 12
	for i := range n {
		h.postText(fmt.Sprintf("55119876500%02d", i), fmt.Sprintf("wamid.big%02d", i), text, time.Now())
	}
	if code := h.api("POST", "/api/v1/connectors/sink/resume", nil, nil); code != http.StatusOK {
		t.Fatalf("resume: %d", code)
	}
	c := h.waitConnectorFor(3*time.Minute, "sink", "12 delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == n || c.Dead > 0 })
	if c.Delivered != n || c.Dead != 0 || c.Retrying != 0 {
		t.Fatalf("connector %+v: want all %d delivered", c, n)
	}
	var ev struct {
		Deliveries []struct {
			State    string
			Attempts []struct{ Outcome string }
		}
	}
	// One event, not the log: twelve 6 MiB events in one answer would
	// only measure how fast a loaded machine writes 72 MB.
	var first struct{ Events []sdk.Event }
	if code := h.api("GET", "/api/v1/events?limit=1", nil, &first); code != http.StatusOK || len(first.Events) != 1 {
		t.Fatalf("GET /api/v1/events?limit=1: %d, %d events", code, len(first.Events))
	}
	h.api("GET", "/api/v1/events/"+first.Events[0].ID, nil, &ev)
	if len(ev.Deliveries) != 1 || len(ev.Deliveries[0].Attempts) != 1 || ev.Deliveries[0].Attempts[0].Outcome != "delivered" {
		t.Errorf("first event's deliveries %+v: want one delivered attempt", ev.Deliveries)
	}
}

// postSigned POSTs a webhook body signed with the test app secret.
func postSigned(t *testing.T, h *hubProc, body []byte) int {
	t.Helper()
	req, err := http.NewRequest("POST", h.url("/webhooks/whatsapp"), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Hub-Signature-256", ingest.Sign([]byte("test-app-secret"), body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// get sends a GET with the given Host and headers and returns the status.
func get(t *testing.T, url, host string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The sandbox (published admin token, fakes that accept anything) answers
// only requests addressed to a loopback name: a page on another name that
// resolves to 127.0.0.1 (DNS rebinding) gets 421. A hook whose header is
// not UTF-8 is a client error: 400, logged below ERROR, before any plugin
// sees it.
func TestSandboxRefusesForeignHostAndBadHeaders(t *testing.T) {
	h := newHub(t, shippedTemplate(t))
	h.waitConnector("slack", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	_, port, _ := strings.Cut(h.addr, ":")
	token := map[string]string{"Authorization": "Bearer " + adminToken}
	for _, tc := range []struct {
		path, host string
		want       int
	}{
		{"/sandbox?format=json", "", http.StatusOK},
		{"/sandbox?format=json", "localhost:" + port, http.StatusOK},
		{"/sandbox?format=json", "[::1]:" + port, http.StatusOK},
		{"/sandbox?format=json", "rebind.evil.example:" + port, http.StatusMisdirectedRequest},
		{"/sandbox?format=json", "127.0.0.1.nip.io:" + port, http.StatusMisdirectedRequest},
		{"/api/v1/connectors", "", http.StatusOK},
		{"/api/v1/connectors", "rebind.evil.example", http.StatusMisdirectedRequest},
		{"/metrics", "rebind.evil.example", http.StatusMisdirectedRequest},
	} {
		if got := get(t, h.url(tc.path), tc.host, token); got != tc.want {
			t.Errorf("GET %s with Host %q: %d, want %d", tc.path, tc.host, got, tc.want)
		}
	}

	req, _ := http.NewRequest("POST", h.url("/hooks/slack"), strings.NewReader(`{"type":"event_callback"}`))
	req.Header.Set("X-Slack-Signature", "v0=\xff\xfe")
	req.Header.Set("X-Slack-Request-Timestamp", "1764000000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "X-Slack-Signature") {
		t.Errorf("hook with a non-UTF-8 header: %d %s, want 400 naming the header", resp.StatusCode, body)
	}
	for _, line := range strings.Split(h.log(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "hook") {
			t.Errorf("a client's bad header logged at ERROR: %s", line)
		}
	}
}

// A signed webhook whose body is not valid UTF-8 is refused (400) and
// nothing is stored, so every JSON the hub serves stays valid.
func TestInvalidUTF8WebhookRefused(t *testing.T) {
	h := newHub(t, testConfig)
	text, err := os.ReadFile(fixture("text.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(text, []byte(`"body": "`), []byte("\"body\": \"\xc3\x28 \xff"), 1)
	if bytes.Equal(bad, text) {
		t.Fatal("text.json has no text body to spoil")
	}
	if code := postSigned(t, h, bad); code != http.StatusBadRequest {
		t.Fatalf("invalid UTF-8: %d, want 400", code)
	}
	if evs := h.allEvents(); len(evs) != 0 {
		t.Fatalf("stored %d events from a refused body", len(evs))
	}
	// The same body, valid, is taken, and what the API serves is JSON.
	if code := postSigned(t, h, text); code != http.StatusOK {
		t.Fatalf("valid body: %d", code)
	}
	if evs := h.allEvents(); len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
}

// server.metrics_listen moves /metrics and /readyz off the public
// listener; the admin token's scheme is case-insensitive.
func TestMetricsListenAndBearerScheme(t *testing.T) {
	h := newHub(t, strings.Replace(testConfig, "server:\n", "server:\n  metrics_listen: 127.0.0.1:0\n", 1))
	var metricsAddr string
	for _, line := range strings.Split(h.log(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics listening" {
			metricsAddr = rec.Addr
		}
	}
	if metricsAddr == "" {
		t.Fatalf("no \"metrics listening\" line:\n%s", h.log())
	}
	for _, tc := range []struct {
		url  string
		want int
	}{
		{h.url("/metrics"), http.StatusNotFound},
		{h.url("/readyz"), http.StatusNotFound},
		{h.url("/healthz"), http.StatusOK},
		{"http://" + metricsAddr + "/metrics", http.StatusOK},
		{"http://" + metricsAddr + "/healthz", http.StatusOK},
		{"http://" + metricsAddr + "/api/v1/connectors", http.StatusNotFound},
		{"http://" + metricsAddr + "/webhooks/whatsapp", http.StatusNotFound},
	} {
		if got := get(t, tc.url, "", nil); got != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.url, got, tc.want)
		}
	}
	// /readyz answers 200 or 503 (plugins), but from the metrics listener.
	if got := get(t, "http://"+metricsAddr+"/readyz", "", nil); got != http.StatusOK && got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz on metrics_listen: %d", got)
	}
	for _, auth := range []string{"bearer " + adminToken, "BEARER " + adminToken, "Bearer  " + adminToken} {
		if got := get(t, h.url("/api/v1/connectors"), "", map[string]string{"Authorization": auth}); got != http.StatusOK {
			t.Errorf("Authorization %q: %d, want 200", auth, got)
		}
	}
	if got := get(t, h.url("/api/v1/connectors"), "", map[string]string{"Authorization": "Basic " + adminToken}); got != http.StatusUnauthorized {
		t.Errorf("Basic scheme: %d, want 401", got)
	}
}
