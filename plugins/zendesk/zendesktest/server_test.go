package zendesktest_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
	"github.com/wahub/wahub/sdk/sdktest"
)

var start = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type client struct {
	t    *testing.T
	base string
	auth string
}

func newFake(t *testing.T, opts ...zendesktest.Option) (*zendesktest.Server, *client, *sdktest.Clock) {
	t.Helper()
	c := sdktest.NewClock(start)
	fake := zendesktest.NewServer(append([]zendesktest.Option{zendesktest.WithClock(c.Now)}, opts...)...)
	srv := sdktest.Serve(t, fake)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(zendesktest.DefaultEmail+"/token:"+zendesktest.DefaultToken))
	return fake, &client{t: t, base: srv.URL, auth: auth}, c
}

// do calls the fake and returns status, headers and body.
func (c *client) do(method, path, body string) (int, http.Header, string) {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestAuth(t *testing.T) {
	_, c, _ := newFake(t)
	for _, auth := range []string{"", "Bearer x", "Basic " + base64.StdEncoding.EncodeToString([]byte(zendesktest.DefaultEmail+":"+zendesktest.DefaultToken)),
		"Basic " + base64.StdEncoding.EncodeToString([]byte(zendesktest.DefaultEmail+"/token:wrong"))} {
		c.auth = auth
		st, h, body := c.do("GET", "/api/v2/users/me.json", "")
		if st != 401 || body != `{"error":"Couldn't authenticate you"}` || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("auth %q: %d %s", auth, st, body)
		}
	}
}

func TestTicketLifecycle(t *testing.T) {
	fake, c, clk := newFake(t)
	st, _, body := c.do("POST", "/api/v2/users/create_or_update.json", `{"user":{"name":"Ana","phone":"+5511987650001","external_id":"whatsapp:5511987650001"}}`)
	if st != 201 {
		t.Fatalf("create user: %d %s", st, body)
	}
	// The same external_id updates: 200, same id.
	st, _, body2 := c.do("POST", "/api/v2/users/create_or_update", `{"user":{"name":"Ana S","external_id":"whatsapp:5511987650001"}}`)
	var u1, u2 struct{ User struct{ ID int64 } }
	_ = json.Unmarshal([]byte(body), &u1)
	_ = json.Unmarshal([]byte(body2), &u2)
	if st != 200 || u1.User.ID != u2.User.ID {
		t.Fatalf("create_or_update again: %d %s", st, body2)
	}

	// Search lags; the external_id lookup does not.
	if _, _, b := c.do("GET", "/api/v2/search.json?query="+url.QueryEscape("type:user role:end-user phone:*5511987650001"), ""); !strings.Contains(b, `"count":0`) {
		t.Errorf("search found a user created just now: %s", b)
	}
	if _, _, b := c.do("GET", "/api/v2/users/search.json?external_id=whatsapp:5511987650001", ""); !strings.Contains(b, `"count":1`) {
		t.Errorf("external_id lookup: %s", b)
	}
	clk.Advance(2 * time.Minute)
	if _, _, b := c.do("GET", "/api/v2/search?query="+url.QueryEscape("type:user role:end-user phone:*11987650001"), ""); !strings.Contains(b, `"count":1`) || !strings.Contains(b, `"result_type":"user"`) {
		t.Errorf("search after the lag: %s", b)
	}

	create := `{"ticket":{"subject":"Oi","comment":{"body":"oi","public":true},"requester_id":1001,"submitter_id":1001,"tags":["WhatsApp","a b"],"external_id":"conv_1","priority":"high"}}`
	st, h, body := c.do("POST", "/api/v2/tickets.json", create)
	if st != 201 || !strings.Contains(body, `"status":"new"`) || !strings.Contains(body, `"audit"`) || h.Get("Location") == "" {
		t.Fatalf("create ticket: %d %s", st, body)
	}
	tk, _ := fake.Ticket(1)
	if strings.Join(tk.Tags, ",") != "whatsapp,a,b" || tk.Comments[0].AuthorID != 1001 {
		t.Errorf("ticket %+v", tk)
	}
	if _, _, b := c.do("GET", "/api/v2/tickets.json?external_id=conv_1", ""); !strings.Contains(b, `"count":1`) {
		t.Errorf("external_id lookup: %s", b)
	}
	// Validation.
	for _, bad := range []string{
		`{"ticket":{"subject":"x","comment":{"body":" "}}}`,
		`{"ticket":{"comment":{"body":"x"},"priority":"asap"}}`,
		`{"ticket":{"comment":{"body":"x"},"requester_id":424242}}`,
	} {
		if st, _, b := c.do("POST", "/api/v2/tickets", bad); st != 422 || !strings.Contains(b, `"error":"RecordInvalid"`) {
			t.Errorf("%s: %d %s", bad, st, b)
		}
	}

	// A requester's comment reopens a solved ticket.
	_ = fake.Solve(1, clk.Now())
	if st, _, b := c.do("PUT", "/api/v2/tickets/1.json", `{"ticket":{"comment":{"body":"de novo","author_id":1001}}}`); st != 200 || !strings.Contains(b, `"status":"open"`) {
		t.Errorf("comment on solved: %d %s", st, b)
	}
	if _, _, b := c.do("GET", "/api/v2/tickets/1/metrics.json", ""); !strings.Contains(b, `"solved_at":"2026-11-24T12:02:00Z"`) || !strings.Contains(b, `"reopens":1`) {
		t.Errorf("metrics %s", b)
	}
	// Closed refuses updates.
	_ = fake.Close(1, clk.Now())
	st, _, b := c.do("PUT", "/api/v2/tickets/1", `{"ticket":{"comment":{"body":"x"}}}`)
	if st != 422 || !strings.Contains(b, "Status closed prevents ticket update") {
		t.Errorf("update of closed: %d %s", st, b)
	}
	if st, _, b := c.do("GET", "/api/v2/tickets/1/comments.json?sort_order=desc&include=users", ""); st != 200 || !strings.Contains(b, `"users"`) || strings.Index(b, "de novo") > strings.Index(b, `"body":"oi"`) {
		t.Errorf("comments desc: %d %s", st, b)
	}
	if st, _, b := c.do("GET", "/api/v2/tickets/99", ""); st != 404 || b != `{"description":"Not found","error":"RecordNotFound"}` {
		t.Errorf("missing ticket: %d %s", st, b)
	}
}

func TestRateLimitStyles(t *testing.T) {
	cases := []struct {
		style      zendesktest.RateLimitStyle
		retryAfter string
		body       string
	}{
		{zendesktest.RetryAfterHeader, "45", zendesktest.RateLimitText},
		{zendesktest.TextBodyOnly, "", zendesktest.RateLimitText},
		{zendesktest.Bare, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.style.String(), func(t *testing.T) {
			fake, c, clk := newFake(t, zendesktest.WithRateLimit(2))
			fake.SetRateLimitStyle(tc.style)
			clk.Advance(15 * time.Second)
			for i := 0; i < 2; i++ {
				if st, h, _ := c.do("GET", "/api/v2/users/me", ""); st != 200 || h.Get("X-Rate-Limit") != "2" {
					t.Fatalf("request %d: %d", i, st)
				}
			}
			st, h, body := c.do("GET", "/api/v2/users/me", "")
			if st != 429 || h.Get("Retry-After") != tc.retryAfter || body != tc.body {
				t.Errorf("got %d Retry-After %q body %q", st, h.Get("Retry-After"), body)
			}
			if body != "" && !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
				t.Errorf("429 body as %s, want text/plain", h.Get("Content-Type"))
			}
			clk.Advance(time.Minute)
			if st, _, _ := c.do("GET", "/api/v2/users/me", ""); st != 200 {
				t.Errorf("next minute: %d", st)
			}
			if fake.MaxPerMinute() != 3 {
				t.Errorf("MaxPerMinute = %d", fake.MaxPerMinute())
			}
		})
	}
}

func TestFailNext(t *testing.T) {
	fake, c, _ := newFake(t)
	fake.FailNext(2, 503)
	for i := 0; i < 2; i++ {
		if st, _, _ := c.do("GET", "/api/v2/users/me", ""); st != 503 {
			t.Errorf("request %d: %d", i, st)
		}
	}
	if st, _, _ := c.do("GET", "/api/v2/users/me", ""); st != 200 {
		t.Errorf("after the faults: %d", st)
	}
	if n := fake.CountRequests("GET", "/api/v2/users/me"); n != 3 {
		t.Errorf("CountRequests = %d", n)
	}
}

// The sandbox mounts the fake under a prefix; the fake never assumes a
// host or a root.
func TestMountedUnderPrefixWithControlEndpoints(t *testing.T) {
	fake := zendesktest.NewServer()
	c := &client{t: t, base: sdktest.ServeUnder(t, "/sandbox/zendesk", fake),
		auth: "Basic " + base64.StdEncoding.EncodeToString([]byte(zendesktest.DefaultEmail+"/token:"+zendesktest.DefaultToken))}
	if st, _, b := c.do("POST", "/api/v2/tickets", `{"ticket":{"subject":"s","comment":{"body":"b"}}}`); st != 201 {
		t.Fatalf("%d %s", st, b)
	}
	// A webhook target receives the signed trigger body.
	var got http.Header
	var gotBody []byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, gotBody = r.Header.Clone(), func() []byte { b, _ := io.ReadAll(r.Body); return b }()
	}))
	defer hook.Close()
	fake.SetWebhookTarget(hook.URL)
	c.auth = ""
	if st, _, b := c.do("POST", "/_fake/agent_comments", `{"ticket_id":1,"body":"resposta"}`); st != 201 {
		t.Fatalf("agent comment: %d %s", st, b)
	}
	want := zendesktest.Sign(zendesktest.DefaultWebhookSecret, got.Get(zendesktest.HeaderTimestamp), gotBody)
	if got.Get(zendesktest.HeaderSignature) != want || string(gotBody) != `{"ticket_id": "1", "comment_id": "5002"}` {
		t.Errorf("webhook %s %v", gotBody, got)
	}
	if st, _, b := c.do("POST", "/_fake/tickets/1/status", `{"status":"solved"}`); st != 200 {
		t.Errorf("status: %d %s", st, b)
	}
	st, _, b := c.do("GET", "/_fake/snapshot", "")
	var snap zendesktest.Snapshot
	if err := json.Unmarshal([]byte(b), &snap); st != 200 || err != nil {
		t.Fatalf("snapshot %d %s", st, b)
	}
	if len(snap.Tickets) != 1 || snap.Tickets[0].Status != "solved" || len(snap.Tickets[0].Comments) != 2 || len(snap.Webhooks) != 1 {
		t.Errorf("snapshot %+v", snap)
	}
}
