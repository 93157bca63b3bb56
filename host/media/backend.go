package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrNotFound is a backend's answer for bytes it does not hold.
var ErrNotFound = errors.New("media: not in the media store")

// Backend keeps bytes under their content's key (the hex sha256). Every
// method streams; none holds a whole file in memory. Putting a key that
// exists already is a no-op success: the bytes are the same.
type Backend interface {
	// Put stores size bytes read from r under key.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open streams the bytes of key, or ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Has reports whether key is stored.
	Has(ctx context.Context, key string) (bool, error)
	// String names the backend for logs: no secrets.
	String() string
}

// adopter is a backend that can take a spooled file as it is (a rename),
// saving a copy: the local directory.
type adopter interface {
	Adopt(ctx context.Context, key, path string) error
	// SpoolDir is where files to adopt are spooled (same file system).
	SpoolDir() string
}

var keyPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkKey(key string) error {
	if !keyPattern.MatchString(key) {
		return fmt.Errorf("media: %q is not a content key (64 hex digits)", key)
	}
	return nil
}

// Local keeps files in a directory, private to the hub's user: one file
// per content key, under a two-letter fan-out so no directory grows huge.
type Local struct {
	dir string
}

// NewLocal opens (creating) the directory with mode 0700, and clears what
// an interrupted write left in its spool.
func NewLocal(dir string) (*Local, error) {
	if strings.TrimSpace(dir) == "" {
		return nil, errors.New("media: no directory given (set media.path)")
	}
	if err := os.MkdirAll(filepath.Join(dir, ".spool"), 0o700); err != nil {
		return nil, fmt.Errorf("media: create %s: %w (check media.path and the permissions of its parent)", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; files of
	// customers must not be readable by other users of the machine.
	for _, d := range []string{dir, filepath.Join(dir, ".spool")} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("media: make %s private: %w", d, err)
		}
	}
	l := &Local{dir: dir}
	entries, _ := os.ReadDir(l.SpoolDir())
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			os.Remove(filepath.Join(l.SpoolDir(), e.Name()))
		}
	}
	return l, nil
}

func (l *Local) String() string { return "local directory " + l.dir }

// SpoolDir is the directory's spool, on the same file system.
func (l *Local) SpoolDir() string { return filepath.Join(l.dir, ".spool") }

func (l *Local) path(key string) string { return filepath.Join(l.dir, key[:2], key) }

func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if ok, _ := l.Has(ctx, key); ok {
		return nil
	}
	f, err := os.CreateTemp(l.SpoolDir(), "put-*")
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil && size >= 0 && n != size {
		err = fmt.Errorf("media: got %d bytes, expected %d", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("media: write %s: %w", key, err)
	}
	return l.Adopt(ctx, key, f.Name())
}

// Adopt moves a complete file written in SpoolDir into place.
func (l *Local) Adopt(ctx context.Context, key, path string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	dst := l.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("media: %w", err)
	}
	// A rename over an existing file of the same content is harmless, and
	// atomic: a reader sees the old file or the new one, never a part.
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("media: store %s: %w", key, err)
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (l *Local) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("media: open %s: %w", key, err)
	}
	return f, nil
}

func (l *Local) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := os.Remove(l.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media: delete %s: %w", key, err)
	}
	return nil
}

func (l *Local) Has(ctx context.Context, key string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, err
	}
	_, err := os.Stat(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}
