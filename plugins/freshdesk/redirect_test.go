package freshdesk

import (
	"net/http"
	"strings"
	"testing"
)

// The download client's redirect rule: how far, where to, and which hops
// keep the API credentials.
func TestFileRedirect(t *testing.T) {
	s := &settings{base: "https://acme.example.com"}
	req := func(u string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Basic c2VjcmV0")
		return r
	}
	from := func(urls ...string) []*http.Request {
		var out []*http.Request
		for _, u := range urls {
			out = append(out, req(u))
		}
		return out
	}
	cases := []struct {
		name     string
		to       string
		via      []*http.Request
		err      string // "" follows
		keepAuth bool
	}{
		{name: "to the file host", to: "https://files.example.net/f?sig=1", via: from("https://acme.example.com/a"), keepAuth: false},
		{name: "within the account's host", to: "https://acme.example.com/b", via: from("https://acme.example.com/a"), keepAuth: true},
		{name: "another port of the same host", to: "https://acme.example.com:8443/b", via: from("https://acme.example.com/a"), keepAuth: false},
		{name: "a subdomain", to: "https://cdn.acme.example.com/b", via: from("https://acme.example.com/a"), keepAuth: false},
		{name: "https to http", to: "http://files.example.net/f", via: from("https://acme.example.com/a"), err: "refusing a redirect from https"},
		{name: "too many", to: "https://files.example.net/f", via: from("https://a.example/1", "https://a.example/2", "https://a.example/3", "https://a.example/4", "https://a.example/5"), err: "more than 5 redirects"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := req(tc.to)
			err := s.fileRedirect(r, tc.via)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
			case err != nil:
				t.Fatalf("err %v, want the redirect followed", err)
			case (r.Header.Get("Authorization") != "") != tc.keepAuth:
				t.Errorf("Authorization %q after the redirect, want kept=%t", r.Header.Get("Authorization"), tc.keepAuth)
			}
		})
	}
}
