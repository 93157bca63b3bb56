package hubspottest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
)

// form is a multipart upload; a field with an empty value is left out.
func upload(t *testing.T, s *Server, fields map[string]string, file []byte, withFile bool) answer {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, k := range []string{"folderId", "folderPath", "fileName", "options"} {
		if v, ok := fields[k]; ok {
			mw.WriteField(k, v)
		}
	}
	if withFile {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="part.pdf"`)
		h.Set("Content-Type", "application/pdf")
		p, _ := mw.CreatePart(h)
		p.Write(file)
	}
	mw.Close()
	req := httptest.NewRequest("POST", PathFiles, &buf)
	req.Header.Set("Authorization", "Bearer pat-ok")
	req.Header.Set("Content-Type", mw.FormDataContentType())
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Body)
	a := answer{status: rec.Code, header: rec.Header(), raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func TestFilesUpload(t *testing.T) {
	pdf := []byte("%PDF-1.7\nfatura")
	ok := map[string]string{"folderPath": "/WhatsApp", "fileName": "fatura.pdf", "options": `{"access":"PRIVATE"}`}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		fields   map[string]string
		noFile   bool
		max      int64
		status   int
		contains string
	}{
		{name: "ok", fields: ok, status: 201},
		{name: "file name from the part", fields: with("fileName", ""), status: 201},
		{name: "no file", fields: ok, noFile: true, status: 400, contains: "file is required"},
		{name: "no options", fields: with("options", ""), status: 400, contains: "options is required"},
		{name: "no access", fields: with("options", `{"ttl":"P2D"}`), status: 400, contains: "options.access is required"},
		{name: "bad access", fields: with("options", `{"access":"SECRET"}`), status: 400, contains: "was not one of the allowed options"},
		{name: "no folder", fields: with("folderPath", ""), status: 400, contains: "Either folderId or folderPath must be provided"},
		{name: "both folders", fields: with("folderId", "123"), status: 400, contains: "Only one of folderId or folderPath"},
		{name: "unknown folder id", fields: map[string]string{"folderId": "42", "options": `{"access":"PRIVATE"}`}, status: 404, contains: "Folder 42 does not exist"},
		{name: "relative folder", fields: with("folderPath", "WhatsApp"), status: 400, contains: "not a valid folder path"},
		{name: "too large", fields: ok, max: 8, status: 413, contains: "maximum upload size of 8 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newFake()
			if tc.max > 0 {
				s.SetMaxFileSize(tc.max)
			}
			a := upload(t, s, tc.fields, pdf, !tc.noFile)
			if a.status != tc.status || !strings.Contains(a.raw, tc.contains) {
				t.Fatalf("%d %s, want %d with %q", a.status, a.raw, tc.status, tc.contains)
			}
			if tc.status != 201 {
				if n := len(s.Files()); n != 0 {
					t.Errorf("%d files kept after a refused upload", n)
				}
				if tc.status == 400 && a.body["category"] != "VALIDATION_ERROR" {
					t.Errorf("category %v, want VALIDATION_ERROR", a.body["category"])
				}
				return
			}
			sum := sha256.Sum256(pdf)
			f, found := s.File(a.body["id"].(string))
			if !found || f.SHA256 != hex.EncodeToString(sum[:]) || f.Access != "PRIVATE" || f.Type != "DOCUMENT" || a.body["parentFolderId"] != f.ParentFolderID {
				t.Errorf("kept %+v for answer %s", f, a.raw)
			}
			wantName := map[bool]string{true: "fatura", false: "part"}[tc.fields["fileName"] != ""]
			if a.body["name"] != wantName || a.body["extension"] != "pdf" || a.body["path"] != "/WhatsApp/"+wantName+".pdf" {
				t.Errorf("answer %s, want name %s, extension pdf in /WhatsApp", a.raw, wantName)
			}
			got := do(t, s, "GET", PathFiles+"/"+f.ID, "pat-ok", "")
			if got.status != 200 || got.body["id"] != f.ID || got.body["size"] != float64(len(pdf)) {
				t.Errorf("GET the file: %d %s", got.status, got.raw)
			}
		})
	}
}

// The second upload into a folder path reuses the folder; files need the
// files scope; engagements take only files that exist as attachments.
func TestFilesFoldersScopeAndAttachments(t *testing.T) {
	s, _ := newFake()
	fields := map[string]string{"folderPath": "/WhatsApp", "fileName": "a.pdf", "options": `{"access":"PRIVATE"}`}
	a, b := upload(t, s, fields, []byte("a"), true), upload(t, s, fields, []byte("b"), true)
	if a.body["parentFolderId"] != b.body["parentFolderId"] || a.body["id"] == b.body["id"] {
		t.Errorf("two uploads into /WhatsApp: %s, %s", a.raw, b.raw)
	}
	if byID := upload(t, s, map[string]string{"folderId": a.body["parentFolderId"].(string), "fileName": "c.pdf", "options": `{"access":"PRIVATE"}`}, []byte("c"), true); byID.status != 201 || byID.body["path"] != "/WhatsApp/c.pdf" {
		t.Errorf("upload by folderId: %d %s", byID.status, byID.raw)
	}

	contact := do(t, s, "POST", PathContacts, "pat-ok", `{"properties":{"phone":"+5511987650001"}}`).body["id"].(string)
	comm := func(ids string) answer {
		return do(t, s, "POST", PathCommunications, "pat-ok", `{"properties":{"hs_communication_channel_type":"WHATS_APP","hs_communication_logged_from":"CRM","hs_communication_body":"x","hs_attachment_ids":"`+ids+`"},
			"associations":[{"to":{"id":"`+contact+`"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":81}]}]}`)
	}
	if r := comm(a.body["id"].(string) + ";" + b.body["id"].(string)); r.status != 201 || r.body["properties"].(map[string]any)["hs_attachment_ids"] != a.body["id"].(string)+";"+b.body["id"].(string) {
		t.Errorf("communication with two attachments: %d %s", r.status, r.raw)
	}
	if r := comm("999"); r.status != 400 || !strings.Contains(r.raw, "hs_attachment_ids") {
		t.Errorf("communication with an unknown file: %d %s", r.status, r.raw)
	}

	s.SetScopes(ScopeContactsRead, ScopeContactsWrite)
	if r := upload(t, s, fields, []byte("d"), true); r.status != 403 || !strings.Contains(r.raw, `"requiredScopes":["files"]`) {
		t.Errorf("upload without the files scope: %d %s", r.status, r.raw)
	}
}
