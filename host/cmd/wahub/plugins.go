package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/plugins/registry"
)

func newPluginsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "plugins",
		Short: "List built-in and configured connector plugins with version and capabilities",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPLUGIN\tVERSION\tCAPABILITIES\tSTATUS")
			for _, name := range builtinNames() {
				desc, err := probe(c.Context(), name, config.Connector{Plugin: registry.PluginRef(name)}, false)
				if err != nil {
					fmt.Fprintf(tw, "%s\t(built-in)\t\t\t%v\n", name, err)
					continue
				}
				fmt.Fprintf(tw, "%s\t(built-in)\t%s\t%s\tavailable\n", name, desc.Version, capsString(desc.Capabilities))
			}
			// The configuration is optional here: without one, built-ins
			// are still worth listing.
			cfg, err := g.loadProbeConfig()
			if err == nil {
				for _, name := range keys(cfg.Connectors) {
					cc := cfg.Connectors[name]
					if !cc.Enabled {
						fmt.Fprintf(tw, "%s\t%s\t\t\tdisabled\n", name, cc.Plugin)
						continue
					}
					desc, err := probe(c.Context(), name, cc, false)
					if err != nil {
						fmt.Fprintf(tw, "%s\t%s\t\t\t%v\n", name, cc.Plugin, err)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tconfigured\n", name, cc.Plugin, desc.Version, capsString(desc.Capabilities))
				}
			}
			return tw.Flush()
		},
	}
}
