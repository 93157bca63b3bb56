package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// copyTables are the tables `wahub store migrate` copies, parents before
// children, with the columns both schemas have. Leases and nodes are left
// behind: they describe hubs that run on the old store.
var copyTables = []struct {
	name, cols string
	identity   string // the column whose sequence must continue after the copy
}{
	{"events", "seq, id, type, occurred_at, received_at, contact_key, conversation_id, phone_number_id, body, route", "seq"},
	{"contacts", "key, wa_id, user_id, name, username, first_seen_at, last_inbound_at, updated_at, attributes, consent, consent_source, consent_at", ""},
	{"cursors", "name, value, updated_at", ""},
	{"deliveries", "id, connector, seq, conversation, state, attempts, next_at, last_error, created_at, updated_at, part", "id"},
	{"delivery_attempts", "id, delivery_id, attempt, at, duration_ms, outcome, error, retry_after_ms", "id"},
	{"connector_state", "name, paused, updated_at", ""},
	{"kv", "namespace, key, value, updated_at", ""},
	{"outbox", "id, idempotency_key, source, recipient, phone_number_id, request, state, wamid, error_code, error, attempts, next_at, created_at, updated_at, media_upload", ""},
	{"outbox_history", "id, outbox_id, state, at, error_code, error", "id"},
	{"conversations", "id, contact_key, team, last_active, updated_at", ""},
	{"outbox_early_statuses", "wamid, state, at, error_code, error", ""},
	{"templates", "name, language, id, category, status, quality, reason, parameter_format, components, source, as_of, updated_at", ""},
	// What each file is; the bytes stay in the media store (media.path).
	{"media", "id, origin, state, reason, sha256, expect_sha256, mime_type, size, filename, contact_key, phone_number_id, attempts, next_at, claimed_until, last_error, created_at, updated_at", ""},
	{"media_events", "media_id, seq", ""},
}

// CopyStats counts what CopyTo copied, by table.
type CopyStats map[string]int64

// CopyTo copies everything this SQLite store holds (events, contacts,
// consent, affinity, cursors, deliveries and their attempts, dead letters,
// the outbox and its history, KV, the template catalogue) into dst, an empty PostgreSQL store, in
// one transaction: a failed copy leaves dst empty. It refuses a dst that
// holds any event, contact, delivery, message or KV entry. Run it with the
// hub stopped: what is written meanwhile is not copied.
func (s *Store) CopyTo(ctx context.Context, dst *Store) (CopyStats, error) {
	if s.dialect != sqliteDialect || dst.dialect != postgresDialect {
		return nil, errors.New("store: migrate copies a SQLite store into a PostgreSQL one")
	}
	for _, t := range []string{"events", "contacts", "deliveries", "outbox", "kv", "cursors"} {
		var n int64
		if err := dst.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("store: migrate: inspect the target: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("store: migrate: the target database is not empty (%s has %d rows); migrate into a new, empty database", t, n)
		}
	}
	stats := CopyStats{}
	err := dst.write(ctx, func(tx *txn) error {
		for _, t := range copyTables {
			n, err := s.copyTable(ctx, tx, t.name, t.cols)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			stats[t.name] = n
			if t.identity != "" {
				if _, err := tx.Exec(`SELECT setval(pg_get_serial_sequence('` + t.name + `', '` + t.identity + `'),
					GREATEST((SELECT COALESCE(MAX(` + t.identity + `), 0) FROM ` + t.name + `), 1))`); err != nil {
					return fmt.Errorf("%s: continue its sequence: %w", t.name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w (nothing was copied)", err)
	}
	return stats, nil
}

func (s *Store) copyTable(ctx context.Context, tx *txn, table, cols string) (int64, error) {
	order := "rowid" // insertion order: the outbox's per-recipient order
	if table == "kv" || table == "outbox_early_statuses" || table == "templates" {
		order = "1" // WITHOUT ROWID tables
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+cols+` FROM `+table+` ORDER BY `+order)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	names := strings.Split(cols, ", ")
	const per = 200
	var n int64
	batch := make([]any, 0, per*len(names))
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		k := len(batch) / len(names)
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ") + ")"
		q := `INSERT INTO ` + table + ` (` + cols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", k), ", ")
		if _, err := tx.Exec(q, batch...); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	for rows.Next() {
		vals := make([]any, len(names))
		ptrs := make([]any, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, name := range names {
			vals[i] = convert(table, name, vals[i])
		}
		if table == "deliveries" {
			// Deliveries queued before partitions existed are all in 0.
			vals[10] = Partition(fmt.Sprint(vals[3]))
		}
		batch = append(batch, vals...)
		n++
		if len(batch) >= per*len(names) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	return n, flush()
}

// convert turns a SQLite value into what the PostgreSQL column takes.
func convert(table, col string, v any) any {
	switch {
	case table == "connector_state" && col == "paused":
		switch x := v.(type) {
		case int64:
			return x != 0
		case bool:
			return x
		}
	case table == "outbox" && col == "idempotency_key":
		// SQLite separates the source from the caller's key with NUL,
		// which PostgreSQL's text cannot hold.
		if k, ok := v.(string); ok {
			return strings.Replace(k, sqliteDialect.keySep(), postgresDialect.keySep(), 1)
		}
		if b, ok := v.([]byte); ok {
			return strings.Replace(string(b), sqliteDialect.keySep(), postgresDialect.keySep(), 1)
		}
	case col == "body" || (table == "kv" && col == "value"):
		if s, ok := v.(string); ok {
			return []byte(s)
		}
	}
	if b, ok := v.([]byte); ok && !(col == "body" || (table == "kv" && col == "value")) {
		return string(b)
	}
	return v
}
