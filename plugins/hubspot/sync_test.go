package hubspot_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
)

var syncConfig = map[string]any{"sync": map[string]any{"properties": []string{"tier", "hubspot_owner_id"}, "interval": "5m"}}

func syncer(e *env, extra map[string]any) sdk.Syncer {
	cfg := map[string]any{}
	for k, v := range syncConfig {
		cfg[k] = v
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return e.connector(cfg).(sdk.Syncer)
}

func syncOnce(t *testing.T, s sdk.Syncer, cursor string) sdk.SyncResult {
	t.Helper()
	res, err := s.Sync(context.Background(), cursor)
	if err != nil {
		t.Fatalf("Sync(%q): %v", cursor, err)
	}
	return res
}

// syncAll calls Sync while it asks for more, as the hub does, and returns
// the last cursor, the updates by wa_id and the number of calls.
func syncAll(t *testing.T, s sdk.Syncer, cursor string) (string, map[string]sdk.ContactUpdate, int) {
	t.Helper()
	got := map[string]sdk.ContactUpdate{}
	calls := 0
	for {
		res := syncOnce(t, s, cursor)
		calls++
		for _, u := range res.Contacts {
			got[u.WAID] = u
		}
		if res.NextCursor == "" {
			t.Fatal("empty NextCursor")
		}
		cursor = res.NextCursor
		if !res.More {
			return cursor, got, calls
		}
		if calls > 1000 {
			t.Fatal("Sync asks for more for ever")
		}
	}
}

func TestSyncAttributes(t *testing.T) {
	e := newEnv(t)
	e.fake.AddContact(map[string]string{"phone": "+5511987650001", "firstname": "Ana", "tier": "gold", "hubspot_owner_id": "77"}, t0.Add(-3*time.Hour))
	e.fake.AddContact(map[string]string{"mobilephone": "+55 21 99876-0002", "phone": "0055 (31) 99777-0003", "tier": "silver"}, t0.Add(-2*time.Hour))
	e.fake.AddContact(map[string]string{"phone": "(11) 3333-4444", "tier": "bronze"}, t0.Add(-90*time.Minute)) // no country code
	e.fake.AddContact(map[string]string{"email": "x@example.com", "tier": "gold"}, t0.Add(-time.Hour))         // no phone
	s := syncer(e, nil)

	res := syncOnce(t, s, "")
	if res.More {
		t.Error("More on the only page")
	}
	if res.NextCursor != "2026-11-24T11:00:00.000Z" {
		t.Errorf("NextCursor %q, want the newest lastmodifieddate", res.NextCursor)
	}
	want := map[string]map[string]string{
		"5511987650001": {"tier": "gold", "hubspot_owner_id": "77"},
		"5521998760002": {"tier": "silver", "hubspot_owner_id": ""},
		"5531997770003": {"tier": "silver", "hubspot_owner_id": ""},
	}
	if len(res.Contacts) != len(want) {
		t.Fatalf("%d updates %+v, want %d", len(res.Contacts), res.Contacts, len(want))
	}
	for _, u := range res.Contacts {
		w, ok := want[u.WAID]
		if !ok {
			t.Errorf("unexpected update %+v", u)
			continue
		}
		if fmt.Sprint(u.Attributes) != fmt.Sprint(w) {
			t.Errorf("%s: attributes %v, want %v", u.WAID, u.Attributes, w)
		}
	}
	// What the connector asked for.
	if n := e.fake.Calls(http.MethodPost, hubspottest.PathContactSearch); n != 1 {
		t.Errorf("%d searches, want 1", n)
	}
}

// A changed contact comes with the next sync; the cursor then resumes
// from where it was, in a new process too (no full re-sync).
func TestSyncIncremental(t *testing.T) {
	e := newEnv(t)
	e.fake.AddContact(map[string]string{"phone": "+5531997770003", "tier": "silver"}, t0.Add(-4*time.Hour))
	id := e.fake.AddContact(map[string]string{"phone": "+5511987650001", "tier": "silver"}, t0.Add(-3*time.Hour))
	e.fake.AddContact(map[string]string{"phone": "+5521998760002", "tier": "silver"}, t0.Add(-2*time.Hour))
	cursor, got, _ := syncAll(t, syncer(e, nil), "")
	if len(got) != 3 {
		t.Fatalf("first sync: %d contacts, want 3", len(got))
	}

	e.clk.Advance(5 * time.Minute)
	if err := e.fake.SetContactProperties(id, map[string]string{"tier": "gold"}, e.clk.Now().Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A new process, started from the stored cursor.
	cursor, got, _ = syncAll(t, syncer(e, nil), cursor)
	if got["5511987650001"].Attributes["tier"] != "gold" {
		t.Errorf("tier after the change: %+v", got)
	}
	if _, again := got["5531997770003"]; again {
		t.Error("an unchanged contact older than the cursor came again: a full re-sync")
	}
	// The contact changed at the cursor's very millisecond comes again
	// (≥, so that one changed in the same millisecond is not lost).
	if len(got) != 2 {
		t.Errorf("second sync: %d contacts, want Ana and the one at the cursor", len(got))
	}
	if cursor != "2026-11-24T12:03:00.000Z" {
		t.Errorf("cursor %q, want the change's time", cursor)
	}
}

// HubSpot's search shows a change only after a delay: the cursor never
// moves past now − search_lag, so a change that search did not show yet
// is not skipped.
func TestSyncSearchLag(t *testing.T) {
	e := newEnv(t, hubspottest.WithSearchLag(30*time.Second))
	e.fake.AddContact(map[string]string{"phone": "+5521998760002", "tier": "silver"}, t0.Add(-time.Hour))
	id := e.fake.AddContact(map[string]string{"phone": "+5511987650001", "tier": "silver"}, t0.Add(-time.Hour))
	s := syncer(e, map[string]any{"search_lag": "60s"})
	cursor, _, _ := syncAll(t, s, "")

	// Bruno's change is older than Ana's but is indexed later.
	e.clk.Advance(10 * time.Minute)
	e.fake.SetContactProperties(id, map[string]string{"tier": "gold"}, e.clk.Now())
	e.clk.Advance(31 * time.Second)
	cursor, got, _ := syncAll(t, s, cursor)
	if got["5511987650001"].Attributes["tier"] != "gold" {
		t.Fatalf("Ana's change not seen: %+v", got)
	}
	if cursor != "2026-11-24T11:00:00.000Z" {
		t.Errorf("cursor %q moved past now − search_lag", cursor)
	}
	e.clk.Advance(2 * time.Minute)
	cursor, got, _ = syncAll(t, s, cursor)
	if got["5511987650001"].Attributes["tier"] != "gold" {
		t.Errorf("the change within the lag window was not fetched again")
	}
	if cursor != "2026-11-24T12:10:00.000Z" {
		t.Errorf("cursor %q, want Ana's change once it is older than search_lag", cursor)
	}
}

func TestSyncPaging(t *testing.T) {
	cases := []struct {
		name      string
		n         int
		sameTime  bool
		wantCalls int
	}{
		// Keyset: each page restarts from the newest change on the last.
		{"distinct times", 250, false, 3},
		// One millisecond for all: pages through with after instead.
		{"equal times", 150, true, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			for i := range tc.n {
				at := t0.Add(-time.Hour).Add(time.Duration(i) * time.Second)
				if tc.sameTime {
					at = t0.Add(-time.Hour)
				}
				e.fake.AddContact(map[string]string{"phone": fmt.Sprintf("+55119%08d", i), "tier": "gold"}, at)
			}
			cursor, got, calls := syncAll(t, syncer(e, nil), "")
			if len(got) != tc.n {
				t.Errorf("%d contacts, want %d", len(got), tc.n)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			last := t0.Add(-time.Hour)
			if !tc.sameTime {
				last = last.Add(time.Duration(tc.n-1) * time.Second)
			}
			if want := last.Format("2006-01-02T15:04:05.000Z"); cursor != want {
				t.Errorf("cursor %q, want %q", cursor, want)
			}
		})
	}
}

// A failed page leaves the cursor where it was: the hub keeps the old one
// and calls again, and nothing is skipped.
func TestSyncFailedPageKeepsCursor(t *testing.T) {
	e := newEnv(t)
	for i := range 150 {
		e.fake.AddContact(map[string]string{"phone": fmt.Sprintf("+55119%08d", i), "tier": "gold"}, t0.Add(-time.Hour).Add(time.Duration(i)*time.Second))
	}
	s := syncer(e, nil)
	first := syncOnce(t, s, "")
	if !first.More || len(first.Contacts) != 100 {
		t.Fatalf("first page: %d contacts, More %v", len(first.Contacts), first.More)
	}
	e.fake.FailNext(1, http.StatusBadGateway)
	if _, err := s.Sync(context.Background(), first.NextCursor); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("failed page: error %v, want the 502", err)
	}
	// The hub stored nothing from the failed call: same cursor again.
	cursor, got, _ := syncAll(t, s, first.NextCursor)
	for _, u := range first.Contacts {
		got[u.WAID] = u
	}
	if len(got) != 150 {
		t.Errorf("%d contacts in all, want 150", len(got))
	}
	if cursor != t0.Add(-time.Hour).Add(149*time.Second).Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("cursor %q", cursor)
	}
}

// Past 10,000 results the search API refuses to page. Keyset paging never
// goes near it, except for more than 10,000 changes in one millisecond.
func TestSyncSearchCap(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,050 contacts")
	}
	e := newEnv(t)
	const n = hubspottest.SearchCap + 50
	for i := range n {
		e.fake.AddContact(map[string]string{"phone": fmt.Sprintf("+55119%08d", i)}, t0.Add(-time.Hour))
	}
	e.fake.AddContact(map[string]string{"phone": "+5521998760002", "tier": "gold"}, t0.Add(-time.Minute))
	cursor, got, _ := syncAll(t, syncer(e, nil), "")
	if len(got) < hubspottest.SearchCap {
		t.Errorf("%d contacts synced, want at least %d", len(got), hubspottest.SearchCap)
	}
	if got["5521998760002"].Attributes["tier"] != "gold" {
		t.Error("the change after the bulk import was not synced")
	}
	if cursor != t0.Add(-time.Minute).Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("cursor %q", cursor)
	}
	for _, r := range e.fake.Requests() {
		if r.Status != http.StatusOK {
			t.Fatalf("request answered %d: the connector paged past the cap", r.Status)
		}
	}
}

func TestSyncErrors(t *testing.T) {
	e := newEnv(t)
	_, err := syncer(e, map[string]any{"token": "pat-na1-wrong"}).Sync(context.Background(), "")
	if err == nil {
		t.Fatal("no error with a wrong token")
	}
	containsAll(t, "error", err.Error(), "401", "connectors.hubspot.config.token")

	e.fake.Script(hubspottest.Fault{Status: 429, Policy: hubspottest.PolicySearch})
	_, err = syncer(e, nil).Sync(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "search limit") {
		t.Errorf("429: %v", err)
	}

	// A cursor from nowhere restarts from the beginning rather than
	// stopping sync for good.
	e.fake.AddContact(map[string]string{"phone": "+5511987650001", "tier": "gold"}, t0.Add(-time.Hour))
	if res := syncOnce(t, syncer(e, nil), "garbage"); len(res.Contacts) != 1 {
		t.Errorf("bad cursor: %d contacts, want a full sync", len(res.Contacts))
	}
}

func TestSyncNotConfigured(t *testing.T) {
	e := newEnv(t)
	res := syncOnce(t, e.connector(nil).(sdk.Syncer), "2026-11-24T11:00:00.000Z")
	if res.NextCursor != "2026-11-24T11:00:00.000Z" || res.More || len(res.Contacts) != 0 {
		t.Errorf("without sync config: %+v, want the cursor back and nothing else", res)
	}
	if len(e.fake.Requests()) != 0 {
		t.Error("requests without sync config")
	}
}
