package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/store"
)

// mediaBytes is a file of n bytes that is not all zeros.
func mediaBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131) ^ seed
	}
	return b
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putMedia uploads a file with POST /api/v1/media (the raw body with its
// Content-Type) and returns its id.
func (h *hubProc) putMedia(mimeType, filename string, data []byte) string {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url("/api/v1/media?filename="+url.QueryEscape(filename)), bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", mimeType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a struct {
		ID string `json:"id"`
	}
	if resp.StatusCode/100 != 2 || json.Unmarshal(raw, &a) != nil || a.ID == "" {
		h.t.Fatalf("POST /api/v1/media: %d %s", resp.StatusCode, raw)
	}
	return a.ID
}

func TestMediaOutbound(t *testing.T) {
	fake, u := newGraph(t)
	h := newHub(t, outboundConfig(u, 80))
	h.postText("5511987650001", "wamid.E2E.media.in", "pode mandar a fatura?", time.Now())

	pdf := mediaBytes(3<<20, 1)
	id := h.putMedia("application/pdf", "fatura-1042.pdf", pdf)
	code, a := h.send(map[string]any{"to": "5511987650001", "media": map[string]any{"id": id, "caption": "sua fatura"}, "idempotency_key": "media-1"})
	if code != 202 {
		t.Fatalf("send: %d %+v", code, a.Error)
	}
	rec := h.waitMessage(a.ID, "accepted", func(r store.OutboundRecord) bool { return r.State == store.OutAccepted })
	ups := fake.Uploads()
	if len(ups) != 1 || ups[0].SHA256 != hexSHA(pdf) || ups[0].Size != int64(len(pdf)) || ups[0].MimeType != "application/pdf" {
		t.Fatalf("uploads %+v, want the PDF (sha256 %s)", ups, hexSHA(pdf))
	}
	sent := fake.Sent()
	if len(sent) != 1 || sent[0].Kind != "document" || sent[0].MediaID != ups[0].ID || sent[0].Caption != "sua fatura" || sent[0].Filename != "fatura-1042.pdf" {
		t.Fatalf("sent %+v, want the document by its uploaded id %s", sent, ups[0].ID)
	}
	if rec.Upload == nil || rec.Upload.GraphID != ups[0].ID {
		t.Errorf("GET /api/v1/messages/%s: upload %+v", a.ID, rec.Upload)
	}

	// Too large for an image: 422 naming the rule, nothing uploaded.
	png := mediaBytes(6<<20, 2)
	big := h.putMedia("image/png", "scan.png", png)
	code, a = h.send(map[string]any{"to": "5511987650001", "media": map[string]any{"id": big, "type": "image"}})
	if code != 422 || a.Error.Code != "media_too_large" {
		t.Fatalf("6 MB image: %d %+v", code, a.Error)
	}
	// Outside the window, media is refused like text.
	code, a = h.send(map[string]any{"to": "5511900000099", "phone_number_id": businessNumber, "media": map[string]any{"id": id}})
	if code != 422 || a.Error.Code != "outside_window" {
		t.Fatalf("outside the window: %d %+v", code, a.Error)
	}
	if n := fake.UploadCount(); n != 1 {
		t.Errorf("%d uploads after the refusals, want 1", n)
	}
}

// TestMediaOutboundSurvivesKill kills the hub at the two points that matter
// for a media message, made deterministic by a fake that holds the send.
func TestMediaOutboundSurvivesKill(t *testing.T) {
	t.Run("killed after the upload before the send went out", func(t *testing.T) {
		fake, u := newGraph(t)
		h := newHub(t, outboundConfig(u, 80))
		h.postText("5511987650002", "wamid.E2E.media.kill1", "oi", time.Now())
		// Meta throttles the send: the hub records the upload and waits.
		throttled := make(chan struct{}, 1)
		fake.Script(func(r graphtest.Request) *graphtest.ErrorResponse {
			if r.Kind != "document" {
				return nil
			}
			select {
			case throttled <- struct{}{}:
			default:
			}
			return &graphtest.ErrorResponse{HTTPStatus: 400, Code: graph.ErrThroughput, Message: "(#130429) Rate limit hit", RetryAfter: time.Second}
		})
		pdf := mediaBytes(2<<20, 3)
		id := h.putMedia("application/pdf", "contrato.pdf", pdf)
		code, a := h.send(map[string]any{"to": "5511987650002", "media": map[string]any{"id": id}})
		if code != 202 {
			t.Fatalf("send: %d %+v", code, a.Error)
		}
		<-throttled
		h.waitMessage(a.ID, "deferred with the upload recorded", func(r store.OutboundRecord) bool {
			return r.State == store.OutQueued && r.Upload != nil
		})
		h.kill()
		fake.Script(nil)
		h.start()
		h.waitMessage(a.ID, "accepted after the restart", func(r store.OutboundRecord) bool { return r.State == store.OutAccepted })
		if n, s := fake.UploadCount(), fake.Sent(); n != 1 || len(s) != 1 || s[0].MediaID != fake.Uploads()[0].ID || fake.Uploads()[0].SHA256 != hexSHA(pdf) {
			t.Fatalf("%d uploads, sent %+v: want one upload, sent once by its id", n, s)
		}
	})
	t.Run("killed while the send was in flight", func(t *testing.T) {
		fake, u := newGraph(t)
		h := newHub(t, outboundConfig(u, 80))
		h.postText("5511987650003", "wamid.E2E.media.kill2", "oi", time.Now())
		held, release := make(chan struct{}, 1), make(chan struct{})
		var once sync.Once
		fake.Script(func(r graphtest.Request) *graphtest.ErrorResponse {
			if r.Kind == "image" {
				once.Do(func() { held <- struct{}{} })
				<-release // Meta takes the message; the hub never hears back
			}
			return nil
		})
		jpeg := mediaBytes(400<<10, 4)
		id := h.putMedia("image/jpeg", "foto.jpg", jpeg)
		code, a := h.send(map[string]any{"to": "5511987650003", "media": map[string]any{"id": id, "caption": "olha"}})
		if code != 202 {
			t.Fatalf("send: %d %+v", code, a.Error)
		}
		<-held
		h.kill()
		close(release)
		h.start()
		h.waitMessage(a.ID, "unknown after the restart", func(r store.OutboundRecord) bool { return r.State == store.OutUnknown })
		// Meta took the held request once it was let go.
		for deadline := time.Now().Add(30 * time.Second); fake.SentCount() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the held send was never recorded")
			}
		}
		// The restarted hub neither uploads nor sends again.
		sends := 0
		for _, r := range fake.Requests() {
			if r.Kind == "image" {
				sends++
			}
		}
		if n := fake.UploadCount(); n != 1 || sends != 1 || fake.SentCount() != 1 || fake.Uploads()[0].SHA256 != hexSHA(jpeg) {
			t.Fatalf("%d uploads, %d send requests, %d sent; want 1, 1, 1", n, sends, fake.SentCount())
		}
	})
}
