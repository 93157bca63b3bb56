package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/config"
)

func load(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keys(errs []error) []string {
	var out []string
	for _, err := range errs {
		var ce *config.Error
		if errors.As(err, &ce) {
			out = append(out, ce.Key)
		}
	}
	return out
}

func TestProductionProblems(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"real secrets", `
whatsapp: {app_secret: real, verify_token: mine, access_token: EAAG}
server: {admin_token: long-random}
connectors:
  slack: {plugin: slack, config: {token: xoxb-real, signing_secret: real-signing}}
`, nil},
		{"every published value", `
whatsapp: {app_secret: [sandbox-app-secret], verify_token: sandbox-verify-token, access_token: sandbox-graph-token}
server: {admin_token: sandbox-admin-token}
connectors:
  slack: {plugin: slack, config: {token: xoxb-wahub-sandbox-token, signing_secret: wahub-sandbox-signing-secret}}
  zd: {plugin: zendesk, config: {subdomain: acme, webhook_secret: zendesk-sandbox-webhook-secret}}
  fd: {plugin: freshdesk, config: {domain: acme, webhook_secret: sandbox-freshdesk-webhook-secret}}
  audit: {plugin: webhook, config: {url: "https://x.example", secret: sandbox-webhook-secret}}
  off: {plugin: webhook, enabled: false, config: {secret: sandbox-webhook-secret}}
`, []string{"whatsapp.app_secret", "whatsapp.verify_token", "whatsapp.access_token", "server.admin_token",
			"connectors.audit.config.secret", "connectors.fd.config.webhook_secret", "connectors.slack.config.signing_secret",
			"connectors.zd.config.webhook_secret"}},
		{"one entry of a rotation", `
whatsapp: {app_secret: [new-real, sandbox-app-secret], verify_token: mine}
`, []string{"whatsapp.app_secret[1]"}},
		{"a published value under another key is still public", `
whatsapp: {app_secret: sandbox-admin-token, verify_token: mine}
`, []string{"whatsapp.app_secret"}},
		{"sandbox on: nothing to refuse", `
sandbox: true
whatsapp: {app_secret: sandbox-app-secret, verify_token: sandbox-verify-token}
`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := keys(ProductionProblems(load(t, tc.yaml)))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("keys %v, want %v", got, tc.want)
			}
		})
	}
}

func TestApplySecretsOnlyInTheSandbox(t *testing.T) {
	c := load(t, "sandbox: true\nserver: {admin_token: mine}\n")
	ApplySecrets(c)
	if len(c.WhatsApp.AppSecret) != 1 || c.WhatsApp.AppSecret[0].Reveal() != AppSecret ||
		c.WhatsApp.VerifyToken.Reveal() != VerifyToken || c.Server.AdminToken.Reveal() != "mine" {
		t.Errorf("sandbox: app secret %v, verify token %q, admin token %q", c.WhatsApp.AppSecret,
			c.WhatsApp.VerifyToken.Reveal(), c.Server.AdminToken.Reveal())
	}
	c = load(t, "sandbox: false\n")
	ApplySecrets(c)
	if len(c.WhatsApp.AppSecret) != 0 || c.WhatsApp.VerifyToken.Reveal() != "" || c.Server.AdminToken.Reveal() != "" {
		t.Error("sandbox: false got sandbox secrets")
	}
}
