package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// PostgreSQL: several hubs, one database.
//
// Every write transaction of every hub starts with
// pg_advisory_xact_lock(writeLockKey), so the cluster's writes are
// serialised exactly as one hub's are on SQLite. That is a deliberate
// trade: the domain rules stay one Go implementation with one meaning
// (contact identity merges, consent, affinity, idempotent enqueue, KV
// compare-and-swap are read-check-write and need no per-rule locking), and
// seq order is commit order, so the dispatch cursor cannot skip a
// late-committing event (the sequence-gap trap of a global seq cursor under
// concurrent appenders). Each hub still group-commits, so one lock
// acquisition carries up to MaxBatch writes, and reads and the plugins'
// work run in parallel on every hub. The lock is transaction-scoped: a
// killed hub's transaction rolls back and releases it, and a stalled one is
// ended by idle_in_transaction_session_timeout (2 s). What several hubs need on
// top (leases with epochs, the cluster's nodes) is in lease.go.

const (
	writeLockKey   int64 = 0x7761687562_01 // "wahub" 1
	migrateLockKey int64 = 0x7761687562_02
)

// notifyChannel is the LISTEN/NOTIFY channel on which hubs tell each other
// that they committed something.
const notifyChannel = "wahub_changed"

// PostgresOptions tune a PostgreSQL store beyond Options.
type PostgresOptions struct {
	// PollInterval is how often a hub looks for others' work when no
	// notification arrives (default 1 s): notifications are lost while
	// the listener reconnects.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// OpenPostgres connects to the PostgreSQL database at url (postgres://…),
// applies pending migrations under an advisory lock, and starts the writer
// and the listener.
func OpenPostgres(dsn string, opt Options, popt PostgresOptions) (*Store, error) {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 256
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if popt.PollInterval <= 0 {
		popt.PollInterval = time.Second
	}
	if popt.Logger == nil {
		popt.Logger = slog.Default()
	}
	shown := redact(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres url %s: %w (want postgres://user:password@host:5432/database)", shown, err)
	}
	// A hub stopped inside a transaction (SIGSTOP, a partition) must not
	// hold the cluster's write lock for long: the server ends its session
	// well before the other hubs' leases (renewed through writes) lapse.
	// A hub's own transactions never idle: their statements follow each
	// other with nothing but Go code in between.
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "2000"
	cfg.RuntimeParams["application_name"] = "wahub"
	writer := stdlib.OpenDB(*cfg)
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: connect to %s: %w (check store.url and that the server is up)", shown, err)
	}
	if err := migrate(writer, postgresDialect, opt.Now); err != nil {
		writer.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", shown, err)
	}
	reader := stdlib.OpenDB(*cfg)
	reader.SetMaxOpenConns(8)
	reader.SetMaxIdleConns(8)
	s := newStore(shown, postgresDialect, writer, reader, opt)
	s.contacts.off = true // other hubs change contacts too
	lctx, lcancel := context.WithCancel(context.Background())
	s.pg = &pgExtras{cfg: cfg, s: s, log: popt.Logger, poll: popt.PollInterval, cancel: lcancel,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.pg.run(lctx)
	go s.writeLoop()
	return s, nil
}

// pgExtras are what a PostgreSQL store runs beside the writer: a listener
// that turns other hubs' notifications into Changed signals, and a
// notifier that tells them of this hub's commits at most every 100 ms
// (NOTIFY takes a cluster-wide lock at commit, so never one per write).
type pgExtras struct {
	cfg    *pgx.ConnConfig
	s      *Store
	log    *slog.Logger
	poll   time.Duration
	cancel context.CancelFunc
	kick   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func (p *pgExtras) notifyOthers() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pgExtras) close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
}

func (p *pgExtras) run(ctx context.Context) {
	defer close(p.done)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.notifier(ctx) }()
	go func() { defer wg.Done(); p.listen(ctx) }()
	wg.Wait()
}

func (p *pgExtras) notifier(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		if _, err := p.s.reader.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, notifyChannel); err != nil && ctx.Err() == nil {
			p.log.Warn("store: notifying other hubs failed; they will notice within the poll interval", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listen holds one connection outside the pools on LISTEN, reconnecting
// with a back-off; every notification, every reconnection (notifications
// sent meanwhile are lost) and every poll interval wakes the stages.
func (p *pgExtras) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+notifyChannel)
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			if ctx.Err() == nil {
				p.log.Warn("store: listening for other hubs' commits failed; polling meanwhile", "err", err)
			}
			p.s.signalChanged()
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		p.s.signalChanged()
		for ctx.Err() == nil {
			wctx, cancel := context.WithTimeout(ctx, p.poll)
			_, err := conn.WaitForNotification(wctx)
			cancel()
			p.s.signalChanged()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				break
			}
		}
		conn.Close(context.Background())
	}
}

// pgCode is the SQLSTATE of a PostgreSQL error, "" for any other.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// redact is a database URL without its password, for logs and errors.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable url)"
		}
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// sqlDB is the writer's handle, for the copy in migrate.go.
func (s *Store) sqlDB() *sql.DB { return s.writer }
