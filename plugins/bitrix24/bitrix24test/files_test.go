package bitrix24test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

func TestCommentFiles(t *testing.T) {
	pdf := "%PDF-1.7\nfatura\x00\xff"
	sum := sha256.Sum256([]byte(pdf))
	for _, tc := range []struct {
		name     string
		files    string // the FILES value, JSON
		max      int64
		status   int
		contains string
		want     []CommentFile
	}{
		{name: "one file", files: `[["fatura.pdf","JVBERi0xLjcKZmF0dXJhAP8="]]`, status: 200,
			want: []CommentFile{{Name: "fatura.pdf", Size: len(pdf), SHA256: hex.EncodeToString(sum[:])}}},
		{name: "two files", files: `[["a.txt","YQ=="],["b.txt","Yg=="]]`, status: 200, want: []CommentFile{{Name: "a.txt", Size: 1}, {Name: "b.txt", Size: 1}}},
		{name: "not base64", files: `[["a.txt","not base64!"]]`, status: 400, contains: "INVALID_ARG_VALUE"},
		{name: "no name", files: `[["","YQ=="]]`, status: 400, contains: "has no name"},
		{name: "not pairs", files: `"YQ=="`, status: 400, contains: "list of [name, content] pairs"},
		{name: "too large for the portal", files: `[["fatura.pdf","JVBERi0xLjcKZmF0dXJhAP8="]]`, max: 64, status: 413, contains: "<center>nginx</center>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, u, _ := start(t)
			id := s.AddContact(map[string]any{"NAME": "Ana"}, "+5511987650001")
			if tc.max > 0 {
				s.SetMaxRequest(tc.max)
			}
			a := post(t, u+"crm.timeline.comment.add.json", `{"fields":{"ENTITY_ID":`+itoa(id)+`,"ENTITY_TYPE":"contact","COMMENT":"a photo","FILES":`+tc.files+`}}`)
			if a.status != tc.status || !strings.Contains(a.body, tc.contains) {
				t.Fatalf("%d %s, want %d with %q", a.status, a.body, tc.status, tc.contains)
			}
			cs := s.Comments()
			if tc.status != 200 {
				if len(cs) != 0 {
					t.Errorf("%d comments after a refused call", len(cs))
				}
				return
			}
			if len(cs) != 1 || len(cs[0].Files) != len(tc.want) {
				t.Fatalf("comments %+v, want one with %d files", cs, len(tc.want))
			}
			for i, w := range tc.want {
				f := cs[0].Files[i]
				if f.Name != w.Name || f.Size != w.Size || (w.SHA256 != "" && f.SHA256 != w.SHA256) || f.DriveID == 0 {
					t.Errorf("file %d = %+v, want %+v", i, f, w)
				}
			}
		})
	}
}

// A query-string call (as inside a batch) takes FILES as a PHP array.
func TestCommentFilesQueryString(t *testing.T) {
	s, u, _ := start(t)
	id := s.AddContact(map[string]any{"NAME": "Ana"}, "+5511987650001")
	q := "fields[ENTITY_ID]=" + itoa(id) + "&fields[ENTITY_TYPE]=contact&fields[COMMENT]=x&fields[FILES][0][0]=a.txt&fields[FILES][0][1]=" + url.QueryEscape("YQ==")
	if a := post(t, u+"crm.timeline.comment.add.json?"+q, ""); a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if f := s.Files(); len(f) != 1 || f[0].Name != "a.txt" || f[0].Size != 1 {
		t.Errorf("files %+v", f)
	}
}
