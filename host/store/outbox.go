package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Outbound message states. A message moves only forward through them:
// queued → sending → accepted (Meta took it, wamid known) → sent →
// delivered → read, or to failed; a late status never moves it back.
const (
	OutQueued    = "queued"
	OutSending   = "sending"
	OutAccepted  = "accepted"
	OutSent      = "sent"
	OutDelivered = "delivered"
	OutRead      = "read"
	OutFailed    = "failed"
	// OutUnknown is a message the hub was sending when it stopped: Meta
	// may or may not have it, and there is no way to ask. It is not sent
	// again (that could send it twice); a status webhook naming it
	// settles it, and an operator can requeue it.
	OutUnknown = "unknown"
)

// outRank orders the states; failed is final.
func outRank(state string) int {
	switch state {
	case OutQueued, OutUploading:
		return 0
	case OutSending, OutUnknown:
		return 1
	case OutAccepted:
		return 2
	case OutSent:
		return 3
	case OutDelivered:
		return 4
	case OutRead:
		return 5
	case OutFailed:
		return 6
	}
	return -1
}

// OutboundRecord is a message in the outbox.
type OutboundRecord struct {
	ID             string              `json:"id"`
	State          string              `json:"state"`
	Source         string              `json:"source"`
	To             string              `json:"to"`
	PhoneNumberID  string              `json:"phone_number_id,omitempty"`
	WAMID          string              `json:"wamid,omitempty"`
	ErrorCode      string              `json:"error_code,omitempty"`
	Error          string              `json:"error,omitempty"`
	Attempts       int                 `json:"attempts"`
	IdempotencyKey string              `json:"idempotency_key,omitempty"`
	Request        sdk.OutboundMessage `json:"request"`
	CreatedAt      time.Time           `json:"created_at"`
	UpdatedAt      time.Time           `json:"updated_at"`
	History        []OutboundStep      `json:"history,omitempty"`
	// Upload is a media message's file as uploaded to Graph, once it is.
	Upload *GraphUpload `json:"upload,omitempty"`
}

// OutboundStep is one state a message went through.
type OutboundStep struct {
	State     string    `json:"state"`
	At        time.Time `json:"at"`
	ErrorCode string    `json:"error_code,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// Enqueue keeps an outbound message for the sender. A message whose
// idempotency key (qualified by source) was seen before is not queued
// again: the first one's record is returned, with created false.
func (s *Store) Enqueue(ctx context.Context, source string, msg sdk.OutboundMessage) (rec OutboundRecord, created bool, err error) {
	if msg.To == "" {
		return rec, false, errors.New("store: outbound message has no recipient")
	}
	req, err := json.Marshal(msg)
	if err != nil {
		return rec, false, err
	}
	key := s.outboxKey(source, msg.IdempotencyKey)
	var id string
	err = s.write(ctx, func(tx *txn) error {
		var werr error
		id, created, werr = s.enqueueTx(tx, source, msg, req, key)
		return werr
	})
	if err != nil {
		return rec, false, fmt.Errorf("store: enqueue message: %w", err)
	}
	if !created {
		rec, err = s.Outbound(ctx, id)
		return rec, false, err
	}
	// Just queued: what it holds is what was given, no need to read it.
	now := s.now().UTC()
	return OutboundRecord{ID: id, State: OutQueued, Source: source, To: msg.To, PhoneNumberID: msg.PhoneNumberID,
		IdempotencyKey: msg.IdempotencyKey, Request: msg, CreatedAt: now, UpdatedAt: now}, true, nil
}

// enqueueTx is Enqueue inside the caller's write transaction.
func (s *Store) enqueueTx(tx *txn, source string, msg sdk.OutboundMessage, req []byte, key sql.NullString) (id string, created bool, err error) {
	if key.Valid {
		err := tx.QueryRow(`SELECT id FROM outbox WHERE idempotency_key = ?`, key).Scan(&id)
		if err == nil {
			return id, false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", false, err
		}
	}
	id = newMessageID()
	now := s.now().UnixMilli()
	if _, err := tx.Exec(`INSERT INTO outbox (id, idempotency_key, source, recipient, phone_number_id, request, state, next_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, key, source, msg.To, msg.PhoneNumberID, string(req), OutQueued, now, now, now); err != nil {
		return "", false, err
	}
	if err := addHistory(tx, id, OutQueued, now, "", ""); err != nil {
		return "", false, err
	}
	return id, true, nil
}

// outboxKey is the stored idempotency key: callers' keys are scoped to
// their source, so two connectors cannot collide.
func (s *Store) outboxKey(source, key string) sql.NullString {
	if key == "" {
		return sql.NullString{}
	}
	return sql.NullString{String: source + s.dialect.keySep() + key, Valid: true}
}

// Outbound returns one outbox record.
func (s *Store) Outbound(ctx context.Context, id string) (OutboundRecord, error) {
	var (
		r                OutboundRecord
		req              string
		wamid            sql.NullString
		created, updated int64
	)
	var key sql.NullString
	var upload string
	err := s.reader.QueryRowContext(ctx, `SELECT id, state, source, recipient, phone_number_id, wamid, error_code, error, attempts,
		idempotency_key, request, created_at, updated_at, media_upload
		FROM outbox WHERE id = ?`, id).Scan(&r.ID, &r.State, &r.Source, &r.To, &r.PhoneNumberID, &wamid, &r.ErrorCode, &r.Error,
		&r.Attempts, &key, &req, &created, &updated, &upload)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("store: outbound %s: %w", id, err)
	}
	r.WAMID = wamid.String
	r.CreatedAt, r.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	if err := json.Unmarshal([]byte(req), &r.Request); err != nil {
		return r, fmt.Errorf("store: outbound %s: %w", id, err)
	}
	r.IdempotencyKey = r.Request.IdempotencyKey
	if r.Upload, err = decodeUpload(id, upload); err != nil {
		return r, err
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT state, at, error_code, error FROM outbox_history WHERE outbox_id = ? ORDER BY id`, id)
	if err != nil {
		return r, fmt.Errorf("store: outbound %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st OutboundStep
		var at int64
		if err := rows.Scan(&st.State, &at, &st.ErrorCode, &st.Error); err != nil {
			return r, err
		}
		st.At = time.UnixMilli(at).UTC()
		r.History = append(r.History, st)
	}
	return r, rows.Err()
}

func newMessageID() string {
	var b [15]byte
	rand.Read(b[:])
	return "msg_" + strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}
