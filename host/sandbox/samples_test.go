package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sample webhooks' digests are the sample files' own, so the hub's
// digest check passes for them in the sandbox; the sandbox's Graph fake
// serves each under its media id, and /sandbox shows them.
func TestSamplesMatchTheirWebhooksAndAreServed(t *testing.T) {
	fixtures := map[string]string{"1003383421387256": "image.json", "1476281743600112": "audio_voice.json", "1130471592211848": "document.json"}
	sb := New("http://127.0.0.1:1", AppSecret)
	defer sb.Close()
	for _, smp := range Samples {
		raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "whatsapp", fixtures[smp.MediaID]))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(smp.Bytes())
		if !bytes.Contains(raw, []byte(`"sha256": "`+base64.StdEncoding.EncodeToString(sum[:])+`"`)) ||
			!bytes.Contains(raw, []byte(`"id": "`+smp.MediaID+`"`)) {
			t.Errorf("%s does not carry the id and sha256 of %s", fixtures[smp.MediaID], smp.File)
		}
		f, ok := sb.Graph.Media(smp.MediaID)
		if !ok || f.Size != len(smp.Bytes()) || f.MimeType != smp.MimeType {
			t.Errorf("Graph fake: %+v, %v; want %s", f, ok, smp.File)
		}
		// The sample posted from the console carries the same block.
		msg := mediaSample(smp, map[string]string{"image/jpeg": "image", "application/pdf": "document"}[smp.MimeType], "")
		b, _ := json.Marshal(msg)
		if !strings.Contains(string(b), base64.StdEncoding.EncodeToString(sum[:])) {
			t.Errorf("console sample %s lacks the digest", smp.File)
		}
	}
	req := httptest.NewRequest("GET", "/sandbox", nil)
	req.Header.Set("Accept", "text/html")
	rec := httptest.NewRecorder()
	sb.Handler().ServeHTTP(rec, req)
	page := rec.Body.String()
	for _, want := range []string{`<img src="samples/produto.jpg"`, `<audio controls src="samples/mensagem_de_voz.ogg">`, `<a href="samples/comprovante_pix_novembro.pdf">`} {
		if !strings.Contains(page, want) {
			t.Errorf("/sandbox lacks %s", want)
		}
	}
	rec = httptest.NewRecorder()
	sb.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/sandbox/samples/produto.jpg", nil))
	got, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || !bytes.Equal(got, Samples[0].Bytes()) {
		t.Errorf("GET /sandbox/samples/produto.jpg: %d, %d bytes", rec.Code, len(got))
	}
}
