package hub

import (
	"context"
	"errors"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/delivery"
	"github.com/wahub/wahub/host/supervisor"
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
		out = append(out, cs)
	}
	for _, name := range sortedKeys(o.h.cfg.Connectors) {
		if !running[name] {
			out = append(out, admin.ConnectorStatus{Name: name, Plugin: o.h.cfg.Connectors[name].Plugin, State: "disabled"})
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
