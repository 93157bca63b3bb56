package media

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wahub/wahub/host/errtext"
	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// Graph is the part of the Graph API the fetcher uses (*graph.Client).
type Graph interface {
	ResolveMedia(ctx context.Context, mediaID string) (graph.MediaURL, error)
	DownloadMedia(ctx context.Context, url string) (*http.Response, error)
}

// FetchPolicy is how inbound files are fetched (media.fetch).
type FetchPolicy struct {
	// MaxAttempts before a file is given up as unavailable.
	MaxAttempts int
	// Initial and Max bound the backoff between attempts (doubling, with
	// jitter).
	Initial, Max time.Duration
	// Timeout bounds one attempt (resolve and download).
	Timeout time.Duration
	// Concurrency is how many files one hub fetches at once.
	Concurrency int
	// Lease is how long a claimed fetch is this hub's before another may
	// take it; renewed while the download runs.
	Lease time.Duration
}

func (p FetchPolicy) withDefaults() FetchPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.Initial <= 0 {
		p.Initial = 5 * time.Second
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Minute
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Minute
	}
	if p.Concurrency <= 0 {
		p.Concurrency = 4
	}
	if p.Lease <= 0 {
		p.Lease = time.Minute
	}
	return p
}

// delay is the wait after the n-th failed attempt.
func (p FetchPolicy) delay(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	// ±20%: hubs that failed together do not all come back together.
	return d - d/5 + time.Duration(rand.Int64N(int64(d)/5*2+1))
}

// DisableFetch leaves inbound files pending (and delivery unheld): the
// hub has no way to fetch them, such as no access token. Call it before
// Run and before delivery starts.
func (s *Store) DisableFetch() { s.graph, s.wait = nil, 0 }

// Run fetches pending inbound files until ctx ends: those queued by
// events, due ones first, a few at a time.
func (s *Store) Run(ctx context.Context) {
	if s.graph == nil {
		s.log.Warn("media: no Graph API client; inbound files stay pending")
		return
	}
	sem := make(chan struct{}, s.fetch.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		changed := s.records.Changed()
		now := s.clock.Now()
		// Read before claiming: a claim is a commit, and a commit that
		// claims nothing would still wake everything that follows the store.
		next, ok, err := s.records.NextMediaFetch(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("media: reading the fetch queue", "err", err)
			}
			s.sleep(ctx, nil, now.Add(5*time.Second))
			continue
		}
		if !ok || next.After(now) {
			if !ok {
				next = time.Time{}
			}
			s.sleep(ctx, changed, next)
			continue
		}
		free := cap(sem) - len(sem)
		if free == 0 {
			s.sleep(ctx, nil, time.Time{}) // a fetch ending kicks
			continue
		}
		recs, err := s.records.ClaimMediaFetches(ctx, now, s.fetch.Lease, free)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("media: claiming fetches", "err", err)
			}
			s.sleep(ctx, nil, now.Add(5*time.Second))
			continue
		}
		for _, rec := range recs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem; s.poke() }()
				s.runFetch(ctx, rec)
			})
		}
	}
}

func (s *Store) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// sleep waits for changed, until (if not zero), a kick, or ctx.
func (s *Store) sleep(ctx context.Context, changed <-chan struct{}, until time.Time) {
	var timer <-chan time.Time
	if !until.IsZero() {
		t := s.clock.NewTimer(until.Sub(s.clock.Now()))
		defer t.Stop()
		timer = t.Chan()
	}
	select {
	case <-changed:
	case <-timer:
	case <-s.kick:
	case <-ctx.Done():
	}
}

// FetchNow fetches a pending file at once (a plugin or an admin asked for
// it) and returns its record as it then is. A fetch already running, here
// or on another hub, is waited for instead.
func (s *Store) FetchNow(ctx context.Context, id string) (store.MediaRecord, error) {
	tried := false
	for {
		rec, err := s.Stat(ctx, id)
		if err != nil || rec.State != sdk.MediaPending || tried {
			// One attempt of its own at most: a failing file is retried
			// with backoff by the fetcher, not hammered by readers.
			return rec, err
		}
		changed := s.records.Changed()
		s.mu.Lock()
		ch, running := s.inflight[id]
		s.mu.Unlock()
		if running {
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return rec, ctx.Err()
			}
		}
		if s.graph == nil {
			return rec, &UnavailableError{ID: id, Reason: "the hub has no Graph API client to fetch it with"}
		}
		ok, err := s.records.ClaimMediaFetch(ctx, id, s.clock.Now(), s.fetch.Lease)
		if err != nil {
			return rec, err
		}
		if ok {
			s.runFetch(ctx, rec)
			tried = true
			continue
		}
		// Another hub holds the claim: its outcome is a commit.
		t := s.clock.NewTimer(time.Second)
		select {
		case <-changed:
		case <-t.Chan():
		case <-ctx.Done():
			t.Stop()
			return rec, ctx.Err()
		}
		t.Stop()
	}
}

// runFetch makes one attempt at a claimed file and records the outcome.
func (s *Store) runFetch(ctx context.Context, rec store.MediaRecord) {
	done := make(chan struct{})
	s.mu.Lock()
	s.inflight[rec.ID] = done
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, rec.ID)
		s.mu.Unlock()
		close(done)
	}()
	actx, cancel := context.WithTimeout(ctx, s.fetch.Timeout)
	defer cancel()
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for {
			t := s.clock.NewTimer(s.fetch.Lease / 3)
			select {
			case <-t.Chan():
				if err := s.records.RenewMediaClaim(actx, rec.ID, s.clock.Now().Add(s.fetch.Lease)); err != nil && actx.Err() == nil {
					s.log.Warn("media: renewing a fetch's claim", "media", rec.ID, "err", err)
				}
			case <-actx.Done():
				t.Stop()
				return
			}
		}
	}()
	start := s.clock.Now()
	out := s.attempt(actx, rec)
	cancel()
	<-renewed
	if ctx.Err() != nil && out.State != sdk.MediaAvailable {
		// Stopping: not the file's fault. The claim ends with the hub (at
		// the next start on SQLite, at the lease's end elsewhere).
		return
	}
	if out.State == sdk.MediaPending {
		n := rec.Attempts + 1
		if n >= s.fetch.MaxAttempts {
			out.State = sdk.MediaUnavailable
			out.Reason = "could not be fetched from WhatsApp after " + strconv.Itoa(n) + " attempts: " + out.Error
		} else {
			out.NextAt = s.clock.Now().Add(s.fetch.delay(n))
		}
	}
	out.ID = rec.ID
	out.Error, out.Reason = errtext.Cap(out.Error), errtext.Cap(out.Reason)
	if err := s.records.FinishMediaFetch(context.WithoutCancel(ctx), out); err != nil {
		s.log.Error("media: recording a fetch", "media", rec.ID, "err", err)
		return
	}
	s.metrics.fetched(out.State, s.clock.Since(start))
	switch out.State {
	case sdk.MediaAvailable:
		s.metrics.stored(store.MediaInbound, out.Size)
		s.log.Info("media: fetched", "media", rec.ID, "bytes", out.Size, "mime_type", out.MimeType, "sha256", out.SHA256)
	case sdk.MediaUnavailable:
		s.log.Warn("media: unavailable", "media", rec.ID, "reason", out.Reason)
	default:
		s.log.Info("media: fetch failed; retrying", "media", rec.ID, "attempt", rec.Attempts+1, "next", out.NextAt, "err", out.Error)
	}
}

// attempt resolves and downloads one file. Pending means retry.
func (s *Store) attempt(ctx context.Context, rec store.MediaRecord) store.MediaOutcome {
	retry := func(err error) store.MediaOutcome {
		return store.MediaOutcome{State: sdk.MediaPending, Error: err.Error()}
	}
	gone := func(err error) store.MediaOutcome {
		return store.MediaOutcome{State: sdk.MediaUnavailable, Reason: "WhatsApp no longer has this file (the media id is unknown at Meta, e.g. older than 30 days or deleted by the sender)", Error: err.Error()}
	}
	mu, err := s.graph.ResolveMedia(ctx, rec.ID)
	if err != nil {
		if graph.IsMediaGone(err) {
			return gone(err)
		}
		return retry(fmt.Errorf("resolving the media id: %w", err))
	}
	if mu.Size > s.maxSize {
		tl := &TooLargeError{Size: mu.Size, Max: s.maxSize}
		return store.MediaOutcome{State: sdk.MediaUnavailable, Reason: tl.Error(), Error: tl.Error()}
	}
	resp, err := s.graph.DownloadMedia(ctx, mu.URL)
	if err != nil && graph.IsURLExpired(err) {
		// Download URLs live five minutes: a fetch that waited (a retry,
		// a hub that was down) asks for a fresh one.
		s.log.Info("media: download URL refused (expired?); resolving the media id again", "media", rec.ID, "err", err)
		if mu, err = s.graph.ResolveMedia(ctx, rec.ID); err != nil {
			if graph.IsMediaGone(err) {
				return gone(err)
			}
			return retry(fmt.Errorf("resolving the media id again: %w", err))
		}
		resp, err = s.graph.DownloadMedia(ctx, mu.URL)
	}
	if err != nil {
		return retry(fmt.Errorf("downloading: %w", err))
	}
	sp, err := s.spoolFrom(resp.Body)
	resp.Body.Close()
	var tl *TooLargeError
	if errors.As(err, &tl) {
		return store.MediaOutcome{State: sdk.MediaUnavailable, Reason: tl.Error(), Error: tl.Error()}
	}
	if err != nil {
		return retry(fmt.Errorf("downloading: %w", err))
	}
	defer sp.remove()
	if mu.Size >= 0 && sp.size != mu.Size {
		return retry(fmt.Errorf("the download was %d bytes, Graph said %d", sp.size, mu.Size))
	}
	if !digestEqual(sp.sum, rec.ExpectSHA256) {
		return retry(fmt.Errorf("the downloaded file's sha256 (%s) does not match the webhook's (%s)", sp.sha, rec.ExpectSHA256))
	}
	if !digestEqual(sp.sum, mu.SHA256) {
		return retry(fmt.Errorf("the downloaded file's sha256 (%s) does not match Graph's (%s)", sp.sha, mu.SHA256))
	}
	if err := s.commit(ctx, sp); err != nil {
		return retry(err)
	}
	mt := rec.MimeType
	if mt == "" {
		mt = mu.MimeType
	}
	return store.MediaOutcome{State: sdk.MediaAvailable, SHA256: sp.sha, Size: sp.size, MimeType: mt}
}
