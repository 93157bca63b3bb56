package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Media origins.
const (
	MediaInbound = "inbound" // a customer's file, fetched from WhatsApp
	MediaUpload  = "upload"  // a file put for sending (PutMedia, POST /api/v1/media)
)

// MediaHoldReason is the last_error of a delivery held back while its
// event's file is fetched; a finished fetch releases exactly those.
const MediaHoldReason = "held: waiting for the event's media file to be fetched"

// MediaFollowReason is the last_error of a later event of the same
// conversation, held with it and released with it.
const MediaFollowReason = "held behind an earlier event of its conversation that waits for its media file"

// MediaRecord is what the hub knows of one file: the bytes themselves
// live in the media store under SHA256.
type MediaRecord struct {
	ID     string
	Origin string
	State  sdk.MediaState
	Reason string
	// SHA256 is the hex digest of the stored bytes (set once available).
	SHA256 string
	// ExpectSHA256 is the webhook's digest, base64 as WhatsApp sends it.
	ExpectSHA256  string
	MimeType      string
	Size          int64
	Filename      string
	ContactKey    string
	PhoneNumberID string
	Attempts      int
	NextAt        time.Time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const mediaColumns = `id, origin, state, reason, sha256, expect_sha256, mime_type, size, filename,
	COALESCE(contact_key, ''), COALESCE(phone_number_id, ''), attempts, next_at, last_error, created_at, updated_at`

func scanMedia(row interface{ Scan(...any) error }) (MediaRecord, error) {
	var (
		r                        MediaRecord
		state                    string
		nextAt, created, updated int64
	)
	err := row.Scan(&r.ID, &r.Origin, &state, &r.Reason, &r.SHA256, &r.ExpectSHA256, &r.MimeType, &r.Size, &r.Filename,
		&r.ContactKey, &r.PhoneNumberID, &r.Attempts, &nextAt, &r.LastError, &created, &updated)
	if err != nil {
		return r, err
	}
	r.State = sdk.MediaState(state)
	r.NextAt, r.CreatedAt, r.UpdatedAt = time.UnixMilli(nextAt), time.UnixMilli(created), time.UnixMilli(updated)
	return r, nil
}

// enqueueMedia records the file of a new event as pending, in the event's
// own commit: that row is the fetch queue, so a file is never forgotten
// between the webhook's 200 and its fetch. A media id seen before (a
// forwarded file, a replayed webhook) keeps its row.
func (s *Store) enqueueMedia(tx *txn, ev *sdk.Event, seq int64, contactKey, phoneID sql.NullString) error {
	if ev.Message == nil || ev.Message.Media == nil || ev.Message.Media.ID == "" {
		return nil
	}
	m := ev.Message.Media
	now := s.now().UnixMilli()
	if _, err := tx.Exec(`INSERT INTO media (id, origin, state, expect_sha256, mime_type, size, filename,
		contact_key, phone_number_id, next_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		m.ID, MediaInbound, string(sdk.MediaPending), m.SHA256, m.MimeType, m.Size, m.Filename,
		contactKey, phoneID, now, now, now); err != nil {
		return fmt.Errorf("media %s: %w", m.ID, err)
	}
	if _, err := tx.Exec(`INSERT INTO media_events (media_id, seq) VALUES (?, ?) ON CONFLICT DO NOTHING`, m.ID, seq); err != nil {
		return fmt.Errorf("media %s: %w", m.ID, err)
	}
	return nil
}

// MediaRecord returns one file by id (ErrNotFound if unknown).
func (s *Store) MediaRecord(ctx context.Context, id string) (MediaRecord, error) {
	r, err := scanMedia(s.reader.QueryRowContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: media %s: %w", id, err)
	}
	return r, nil
}

// MediaRecords returns the files of the given ids that exist.
func (s *Store) MediaRecords(ctx context.Context, ids []string) (map[string]MediaRecord, error) {
	out := make(map[string]MediaRecord, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+mediaColumns+` FROM media WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: media records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanMedia(rows)
		if err != nil {
			return nil, err
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// PutMediaRecord records a file that is in the media store already (an
// upload). Putting the same id again updates what it says of the file.
func (s *Store) PutMediaRecord(ctx context.Context, r MediaRecord) error {
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		_, err := tx.Exec(`INSERT INTO media (id, origin, state, sha256, mime_type, size, filename, contact_key, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, reason = '', sha256 = excluded.sha256,
				mime_type = excluded.mime_type, size = excluded.size, filename = excluded.filename, updated_at = excluded.updated_at`,
			r.ID, r.Origin, string(r.State), r.SHA256, r.MimeType, r.Size, r.Filename, nullString(r.ContactKey), now, now)
		return err
	})
}

// ClaimMediaFetches takes up to limit pending files that are due and that
// no hub is fetching, for lease: until then no other claim returns them.
func (s *Store) ClaimMediaFetches(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]MediaRecord, error) {
	var out []MediaRecord
	err := s.write(ctx, func(tx *txn) error {
		out = out[:0]
		ms := now.UnixMilli()
		rows, err := tx.Query(`SELECT `+mediaColumns+` FROM media
			WHERE state = ? AND next_at <= ? AND claimed_until <= ? ORDER BY next_at, id LIMIT ?`,
			string(sdk.MediaPending), ms, ms, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanMedia(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range out {
			if _, err := tx.Exec(`UPDATE media SET claimed_until = ? WHERE id = ?`, now.Add(lease).UnixMilli(), r.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim media fetches: %w", err)
	}
	return out, nil
}

// ClaimMediaFetch takes one pending file for an on-demand fetch; false if
// it is not pending or another fetch holds it.
func (s *Store) ClaimMediaFetch(ctx context.Context, id string, now time.Time, lease time.Duration) (bool, error) {
	var ok bool
	err := s.write(ctx, func(tx *txn) error {
		res, err := tx.Exec(`UPDATE media SET claimed_until = ? WHERE id = ? AND state = ? AND claimed_until <= ?`,
			now.Add(lease).UnixMilli(), id, string(sdk.MediaPending), now.UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: claim media %s: %w", id, err)
	}
	return ok, nil
}

// RenewMediaClaim extends a claim while a long fetch goes on.
func (s *Store) RenewMediaClaim(ctx context.Context, id string, until time.Time) error {
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`UPDATE media SET claimed_until = ? WHERE id = ? AND state = ?`, until.UnixMilli(), id, string(sdk.MediaPending))
		return err
	})
}

// ReleaseMediaClaims forgets every claim: a hub that is the store's only
// user (SQLite) calls it at start, since claims left by a crash are its own.
func (s *Store) ReleaseMediaClaims(ctx context.Context) error {
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`UPDATE media SET claimed_until = 0 WHERE claimed_until > 0`)
		return err
	})
}

// NextMediaFetch is when the earliest pending file is due (ok false when
// none is pending). Claimed files count from when their claim ends.
func (s *Store) NextMediaFetch(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT MIN(CASE WHEN claimed_until > next_at THEN claimed_until ELSE next_at END)
		FROM media WHERE state = ?`, string(sdk.MediaPending)).Scan(&at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("store: next media fetch: %w", err)
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(at.Int64), true, nil
}

// MediaOutcome is how one fetch ended.
type MediaOutcome struct {
	ID string
	// State is available, unavailable, or pending (a retry at NextAt).
	State    sdk.MediaState
	Reason   string // unavailable: why, for people
	SHA256   string // available: hex
	Size     int64
	MimeType string
	NextAt   time.Time
	Error    string // the attempt's error
}

// FinishMediaFetch records a fetch's outcome and ends its claim. A final
// outcome (available or unavailable) releases the deliveries held for the
// file, so they go now instead of at the end of their wait.
func (s *Store) FinishMediaFetch(ctx context.Context, o MediaOutcome) error {
	return s.write(ctx, func(tx *txn) error {
		now := s.now().UnixMilli()
		switch o.State {
		case sdk.MediaPending:
			_, err := tx.Exec(`UPDATE media SET attempts = attempts + 1, next_at = ?, claimed_until = 0, last_error = ?, updated_at = ?
				WHERE id = ? AND state = ?`, o.NextAt.UnixMilli(), o.Error, now, o.ID, string(sdk.MediaPending))
			return err
		case sdk.MediaAvailable:
			if _, err := tx.Exec(`UPDATE media SET state = ?, reason = '', sha256 = ?, size = ?,
				mime_type = CASE WHEN ? <> '' THEN ? ELSE mime_type END,
				attempts = attempts + 1, claimed_until = 0, last_error = '', updated_at = ? WHERE id = ?`,
				string(o.State), o.SHA256, o.Size, o.MimeType, o.MimeType, now, o.ID); err != nil {
				return err
			}
		case sdk.MediaUnavailable:
			if _, err := tx.Exec(`UPDATE media SET state = ?, reason = ?, attempts = attempts + 1, claimed_until = 0,
				last_error = ?, updated_at = ? WHERE id = ? AND state <> ?`,
				string(o.State), o.Reason, o.Error, now, o.ID, string(sdk.MediaAvailable)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("store: media %s: unknown state %q", o.ID, o.State)
		}
		// Followers first: the query finds them through the held ones.
		if _, err := tx.Exec(`UPDATE deliveries SET next_at = ?, last_error = '', updated_at = ?
			WHERE state = ? AND last_error = ? AND next_at > ? AND EXISTS (SELECT 1 FROM deliveries h
				WHERE h.connector = deliveries.connector AND h.conversation = deliveries.conversation AND h.seq < deliveries.seq
				AND h.seq IN (SELECT seq FROM media_events WHERE media_id = ?))`,
			now, now, StatePending, MediaFollowReason, now, o.ID); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE deliveries SET next_at = ?, last_error = '', updated_at = ?
			WHERE seq IN (SELECT seq FROM media_events WHERE media_id = ?) AND state = ? AND last_error = ? AND next_at > ?`,
			now, now, o.ID, StatePending, MediaHoldReason, now)
		return err
	})
}

// DeleteMediaBefore forgets files created before cutoff that are not
// being fetched, and returns the digests no file refers to any more: the
// caller deletes those bytes from the media store.
func (s *Store) DeleteMediaBefore(ctx context.Context, cutoff time.Time) (ids []string, orphans []string, err error) {
	return s.deleteMedia(ctx, `created_at < ? AND state <> ?`, cutoff.UnixMilli(), string(sdk.MediaPending))
}

// DeleteContactMedia forgets every file of a contact (by key, user_id or
// wa_id) and returns the digests no file refers to any more.
func (s *Store) DeleteContactMedia(ctx context.Context, contact string) (ids []string, orphans []string, err error) {
	key, err := s.resolveContactKey(ctx, contact)
	if err != nil {
		return nil, nil, fmt.Errorf("store: contact %s: %w", contact, err)
	}
	return s.deleteMedia(ctx, `contact_key = ?`, key)
}

// DeleteMedia forgets one file by id.
func (s *Store) DeleteMedia(ctx context.Context, id string) (orphans []string, err error) {
	_, orphans, err = s.deleteMedia(ctx, `id = ?`, id)
	return orphans, err
}

func (s *Store) deleteMedia(ctx context.Context, where string, args ...any) (ids, orphans []string, err error) {
	err = s.write(ctx, func(tx *txn) error {
		ids, orphans = nil, nil
		rows, err := tx.Query(`SELECT id, sha256 FROM media WHERE `+where+` LIMIT 10000`, args...)
		if err != nil {
			return err
		}
		shas := map[string]bool{}
		for rows.Next() {
			var id, sha string
			if err := rows.Scan(&id, &sha); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			if sha != "" {
				shas[sha] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.Exec(`DELETE FROM media_events WHERE media_id = ?`, id); err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM media WHERE id = ?`, id); err != nil {
				return err
			}
		}
		for sha := range shas {
			var n int
			if err := tx.QueryRow(`SELECT COUNT(*) FROM media WHERE sha256 = ?`, sha).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				orphans = append(orphans, sha)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: delete media: %w", err)
	}
	return ids, orphans, nil
}

// MediaReferenced reports whether any file refers to the digest, so that
// bytes are deleted only when nothing needs them.
func (s *Store) MediaReferenced(ctx context.Context, sha string) (bool, error) {
	var n int
	if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM media WHERE sha256 = ?`, sha).Scan(&n); err != nil {
		return false, fmt.Errorf("store: media %s: %w", sha, err)
	}
	return n > 0, nil
}

// MediaStats counts files by state, for the console and metrics.
func (s *Store) MediaStats(ctx context.Context) (map[sdk.MediaState]int, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT state, COUNT(*) FROM media GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: media stats: %w", err)
	}
	defer rows.Close()
	out := map[sdk.MediaState]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[sdk.MediaState(st)] = n
	}
	return out, rows.Err()
}
