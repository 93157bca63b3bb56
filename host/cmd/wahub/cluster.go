package main

import (
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
)

func newClusterCmd(g *globals) *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "List the hubs sharing the store and the leases each holds (GET /api/v1/cluster)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client(target)
			if err != nil {
				return err
			}
			var out struct {
				Nodes []store.Node `json:"nodes"`
			}
			if err := cl.call("GET", "/api/v1/cluster", nil, &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "NODE\tADDR\tSTARTED\tLAST SEEN\tLEASES\n")
			for _, n := range out.Nodes {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s ago\t%d\n", n.ID, n.Addr, n.StartedAt.Format(time.RFC3339),
					time.Since(n.LastSeen).Round(time.Second), n.Leases)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "any hub's base URL (default: the configured listen address)")
	return cmd
}

func newStoreCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Operate on the store itself"}
	var to string
	migrate := &cobra.Command{
		Use:   "migrate --to postgres://…",
		Short: "Copy the SQLite store (store.path) into an empty PostgreSQL database",
		Long: "Copy everything the SQLite store holds (events, contacts, consent, affinity, cursors,\n" +
			"deliveries, dead letters, the outbox, KV) into an empty PostgreSQL database, in one\n" +
			"transaction, refusing a database that holds any data. Stop the hub first; then point\n" +
			"every hub at the database (store.driver: postgres, store.url) and start them.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if to == "" {
				return usageErr(fmt.Errorf("store migrate: --to is required: the PostgreSQL database's URL (postgres://user:pass@host:5432/db)"))
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.Store.Path); err != nil {
				return usageErr(fmt.Errorf("config: store.path: %s: %w", cfg.Store.Path, err))
			}
			src, err := store.Open(cfg.Store.Path, store.Options{BusyTimeout: cfg.Store.BusyTimeout})
			if err != nil {
				return runtimeErr(err)
			}
			defer src.Close()
			dst, err := store.OpenPostgres(to, store.Options{}, store.PostgresOptions{})
			if err != nil {
				return runtimeErr(err)
			}
			defer dst.Close()
			stats, err := src.CopyTo(c.Context(), dst)
			if err != nil {
				return runtimeErr(err)
			}
			names := make([]string, 0, len(stats))
			for k := range stats {
				names = append(names, k)
			}
			sort.Strings(names)
			fmt.Fprintf(g.stdout, "copied %s into %s:\n", cfg.Store.Path, dst.Path())
			for _, k := range names {
				fmt.Fprintf(g.stdout, "  %-22s %d\n", k, stats[k])
			}
			fmt.Fprintln(g.stdout, "next: set store.driver: postgres and store.url in connectors.yaml, then start the hubs")
			return nil
		},
	}
	migrate.Flags().StringVar(&to, "to", "", "the empty PostgreSQL database to copy into (postgres://…)")
	cmd.AddCommand(migrate)
	return cmd
}
