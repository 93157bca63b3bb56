package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wahub/wahub/sdk"
)

// settle is how recent a change may be, by the portal's clock, and still
// be joined by another change in the same second that a list has not
// shown yet (a transaction not yet committed). The cursor does not move
// past such changes: they are reported now and read again next time.
const settle = 5 * time.Second

// cursor is where a sync stopped: the DATE_MODIFY (exactly as the portal
// wrote it) and ID of the last contact reported. Its string form is
// "<DATE_MODIFY>#<ID>"; "" is the start.
type cursor struct{ date, id string }

func (c cursor) String() string {
	if c.date == "" {
		return ""
	}
	return c.date + "#" + c.id
}

func parseCursor(s string) (cursor, bool) {
	if s == "" {
		return cursor{}, true
	}
	i := strings.LastIndexByte(s, '#')
	if i <= 0 {
		return cursor{}, false
	}
	c := cursor{date: s[:i], id: s[i+1:]}
	if c.id != "" {
		if _, ok := parseID(json.RawMessage(strconv.Quote(c.id))); !ok {
			return cursor{}, false
		}
	}
	if _, err := time.Parse(time.RFC3339, c.date); err != nil {
		return cursor{}, false
	}
	return c, true
}

// Sync returns contacts changed since cur, one page (50) at a time.
//
// Keyset paging, not `start` offsets: an offset shifts when a contact
// changes while we page, and ties on DATE_MODIFY (imports touch many
// contacts in one second) would be skipped by a plain >DATE_MODIFY. So a
// call first reads the rest of the cursor's second by ID
// (DATE_MODIFY = d and ID > id), then what changed after it
// (DATE_MODIFY > d, ordered by DATE_MODIFY and ID). An error returns no
// cursor: the hub keeps the one it had and calls again later.
func (i *instance) Sync(ctx context.Context, raw string) (sdk.SyncResult, error) {
	c, s := i.c, i.s
	if !s.sync.enabled {
		return sdk.SyncResult{NextCursor: raw}, nil
	}
	cur, ok := parseCursor(raw)
	if !ok {
		// Re-reading everything is safe (updates are idempotent); being
		// stuck on a cursor nobody can fix is not.
		c.log.Warn("sync cursor not understood; syncing from the start", "cursor", raw)
		cur = cursor{}
	}
	if cur.id != "" {
		p, err := c.listPage(ctx, s, obj{{">=DATE_MODIFY", cur.date}, {"<=DATE_MODIFY", cur.date}, {">ID", cur.id}}, obj{{"ID", "ASC"}})
		if err != nil {
			return sdk.SyncResult{}, err
		}
		if len(p.items) > 0 {
			lists, err := c.listOptions(ctx, s, p)
			if err != nil {
				return sdk.SyncResult{}, err
			}
			next := cur
			next.id = p.items[len(p.items)-1].id
			return sdk.SyncResult{Contacts: p.updates(s, lists), NextCursor: next.String(), More: true}, nil
		}
	}
	filter := obj{}
	if cur.date != "" {
		filter = obj{{">DATE_MODIFY", cur.date}}
	}
	p, err := c.listPage(ctx, s, filter, obj{{"DATE_MODIFY", "ASC"}, {"ID", "ASC"}})
	if err != nil {
		return sdk.SyncResult{}, err
	}
	lists, err := c.listOptions(ctx, s, p)
	if err != nil {
		return sdk.SyncResult{}, err
	}
	next, settled := cur, true
	for _, it := range p.items {
		if settled && (p.serverNow.IsZero() || it.modified.IsZero() || !it.modified.After(p.serverNow.Add(-settle))) {
			next = cursor{date: it.date, id: it.id}
			continue
		}
		settled = false
	}
	return sdk.SyncResult{Contacts: p.updates(s, lists), NextCursor: next.String(), More: p.hasNext && settled}, nil
}

// page is one answer of crm.contact.list.
type page struct {
	items     []listItem
	hasNext   bool
	serverNow time.Time // the portal's clock, from the answer's time block
}

type listItem struct {
	id, date string
	modified time.Time
	fields   map[string]json.RawMessage
}

func (c *connector) listPage(ctx context.Context, s *settings, filter, order obj) (page, error) {
	sel := []string{"ID", "NAME", "LAST_NAME", "DATE_MODIFY", "PHONE"}
	for _, a := range s.sync.attrs {
		sel = append(sel, a.field)
	}
	env, err := s.client.call(ctx, "crm.contact.list", obj{{"filter", filter}, {"order", order}, {"select", sel}, {"start", 0}})
	if err != nil {
		return page{}, err
	}
	var p page
	p.serverNow, _ = time.Parse(time.RFC3339, env.Time.DateStart)
	switch t := strings.TrimSpace(string(env.Next)); t {
	case "", "null", "false", "0", `""`:
	default:
		p.hasNext = true
	}
	var rows []map[string]json.RawMessage
	if t := bytes.TrimSpace(env.Result); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &rows); err != nil {
			return page{}, fmt.Errorf("crm.contact.list: unexpected answer from %s: %s", s.portal, snippet(t, true))
		}
	} else if m, err := objectOrEmpty(t); err != nil || len(m) > 0 {
		return page{}, fmt.Errorf("crm.contact.list: unexpected answer from %s: %s", s.portal, snippet(t, true))
	}
	for _, row := range rows {
		id, ok := parseID(row["ID"])
		if !ok {
			return page{}, fmt.Errorf("crm.contact.list: a contact without an ID in the answer from %s", s.portal)
		}
		it := listItem{id: id, date: jsonString(row["DATE_MODIFY"]), fields: row}
		it.modified, _ = time.Parse(time.RFC3339, it.date)
		if it.date == "" {
			return page{}, fmt.Errorf("crm.contact.list: contact %s has no DATE_MODIFY in the answer from %s", id, s.portal)
		}
		p.items = append(p.items, it)
	}
	return p, nil
}

// listTTL is how long the options of list fields are trusted; an id
// not among them refreshes them sooner, at most every listRetry.
const (
	listTTL   = 10 * time.Minute
	listRetry = time.Minute
)

// listCache holds, per list (enumeration) user field, its options' values
// by id: the portal reports such a field as the chosen option's id ("45"),
// and a routing rule wants its value ("gold").
type listCache struct {
	mu      sync.Mutex
	fetched time.Time
	fields  map[string]map[string]string
}

// listOptions returns the options of the synced list fields, fetching
// them with crm.contact.fields when stale or when p holds an unknown id.
func (c *connector) listOptions(ctx context.Context, s *settings, p page) (map[string]map[string]string, error) {
	var uf []string
	for _, a := range s.sync.attrs {
		if strings.HasPrefix(a.field, "UF_") {
			uf = append(uf, a.field)
		}
	}
	if len(uf) == 0 || len(p.items) == 0 {
		return nil, nil
	}
	lc := s.lists
	lc.mu.Lock()
	defer lc.mu.Unlock()
	now := c.clock.Now()
	refresh := lc.fields == nil || now.Sub(lc.fetched) >= listTTL
	if !refresh && now.Sub(lc.fetched) >= listRetry {
	scan:
		for _, it := range p.items {
			for field, opts := range lc.fields {
				for _, id := range strings.Split(valueString(it.fields[field]), ",") {
					if _, ok := opts[id]; id != "" && !ok {
						refresh = true
						break scan
					}
				}
			}
		}
	}
	if !refresh {
		return lc.fields, nil
	}
	env, err := s.client.call(ctx, "crm.contact.fields", obj{})
	if err != nil {
		return nil, err
	}
	all, err := objectOrEmpty(env.Result)
	if err != nil {
		return nil, fmt.Errorf("crm.contact.fields: unexpected answer from %s: %s", s.portal, snippet(env.Result, true))
	}
	fields := map[string]map[string]string{}
	for _, f := range uf {
		var desc struct {
			Type  string `json:"type"`
			Items []struct {
				ID    json.RawMessage `json:"ID"`
				Value string          `json:"VALUE"`
			} `json:"items"`
		}
		if json.Unmarshal(all[f], &desc) != nil || desc.Type != "enumeration" {
			continue
		}
		opts := map[string]string{}
		for _, item := range desc.Items {
			if id, ok := parseID(item.ID); ok {
				opts[id] = item.Value
			}
		}
		fields[f] = opts
	}
	lc.fields, lc.fetched = fields, now
	return fields, nil
}

// updates turns contacts into one update per WhatsApp-able phone number.
// lists maps list fields' option ids to their values.
func (p page) updates(s *settings, lists map[string]map[string]string) []sdk.ContactUpdate {
	var out []sdk.ContactUpdate
	for _, it := range p.items {
		name := strings.TrimSpace(jsonString(it.fields["NAME"]) + " " + jsonString(it.fields["LAST_NAME"]))
		attrs := make(map[string]string, len(s.sync.attrs))
		for _, a := range s.sync.attrs {
			v := valueString(it.fields[a.field])
			if opts, ok := lists[a.field]; ok && v != "" {
				ids := strings.Split(v, ",")
				for i, id := range ids {
					if value, ok := opts[id]; ok {
						ids[i] = value
					}
				}
				v = strings.Join(ids, ",")
			}
			attrs[a.attr] = v
		}
		var phones []struct {
			Value string `json:"VALUE"`
		}
		_ = json.Unmarshal(it.fields["PHONE"], &phones)
		seen := map[string]bool{}
		for _, ph := range phones {
			waid := digits(ph.Value)
			// A WhatsApp id is a full international number (no country
			// code starts with 0); a local number matches no customer.
			if len(waid) < 8 || len(waid) > 15 || waid[0] == '0' || seen[waid] {
				continue
			}
			seen[waid] = true
			a := make(map[string]string, len(attrs))
			for k, v := range attrs {
				a[k] = v
			}
			out = append(out, sdk.ContactUpdate{WAID: waid, Name: name, Attributes: a})
		}
	}
	return out
}

// jsonString reads a string field; anything else is "".
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	return ""
}

// valueString renders a field as an attribute. Empty comes as null, "",
// false, [] or {}, depending on the field and the portal: all are "".
func valueString(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return ""
	}
	switch t[0] {
	case '"':
		return jsonString(t)
	case 'n', 'f':
		return ""
	case 't':
		return "Y"
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(t, &items) != nil {
			return ""
		}
		var parts []string
		for _, item := range items {
			if v := valueString(item); v != "" {
				parts = append(parts, v)
			}
		}
		return strings.Join(parts, ",")
	case '{':
		if m, err := objectOrEmpty(t); err == nil && len(m) == 0 {
			return ""
		}
		var b bytes.Buffer
		if json.Compact(&b, t) == nil {
			return b.String()
		}
		return ""
	}
	return string(t) // a number
}
