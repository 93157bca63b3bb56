package hubspot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// syncPageSize is the page the search API is asked for.
const syncPageSize = 100

// searchCap is how far the search API pages: `after` ≥ 10,000 is refused.
const searchCap = 10000

// Sync returns the contacts changed since cursor, one search page per
// call, with the configured properties as contact attributes keyed by the
// contact's phone number (wa_id: E.164 without +).
//
// The cursor is "<lastmodifieddate>" or "<lastmodifieddate>/<after>", e.g.
// "2026-11-24T12:00:00.000Z/200". The search is lastmodifieddate ≥ the
// date, oldest first, so a cursor says "everything before this date is
// done". Why it is built this way:
//
//   - Keyset, not offsets: each page moves the date forward to the newest
//     change on it and starts again from offset 0, so more than 10,000
//     changes (the search API's paging cap) sync fine, and a contact
//     changed while paging (which moves it to the end and shifts the
//     offsets of the others) is not skipped.
//   - Greater-or-equal: contacts changed in the same millisecond as the
//     cursor are fetched again rather than lost; updating a contact twice
//     is harmless.
//   - Search lag: a contact changed at T appears in search only some time
//     later, so the date never moves past now − config.search_lag; changes
//     newer than that are fetched again by the next sync.
//   - When the date cannot move (a page is all the same millisecond, or
//     all too recent), the next page is reached through `after` within the
//     same search, which the "/<after>" part carries.
//   - Sync keeps no state of its own: an error leaves the hub's cursor
//     where it was, and the same page is asked for again.
func (i *instance) Sync(ctx context.Context, cursor string) (sdk.SyncResult, error) {
	c, s := i.c, i.s
	if len(s.syncProps) == 0 {
		// Nothing to copy: keep the cursor as it is.
		return sdk.SyncResult{NextCursor: cursor}, nil
	}
	cur, err := parseCursor(cursor)
	if err != nil {
		c.log.Warn("hubspot: sync cursor not understood; syncing every contact again", "cursor", cursor, "err", err)
		cur = syncCursor{since: time.UnixMilli(0).UTC()}
	}
	props := []string{"phone", "mobilephone", "lastmodifieddate"}
	for _, p := range s.syncProps {
		if !contains(props, p) {
			props = append(props, p)
		}
	}
	req := searchRequest{
		FilterGroups: []filterGroup{{Filters: []filter{{PropertyName: "lastmodifieddate", Operator: "GTE", Value: strconv.FormatInt(cur.since.UnixMilli(), 10)}}}},
		Sorts:        []sortSpec{{PropertyName: "lastmodifieddate", Direction: "ASCENDING"}},
		Properties:   props,
		Limit:        syncPageSize,
		After:        cur.after,
	}
	var resp searchResponse
	if err := c.call(ctx, s, opSyncSearch, http.MethodPost, pathContactSearch, req, &resp); err != nil {
		return sdk.SyncResult{}, errors.New(describe(s, err))
	}

	settledBefore := c.now().Add(-s.searchLag)
	// settled is the newest change on the page that search has surely
	// caught up with: everything before it has been seen.
	settled := cur.since
	var updates []sdk.ContactUpdate
	for i := range resp.Results {
		obj := &resp.Results[i]
		if ts, ok := parseHSTime(obj.prop("lastmodifieddate")); ok && !ts.After(settledBefore) && ts.After(settled) {
			settled = ts
		}
		attrs := make(map[string]string, len(s.syncProps))
		for _, p := range s.syncProps {
			// An unset property is sent as "" so that the hub clears an
			// attribute removed in HubSpot.
			attrs[p] = obj.prop(p)
		}
		seen := map[string]bool{}
		for _, field := range []string{"phone", "mobilephone"} {
			waid, ok := phoneDigits(obj.prop(field))
			if !ok || seen[waid] {
				continue
			}
			seen[waid] = true
			updates = append(updates, sdk.ContactUpdate{WAID: waid, Attributes: attrs})
		}
	}

	res := sdk.SyncResult{Contacts: updates}
	next := resp.next()
	switch {
	case next == "":
		// The last page.
		res.NextCursor = syncCursor{since: settled}.String()
	case settled.After(cur.since):
		res.NextCursor, res.More = syncCursor{since: settled}.String(), true
	case atoi(next) < searchCap:
		res.NextCursor, res.More = syncCursor{since: cur.since, after: next}.String(), true
	case lastTime(resp.Results).After(settledBefore):
		// 10,000 changes too recent to move past: wait for them to
		// settle; the next interval continues.
		res.NextCursor = syncCursor{since: cur.since}.String()
	default:
		// More than 10,000 contacts changed in the same millisecond (a
		// bulk import): the ones past the cap cannot be reached by this
		// search. Step over the millisecond rather than loop forever.
		c.log.Warn("hubspot: more than 10,000 contacts share one lastmodifieddate; some of them are not synced", "lastmodifieddate", cur.since.Format(hsTime))
		res.NextCursor, res.More = syncCursor{since: cur.since.Add(time.Millisecond)}.String(), true
	}
	return res, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

func lastTime(objs []object) time.Time {
	if len(objs) == 0 {
		return time.Time{}
	}
	t, _ := parseHSTime(objs[len(objs)-1].prop("lastmodifieddate"))
	return t
}

type syncCursor struct {
	since time.Time
	after string
}

func (c syncCursor) String() string {
	s := c.since.UTC().Format(hsTime)
	if c.after != "" {
		s += "/" + c.after
	}
	return s
}

func parseCursor(v string) (syncCursor, error) {
	if v == "" {
		return syncCursor{since: time.UnixMilli(0).UTC()}, nil
	}
	date, after, _ := strings.Cut(v, "/")
	t, ok := parseHSTime(date)
	if !ok {
		return syncCursor{}, fmt.Errorf("%q is not a date", date)
	}
	if after != "" {
		if n, err := strconv.Atoi(after); err != nil || n < 0 {
			return syncCursor{}, fmt.Errorf("%q is not a page offset", after)
		}
	}
	return syncCursor{since: t, after: after}, nil
}

// parseHSTime reads a HubSpot datetime: ISO 8601, or epoch milliseconds.
func parseHSTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), true
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC(), true
	}
	return time.Time{}, false
}

// phoneDigits turns a phone number as a HubSpot user typed it into a
// WhatsApp wa_id (E.164 digits). A number without a country code cannot
// be turned into one: anything without "+" or "00" in front must already
// be long enough to include one.
func phoneDigits(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", false
	}
	international := strings.HasPrefix(v, "+")
	var b strings.Builder
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case strings.ContainsRune(" -.()/+", r):
		default:
			// Letters: an extension ("x12") or not a number at all.
			return "", false
		}
	}
	digits := b.String()
	if !international && strings.HasPrefix(digits, "00") {
		digits, international = digits[2:], true
	}
	if !international && len(digits) < 11 {
		return "", false
	}
	if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", false
	}
	return digits, true
}
