package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/store/pgtest"
	"github.com/wahub/wahub/host/store/storetest"
	"github.com/wahub/wahub/sdk"
)

func msg(id, waID string, at time.Time) sdk.Event {
	return sdk.Event{ID: id, Type: sdk.TypeMessageReceived, OccurredAt: at, ReceivedAt: at,
		Business: &sdk.Business{PhoneNumberID: "pn1"}, Contact: &sdk.Contact{WAID: waID},
		Message: &sdk.Message{ID: "wamid." + id, Type: "text", Text: "hi"}}
}

// A SQLite store copied into PostgreSQL carries on where it was: the
// dispatch cursor, affinity, consent, sync cursors, dead letters, the
// outbox (idempotency keys included) and KV; new events continue the seq.
func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	now := func() time.Time { return storetest.T0 }
	src, err := store.Open(filepath.Join(t.TempDir(), "wahub.db"), store.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	withPhoto := msg("b", "5522", storetest.T0)
	withPhoto.Message.Type, withPhoto.Message.Media = "image", &sdk.Media{ID: "m-photo", MimeType: "image/jpeg", SHA256: "c2hh"}
	if _, err := src.Append(ctx, []sdk.Event{msg("a", "5511", storetest.T0), withPhoto}); err != nil {
		t.Fatal(err)
	}
	decide := func(ev *sdk.Event, st store.RouteState) store.Decision {
		return store.Decision{Connectors: []string{"c"}, Team: "billing", Consent: sdk.ConsentRevoked, ConsentSource: "keyword STOP"}
	}
	if _, err := src.Dispatch(ctx, 100, decide); err != nil {
		t.Fatal(err)
	}
	due, _ := src.Due(ctx, "c", storetest.T0, 10)
	if err := src.RecordAttempts(ctx, []store.Attempt{{DeliveryID: due[0].ID, At: storetest.T0, Outcome: "failed", Error: "bad", State: store.StateDead}}); err != nil {
		t.Fatal(err)
	}
	// A dead letter announces itself with an event: route it too, so
	// that the cursor is at the end of the log.
	if _, err := src.Dispatch(ctx, 100, func(*sdk.Event, store.RouteState) store.Decision { return store.Decision{} }); err != nil {
		t.Fatal(err)
	}
	last, _ := src.LastSeq(ctx)
	if _, _, err := src.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511", Text: "oi", IdempotencyKey: "k1"}); err != nil {
		t.Fatal(err)
	}
	if err := src.ApplySync(ctx, "crm", []sdk.ContactUpdate{{WAID: "5511", Attributes: map[string]string{"tier": "gold"}}}, "cursor-7"); err != nil {
		t.Fatal(err)
	}
	if err := src.KV("c").Put(ctx, "k", []byte("v\x00binary")); err != nil {
		t.Fatal(err)
	}
	if err := src.SetPaused(ctx, "c", true); err != nil {
		t.Fatal(err)
	}

	url := pgtest.URL(t)
	dst := openPostgres(t, url, now)
	stats, err := src.CopyTo(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if stats["events"] != last || stats["outbox"] != 1 || stats["deliveries"] != 2 || stats["media"] != 1 || stats["media_events"] != 1 {
		t.Fatalf("copied %v", stats)
	}
	if rec, err := dst.MediaRecord(ctx, "m-photo"); err != nil || rec.State != sdk.MediaPending || rec.ExpectSHA256 != "c2hh" || rec.ContactKey == "" {
		t.Fatalf("media record after the copy: %+v %v", rec, err)
	}
	c, err := dst.Contact(ctx, "5511")
	if err != nil || c.Consent.State != sdk.ConsentRevoked || c.Attributes["tier"] != "gold" ||
		len(c.Conversations) != 1 || c.Conversations[0].Team != "billing" {
		t.Fatalf("contact after the copy: %+v %v", c, err)
	}
	if st, _ := dst.SyncCursor(ctx, "crm"); st.Cursor != "cursor-7" || st.Contacts != 1 {
		t.Fatalf("sync cursor: %+v", st)
	}
	if dl, _ := dst.DeadLetters(ctx, store.DeadLetterFilter{Connector: "c"}); len(dl) != 1 || dl[0].EventID != due[0].EventID {
		t.Fatalf("dead letters: %+v", dl)
	}
	if rec, err := dst.OutboundByKey(ctx, "api", "k1"); err != nil || rec.To != "5511" {
		t.Fatalf("outbox by idempotency key: %+v %v", rec, err)
	}
	if _, created, _ := dst.Enqueue(ctx, "api", sdk.OutboundMessage{To: "5511", Text: "oi", IdempotencyKey: "k1"}); created {
		t.Fatal("the copied idempotency key did not hold")
	}
	if v, _, _ := dst.KV("c").Get(ctx, "k"); string(v) != "v\x00binary" {
		t.Fatalf("kv = %q", v)
	}
	if p, _ := dst.Paused(ctx, "c"); !p {
		t.Fatal("pause lost")
	}
	// Routing continues from the cursor: only the new event is routed, and
	// it sees the affinity SQLite recorded.
	if _, err := dst.Append(ctx, []sdk.Event{msg("c", "5511", storetest.T0.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	n, err := dst.Dispatch(ctx, 100, func(ev *sdk.Event, st store.RouteState) store.Decision {
		seen = append(seen, fmt.Sprintf("%s %d %s", ev.ID, ev.Seq, st.Team))
		return store.Decision{Connectors: []string{"c"}}
	})
	if want := fmt.Sprintf("c %d billing", last+1); err != nil || n != 1 || strings.Join(seen, ",") != want {
		t.Fatalf("dispatch after the copy: n=%d %v seen %v, want only %q", n, err, seen, want)
	}

	// A database that holds anything is refused.
	if _, err := src.CopyTo(ctx, dst); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a non-empty database: %v", err)
	}
}
