package store

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Lock is a hub's exclusive claim on a SQLite store: two hubs on one file
// would both deliver every event (duplicate Slack threads, duplicate
// tickets). It is an flock on a sidecar file next to the store, holding
// the owner's pid; the kernel drops it when the process dies, however it
// dies, so a crash never leaves a stale lock behind. Commands that only
// read the store or copy it (route --explain, backup) do not take it.
type Lock struct{ f *os.File }

// LockedError is returned by AcquireLock while another process holds the
// store.
type LockedError struct {
	Path string // the store, as configured
	PID  int    // the holder, 0 if unknown
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return "store " + e.Path + " is in use by another wahub"
	}
	return fmt.Sprintf("store %s is in use by another wahub (pid %d)", e.Path, e.PID)
}

// LockPath is the sidecar file AcquireLock uses for the store at path.
func LockPath(path string) string { return path + ".lock" }

// AcquireLock takes the exclusive lock on the store at path without
// waiting; a *LockedError says who holds it.
func AcquireLock(path string) (*Lock, error) {
	if _, err := SecureDir(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(LockPath(path), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		defer f.Close()
		if errors.Is(err, errLocked) {
			raw, _ := os.ReadFile(LockPath(path))
			pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
			return nil, &LockedError{Path: path, PID: pid}
		}
		return nil, fmt.Errorf("store: lock %s: %w", path, err)
	}
	// The pid is for the message above only; the flock is the lock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the store up. The file stays: removing it would let a
// third process lock a new file while a second still waits on the old.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}
