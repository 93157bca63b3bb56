// Package store keeps the hub's state: the event log, contacts, routing
// state, the delivery queues, the outbox, plugins' key-value state and the
// cluster's leases. It has two backends with the same behaviour: one SQLite
// file (the embedded default, one hub) and a PostgreSQL database that
// several hubs share.
//
// The domain rules (contact identity, consent, affinity, the outbox's state
// machine, delivery order) are Go code in this package, written once over a
// small transactional repository (txn and pool, which speak the backend's
// SQL dialect); a backend only stores, in its own schema and migrations.
//
// All writes of a hub go through one goroutine that commits whatever has
// queued up in one transaction (group commit): under load many webhook
// requests share one fsync. On SQLite that makes the hub the only writer;
// on PostgreSQL every write transaction of every hub first takes one
// transaction-scoped advisory lock, so writes are serialised across the
// cluster exactly as they are in one process (see postgres.go for why).
// Reads use a separate pool and run beside the writer.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrations embed.FS

// ErrClosed is returned for writes queued after Close.
var ErrClosed = errors.New("store: closed")

// Options tune a Store. The zero value is usable.
type Options struct {
	// BusyTimeout is how long SQLite waits for a lock held by another
	// process (a backup, the sqlite3 shell) before failing.
	BusyTimeout time.Duration
	// MaxBatch caps the write requests one transaction takes, so one commit
	// never holds the writer for long.
	MaxBatch int
	// Synchronous is SQLite's synchronous pragma: "full" (default) makes a
	// commit survive power loss, "normal" only a crash of the process.
	Synchronous string
	// Now is the clock; tests inject one.
	Now func() time.Time
}

// Store is the state of the hub. It is safe for concurrent use.
type Store struct {
	path    string // SQLite file, or the PostgreSQL URL without its password
	dialect dialect
	writer  *sql.DB
	reader  *pool
	now     func() time.Time
	pg      *pgExtras // PostgreSQL only: the listener and notifier

	queue    chan *writeReq
	maxBatch int
	closing  chan struct{}
	done     chan struct{}
	closeMu  sync.RWMutex // held for reading while queueing, so Close cannot race a send
	closed   bool

	notifyMu sync.Mutex
	notify   chan struct{}

	contacts contactCache // writer goroutine only

	commits, writes atomic.Int64
	busy            atomic.Int64 // nanoseconds the writer spent committing
}

// WriterStats counts group commits and the write requests they carried:
// writes/commits is the mean batch size.
func (s *Store) WriterStats() (commits, writes int64) { return s.commits.Load(), s.writes.Load() }

// WriterBusy is the time the writer has spent running transactions, for
// benchmarks: the writer is the one part of the hub that cannot run in
// parallel, so its busy share says how close the hub is to its limit.
func (s *Store) WriterBusy() time.Duration { return time.Duration(s.busy.Load()) }

// writeReq is one caller's share of a group commit.
type writeReq struct {
	ctx context.Context
	fn  func(tx *txn) error
	// appends is set for an Append: the writer inserts the events of
	// consecutive appends together (appendGroup), and runs fn instead
	// when the request must run alone.
	appends *appendReq
	done    chan error
}

// Open opens (creating if needed) the SQLite file at path, applies pending
// migrations and starts the writer.
func Open(path string, opt Options) (*Store, error) {
	if opt.BusyTimeout <= 0 {
		opt.BusyTimeout = 5 * time.Second
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	syncMode := strings.ToUpper(opt.Synchronous)
	switch syncMode {
	case "":
		syncMode = "FULL"
	case "FULL", "NORMAL":
	default:
		return nil, fmt.Errorf("store: synchronous %q: want full or normal", opt.Synchronous)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			if hint := openHint(path, err); hint != nil {
				return nil, hint
			}
			return nil, fmt.Errorf("store: create directory for %s: %w (check store.path and the permissions of its directory)", path, err)
		}
	}
	if err := secureFiles(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", strconv.FormatInt(opt.BusyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", syncMode)
	// BEGIN IMMEDIATE takes the write lock up front, so a transaction never
	// fails half-way with SQLITE_BUSY on its first write.
	q.Set("_txlock", "immediate")
	// The same few statements run for every event: keep them prepared.
	q.Set("_stmt_cache_size", "64")
	dsn := "file:" + path + "?" + q.Encode()

	writer, err := sql.Open(sqliteWriterDriver, dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	if err := writer.Ping(); err != nil {
		writer.Close()
		if hint := openHint(path, err); hint != nil {
			return nil, hint
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := migrate(writer, sqliteDialect, opt.Now); err != nil {
		writer.Close()
		if hint := openHint(path, err); hint != nil {
			return nil, hint
		}
		return nil, fmt.Errorf("store: migrate %s: %w", path, err)
	}

	rq := url.Values{}
	rq.Set("_busy_timeout", strconv.FormatInt(opt.BusyTimeout.Milliseconds(), 10))
	rq.Set("_query_only", "true")
	rq.Set("_stmt_cache_size", "64")
	reader, err := sql.Open(sqliteReaderDriver, "file:"+path+"?"+rq.Encode())
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: open %s for reading: %w", path, err)
	}
	reader.SetMaxOpenConns(4)

	s := newStore(path, sqliteDialect, writer, reader, opt)
	go s.writeLoop()
	return s, nil
}

// The store's connections run these pragmas when they open (the DSN of
// go-sqlite3 has no key for them). None of them weakens durability:
// synchronous stays as Options say.
//
// The writer updates about fifteen B-trees per webhook; SQLite's default
// page cache (2 MB) is smaller than their hot pages once the log grows, so
// each commit re-reads interior pages from the OS. 32 MB keeps them. A
// checkpoint every 4,000 pages instead of 1,000 writes a hot index page
// back to the database once for several commits that changed it. No
// mmap_size: pages of a mapped file count in the process's RSS, which
// would then grow with the database and hide a real leak in the soak.
const (
	sqliteWriterDriver = "sqlite3_wahub_writer"
	sqliteReaderDriver = "sqlite3_wahub_reader"
)

var (
	sqliteWriterPragmas = []string{
		"PRAGMA cache_size = -32768",
		"PRAGMA temp_store = MEMORY",
		"PRAGMA wal_autocheckpoint = 4000",
	}
	sqliteReaderPragmas = []string{
		"PRAGMA temp_store = MEMORY",
	}
)

func init() {
	hook := func(pragmas []string) func(*sqlite3.SQLiteConn) error {
		return func(c *sqlite3.SQLiteConn) error {
			for _, p := range pragmas {
				if _, err := c.Exec(p, nil); err != nil {
					return fmt.Errorf("store: %s: %w", p, err)
				}
			}
			return nil
		}
	}
	sql.Register(sqliteWriterDriver, &sqlite3.SQLiteDriver{ConnectHook: hook(sqliteWriterPragmas)})
	sql.Register(sqliteReaderDriver, &sqlite3.SQLiteDriver{ConnectHook: hook(sqliteReaderPragmas)})
}

func newStore(path string, d dialect, writer, reader *sql.DB, opt Options) *Store {
	s := &Store{
		path:     path,
		dialect:  d,
		writer:   writer,
		now:      opt.Now,
		queue:    make(chan *writeReq, 1024),
		maxBatch: opt.MaxBatch,
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		notify:   make(chan struct{}),
	}
	s.reader = &pool{db: reader, d: d}
	return s
}

// Path is the SQLite file the store uses, or the PostgreSQL database's URL
// without its password.
func (s *Store) Path() string { return s.path }

// Driver is "sqlite" or "postgres".
func (s *Store) Driver() string { return s.dialect.String() }

// Close commits what is queued, stops the writer and closes the file.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.closeMu.Unlock()
	<-s.done
	if s.pg != nil {
		s.pg.close()
	}
	return errors.Join(s.reader.db.Close(), s.writer.Close())
}

// write runs fn inside the next group commit and returns once that commit
// is durable. fn's changes are rolled back alone if fn fails; they are lost
// with everyone else's if the commit itself fails. fn must not block on
// anything but the transaction.
func (s *Store) write(ctx context.Context, fn func(tx *txn) error) error {
	return s.submit(ctx, &writeReq{ctx: ctx, fn: fn})
}

// submit queues req for the next group commit and waits for its outcome.
func (s *Store) submit(ctx context.Context, req *writeReq) error {
	req.done = make(chan error, 1)
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.queue <- req:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the caller must
	// not report failure for something that may still commit.
	return <-req.done
}

// Changed returns a channel that is closed at the next commit that added
// events. Loops that follow the log wait on it instead of polling.
func (s *Store) Changed() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	return s.notify
}

func (s *Store) signalChanged() {
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

func (s *Store) writeLoop() {
	defer close(s.done)
	batch := make([]*writeReq, 0, s.maxBatch)
	for {
		batch = batch[:0]
		select {
		case req := <-s.queue:
			batch = append(batch, req)
		case <-s.closing:
			// Drain what was queued before Close; nobody can queue now.
			for {
				select {
				case req := <-s.queue:
					batch = append(batch, req)
					if len(batch) == s.maxBatch {
						s.commit(batch)
						batch = batch[:0]
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				s.commit(batch)
			}
			return
		}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case req := <-s.queue:
				batch = append(batch, req)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch of write requests in one transaction. It first runs
// them all without savepoints (the common case: nothing fails); if one
// fails, it rolls back and runs them again, each in its own savepoint, so
// that one failing request does not undo the others.
func (s *Store) commit(batch []*writeReq) {
	start := time.Now()
	defer func() { s.busy.Add(int64(time.Since(start))) }()
	errs, fnFailed, err := s.runBatch(batch, false)
	// Alone in its batch, a failed request undid only itself.
	if err == nil && (!fnFailed || len(batch) == 1) {
		s.finish(batch, errs, nil)
		return
	}
	errs, _, err = s.runBatch(batch, true)
	s.finish(batch, errs, err)
}

// finish answers every request: its own error, or else the commit's. Those
// following the log are woken first, so that a writer that returns can
// count on them having been told.
func (s *Store) finish(batch []*writeReq, errs []error, commitErr error) {
	s.commits.Add(1)
	s.writes.Add(int64(len(batch)))
	ran := false
	for i := range batch {
		if errs[i] == nil {
			errs[i] = commitErr
		}
		ran = ran || errs[i] == nil
	}
	if ran {
		s.signalChanged()
		if s.pg != nil {
			s.pg.notifyOthers()
		}
	}
	for i, req := range batch {
		req.done <- errs[i]
	}
}

// runBatch runs the requests in one transaction and commits it, unless
// (without savepoints) a request failed, in which case it rolls back and
// reports fnFailed. err is a failure of the transaction itself.
func (s *Store) runBatch(batch []*writeReq, savepoints bool) (errs []error, fnFailed bool, err error) {
	errs = make([]error, len(batch))
	sqlTx, err := s.writer.Begin()
	if err != nil {
		return errs, false, fmt.Errorf("store: begin: %w", err)
	}
	tx := &txn{tx: sqlTx, d: s.dialect}
	if s.dialect == postgresDialect {
		if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, writeLockKey); err != nil {
			tx.Rollback()
			return errs, false, fmt.Errorf("store: take the cluster's write lock: %w", err)
		}
	}
	for i := 0; i < len(batch); i++ {
		req := batch[i]
		if err := req.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		// Consecutive appends go in together. If that fails, the batch
		// is run again with savepoints, each request alone.
		if !savepoints && req.appends != nil {
			j := i + 1
			for j < len(batch) && batch[j].appends != nil && batch[j].ctx.Err() == nil {
				j++
			}
			if j-i > 1 {
				if err := s.appendGroup(tx, batch[i:j]); err != nil {
					errs[i] = err
					s.contacts.reset()
					tx.Rollback()
					return errs, true, nil
				}
				i = j - 1
				continue
			}
		}
		if savepoints {
			if _, err := tx.Exec("SAVEPOINT w"); err != nil {
				tx.Rollback()
				return errs, false, fmt.Errorf("store: savepoint: %w", err)
			}
		}
		if err := req.fn(tx); err != nil {
			errs[i] = err
			// What the request cached may have been undone with it.
			s.contacts.reset()
			if !savepoints {
				tx.Rollback()
				return errs, true, nil
			}
			if _, rerr := tx.Exec("ROLLBACK TO w"); rerr != nil {
				tx.Rollback()
				return errs, true, fmt.Errorf("store: rollback to savepoint: %w", rerr)
			}
		}
		if savepoints {
			if _, err := tx.Exec("RELEASE w"); err != nil {
				tx.Rollback()
				return errs, false, fmt.Errorf("store: release savepoint: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		tx.Rollback()
		s.contacts.reset()
		return errs, false, fmt.Errorf("store: commit: %w", err)
	}
	return errs, false, nil
}

// Ping checks that the store can commit a write, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	return s.write(ctx, func(tx *txn) error {
		_, err := tx.Exec(`INSERT INTO heartbeat (id, at) VALUES (1, ?)
			ON CONFLICT(id) DO UPDATE SET at = excluded.at`, s.now().UnixMilli())
		return err
	})
}

// migrate applies the backend's pending migrations (migrations/<driver>/),
// each in its own transaction. PostgreSQL hubs starting together serialise
// on an advisory lock, so each migration runs once.
func migrate(db *sql.DB, d dialect, now func() time.Time) error {
	if d == postgresDialect {
		conn, err := db.Conn(context.Background())
		if err != nil {
			return err
		}
		defer conn.Close()
		// A session lock is right here: it is held for a few statements by
		// a process that is starting, and dies with its connection.
		if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, migrateLockKey)
		return migrateOn(conn, d, now)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return migrateOn(conn, d, now)
}

func migrateOn(db *sql.Conn, d dialect, now func() time.Time) error {
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	names, err := fs.Glob(migrations, "migrations/"+d.String()+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	for _, name := range names {
		base := filepath.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: name must start with a number", base)
		}
		if version <= current {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		sqlTx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		tx := &txn{tx: sqlTx, d: d}
		if _, err := tx.tx.Exec(string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			version, base, now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %s: %w", base, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %s: %w", base, err)
		}
	}
	return nil
}

// IsFull reports whether err is the database's disk-full error (SQLite's
// SQLITE_FULL, PostgreSQL's 53100), so callers can say so instead of a
// generic failure.
func IsFull(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
		return true
	}
	return pgCode(err) == "53100"
}
