package sdkhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

var now = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func TestResult(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		outcome    sdk.Outcome
		after      time.Duration
	}{
		{200, "", sdk.Delivered, 0},
		{204, "", sdk.Delivered, 0},
		{301, "", sdk.Failed, 0},
		{400, "", sdk.Failed, 0},
		{404, "", sdk.Failed, 0},
		{408, "", sdk.Retry, 0},
		{429, "30", sdk.Retry, 30 * time.Second},
		{429, now.Add(2 * time.Minute).Format(http.TimeFormat), sdk.Retry, 2 * time.Minute},
		{503, "999999", sdk.Retry, time.Hour},
		{500, "soon", sdk.Retry, 0},
		{599, "", sdk.Retry, 0},
	}
	for _, tc := range cases {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
		if tc.retryAfter != "" {
			resp.Header.Set("Retry-After", tc.retryAfter)
		}
		r := sdkhttp.Result("e1", resp, now, time.Hour, errors.New("answered"))
		if r.EventID != "e1" || r.Outcome != tc.outcome || r.RetryAfter != tc.after {
			t.Errorf("%d Retry-After %q: %+v, want %s after %v", tc.status, tc.retryAfter, r, tc.outcome, tc.after)
		}
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	resp, err := sdkhttp.NewClient(4, nil).Post(srv.URL+"/in", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits != 1 {
		t.Errorf("status %d after %d requests: want the 302 itself, one request", resp.StatusCode, hits)
	}
}

func TestDoErrorHidesTheURL(t *testing.T) {
	ctx := context.Background()
	err := &url.Error{Op: "Post", URL: "https://h/p?token=s3cret", Err: errors.New("connection refused")}
	got := sdkhttp.DoError(ctx, "POST https://h/p", 10*time.Second, err).Error()
	if strings.Contains(got, "s3cret") || got != "POST https://h/p: connection refused" {
		t.Errorf("%q", got)
	}
	got = sdkhttp.DoError(ctx, "GET /x", 15*time.Second, &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}).Error()
	if got != "GET /x: no answer within 15s (config.timeout)" {
		t.Errorf("%q", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if got := sdkhttp.DoError(cancelled, "GET /x", time.Second, context.Canceled).Error(); got != "GET /x: cancelled before an answer came" {
		t.Errorf("%q", got)
	}
}

func TestNewJSONRequest(t *testing.T) {
	cases := []struct {
		name       string
		in         any
		wantBody   string
		wantType   string
		wantErrHas string
	}{
		{name: "no body", in: nil, wantBody: "", wantType: ""},
		{name: "a body", in: map[string]any{"a": 1}, wantBody: `{"a":1}`, wantType: "application/json"},
		{name: "raw JSON", in: json.RawMessage(`{"b": 2}`), wantBody: `{"b":2}`, wantType: "application/json"},
		{name: "cannot encode", in: func() {}, wantErrHas: "encode request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := sdkhttp.NewJSONRequest(context.Background(), http.MethodPost, "http://127.0.0.1/x", tc.in, "wahub-test/1.0")
			if tc.wantErrHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrHas) {
					t.Fatalf("err = %v, want %q", err, tc.wantErrHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var body []byte
			if req.Body != nil {
				body, _ = io.ReadAll(req.Body)
			}
			if string(body) != tc.wantBody || req.Header.Get("Content-Type") != tc.wantType ||
				req.Header.Get("Accept") != "application/json" || req.Header.Get("User-Agent") != "wahub-test/1.0" {
				t.Errorf("body %q, header %v", body, req.Header)
			}
		})
	}
	if _, err := sdkhttp.NewJSONRequest(context.Background(), "BAD METHOD", "http://127.0.0.1/", nil, "x"); err == nil || !strings.Contains(err.Error(), "build request") {
		t.Errorf("bad method: %v", err)
	}
}

func TestBaseURL(t *testing.T) {
	cases := []struct {
		raw, apiPath, want, err string
	}{
		{raw: "https://acme.zendesk.com", apiPath: "/api/v2", want: "https://acme.zendesk.com"},
		{raw: "https://acme.zendesk.com/api/v2/", apiPath: "/api/v2", want: "https://acme.zendesk.com"},
		{raw: "http://127.0.0.1:8080/sandbox/zendesk/", apiPath: "/api/v2", want: "http://127.0.0.1:8080/sandbox/zendesk"},
		{raw: "https://api.hubapi.com/", want: "https://api.hubapi.com"},
		{raw: "acme.zendesk.com", err: "must be an absolute"},
		{raw: "ftp://acme.example", err: "must be an absolute"},
		{raw: "https:///x", err: "must be an absolute"},
		{raw: "https://key:X@acme.freshdesk.com", err: "must not carry credentials"},
		{raw: "https://api.hubapi.com?hapikey=x", err: "or a query"},
	}
	for _, tc := range cases {
		got, err := sdkhttp.BaseURL(tc.raw, tc.apiPath)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("BaseURL(%q) = %q, %v; want an error with %q", tc.raw, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("BaseURL(%q, %q) = %q, %v; want %q", tc.raw, tc.apiPath, got, err, tc.want)
		}
	}
}

func TestFollowFileRedirects(t *testing.T) {
	check := sdkhttp.FollowFileRedirects("https://acme.zendesk.com", 2)
	req := func(u string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, u, nil)
		r.Header.Set("Authorization", "Basic c2VjcmV0")
		return r
	}
	from := func(u string) []*http.Request { return []*http.Request{req(u)} }
	cases := []struct {
		name     string
		to       string
		via      []*http.Request
		wantErr  string
		wantAuth bool
	}{
		{name: "same origin keeps the credentials", to: "https://acme.zendesk.com/attachments/1", via: from("https://acme.zendesk.com/a"), wantAuth: true},
		{name: "the file host gets none", to: "https://files.zdusercontent.com/x?sig=1", via: from("https://acme.zendesk.com/a")},
		{name: "another port of the host gets none", to: "https://acme.zendesk.com:8443/x", via: from("https://acme.zendesk.com/a")},
		{name: "a subdomain gets none", to: "https://cdn.acme.zendesk.com/x", via: from("https://acme.zendesk.com/a")},
		{name: "no downgrade to http", to: "http://files.example/x", via: from("https://acme.zendesk.com/a"), wantErr: "refusing a redirect from https"},
		{name: "http to http is a test server's", to: "http://127.0.0.1:9/x", via: from("http://127.0.0.1:8/a")},
		{name: "too many", to: "https://files.example/x", via: append(from("https://a.example"), req("https://b.example")), wantErr: "more than 2 redirects"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := req(tc.to)
			err := check(r, tc.via)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Header.Get("Authorization") != ""; got != tc.wantAuth {
				t.Errorf("Authorization kept = %v, want %v", got, tc.wantAuth)
			}
		})
	}
}
