package main

import (
	"context"
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
	var explain bool
	var at string
	cmd := &cobra.Command{
		Use:   "route --explain [--at RFC3339] FILE|-",
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
			events, err := ingest.Parse(body, time.Now())
			if err != nil {
				return usageErr(fmt.Errorf("%s: %w", args[0], err))
			}
			return explainEvents(c.Context(), g.stdout, cfg, events, when)
		},
	}
	cmd.Flags().BoolVar(&explain, "explain", false, "explain the routing of each event")
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
	for i := range events {
		ev := &events[i]
		var rs store.RouteState
		if st != nil {
			attrs, s, err := st.Lookup(ctx, ev)
			if err != nil {
				return runtimeErr(err)
			}
			rs = s
			if ev.Contact != nil {
				ev.Contact.Attributes = attrs
			}
		}
		d := r.Decide(ev, at, route.State{Consent: rs.Consent, Team: rs.Team, LastActive: rs.LastActive})
		writeExplanation(w, i+1, ev, at, rs, d, r)
	}
	return nil
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
	if rs.Team != "" {
		fmt.Fprintf(w, "  conversation: with team %s, last active %s\n", rs.Team, rs.LastActive.Format(time.RFC3339))
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
}

func describeAction(a route.Action) string {
	switch a.Kind {
	case "reply":
		if a.Reply != nil && a.Reply.Template != nil {
			return "reply with template " + a.Reply.Template.Name
		}
		if a.Reply != nil {
			return fmt.Sprintf("reply %q", a.Reply.Text)
		}
	case "set":
		keys := make([]string, 0, len(a.Set))
		for k := range a.Set {
			keys = append(keys, k+"="+a.Set[k])
		}
		sort.Strings(keys)
		return "set " + strings.Join(keys, " ")
	case "assign":
		return "assign team " + a.Assign
	case "deliver":
		return "deliver to " + strings.Join(a.Deliver, ", ")
	}
	return a.Kind
}
