package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store/pgtest"
)

// binary is the wahub executable built once for the package.
var binary string

// repoRoot is where go.mod is; fixtures are read relative to it.
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "wahub-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := filepath.Abs("../..")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		repoRoot = root
		binary = filepath.Join(dir, "wahub")
		args := []string{"build", "-o", binary}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./host/cmd/wahub")
		build := exec.Command("go", args...)
		build.Dir = root
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building wahub:", err)
			return 1
		}
		defer pgtest.Stop() // the PostgreSQL server of the scale-out tests, if one started
		return m.Run()
	}())
}

// hubProc is one wahub serve process under test.
type hubProc struct {
	t       *testing.T
	dir     string // holds the config and the store
	cfgPath string
	cmd     *exec.Cmd
	addr    string // host:port it listens on
	exited  chan struct{}
	// ownGroup starts the hub in a process group of its own (its plugins
	// join it), so that a test can signal the group as systemd does.
	ownGroup bool
	logMu    sync.Mutex
	logs     bytes.Buffer
}

// testConfig is the configuration most tests start from. It listens on
// port 0: the harness reads the real address from the hub's log, so no
// test races another for a free port.
const testConfig = `
server:
  listen: 127.0.0.1:0
  admin_token: test-admin-token
store:
  path: {{DIR}}/wahub.db
log:
  level: debug
  format: json
whatsapp:
  app_secret: [test-app-secret, old-app-secret]
  verify_token: test-verify-token
teams:
  support:
    connectors: []
routes:
  - name: default
    team: support
`

const adminToken = "test-admin-token"

// newHub writes cfg (with {{DIR}} replaced by a fresh directory) and starts
// wahub serve on it.
func newHub(t *testing.T, cfg string) *hubProc {
	t.Helper()
	return newHubProc(t, cfg, false)
}

func newHubProc(t *testing.T, cfg string, ownGroup bool) *hubProc {
	t.Helper()
	dir := t.TempDir()
	h := &hubProc{t: t, dir: dir, cfgPath: filepath.Join(dir, "connectors.yaml"), ownGroup: ownGroup}
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

// start runs wahub serve and returns once it listens.
func (h *hubProc) start() {
	h.t.Helper()
	cmd := exec.Command(binary, "serve", "--config", h.cfgPath)
	cmd.Dir = h.dir
	cmd.Env = append(os.Environ(), "WAHUB_CONFIG=")
	if h.ownGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.cmd = cmd
	h.exited = make(chan struct{})
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			h.logMu.Lock()
			h.logs.Write(line)
			h.logs.WriteByte('\n')
			h.logMu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "wahub listening" {
				select {
				case listening <- rec.Addr:
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		close(h.exited)
	}()
	select {
	case h.addr = <-listening:
	case <-h.exited:
		h.t.Fatalf("wahub serve exited before listening:\n%s", h.log())
	case <-time.After(60 * time.Second):
		h.t.Fatalf("wahub serve did not start listening within 60s:\n%s", h.log())
	}
}

func (h *hubProc) running() bool {
	select {
	case <-h.exited:
		return false
	default:
		return true
	}
}

func (h *hubProc) log() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logs.String()
}

// kill ends the hub with SIGKILL: no shutdown code runs.
func (h *hubProc) kill() {
	h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.exited
}

// stop sends SIGTERM and returns the exit status.
func (h *hubProc) stop() int {
	h.t.Helper()
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(30 * time.Second):
		h.t.Fatal("wahub did not exit within 30s of SIGTERM")
	}
	return h.cmd.ProcessState.ExitCode()
}

func (h *hubProc) url(path string) string { return "http://" + h.addr + path }

// wahub runs a CLI command against this hub's configuration.
func (h *hubProc) wahub(args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	return runWahub(h.t, h.dir, append(args, "--config", h.cfgPath)...)
}

func runWahub(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WAHUB_CONFIG=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("running wahub %v: %v", args, err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// api calls the admin API and decodes the JSON answer into out (if not nil).
func (h *hubProc) api(method, path string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.url(path), rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode
}

// fixture returns the path of a webhook body in testdata/whatsapp.
func fixture(name string) string {
	return filepath.Join(repoRoot, "testdata", "whatsapp", name)
}
