package bitrix24

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

const secretCode = "s3cr3tc0de42"

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, cfg, want string
	}{
		{"nothing", `{}`, "connectors.crm.config.webhook_url: required"},
		{"unknown key", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "webhook": "x"}`, "connectors.crm.config.webhook: unknown key"},
		{"attach_media not a bool", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "attach_media": "no"}`, "connectors.crm.config.attach_media"},
		{"not a URL", `{"webhook_url": "a.bitrix24.com/rest/1/` + secretCode + `"}`, "config.webhook_url: not an http(s) URL"},
		{"method in URL", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/crm.contact.add.json"}`, "config.webhook_url: the path must end in /rest/<user id>/<webhook code>/"},
		{"OAuth URL", `{"webhook_url": "https://a.bitrix24.com/rest/"}`, "config.webhook_url: the path must end in"},
		{"both forms", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "token": "` + secretCode + `"}`, "set either webhook_url or api_url"},
		{"token without api_url", `{"token": "` + secretCode + `"}`, "config.api_url: required with token"},
		{"api_url without token", `{"api_url": "https://a.bitrix24.com"}`, "config.token: required with api_url"},
		{"bad user id", `{"api_url": "https://a.bitrix24.com", "token": "` + secretCode + `", "user_id": "admin"}`, "config.user_id:"},
		{"token with slash", `{"api_url": "https://a.bitrix24.com", "token": "a/b"}`, "config.token:"},
		{"entity", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "entity": "deal"}`, `config.entity: "deal" is not contact or lead`},
		{"rate", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "requests_per_second": 0}`, "config.requests_per_second:"},
		{"rate too high", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "requests_per_second": "100"}`, "config.requests_per_second:"},
		{"timeout", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "timeout": "soon"}`, "config.timeout:"},
		{"create field name", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "create_fields": {"source": "WEB"}}`, "config.create_fields:"},
		{"create field reserved", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "create_fields": {"PHONE": "1"}}`, "config.create_fields.PHONE: PHONE is set by the connector"},
		{"sync interval", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"interval": "1s", "fields": {"tier": "UF_CRM_TIER"}}}`, "config.sync.interval:"},
		{"sync no fields", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"interval": "5m"}}`, "config.sync.fields: sync needs at least one field"},
		{"sync field name", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"fields": {"tier": "uf_crm_tier"}}}`, "config.sync.fields.tier:"},
		{"sync multi-field", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"properties": ["EMAIL"]}}`, "EMAIL is a multi-field"},
		{"sync attribute twice", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"fields": {"UF_CRM_A": "UF_CRM_B"}, "properties": ["UF_CRM_A"]}}`, "mapped twice"},
		{"sync wrong type", `{"webhook_url": "https://a.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"fields": ["UF_CRM_TIER"]}}`, "connectors.crm.config.sync.fields: expected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(sdk.Config{Name: "crm", Raw: json.RawMessage(tc.cfg)})
			if err == nil {
				t.Fatalf("accepted %s", tc.cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secretCode) {
				t.Errorf("error %q shows the webhook code", err)
			}
		})
	}
}

func TestConfigForms(t *testing.T) {
	cases := []struct {
		name, cfg         string
		base, portal      string
		entity            string
		rate              float64
		timeout, interval time.Duration
		attrs             string
	}{
		{name: "webhook url", cfg: `{"webhook_url": "https://acme.bitrix24.com/rest/1/` + secretCode + `/"}`,
			base: "https://acme.bitrix24.com/rest/1/" + secretCode + "/", portal: "acme.bitrix24.com/rest/1", entity: "contact", rate: 2, timeout: 30 * time.Second},
		{name: "no trailing slash, lead", cfg: `{"webhook_url": "https://acme.bitrix24.com/rest/12/` + secretCode + `", "entity": "Lead"}`,
			base: "https://acme.bitrix24.com/rest/12/" + secretCode + "/", portal: "acme.bitrix24.com/rest/12", entity: "lead", rate: 2, timeout: 30 * time.Second},
		{name: "sandbox prefix", cfg: `{"webhook_url": "http://127.0.0.1:8081/sandbox/bitrix24/rest/1/` + secretCode + `/"}`,
			base: "http://127.0.0.1:8081/sandbox/bitrix24/rest/1/" + secretCode + "/", portal: "127.0.0.1:8081/sandbox/bitrix24/rest/1", entity: "contact", rate: 2, timeout: 30 * time.Second},
		{name: "three parts, numbers as YAML gives them", cfg: `{"api_url": "https://acme.bitrix24.com/", "user_id": 7, "token": "` + secretCode + `", "requests_per_second": 1.5, "timeout": "10s"}`,
			base: "https://acme.bitrix24.com/rest/7/" + secretCode + "/", portal: "acme.bitrix24.com/rest/7", entity: "contact", rate: 1.5, timeout: 10 * time.Second},
		{name: "numbers as environment overrides give them", cfg: `{"api_url": "http://127.0.0.1:8081/sandbox/bitrix24", "user_id": "1", "token": "` + secretCode + `", "requests_per_second": "1"}`,
			base: "http://127.0.0.1:8081/sandbox/bitrix24/rest/1/" + secretCode + "/", portal: "127.0.0.1:8081/sandbox/bitrix24/rest/1", entity: "contact", rate: 1, timeout: 30 * time.Second},
		{name: "sync", cfg: `{"webhook_url": "https://acme.bitrix24.com/rest/1/` + secretCode + `/", "sync": {"fields": {"tier": "UF_CRM_TIER", "owner": "ASSIGNED_BY_ID"}, "properties": ["UF_CRM_SEGMENT"]}}`,
			base: "https://acme.bitrix24.com/rest/1/" + secretCode + "/", portal: "acme.bitrix24.com/rest/1", entity: "contact", rate: 2, timeout: 30 * time.Second,
			interval: 5 * time.Minute, attrs: "UF_CRM_SEGMENT=UF_CRM_SEGMENT owner=ASSIGNED_BY_ID tier=UF_CRM_TIER"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseConfig(sdk.Config{Name: "crm", Raw: json.RawMessage(tc.cfg)})
			if err != nil {
				t.Fatal(err)
			}
			var attrs []string
			for _, a := range s.sync.attrs {
				attrs = append(attrs, a.attr+"="+a.field)
			}
			if s.base != tc.base || s.portal != tc.portal || s.entity != tc.entity || s.rate != tc.rate || s.timeout != tc.timeout ||
				s.sync.interval != tc.interval || strings.Join(attrs, " ") != tc.attrs {
				t.Errorf("got base %s portal %s entity %s rate %v timeout %s interval %s attrs %q",
					s.base, s.portal, s.entity, s.rate, s.timeout, s.sync.interval, strings.Join(attrs, " "))
			}
		})
	}
}

// wahub check: validation only, no host, no network.
func TestCheckOnly(t *testing.T) {
	r := sdktest.Dial(t, New())
	cfg := sdk.Config{Name: "crm", CheckOnly: true, Raw: json.RawMessage(`{"webhook_url": "https://unreachable.invalid/rest/1/` + secretCode + `/"}`)}
	if err := r.Configure(context.Background(), cfg, nil); err != nil {
		t.Errorf("check-only: %v", err)
	}
	d, err := r.Describe(context.Background())
	if err != nil || d.Name != Name || d.Version != Version {
		t.Errorf("Describe = %+v, %v", d, err)
	}
	caps := strings.Join(d.Capabilities, ",")
	if !strings.Contains(caps, sdk.CapabilitySync) || !strings.Contains(caps, sdk.CapabilityHealth) {
		t.Errorf("capabilities = %s, want sync and health", caps)
	}
}
