package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/sdk"
)

// expectedIDs parses the fixtures the way the hub does, to know which
// events a successful POST must have kept.
func expectedIDs(t *testing.T, files ...string) map[string]sdk.EventType {
	t.Helper()
	ids := map[string]sdk.EventType{}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		evs, err := ingest.Parse(body, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, ev := range evs {
			ids[ev.ID] = ev.Type
		}
	}
	return ids
}

// allEvents pages through the admin API's log.
func (h *hubProc) allEvents() []sdk.Event {
	h.t.Helper()
	var all []sdk.Event
	var after int64
	for {
		var page struct {
			Events []sdk.Event `json:"events"`
		}
		if code := h.api("GET", fmt.Sprintf("/api/v1/events?after=%d&limit=1000", after), nil, &page); code != http.StatusOK {
			h.t.Fatalf("GET /api/v1/events: %d", code)
		}
		if len(page.Events) == 0 {
			return all
		}
		all = append(all, page.Events...)
		after = page.Events[len(page.Events)-1].Seq
	}
}

// batchBody builds one webhook body carrying n text messages, as Meta does
// when it batches.
func batchBody(n int, prefix string) []byte {
	var msgs []string
	for i := 0; i < n; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"from":"55119%07d","id":"wamid.%s.%05d","timestamp":"1764001000","type":"text","text":{"body":"mensagem %d"}}`, i%50, prefix, i, i))
	}
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"messages":[` +
		strings.Join(msgs, ",") + `]}}]}]}`)
}

func TestEveryAcknowledgedEventSurvivesSIGKILL(t *testing.T) {
	h := newHub(t, testConfig)
	files, err := filepath.Glob(fixture("*.json"))
	if err != nil || len(files) < 19 {
		t.Fatalf("fixtures: %v (%d files)", err, len(files))
	}
	out, errOut, code := h.wahub(append([]string{"simulate", "--url", h.url("")}, files...)...)
	if code != 0 {
		t.Fatalf("simulate exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got := strings.Count(out, ": 200 "); got != len(files) {
		t.Fatalf("%d of %d fixtures answered 200:\n%s", got, len(files), out)
	}

	// A batch of 1,000 items, then SIGKILL the moment its 200 is in.
	batch := filepath.Join(h.dir, "batch1000.json")
	if err := os.WriteFile(batch, batchBody(1000, "KILL"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = h.wahub("simulate", "--url", h.url(""), batch)
	h.kill()
	if code != 0 || !strings.Contains(out, `: 200 {"events":1000,"new":1000}`) {
		t.Fatalf("batch: exit %d\n%s%s", code, out, errOut)
	}

	h.start()
	want := expectedIDs(t, append(files, batch)...)
	got := h.allEvents()
	seen := map[string]bool{}
	derived := 0
	for _, ev := range got {
		if seen[ev.ID] {
			t.Errorf("event %s stored twice", ev.ID)
		}
		seen[ev.ID] = true
		if ev.Preference != nil && ev.Preference.Source != "" {
			// The hub's own announcement of a consent keyword (PARAR),
			// not a webhook item.
			derived++
			continue
		}
		if want[ev.ID] == "" {
			t.Errorf("unexpected event %s (%s)", ev.ID, ev.Type)
		} else if want[ev.ID] != ev.Type {
			t.Errorf("event %s is %s, want %s", ev.ID, ev.Type, want[ev.ID])
		}
	}
	var missing []string
	for id := range want {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged events lost after SIGKILL, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}

	// Meta's retries of everything add nothing.
	out, _, code = h.wahub(append([]string{"simulate", "--url", h.url("")}, append(files, batch)...)...)
	if code != 0 || strings.Contains(out, `"new":1`) || strings.Count(out, `"new":0`) != len(files)+1 {
		t.Fatalf("re-posting duplicates: exit %d\n%s", code, out)
	}
	if n := len(h.allEvents()); n != len(want)+derived {
		t.Fatalf("%d events after duplicates, want %d", n, len(want)+derived)
	}
	if code := h.stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
}

func TestWebhookAnswers(t *testing.T) {
	h := newHub(t, testConfig)
	text, err := os.ReadFile(fixture("text.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(body []byte, sig string) int {
		req, _ := http.NewRequest("POST", h.url("/webhooks/whatsapp"), bytes.NewReader(body))
		if sig != "" {
			req.Header.Set(ingest.SignatureHeader, sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(query string) (int, string) {
		resp, err := http.Get(h.url("/webhooks/whatsapp?" + query))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	sign := func(secret string, body []byte) string { return ingest.Sign([]byte(secret), body) }
	notEnvelope := []byte(`{"object":"page","entry":[]}`)
	huge := bytes.Repeat([]byte(" "), 4<<20+1)

	tests := []struct {
		name string
		code int
		do   func() int
	}{
		{"verification echoes the challenge", 200, func() int {
			code, body := get("hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1158201444%3Cx%3E")
			if body != "1158201444<x>" {
				t.Errorf("challenge echoed as %q", body)
			}
			return code
		}},
		{"verification with a wrong token", 403, func() int {
			code, _ := get("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
			return code
		}},
		{"missing signature", 401, func() int { return post(text, "") }},
		{"signed with the verify token", 401, func() int { return post(text, sign("test-verify-token", text)) }},
		{"malformed signature", 401, func() int { return post(text, "sha256=zz") }},
		{"not an envelope", 400, func() int { return post(notEnvelope, sign("test-app-secret", notEnvelope)) }},
		{"too large", 413, func() int { return post(huge, sign("test-app-secret", huge)) }},
		{"signed with the old secret during rotation", 200, func() int { return post(text, sign("old-app-secret", text)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.do(); got != tt.code {
				t.Errorf("status %d, want %d", got, tt.code)
			}
		})
	}
	if evs := h.allEvents(); len(evs) != 1 {
		t.Fatalf("%d events stored, want only the one from the accepted POST", len(evs))
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200} {
		resp, err := http.Get(h.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestCheckNamesTheBrokenKey(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		config  string
		code    int
		mention string
	}{
		{"valid", testConfig, 0, "is valid"},
		{"unknown key", testConfig + "\nroutez: []\n", 2, "routez"},
		{"route to unknown team", strings.Replace(testConfig, "team: support", "team: suport", 1), 2, "routes[0].team"},
		{"team with unknown connector", strings.Replace(testConfig, "connectors: []", "connectors: [slak]", 1), 2, "teams.support.connectors"},
		{"wrong type", strings.Replace(testConfig, "level: debug", "level: [debug]", 1), 2, "log.level"},
		{"no app secret", strings.Replace(testConfig, "app_secret: [test-app-secret, old-app-secret]", "app_secret: ''", 1), 2, "whatsapp.app_secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(tt.config, "{{DIR}}", dir)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runWahub(t, dir, "check", "--config", path)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out+errOut, tt.mention) {
				t.Errorf("output does not mention %q:\nstdout: %s\nstderr: %s", tt.mention, out, errOut)
			}
			if strings.Contains(out+errOut, "test-app-secret") || strings.Contains(out+errOut, "test-admin-token") {
				t.Errorf("a secret was printed:\n%s%s", out, errOut)
			}
		})
	}
	if _, _, code := runWahub(t, dir, "no-such-command"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if _, _, code := runWahub(t, dir, "check", "--config", filepath.Join(dir, "missing.yaml")); code != 2 {
		t.Errorf("missing config file: exit %d, want 2", code)
	}
}
