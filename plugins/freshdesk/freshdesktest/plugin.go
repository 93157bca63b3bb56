package freshdesktest

import (
	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/registry"
)

// SandboxWebhookSecret is the webhook_secret the sandbox fills in.
const SandboxWebhookSecret = "sandbox-freshdesk-webhook-secret"

// Plugin declares the freshdesk connector to the hub (package builtin lists it),
// with this fake as its sandbox. It lives here, not in package freshdesk, because
// this package imports freshdesk and the declaration
// names the fake.
var Plugin = registry.Plugin{Name: freshdesk.Name, New: freshdesk.New, Sandbox: &registry.Sandbox{
	Fake: registry.ServeFake(NewServer),
	Fill: func(c registry.Config, url string) {
		c.Default("api_url", url)
		c.Default("api_key", DefaultAPIKey)
		c.Default("webhook_secret", SandboxWebhookSecret)
	},
	Secrets: []string{SandboxWebhookSecret},
}}
