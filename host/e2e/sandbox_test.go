package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
)

// The shipped connectors.yaml, as the README's walkthrough runs it: every
// connector a fake inside the hub, fixtures simulated now, an agent's
// Slack reply reaching the customer on the fake WhatsApp.
func TestSandboxWalkthrough(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join(repoRoot, "connectors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(shipped), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	cfg = strings.Replace(cfg, "path: data/wahub.db", "path: {{DIR}}/wahub.db", 1)
	cfg = strings.Replace(cfg, "${WAHUB_ADMIN_TOKEN:-}", adminToken, 1)
	if cfg == string(shipped) {
		t.Fatal("the shipped configuration's listen or store keys moved; update this test")
	}
	h := newHub(t, cfg)
	for _, name := range []string{"slack", "zendesk", "freshdesk", "hubspot", "bitrix24", "audit", "kafka", "nats"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	files, _ := filepath.Glob(fixture("*.json"))
	if out, errOut, code := h.wahub(append([]string{"simulate", "--now", "--url", h.url("")}, files...)...); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	type snapshot struct {
		WhatsApp struct {
			Sent []struct{ WAID, Text string } `json:"sent"`
		} `json:"whatsapp"`
		Slack struct {
			Channels map[string][]json.RawMessage `json:"channels"`
		} `json:"slack"`
		Webhook struct {
			Received []json.RawMessage `json:"received"`
		} `json:"webhook"`
		Kafka struct {
			Topics map[string]struct {
				Records int `json:"records"`
			} `json:"topics"`
		} `json:"kafka"`
		NATS struct {
			Streams map[string]struct {
				Messages int `json:"messages"`
				Newest   []struct {
					Headers map[string]string `json:"headers"`
				} `json:"newest"`
			} `json:"streams"`
		} `json:"nats"`
	}
	get := func() snapshot {
		var s snapshot
		resp, err := http.Get(h.url("/sandbox?format=json"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := get()
		threads := 0
		for _, ts := range s.Slack.Channels {
			threads += len(ts)
		}
		ce := false
		for _, m := range s.NATS.Streams["WAHUB"].Newest {
			ce = ce || m.Headers["ce-type"] == "message.received"
		}
		if threads > 0 && len(s.Webhook.Received) > 0 && s.Kafka.Topics["wahub.message.received"].Records > 0 && ce {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox never showed Slack threads, audit webhooks, Kafka records and NATS CloudEvents: %+v", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, errOut, code := h.wahub("sandbox", "slack-reply", "--url", h.url(""), "--to", "5541988770005", "--text", "Sua fatura foi reenviada")
	if code != 0 {
		t.Fatalf("slack-reply: %s%s", out, errOut)
	}
	for {
		found := false
		for _, m := range get().WhatsApp.Sent {
			found = found || m.Text == "Sua fatura foi reenviada"
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the agent's reply never reached the fake WhatsApp")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The operator's series, scraped.
	resp, err := http.Get(h.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{
		`wahub_ingest_requests_total{`, `wahub_ingest_request_seconds_bucket{`, `wahub_ingest_events_total{type="message.received"}`,
		`wahub_routing_decisions_total{rule="default",team="support"}`,
		`wahub_connector_delivered{connector="slack"}`, `wahub_connector_retrying{connector="slack"}`,
		`wahub_connector_dead_letters{connector="audit"}`, `wahub_connector_lag_seconds{connector="zendesk"}`,
		`wahub_delivery_batch_seconds_bucket{`, `wahub_plugin_restarts{connector="hubspot"}`, `wahub_plugin_up{connector="bitrix24"} 1`,
		`wahub_outbound_messages_total{`, `wahub_outbox_messages{state=`, `wahub_sync_cursor_age_seconds{connector="hubspot"}`,
	} {
		if !strings.Contains(string(metrics), series) {
			t.Errorf("/metrics has no %s", series)
		}
	}

	// The page a person reads.
	req, _ := http.NewRequest("GET", h.url("/sandbox"), nil)
	req.Header.Set("Accept", "text/html")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET /sandbox for a browser: %s", resp.Header.Get("Content-Type"))
	}
}
