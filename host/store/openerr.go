package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/mattn/go-sqlite3"
)

// openHint says what to do about a store that cannot be opened: the two
// causes an operator meets are a directory the hub's user may not write
// and a damaged file, and SQLite's own words for them ("unable to open
// database file", "file is not a database") name neither the cause nor
// the way out.
// It returns nil for any other error.
func openHint(path string, err error) error {
	var se sqlite3.Error
	isSQLite := errors.As(err, &se)
	switch {
	case errors.Is(err, fs.ErrPermission),
		isSQLite && (se.Code == sqlite3.ErrCantOpen || se.Code == sqlite3.ErrPerm || se.Code == sqlite3.ErrReadonly):
		return fmt.Errorf("store: open %s: permission denied (%w): the user the hub runs as must be able to write %s and the files in it; "+
			"chown it to that user (chmod 700), or set store.path to a directory it owns", path, err, filepath.Dir(path))
	case isSQLite && (se.Code == sqlite3.ErrNotADB || se.Code == sqlite3.ErrCorrupt):
		return fmt.Errorf("store: open %s: the file is damaged (%w): stop the hub and restore the latest backup to %s "+
			"(wahub backup FILE makes them), or save what is readable with "+
			"`sqlite3 %s .recover | sqlite3 recovered.db` and point store.path at recovered.db", path, err, path, path)
	}
	return nil
}
