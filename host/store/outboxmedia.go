package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A media message takes one more step before it is sent: its file is
// uploaded to Graph, and the id Graph gives it is recorded in the outbox
// first. So the states of a media message are
//
//	queued → uploading → queued (upload recorded) → sending → accepted …
//
// A hub that stops while uploading has sent the customer nothing: its
// message goes back to the queue and the file is uploaded again (the
// abandoned upload expires at Meta). A hub that stops after the upload was
// recorded sends the recorded id, and never uploads twice; one that stops
// while sending leaves the message unknown, as for any message.

// OutUploading is a media message whose file is being uploaded to Graph.
const OutUploading = "uploading"

// GraphUpload is a message's file as uploaded to Graph.
type GraphUpload struct {
	// GraphID is the media id Graph answered; the message is sent with it.
	GraphID  string    `json:"graph_id"`
	SHA256   string    `json:"sha256,omitempty"` // hex, of the bytes uploaded
	MimeType string    `json:"mime_type,omitempty"`
	Size     int64     `json:"size,omitempty"`
	At       time.Time `json:"at"`
}

func encodeUpload(u *GraphUpload) (string, error) {
	if u == nil {
		return "", nil
	}
	b, err := json.Marshal(u)
	return string(b), err
}

func decodeUpload(id, raw string) (*GraphUpload, error) {
	if raw == "" {
		return nil, nil
	}
	var u GraphUpload
	if err := json.Unmarshal([]byte(raw), &u); err != nil {
		return nil, fmt.Errorf("store: message %s: media upload: %w", id, err)
	}
	return &u, nil
}

// MarkUploading takes a queued media message to upload its file. It
// reports false when the message is no longer queued. Like MarkSending it
// counts an attempt (a request to Graph) and, with a fence, returns
// ErrLeaseLost when the outbox lease changed hands.
func (s *Store) MarkUploading(ctx context.Context, id string, fence ...Lease) (bool, error) {
	ok := false
	err := s.write(ctx, func(tx *txn) error {
		ok = false
		if err := s.checkFence(tx, fence); err != nil {
			return err
		}
		now := s.now().UnixMilli()
		res, err := tx.Exec(`UPDATE outbox SET state = 'uploading', attempts = attempts + 1, updated_at = ? WHERE id = ? AND state = 'queued'`, now, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		return err
	})
	return ok, err
}

// RecordUpload keeps the Graph media id of an uploading message's file and
// puts the message back in the queue, due now, to be sent with it. It
// reports false when the message was no longer uploading (recovered by
// another hub meanwhile): the upload is then not recorded.
func (s *Store) RecordUpload(ctx context.Context, id string, u GraphUpload) (bool, error) {
	raw, err := encodeUpload(&u)
	if err != nil {
		return false, err
	}
	ok := false
	err = s.write(ctx, func(tx *txn) error {
		ok = false
		now := s.now().UnixMilli()
		res, err := tx.Exec(`UPDATE outbox SET state = 'queued', media_upload = ?, error_code = '', error = '', updated_at = ?
			WHERE id = ? AND state = 'uploading'`, raw, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		ok = true
		return addHistory(tx, id, "uploaded", now, "", "Graph media id "+u.GraphID)
	})
	if err != nil {
		return false, fmt.Errorf("store: record the upload of %s: %w", id, err)
	}
	return ok, nil
}

// recoverUploading queues again the messages a stopped hub was uploading
// the file of, inside RecoverSending.
func recoverUploading(tx *txn, now int64) error {
	rows, err := tx.Query(`SELECT id FROM outbox WHERE state = 'uploading'`)
	if err != nil {
		return err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	const why = "the hub stopped while uploading the file: nothing was sent; the file is uploaded again"
	for _, id := range ids {
		if _, err := tx.Exec(`UPDATE outbox SET state = 'queued', next_at = ?, updated_at = ? WHERE id = ? AND state = 'uploading'`, now, now, id); err != nil {
			return err
		}
		if err := addHistory(tx, id, OutQueued, now, "", why); err != nil {
			return err
		}
	}
	return nil
}
