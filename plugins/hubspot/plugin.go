package hubspot

import (
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/plugins/registry"
)

// Plugin declares the hubspot connector to the hub (package builtin lists
// it), with hubspottest's fake as its sandbox.
var Plugin = registry.Plugin{Name: Name, New: New, Sandbox: &registry.Sandbox{
	Fake: registry.ServeFake(hubspottest.NewServer, hubspottest.WithToken(hubspottest.SandboxToken)),
	Fill: func(c registry.Config, url string) {
		c.Default("api_url", url)
		c.Default("token", hubspottest.SandboxToken)
	},
}}
