package slacktest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk/sdktest"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// The three steps of Slack's upload, as slack-go's UploadFile makes them:
// the bytes arrive whole, the share is a reply in the thread.
func TestUploadInThread(t *testing.T) {
	fake, api := start(t)
	_, root, _ := api.PostMessage("C1", slackapi.MsgOptionText("root", false))
	data := bytes.Repeat([]byte("wahub media "), 50_000)
	sum, err := api.UploadFileContext(context.Background(), slackapi.UploadFileParameters{
		Filename: "notes.txt", FileSize: len(data), Reader: bytes.NewReader(data),
		Channel: "C1", ThreadTimestamp: root, InitialComment: "*Ana* sent a document", Title: "Notes",
	})
	if err != nil {
		t.Fatal(err)
	}
	files := fake.Files()
	if len(files) != 1 || files[0].ID != sum.ID || files[0].SHA256 != hexSum(data) || files[0].Size != int64(len(data)) || files[0].Title != "Notes" {
		t.Fatalf("files %+v", files)
	}
	if got, _ := fake.FileBytes(sum.ID); !bytes.Equal(got, data) {
		t.Error("the bytes kept differ from those sent")
	}
	replies := fake.Replies("C1", root)
	if len(replies) != 1 || replies[0].Text != "*Ana* sent a document" || len(replies[0].Files) != 1 || replies[0].Files[0] != sum.ID {
		t.Fatalf("replies %+v", replies)
	}
	f, _, _, err := api.GetFileInfo(sum.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.Shares.Public["C1"]; len(s) != 1 || s[0].Ts != replies[0].TS || s[0].ThreadTs != root || len(f.Channels) != 1 {
		t.Errorf("shares %+v channels %v", f.Shares, f.Channels)
	}
	var buf bytes.Buffer
	if err := api.GetFileContext(context.Background(), f.URLPrivateDownload, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("download: %v, %d bytes", err, buf.Len())
	}
	snap, _ := json.Marshal(fake.Snapshot())
	if !strings.Contains(string(snap), `"sha256":"`+hexSum(data)+`"`) {
		t.Error("the snapshot does not show the uploaded file")
	}
}

func TestFileErrors(t *testing.T) {
	fake, api := start(t)
	srv := sdktest.Serve(t, fake)
	call := func(method string, form url.Values) string {
		t.Helper()
		form.Set("token", slacktest.DefaultToken)
		resp, err := http.PostForm(srv.URL+"/"+method, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if body.OK {
			return "ok"
		}
		return body.Error
	}
	gone := fake.AddFile("a.png", "image/png", "U1", []byte("png"))
	fake.DeleteFile(gone.ID)
	cases := []struct {
		method string
		form   url.Values
		want   string
	}{
		{"files.getUploadURLExternal", url.Values{"filename": {"a.png"}, "length": {"0"}}, "missing_argument"},
		{"files.getUploadURLExternal", url.Values{"length": {"10"}}, "invalid_arguments"},
		{"files.getUploadURLExternal", url.Values{"filename": {"a.png"}, "length": {"10"}}, "ok"},
		{"files.completeUploadExternal", url.Values{"files": {`[{"id":"F0NOPE"}]`}, "channel_id": {"C1"}}, "file_not_found"},
		{"files.completeUploadExternal", url.Values{"files": {"not json"}}, "invalid_arguments"},
		{"files.info", url.Values{"file": {"F0NOPE"}}, "file_not_found"},
		{"files.info", url.Values{"file": {gone.ID}}, "file_deleted"},
	}
	for _, tc := range cases {
		if got := call(tc.method, tc.form); got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.method, tc.form, got, tc.want)
		}
	}
	// A ticket that was never uploaded cannot be completed.
	up, err := api.GetUploadURLExternalContext(context.Background(), slackapi.GetUploadURLExternalParameters{FileName: "b.pdf", FileSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CompleteUploadExternalContext(context.Background(), slackapi.CompleteUploadExternalParameters{Files: []slackapi.FileSummary{{ID: up.FileID}}, Channel: "C1"}); err == nil || !strings.Contains(err.Error(), "file_not_found") {
		t.Errorf("completing an empty upload: %v", err)
	}
	fake.SetChannelError("C9", "not_in_channel")
	if err := api.UploadToURL(context.Background(), slackapi.UploadToURLParameters{UploadURL: up.UploadURL, Content: "abc", Filename: "b.pdf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CompleteUploadExternalContext(context.Background(), slackapi.CompleteUploadExternalParameters{Files: []slackapi.FileSummary{{ID: up.FileID}}, Channel: "C9"}); err == nil || !strings.Contains(err.Error(), "not_in_channel") {
		t.Errorf("completing into a channel the bot is not in: %v", err)
	}
	// An unknown ticket is 404.
	resp, err := http.Post(srv.URL+"/upload/v1/CwNOPE", "application/octet-stream", strings.NewReader("x"))
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown ticket: %v %v", err, resp)
	}
}

// url_private_download serves the bot token only; anyone else is sent to
// sign in, as files.slack.com does, which slack-go reports.
func TestDownloadNeedsTheBotToken(t *testing.T) {
	fake, api := start(t)
	srv := sdktest.Serve(t, fake)
	data := []byte("%PDF-1.7 agent's file")
	f := fake.AddFile("fatura.pdf", "application/pdf", "U0AGENT", data)
	info, _, _, err := api.GetFileInfo(f.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	obj := struct{ URL string }{info.URLPrivateDownload}

	for _, authz := range []string{"", "Bearer xoxb-someone-else"} {
		req, _ := http.NewRequest(http.MethodGet, obj.URL, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Sign in") || resp.Request.URL.Query().Get("redir") == "" {
			t.Errorf("authorization %q: %d %q", authz, resp.StatusCode, body)
		}
	}
	base, _, _ := strings.Cut(obj.URL, "files-pri/")
	other := slackapi.New("xoxb-someone-else", slackapi.OptionAPIURL(base))
	if err := other.GetFileContext(context.Background(), obj.URL, io.Discard); err == nil || !strings.Contains(err.Error(), "sign-in") {
		t.Errorf("slack-go with another token: %v", err)
	}
	var buf bytes.Buffer
	if err := api.GetFileContext(context.Background(), obj.URL, &buf); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("bot token: %v %q", err, buf.Bytes())
	}
	if got := fake.Files()[0].Downloads; got != 1 {
		t.Errorf("%d authorised downloads", got)
	}
	// A file Slack has not finished is a stub that only files.info resolves.
	var stub map[string]any
	_ = json.Unmarshal(fake.FileObject(srv.URL+"/", f.ID, true), &stub)
	if stub["file_access"] != "check_file_info" || stub["url_private_download"] != nil {
		t.Errorf("stub %v", stub)
	}
}
