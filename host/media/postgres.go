package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// chunkSize is the most one statement carries: a file is rows of this.
const chunkSize = 1 << 20

// Postgres keeps files in the store's PostgreSQL database (tables
// media_blobs and media_chunks of migration 0004), so every hub sharing
// the database sees them. A file is written in one transaction, chunk by
// chunk, and read chunk by chunk: no statement and no buffer holds more
// than 1 MiB.
type Postgres struct {
	pool *pgxpool.Pool
	name string
}

// NewPostgres connects to the database at dsn (the store's store.url);
// the store has created the tables.
func NewPostgres(dsn string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("media: postgres url: %w", err)
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = "wahub-media"
	// A hub that dies mid-write must not leave a transaction open.
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60000"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("media: connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("media: connect to postgres: %w (check store.url)", err)
	}
	name := "postgres"
	if u, err := url.Parse(dsn); err == nil {
		name = "postgres database " + u.Host + u.Path
	}
	return &Postgres{pool: pool, name: name}, nil
}

func (p *Postgres) String() string { return p.name }

// Close ends the backend's connections.
func (p *Postgres) Close() { p.pool.Close() }

func (p *Postgres) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("media: postgres: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The row first: a concurrent put of the same bytes waits on it, then
	// finds it and does nothing.
	tag, err := tx.Exec(ctx, `INSERT INTO media_blobs (sha256, size, chunks, created_at) VALUES ($1, 0, 0, $2)
		ON CONFLICT (sha256) DO NOTHING`, key, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("media: postgres: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil
	}
	buf := make([]byte, chunkSize)
	var n int
	var total int64
	for {
		m, rerr := io.ReadFull(r, buf)
		if m > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO media_chunks (sha256, n, data) VALUES ($1, $2, $3)`, key, n, buf[:m]); err != nil {
				return fmt.Errorf("media: postgres: write chunk %d of %s: %w", n, key, err)
			}
			n++
			total += int64(m)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("media: read %s: %w", key, rerr)
		}
	}
	if size >= 0 && total != size {
		return fmt.Errorf("media: got %d bytes of %s, expected %d", total, key, size)
	}
	if _, err := tx.Exec(ctx, `UPDATE media_blobs SET size = $2, chunks = $3 WHERE sha256 = $1`, key, total, n); err != nil {
		return fmt.Errorf("media: postgres: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("media: postgres: commit %s: %w", key, err)
	}
	return nil
}

func (p *Postgres) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var chunks int
	err := p.pool.QueryRow(ctx, `SELECT chunks FROM media_blobs WHERE sha256 = $1`, key).Scan(&chunks)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media: postgres: open %s: %w", key, err)
	}
	return &pgReader{ctx: context.WithoutCancel(ctx), p: p, key: key, chunks: chunks}, nil
}

// pgReader reads a file one chunk (one query) at a time.
type pgReader struct {
	ctx    context.Context
	p      *Postgres
	key    string
	chunks int
	next   int
	buf    []byte
}

func (r *pgReader) Read(b []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.next >= r.chunks {
			return 0, io.EOF
		}
		if err := r.p.pool.QueryRow(r.ctx, `SELECT data FROM media_chunks WHERE sha256 = $1 AND n = $2`, r.key, r.next).Scan(&r.buf); err != nil {
			return 0, fmt.Errorf("media: postgres: read chunk %d of %s: %w", r.next, r.key, err)
		}
		r.next++
	}
	n := copy(b, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *pgReader) Close() error { r.next, r.buf = r.chunks, nil; return nil }

func (p *Postgres) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM media_blobs WHERE sha256 = $1`, key); err != nil {
			return fmt.Errorf("media: postgres: delete %s: %w", key, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM media_chunks WHERE sha256 = $1`, key); err != nil {
			return fmt.Errorf("media: postgres: delete %s: %w", key, err)
		}
		return nil
	})
}

func (p *Postgres) Has(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	var one int
	err := p.pool.QueryRow(ctx, `SELECT 1 FROM media_blobs WHERE sha256 = $1`, key).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("media: postgres: %w", err)
	}
	return true, nil
}
