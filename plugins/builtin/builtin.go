// Package builtin is the list of connectors compiled into wahub. Adding a
// connector is its own package plus one line here: the configuration's
// plugin names, the `wahub __plugin` table and the sandbox's fakes all
// derive from this list.
package builtin

import (
	"github.com/wahub/wahub/plugins/bitrix24"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/plugins/hubspot"
	"github.com/wahub/wahub/plugins/kafka/kafkatest"
	"github.com/wahub/wahub/plugins/nats/natstest"
	"github.com/wahub/wahub/plugins/noop"
	"github.com/wahub/wahub/plugins/registry"
	"github.com/wahub/wahub/plugins/slack"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// Plugins are the built-in connectors.
var Plugins = registry.New(
	bitrix24.Plugin,
	freshdesktest.Plugin,
	hubspot.Plugin,
	kafkatest.Plugin,
	natstest.Plugin,
	noop.Plugin,
	slack.Plugin,
	webhooktest.Plugin,
	zendesktest.Plugin,
)
