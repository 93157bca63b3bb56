package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newCheckCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration and print a summary",
		Long: "Load and validate the configuration: unknown keys, wrong types, dangling references\n" +
			"and missing secrets. Exit 2 with the offending key on any error. Secrets are never printed.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if problems := cfg.ServeProblems(); len(problems) > 0 {
				return usageErr(errors.Join(problems...))
			}
			w := g.stdout
			fmt.Fprintf(w, "configuration %s is valid\n", cfg.Path)
			fmt.Fprintf(w, "  listen:        %s\n", cfg.Server.Listen)
			fmt.Fprintf(w, "  store:         %s\n", cfg.Store.Path)
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
			for _, name := range keys(cfg.Connectors) {
				cc := cfg.Connectors[name]
				state := "enabled"
				if !cc.Enabled {
					state = "disabled"
				}
				fmt.Fprintf(w, "  connector %-12s plugin %s (%s)\n", name, cc.Plugin, state)
			}
			return nil
		},
	}
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
