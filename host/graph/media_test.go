package graph_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
)

func TestResolveAndDownloadMedia(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithAccessToken("tok"))
	srv := httptest.NewServer(fake)
	defer srv.Close()
	defer fake.Close()
	f := fake.AddMedia("", "application/pdf", "a.pdf", []byte("%PDF-1.4 tiny"))
	fake.AddMedia("777", "image/jpeg", "", []byte("jpeg"))
	fake.RemoveMedia("777")
	c := graph.New(srv.URL+"/v23.0", "tok", nil)
	ctx := context.Background()
	tests := []struct {
		name    string
		id      string
		client  *graph.Client
		gone    bool
		errPart string
	}{
		{"known", f.ID, c, false, ""},
		{"gone", "777", c, true, "does not exist"},
		{"never known", "123", c, true, "does not exist"},
		{"wrong token", f.ID, graph.New(srv.URL+"/v23.0", "nope", nil), false, "code 190"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.client.ResolveMedia(ctx, tt.id)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) || graph.IsMediaGone(err) != tt.gone {
					t.Fatalf("ResolveMedia = %+v, %v; want an error with %q (gone %v)", m, err, tt.errPart, tt.gone)
				}
				return
			}
			if err != nil || m.SHA256 != f.SHA256 || m.Size != int64(f.Size) || m.MimeType != "application/pdf" {
				t.Fatalf("ResolveMedia = %+v, %v", m, err)
			}
			resp, err := c.DownloadMedia(ctx, m.URL)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "%PDF-1.4 tiny" {
				t.Fatalf("downloaded %q", b)
			}
			// Without the token the URL is refused, as Meta's is.
			req, _ := http.NewRequest("GET", m.URL, nil)
			if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
				t.Fatalf("download without the token: %v %v, want 401", r.StatusCode, err)
			}
			// Expired (five minutes later): refused, and recognisably so.
			fake.ExpireMediaURLs()
			if _, err := c.DownloadMedia(ctx, m.URL); !graph.IsURLExpired(err) {
				t.Fatalf("expired URL: %v, want IsURLExpired", err)
			}
		})
	}
}

// The access token never goes in the clear to a host other than the API's.
func TestDownloadMediaKeepsTheTokenOffPlainHTTP(t *testing.T) {
	c := graph.New("https://graph.facebook.com/v23.0", "secret-token", nil)
	_, err := c.DownloadMedia(context.Background(), "http://evil.example/x")
	var ve *graph.ValidationError
	if !errors.As(err, &ve) || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("DownloadMedia over plain http to another host: %v, want a refusal", err)
	}
}
