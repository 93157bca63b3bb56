package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "data", "wahub.db"), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func textEvent(id, waID, userID, name string, at time.Time) sdk.Event {
	return sdk.Event{
		ID: id, Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at,
		Business: &sdk.Business{WABAID: "waba", PhoneNumberID: "pn1"},
		Contact:  &sdk.Contact{WAID: waID, UserID: userID, Name: name},
		Message:  &sdk.Message{ID: "wamid." + id, Type: "text", Text: "hi"},
	}
}

func TestAppendSkipsDuplicatesAndSetsSeq(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	evs := []sdk.Event{textEvent("a", "551", "", "Ana", t0), textEvent("b", "551", "", "Ana", t0), textEvent("a", "551", "", "Ana", t0)}
	n, err := s.Append(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("added %d, want 2 (the third is a duplicate within the batch)", n)
	}
	if evs[0].Seq == 0 || evs[1].Seq <= evs[0].Seq || evs[2].Seq != 0 {
		t.Fatalf("seqs = %d %d %d, want increasing for new events and 0 for the duplicate", evs[0].Seq, evs[1].Seq, evs[2].Seq)
	}
	again := []sdk.Event{textEvent("a", "551", "", "Ana", t0), textEvent("c", "551", "", "Ana", t0)}
	if n, err := s.Append(ctx, again); err != nil || n != 1 {
		t.Fatalf("second append: n=%d err=%v, want 1 new", n, err)
	}
	got, err := s.Events(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("log has %d events, want 3", len(got))
	}
	for i, want := range []string{"a", "b", "c"} {
		if got[i].ID != want {
			t.Errorf("event %d = %s, want %s (log order)", i, got[i].ID, want)
		}
	}
}

func TestConcurrentAppendsStoreEachItemOnce(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var batch []sdk.Event
	for i := 0; i < 50; i++ {
		batch = append(batch, textEvent(fmt.Sprintf("e%02d", i), fmt.Sprintf("55%02d", i%5), "", "", t0))
	}
	var wg sync.WaitGroup
	total := make([]int, 20)
	for g := 0; g < 20; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			mine := append([]sdk.Event(nil), batch...)
			n, err := s.Append(ctx, mine)
			if err != nil {
				t.Error(err)
			}
			total[g] = n
		}(g)
	}
	wg.Wait()
	sum := 0
	for _, n := range total {
		sum += n
	}
	if sum != 50 {
		t.Fatalf("goroutines added %d events in total, want 50", sum)
	}
	if last, _ := s.LastSeq(ctx); last != 50 {
		t.Fatalf("last seq %d, want 50", last)
	}
}

func TestContactIdentity(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	later := t0.Add(time.Hour)
	steps := []sdk.Event{
		textEvent("1", "5511", "", "Ana", t0),
		// The same person, now with a BSUID too: same contact and conversation.
		textEvent("2", "5511", "BR.1", "", later),
		// BSUID only: found by user_id.
		textEvent("3", "", "BR.1", "Ana S", later.Add(-time.Minute)),
		// A different BSUID on the same number is someone else.
		textEvent("4", "5511", "BR.2", "Other", later),
		// BSUID-only customer never seen before.
		textEvent("5", "", "US.9", "Dana", t0),
	}
	if _, err := s.Append(ctx, steps); err != nil {
		t.Fatal(err)
	}
	conv := func(id string) string {
		ev, err := s.Event(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ev.ConversationID
	}
	if conv("1") == "" || conv("1") != conv("2") || conv("2") != conv("3") {
		t.Errorf("events of one customer got conversations %q %q %q", conv("1"), conv("2"), conv("3"))
	}
	if conv("4") == conv("1") || conv("5") == conv("1") {
		t.Errorf("other customers share the first conversation")
	}
	if conv("1") != ConversationID("pn1", "5511") {
		t.Errorf("conversation id is not derived from number and first identity")
	}
	c, err := s.Contact(ctx, "BR.1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != "5511" || c.WAID != "5511" || c.UserID != "BR.1" || c.Name != "Ana S" {
		t.Errorf("contact = %+v", c)
	}
	if c.LastInboundAt == nil || !c.LastInboundAt.Equal(later) {
		t.Errorf("last inbound = %v, want the latest message time %v (not the last appended)", c.LastInboundAt, later)
	}
	if _, err := s.Contact(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown contact: err = %v, want ErrNotFound", err)
	}
	evs, err := s.Events(ctx, EventFilter{Contact: "BR.1"})
	if err != nil || len(evs) != 3 {
		t.Errorf("events of contact BR.1: %d (err %v), want 3", len(evs), err)
	}
}

func TestStatusDoesNotOpenWindowAndChangedNumberMovesContact(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	status := sdk.Event{ID: "s1", Type: sdk.TypeStatusRead, OccurredAt: t0, ReceivedAt: t0,
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "1415"},
		Status: &sdk.Status{MessageID: "wamid.x", Status: "read"}}
	changed := sdk.Event{ID: "c1", Type: sdk.TypeContactChanged, OccurredAt: t0, ReceivedAt: t0,
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: "1415"},
		Message: &sdk.Message{ID: "wamid.sys", Type: "system", System: &sdk.System{Type: "user_changed_number", NewWAID: "1499"}}}
	fromNew := textEvent("n1", "1499", "", "", t0.Add(time.Minute))
	// A late status for a message sent to the old number still finds the
	// contact, whose key is the old number.
	lateStatus := status
	lateStatus.ID = "s2"
	if _, err := s.Append(ctx, []sdk.Event{status, changed, fromNew, lateStatus}); err != nil {
		t.Fatal(err)
	}
	if ev, err := s.Event(ctx, "s2"); err != nil || ev.ConversationID != ConversationID("pn1", "1415") {
		t.Errorf("late status to the old number: conversation %q, err %v", ev.ConversationID, err)
	}
	c, err := s.Contact(ctx, "1499")
	if err != nil {
		t.Fatal(err)
	}
	if c.Key != "1415" {
		t.Errorf("message from the new number filed under contact %q, want the original 1415", c.Key)
	}
	if c.LastInboundAt == nil || !c.LastInboundAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("last inbound = %v; a status must not open the window, the message must", c.LastInboundAt)
	}
}

func TestEventFilter(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	var evs []sdk.Event
	for i := 0; i < 5; i++ {
		evs = append(evs, textEvent(fmt.Sprintf("m%d", i), "551", "", "", t0))
		evs = append(evs, sdk.Event{ID: fmt.Sprintf("s%d", i), Type: sdk.TypeStatusDelivered, OccurredAt: t0, ReceivedAt: t0})
	}
	if _, err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    EventFilter
		want []string
	}{
		{"newest last, limited", EventFilter{Tail: true, Limit: 3}, []string{"s3", "m4", "s4"}},
		{"by type", EventFilter{Tail: true, Type: sdk.TypeMessageReceived, Limit: 2}, []string{"m3", "m4"}},
		{"from the start", EventFilter{Limit: 2}, []string{"m0", "s0"}},
		{"by type glob", EventFilter{Type: "status.*", After: 6}, []string{"s3", "s4"}},
		{"after seq", EventFilter{After: 8}, []string{"m4", "s4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Events(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, ev := range got {
				ids = append(ids, ev.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", ids, tt.want)
			}
		})
	}
}

func TestFailingWriteIsRolledBackAlone(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = s.Write(ctx, func(tx *sql.Tx) error {
				ev := textEvent(fmt.Sprintf("w%d", i), "551", "", "", t0)
				body, _ := json.Marshal(ev)
				if _, err := s.appendEvent(tx, &ev, body); err != nil {
					return err
				}
				if i%2 == 1 {
					return boom
				}
				return nil
			})
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if (i%2 == 1) != errors.Is(err, boom) {
			t.Errorf("write %d: err = %v", i, err)
		}
	}
	got, _ := s.Events(ctx, EventFilter{})
	if len(got) != 5 {
		t.Fatalf("%d events kept, want the 5 from successful writes", len(got))
	}
}

func TestCloseDrainsQueueAndRefusesLaterWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wahub.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s.Append(context.Background(), []sdk.Event{textEvent(fmt.Sprintf("d%d", i), "551", "", "", t0)})
		}(i)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), []sdk.Event{textEvent("late", "551", "", "", t0)}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if last, _ := s2.LastSeq(context.Background()); last != 30 {
		t.Fatalf("reopened store has %d events, want 30", last)
	}
}

func TestAppendFailsWhenStoreIsBroken(t *testing.T) {
	// File modes do not stop root (CI runs as root), so break the schema
	// the append needs instead.
	s := openTest(t)
	if err := s.Write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`DROP TABLE events`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), []sdk.Event{textEvent("x", "551", "", "", t0)}); err == nil {
		t.Fatal("append to a broken store succeeded")
	}
}

func TestChangedSignalsNewCommits(t *testing.T) {
	s := openTest(t)
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("signalled before any write")
	default:
	}
	if _, err := s.Append(context.Background(), []sdk.Event{textEvent("x", "551", "", "", t0)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("not signalled after a commit")
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wahub.db")
	for i := 0; i < 2; i++ {
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}
