package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
)

func TestBackupIsAUsableCopy(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("b1", "5511", "", "A", t0)}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := s.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(ctx, path); err == nil {
		t.Error("a second backup overwrote the first")
	}
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Event(ctx, "b1"); err != nil {
		t.Fatalf("backup lacks the event: %v", err)
	}
}

// A full disk (SQLite's max_page_count stands for it) fails the append
// with a disk-full error and stores nothing; once there is room again the
// store takes writes without a restart.
func TestDiskFullFailsCleanlyAndRecovers(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []sdk.Event{textEvent("before", "5511", "", "A", t0)}); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := s.reader.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	setMax := func(n int) {
		t.Helper()
		if err := s.write(ctx, func(tx *txn) error {
			_, err := tx.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, n))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	setMax(pages)
	big := make([]sdk.Event, 200)
	for i := range big {
		big[i] = textEvent(fmt.Sprintf("full-%d", i), fmt.Sprintf("55%04d", i), "", strings.Repeat("x", 2000), t0)
	}
	_, err := s.Append(ctx, big)
	if !IsFull(err) {
		t.Fatalf("append on a full disk: %v, want a disk-full error", err)
	}
	if _, err := s.Event(ctx, "full-0"); err != ErrNotFound {
		t.Fatalf("a failed append left event full-0 behind: %v", err)
	}
	setMax(1 << 30)
	if _, err := s.Append(ctx, big); err != nil {
		t.Fatalf("append after room was made: %v", err)
	}
}
