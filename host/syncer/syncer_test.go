package syncer

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// pages is a scripted CRM: cursor → page; a cursor in fail errors once.
type pages struct {
	byCursor map[string]sdk.SyncResult
	fail     map[string]bool
	calls    []string
}

func (p *pages) Syncer(string) (func(context.Context, string) (sdk.SyncResult, error), time.Duration, error) {
	return func(_ context.Context, cursor string) (sdk.SyncResult, error) {
		p.calls = append(p.calls, cursor)
		if p.fail[cursor] {
			delete(p.fail, cursor)
			return sdk.SyncResult{}, errors.New("429 TEN_SECONDLY_ROLLING")
		}
		return p.byCursor[cursor], nil
	}, time.Minute, nil
}

func (p *pages) Running(string) <-chan struct{} { c := make(chan struct{}); close(c); return c }

func TestOnceStoresPagesAndKeepsCursorOnFailure(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "w.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	p := &pages{
		byCursor: map[string]sdk.SyncResult{
			"":   {Contacts: []sdk.ContactUpdate{{WAID: "5511", Attributes: map[string]string{"tier": "gold"}}}, NextCursor: "c1", More: true},
			"c1": {Contacts: []sdk.ContactUpdate{{WAID: "5522", Attributes: map[string]string{"tier": "silver"}}}, NextCursor: "c2"},
			"c2": {NextCursor: "c2"},
		},
		fail: map[string]bool{"c1": true},
	}
	// The second page fails: the first page's contacts and cursor stay.
	n, err := Once(ctx, st, p, "crm")
	if err == nil || n != 1 {
		t.Fatalf("first run: %d contacts, err %v; want 1 and the page's error", n, err)
	}
	if cur, _ := st.SyncCursor(ctx, "crm"); cur.Cursor != "c1" {
		t.Fatalf("cursor %q after a failed page, want c1", cur.Cursor)
	}
	// The next run resumes from c1.
	if n, err := Once(ctx, st, p, "crm"); err != nil || n != 1 {
		t.Fatalf("second run: %d %v", n, err)
	}
	if got := p.calls; len(got) != 3 || got[1] != "c1" || got[2] != "c1" {
		t.Fatalf("calls %q, want \"\", c1 (failed), c1", got)
	}
	c, err := st.Contact(ctx, "5522")
	if err != nil || c.Attributes["tier"] != "silver" {
		t.Fatalf("contact %+v %v", c, err)
	}
	cur, _ := st.SyncCursor(ctx, "crm")
	if cur.Cursor != "c2" || cur.Contacts != 2 || cur.At.IsZero() {
		t.Fatalf("sync state %+v", cur)
	}
}
