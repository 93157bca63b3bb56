//go:build !unix

package store

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// lockFile does nothing where flock does not exist: the pid file is still
// written, but a second hub is not refused there.
func lockFile(f *os.File) error { return nil }
