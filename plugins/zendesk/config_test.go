package zendesk_test

import (
	"testing"

	"github.com/wahub/wahub/plugins/zendesk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConfig(t *testing.T) {
	const tok = "s3cret-t0ken"
	base := `"email": "ops@acme.example", "token": "` + tok + `"`
	cases := []sdktest.ConfigCase{
		{"subdomain", `{"subdomain": "acme", ` + base + `}`, ""},
		{"subdomain with domain", `{"subdomain": "acme.zendesk.com", ` + base + `}`, ""},
		{"api_url", `{"api_url": "http://127.0.0.1:9/sandbox/zendesk/", ` + base + `}`, ""},
		{"api_url with /api/v2", `{"api_url": "https://acme.zendesk.com/api/v2", ` + base + `}`, ""},
		{"everything", `{"subdomain": "acme", ` + base + `, "webhook_secret": "w", "priorities": {"billing": "Urgent"}, "groups": {"billing": 1}, "reopen_within": "3d", "tags": ["x"], "timeout": "5s"}`, ""},
		{"nothing", `{}`, "connectors.zendesk.config.subdomain: required"},
		{"bad subdomain", `{"subdomain": "acme corp", ` + base + `}`, "connectors.zendesk.config.subdomain: \"acme corp\" is not a Zendesk subdomain"},
		{"relative api_url", `{"api_url": "acme.zendesk.com", ` + base + `}`, "connectors.zendesk.config.api_url: must be an absolute"},
		{"api_url with credentials", `{"api_url": "https://u:p@acme.zendesk.com", ` + base + `}`, "connectors.zendesk.config.api_url: must not carry credentials"},
		{"no email", `{"subdomain": "acme", "token": "` + tok + `"}`, "connectors.zendesk.config.email: required"},
		{"bad email", `{"subdomain": "acme", "email": "ops", "token": "` + tok + `"}`, "connectors.zendesk.config.email: \"ops\" is not an email"},
		{"no token", `{"subdomain": "acme", "email": "ops@acme.example"}`, "connectors.zendesk.config.token: required"},
		{"bad priority", `{"subdomain": "acme", ` + base + `, "priorities": {"billing": "asap"}}`, "connectors.zendesk.config.priorities.billing: \"asap\" is not a Zendesk priority"},
		{"bad group", `{"subdomain": "acme", ` + base + `, "groups": {"billing": 0}}`, "connectors.zendesk.config.groups.billing"},
		{"bad reopen_within", `{"subdomain": "acme", ` + base + `, "reopen_within": "soon"}`, "connectors.zendesk.config.reopen_within: \"soon\" is not a duration"},
		{"negative reopen_within", `{"subdomain": "acme", ` + base + `, "reopen_within": "-1h"}`, "connectors.zendesk.config.reopen_within"},
		{"empty tag", `{"subdomain": "acme", ` + base + `, "tags": [" "]}`, "connectors.zendesk.config.tags[0]: empty tag"},
		{"bad timeout", `{"subdomain": "acme", ` + base + `, "timeout": "0s"}`, "connectors.zendesk.config.timeout"},
		{"unknown key", `{"subdomain": "acme", ` + base + `, "password": "x"}`, "connectors.zendesk.config.password: unknown key"},
		{"wrong type", `{"subdomain": "acme", ` + base + `, "tags": "x"}`, "connectors.zendesk.config.tags: expected"},
	}
	sdktest.CheckConfigs(t, zendesk.New, "zendesk", cases, tok)
}

func TestDescribe(t *testing.T) {
	if info := zendesk.New().Describe(); info.Name != zendesk.Name || info.Version != zendesk.Version {
		t.Errorf("Describe = %+v", info)
	}
}
