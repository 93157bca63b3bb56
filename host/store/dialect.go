package store

import (
	"context"
	"database/sql"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// dialect is the SQL a backend speaks. The statements in this package are
// written once, in SQLite's placeholders (? and ?N); for PostgreSQL they
// are rewritten once each (and cached) into $N placeholders plus the few
// constructs the two spell differently.
type dialect int

const (
	sqliteDialect dialect = iota
	postgresDialect
)

func (d dialect) String() string {
	if d == postgresDialect {
		return "postgres"
	}
	return "sqlite"
}

// keySep separates the source from the caller's key in a stored
// idempotency key. SQLite's is NUL, which PostgreSQL's text cannot hold;
// `wahub store migrate` translates.
func (d dialect) keySep() string {
	if d == postgresDialect {
		return "\x1f"
	}
	return "\x00"
}

// pgRewrites are the constructs SQLite and PostgreSQL spell differently,
// as they appear in this package's statements.
var pgRewrites = strings.NewReplacer(
	// Two-argument MAX is SQLite's scalar maximum.
	"MAX(last_active, excluded.last_active)", "GREATEST(conversations.last_active, excluded.last_active)",
	"MAX(next_at, ?)", "GREATEST(next_at, ?)",
	"json_extract(route, '$.team')", "(route::jsonb ->> 'team')",
	"INDEXED BY deliveries_pending", "",
	// The outbox's insertion order: SQLite's rowid, a sequence column on
	// PostgreSQL.
	"next_at, rowid", "next_at, seq",
	"temp.prune", "pg_temp.prune",
	"seq INTEGER PRIMARY KEY", "seq BIGINT PRIMARY KEY",
)

// indexedBy is SQLite's index hint, which PostgreSQL's planner does
// without.
var indexedBy = regexp.MustCompile(`INDEXED BY \w+`)

var rebound sync.Map // SQLite statement → PostgreSQL statement

// sql returns q in d's dialect.
func (d dialect) sql(q string) string {
	if d == sqliteDialect {
		return q
	}
	if r, ok := rebound.Load(q); ok {
		return r.(string)
	}
	r := rebind(indexedBy.ReplaceAllString(pgRewrites.Replace(q), ""))
	rebound.Store(q, r)
	return r
}

// rebind turns SQLite placeholders into PostgreSQL's: ?N is $N, and a bare
// ? takes the number after the largest so far, as SQLite numbers them.
// Placeholders inside string literals are left alone.
func rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	inStr := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'':
			inStr = !inStr
			b.WriteByte(c)
		case c == '?' && !inStr:
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j > i+1 {
				k, _ := strconv.Atoi(q[i+1 : j])
				n = max(n, k)
				b.WriteString("$" + q[i+1:j])
				i = j - 1
				continue
			}
			n++
			b.WriteString("$" + strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// txn is one write transaction in the backend's dialect: the repository
// the domain code writes through.
type txn struct {
	tx *sql.Tx
	d  dialect
}

func (t *txn) Exec(q string, args ...any) (sql.Result, error) { return t.tx.Exec(t.d.sql(q), args...) }
func (t *txn) Query(q string, args ...any) (*sql.Rows, error) { return t.tx.Query(t.d.sql(q), args...) }
func (t *txn) QueryRow(q string, args ...any) *sql.Row        { return t.tx.QueryRow(t.d.sql(q), args...) }
func (t *txn) Commit() error                                  { return t.tx.Commit() }
func (t *txn) Rollback() error                                { return t.tx.Rollback() }

// pool is the read side in the backend's dialect.
type pool struct {
	db *sql.DB
	d  dialect
}

func (p *pool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return p.db.QueryContext(ctx, p.d.sql(q), args...)
}

func (p *pool) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return p.db.QueryRowContext(ctx, p.d.sql(q), args...)
}

func (p *pool) Query(q string, args ...any) (*sql.Rows, error) {
	return p.db.Query(p.d.sql(q), args...)
}

func (p *pool) QueryRow(q string, args ...any) *sql.Row {
	return p.db.QueryRow(p.d.sql(q), args...)
}

func (p *pool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return p.db.ExecContext(ctx, p.d.sql(q), args...)
}
