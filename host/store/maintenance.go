package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"
)

// Backup writes a consistent copy of the store to path while the hub
// runs (SQLite's VACUUM INTO reads one snapshot; writers go on). path must
// not exist.
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.dialect == postgresDialect {
		return fmt.Errorf("store: backup: the store is PostgreSQL (%s): back it up with pg_dump or the server's own backups", s.path)
	}
	// VACUUM INTO fills an empty file it finds, keeping its mode.
	if err := createPrivate(path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(path)
		}
	}()
	// Its own connection: the readers are read-only, and VACUUM cannot run
	// inside the writer's transactions.
	db, err := sql.Open("sqlite3", "file:"+s.path+"?_busy_timeout=10000")
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("store: backup to %s: %w", path, err)
	}
	ok = true
	return nil
}

// Prune deletes events received before cutoff whose every delivery is
// settled (delivered or skipped), with their deliveries and attempts, in
// batches. Dead letters, pending deliveries and undispatched events are
// kept. It returns how many events it deleted.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.write(ctx, func(tx *txn) error {
			dispatched, err := readCursor(tx, dispatchCursor)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(`CREATE TEMP TABLE IF NOT EXISTS prune (seq INTEGER PRIMARY KEY)`); err != nil {
				return err
			}
			if _, err := tx.Exec(`DELETE FROM temp.prune`); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO temp.prune SELECT e.seq FROM events e
				WHERE e.received_at < ? AND e.seq <= ?
				AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = e.seq AND d.state NOT IN ('delivered', 'skipped'))
				ORDER BY e.seq LIMIT 1000`, cutoff.UnixMilli(), dispatched); err != nil {
				return err
			}
			for _, q := range []string{
				`DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE seq IN (SELECT seq FROM temp.prune))`,
				`DELETE FROM deliveries WHERE seq IN (SELECT seq FROM temp.prune)`,
			} {
				if _, err := tx.Exec(q); err != nil {
					return err
				}
			}
			res, err := tx.Exec(`DELETE FROM events WHERE seq IN (SELECT seq FROM temp.prune)`)
			if err != nil {
				return err
			}
			m, err := res.RowsAffected()
			n = int(m)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("store: prune: %w", err)
		}
		total += n
		if n == 0 || ctx.Err() != nil {
			return total, nil
		}
	}
}
