// Package pgtest gives tests a PostgreSQL database of their own.
//
// One throw-away server is started per test binary, the first time a test
// asks for a database (initdb takes seconds, a CREATE DATABASE a few
// milliseconds): initdb and postgres from the installed binaries, in a
// temporary directory, listening only on a unix socket there, as the
// postgres user when the tests run as root (initdb refuses root). Each
// test gets a fresh database, dropped when it ends. With
// WAHUB_TEST_POSTGRES_URL set, databases are created on that server
// instead. Without either, the tests skip, saying so loudly.
//
// A test binary that uses it stops the server in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names a server to use instead of starting one: a URL whose user
// may create databases.
const EnvURL = "WAHUB_TEST_POSTGRES_URL"

var (
	once    sync.Once
	srv     *server
	srvErr  error
	counter atomic.Int64
)

type server struct {
	admin string // URL of the postgres database, for CREATE/DROP DATABASE
	dir   string // "" for an external server
	cmd   *exec.Cmd
	// exited yields the server's exit once; Stop waits on it.
	exited chan error
}

// Run runs the tests and then stops the server, if one was started.
func Run(m *testing.M) int {
	code := m.Run()
	Stop()
	return code
}

// Stop stops the server started for this binary and removes its files.
func Stop() {
	if srv == nil || srv.cmd == nil {
		return
	}
	srv.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown: nothing here needs to survive
	<-srv.exited
	os.RemoveAll(srv.dir)
	srv = nil
}

// URL creates a fresh database for t and returns its URL; the database is
// dropped when t ends. It skips t when no PostgreSQL can be had.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { srv, srvErr = start() })
	if srvErr != nil {
		msg := "SKIPPING PostgreSQL tests: " + srvErr.Error()
		fmt.Fprintln(os.Stderr, "!!! "+msg)
		t.Skip(msg)
	}
	name := fmt.Sprintf("wahub_test_%d_%d", os.Getpid(), counter.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := exec1(ctx, srv.admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec1(ctx, srv.admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, _ := url.Parse(srv.admin)
	u.Path = "/" + name
	return u.String()
}

func exec1(ctx context.Context, dsn, sql string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	_, err = c.Exec(ctx, sql)
	return err
}

// bin finds a PostgreSQL program: Debian keeps them out of PATH.
func bin(name string) (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found (install PostgreSQL: apt-get install postgresql-15; or set %s)", name, EnvURL)
}

func start() (*server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := exec1(ctx, u, "SELECT 1"); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvURL, u, err)
		}
		return &server{admin: u}, nil
	}
	initdb, err := bin("initdb")
	if err != nil {
		return nil, err
	}
	postgres, err := bin("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wahub-pg-")
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
	cmd := exec.Command(initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	// Durability is not what these tests are about: fsync off makes them
	// quicker, and crash tests kill hubs, not the server.
	cmd = exec.Command(postgres, "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err == nil {
		if cred != nil {
			logf.Chown(int(cred.Uid), int(cred.Gid))
		}
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	s := &server{admin: "postgres://postgres@/postgres?host=" + url.QueryEscape(dir), dir: dir, cmd: cmd, exited: exited}
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := exec1(ctx, s.admin, "SELECT 1")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres exited: %v: %s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, errors.New("postgres did not accept connections within 60 s")
		}
	}
}
