package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

//go:embed scaffold/*.tmpl
var scaffold embed.FS

// pluginNameRe is what a scaffolded connector may be called: it becomes a
// connectors.yaml key, a binary name and a Go string.
var pluginNameRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)

// sdkModule is the module plugins require.
const sdkModule = "github.com/wahub/wahub"

// scaffoldData fills the templates.
type scaffoldData struct {
	Name       string
	Module     string
	SDKVersion string
	SDKDir     string // a wahub checkout to replace the module with; "" for none
	GoVersion  string // the checkout's go directive: the SDK needs at least that
}

func newPluginCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Write connector plugins (see also: wahub plugins)",
	}
	var module, sdkDir string
	initCmd := &cobra.Command{
		Use:   "init NAME [DIR]",
		Short: "Write a working external connector: go.mod, main.go, connector.go, a conformance test and a README",
		Long: "init writes a connector plugin that POSTs events to an HTTP endpoint, in DIR (default ./NAME-connector): " +
			"a module of its own that requires the SDK and, with --sdk (default: the wahub checkout found above the " +
			"current directory), replaces it with that checkout. `go test ./...` in DIR runs the SDK's conformance suite.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if !pluginNameRe.MatchString(name) {
				return usageErr(fmt.Errorf("plugin init: %q is not a plugin name: lower-case letters, digits and -, starting with a letter (such as acme-crm)", name))
			}
			dir := name + "-connector"
			if len(args) == 2 {
				dir = args[1]
			}
			if sdkDir == "" {
				wd, err := os.Getwd()
				if err != nil {
					return runtimeErr(err)
				}
				sdkDir = findCheckout(wd)
			} else if findCheckout(sdkDir) != mustAbs(sdkDir) {
				return usageErr(fmt.Errorf("plugin init: --sdk %s: not a wahub checkout (its go.mod must say module %s)", sdkDir, sdkModule))
			}
			if module == "" {
				module = "example.com/" + name + "-connector"
			}
			if sdkDir == "" {
				return usageErr(errors.New("plugin init: no wahub checkout above the current directory to build the SDK from; run it inside one, or pass --sdk DIR"))
			}
			d := scaffoldData{Name: name, Module: module, SDKVersion: "v0.0.0-00010101000000-000000000000", SDKDir: sdkDir, GoVersion: goDirective(sdkDir)}
			files, err := writeScaffold(dir, d)
			if err != nil {
				return runtimeErr(err)
			}
			for _, f := range files {
				fmt.Fprintln(g.stdout, "wrote", f)
			}
			fmt.Fprintf(g.stdout, "next: cd %s && go test ./... && go build -o %s-connector .\n", dir, name)
			return nil
		},
	}
	initCmd.Flags().StringVar(&module, "module", "", "the new module's path (default example.com/NAME-connector)")
	initCmd.Flags().StringVar(&sdkDir, "sdk", "", "the wahub checkout go.mod replaces the SDK with (default: found above the current directory)")
	cmd.AddCommand(initCmd)
	return cmd
}

// writeScaffold renders every template into dir, which must not exist or
// be empty: init never overwrites a file.
func writeScaffold(dir string, d scaffoldData) ([]string, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("plugin init: %s is not empty; name a new directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plugin init: %w", err)
	}
	tmpls, err := fs.Glob(scaffold, "scaffold/*.tmpl")
	if err != nil {
		return nil, err
	}
	var written []string
	for _, name := range tmpls {
		t, err := template.ParseFS(scaffold, name)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, d); err != nil {
			return nil, err
		}
		out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(name), ".tmpl"))
		if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("plugin init: %w", err)
		}
		written = append(written, out)
	}
	return written, nil
}

// findCheckout returns the absolute path of the wahub checkout at or above
// dir, or "".
func findCheckout(dir string) string {
	dir = mustAbs(dir)
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			if first, _, _ := strings.Cut(string(raw), "\n"); strings.TrimSpace(first) == "module "+sdkModule {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// goDirective reads the go line of the checkout's go.mod.
func goDirective(dir string) string {
	raw, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
				return v
			}
		}
	}
	return "1.26"
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
