package hub

import (
	"context"
	"os"
	"time"

	"github.com/wahub/wahub/host/console"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/sdk"
)

// newConsole builds /console over the same store and operations as the
// admin API.
func (h *Hub) newConsole() (*console.Console, error) {
	started := h.clock.Now()
	host, _ := os.Hostname()
	opt := console.Options{
		Media:       h.media,
		AdminToken:  h.cfg.Server.AdminToken.Reveal(),
		ViewerToken: h.cfg.Server.ViewerToken.Reveal(),
		Secure:      h.cfg.Server.TLSCert != "" && h.cfg.Server.TLSKey != "",
		Store:       h.store,
		Ops:         ops{h},
		Explain:     h.explain,
		Refusals:    h.refusals,
		Self: func() console.Node {
			addr, _ := h.addr.Load().(string)
			return console.Node{ID: host, Addr: addr, StartedAt: started}
		},
		StoreKind: "SQLite " + h.store.Path(),
		Logger:    h.log.With("component", "console"),
		Now:       h.clock.Now,
	}
	if h.cfg.Sandbox {
		opt.Sandbox = &consoleSandbox{h: h}
	}
	return console.New(opt)
}

// explain routes a stored event again the way `wahub route --explain`
// does: the configured rules, with what the store knows of the contact now.
func (h *Hub) explain(ctx context.Context, ev sdk.Event) (route.Decision, error) {
	attrs, rs, err := h.store.Lookup(ctx, &ev)
	if err != nil {
		return route.Decision{}, err
	}
	if ev.Contact != nil {
		c := *ev.Contact
		c.Attributes = attrs
		ev.Contact = &c
	}
	return h.router.Decide(&ev, time.Time{}, route.State{Consent: rs.Consent, Team: rs.Team, LastActive: rs.LastActive}), nil
}

func (h *Hub) refusals() []console.Refusal {
	rs := h.sender.Refusals()
	out := make([]console.Refusal, len(rs))
	for i, r := range rs {
		out[i] = console.Refusal{At: r.At, Source: r.Source, To: r.To, Code: r.Code, Message: r.Message}
	}
	return out
}
