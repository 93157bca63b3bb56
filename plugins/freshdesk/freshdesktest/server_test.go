package freshdesktest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/freshdesk"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/sdk/sdktest"
)

type answer struct {
	status int
	header http.Header
	body   string
}

func call(t *testing.T, url, key, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", freshdesktest.BasicAuth(key))
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func start(t *testing.T, opts ...freshdesktest.Option) (*freshdesktest.Server, string) {
	t.Helper()
	fake := freshdesktest.NewServer(opts...)
	srv := sdktest.Serve(t, fake)
	return fake, srv.URL
}

func TestAuth(t *testing.T) {
	_, url := start(t)
	for _, key := range []string{"", "wrong-key"} {
		a := call(t, url, key, "GET", "/api/v2/contacts?phone=%2B1", "")
		if a.status != 401 || !strings.Contains(a.body, `"code":"invalid_credentials"`) || !strings.Contains(a.body, "You have to be logged in to perform this action.") {
			t.Errorf("key %q: %d %s, want Freshdesk's 401", key, a.status, a.body)
		}
	}
	if a := call(t, url, freshdesktest.DefaultAPIKey, "GET", "/api/v2/contacts", ""); a.status != 200 {
		t.Errorf("right key: %d %s", a.status, a.body)
	}
}

func TestContacts(t *testing.T) {
	_, url := start(t)
	key := freshdesktest.DefaultAPIKey
	if a := call(t, url, key, "GET", "/api/v2/contacts?phone=%2B5511987650001", ""); a.status != 200 || strings.TrimSpace(a.body) != "[]" {
		t.Fatalf("search with no match: %d %s, want a bare empty array", a.status, a.body)
	}
	a := call(t, url, key, "POST", "/api/v2/contacts", `{"name":"Ana","phone":"+5511987650001"}`)
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var created freshdesktest.Contact
	json.Unmarshal([]byte(a.body), &created)
	a = call(t, url, key, "GET", "/api/v2/contacts?phone=%2B5511987650001", "")
	var found []freshdesktest.Contact
	if err := json.Unmarshal([]byte(a.body), &found); err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Fatalf("search: %s (%v), want a bare array holding contact %d", a.body, err, created.ID)
	}
	a = call(t, url, key, "POST", "/api/v2/contacts", `{"name":"Ana again","phone":"+5511987650001"}`)
	var dup struct {
		Description string `json:"description"`
		Errors      []struct {
			Field, Code    string
			AdditionalInfo map[string]int64 `json:"additional_info"`
		} `json:"errors"`
	}
	json.Unmarshal([]byte(a.body), &dup)
	if a.status != 409 || dup.Description != "Validation failed" || len(dup.Errors) != 1 || dup.Errors[0].Code != "duplicate_value" ||
		dup.Errors[0].Field != "phone" || dup.Errors[0].AdditionalInfo["user_id"] != created.ID {
		t.Errorf("duplicate phone: %d %s", a.status, a.body)
	}
	for body, field := range map[string]string{
		`{"phone":"+1"}`:                  "name",
		`{"name":"No identity"}`:          "requester_id",
		`{"name":"x","phone":"+2","x":1}`: "x",
	} {
		a := call(t, url, key, "POST", "/api/v2/contacts", body)
		if a.status != 400 || !strings.Contains(a.body, `"field":"`+field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", body, a.status, a.body, field)
		}
	}
}

func TestTicketsAndConversations(t *testing.T) {
	clk := sdktest.NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	fake, url := start(t, freshdesktest.WithClock(clk.Now), freshdesktest.WithGroups(7))
	key := freshdesktest.DefaultAPIKey
	c := fake.AddContact(freshdesktest.Contact{Name: "Ana"})
	bad := []struct{ body, field string }{
		{`{"description":"d","requester_id":1}`, "subject"},
		{`{"subject":"s","description":"d","requester_id":999}`, "requester_id"},
		{`{"subject":"s","description":"d","requester_id":` + itoa(c.ID) + `,"status":9}`, "status"},
		{`{"subject":"s","description":"d","requester_id":` + itoa(c.ID) + `,"priority":5}`, "priority"},
		{`{"subject":"s","description":"d","requester_id":` + itoa(c.ID) + `,"group_id":8}`, "group_id"},
		{`{"subject":"s","description":"d","requester_id":"x"}`, "requester_id"},
	}
	for _, b := range bad {
		if a := call(t, url, key, "POST", "/api/v2/tickets", b.body); a.status != 400 || !strings.Contains(a.body, `"field":"`+b.field+`"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", b.body, a.status, a.body, b.field)
		}
	}
	a := call(t, url, key, "POST", "/api/v2/tickets", `{"subject":"s","description":"<div>hi</div>","requester_id":`+itoa(c.ID)+`,"status":2,"priority":3,"source":7,"group_id":7,"tags":["whatsapp"]}`)
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var tk freshdesktest.Ticket
	json.Unmarshal([]byte(a.body), &tk)
	if tk.Status != 2 || tk.Priority != 3 || tk.Source != 7 || tk.DescriptionText != "hi" || tk.Stats != nil {
		t.Errorf("ticket %+v", tk)
	}
	path := "/api/v2/tickets/" + itoa(tk.ID)
	a = call(t, url, key, "POST", path+"/notes", `{"body":"<p>more</p>","incoming":true,"private":false,"user_id":`+itoa(c.ID)+`}`)
	if a.status != 201 || !strings.Contains(a.body, `"incoming":true`) || !strings.Contains(a.body, `"source":2`) {
		t.Errorf("note: %d %s", a.status, a.body)
	}
	if a := call(t, url, key, "POST", path+"/notes", `{"body":"x"}`); !strings.Contains(a.body, `"private":true`) {
		t.Errorf("a note is private unless told otherwise: %s", a.body)
	}
	fake.AgentReply(tk.ID, `Hello "Ana"`)
	a = call(t, url, key, "GET", path+"/conversations", "")
	var convs []freshdesktest.Conversation
	if err := json.Unmarshal([]byte(a.body), &convs); err != nil || len(convs) != 3 || convs[2].Source != freshdesktest.SourceReply {
		t.Errorf("conversations: %s (%v), want a bare array of 3 ending with the reply", a.body, err)
	}
	if a := call(t, url, key, "GET", path+"/conversations?per_page=2&page=1", ""); !strings.Contains(a.header.Get("Link"), `rel="next"`) {
		t.Errorf("page 1 of 2: no Link to the next page")
	}

	clk.Advance(time.Hour)
	if a := call(t, url, key, "PUT", path, `{"status":4}`); a.status != 200 {
		t.Fatalf("resolve: %d %s", a.status, a.body)
	}
	a = call(t, url, key, "GET", path+"?include=stats", "")
	json.Unmarshal([]byte(a.body), &tk)
	if tk.Status != 4 || tk.Stats == nil || tk.Stats.ResolvedAt == nil || !tk.Stats.ResolvedAt.Equal(clk.Now()) {
		t.Errorf("resolved ticket with stats: %s", a.body)
	}
	if a.header.Get("X-RateLimit-Used-CurrentRequest") != "2" {
		t.Errorf("include=stats used %s credits, want 2", a.header.Get("X-RateLimit-Used-CurrentRequest"))
	}
	a = call(t, url, key, "GET", "/api/v2/tickets?requester_id="+itoa(c.ID), "")
	if !strings.HasPrefix(strings.TrimSpace(a.body), "[") {
		t.Errorf("ticket list: %s, want a bare array", a.body)
	}
	if a := call(t, url, key, "GET", "/api/v2/tickets/424242", ""); a.status != 404 {
		t.Errorf("missing ticket: %d", a.status)
	}
	req, _ := http.NewRequest("POST", url+"/api/v2/tickets", strings.NewReader(`{}`))
	req.Header.Set("Authorization", freshdesktest.BasicAuth(key))
	resp, _ := http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("POST without Content-Type: %d, want 415", resp.StatusCode)
	}
}

func TestRateLimit(t *testing.T) {
	clk := sdktest.NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	fake, url := start(t, freshdesktest.WithClock(clk.Now), freshdesktest.WithRateLimit(3))
	for i := 1; i <= 3; i++ {
		a := call(t, url, "wrong", "GET", "/api/v2/contacts", "") // refused calls count too
		if a.header.Get("X-RateLimit-Total") != "3" || a.header.Get("X-RateLimit-Remaining") != itoa(int64(3-i)) {
			t.Errorf("call %d: headers %v", i, a.header)
		}
	}
	clk.Advance(20 * time.Second)
	a := call(t, url, freshdesktest.DefaultAPIKey, "GET", "/api/v2/contacts", "")
	if a.status != 429 || a.header.Get("Retry-After") != "40" || !strings.Contains(a.body, `"message"`) {
		t.Errorf("over the limit: %d Retry-After %q %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	clk.Advance(40 * time.Second)
	if a := call(t, url, freshdesktest.DefaultAPIKey, "GET", "/api/v2/contacts", ""); a.status != 200 {
		t.Errorf("next window: %d", a.status)
	}
	if fake.MaxPerMinute() != 3 {
		t.Errorf("MaxPerMinute = %d", fake.MaxPerMinute())
	}
}

func TestFaults(t *testing.T) {
	fake, url := start(t)
	fake.FailNext(1, 429)
	fake.FailNext(1, 503)
	a := call(t, url, freshdesktest.DefaultAPIKey, "GET", "/api/v2/contacts", "")
	if a.status != 429 || a.header.Get("Retry-After") != "60" {
		t.Errorf("first: %d %v", a.status, a.header)
	}
	if a := call(t, url, freshdesktest.DefaultAPIKey, "GET", "/api/v2/contacts", ""); a.status != 503 {
		t.Errorf("second: %d", a.status)
	}
	if a := call(t, url, freshdesktest.DefaultAPIKey, "GET", "/api/v2/contacts", ""); a.status != 200 {
		t.Errorf("third: %d", a.status)
	}
}

func TestWebhookRequest(t *testing.T) {
	fake, _ := start(t)
	c := fake.AddContact(freshdesktest.Contact{Name: "Ana"})
	_ = c
	if _, err := fake.AutomationWebhook(1); err == nil {
		t.Error("webhook for a missing ticket")
	}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	a := call(t, srv.URL, freshdesktest.DefaultAPIKey, "POST", "/api/v2/tickets", `{"subject":"s","description":"d","requester_id":`+itoa(c.ID)+`}`)
	var tk freshdesktest.Ticket
	json.Unmarshal([]byte(a.body), &tk)
	fake.AgentReply(tk.ID, `Say "hi"`)
	req, err := fake.WebhookRequest("http://hub.example/hooks/freshdesk", "s3cret-s3cret-s3cret", tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	var p struct {
		TicketID string `json:"ticket_id"`
		Body     string `json:"body"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.TicketID != itoa(tk.ID) || p.Body != freshdesktest.AgentName+` : <div>Say "hi"</div>` {
		t.Errorf("body %s (%v)", body, err)
	}
	if req.Header.Get(freshdesk.SecretHeader) != "s3cret-s3cret-s3cret" {
		t.Errorf("secret header %v", req.Header)
	}
	fake.SetUnescapedWebhooks(true)
	raw, _ := fake.AutomationWebhook(tk.ID)
	if json.Valid(raw) {
		t.Errorf("unescaped rendering of a reply with a quote is valid JSON: %s", raw)
	}
	snap, _ := json.Marshal(fake.Snapshot())
	if !strings.Contains(string(snap), `"conversations"`) || !strings.Contains(string(snap), `"contacts"`) {
		t.Errorf("snapshot %s", snap)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
