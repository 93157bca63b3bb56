package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// KV is one connector's key-value namespace; it implements sdk.KV for the
// host callbacks.
type KV struct {
	s         *Store
	namespace string
}

// KV returns the namespace of a connector.
func (s *Store) KV(namespace string) *KV { return &KV{s: s, namespace: namespace} }

// Get returns a key's value.
func (k *KV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	err := k.s.reader.QueryRowContext(ctx, `SELECT value FROM kv WHERE namespace = ? AND key = ?`, k.namespace, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: kv get %s/%s: %w", k.namespace, key, err)
	}
	return v, true, nil
}

// Put sets a key's value.
func (k *KV) Put(ctx context.Context, key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return k.s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			k.namespace, key, value, k.s.now().UnixMilli())
		return err
	})
}

// CompareAndSwap sets key to new if its value is old (old nil: if absent).
// It runs in the single writer, so the check and the write are atomic.
func (k *KV) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	if new == nil {
		new = []byte{}
	}
	swapped := false
	err := k.s.write(ctx, func(tx *txn) error {
		swapped = false
		var cur []byte
		err := tx.QueryRow(`SELECT value FROM kv WHERE namespace = ? AND key = ?`, k.namespace, key).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if old != nil {
				return nil
			}
		case err != nil:
			return err
		default:
			if old == nil || !bytes.Equal(cur, old) {
				return nil
			}
		}
		if _, err := tx.Exec(`INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			k.namespace, key, new, k.s.now().UnixMilli()); err != nil {
			return err
		}
		swapped = true
		return nil
	})
	return swapped, err
}

// Delete removes a key.
func (k *KV) Delete(ctx context.Context, key string) error {
	return k.s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`DELETE FROM kv WHERE namespace = ? AND key = ?`, k.namespace, key)
		return err
	})
}

// List returns the pairs whose key starts with prefix, in key order (at
// most 10,000).
func (k *KV) List(ctx context.Context, prefix string) ([]sdk.KVPair, error) {
	// A range scan instead of LIKE, so that % and _ in keys mean nothing.
	rows, err := k.s.reader.QueryContext(ctx, `SELECT key, value FROM kv WHERE namespace = ? AND key >= ? ORDER BY key LIMIT 10000`,
		k.namespace, prefix)
	if err != nil {
		return nil, fmt.Errorf("store: kv list %s/%s: %w", k.namespace, prefix, err)
	}
	defer rows.Close()
	var out []sdk.KVPair
	for rows.Next() {
		var p sdk.KVPair
		if err := rows.Scan(&p.Key, &p.Value); err != nil {
			return nil, err
		}
		if !strings.HasPrefix(p.Key, prefix) {
			break
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetContactAttributes merges attributes into a customer's (found by
// user_id or wa_id, created when new); an empty value removes an attribute.
func (s *Store) SetContactAttributes(ctx context.Context, c sdk.ContactUpdate) error {
	if c.WAID == "" && c.UserID == "" {
		return errors.New("store: contact update names no customer: set wa_id or user_id")
	}
	return s.write(ctx, func(tx *txn) error {
		return s.upsertAttributesTx(tx, c, s.now().UnixMilli())
	})
}

func (s *Store) upsertAttributesTx(tx *txn, c sdk.ContactUpdate, now int64) error {
	if c.WAID == "" && c.UserID == "" {
		return errors.New("names no customer: set wa_id or user_id")
	}
	key, err := findContact(tx, c.UserID, c.WAID)
	if err != nil {
		return err
	}
	if key == "" {
		key = (&sdk.Contact{WAID: c.WAID, UserID: c.UserID}).Key()
		if _, err := tx.Exec(`INSERT INTO contacts (key, wa_id, user_id, name, first_seen_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
			key, nullString(c.WAID), nullString(c.UserID), c.Name, now, now); err != nil {
			return err
		}
	}
	var raw string
	if err := tx.QueryRow(`SELECT attributes FROM contacts WHERE key = ?`, key).Scan(&raw); err != nil {
		return err
	}
	attrs := map[string]string{}
	if err := json.Unmarshal([]byte(raw), &attrs); err != nil {
		attrs = map[string]string{}
	}
	for k, v := range c.Attributes {
		if v == "" {
			delete(attrs, k)
		} else {
			attrs[k] = v
		}
	}
	b, err := json.Marshal(attrs)
	if err != nil {
		return err
	}
	_, err = tx.Exec(`UPDATE contacts SET attributes = ?, name = COALESCE(NULLIF(?, ''), name), updated_at = ? WHERE key = ?`,
		string(b), c.Name, now, key)
	// The append path's cached rows may now be out of date.
	s.contacts.reset()
	return err
}

// SyncState is a connector's sync progress.
type SyncState struct {
	Cursor    string    `json:"cursor"`
	At        time.Time `json:"last_sync_at"`
	Contacts  int64     `json:"contacts_synced"`
	LastError string    `json:"last_error,omitempty"`
}

func syncCursorName(connector string) string { return "sync:" + connector }

// SyncCursor returns the cursor a connector's next sync starts from.
func (s *Store) SyncCursor(ctx context.Context, connector string) (SyncState, error) {
	var st SyncState
	var v string
	var at int64
	err := s.reader.QueryRowContext(ctx, `SELECT value, updated_at FROM cursors WHERE name = ?`, syncCursorName(connector)).Scan(&v, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("store: sync cursor of %s: %w", connector, err)
	}
	if err := json.Unmarshal([]byte(v), &st); err != nil {
		st.Cursor = v
	}
	return st, nil
}

// ApplySync stores one page of a connector's sync: the contacts'
// attributes and the next cursor, in one commit, so that a failed page
// leaves the cursor where it was and a restart resumes from it. An
// attribute set to "" is deleted.
func (s *Store) ApplySync(ctx context.Context, connector string, contacts []sdk.ContactUpdate, next string) error {
	return s.write(ctx, func(tx *txn) error {
		now := s.now()
		for _, c := range contacts {
			if err := s.upsertAttributesTx(tx, c, now.UnixMilli()); err != nil {
				return fmt.Errorf("contact %s: %w", (&sdk.Contact{WAID: c.WAID, UserID: c.UserID}).Key(), err)
			}
		}
		var prev SyncState
		var v string
		if err := tx.QueryRow(`SELECT value FROM cursors WHERE name = ?`, syncCursorName(connector)).Scan(&v); err == nil {
			json.Unmarshal([]byte(v), &prev)
		}
		st := SyncState{Cursor: next, At: now.UTC(), Contacts: prev.Contacts + int64(len(contacts))}
		b, _ := json.Marshal(st)
		_, err := tx.Exec(`INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			syncCursorName(connector), string(b), now.UnixMilli())
		return err
	})
}

// SyncFailed records a failed sync attempt, keeping the cursor.
func (s *Store) SyncFailed(ctx context.Context, connector, reason string) error {
	return s.write(ctx, func(tx *txn) error {
		var st SyncState
		var v string
		if err := tx.QueryRow(`SELECT value FROM cursors WHERE name = ?`, syncCursorName(connector)).Scan(&v); err == nil {
			json.Unmarshal([]byte(v), &st)
		}
		st.LastError = reason
		b, _ := json.Marshal(st)
		_, err := tx.Exec(`INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, syncCursorName(connector), string(b), s.now().UnixMilli())
		return err
	})
}
