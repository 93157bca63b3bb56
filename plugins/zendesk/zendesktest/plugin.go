package zendesktest

import (
	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/plugins/zendesk"
)

// Plugin declares the zendesk connector to the hub (package builtin lists it),
// with this fake as its sandbox. It lives here, not in package zendesk, because
// this package imports zendesk and the declaration
// names the fake.
var Plugin = registry.Plugin{Name: zendesk.Name, New: zendesk.New, Sandbox: &registry.Sandbox{
	Fake: registry.ServeFake(NewServer),
	Fill: func(c registry.Config, url string) {
		c.Default("api_url", url)
		c.Default("email", DefaultEmail)
		c.Default("token", DefaultToken)
		c.Default("webhook_secret", DefaultWebhookSecret)
	},
	Secrets: []string{DefaultWebhookSecret},
}}
