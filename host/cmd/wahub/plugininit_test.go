package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The scaffold is a working connector: written outside this module, it
// builds and passes the SDK's conformance suite as written.
func TestPluginInitBuildsAndPassesTheSuiteOutsideTheModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module outside this one")
	}
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "acme-connector")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"plugin", "init", "acme", dir, "--sdk", repo, "--module", "example.com/acme"}, &stdout, &stderr); code != 0 {
		t.Fatalf("plugin init: exit %d: %s", code, stderr.String())
	}
	for _, f := range []string{"go.mod", "main.go", "connector.go", "connector_test.go", "README.md"} {
		if !strings.Contains(stdout.String(), filepath.Join(dir, f)) {
			t.Errorf("output %q does not list %s", stdout.String(), f)
		}
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "replace github.com/wahub/wahub => "+repo) {
		t.Errorf("go.mod does not replace the SDK with this checkout:\n%s", gomod)
	}
	for _, args := range [][]string{{"vet", "./..."}, {"test", "-count=1", "./..."}, {"build", "-o", "acme-connector", "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// The module cache holds every dependency of this checkout: no
		// proxy or checksum database is needed (nor reachable in CI).
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s in the scaffold: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// A second init into the same directory overwrites nothing.
	if code := run([]string{"plugin", "init", "acme", dir, "--sdk", repo}, &stdout, &stderr); code == 0 {
		t.Error("init into a non-empty directory succeeded")
	}
}

func TestPluginInitRefusesBadNames(t *testing.T) {
	for _, name := range []string{"Acme", "1crm", "a_b", "a/b", ""} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"plugin", "init", name, t.TempDir()}, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", name, code, exitUsage, stderr.String())
		}
	}
}
