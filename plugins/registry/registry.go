// Package registry is how a connector compiled into wahub declares itself,
// in the manner of Caddy's module registry but without init-time side
// effects: each connector exports one Plugin value (its name, its factory,
// the fake of its external system the sandbox serves and the keys the
// sandbox fills), and package builtin lists them in one place. Everything
// the hub keeps per built-in connector derives from that list: the
// configuration's known plugin names, the `wahub __plugin` table and the
// sandbox's fakes.
package registry

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/wahub/wahub/sdk"
)

// Plugin is one built-in connector.
type Plugin struct {
	// Name is what connectors.yaml names it by (plugin: <Name>).
	Name string
	// New returns the connector, unconfigured.
	New func() sdk.Connector
	// Sandbox, when set, is what `sandbox: true` does for the connector.
	Sandbox *Sandbox
}

// Sandbox is a connector's part in the sandbox.
type Sandbox struct {
	// Fake starts the fake of the connector's external system, served
	// under /sandbox/<Name>/.
	Fake func() Fake
	// Fill points a configuration of this connector at the fake served at
	// url (http://host:port/sandbox/<Name>, no trailing slash): the API
	// address, credentials and secrets the fake expects, each only where
	// the user left the key unset.
	Fill func(cfg Config, url string)
	// Secrets are the published values Fill hands out that decide what
	// the hub or a receiver trusts (signing and webhook secrets, which
	// the operator chooses): a production hub refuses to run with one of
	// them. API tokens are issued by the external service, which refuses
	// the fakes' values anyway, and are not listed.
	Secrets []string
}

// Fake is a running fake of an external system, as the sandbox serves it.
type Fake struct {
	// Handler serves the fake under /sandbox/<Name>/; nil for a fake that
	// is not HTTP (a broker on its own port).
	Handler http.Handler
	// Snapshot is what the fake received, for GET /sandbox.
	Snapshot func() any
	// Fill, when set, points a configuration at this running fake, before
	// Sandbox.Fill: for a fake whose address is known only once it runs
	// (an in-process broker on a free port). `wahub check`, which runs no
	// fakes, sees only what Sandbox.Fill set.
	Fill func(cfg Config)
	// Close, when set, stops the fake with the sandbox.
	Close func()
}

// HTTPFake is a fake served over HTTP that shows what it holds: what the
// connectors' *test packages' Servers are.
type HTTPFake interface {
	http.Handler
	Snapshot() any
}

// ServeFake is a Sandbox.Fake that builds an HTTP fake with newFake and
// opts, then serves it and its Snapshot.
func ServeFake[F HTTPFake, O any](newFake func(...O) F, opts ...O) func() Fake {
	return func() Fake {
		f := newFake(opts...)
		return Fake{Handler: f, Snapshot: f.Snapshot}
	}
}

// Config is a connector's configuration (connectors.<name>.config) as the
// sandbox fills it.
type Config map[string]any

// Default sets key to v unless the user set it to something.
func (c Config) Default(key string, v any) {
	if cur, ok := c[key]; !ok || cur == "" || cur == nil {
		c[key] = v
	}
}

// Has reports whether the user set key.
func (c Config) Has(key string) bool {
	_, ok := c[key]
	return ok
}

// Set is a list of plugins by name.
type Set struct {
	byName map[string]Plugin
	names  []string
}

// New returns the set of plugins; two with one name are a programming
// error and panic at start.
func New(plugins ...Plugin) *Set {
	s := &Set{byName: make(map[string]Plugin, len(plugins))}
	for _, p := range plugins {
		if p.Name == "" || p.New == nil {
			panic("registry: a plugin needs a name and a factory")
		}
		if _, dup := s.byName[p.Name]; dup {
			panic(fmt.Sprintf("registry: plugin %q declared twice", p.Name))
		}
		s.byName[p.Name] = p
		s.names = append(s.names, p.Name)
	}
	sort.Strings(s.names)
	return s
}

// Lookup finds a plugin by name.
func (s *Set) Lookup(name string) (Plugin, bool) {
	p, ok := s.byName[name]
	return p, ok
}

// Names are the plugins' names, sorted.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// All are the plugins, sorted by name.
func (s *Set) All() []Plugin {
	out := make([]Plugin, len(s.names))
	for i, n := range s.names {
		out[i] = s.byName[n]
	}
	return out
}

// PluginRef is what connectors.<name>.plugin says: the name of a built-in
// plugin, or the path of an executable (anything with a slash, such as
// ./bin/erp-connector). The hub decides by it how to start the plugin and
// whether a sha256 is needed, in one place.
type PluginRef string

// Builtin reports whether the reference names a built-in plugin rather
// than an executable.
func (r PluginRef) Builtin() bool { return !strings.Contains(string(r), "/") }

func (r PluginRef) String() string { return string(r) }
