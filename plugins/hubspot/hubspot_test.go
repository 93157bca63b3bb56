package hubspot_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/hubspot"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

func TestConformance(t *testing.T) {
	var fake *hubspottest.Server // the fake of the latest New
	sdktest.Suite{
		Name:         "hubspot",
		RequiredKeys: []string{"token"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			// The real clock: the suite runs the connector over gRPC.
			fake = hubspottest.NewServer(hubspottest.WithToken(token), hubspottest.WithSearchLag(2e9))
			srv := sdktest.Serve(t, fake)
			cfg, _ := json.Marshal(map[string]any{"token": token, "api_url": srv.URL, "search_per_second": 1000,
				"sync": map[string]any{"properties": []string{"tier"}, "interval": "5m"}})
			return hubspot.New(), cfg
		},
		BadConfig: json.RawMessage(`{"token": "` + token + `", "api_url": "ftp://api.hubapi.com"}`),
		AfterRedelivery: func(t *testing.T) {
			// Ana's three messages and Bruno's one, each logged once on
			// one contact per customer; the status, the opt-out and the
			// template update are skipped.
			contacts := fake.Contacts()
			if len(contacts) != 2 {
				t.Fatalf("%d contacts, want 2: %+v", len(contacts), contacts)
			}
			byPhone := map[string]string{}
			for _, c := range contacts {
				byPhone[c.Properties["phone"]] = c.ID
			}
			if n := len(commsOf(fake, byPhone["+5511987650001"])); n != 3 {
				t.Errorf("Ana has %d communications, want 3", n)
			}
			if n := len(commsOf(fake, byPhone["+5521998760002"])); n != 1 {
				t.Errorf("Bruno has %d communications, want 1", n)
			}
			if n := len(fake.Communications()); n != 4 {
				t.Errorf("%d communications in all, want 4", n)
			}
			if n := len(fake.Notes()); n != 0 {
				t.Errorf("%d notes, want 0", n)
			}
		},
	}.Run(t)
}

func TestDescribe(t *testing.T) {
	info := hubspot.New().Describe()
	if info.Name != "hubspot" || hubspot.Name != "hubspot" || info.Version != hubspot.Version {
		t.Errorf("Describe = %+v", info)
	}
	caps := sdk.Capabilities(hubspot.New())
	if strings.Join(caps, ",") != "sync,health" {
		t.Errorf("capabilities %v, want sync and health", caps)
	}
}

func TestConfig(t *testing.T) {
	const tok = `"token": "pat-na1-s3cret"`
	cases := []sdktest.ConfigCase{
		{"minimal", `{` + tok + `}`, ""},
		{"everything", `{` + tok + `, "api_url": "http://127.0.0.1:1/", "timeout": "5s", "requests_per_10s": 150, "search_per_second": 5,
			"search_lag": "2m", "failed_status_notes": false, "sync": {"properties": ["tier", "hubspot_owner_id"], "interval": "5m"}}`, ""},
		{"empty", `{}`, "connectors.hubspot.config.token: required"},
		{"token with newline", `{"token": "pat-na1-s3cret\n"}`, "connectors.hubspot.config.token: contains whitespace"},
		{"api_url relative", `{` + tok + `, "api_url": "/crm"}`, "connectors.hubspot.config.api_url: must be an absolute"},
		{"api_url ftp", `{` + tok + `, "api_url": "ftp://api.hubapi.com"}`, "connectors.hubspot.config.api_url"},
		{"api_url with query", `{` + tok + `, "api_url": "https://api.hubapi.com?hapikey=x"}`, "connectors.hubspot.config.api_url: must not carry credentials or a query"},
		{"bad timeout", `{` + tok + `, "timeout": "soon"}`, "connectors.hubspot.config.timeout: \"soon\" is not a duration such as 10s"},
		{"bad search_lag", `{` + tok + `, "search_lag": "-1s"}`, "connectors.hubspot.config.search_lag"},
		{"negative rate", `{` + tok + `, "requests_per_10s": -5}`, "connectors.hubspot.config.requests_per_10s: must be a positive"},
		{"negative search rate", `{` + tok + `, "search_per_second": -1}`, "connectors.hubspot.config.search_per_second"},
		{"rate as string", `{` + tok + `, "requests_per_10s": "100"}`, "connectors.hubspot.config.requests_per_10s: expected int"},
		{"lead source property not an internal name", `{` + tok + `, "lead_source_property": "Lead Source"}`, "connectors.hubspot.config.lead_source_property: \"Lead Source\" is not a HubSpot property's internal name"},
		{"sync without properties", `{` + tok + `, "sync": {"interval": "5m"}}`, "connectors.hubspot.config.sync.properties: required"},
		{"sync bad property", `{` + tok + `, "sync": {"properties": ["Tier"], "interval": "5m"}}`, "connectors.hubspot.config.sync.properties[0]: \"Tier\" is not"},
		{"sync duplicate property", `{` + tok + `, "sync": {"properties": ["tier", "tier"], "interval": "5m"}}`, "connectors.hubspot.config.sync.properties[1]: \"tier\" is listed twice"},
		{"sync without interval", `{` + tok + `, "sync": {"properties": ["tier"]}}`, "connectors.hubspot.config.sync.interval: required"},
		{"sync bad interval", `{` + tok + `, "sync": {"properties": ["tier"], "interval": "often"}}`, "connectors.hubspot.config.sync.interval: \"often\""},
		{"sync unknown key", `{` + tok + `, "sync": {"properties": ["tier"], "interval": "5m", "every": "1m"}}`, "connectors.hubspot.config.sync.every: unknown key (known keys here: interval, properties)"},
		{"unknown key", `{` + tok + `, "portal_id": 123}`, "connectors.hubspot.config.portal_id: unknown key"},
		{"media settings", `{` + tok + `, "attach_media": false, "files_folder": "/CRM/WhatsApp files/"}`, ""},
		{"files_folder relative", `{` + tok + `, "files_folder": "WhatsApp"}`, "connectors.hubspot.config.files_folder: \"WhatsApp\" is not a folder path"},
		{"files_folder double slash", `{` + tok + `, "files_folder": "/a//b"}`, "connectors.hubspot.config.files_folder: \"/a//b\" is not a folder path"},
		{"files_folder root", `{` + tok + `, "files_folder": "/"}`, "connectors.hubspot.config.files_folder: files go in a folder, not the root"},
		{"attach_media not a bool", `{` + tok + `, "attach_media": "yes"}`, "connectors.hubspot.config.attach_media"},
	}
	sdktest.CheckConfigs(t, hubspot.New, "hubspot", cases, "s3cret")
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	if err := e.connector(nil).(sdk.HealthChecker).Health(context.Background()); err != nil {
		t.Errorf("Health with a good token: %v", err)
	}
	err := e.connector(map[string]any{"token": "pat-na1-wrong"}).(sdk.HealthChecker).Health(context.Background())
	if err == nil {
		t.Fatal("Health with a wrong token: no error")
	}
	containsAll(t, "error", err.Error(), "401", "connectors.hubspot.config.token", "private app")
	if strings.Contains(err.Error(), "pat-na1-wrong") {
		t.Errorf("error %q leaks the token", err)
	}
	if err := hubspot.New().(sdk.HealthChecker).Health(context.Background()); err == nil {
		t.Error("Health before Configure: no error")
	}
}
