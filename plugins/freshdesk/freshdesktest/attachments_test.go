package freshdesktest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/sdk/sdktest"
)

// form posts a multipart body: fields, then files as attachments[].
func form(t *testing.T, url, path string, fields [][2]string, files map[string]string) answer {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		mw.WriteField(f[0], f[1])
	}
	for name, data := range files {
		w, _ := mw.CreateFormFile("attachments[]", name)
		io.WriteString(w, data)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", url+path, &buf)
	req.Header.Set("Authorization", freshdesktest.BasicAuth(freshdesktest.DefaultAPIKey))
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestMultipartTicketsAndNotesWithAttachments(t *testing.T) {
	clk := sdktest.NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	fake := freshdesktest.NewServer(freshdesktest.WithClock(clk.Now), freshdesktest.WithAttachmentLimit(20))
	srv := sdktest.Serve(t, fake)
	fields := [][2]string{{"subject", "Foto"}, {"description", "<p>veja</p>"}, {"phone", "+5511987650001"}, {"name", "Ana"},
		{"priority", "2"}, {"status", "2"}, {"tags[]", "whatsapp"}, {"tags[]", "vip"}}
	a := form(t, srv.URL, "/api/v2/tickets", fields, map[string]string{"foto.jpg": "0123456789"})
	var tk struct {
		ID          int64                      `json:"id"`
		Priority    int                        `json:"priority"`
		Tags        []string                   `json:"tags"`
		Attachments []freshdesktest.Attachment `json:"attachments"`
	}
	if err := json.Unmarshal([]byte(a.body), &tk); a.status != 201 || err != nil {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if tk.Priority != 2 || strings.Join(tk.Tags, ",") != "whatsapp,vip" || len(tk.Attachments) != 1 || tk.Attachments[0].Size != 10 || tk.Attachments[0].Name != "foto.jpg" {
		t.Fatalf("ticket %+v", tk)
	}

	// Over the limit together: 400 on the field attachments, nothing made.
	a = form(t, srv.URL, "/api/v2/tickets/1/notes", [][2]string{{"body", "x"}, {"private", "false"}}, map[string]string{"a": "0123456789", "b": "0123456789a"})
	if a.status != 400 || !strings.Contains(a.body, `"field":"attachments"`) || !strings.Contains(a.body, `"code":"invalid_size"`) {
		t.Errorf("over the limit: %d %s", a.status, a.body)
	}
	// Files only in multipart; an unknown field is refused as in JSON.
	if a := call(t, srv.URL, freshdesktest.DefaultAPIKey, "POST", "/api/v2/tickets/1/notes", `{"body":"x","attachments":["a"]}`); a.status != 400 {
		t.Errorf("attachments in JSON: %d %s", a.status, a.body)
	}
	if a := form(t, srv.URL, "/api/v2/tickets/1/notes", [][2]string{{"body", "x"}, {"color", "red"}}, nil); a.status != 400 || !strings.Contains(a.body, `"field":"color"`) {
		t.Errorf("unknown field: %d %s", a.status, a.body)
	}
	a = form(t, srv.URL, "/api/v2/tickets/1/notes", [][2]string{{"body", "mais"}, {"private", "false"}, {"incoming", "true"}}, map[string]string{"nota.pdf": "%PDF"})
	if a.status != 201 {
		t.Fatalf("note: %d %s", a.status, a.body)
	}

	// The conversations list signs a fresh attachment_url, which needs no
	// API key and expires.
	list := call(t, srv.URL, freshdesktest.DefaultAPIKey, "GET", "/api/v2/tickets/1/conversations", "")
	var convs []struct {
		Incoming    bool                       `json:"incoming"`
		Private     bool                       `json:"private"`
		Attachments []freshdesktest.Attachment `json:"attachments"`
	}
	if err := json.Unmarshal([]byte(list.body), &convs); err != nil || len(convs) != 1 || !convs[0].Incoming || convs[0].Private || len(convs[0].Attachments) != 1 {
		t.Fatalf("conversations: %s", list.body)
	}
	link := convs[0].Attachments[0].AttachmentURL
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "%PDF" {
		t.Errorf("attachment_url: %d %q", resp.StatusCode, b)
	}
	clk.Advance(freshdesktest.AttachmentURLTTL + time.Second)
	resp, err = http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("an expired attachment_url: %d", resp.StatusCode)
	}
}
