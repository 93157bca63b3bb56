package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/delivery"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/outbound"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/supervisor"
	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

// ops carries out the admin API's operations on the running hub.
type ops struct{ h *Hub }

func (o ops) Connectors(ctx context.Context) ([]admin.ConnectorStatus, error) {
	counts, err := o.h.store.ConnectorCounts(ctx)
	if err != nil {
		return nil, err
	}
	running := map[string]bool{}
	var out []admin.ConnectorStatus
	for _, st := range o.h.sup.Statuses() {
		running[st.Name] = true
		cs := admin.ConnectorStatus{Name: st.Name, Plugin: st.Plugin, State: st.State, PID: st.PID, Restarts: st.Restarts,
			Version: st.Version, Capabilities: st.Capabilities, LastError: st.LastError, Breaker: o.h.engine.Breaker(st.Name)}
		if c := counts[st.Name]; c != nil {
			cs.Delivered, cs.Skipped, cs.Pending, cs.Retrying, cs.Dead = c.Delivered, c.Skipped, c.Pending, c.Retrying, c.Dead
			cs.Lag, cs.Cursor, cs.OldestAt = c.Pending, c.Cursor, c.OldestPending
		}
		if cs.Paused, err = o.h.store.Paused(ctx, st.Name); err != nil {
			return nil, err
		}
		if st.SyncInterval > 0 {
			ss, err := o.h.store.SyncCursor(ctx, st.Name)
			if err != nil {
				return nil, err
			}
			cs.Sync = &ss
		}
		out = append(out, cs)
	}
	for _, name := range sortedKeys(o.h.cfg.Connectors) {
		if !running[name] {
			out = append(out, admin.ConnectorStatus{Name: name, Plugin: o.h.cfg.Connectors[name].Plugin.String(), State: "disabled"})
		}
	}
	return out, nil
}

func (o ops) Pause(ctx context.Context, name string) error {
	return mapUnknown(o.h.engine.Pause(ctx, name))
}
func (o ops) Resume(ctx context.Context, name string) error {
	return mapUnknown(o.h.engine.Resume(ctx, name))
}

func (o ops) Replay(ctx context.Context, connector string, ids []string) (int, error) {
	if _, ok := o.h.cfg.Connectors[connector]; !ok {
		return 0, admin.ErrUnknownConnector
	}
	n, err := o.h.store.Replay(ctx, connector, ids)
	if err == nil && n > 0 {
		o.h.engine.Wake(connector)
	}
	return n, err
}

func mapUnknown(err error) error {
	if errors.Is(err, delivery.ErrUnknownConnector) {
		return admin.ErrUnknownConnector
	}
	return err
}

// PluginsRunning reports whether every enabled connector's plugin is up.
func (h *Hub) PluginsRunning() bool {
	sts := h.sup.Statuses()
	for _, st := range sts {
		if st.State != supervisor.StateRunning {
			return false
		}
	}
	return len(sts) == len(h.specs)
}

// PluginPIDs lists the running plugin processes.
func (h *Hub) PluginPIDs() []int {
	var pids []int
	for _, st := range h.sup.Statuses() {
		if st.PID != 0 {
			pids = append(pids, st.PID)
		}
	}
	return pids
}

func (o ops) UpdateContact(ctx context.Context, id string, p admin.ContactPatch) error {
	c, err := o.h.store.Contact(ctx, id)
	if err != nil {
		return err
	}
	// Check everything before changing anything.
	var team *string
	if len(p.Team) > 0 {
		var t *string
		if err := json.Unmarshal(p.Team, &t); err != nil {
			return &admin.InvalidError{Field: "team", Message: "want a team name, or null to close the conversation"}
		}
		if t != nil {
			if _, ok := o.h.cfg.Teams[*t]; !ok {
				return &admin.InvalidError{Field: "team", Message: fmt.Sprintf("unknown team %q (teams: %s)", *t, strings.Join(sortedKeys(o.h.cfg.Teams), ", "))}
			}
		} else {
			t = new(string)
		}
		team = t
	}
	if p.Consent != "" && p.Consent != sdk.ConsentGranted && p.Consent != sdk.ConsentRevoked {
		return &admin.InvalidError{Field: "consent", Message: fmt.Sprintf("%q: want granted or revoked", p.Consent)}
	}
	if len(p.Attributes) > 0 {
		u := sdk.ContactUpdate{WAID: c.WAID, UserID: c.UserID, Attributes: map[string]string{}}
		for k, v := range p.Attributes {
			if k == "" {
				return &admin.InvalidError{Field: "attributes", Message: "an attribute needs a name"}
			}
			u.Attributes[k] = ""
			if v != nil {
				u.Attributes[k] = *v
			}
		}
		if err := o.h.store.SetContactAttributes(ctx, u); err != nil {
			return err
		}
	}
	if p.Consent != "" {
		at := o.h.clock.Now()
		announce := func(ct *sdk.Contact) *sdk.Event {
			typ, value := sdk.TypeOptinGranted, "resume"
			if p.Consent == sdk.ConsentRevoked {
				typ, value = sdk.TypeOptinRevoked, "stop"
			}
			return &sdk.Event{
				ID:         ingest.EventID(fmt.Sprintf("consent-api:%s:%s:%d", c.Key, p.Consent, at.UnixNano())),
				Type:       typ,
				OccurredAt: at, ReceivedAt: at,
				Business:   o.lastBusiness(ctx, c),
				Contact:    ct,
				Preference: &sdk.Preference{Category: "marketing_messages", Value: value, Source: "api"},
			}
		}
		if _, err := o.h.store.SetConsent(ctx, c.Key, p.Consent, "api", announce); err != nil {
			return err
		}
	}
	if team != nil {
		if _, err := o.h.store.SetTeam(ctx, c.Key, *team); err != nil {
			return err
		}
	}
	return nil
}

// lastBusiness is the business number the contact last wrote to, so that
// an announcement made through the API belongs to its conversation.
func (o ops) lastBusiness(ctx context.Context, c store.Contact) *sdk.Business {
	evs, err := o.h.store.Events(ctx, store.EventFilter{Contact: c.Key, Tail: true, Limit: 1})
	if err != nil || len(evs) == 0 {
		return nil
	}
	return evs[0].Business
}

func (o ops) SendMessage(ctx context.Context, msg sdk.OutboundMessage) (store.OutboundRecord, bool, error) {
	rec, created, err := o.h.sender.Submit(ctx, "api", msg)
	var inv *outbound.InvalidError
	if errors.As(err, &inv) {
		return rec, false, &admin.InvalidError{Field: "message", Message: inv.Msg}
	}
	return rec, created, err
}

func (o ops) RefreshTemplates(ctx context.Context) (templates.Result, error) {
	if o.h.cfg.WhatsApp.BusinessAccountID == "" {
		return templates.Result{}, admin.ErrNoBusinessAccount
	}
	return o.h.templates.Refresh(ctx)
}

// Cluster lists the hubs seen within the lease timeout; on SQLite, this
// hub alone.
func (o ops) Cluster(ctx context.Context) ([]store.Node, error) {
	h := o.h
	if h.cluster == nil {
		now := h.clock.Now().UTC()
		addr, _ := h.addr.Load().(string)
		return []store.Node{{ID: "local", Addr: addr, StartedAt: h.started.UTC(), LastSeen: now}}, nil
	}
	return h.store.Nodes(ctx, h.clock.Now().Add(-h.cfg.Store.LeaseTimeout))
}
