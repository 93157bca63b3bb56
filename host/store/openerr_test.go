package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mattn/go-sqlite3"
)

// A store that cannot be opened says why and what to do.
func TestOpenErrorsSayWhatToDo(t *testing.T) {
	t.Run("damaged file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "wahub.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("not a database; ", 512)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, Options{})
		if err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "wahub backup") ||
			!strings.Contains(err.Error(), "sqlite3 "+path+" .recover") {
			t.Fatalf("Open of a damaged file: %v", err)
		}
	})
	t.Run("directory not writable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root writes any directory; the classification is tested below")
		}
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		_, err := Open(filepath.Join(dir, "wahub.db"), Options{})
		if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "chown") {
			t.Fatalf("Open in a read-only directory: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for no hint
	}{
		{"cannot open", sqlite3.Error{Code: sqlite3.ErrCantOpen}, "permission denied"},
		{"read-only", sqlite3.Error{Code: sqlite3.ErrReadonly}, "permission denied"},
		{"os permission", &os.PathError{Op: "mkdir", Path: "/x", Err: os.ErrPermission}, "permission denied"},
		{"not a database", sqlite3.Error{Code: sqlite3.ErrNotADB}, "damaged"},
		{"malformed", sqlite3.Error{Code: sqlite3.ErrCorrupt}, "damaged"},
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hint := openHint("/var/lib/wahub/wahub.db", tc.err)
			switch {
			case tc.want == "" && hint != nil:
				t.Errorf("hint %v, want none", hint)
			case tc.want != "" && (hint == nil || !strings.Contains(hint.Error(), tc.want)):
				t.Errorf("hint %v, want %q", hint, tc.want)
			}
		})
	}
}
