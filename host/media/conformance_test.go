package media_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/sdk"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// backendCase builds one backend over a fresh place, with the hub store
// it goes with (PostgreSQL's tables come from the store's migrations).
type backendCase struct {
	name string
	open func(t *testing.T) (media.Backend, *store.Store)
}

func sqliteStore(t *testing.T) *store.Store {
	st, err := store.Open(filepath.Join(t.TempDir(), "wahub.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var backends = []backendCase{
	{"local", func(t *testing.T) (media.Backend, *store.Store) {
		b, err := media.NewLocal(filepath.Join(t.TempDir(), "media"))
		if err != nil {
			t.Fatal(err)
		}
		return b, sqliteStore(t)
	}},
	{"postgres", func(t *testing.T) (media.Backend, *store.Store) {
		url := pgtest.URL(t)
		st, err := store.OpenPostgres(url, store.Options{}, store.PostgresOptions{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		b, err := media.NewPostgres(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return b, st
	}},
	{"s3", func(t *testing.T) (media.Backend, *store.Store) {
		return newS3(t, "wahub-media", "hub/"), sqliteStore(t)
	}},
}

// newS3 is a bucket on gofakes3, an in-process implementation of the S3
// protocol (signatures, multipart uploads), not a mock of minio-go.
func newS3(t *testing.T, bucket, prefix string) *media.S3 {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	b, err := media.NewS3(media.S3Options{Endpoint: srv.URL, Bucket: bucket, Region: "us-east-1", Prefix: prefix,
		AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// TestBackendConformance runs every backend through the same cases: what
// one does, all do.
func TestBackendConformance(t *testing.T) {
	const mib = 1 << 20
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b, _ := bc.open(t)
			t.Run("round trip at chunk boundaries", func(t *testing.T) {
				// No 0: the media store never keeps an empty file.
				for _, n := range []int{1, mib - 1, mib, mib + 1, 3*mib + 5} {
					data := patterned(n)
					key := sum(data)
					if err := b.Put(ctx, key, bytes.NewReader(data), int64(n)); err != nil {
						t.Fatalf("%d bytes: Put: %v", n, err)
					}
					rc, err := b.Open(ctx, key)
					if err != nil {
						t.Fatalf("%d bytes: Open: %v", n, err)
					}
					got, err := io.ReadAll(rc)
					rc.Close()
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%d bytes: read %d bytes, %v; want the same bytes", n, len(got), err)
					}
				}
			})
			t.Run("put twice is one file", func(t *testing.T) {
				data := []byte("the same bytes")
				for range 2 {
					if err := b.Put(ctx, sum(data), bytes.NewReader(data), int64(len(data))); err != nil {
						t.Fatal(err)
					}
				}
				if ok, err := b.Has(ctx, sum(data)); !ok || err != nil {
					t.Fatalf("Has = %v, %v", ok, err)
				}
			})
			t.Run("missing", func(t *testing.T) {
				key := sum([]byte("never put"))
				if _, err := b.Open(ctx, key); !errors.Is(err, media.ErrNotFound) {
					t.Fatalf("Open = %v, want ErrNotFound", err)
				}
				if ok, err := b.Has(ctx, key); ok || err != nil {
					t.Fatalf("Has = %v, %v", ok, err)
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Fatalf("Delete of a missing key: %v", err)
				}
			})
			t.Run("delete", func(t *testing.T) {
				data := []byte("to be deleted")
				key := sum(data)
				if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
				if err := b.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Open(ctx, key); !errors.Is(err, media.ErrNotFound) {
					t.Fatalf("Open after Delete = %v, want ErrNotFound", err)
				}
			})
			t.Run("short write stores nothing", func(t *testing.T) {
				data := []byte("twenty bytes of data")
				key := sum(append(data, '!'))
				if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data))+1); err == nil {
					t.Fatal("Put of fewer bytes than announced succeeded")
				}
				if ok, _ := b.Has(ctx, key); ok {
					t.Fatal("a short write left a file")
				}
			})
			t.Run("bad keys refused", func(t *testing.T) {
				for _, key := range []string{"", "../../etc/passwd", "ABCDEF", sum(nil)[:63]} {
					if err := b.Put(ctx, key, bytes.NewReader(nil), 0); err == nil {
						t.Errorf("Put(%q) accepted", key)
					}
					if _, err := b.Open(ctx, key); err == nil || errors.Is(err, media.ErrNotFound) {
						t.Errorf("Open(%q) = %v, want a refusal", key, err)
					}
				}
			})
			t.Run("concurrent puts of the same bytes", func(t *testing.T) {
				data := patterned(2*mib + 3)
				key := sum(data)
				var wg sync.WaitGroup
				errs := make([]error, 4)
				for i := range errs {
					wg.Go(func() { errs[i] = b.Put(ctx, key, bytes.NewReader(data), int64(len(data))) })
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
				rc, err := b.Open(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				if !bytes.Equal(got, data) {
					t.Fatal("content damaged by concurrent puts")
				}
			})
		})
	}
}

// TestStoreOnEveryBackend: the media store's own behaviour (put, open,
// deletion with the contact's data, retention) on each backend.
func TestStoreOnEveryBackend(t *testing.T) {
	for _, bc := range backends {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b, st := bc.open(t)
			ms, err := media.New(media.Options{Backend: b, Records: st, SpoolDir: t.TempDir(), MaxSize: 4 << 20, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			data := patterned(3<<20 + 17)
			info, err := ms.Put(ctx, sdk.MediaUpload{MimeType: "application/pdf", Filename: "big.pdf"}, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			_, got, err := readAll(t, ms, info.ID)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Open: %v, %d bytes", err, len(got))
			}
			if _, err := ms.Put(ctx, sdk.MediaUpload{MimeType: "application/pdf"}, bytes.NewReader(patterned(4<<20+1))); err == nil {
				t.Fatal("a file over max_size was taken")
			}
			if err := ms.Delete(ctx, info.ID); err != nil {
				t.Fatal(err)
			}
			if ok, _ := b.Has(ctx, info.SHA256); ok {
				t.Fatal("Delete left the bytes")
			}
			if _, _, err := readAll(t, ms, info.ID); !errors.Is(err, sdk.ErrMediaUnavailable) {
				t.Fatalf("Open after Delete: %v", err)
			}

			// An inbound file: queued with its event, fetched, then gone
			// with its contact's data; bytes another file shares stay.
			fake := graphtest.NewServer(graphtest.WithAccessToken(token))
			srv := httptest.NewServer(fake)
			defer srv.Close()
			defer fake.Close()
			ms, err = media.New(media.Options{Backend: b, Records: st, SpoolDir: t.TempDir(), Graph: graph.New(srv.URL+"/v23.0", token, nil),
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			photo := patterned(200_000)
			f := fake.AddMedia("", "image/jpeg", "", photo)
			now := time.Now()
			ev := []sdk.Event{{ID: "evt_photo", Type: "message.received", OccurredAt: now, ReceivedAt: now,
				Business: &sdk.Business{PhoneNumberID: "106540352242922"}, Contact: &sdk.Contact{WAID: "5511987650001"},
				Message: &sdk.Message{ID: "wamid.photo", Type: "image", Media: &sdk.Media{ID: f.ID, MimeType: "image/jpeg", SHA256: f.SHA256Base64}}}}
			if _, err := st.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if rec, err := st.MediaRecord(ctx, f.ID); err != nil || rec.State != sdk.MediaPending || rec.ContactKey == "" {
				t.Fatalf("queued with the event: %+v, %v", rec, err)
			}
			_, got, err = readAll(t, ms, f.ID) // pending: fetched on demand
			if err != nil || !bytes.Equal(got, photo) {
				t.Fatalf("Open of a pending file: %v, %d bytes", err, len(got))
			}
			shared, err := ms.Put(ctx, sdk.MediaUpload{MimeType: "image/jpeg"}, bytes.NewReader(photo))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := ms.DeleteContact(ctx, "5511987650001"); err != nil || n != 1 {
				t.Fatalf("DeleteContact = %d, %v; want 1 file", n, err)
			}
			if _, _, err := readAll(t, ms, f.ID); !errors.Is(err, sdk.ErrMediaUnavailable) {
				t.Fatalf("the contact's file after deletion: %v", err)
			}
			if _, got, err := readAll(t, ms, shared.ID); err != nil || !bytes.Equal(got, photo) {
				t.Fatalf("a file with the same bytes lost them: %v", err)
			}
			// Retention: files older than the cutoff go.
			if n, err := ms.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
				t.Fatalf("Prune = %d, %v; want 1", n, err)
			}
			if ok, _ := b.Has(ctx, shared.SHA256); ok {
				t.Fatal("Prune left the bytes")
			}
		})
	}
}
