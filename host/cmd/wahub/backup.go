package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
)

func newBackupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the store to FILE, while the hub runs",
		Long: "Copy the SQLite store (store.path) to FILE with SQLite's VACUUM INTO: one consistent\n" +
			"snapshot, taken while `wahub serve` keeps writing. FILE must not exist. Restore by stopping\n" +
			"the hub and putting FILE in place of store.path.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if _, err := os.Stat(cfg.Store.Path); err != nil {
				return usageErr(fmt.Errorf("config: store.path: %s: %w", cfg.Store.Path, err))
			}
			st, err := store.Open(cfg.Store.Path, store.Options{BusyTimeout: cfg.Store.BusyTimeout})
			if err != nil {
				return runtimeErr(err)
			}
			defer st.Close()
			if err := st.Backup(c.Context(), args[0]); err != nil {
				return runtimeErr(err)
			}
			fi, _ := os.Stat(args[0])
			fmt.Fprintf(g.stdout, "backup of %s written to %s (%d bytes)\n", cfg.Store.Path, args[0], fi.Size())
			return nil
		},
	}
}
