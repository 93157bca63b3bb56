package hub

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/store"
)

func (g *graphClient) ResolveMedia(ctx context.Context, id string) (graph.MediaURL, error) {
	return g.c.Load().ResolveMedia(ctx, id)
}

func (g *graphClient) DownloadMedia(ctx context.Context, url string) (*http.Response, error) {
	return g.c.Load().DownloadMedia(ctx, url)
}

// MediaBackend opens the backend media.store names.
func MediaBackend(cfg *config.Config, st *store.Store) (media.Backend, error) {
	switch cfg.Media.Store {
	case "postgres":
		if st.Driver() != "postgres" {
			return nil, &config.Error{Key: "media.store", Msg: "postgres needs store.driver: postgres"}
		}
		return media.NewPostgres(cfg.Store.URL.Reveal())
	case "s3":
		s3 := cfg.Media.S3
		return media.NewS3(media.S3Options{Endpoint: s3.Endpoint, Bucket: s3.Bucket, Region: s3.Region, Prefix: s3.Prefix,
			AccessKeyID: s3.AccessKeyID.Reveal(), SecretAccessKey: s3.SecretAccessKey.Reveal(), PathStyle: s3.PathStyle})
	default:
		return media.NewLocal(cfg.MediaPath())
	}
}

// newMedia builds the hub's media store over its backend.
func (h *Hub) newMedia() (*media.Store, error) {
	b, err := MediaBackend(h.cfg, h.store)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	mc := h.cfg.Media
	ms, err := media.New(media.Options{
		Backend:  b,
		Records:  h.store,
		Graph:    h.graph,
		MaxSize:  mc.MaxBytes,
		SpoolDir: mc.SpoolDir,
		Wait:     mc.DeliveryWait,
		Fetch: media.FetchPolicy{MaxAttempts: mc.Fetch.MaxAttempts, Initial: mc.Fetch.InitialInterval, Max: mc.Fetch.MaxInterval,
			Timeout: mc.Fetch.Timeout, Concurrency: mc.Fetch.Concurrency},
		Clock:  h.clock,
		Logger: h.log.With("component", "media"),
	})
	if err != nil {
		return nil, err
	}
	if mc.Store == "local" && h.store.Driver() == "postgres" {
		h.log.Warn("media: files are kept in this hub's own directory while the store is PostgreSQL: other hubs sharing the database cannot serve the files this one fetched; set media.store: postgres or s3", "path", h.cfg.MediaPath())
	}
	ms.SetMetrics(media.NewMetrics(h.registry))
	ms.RegisterFiles(h.registry)
	return ms, nil
}

// mediaFetchable reports whether inbound files can be fetched, and
// turns fetching off (saying so) when they cannot: Graph's media URLs
// need the access token.
func (h *Hub) mediaFetchable() bool {
	if h.cfg.WhatsApp.AccessToken.Reveal() == "" {
		h.log.Warn("media: whatsapp.access_token is not set, so customers' files are not fetched: events carry the media id with state pending; set the token to fetch them (those already queued are fetched then)")
		h.media.DisableFetch()
		return false
	}
	return true
}

// runMedia fetches inbound files until ctx ends.
func (h *Hub) runMedia(ctx context.Context) {
	if h.store.Driver() != "postgres" {
		// Claims left by a crash of this hub: the only one on this file.
		if err := h.store.ReleaseMediaClaims(ctx); err != nil {
			h.log.Error("media: releasing old fetch claims", "err", err)
		}
	}
	h.media.Run(ctx)
}

// pruneMedia deletes files older than media.retention_days every six
// hours (on the leader).
func (h *Hub) pruneMedia(ctx context.Context) {
	days := h.cfg.Media.RetentionDays
	for {
		if h.isLeader() {
			n, err := h.media.Prune(ctx, h.clock.Now().Add(-time.Duration(days)*24*time.Hour))
			if err != nil && ctx.Err() == nil {
				h.log.Error("media retention: deleting old files failed", "err", err)
			} else if n > 0 {
				h.log.Info("media retention: deleted old files", "files", n, "older_than_days", days)
			}
		}
		select {
		case <-h.clock.After(6 * time.Hour):
		case <-ctx.Done():
			return
		}
	}
}
