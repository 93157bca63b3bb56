package slack

import (
	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/plugins/slack/slacktest"
)

// Plugin declares the slack connector to the hub (package builtin lists
// it), with slacktest's fake as its sandbox.
var Plugin = registry.Plugin{Name: Name, New: New, Sandbox: &registry.Sandbox{
	Fake: registry.ServeFake(slacktest.NewServer),
	Fill: func(c registry.Config, url string) {
		c.Default("api_url", url+"/")
		c.Default("token", slacktest.DefaultToken)
		c.Default("signing_secret", slacktest.DefaultSigningSecret)
		c.Default("channel", slacktest.DefaultChannel)
	},
	Secrets: []string{slacktest.DefaultSigningSecret},
}}
