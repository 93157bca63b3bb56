package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

// fakeStore answers from memory; a nil map entry is "not found".
type fakeStore struct {
	events   map[string]sdk.Event
	contacts map[string]store.Contact
	failing  error // returned by every call when set
}

func (f *fakeStore) Events(ctx context.Context, flt store.EventFilter) ([]sdk.Event, error) {
	var out []sdk.Event
	for _, ev := range f.events {
		if flt.Type == "" || string(ev.Type) == flt.Type {
			out = append(out, ev)
		}
	}
	return out, f.failing
}

func (f *fakeStore) Event(ctx context.Context, id string) (sdk.Event, error) {
	if f.failing != nil {
		return sdk.Event{}, f.failing
	}
	ev, ok := f.events[id]
	if !ok {
		return sdk.Event{}, store.ErrNotFound
	}
	return ev, nil
}

func (f *fakeStore) EventDeliveries(ctx context.Context, seq int64) ([]store.DeliveryRecord, error) {
	return []store.DeliveryRecord{{Connector: "crm", State: store.StateDelivered}}, nil
}

func (f *fakeStore) Contact(ctx context.Context, id string) (store.Contact, error) {
	c, ok := f.contacts[id]
	if !ok {
		return store.Contact{}, store.ErrNotFound
	}
	return c, nil
}

func (f *fakeStore) DeadLetters(ctx context.Context, _ store.DeadLetterFilter) ([]store.DeadLetter, error) {
	return nil, f.failing
}

func (f *fakeStore) Outbound(ctx context.Context, id string) (store.OutboundRecord, error) {
	return store.OutboundRecord{}, store.ErrNotFound
}

func (f *fakeStore) OutboundByKey(ctx context.Context, source, key string) (store.OutboundRecord, error) {
	return store.OutboundRecord{}, store.ErrNotFound
}

func (f *fakeStore) Requeue(ctx context.Context, id string) error { return store.ErrNotFound }

func (f *fakeStore) TemplateCatalogue(ctx context.Context) (store.Catalogue, error) {
	return store.Catalogue{}, f.failing
}

func (f *fakeStore) Stats(ctx context.Context, since time.Time) (store.Stats, error) {
	return store.Stats{}, f.failing
}

// fakeOps records what the API asked of the hub.
type fakeOps struct {
	paused   []string
	replayed []string
	patched  map[string]ContactPatch
	refuse   *sdk.RefusedError
}

func (o *fakeOps) Cluster(context.Context) ([]store.Node, error) {
	return []store.Node{{ID: "local", Addr: "127.0.0.1:8080"}}, nil
}

func (o *fakeOps) Connectors(ctx context.Context) ([]ConnectorStatus, error) {
	return []ConnectorStatus{{Name: "crm", State: "running"}}, nil
}

func (o *fakeOps) Pause(ctx context.Context, name string) error {
	if name != "crm" {
		return ErrUnknownConnector
	}
	o.paused = append(o.paused, name)
	return nil
}

func (o *fakeOps) Resume(ctx context.Context, name string) error { return o.Pause(ctx, name) }

func (o *fakeOps) Replay(ctx context.Context, connector string, ids []string) (int, error) {
	if connector != "crm" {
		return 0, ErrUnknownConnector
	}
	o.replayed = append(o.replayed, ids...)
	return len(ids), nil
}

func (o *fakeOps) UpdateContact(ctx context.Context, id string, p ContactPatch) error {
	if p.Consent != "" && p.Consent != "granted" && p.Consent != "revoked" {
		return &InvalidError{Field: "consent", Message: "want granted or revoked"}
	}
	if o.patched == nil {
		o.patched = map[string]ContactPatch{}
	}
	o.patched[id] = p
	return nil
}

func (o *fakeOps) RefreshTemplates(ctx context.Context) (templates.Result, error) {
	return templates.Result{}, ErrNoBusinessAccount
}

func (o *fakeOps) SendMessage(ctx context.Context, msg sdk.OutboundMessage) (store.OutboundRecord, bool, error) {
	if o.refuse != nil {
		return store.OutboundRecord{}, false, o.refuse
	}
	return store.OutboundRecord{ID: "out_1", State: "queued"}, msg.IdempotencyKey != "seen", nil
}

const token = "t0ken"

func TestAdminAPI(t *testing.T) {
	st := &fakeStore{
		events:   map[string]sdk.Event{"evt_1": {ID: "evt_1", Seq: 1, Type: sdk.TypeMessageReceived}},
		contacts: map[string]store.Contact{"5511": {Key: "5511"}},
	}
	cases := []struct {
		name, method, path, body, token string
		ops                             *fakeOps
		status                          int
		has                             string // in the body
	}{
		{name: "no token", method: "GET", path: "/api/v1/events", status: 401, has: "unauthorized"},
		{name: "wrong token", method: "GET", path: "/api/v1/events", token: "nope", status: 401},
		{name: "unknown call", method: "GET", path: "/api/v1/nothing", token: token, status: 404, has: "no such admin API call: GET /api/v1/nothing"},
		{name: "events", method: "GET", path: "/api/v1/events?type=message.received", token: token, status: 200, has: `"id":"evt_1"`},
		{name: "bad limit", method: "GET", path: "/api/v1/events?limit=0", token: token, status: 400, has: "limit: want 1 to 1000"},
		{name: "bad after", method: "GET", path: "/api/v1/events?after=-3", token: token, status: 400, has: "after:"},
		{name: "event with deliveries", method: "GET", path: "/api/v1/events/evt_1", token: token, status: 200, has: `"deliveries":[{`},
		{name: "no such event", method: "GET", path: "/api/v1/events/evt_9", token: token, status: 404, has: "no event evt_9"},
		{name: "connectors", method: "GET", path: "/api/v1/connectors", token: token, status: 200, has: `"name":"crm"`},
		{name: "pause", method: "POST", path: "/api/v1/connectors/crm/pause", token: token, status: 200, has: `"paused":true`},
		{name: "pause unknown", method: "POST", path: "/api/v1/connectors/erp/pause", token: token, status: 404, has: "no enabled connector erp"},
		{name: "replay", method: "POST", path: "/api/v1/deadletters/replay", body: `{"connector":"crm","ids":["evt_1"]}`, token: token, status: 200, has: `"replayed":1`},
		{name: "replay without connector", method: "POST", path: "/api/v1/deadletters/replay", body: `{"ids":["evt_1"]}`, token: token, status: 400},
		{name: "replay unknown key", method: "POST", path: "/api/v1/deadletters/replay", body: `{"connector":"crm","all":true}`, token: token, status: 400},
		{name: "patch contact", method: "PATCH", path: "/api/v1/contacts/5511", body: `{"consent":"revoked"}`, token: token, status: 200, has: `"id":"5511"`},
		{name: "patch invalid consent", method: "PATCH", path: "/api/v1/contacts/5511", body: `{"consent":"maybe"}`, token: token, status: 422, has: "consent"},
		{name: "send", method: "POST", path: "/api/v1/messages", body: `{"to":"5511","text":"oi","idempotency_key":"k"}`, token: token, status: 202, has: `"duplicate":false`},
		{name: "send again", method: "POST", path: "/api/v1/messages", body: `{"to":"5511","text":"oi","idempotency_key":"seen"}`, token: token, status: 202, has: `"duplicate":true`},
		{name: "send refused", method: "POST", path: "/api/v1/messages", body: `{"to":"5511","text":"oi"}`, token: token,
			ops: &fakeOps{refuse: &sdk.RefusedError{Code: "opted_out", Message: "the customer opted out"}}, status: 422, has: "opted_out"},
		{name: "send bad body", method: "POST", path: "/api/v1/messages", body: `{"to":1}`, token: token, status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ops := tc.ops
			if ops == nil {
				ops = &fakeOps{}
			}
			api := New(Options{Token: token, Store: st, Ops: ops})
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", rec.Body)
			}
			if tc.has != "" && !strings.Contains(rec.Body.String(), tc.has) {
				t.Errorf("body %s does not contain %s", rec.Body, tc.has)
			}
		})
	}
}

// Without a token configured the API is off, whatever the request says.
func TestAdminAPIOffWithoutToken(t *testing.T) {
	api := New(Options{Store: &fakeStore{}, Ops: &fakeOps{}})
	req := httptest.NewRequest("GET", "/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin_disabled") {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
}

// A store failure is a 500 that does not leak the error to the caller.
func TestAdminAPIStoreFailure(t *testing.T) {
	api := New(Options{Token: token, Store: &fakeStore{failing: errors.New("disk I/O error at /var/lib/wahub/wahub.db")}, Ops: &fakeOps{}})
	req := httptest.NewRequest("GET", "/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d: %s", rec.Code, rec.Body)
	}
}
