package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

const token = "test-token"

type env struct {
	st    *store.Store
	ms    *media.Store
	fake  *graphtest.Server
	clock *clockwork.FakeClock
	dir   string
}

func newEnv(t *testing.T, opt media.Options) *env {
	t.Helper()
	dir := t.TempDir()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC))
	st, err := store.Open(filepath.Join(dir, "wahub.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := graphtest.NewServer(graphtest.WithAccessToken(token), graphtest.WithClock(clock.Now))
	srv := httptest.NewServer(fake)
	t.Cleanup(func() { srv.Close(); fake.Close() })
	if opt.Backend == nil {
		b, err := media.NewLocal(filepath.Join(dir, "media"))
		if err != nil {
			t.Fatal(err)
		}
		opt.Backend = b
	}
	opt.Records = st
	opt.Graph = graph.New(srv.URL+"/v23.0", token, nil)
	opt.Clock = clock
	opt.Logger = slog.New(slog.DiscardHandler)
	ms, err := media.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, ms: ms, fake: fake, clock: clock, dir: dir}
}

// inbound appends a message event carrying the media id, as ingest does.
func (e *env) inbound(t *testing.T, wamid string, m sdk.Media) sdk.Event {
	t.Helper()
	ev := sdk.Event{ID: "evt_" + wamid, Type: "message.received", OccurredAt: e.clock.Now(), ReceivedAt: e.clock.Now(),
		Business: &sdk.Business{PhoneNumberID: "106540352242922"},
		Contact:  &sdk.Contact{WAID: "5511987650001"},
		Message:  &sdk.Message{ID: wamid, Type: "image", Media: &m}}
	evs := []sdk.Event{ev}
	if _, err := e.st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func readAll(t *testing.T, ms *media.Store, id string) (sdk.MediaInfo, []byte, error) {
	t.Helper()
	info, rc, err := ms.Open(context.Background(), id)
	if err != nil {
		return info, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return info, b, err
}

func TestPutOpen(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	tests := []struct {
		name    string
		upload  sdk.MediaUpload
		data    []byte
		refused string // RefusedError code
	}{
		{"small document", sdk.MediaUpload{MimeType: "application/pdf", Filename: "a.pdf"}, []byte("%PDF-1.4 tiny"), ""},
		{"empty file", sdk.MediaUpload{MimeType: "text/plain"}, nil, "media_empty"},
		{"at the limit", sdk.MediaUpload{MimeType: "image/jpeg"}, big, ""},
		{"declared over the limit", sdk.MediaUpload{MimeType: "image/jpeg", Size: int64(len(big)) + 1}, []byte("x"), "media_too_large"},
		{"streamed over the limit", sdk.MediaUpload{MimeType: "image/jpeg"}, append(big, 'x'), "media_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, media.Options{MaxSize: int64(len(big))})
			info, err := e.ms.Put(context.Background(), tt.upload, bytes.NewReader(tt.data))
			if tt.refused != "" {
				var re *sdk.RefusedError
				if !errors.As(err, &re) || re.Code != tt.refused {
					t.Fatalf("Put = %v, want a refusal %s", err, tt.refused)
				}
				// Nothing was kept, not even in the spool.
				left, _ := os.ReadDir(filepath.Join(e.dir, "media", ".spool"))
				if len(left) != 0 {
					t.Fatalf("spool keeps %d files after a refusal", len(left))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := media.HubID(sum(tt.data)); info.ID != want || info.SHA256 != sum(tt.data) || info.Size != int64(len(tt.data)) {
				t.Fatalf("info = %+v, want id %s, sha %s, size %d", info, want, sum(tt.data), len(tt.data))
			}
			got, b, err := readAll(t, e.ms, info.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tt.data) || got.MimeType != tt.upload.MimeType || got.Filename != tt.upload.Filename {
				t.Fatalf("Open = %+v (%d bytes), want the put file", got, len(b))
			}
			// Private: the file and its directory are the hub user's only.
			fi, err := os.Stat(filepath.Join(e.dir, "media", info.SHA256[:2], info.SHA256))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("stored file: %v, mode %v", err, fi.Mode())
			}
			// Putting the same bytes again is the same file.
			again, err := e.ms.Put(context.Background(), tt.upload, bytes.NewReader(tt.data))
			if err != nil || again.ID != info.ID {
				t.Fatalf("second Put = %+v, %v; want id %s", again, err, info.ID)
			}
		})
	}
}

func TestOpenUnknownAndDamaged(t *testing.T) {
	e := newEnv(t, media.Options{})
	_, _, err := readAll(t, e.ms, "med_nothing")
	var ue *media.UnavailableError
	if !errors.Is(err, sdk.ErrMediaUnavailable) || !errors.As(err, &ue) || !ue.NotFound() {
		t.Fatalf("unknown id: %v, want an unavailable, not-found error", err)
	}
	info, err := e.ms.Put(context.Background(), sdk.MediaUpload{MimeType: "text/plain"}, strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.dir, "media", info.SHA256[:2], info.SHA256)
	if err := os.WriteFile(path, []byte("hellx"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readAll(t, e.ms, info.ID); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file read: %v, want an error naming the damage", err)
	}
	os.Remove(path)
	if _, _, err := readAll(t, e.ms, info.ID); !errors.Is(err, sdk.ErrMediaUnavailable) {
		t.Fatalf("missing bytes: %v, want unavailable", err)
	}
}

func TestFetch(t *testing.T) {
	photo := bytes.Repeat([]byte{0xff, 0xd8, 0x10, 0x20}, 5000)
	tests := []struct {
		name string
		// setup prepares the fake and returns the webhook's media block.
		setup     func(e *env) sdk.Media
		maxSize   int64
		wantState sdk.MediaState
		reason    string // part of the unavailable reason
		attempts  int    // fetch attempts FetchNow calls make (one each)
	}{
		{"available", func(e *env) sdk.Media {
			f := e.fake.AddMedia("", "image/jpeg", "", photo)
			return sdk.Media{ID: f.ID, MimeType: "image/jpeg", SHA256: f.SHA256Base64}
		}, 0, sdk.MediaAvailable, "", 1},
		{"gone at Meta", func(e *env) sdk.Media {
			f := e.fake.AddMedia("", "image/jpeg", "", photo)
			e.fake.RemoveMedia(f.ID)
			return sdk.Media{ID: f.ID, MimeType: "image/jpeg", SHA256: f.SHA256Base64}
		}, 0, sdk.MediaUnavailable, "no longer has this file", 1},
		{"never known at Meta", func(e *env) sdk.Media {
			return sdk.Media{ID: "999000111", MimeType: "image/jpeg"}
		}, 0, sdk.MediaUnavailable, "no longer has this file", 1},
		{"too large for the store", func(e *env) sdk.Media {
			f := e.fake.AddMedia("", "image/jpeg", "", photo)
			return sdk.Media{ID: f.ID, MimeType: "image/jpeg", SHA256: f.SHA256Base64}
		}, 1024, sdk.MediaUnavailable, "media.max_size", 1},
		{"a failed download is retried", func(e *env) sdk.Media {
			f := e.fake.AddMedia("", "image/jpeg", "", photo)
			e.fake.FailMediaDownloads(1)
			return sdk.Media{ID: f.ID, MimeType: "image/jpeg", SHA256: f.SHA256Base64}
		}, 0, sdk.MediaAvailable, "", 2},
		{"digest mismatch gives up after max attempts", func(e *env) sdk.Media {
			f := e.fake.AddMedia("", "image/jpeg", "", photo)
			return sdk.Media{ID: f.ID, MimeType: "image/jpeg", SHA256: "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="}
		}, 0, sdk.MediaUnavailable, "does not match the webhook", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, media.Options{MaxSize: tt.maxSize, Fetch: media.FetchPolicy{MaxAttempts: 3}})
			m := tt.setup(e)
			e.inbound(t, "wamid."+strings.ReplaceAll(tt.name, " ", "_"), m)
			var rec store.MediaRecord
			var err error
			for range tt.attempts {
				if rec, err = e.ms.FetchNow(context.Background(), m.ID); err != nil {
					t.Fatal(err)
				}
			}
			if rec.State != tt.wantState || !strings.Contains(rec.Reason, tt.reason) {
				t.Fatalf("after %d attempts: state %s (%q, last error %q), want %s with %q", tt.attempts, rec.State, rec.Reason, rec.LastError, tt.wantState, tt.reason)
			}
			if rec.Attempts != tt.attempts {
				t.Fatalf("attempts = %d, want %d", rec.Attempts, tt.attempts)
			}
			_, b, err := readAll(t, e.ms, m.ID)
			if tt.wantState == sdk.MediaAvailable {
				if err != nil || sum(b) != sum(photo) {
					t.Fatalf("Open = %v, %d bytes; want the photo byte for byte", err, len(b))
				}
				return
			}
			if !errors.Is(err, sdk.ErrMediaUnavailable) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Open = %v, want unavailable with %q", err, tt.reason)
			}
		})
	}
}

// An expired download URL (a fetch that waited) is re-resolved through
// GET /{media-id}, in the same attempt.
func TestFetchReresolvesExpiredURL(t *testing.T) {
	e := newEnv(t, media.Options{})
	data := []byte("%PDF-1.4 an invoice")
	f := e.fake.AddMedia("", "application/pdf", "fatura.pdf", data)
	e.inbound(t, "wamid.doc", sdk.Media{ID: f.ID, MimeType: "application/pdf", SHA256: f.SHA256Base64, Filename: "fatura.pdf"})
	// Resolve, then make the URL expire before the download: the graph
	// wrapper expires URLs between its two calls.
	g := &expiringGraph{Graph: graph.New(e.fakeURL(t), token, nil), fake: e.fake}
	ms, err := media.New(media.Options{Backend: e.ms.Backend(), Records: e.st, Graph: g, Clock: e.clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ms.FetchNow(context.Background(), f.ID)
	if err != nil || rec.State != sdk.MediaAvailable {
		t.Fatalf("FetchNow = %+v, %v; want available after re-resolving", rec, err)
	}
	if g.resolves != 2 || e.fake.MediaResolves() != 2 {
		t.Fatalf("resolved %d times (fake: %d), want 2", g.resolves, e.fake.MediaResolves())
	}
	if got, _ := e.fake.Media(f.ID); got.Downloads != 1 {
		t.Fatalf("fake served %d downloads, want 1", got.Downloads)
	}
}

type expiringGraph struct {
	media.Graph
	fake     *graphtest.Server
	resolves int
}

func (g *expiringGraph) ResolveMedia(ctx context.Context, id string) (graph.MediaURL, error) {
	g.resolves++
	u, err := g.Graph.ResolveMedia(ctx, id)
	if g.resolves == 1 {
		g.fake.ExpireMediaURLs()
	}
	return u, err
}

func (e *env) fakeURL(t *testing.T) string {
	srv := httptest.NewServer(e.fake)
	t.Cleanup(srv.Close)
	return srv.URL + "/v23.0"
}
