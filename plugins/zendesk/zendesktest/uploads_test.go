package zendesktest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// upload posts a file and returns the answer's status and upload.
func (c *client) upload(name, mime, data string) (int, string, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.base+"/api/v2/uploads.json?filename="+name, strings.NewReader(data))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", mime)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Upload map[string]any `json:"upload"`
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	tok, _ := out.Upload["token"].(string)
	return resp.StatusCode, tok, out.Upload
}

func TestUploadsAttachToOneComment(t *testing.T) {
	fake, c, clk := newFake(t, zendesktest.WithUploadLimit(100))
	st, tok, up := c.upload("foto.jpg", "image/jpeg", "JPEGDATA")
	if st != 201 || tok == "" {
		t.Fatalf("upload: %d %v", st, up)
	}
	att, _ := up["attachment"].(map[string]any)
	if att["file_name"] != "foto.jpg" || att["content_type"] != "image/jpeg" || att["size"] != float64(8) || !strings.Contains(att["content_url"].(string), "/attachments/token/") {
		t.Errorf("attachment %v", att)
	}
	if st, _, _ := c.upload("big.bin", "application/octet-stream", strings.Repeat("x", 101)); st != 413 {
		t.Errorf("an upload over the limit: %d, want 413", st)
	}
	_, late, _ := c.upload("late.png", "image/png", "PNG")
	c.do("POST", "/api/v2/users/create_or_update.json", `{"user":{"name":"Ana","external_id":"a"}}`)
	st, _, body := c.do("POST", "/api/v2/tickets.json", `{"ticket":{"subject":"s","comment":{"body":"foto","uploads":["`+tok+`"]}}}`)
	if st != 201 {
		t.Fatalf("create ticket: %d %s", st, body)
	}
	// The token is spent: a second comment naming it gets no file; an
	// expired one neither.
	clk.Advance(zendesktest.UploadTTL + time.Minute)
	c.do("PUT", "/api/v2/tickets/1.json", `{"ticket":{"comment":{"body":"again","uploads":["`+tok+`","`+late+`"]}}}`)
	tk, _ := fake.Ticket(1)
	if len(tk.Comments) != 2 || len(tk.Comments[0].Attachments) != 1 || len(tk.Comments[1].Attachments) != 0 {
		t.Fatalf("comments %+v", tk.Comments)
	}
	_, _, list := c.do("GET", "/api/v2/tickets/1/comments.json", "")
	var comments struct {
		Comments []struct {
			Attachments []struct {
				ContentURL string `json:"content_url"`
			} `json:"attachments"`
		} `json:"comments"`
	}
	if err := json.Unmarshal([]byte(list), &comments); err != nil || len(comments.Comments[0].Attachments) != 1 {
		t.Fatalf("comments: %v %s", err, list)
	}
	content := comments.Comments[0].Attachments[0].ContentURL

	// content_url: 401 without credentials, 302 to a signed URL with them;
	// the signed URL needs none and expires.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u, auth string) *http.Response {
		req, _ := http.NewRequest("GET", u, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if r := get(content, ""); r.StatusCode != 401 {
		t.Errorf("content_url without credentials: %d", r.StatusCode)
	}
	r := get(content, c.auth)
	signed := r.Header.Get("Location")
	if r.StatusCode != 302 || !strings.Contains(signed, "signature=") {
		t.Fatalf("content_url: %d, Location %q", r.StatusCode, signed)
	}
	r = get(signed, "")
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != 200 || string(b) != "JPEGDATA" || r.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("signed URL: %d %q %s", r.StatusCode, b, r.Header.Get("Content-Type"))
	}
	if r := get(strings.Replace(signed, "signature=", "signature=0", 1), ""); r.StatusCode != 403 {
		t.Errorf("a forged signature: %d", r.StatusCode)
	}
	clk.Advance(zendesktest.SignedURLTTL + time.Second)
	if r := get(signed, ""); r.StatusCode != 403 {
		t.Errorf("an expired signed URL: %d", r.StatusCode)
	}
}
