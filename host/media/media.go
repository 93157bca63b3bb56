// Package media is the hub's media store: customers' photos, voice notes
// and documents fetched from WhatsApp, and agents' attachments put for
// sending.
//
// Bytes are content-addressed (the key is their hex sha256) in a Backend:
// a private local directory next to the SQLite store, PostgreSQL, or an
// S3-compatible bucket that several hubs share. What each file is (id,
// MIME type, name, contact, state) lives in the hub's store, and so does
// the fetch queue: an inbound file is recorded as pending in the same
// commit as its event, and the Fetcher takes it from there, off the
// webhook's path, with retries and backoff, until the file is stored or
// known to be unavailable. Delivery holds an event whose file is being
// fetched for a bounded while (Prepare), so connectors normally see it
// available.
//
// Nothing here holds a whole file in memory: files stream through a spool
// file on disk, where their digest and size are taken on the way.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// DefaultMaxSize is media.max_size's default: WhatsApp's largest file (a
// document) is 100 MB.
const DefaultMaxSize = 100 << 20

// Options assemble a Store.
type Options struct {
	Backend Backend
	Records *store.Store
	// Graph fetches inbound files; nil: inbound files stay pending.
	Graph Graph
	// MaxSize is the largest file kept (default DefaultMaxSize).
	MaxSize int64
	// SpoolDir holds files while they stream in (default: the backend's
	// own spool, or the system's temporary directory).
	SpoolDir string
	Fetch    FetchPolicy
	// Wait is how long delivery holds an event whose file is being fetched
	// (0: not at all).
	Wait   time.Duration
	Clock  clockwork.Clock
	Logger *slog.Logger
}

// Store is the media store. It is safe for concurrent use.
type Store struct {
	backend Backend
	records *store.Store
	graph   Graph
	maxSize int64
	spool   string
	fetch   FetchPolicy
	wait    time.Duration
	clock   clockwork.Clock
	log     *slog.Logger
	metrics *Metrics

	// started bounds holds too: files queued before a restart get their
	// wait again, since the fetcher was not running for them.
	started time.Time

	mu       sync.Mutex
	inflight map[string]chan struct{} // media id → closed when its fetch ends
	kick     chan struct{}
}

// New builds a media store; Run starts its fetcher.
func New(opt Options) (*Store, error) {
	if opt.Backend == nil || opt.Records == nil {
		return nil, errors.New("media: a backend and the hub's store are required")
	}
	if opt.MaxSize <= 0 {
		opt.MaxSize = DefaultMaxSize
	}
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.SpoolDir == "" {
		if a, ok := opt.Backend.(adopter); ok {
			opt.SpoolDir = a.SpoolDir()
		} else {
			opt.SpoolDir = os.TempDir()
		}
	}
	return &Store{
		backend: opt.Backend, records: opt.Records, graph: opt.Graph, maxSize: opt.MaxSize,
		spool: opt.SpoolDir, fetch: opt.Fetch.withDefaults(), wait: opt.Wait, clock: opt.Clock, log: opt.Logger,
		inflight: map[string]chan struct{}{}, kick: make(chan struct{}, 1), started: opt.Clock.Now(),
	}, nil
}

// Close releases the backend's connections (PostgreSQL).
func (s *Store) Close() {
	if c, ok := s.backend.(interface{ Close() }); ok {
		c.Close()
	}
}

// Backend is where the bytes are.
func (s *Store) Backend() Backend { return s.backend }

// MaxSize is the largest file the store takes.
func (s *Store) MaxSize() int64 { return s.maxSize }

// HubID is the id a put file gets: derived from its bytes, so an agent's
// attachment put twice (a redelivered event) is one file.
func HubID(sha string) string { return "med_" + sha[:24] }

// IsHubID reports whether id is one HubID made.
func IsHubID(id string) bool { return strings.HasPrefix(id, "med_") }

// TooLargeError is a file over media.max_size; it converts to the SDK's
// refusal (code media_too_large).
type TooLargeError struct {
	Size, Max int64 // Size -1: more than Max, exact size unknown
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("the file is larger than %d bytes, the most this hub keeps (media.max_size)", e.Max)
	}
	return fmt.Sprintf("the file is %d bytes; this hub keeps at most %d (media.max_size)", e.Size, e.Max)
}

// Refusal is the error as a plugin sees it.
func (e *TooLargeError) Refusal() *sdk.RefusedError {
	return &sdk.RefusedError{Code: "media_too_large", Message: e.Error()}
}

// spooled is a file streamed to disk with its digest and size.
type spooled struct {
	path string
	sha  string // hex
	sum  []byte
	size int64
}

func (sp *spooled) remove() {
	if sp != nil && sp.path != "" {
		os.Remove(sp.path)
	}
}

// spoolFrom copies r to a spool file, hashing on the way, and refuses it
// past the size limit.
func (s *Store) spoolFrom(r io.Reader) (*spooled, error) {
	f, err := os.CreateTemp(s.spool, "in-*")
	if err != nil {
		return nil, fmt.Errorf("media: spool: %w (check media.path or the temporary directory)", err)
	}
	sp := &spooled{path: f.Name()}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, s.maxSize+1))
	if err == nil && n > s.maxSize {
		err = &TooLargeError{Size: -1, Max: s.maxSize}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("media: spool: %w", cerr)
	}
	if err != nil {
		sp.remove()
		return nil, err
	}
	sp.sum = h.Sum(nil)
	sp.sha, sp.size = hex.EncodeToString(sp.sum), n
	return sp, nil
}

// commit moves a spooled file into the backend.
func (s *Store) commit(ctx context.Context, sp *spooled) error {
	if a, ok := s.backend.(adopter); ok {
		if err := a.Adopt(ctx, sp.sha, sp.path); err != nil {
			return err
		}
		sp.path = ""
		return nil
	}
	defer sp.remove()
	if ok, err := s.backend.Has(ctx, sp.sha); err == nil && ok {
		return nil
	}
	f, err := os.Open(sp.path)
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	defer f.Close()
	if err := s.backend.Put(ctx, sp.sha, f, sp.size); err != nil {
		return fmt.Errorf("media: store in %s: %w", s.backend, err)
	}
	return nil
}

// Put stores a file for sending and returns its id. A file over the size
// limit is a *TooLargeError, before anything of it is kept.
func (s *Store) Put(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	if m.Size > s.maxSize {
		return sdk.MediaInfo{}, (&TooLargeError{Size: m.Size, Max: s.maxSize}).Refusal()
	}
	info, err := s.put(ctx, m, r)
	var tl *TooLargeError
	if errors.As(err, &tl) {
		return sdk.MediaInfo{}, tl.Refusal()
	}
	return info, err
}

func (s *Store) put(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	sp, err := s.spoolFrom(r)
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	defer sp.remove()
	if sp.size == 0 {
		// Nothing to send: WhatsApp refuses an empty file, so the hub
		// never keeps one (and backends never see one).
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_empty", Message: "the file is empty"}
	}
	if m.Size > 0 && sp.size != m.Size {
		return sdk.MediaInfo{}, fmt.Errorf("media: the upload said %d bytes and sent %d", m.Size, sp.size)
	}
	if err := s.commit(ctx, sp); err != nil {
		return sdk.MediaInfo{}, err
	}
	mt := m.MimeType
	if mt == "" {
		mt = "application/octet-stream"
	}
	rec := store.MediaRecord{ID: HubID(sp.sha), Origin: store.MediaUpload, State: sdk.MediaAvailable,
		SHA256: sp.sha, MimeType: mt, Size: sp.size, Filename: m.Filename}
	if err := s.records.PutMediaRecord(ctx, rec); err != nil {
		return sdk.MediaInfo{}, err
	}
	s.metrics.stored(store.MediaUpload, sp.size)
	return infoOf(rec), nil
}

func infoOf(r store.MediaRecord) sdk.MediaInfo {
	return sdk.MediaInfo{ID: r.ID, MimeType: r.MimeType, SHA256: r.SHA256, Size: r.Size, Filename: r.Filename}
}

// UnavailableError says why a file cannot be had; it wraps
// sdk.ErrMediaUnavailable.
type UnavailableError struct {
	ID, Reason string
	// Unknown: the hub never had a file of this id.
	Unknown bool
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%s: %s: %s", sdk.ErrMediaUnavailable, e.ID, e.Reason)
}

func (e *UnavailableError) Unwrap() error { return sdk.ErrMediaUnavailable }

// NotFound reports an id the hub never had (the admin API's 404).
func (e *UnavailableError) NotFound() bool { return e.Unknown }

// Stat describes a file without opening it.
func (s *Store) Stat(ctx context.Context, id string) (store.MediaRecord, error) {
	rec, err := s.records.MediaRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return rec, &UnavailableError{ID: id, Reason: "the hub has no file of this id", Unknown: true}
	}
	return rec, err
}

// Open streams a file by id: an inbound message's media id or a HubID. A
// pending file is fetched first; a file that cannot be had is an
// *UnavailableError (errors.Is sdk.ErrMediaUnavailable).
func (s *Store) Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error) {
	rec, err := s.Stat(ctx, id)
	if err != nil {
		return sdk.MediaInfo{}, nil, err
	}
	if rec.State == sdk.MediaPending {
		if rec, err = s.FetchNow(ctx, id); err != nil {
			return sdk.MediaInfo{}, nil, err
		}
	}
	switch rec.State {
	case sdk.MediaUnavailable:
		return sdk.MediaInfo{}, nil, &UnavailableError{ID: id, Reason: rec.Reason}
	case sdk.MediaAvailable:
	default:
		return sdk.MediaInfo{}, nil, &UnavailableError{ID: id, Reason: "the file is still being fetched from WhatsApp (" + rec.LastError + ")"}
	}
	rc, err := s.backend.Open(ctx, rec.SHA256)
	if errors.Is(err, ErrNotFound) {
		return sdk.MediaInfo{}, nil, &UnavailableError{ID: id, Reason: "the file's bytes are missing from the media store (" + s.backend.String() + ")"}
	}
	if err != nil {
		return sdk.MediaInfo{}, nil, err
	}
	return infoOf(rec), &verifying{rc: rc, h: sha256.New(), want: rec.SHA256, size: rec.Size}, nil
}

// verifying checks, at the end of the stream, that the bytes are the ones
// stored: a file damaged at rest ends in an error, not in silence.
type verifying struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
	size int64
	n    int64
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); v.n != v.size || got != v.want {
			return n, fmt.Errorf("media: the stored file %s is damaged (%d bytes, sha256 %s)", v.want, v.n, got)
		}
	}
	return n, err
}

func (v *verifying) Close() error { return v.rc.Close() }

// deleteOrphans removes the bytes no file refers to any more.
func (s *Store) deleteOrphans(ctx context.Context, orphans []string) error {
	var errs []error
	for _, sha := range orphans {
		// Another file may have been put with the same bytes meanwhile.
		if ref, err := s.records.MediaReferenced(ctx, sha); err != nil || ref {
			continue
		}
		if err := s.backend.Delete(ctx, sha); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Delete forgets one file and removes its bytes unless another file
// has the same.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := s.Stat(ctx, id); err != nil {
		return err
	}
	orphans, err := s.records.DeleteMedia(ctx, id)
	if err != nil {
		return err
	}
	return s.deleteOrphans(ctx, orphans)
}

// DeleteContact deletes every file of a contact (key, user_id or wa_id),
// record and bytes, and returns how many files went.
func (s *Store) DeleteContact(ctx context.Context, contact string) (int, error) {
	ids, orphans, err := s.records.DeleteContactMedia(ctx, contact)
	if err != nil {
		return 0, err
	}
	return len(ids), s.deleteOrphans(ctx, orphans)
}

// Prune deletes files older than cutoff (a fetch in progress excepted).
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for ctx.Err() == nil {
		ids, orphans, err := s.records.DeleteMediaBefore(ctx, cutoff)
		if err != nil {
			return total, err
		}
		total += len(ids)
		if err := s.deleteOrphans(ctx, orphans); err != nil {
			return total, err
		}
		if len(ids) == 0 {
			break
		}
	}
	return total, nil
}

// digestEqual compares a hex digest with one as WhatsApp or Graph give it
// (base64 in webhooks, hex from GET /{media-id}).
func digestEqual(sum []byte, given string) bool {
	given = strings.TrimSpace(given)
	if given == "" {
		return true
	}
	if b, err := hex.DecodeString(given); err == nil && len(b) == sha256.Size {
		return string(b) == string(sum)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(given); err == nil && len(b) == sha256.Size {
			return string(b) == string(sum)
		}
	}
	return false
}
