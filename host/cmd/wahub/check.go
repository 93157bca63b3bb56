package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/hub"
	"github.com/wahub/wahub/host/outbound"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/supervisor"
	"github.com/wahub/wahub/sdk"
)

func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and print a summary",
		Long: "Load and validate the configuration: unknown keys, wrong types, dangling references\n" +
			"and missing secrets; then start each enabled connector's plugin and have it validate its own\n" +
			"config (without connecting anywhere). Exit 2 with the offending key on any error. Secrets are\n" +
			"never printed.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := g.loadProbeConfig()
			if err != nil {
				return err
			}
			if problems := serveProblems(cfg); len(problems) > 0 {
				return usageErr(errors.Join(problems...))
			}
			// The triggers' messages and the plugins' configs are checked
			// first, so that the first line tells the result.
			var problems []error
			var triggerLines bytes.Buffer
			tp, err := checkTriggerMessages(c.Context(), cfg, &triggerLines)
			if err != nil {
				return runtimeErr(err)
			}
			problems = append(problems, tp...)
			nTriggers := len(problems)
			var conns []string
			for _, name := range keys(cfg.Connectors) {
				cc := cfg.Connectors[name]
				if !cc.Enabled {
					conns = append(conns, fmt.Sprintf("  connector %-12s plugin %s (disabled)\n", name, cc.Plugin))
					continue
				}
				desc, err := probe(c.Context(), name, cc, true)
				if err != nil {
					problems = append(problems, err)
					conns = append(conns, fmt.Sprintf("  connector %-12s plugin %s: FAILED (below)\n", name, cc.Plugin))
					continue
				}
				conns = append(conns, fmt.Sprintf("  connector %-12s plugin %s %s %s: config ok\n", name, cc.Plugin, desc.Version, capsString(desc.Capabilities)))
			}
			w := g.stdout
			if len(problems) == 0 {
				fmt.Fprintf(w, "configuration %s is valid\n", cfg.Path)
			} else {
				fmt.Fprintf(w, "configuration %s is NOT valid: %s\n", cfg.Path, verdict(nTriggers, len(problems)-nTriggers))
			}
			fmt.Fprintf(w, "  listen:        %s\n", cfg.Server.Listen)
			fmt.Fprintf(w, "  store:         %s\n", cfg.Store.Path)
			fmt.Fprintf(w, "  media:         %s\n", mediaSummary(cfg))
			fmt.Fprintf(w, "  app secrets:   %d configured\n", len(cfg.WhatsApp.AppSecret))
			fmt.Fprintf(w, "  admin API:     %s\n", enabled(cfg.Server.AdminToken.Reveal() != ""))
			fmt.Fprintf(w, "  sandbox:       %s\n", enabled(cfg.Sandbox))
			fmt.Fprintf(w, "  schedules:     %s\n", names(keys(cfg.Schedules)))
			fmt.Fprintf(w, "  teams:         %s\n", names(keys(cfg.Teams)))
			routes := make([]string, len(cfg.Routes))
			for i, r := range cfg.Routes {
				routes[i] = r.Name + "→" + r.Team
			}
			fmt.Fprintf(w, "  routes:        %s\n", names(routes))
			triggers := make([]string, len(cfg.Triggers))
			for i, t := range cfg.Triggers {
				triggers[i] = t.Name
			}
			fmt.Fprintf(w, "  triggers:      %s\n", names(triggers))
			fmt.Fprintf(w, "  subscriptions: %d\n", len(cfg.Subscriptions))
			w.Write(triggerLines.Bytes())
			for _, line := range conns {
				fmt.Fprint(w, line)
			}
			if len(problems) > 0 {
				return usageErr(errors.Join(problems...))
			}
			return nil
		},
	}
}

// probe starts a connector's plugin, has it validate its configuration
// (when checkConfig) and stops it; errors name the connector's key.
func probe(ctx context.Context, name string, cc config.Connector, checkConfig bool) (sdk.Description, error) {
	raw, err := json.Marshal(cc.Config.Reveal())
	if err != nil {
		return sdk.Description{}, fmt.Errorf("config: connectors.%s.config: %w", name, err)
	}
	spec := supervisor.Spec{Name: name, Plugin: cc.Plugin, SHA256: cc.SHA256, Config: raw}
	if cc.SHA256 == config.DevSHA256 {
		spec.SHA256, spec.Unchecked = "", true
	}
	desc, err := supervisor.Probe(ctx, spec, checkConfig, supervisor.Options{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		StartTimeout: 30 * time.Second,
	})
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "permanent: ")
		if !strings.HasPrefix(msg, "connectors.") {
			msg = "connectors." + name + ": " + msg
		}
		return desc, fmt.Errorf("config: %s", msg)
	}
	return desc, nil
}

// verdict sums up check's problems for its first line.
func verdict(triggers, connectors int) string {
	var parts []string
	if triggers > 0 {
		parts = append(parts, fmt.Sprintf("%d trigger message problem(s)", triggers))
	}
	if connectors > 0 {
		parts = append(parts, fmt.Sprintf("%d connector(s) refused their config", connectors))
	}
	return strings.Join(parts, ", ")
}

func capsString(caps []string) string {
	if len(caps) == 0 {
		return "(deliver)"
	}
	return "(deliver, " + strings.Join(caps, ", ") + ")"
}

func enabled(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func names(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ", ")
}

// checkTriggerMessages holds the triggers' replies against WhatsApp's
// limits and, when the store has one, the template catalogue. A catalogue
// that has never been fetched is a warning, not an error: the templates
// may well exist.
func checkTriggerMessages(ctx context.Context, cfg *config.Config, w io.Writer) ([]error, error) {
	var src outbound.Templates
	known := false
	if _, err := os.Stat(cfg.Store.Path); err == nil {
		st, err := store.Open(cfg.Store.Path, store.Options{BusyTimeout: cfg.Store.BusyTimeout})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", cfg.Store.Path, err)
		}
		defer st.Close()
		src = st
	}
	problems, k, err := hub.TriggerProblems(ctx, cfg, src)
	if err != nil {
		return nil, err
	}
	known = k && src != nil
	uses := false
	for _, t := range cfg.Triggers {
		if t.Reply != nil && t.Reply.Template != nil {
			uses = true
		}
	}
	switch {
	case !uses:
	case known:
		fmt.Fprintf(w, "  templates:     the triggers' templates match the catalogue\n")
	default:
		fmt.Fprintf(w, "  warning: the template catalogue is not known yet (no complete fetch in %s; set whatsapp.business_account_id and run wahub serve): the triggers' templates were checked only against what template webhooks said\n", cfg.Store.Path)
	}
	var out []error
	for _, p := range problems {
		out = append(out, fmt.Errorf("config: %s", p))
	}
	return out, nil
}

// mediaSummary says where files go and how large they may be.
func mediaSummary(cfg *config.Config) string {
	m := cfg.Media
	where := "local directory " + cfg.MediaPath()
	switch m.Store {
	case "postgres":
		where = "the store's PostgreSQL database"
	case "s3":
		where = "s3 bucket " + m.S3.Bucket + " at " + m.S3.Endpoint
	}
	return fmt.Sprintf("%s, files up to %s, %s", where, m.MaxSize, map[bool]string{true: fmt.Sprintf("kept %d days", m.RetentionDays), false: "kept until deleted"}[m.RetentionDays > 0])
}
