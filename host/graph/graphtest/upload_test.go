package graphtest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
)

func uploadClient(t *testing.T, opts ...graphtest.Option) (*graphtest.Server, *graph.Client) {
	t.Helper()
	fake := graphtest.NewServer(append([]graphtest.Option{graphtest.WithAccessToken(token), graphtest.WithPhoneNumber(pnid, "15550783881")}, opts...)...)
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	return fake, graph.New(srv.URL+"/v23.0", token, nil)
}

func file(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func hexsum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func graphCode(err error) int {
	var ge *graph.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return -1
}

func TestUploadThenSendMedia(t *testing.T) {
	fake, c := uploadClient(t)
	ctx := context.Background()
	jpeg, pdf, big := file(300<<10), file(1<<20), file(6<<20)
	tests := []struct {
		name     string
		mime     string
		data     []byte
		size     int64 // 0: unknown (chunked)
		wantCode int   // the upload's refusal
	}{
		{"jpeg with its length", "image/jpeg", jpeg, int64(len(jpeg)), 0},
		{"pdf sent chunked", "application/pdf", pdf, 0, 0},
		{"6 MB png (a document, not an image)", "image/png", big, int64(len(big)), 0},
		{"gif", "image/gif", jpeg, int64(len(jpeg)), graph.ErrInvalidParameter},
		{"empty", "application/pdf", nil, 0, graph.ErrMediaUpload},
	}
	ids := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := c.Upload(ctx, pnid, graph.MediaFile{MimeType: tt.mime, Filename: "f", Size: tt.size, Body: bytes.NewReader(tt.data)})
			if tt.wantCode != 0 {
				if graphCode(err) != tt.wantCode {
					t.Fatalf("got %q, %v; want code %d", id, err, tt.wantCode)
				}
				return
			}
			if err != nil || id == "" {
				t.Fatal(id, err)
			}
			ups := fake.Uploads()
			u := ups[len(ups)-1]
			if u.ID != id || u.SHA256 != hexsum(tt.data) || u.Size != int64(len(tt.data)) || u.MimeType != tt.mime || u.Filename != "f" {
				t.Errorf("recorded %+v", u)
			}
			ids[tt.mime] = id
		})
	}

	sends := []struct {
		name string
		m    graph.Media
		code int
	}{
		{"image by its id", graph.Media{Type: "image", ID: ids["image/jpeg"], Caption: "olha"}, 0},
		{"document with a filename", graph.Media{Type: "document", ID: ids["application/pdf"], Filename: "fatura.pdf"}, 0},
		{"big png as a document", graph.Media{Type: "document", ID: ids["image/png"]}, 0},
		{"big png as an image", graph.Media{Type: "image", ID: ids["image/png"]}, graph.ErrMediaUpload},
		{"pdf as an image", graph.Media{Type: "image", ID: ids["application/pdf"]}, graph.ErrMediaUpload},
		{"an id the fake never gave", graph.Media{Type: "image", ID: "99999"}, graph.ErrInvalidParameter},
		{"a link", graph.Media{Type: "image", Link: "https://files.example/a.jpg"}, 0},
	}
	for _, tt := range sends {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			_, err := c.Send(ctx, pnid, graph.Message{To: "+5511900000001", Media: &m})
			if tt.code != 0 {
				if graphCode(err) != tt.code {
					t.Fatalf("got %v, want code %d", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := fake.Sent()[fake.SentCount()-1]
			if s.Kind != m.Type || s.MediaID != m.ID || s.Link != m.Link || s.Caption != m.Caption || s.Filename != m.Filename {
				t.Errorf("sent %+v", s)
			}
		})
	}
	if _, err := c.Send(ctx, pnid, graph.Message{To: "+5511900000001", Media: &graph.Media{Type: "audio", ID: "1", Caption: "x"}}); err == nil {
		t.Error("an audio caption was sent")
	}
}

func TestUploadRefusals(t *testing.T) {
	fake, _ := uploadClient(t)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	form := func(fields map[string]string, withFile bool) (string, []byte) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for k, v := range fields {
			mw.WriteField(k, v)
		}
		if withFile {
			w, _ := mw.CreateFormFile("file", "a.pdf")
			w.Write(file(100))
		}
		mw.Close()
		return mw.FormDataContentType(), b.Bytes()
	}
	tests := []struct {
		name   string
		ct     string
		body   []byte
		path   string
		token  string
		status int
		code   int
		msg    string
	}{
		{name: "json instead of a form", ct: "application/json", body: []byte(`{"messaging_product":"whatsapp"}`), status: 400, code: 100, msg: "messaging_product"},
		{name: "no type", status: 400, code: 100, msg: "type is required"},
		{name: "wrong product", status: 400, code: 100, msg: "WHATSAPP"},
		{name: "no file", status: 400, code: 100, msg: "file is required"},
		{name: "bad token", token: "nope", status: 401, code: 190},
		{name: "unknown number", path: "/v23.0/42/media", status: 400, code: 100, msg: "does not exist"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, body := tt.ct, tt.body
			switch i {
			case 1:
				ct, body = form(map[string]string{"messaging_product": "whatsapp"}, true)
			case 2:
				ct, body = form(map[string]string{"messaging_product": "facebook", "type": "application/pdf"}, true)
			case 3:
				ct, body = form(map[string]string{"messaging_product": "whatsapp", "type": "application/pdf"}, false)
			case 4, 5:
				ct, body = form(map[string]string{"messaging_product": "whatsapp", "type": "application/pdf"}, true)
			}
			p := tt.path
			if p == "" {
				p = "/v23.0/" + pnid + "/media"
			}
			tok := tt.token
			if tok == "" {
				tok = token
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+p, bytes.NewReader(body))
			req.Header.Set("Content-Type", ct)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(raw), `"code":`+strconv.Itoa(tt.code)) || !strings.Contains(string(raw), tt.msg) {
				t.Errorf("%d %s", resp.StatusCode, raw)
			}
		})
	}
	if n := fake.UploadCount(); n != 0 {
		t.Errorf("%d refused uploads recorded as accepted", n)
	}
}
