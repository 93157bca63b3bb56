package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The store holds customer messages and phone numbers: its directory is
// private to the hub's user and every file in it is 0600, whatever the
// umask says.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// SecureDir makes sure the directory of the store at path exists and is
// not readable by other users. A missing directory is created 0700. An
// existing one that group or others can enter is tightened to 0700 when it
// holds nothing but this store's files (the repository's data/ arrives
// 0755 from git, with a .gitkeep); a directory shared with other files is
// left alone and the returned warning says what to do.
func SecureDir(path string) (warning string, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return "", fmt.Errorf("store: create directory for %s: %w (check store.path and the permissions of its directory)", path, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return "", nil
	}
	if onlyStoreFiles(dir, filepath.Base(path)) {
		if err := os.Chmod(dir, dirMode); err == nil {
			return "", nil
		}
	}
	return fmt.Sprintf("the store's directory %s is accessible to other users (mode %04o); the store holds customer messages: `chmod 700 %s`, or move store.path into a directory of its own",
		dir, fi.Mode().Perm(), dir), nil
}

// onlyStoreFiles reports whether dir holds nothing but the store named
// base, its SQLite and lock sidecars, backups of it and .gitkeep.
func onlyStoreFiles(dir, base string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		n := e.Name()
		if n == ".gitkeep" || n == base || (strings.HasPrefix(n, base) && !e.IsDir()) {
			continue
		}
		return false
	}
	return true
}

// secureFiles creates the database file 0600 before SQLite does (SQLite
// would create it 0644 minus the umask) and tightens the files an older
// hub left. SQLite gives the WAL and SHM files it creates the database
// file's mode, so they follow.
func secureFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("store: open %s: %w (check store.path and the permissions of its directory)", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: make %s private: %w", p, err)
		}
	}
	return nil
}

// createPrivate creates path, which must not exist, empty and 0600: a
// backup is as private as the store, from its first byte.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; choose a new file", path)
		}
		return err
	}
	defer f.Close()
	return f.Chmod(fileMode)
}
