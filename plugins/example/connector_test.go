package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// The conformance suite is the first test to write for any connector: it
// runs the connector over gRPC as the hub does and checks the rules in
// Deliver's comment (one result per event, redelivery, cancellation).
func TestConformance(t *testing.T) {
	var path string // the file of the latest New
	sdktest.Suite{
		Name:         "example",
		RequiredKeys: []string{"path"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			path = filepath.Join(t.TempDir(), "events.jsonl")
			return New(), configJSON(t, map[string]any{"path": path})
		},
		BadConfig: json.RawMessage(`{}`),
		// The suite delivered the batch twice; the file must hold each
		// event once.
		AfterRedelivery: func(t *testing.T) {
			var want []string
			for _, ev := range sdktest.Events() {
				want = append(want, ev.ID)
			}
			if got := fileIDs(t, path); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("file holds %v, want each event once: %v", got, want)
			}
		},
	}.Run(t)
}

func TestHook(t *testing.T) {
	const token = "hook-t0ken"
	post := func(body, requestID string) *sdk.HookRequest {
		h := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
		if requestID != "" {
			h.Set("X-Request-Id", requestID)
		}
		return &sdk.HookRequest{Method: http.MethodPost, Path: "/hooks/example", Header: h, Body: []byte(body)}
	}
	cases := []struct {
		name      string
		noToken   bool // configure without hook_token
		req       *sdk.HookRequest
		send      func(sdk.OutboundMessage) (sdk.SendResult, error)
		status    int
		wantSent  []sdk.OutboundMessage
		bodyHasOK bool // the answer is {"ok":true,...}
	}{
		{
			name:      "sends a text",
			req:       post(`{"to": "5511987650001", "text": "Seu pedido saiu para entrega"}`, "req-1"),
			status:    200,
			bodyHasOK: true,
			wantSent:  []sdk.OutboundMessage{{To: "5511987650001", Text: "Seu pedido saiu para entrega", IdempotencyKey: "req-1"}},
		},
		{name: "ping sends nothing", req: post(`{}`, ""), status: 200, bodyHasOK: true},
		{name: "hooks off without a token", noToken: true, req: post(`{"to": "1", "text": "x"}`, "req-1"), status: 403},
		{
			name: "wrong token",
			req: &sdk.HookRequest{Method: http.MethodPost, Header: http.Header{"Authorization": {"Bearer guess"}, "X-Request-Id": {"r"}},
				Body: []byte(`{"to": "1", "text": "x"}`)},
			status: 401,
		},
		{name: "no token", req: &sdk.HookRequest{Method: http.MethodPost, Body: []byte(`{"to": "1", "text": "x"}`)}, status: 401},
		{name: "GET", req: func() *sdk.HookRequest { r := post("", "r"); r.Method = http.MethodGet; return r }(), status: 405},
		{name: "not JSON", req: post(`to=1&text=x`, "req-1"), status: 400},
		{name: "text missing", req: post(`{"to": "5511987650001"}`, "req-1"), status: 400},
		{name: "no X-Request-Id", req: post(`{"to": "5511987650001", "text": "x"}`, ""), status: 400},
		{
			name: "refused by policy",
			req:  post(`{"to": "5511987650001", "text": "promo"}`, "req-2"),
			send: func(sdk.OutboundMessage) (sdk.SendResult, error) {
				return sdk.SendResult{}, &sdk.RefusedError{Code: "opted_out", Message: "the customer opted out"}
			},
			status:   422,
			wantSent: []sdk.OutboundMessage{},
		},
		{
			name: "hub unavailable",
			req:  post(`{"to": "5511987650001", "text": "x"}`, "req-3"),
			send: func(sdk.OutboundMessage) (sdk.SendResult, error) {
				return sdk.SendResult{}, errors.New("store busy")
			},
			status:   503,
			wantSent: []sdk.OutboundMessage{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"path": filepath.Join(t.TempDir(), "events.jsonl"), "hook_token": token}
			if tc.noToken {
				delete(cfg, "hook_token")
			}
			remote, host := sdktest.Start(t, New(), "example", configJSON(t, cfg))
			host.Send = tc.send
			resp, err := remote.HandleHook(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("HandleHook: %v", err)
			}
			if resp.Status != tc.status {
				t.Errorf("status %d (%s), want %d", resp.Status, resp.Body, tc.status)
			}
			var answer struct {
				OK bool `json:"ok"`
			}
			if err := json.Unmarshal(resp.Body, &answer); err != nil || answer.OK != tc.bodyHasOK {
				t.Errorf("answer %s, want ok=%v", resp.Body, tc.bodyHasOK)
			}
			if got, want := sentJSON(t, host.Sent()), sentJSON(t, tc.wantSent); got != want {
				t.Errorf("sent %s, want %s", got, want)
			}
		})
	}

	t.Run("a retried request sends once", func(t *testing.T) {
		cfg := map[string]any{"path": filepath.Join(t.TempDir(), "events.jsonl"), "hook_token": token}
		remote, host := sdktest.Start(t, New(), "example", configJSON(t, cfg))
		for range 2 {
			resp, err := remote.HandleHook(context.Background(), post(`{"to": "5511987650001", "text": "oi"}`, "req-9"))
			if err != nil || resp.Status != 200 {
				t.Fatalf("HandleHook: %v %+v", err, resp)
			}
		}
		if n := len(host.Sent()); n != 1 {
			t.Errorf("%d messages sent, want 1", n)
		}
	})
}

func TestBadConfig(t *testing.T) {
	cases := []struct{ name, cfg, err string }{
		{"no path", `{}`, "connectors.example.config.path: required"},
		{"path is a directory", `{"path": "data/"}`, "connectors.example.config.path: \"data/\" is a directory"},
		{"path not a string", `{"path": 3}`, "connectors.example.config.path: expected string"},
		{"unknown key", `{"path": "x.jsonl", "file": "y"}`, `connectors.example.config.file: unknown key`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Over gRPC, as `wahub check` asks: the message must survive
			// the trip, since it is what the user reads.
			err := sdktest.Dial(t, New()).Configure(context.Background(),
				sdk.Config{Name: "example", Raw: json.RawMessage(tc.cfg), CheckOnly: true}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Configure = %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

// failingHost makes KV().Get fail for one key, as a hub that is briefly
// unreachable would.
type failingHost struct {
	*sdktest.FakeHost
	failKey string
}

func (h *failingHost) KV() sdk.KV { return failingKV{h.FakeHost.KV(), h} }

type failingKV struct {
	sdk.KV
	h *failingHost
}

func (k failingKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if key == k.h.failKey {
		return nil, false, errors.New("hub unavailable")
	}
	return k.KV.Get(ctx, key)
}

func TestDeliverKeepsOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	host := &failingHost{FakeHost: sdktest.NewFakeHost(), failKey: "written/evt_conformance03"}
	c := New()
	if err := c.Configure(context.Background(), sdk.Config{Name: "example", Raw: configJSON(t, map[string]any{"path": path})}, host); err != nil {
		t.Fatal(err)
	}
	events := sdktest.Events()[:4]
	outcomes := func(results []sdk.Result) string {
		var s []string
		for _, r := range results {
			s = append(s, r.EventID+"="+r.Outcome.String())
		}
		return strings.Join(s, " ")
	}
	got := outcomes(c.Deliver(context.Background(), events))
	want := "evt_conformance01=delivered evt_conformance02=delivered evt_conformance03=retry evt_conformance04=retry"
	if got != want {
		t.Errorf("first delivery: %s\nwant %s", got, want)
	}
	host.failKey = ""
	// What the hub does next: deliver again what is pending.
	if got := outcomes(c.Deliver(context.Background(), events[2:])); got != "evt_conformance03=delivered evt_conformance04=delivered" {
		t.Errorf("redelivery: %s", got)
	}
	if ids := strings.Join(fileIDs(t, path), " "); ids != "evt_conformance01 evt_conformance02 evt_conformance03 evt_conformance04" {
		t.Errorf("file holds %s", ids)
	}
}

func TestUnwritableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	remote, _ := sdktest.Start(t, New(), "example", configJSON(t, map[string]any{"path": path}))
	if err := remote.Health(context.Background()); err != nil {
		t.Fatalf("Health with a writable directory: %v", err)
	}
	// A directory where the file should be: unwritable even for root.
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	results, err := remote.Deliver(context.Background(), sdktest.Events())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Outcome != sdk.Retry {
			t.Errorf("%s: %s, want retry while the file cannot be opened", r.EventID, r.Outcome)
		}
	}
	// And the directory itself gone, replaced by a file: Health says so.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := remote.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("Health with no directory = %v, want not writable", err)
	}
}

func configJSON(t *testing.T, cfg map[string]any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// fileIDs returns the event id of each line of the file, in order.
func fileIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev sdk.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q is not an event: %v", sc.Text(), err)
		}
		ids = append(ids, ev.ID)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func sentJSON(t *testing.T, msgs []sdk.OutboundMessage) string {
	t.Helper()
	if len(msgs) == 0 {
		return "[]"
	}
	raw, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
