package webhooktest

import (
	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/plugins/webhook"
)

// SandboxSecret is the signing secret the sandbox's receiver checks.
const SandboxSecret = "sandbox-webhook-secret"

// Plugin declares the webhook connector to the hub (package builtin lists it),
// with a Receiver as its sandbox. It lives here, not in package webhook, because
// this package imports webhook (to check its signatures) and the declaration
// names the fake.
var Plugin = registry.Plugin{Name: webhook.Name, New: webhook.New, Sandbox: &registry.Sandbox{
	Fake: func() registry.Fake {
		r := NewHandler([]byte(SandboxSecret))
		return registry.Fake{Handler: r, Snapshot: func() any { return map[string]any{"received": r.Delivered()} }}
	},
	Fill: func(c registry.Config, url string) {
		c.Default("url", url+"/")
		c.Default("secret", SandboxSecret)
	},
	Secrets: []string{SandboxSecret},
}}
