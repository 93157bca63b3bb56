package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Retention deletes settled old events only: a dead letter, a pending
// delivery and recent events stay.
func TestPruneKeepsWhatIsNotSettled(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	old := t0.Add(-40 * 24 * time.Hour)
	evs := []sdk.Event{
		textEvent("settled", "5511", "", "A", old),
		textEvent("dead", "5522", "", "B", old),
		textEvent("pending", "5533", "", "C", old),
		textEvent("recent", "5544", "", "D", t0),
	}
	for i := range evs {
		evs[i].ReceivedAt = evs[i].OccurredAt
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	dispatchAll(t, s, func(*sdk.Event, RouteState) Decision { return Decision{Connectors: []string{"c"}} })
	due, err := s.Due(ctx, "c", t0, 10)
	if err != nil || len(due) != 4 {
		t.Fatalf("due %d %v", len(due), err)
	}
	var attempts []Attempt
	for _, d := range due {
		a := Attempt{DeliveryID: d.ID, At: t0, Outcome: "delivered", State: StateDelivered}
		switch d.EventID {
		case "dead":
			a.Outcome, a.State = "failed", StateDead
		case "pending":
			continue
		}
		attempts = append(attempts, a)
	}
	if err := s.RecordAttempts(ctx, attempts); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, t0.Add(-30*24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want 1", n, err)
	}
	for id, want := range map[string]bool{"settled": false, "dead": true, "pending": true, "recent": true} {
		_, err := s.Event(ctx, id)
		if (err == nil) != want {
			t.Errorf("event %s kept=%v, want %v", id, err == nil, want)
		}
	}
}

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
		if err := s.Write(ctx, func(tx *sql.Tx) error {
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
