package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/sdk"
)

// ingestPostgres compares the hub's ingest on PostgreSQL with the least a
// program must do to keep the same rows there: a bare pgx loop that
// inserts them in multi-row batches, one commit per batch, into a copy of
// the events table (same columns and indexes) in the same database.
func ingestPostgres(ctx context.Context, opt IngestOptions, w io.Writer, seq *atomic.Int64) error {
	admin := opt.Postgres
	if admin == "auto" {
		srv, err := startPostgres()
		if err != nil {
			return err
		}
		defer srv.stop()
		admin = srv.url
	}
	name := fmt.Sprintf("wahub_bench_%d", os.Getpid())
	if err := pgExec(ctx, admin, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	defer pgExec(context.Background(), admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	u, err := url.Parse(admin)
	if err != nil {
		return err
	}
	u.Path = "/" + name
	dbURL := u.String()

	h, err := startHub(ctx, fmt.Sprintf("store: {driver: postgres, url: %q}", dbURL), opt)
	if err != nil {
		return err
	}
	defer h.stop()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE bench_events (LIKE events INCLUDING ALL)`); err != nil {
		return err
	}
	var version string
	conn.QueryRow(ctx, `SHOW server_version`).Scan(&version)
	var fsync, syncCommit string
	conn.QueryRow(ctx, `SHOW fsync`).Scan(&fsync)
	conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&syncCommit)
	fmt.Fprintf(w, "postgres ingest: PostgreSQL %s (fsync=%s, synchronous_commit=%s), batches of %d rows in the baseline\n",
		version, fsync, syncCommit, opt.Concurrency)

	b, _ := body(0)
	events, err := ingest.Parse(b, time.Now())
	if err != nil {
		return err
	}
	var bseq atomic.Int64
	c := client(opt.Concurrency)
	res, err := alternate(ctx, w, opt, c, seq,
		phase{name: "baseline: pgx multi-row INSERT loop", unit: "rows/s", run: func(d time.Duration) (float64, int64) {
			n, err := pgxLoop(ctx, conn, events[0], opt.Concurrency, d, &bseq)
			if err != nil {
				fmt.Fprintf(w, "  pgx loop: %v\n", err)
				return 0, 1
			}
			return float64(n) / d.Seconds(), 0
		}},
		phase{name: "durable: hub on PostgreSQL", unit: "req/s", run: func(d time.Duration) (float64, int64) {
			n, errs := closedLoop(ctx, c, h.target(), opt.Concurrency, d, seq)
			return float64(n) / d.Seconds(), errs
		}, after: h.drained, busy: h.st.WriterBusy})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  ratio hub/pgx loop: median %.2f (range %.2f–%.2f over %d rounds; goal >= %.2f: %s)\n",
		res.Median, res.Min, res.Max, res.N, goalPostgresRatio, verdict(res.Median >= goalPostgresRatio))
	return nil
}

// pgxLoop inserts rows shaped like ev's (a fresh id each) for d, batch
// rows per statement and commit.
func pgxLoop(ctx context.Context, conn *pgx.Conn, ev sdk.Event, batch int, d time.Duration, seq *atomic.Int64) (int64, error) {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO bench_events (id, type, occurred_at, received_at, contact_key, conversation_id, phone_number_id, body) VALUES `)
	for i := 0; i < batch; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", i*8+1, i*8+2, i*8+3, i*8+4, i*8+5, i*8+6, i*8+7, i*8+8)
	}
	sb.WriteString(` ON CONFLICT (id) DO NOTHING`)
	q := sb.String()
	end := time.Now().Add(d)
	var n int64
	args := make([]any, 0, batch*8)
	for time.Now().Before(end) && ctx.Err() == nil {
		args = args[:0]
		for i := 0; i < batch; i++ {
			k := seq.Add(1)
			e := ev
			e.ID = "evt_bench_pg_" + strconv.FormatInt(k, 10)
			body, err := json.Marshal(&e)
			if err != nil {
				return n, err
			}
			contact := "5511" + strconv.FormatInt(k%1000, 10)
			args = append(args, e.ID, e.Type, e.OccurredAt.UnixMilli(), e.ReceivedAt.UnixMilli(), contact, "conv_"+contact, "106540352242922", body)
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			return n, err
		}
		n += int64(batch)
	}
	return n, nil
}

func pgExec(ctx context.Context, dsn, sql string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// pgServer is a throw-away PostgreSQL in a temporary directory, with the
// installed defaults (fsync and synchronous_commit on: durable commits, as
// in production), listening only on a unix socket.
type pgServer struct {
	url    string
	dir    string
	cmd    *exec.Cmd
	exited chan error
}

func pgBin(name string) (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: install PostgreSQL (apt-get install postgresql-15) or pass --postgres=postgres://…", name)
}

func startPostgres() (*pgServer, error) {
	initdb, err := pgBin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := pgBin("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wahub-bench-pg-")
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("running as root, and initdb refuses root: no postgres user to run it as (%w)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	cmd = exec.Command(postgres, "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "max_connections=100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &pgServer{url: "postgres://postgres@/postgres?host=" + url.QueryEscape(dir), dir: dir, cmd: cmd, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := pgExec(ctx, s.url, "SELECT 1")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case werr := <-s.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %v", werr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, errors.New("postgres did not accept connections within 60 s")
		}
	}
}

func (s *pgServer) stop() {
	s.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
	<-s.exited
	os.RemoveAll(s.dir)
}
