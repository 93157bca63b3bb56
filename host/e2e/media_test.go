package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/sandbox"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/sdk"
)

// mediaConfig is a hub that fetches media from a Graph fake and delivers
// every event to a webhook receiver; fetch retries are quick so a test on
// real time sees them.
func mediaConfig(graphURL, receiverURL, extra string) string {
	return strings.Replace(webhookConfig(receiverURL), "  verify_token: test-verify-token\n",
		"  verify_token: test-verify-token\n  access_token: graph-token\n  api_url: "+graphURL+"\n", 1) + `
media:
  max_size: 2MB
  delivery_wait: 60s
  fetch: {max_attempts: 3, initial_interval: 100ms, max_interval: 300ms}
` + extra
}

// mediaWebhook is a customer's message of type kind with a file.
func mediaWebhook(kind, wamid string, media map[string]any) []byte {
	block, _ := json.Marshal(media)
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":"5511987650001"}],"messages":[{"from":"5511987650001","id":%q,"timestamp":"%d","type":%q,%q:%s}]}}]}]}`,
		wamid, time.Now().Unix(), kind, kind, block))
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// download GETs /api/v1/media/{id} with the admin token.
func (h *hubProc) download(id string) (*http.Response, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest("GET", h.url("/api/v1/media/"+id), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

func deliveredMedia(t *testing.T, rcv *webhooktest.Receiver, wamid string) []*sdk.Media {
	t.Helper()
	var out []*sdk.Media
	for _, ev := range rcv.Delivered() {
		if ev.Message != nil && ev.Message.ID == wamid {
			out = append(out, ev.Message.Media)
		}
	}
	return out
}

func waitMedia(t *testing.T, rcv *webhooktest.Receiver, wamid string) *sdk.Media {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if got := deliveredMedia(t, rcv, wamid); len(got) > 0 {
			if got[0] == nil {
				t.Fatalf("%s delivered without message.media", wamid)
			}
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not delivered within 60s", wamid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A customer's photo, voice note and PDF are fetched from Graph, stored
// byte for byte, delivered with message.media available, and served to an
// admin by WhatsApp's media id.
func TestMediaInboundStoredAndServed(t *testing.T) {
	fake, graphURL := newGraph(t)
	rcv := newReceiver(t)
	h := newHub(t, mediaConfig(graphURL, rcv.URL(), ""))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	tests := []struct {
		kind        string
		sample      sandbox.Sample
		extra       map[string]any
		disposition string
	}{
		{"image", sandbox.Samples[0], map[string]any{"caption": "Foto do produto"}, "inline"},
		{"audio", sandbox.Samples[1], map[string]any{"voice": true}, "inline"},
		{"document", sandbox.Samples[2], map[string]any{"filename": "comprovante_pix_novembro.pdf"}, `attachment; filename=comprovante_pix_novembro.pdf`},
	}
	for i, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			data := tt.sample.Bytes()
			f := fake.AddMedia("", tt.sample.MimeType, tt.sample.Filename, data)
			block := map[string]any{"id": f.ID, "mime_type": tt.sample.MimeType, "sha256": f.SHA256Base64}
			for k, v := range tt.extra {
				block[k] = v
			}
			wamid := fmt.Sprintf("wamid.media.%d", i)
			h.postRaw(mediaWebhook(tt.kind, wamid, block))
			m := waitMedia(t, rcv, wamid)
			if m.ID != f.ID || m.State != sdk.MediaAvailable || m.Size != int64(len(data)) || m.SHA256 != f.SHA256Base64 {
				t.Fatalf("delivered media %+v, want id %s available with %d bytes", m, f.ID, len(data))
			}
			resp, got := h.download(f.ID)
			if resp.StatusCode != 200 || hexSum(got) != hexSum(data) {
				t.Fatalf("GET /api/v1/media/%s: %d, %d bytes (sha256 %s), want the file (sha256 %s)", f.ID, resp.StatusCode, len(got), hexSum(got), hexSum(data))
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.sample.MimeType {
				t.Errorf("Content-Type %q, want %q", ct, tt.sample.MimeType)
			}
			if cl := resp.Header.Get("Content-Length"); cl != fmt.Sprint(len(data)) {
				t.Errorf("Content-Length %q, want %d", cl, len(data))
			}
			if cd := resp.Header.Get("Content-Disposition"); cd != tt.disposition {
				t.Errorf("Content-Disposition %q, want %q", cd, tt.disposition)
			}
		})
	}
	// Stored once each, privately, next to the SQLite file.
	var files int
	filepath.Walk(filepath.Join(h.dir, "media"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.Contains(p, ".spool") {
			files++
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
		return nil
	})
	if files != len(tests) {
		t.Errorf("media directory holds %d files, want %d", files, len(tests))
	}
	resp, err := http.Get(h.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wahub_media_files{state="available"} 3`, `wahub_media_fetches_total{outcome="available"} 3`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp, _ := h.download("424242"); resp.StatusCode != 404 {
		t.Errorf("unknown media id: %d, want 404", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", h.url("/api/v1/media/"+sandbox.Samples[0].MediaID), nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("GET without the admin token: %v %v, want 401", resp.StatusCode, err)
	}
}

// POST /api/v1/media takes a multipart upload or a raw body and gives an
// id that GET serves; a file over media.max_size is 413.
func TestMediaUpload(t *testing.T) {
	_, graphURL := newGraph(t)
	rcv := newReceiver(t)
	h := newHub(t, mediaConfig(graphURL, rcv.URL(), ""))
	pdf := sandbox.Samples[2].Bytes()
	post := func(ct string, body []byte) (int, map[string]any) {
		req, _ := http.NewRequest("POST", h.url("/api/v1/media"), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("messaging_product", "whatsapp")
	hdr := map[string][]string{"Content-Disposition": {`form-data; name="file"; filename="fatura.pdf"`}, "Content-Type": {"application/pdf"}}
	part, _ := mw.CreatePart(hdr)
	part.Write(pdf)
	mw.Close()
	big := bytes.Repeat([]byte("x"), 2_000_001)
	tests := []struct {
		name     string
		ct       string
		body     []byte
		status   int
		mimeType string
	}{
		{"multipart", mw.FormDataContentType(), mp.Bytes(), 200, "application/pdf"},
		{"raw body", "image/jpeg", sandbox.Samples[0].Bytes(), 200, "image/jpeg"},
		{"raw body sniffed", "application/octet-stream", sandbox.Samples[0].Bytes(), 200, "image/jpeg"},
		{"too large", "application/pdf", big, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := post(tt.ct, tt.body)
			if status != tt.status {
				t.Fatalf("POST: %d %v, want %d", status, out, tt.status)
			}
			if status != 200 {
				return
			}
			id, _ := out["id"].(string)
			if !strings.HasPrefix(id, "med_") || out["mime_type"] != tt.mimeType || out["size"] == nil || out["sha256"] == nil {
				t.Fatalf("answer %v, want id, mime_type %s, sha256, size", out, tt.mimeType)
			}
			resp, got := h.download(id)
			want := tt.body
			if tt.name == "multipart" {
				want = pdf
			}
			if resp.StatusCode != 200 || hexSum(got) != hexSum(want) || out["sha256"] != hexSum(want) {
				t.Fatalf("GET %s: %d, sha256 %s, want %s", id, resp.StatusCode, hexSum(got), hexSum(want))
			}
		})
	}
}

// A download URL that expired before the fetch used it is resolved again
// through GET /{media-id}; the file arrives once.
func TestMediaExpiredURLIsReresolved(t *testing.T) {
	fake, graphURL := newGraph(t)
	rcv := newReceiver(t)
	h := newHub(t, mediaConfig(graphURL, rcv.URL(), ""))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	data := sandbox.Samples[0].Bytes()
	f := fake.AddMedia("", "image/jpeg", "", data)
	fake.ExpireNextMediaURLs(1)
	h.postRaw(mediaWebhook("image", "wamid.expired", map[string]any{"id": f.ID, "mime_type": "image/jpeg", "sha256": f.SHA256Base64}))
	m := waitMedia(t, rcv, "wamid.expired")
	if m.State != sdk.MediaAvailable {
		t.Fatalf("delivered media %+v, want available", m)
	}
	got, _ := fake.Media(f.ID)
	if fake.MediaResolves() != 2 || got.Downloads != 1 {
		t.Fatalf("Graph saw %d resolves and %d downloads, want 2 and 1", fake.MediaResolves(), got.Downloads)
	}
	if _, b := h.download(f.ID); hexSum(b) != hexSum(data) {
		t.Fatal("the stored file differs from the one sent")
	}
}

// A media id Meta no longer has leaves the event delivered at once, with
// the media unavailable and why; GET answers 410.
func TestMediaGoneIsDeliveredUnavailable(t *testing.T) {
	fake, graphURL := newGraph(t)
	rcv := newReceiver(t)
	h := newHub(t, mediaConfig(graphURL, rcv.URL(), ""))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	f := fake.AddMedia("", "application/pdf", "x.pdf", []byte("%PDF-1.4 gone"))
	fake.RemoveMedia(f.ID)
	start := time.Now()
	h.postRaw(mediaWebhook("document", "wamid.gone", map[string]any{"id": f.ID, "mime_type": "application/pdf", "sha256": f.SHA256Base64, "filename": "x.pdf"}))
	h.postText("5511987650001", "wamid.after-gone", "e agora?", time.Now())
	m := waitMedia(t, rcv, "wamid.gone")
	if m.State != sdk.MediaUnavailable || !strings.Contains(m.Reason, "no longer has this file") {
		t.Fatalf("delivered media %+v, want unavailable with a reason", m)
	}
	// Not held for the whole delivery_wait (60s): the fetch gave up and
	// released it.
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("delivered after %s", d)
	}
	waitDelivered(t, rcv, 2, "the conversation's next message")
	if resp, b := h.download(f.ID); resp.StatusCode != 410 || !strings.Contains(string(b), "media_unavailable") {
		t.Fatalf("GET gone media: %d %s, want 410 media_unavailable", resp.StatusCode, b)
	}
}

// Killed mid-download, the hub fetches the file after its restart, from
// the durable queue; the event is delivered once, with the file.
func TestMediaKillMidFetch(t *testing.T) {
	fake, graphURL := newGraph(t)
	rcv := newReceiver(t)
	h := newHub(t, mediaConfig(graphURL, rcv.URL(), ""))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	data := bytes.Repeat([]byte("%PDF-1.4 long invoice line\n"), 40000) // ~1 MB
	f := fake.AddMedia("", "application/pdf", "fatura.pdf", data)
	hold := fake.HoldMediaDownloads(64 << 10)
	h.postRaw(mediaWebhook("document", "wamid.kill", map[string]any{"id": f.ID, "mime_type": "application/pdf", "sha256": f.SHA256Base64, "filename": "fatura.pdf"}))
	select {
	case <-hold.Started():
	case <-time.After(60 * time.Second):
		t.Fatal("the hub never started the download")
	}
	h.kill()
	if n := len(deliveredMedia(t, rcv, "wamid.kill")); n != 0 {
		t.Fatalf("delivered %d times before the file was fetched", n)
	}
	hold.Release()
	h.start()
	m := waitMedia(t, rcv, "wamid.kill")
	if m.State != sdk.MediaAvailable || m.Size != int64(len(data)) {
		t.Fatalf("delivered media %+v after restart, want available with %d bytes", m, len(data))
	}
	h.waitConnector("hook", "settled", func(c admin.ConnectorStatus) bool { return c.Pending == 0 && c.Retrying == 0 })
	if n := len(deliveredMedia(t, rcv, "wamid.kill")); n != 1 {
		t.Fatalf("event delivered %d times, want once", n)
	}
	if got, _ := fake.Media(f.ID); got.Downloads != 2 {
		t.Fatalf("Graph served %d downloads, want 2 (the cut one and the one after restart)", got.Downloads)
	}
	if _, b := h.download(f.ID); hexSum(b) != hexSum(data) {
		t.Fatal("stored file differs from the one sent")
	}
	left, _ := os.ReadDir(filepath.Join(h.dir, "media", ".spool"))
	if len(left) > 1 {
		t.Fatalf("spool holds %d files after the restart", len(left))
	}
}

// wahub check names the media key that is wrong, and says how media is
// kept when all is well.
func TestMediaCheck(t *testing.T) {
	tests := []struct {
		name, media string
		code        int
		want        string
	}{
		{"defaults", "", 0, "media:         local directory"},
		{"unknown store", "media: {store: ftp}", 2, "media.store"},
		{"bad size", "media: {max_size: lots}", 2, "media.max_size"},
		{"postgres media on sqlite", "media: {store: postgres}", 2, "media.store"},
		{"s3 without a bucket", "media: {store: s3, s3: {endpoint: \"http://127.0.0.1:9000\"}}", 2, "media.s3.bucket"},
		{"s3 key without secret", "media: {store: s3, s3: {endpoint: minio:9000, bucket: b, access_key_id: AK}}", 2, "media.s3.secret_access_key"},
		{"fetch concurrency", "media: {fetch: {concurrency: 0}}", 2, "media.fetch.concurrency"},
		{"negative wait", "media: {delivery_wait: -1s}", 2, "media.delivery_wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "connectors.yaml")
			os.WriteFile(cfg, []byte(strings.ReplaceAll(testConfig, "{{DIR}}", dir)+tt.media+"\n"), 0o600)
			out, errOut, code := runWahub(t, dir, "check", "--config", cfg)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("exit %d, want %d naming %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// mediaReport is what the mediaecho test plugin saw of one event's file.
type mediaReport struct {
	MediaID     string `json:"media_id"`
	State       string `json:"state"`
	OpenSHA256  string `json:"open_sha256"`
	OpenSize    int64  `json:"open_size"`
	InfoSHA256  string `json:"info_sha256"`
	Unavailable bool   `json:"unavailable"`
	OpenError   string `json:"open_error"`
	PutID       string `json:"put_id"`
	PutSHA256   string `json:"put_sha256"`
	BigRefusal  string `json:"big_refusal"`
}

// A plugin of the real binary reads a customer's file with OpenMedia
// (streamed over the plugin boundary), puts it back with PutMedia, and is
// refused a file over media.max_size; an unavailable file is
// sdk.ErrMediaUnavailable on its side.
func TestMediaPluginOpensAndPuts(t *testing.T) {
	fake, graphURL := newGraph(t)
	var mu sync.Mutex
	reports := map[string]mediaReport{}
	rsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep mediaReport
		json.NewDecoder(r.Body).Decode(&rep)
		mu.Lock()
		reports[rep.MediaID] = rep
		mu.Unlock()
	}))
	t.Cleanup(rsrv.Close)
	plugin, sum := buildPlugin(t, "mediaecho")
	cfg := strings.Replace(testConfig, "  verify_token: test-verify-token\n",
		"  verify_token: test-verify-token\n  access_token: graph-token\n  api_url: "+graphURL+"\n", 1) + fmt.Sprintf(`
connectors:
  echo:
    plugin: %s
    sha256: %s
    config: {report: %q, big: 2000001}
subscriptions:
  - connector: echo
    events: ["message.received"]
media:
  max_size: 2MB
`, plugin, sum, rsrv.URL)
	h := newHub(t, cfg)
	h.waitConnector("echo", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	big := bytes.Repeat([]byte("%PDF-1.4 a long statement\n"), 60000) // 1.5 MB: many 256 KiB chunks
	doc := fake.AddMedia("", "application/pdf", "extrato.pdf", big)
	gone := fake.AddMedia("", "image/jpeg", "", sandbox.Samples[0].Bytes())
	fake.RemoveMedia(gone.ID)
	h.postRaw(mediaWebhook("document", "wamid.echo.doc", map[string]any{"id": doc.ID, "mime_type": "application/pdf", "sha256": doc.SHA256Base64, "filename": "extrato.pdf"}))
	h.postRaw(mediaWebhook("image", "wamid.echo.gone", map[string]any{"id": gone.ID, "mime_type": "image/jpeg", "sha256": gone.SHA256Base64}))
	h.waitConnector("echo", "delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 2 })
	mu.Lock()
	got, lost := reports[doc.ID], reports[gone.ID]
	mu.Unlock()
	want := hexSum(big)
	if got.State != "available" || got.OpenSHA256 != want || got.OpenSize != int64(len(big)) || got.InfoSHA256 != want {
		t.Fatalf("plugin read %+v, want the %d bytes with sha256 %s", got, len(big), want)
	}
	if got.PutID != "med_"+want[:24] || got.PutSHA256 != want {
		t.Fatalf("PutMedia gave %q (%s), want med_%s", got.PutID, got.PutSHA256, want[:24])
	}
	if resp, b := h.download(got.PutID); resp.StatusCode != 200 || hexSum(b) != want {
		t.Fatalf("GET the put file: %d, sha256 %s", resp.StatusCode, hexSum(b))
	}
	if got.BigRefusal != "media_too_large" {
		t.Fatalf("a 2 MB+1 put: %q, want refused media_too_large", got.BigRefusal)
	}
	if lost.State != "unavailable" || !lost.Unavailable || !strings.Contains(lost.OpenError, "no longer has this file") {
		t.Fatalf("gone file as the plugin saw it: %+v", lost)
	}
}

// Two hubs on one PostgreSQL database with media.store: postgres: a file
// one of them fetched is served by the other, and fetched once.
func TestMediaSharedByHubsOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	fake, graphURL := newGraph(t)
	rcv := newReceiver(t)
	cfg := pgConfig(url, rcv.URL(), graphURL, 80) + "media: {store: postgres, delivery_wait: 60s}\n"
	hubs := startHubs(t, 2, cfg)
	data := sandbox.Samples[2].Bytes()
	f := fake.AddMedia("", "application/pdf", "comprovante.pdf", data)
	hubs[0].postRaw(mediaWebhook("document", "wamid.pg.doc", map[string]any{"id": f.ID, "mime_type": "application/pdf", "sha256": f.SHA256Base64, "filename": "comprovante.pdf"}))
	if m := waitMedia(t, rcv, "wamid.pg.doc"); m.State != sdk.MediaAvailable {
		t.Fatalf("delivered media %+v, want available", m)
	}
	for i, h := range hubs {
		if resp, b := h.download(f.ID); resp.StatusCode != 200 || hexSum(b) != hexSum(data) {
			t.Fatalf("hub %d: GET /api/v1/media: %d, sha256 %s", i, resp.StatusCode, hexSum(b))
		}
	}
	if got, _ := fake.Media(f.ID); got.Downloads != 1 {
		t.Fatalf("Graph served %d downloads to two hubs, want 1", got.Downloads)
	}
}
