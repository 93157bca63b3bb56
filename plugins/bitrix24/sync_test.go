package bitrix24

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/sdk"
)

var syncCfg = map[string]any{"sync": map[string]any{
	"interval": "5m",
	"fields":   map[string]any{"tier": "UF_CRM_TIER", "owner": "ASSIGNED_BY_ID"},
}}

// syncAll calls Sync until it has no more, as the hub does, and returns
// every update and the final cursor.
func syncAll(t *testing.T, r *sdk.Remote, cur string) ([]sdk.ContactUpdate, string, int) {
	t.Helper()
	var all []sdk.ContactUpdate
	for calls := 1; ; calls++ {
		if calls > 100 {
			t.Fatal("Sync never stopped asking for more")
		}
		res, err := r.Sync(context.Background(), cur)
		if err != nil {
			t.Fatalf("Sync(%q): %v", cur, err)
		}
		all = append(all, res.Contacts...)
		cur = res.NextCursor
		if !res.More {
			return all, cur, calls
		}
	}
}

func waids(us []sdk.ContactUpdate) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.WAID)
	}
	sort.Strings(out)
	return out
}

// 120 contacts, 70 of them changed within the same second (an import):
// paging by keyset reports each exactly once, however the pages fall.
func TestSyncPagingAndEqualTimestamps(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 70; i++ {
		e.fake.AddContact(map[string]any{"NAME": fmt.Sprintf("Import %d", i), "UF_CRM_TIER": "silver"}, fmt.Sprintf("+55 11 9%08d", i))
	}
	for i := 70; i < 120; i++ {
		e.clock.Advance(time.Second)
		e.fake.AddContact(map[string]any{"NAME": fmt.Sprintf("Later %d", i)}, fmt.Sprintf("+55119%08d", i))
	}
	e.fake.AddContact(map[string]any{"NAME": "No phone"})
	e.clock.Advance(time.Minute) // everything settled
	r, _ := e.start(e.config(syncCfg))

	got, cur, calls := syncAll(t, r, "")
	if len(got) != 120 {
		t.Fatalf("%d updates, want 120", len(got))
	}
	seen := map[string]bool{}
	for _, u := range got {
		if seen[u.WAID] {
			t.Errorf("%s reported twice", u.WAID)
		}
		seen[u.WAID] = true
	}
	first := got[0]
	if first.WAID != "5511900000000" || first.Name != "Import 0" || first.Attributes["tier"] != "silver" || first.Attributes["owner"] != "1" {
		t.Errorf("first update = %+v", first)
	}
	if later := got[119]; later.Attributes["tier"] != "" {
		t.Errorf("unset tier = %q, want empty", later.Attributes["tier"])
	}
	cts := e.fake.Contacts()
	if !strings.HasSuffix(cur, fmt.Sprintf("#%d", cts[len(cts)-1].ID)) {
		t.Errorf("cursor = %q, want the last contact's date and id", cur)
	}
	if calls > 5 {
		t.Errorf("%d Sync calls for 121 contacts", calls)
	}
	// Lists, plus one look at the fields (UF_CRM_TIER could be a list).
	for i, c := range e.fake.Calls() {
		if want := "crm.contact.list"; i == 1 && c.Method != "crm.contact.fields" || i != 1 && c.Method != want {
			t.Errorf("call %d: %s", i, c.Method)
		}
	}

	// Nothing changed: nothing reported, the cursor stays.
	again, cur2, _ := syncAll(t, r, cur)
	if len(again) != 0 || cur2 != cur {
		t.Errorf("second sync: %d updates, cursor %q → %q", len(again), cur, cur2)
	}
}

// A user sets tier gold on a contact; the next sync, in a restarted
// plugin, reports just that contact, from the stored cursor.
func TestSyncCursorSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	ana := e.fake.AddContact(map[string]any{"NAME": "Ana", "LAST_NAME": "Souza"}, "+5511987650001")
	e.fake.AddContact(map[string]any{"NAME": "Bruno"}, "+5521998760002")
	e.clock.Advance(time.Minute)
	r, _ := e.start(e.config(syncCfg))
	_, cur, _ := syncAll(t, r, "")

	e.clock.Advance(time.Minute)
	if err := e.fake.UpdateContact(ana, map[string]any{"UF_CRM_TIER": "gold", "ASSIGNED_BY_ID": "7"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	r2, _ := e.start(e.config(syncCfg))
	got, _, _ := syncAll(t, r2, cur)
	if len(got) != 1 {
		t.Fatalf("updates = %+v, want Ana's only", got)
	}
	want := sdk.ContactUpdate{WAID: "5511987650001", Name: "Ana Souza", Attributes: map[string]string{"tier": "gold", "owner": "7"}}
	if fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Errorf("update = %+v, want %+v", got[0], want)
	}
}

// A failed page returns an error and no cursor: the hub keeps the old
// one, and the next call reads the same page.
func TestSyncFailedPageKeepsCursor(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 60; i++ {
		e.fake.AddContact(map[string]any{"NAME": "C"}, fmt.Sprintf("+55119%08d", i))
	}
	e.clock.Advance(time.Minute)
	r, _ := e.start(e.config(syncCfg))
	first, err := r.Sync(context.Background(), "")
	if err != nil || !first.More || len(first.Contacts) != 50 {
		t.Fatalf("first page: %d contacts, more %v, err %v", len(first.Contacts), first.More, err)
	}
	for _, status := range []int{500, 401} {
		e.fake.FailNext(1, status)
		res, err := r.Sync(context.Background(), first.NextCursor)
		if err == nil {
			t.Fatalf("Sync with a %d page: no error (result %+v)", status, res)
		}
		if res.NextCursor != "" || len(res.Contacts) != 0 {
			t.Errorf("a failed page returned cursor %q and %d contacts", res.NextCursor, len(res.Contacts))
		}
		if strings.Contains(err.Error(), bitrix24test.DefaultToken) {
			t.Errorf("error %q contains the webhook code", err)
		}
	}
	rest, _, _ := syncAll(t, r, first.NextCursor)
	if len(rest) != 10 {
		t.Errorf("after the failures: %d contacts, want the remaining 10", len(rest))
	}
}

// Changes from the last seconds are reported at once, but the cursor
// does not pass them until they are settled: a change committed late in
// the same second is not lost.
func TestSyncUnsettledChanges(t *testing.T) {
	e := newEnv(t)
	e.fake.AddContact(map[string]any{"NAME": "Old"}, "+5511900000001")
	e.clock.Advance(time.Minute)
	r, _ := e.start(e.config(syncCfg))
	_, cur, _ := syncAll(t, r, "")

	// Start a fresh second, so that what follows happens within it.
	now := e.clock.Now()
	e.clock.Advance(now.Truncate(time.Second).Add(time.Second).Sub(now))
	fresh := e.fake.AddContact(map[string]any{"NAME": "Fresh", "UF_CRM_TIER": "gold"}, "+5511900000002")
	res, err := r.Sync(context.Background(), cur)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Contacts) != 1 || res.Contacts[0].Attributes["tier"] != "gold" {
		t.Errorf("fresh change not reported: %+v", res.Contacts)
	}
	if res.NextCursor != cur || res.More {
		t.Errorf("cursor moved to %q (more %v) past an unsettled change", res.NextCursor, res.More)
	}
	// Another contact changes in the same second, with a lower id.
	if err := e.fake.UpdateContact(1, map[string]any{"UF_CRM_TIER": "bronze"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Second)
	got, cur2, _ := syncAll(t, r, cur)
	if w := waids(got); strings.Join(w, ",") != "5511900000001,5511900000002" {
		t.Errorf("after settling: %v, want both", w)
	}
	if !strings.HasSuffix(cur2, fmt.Sprintf("#%d", fresh)) {
		t.Errorf("cursor = %q, want it past contact %d", cur2, fresh)
	}
}

// Values come in many forms; empty ones in any form are "".
func TestSyncValueForms(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		e := newEnv(t, bitrix24test.WithRandomForms(seed))
		e.fake.AddContact(map[string]any{"NAME": "Ana", "UF_CRM_TIER": "gold"}, "+5511987650001", "011 3333-4444", "+5511987650001")
		e.fake.AddContact(map[string]any{"NAME": "Bruno"}, "+5521998760002")
		e.clock.Advance(time.Minute)
		r, _ := e.start(e.config(syncCfg))
		got, _, _ := syncAll(t, r, "")
		if len(got) != 2 {
			t.Fatalf("seed %d: %+v, want one update per international number", seed, got)
		}
		if got[0].Attributes["tier"] != "gold" || got[1].Attributes["tier"] != "" {
			t.Errorf("seed %d: tiers %q, %q", seed, got[0].Attributes["tier"], got[1].Attributes["tier"])
		}
	}
}

func TestSyncCursorForms(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true},
		{"2026-11-24T15:00:00+03:00#75", true},
		{"2026-11-24T15:00:00+03:00#", true},
		{"garbage", false},
		{"2026-11-24#75", false},
		{"2026-11-24T15:00:00+03:00#x", false},
	} {
		c, ok := parseCursor(tc.in)
		if ok != tc.ok {
			t.Errorf("parseCursor(%q) ok = %v", tc.in, ok)
		}
		if ok && tc.in != "" && c.String() != tc.in {
			t.Errorf("parseCursor(%q).String() = %q", tc.in, c.String())
		}
	}
	// A cursor the plugin cannot read restarts the sync rather than
	// sticking forever.
	e := newEnv(t)
	e.fake.AddContact(map[string]any{"NAME": "Ana"}, "+5511987650001")
	e.clock.Advance(time.Minute)
	r, _ := e.start(e.config(syncCfg))
	got, _, _ := syncAll(t, r, "not a cursor")
	if len(got) != 1 {
		t.Errorf("%d updates from a bad cursor, want a full sync", len(got))
	}
}

func TestSyncNotConfigured(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	res, err := r.Sync(context.Background(), "2026-11-24T15:00:00+03:00#7")
	if err != nil || res.NextCursor != "2026-11-24T15:00:00+03:00#7" || res.More || len(res.Contacts) != 0 {
		t.Errorf("Sync without sync config = %+v, %v; want nothing, cursor kept", res, err)
	}
	if n := len(e.fake.Calls()); n != 0 {
		t.Errorf("%d calls", n)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	if err := r.Health(context.Background()); err != nil {
		t.Errorf("Health: %v", err)
	}
	e2 := newEnv(t, bitrix24test.WithScopes("user", "task"))
	r2, _ := e2.start(e2.config(nil))
	if err := r2.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "crm scope") {
		t.Errorf("Health without crm = %v", err)
	}
	e2.fake.FailNext(1, 401)
	if err := r2.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "NO_AUTH_FOUND") {
		t.Errorf("Health with a bad webhook = %v", err)
	}
}

// "Tier" as a list field: the portal reports the option's id, routing
// wants its value. A new option is picked up without waiting for the
// cache to expire.
func TestSyncListFields(t *testing.T) {
	e := newEnv(t)
	ids := e.fake.AddListField("UF_CRM_TIER", "gold", "silver")
	ana := e.fake.AddContact(map[string]any{"NAME": "Ana", "UF_CRM_TIER": ids["gold"]}, "+5511987650001")
	e.clock.Advance(time.Minute)
	r, _ := e.start(e.config(syncCfg))
	got, cur, _ := syncAll(t, r, "")
	if len(got) != 1 || got[0].Attributes["tier"] != "gold" {
		t.Fatalf("updates = %+v, want tier gold", got)
	}

	e.clock.Advance(2 * time.Minute)
	platinum := e.fake.AddListField("UF_CRM_TIER", "platinum")["platinum"]
	if err := e.fake.UpdateContact(ana, map[string]any{"UF_CRM_TIER": platinum}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	got, _, _ = syncAll(t, r, cur)
	if len(got) != 1 || got[0].Attributes["tier"] != "platinum" {
		t.Errorf("updates = %+v, want tier platinum", got)
	}
	var fieldsCalls int
	for _, c := range e.fake.Calls() {
		if c.Method == "crm.contact.fields" {
			fieldsCalls++
		}
	}
	if fieldsCalls != 2 {
		t.Errorf("crm.contact.fields called %d times, want 2 (first sync, new option)", fieldsCalls)
	}
}
