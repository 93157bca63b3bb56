package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

func newRouteCmd(g *globals) *cobra.Command {
	var explain, now bool
	var at string
	cmd := &cobra.Command{
		Use:   "route --explain [--at RFC3339] [--now] FILE|-",
		Short: "Show where the events of a webhook body would go, and why",
		Long: "Read a WhatsApp webhook body (a file, or - for standard input), and print the events it\n" +
			"yields and, for each, every rule tried and why it did or did not match, the team (after\n" +
			"conversation affinity and after-hours handover), the connectors and the triggers that\n" +
			"would fire. Contact attributes, consent and conversation teams come from the store when\n" +
			"it exists. Nothing is changed. Schedules are evaluated at --at, else at each event's time.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !explain {
				return usageErr(errors.New("route: only --explain is supported: wahub route --explain [--at TIME] FILE"))
			}
			var when time.Time
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return usageErr(fmt.Errorf("--at %q: want RFC 3339, e.g. 2026-11-24T18:30:00-03:00", at))
				}
				when = t
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			body, err := readBody(args[0], g.stdin)
			if err != nil {
				return usageErr(err)
			}
			if now {
				body = stampNow([][]byte{body}, time.Now())[0]
			}
			events, err := ingest.Parse(body, time.Now())
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", args[0], err))
			}
			return explainEvents(c.Context(), g.stdout, cfg, events, when)
		},
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "explain the routing of each event")
	cmd.Flags().BoolVar(&now, "now", false, "rewrite every \"timestamp\" to the current time, as simulate --now posts it")
	cmd.Flags().StringVar(&at, "at", "", "evaluate schedules at this time (RFC 3339) instead of each event's own")
	return cmd
}

func readBody(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

func explainEvents(ctx context.Context, w io.Writer, cfg *config.Config, events []sdk.Event, at time.Time) error {
	r, err := route.New(cfg)
	if err != nil {
		return usageErr(err)
	}
	// The store is read only if it exists: explaining must not create one.
	var st *store.Store
	if _, err := os.Stat(cfg.Store.Path); err == nil {
		if st, err = store.Open(cfg.Store.Path, store.Options{BusyTimeout: cfg.Store.BusyTimeout}); err != nil {
			return runtimeErr(err)
		}
		defer st.Close()
	} else {
		fmt.Fprintf(w, "(no store at %s: contacts have no attributes, consent or team yet)\n", cfg.Store.Path)
	}
	if len(events) == 0 {
		fmt.Fprintln(w, "the body yields no events")
		return nil
	}
	// What earlier events of the body change for later ones, as the
	// store's Dispatch carries it within one batch: a first message of a
	// new customer gives the conversation a team that the second keeps.
	convs := map[string]store.RouteState{}
	consent := map[string]sdk.Consent{}
	attrs := map[string]map[string]string{}
	for i := range events {
		ev := &events[i]
		var rs store.RouteState
		var stored map[string]string
		if st != nil {
			a, s, err := st.Lookup(ctx, ev)
			if err != nil {
				return runtimeErr(err)
			}
			stored, rs = a, s
		} else if ev.Contact != nil && ev.Contact.Key() != "" && ev.Business != nil && ev.Business.PhoneNumberID != "" {
			ev.ConversationID = store.ConversationID(ev.Business.PhoneNumberID, ev.Contact.Key())
		}
		who := ev.Contact.Key()
		if a, ok := attrs[who]; ok && who != "" {
			stored = a
		}
		if c, ok := consent[who]; ok && who != "" {
			rs.Consent = c
		}
		if c, ok := convs[ev.ConversationID]; ok && ev.ConversationID != "" {
			rs.Team, rs.LastActive = c.Team, c.LastActive
		}
		if ev.Contact != nil {
			ev.Contact.Attributes = stored
		}
		d := r.Decide(ev, at, route.State{Consent: rs.Consent, Team: rs.Team, LastActive: rs.LastActive})
		writeExplanation(w, i+1, ev, at, rs, d, r)

		if who == "" {
			continue
		}
		if state, _ := r.ConsentChange(ev); state != "" {
			consent[who] = state
		}
		for _, a := range d.Actions {
			if a.Kind != route.ActionSet {
				continue
			}
			merged := map[string]string{}
			for k, v := range stored {
				merged[k] = v
			}
			for k, v := range a.Set {
				if v == "" {
					delete(merged, k)
				} else {
					merged[k] = v
				}
			}
			attrs[who], stored = merged, merged
		}
		if ev.ConversationID != "" && store.IsActivity(ev.Type) {
			team := d.Team
			if team == "" {
				team = rs.Team
			}
			last := ev.OccurredAt
			if rs.LastActive.After(last) {
				last = rs.LastActive
			}
			convs[ev.ConversationID] = store.RouteState{Team: team, LastActive: last}
		}
	}
	return nil
}

// storedRoute is the route the hub stores with the event for decision d
// (host/hub's decide): nil when nothing applies.
func storedRoute(d route.Decision) *sdk.Route {
	if d.Rule == "" && d.Team == "" && len(d.Connectors) == 0 && len(d.Triggers) == 0 {
		return nil
	}
	return &sdk.Route{Rule: d.Rule, Team: d.Team, Connectors: d.Connectors, Triggers: d.Triggers}
}

func writeExplanation(w io.Writer, n int, ev *sdk.Event, at time.Time, rs store.RouteState, d route.Decision, r *route.Router) {
	fmt.Fprintf(w, "\nevent %d: %s %s\n", n, ev.Type, ev.ID)
	if c := ev.Contact; c != nil {
		who := c.Key()
		if c.Name != "" {
			who += " (" + c.Name + ")"
		}
		fmt.Fprintf(w, "  from:      %s\n", who)
		if len(c.Attributes) > 0 {
			keys := make([]string, 0, len(c.Attributes))
			for k := range c.Attributes {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = k + "=" + c.Attributes[k]
			}
			fmt.Fprintf(w, "  contact:   %s\n", strings.Join(parts, " "))
		}
	}
	if m := ev.Message; m != nil {
		switch {
		case m.Button != nil:
			fmt.Fprintf(w, "  button:    %s %q\n", m.Button.ID, m.Button.Title)
		case m.Text != "":
			fmt.Fprintf(w, "  text:      %q\n", m.Text)
		}
	}
	when := at
	what := "(--at)"
	if when.IsZero() {
		when, what = ev.OccurredAt, "(the event's time)"
	}
	fmt.Fprintf(w, "  time:      %s %s\n", when.Format(time.RFC3339), what)
	consent := rs.Consent
	if consent == "" {
		consent = "unknown"
	}
	fmt.Fprintf(w, "  consent:   %s\n", consent)
	switch {
	case ev.ConversationID == "":
		fmt.Fprintf(w, "  conversation: none (the event names no customer or no business number)\n")
	case rs.Team != "":
		fmt.Fprintf(w, "  conversation: %s, with team %s, last active %s\n", ev.ConversationID, rs.Team, rs.LastActive.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "  conversation: %s, with no team yet\n", ev.ConversationID)
	}
	for _, s := range d.Trace {
		mark := "✗"
		if s.Matched {
			mark = "✓"
		}
		label := s.Kind
		if s.Rule != "" {
			label += " " + s.Rule
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, label, s.Reason)
	}
	rule := d.Rule
	if rule == "" {
		rule = "(none)"
	}
	team := d.Team
	if team == "" {
		team = "(none)"
	}
	conns := "(none)"
	if len(d.Connectors) > 0 {
		conns = strings.Join(d.Connectors, ", ")
	}
	fmt.Fprintf(w, "  → rule %s, team %s, connectors %s\n", rule, team, conns)
	if len(d.Triggers) > 0 {
		var acts []string
		for _, a := range d.Actions {
			acts = append(acts, a.Trigger+": "+describeAction(a))
		}
		fmt.Fprintf(w, "  → triggers %s (%s)\n", strings.Join(d.Triggers, ", "), strings.Join(acts, "; "))
	}
	if state, source := r.ConsentChange(ev); state != "" && state != rs.Consent {
		fmt.Fprintf(w, "  → consent becomes %s (%s)\n", state, source)
	}
	// The route exactly as the hub stores it with the event (GET
	// /api/v1/events/{id} shows it), for scripts and for comparing.
	stored := "null"
	if sr := storedRoute(d); sr != nil {
		b, _ := json.Marshal(sr)
		stored = string(b)
	}
	fmt.Fprintf(w, "  → stored route: %s\n", stored)
}

func describeAction(a route.Action) string {
	switch a.Kind {
	case route.ActionReply:
		if a.Reply != nil && a.Reply.Template != nil {
			return "reply with template " + a.Reply.Template.Name
		}
		if a.Reply != nil {
			return fmt.Sprintf("reply %q", a.Reply.Text)
		}
	case route.ActionSet:
		keys := make([]string, 0, len(a.Set))
		for k := range a.Set {
			keys = append(keys, k+"="+a.Set[k])
		}
		sort.Strings(keys)
		return "set " + strings.Join(keys, " ")
	case route.ActionAssign:
		return "assign team " + a.Assign
	case route.ActionDeliver:
		return "deliver to " + strings.Join(a.Deliver, ", ")
	}
	return string(a.Kind)
}
