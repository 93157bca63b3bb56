package bitrix24

import (
	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/plugins/registry"
)

// Plugin declares the bitrix24 connector to the hub (package builtin lists
// it), with bitrix24test's fake as its sandbox.
var Plugin = registry.Plugin{Name: Name, New: New, Sandbox: &registry.Sandbox{
	Fake: registry.ServeFake(bitrix24test.NewServer),
	Fill: func(c registry.Config, url string) {
		if c.Has("webhook_url") {
			return // a webhook URL carries the address and the credentials
		}
		c.Default("api_url", url)
		c.Default("user_id", bitrix24test.DefaultUserID)
		c.Default("token", bitrix24test.DefaultToken)
	},
}}
