package main

import (
	"context"
	"errors"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/hub"
)

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the hub until SIGINT or SIGTERM",
		Long: "Run the hub: the WhatsApp webhook, health and metrics endpoints, and every stage behind them.\n" +
			"On SIGINT or SIGTERM it stops taking requests, finishes those in flight and exits 0.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if problems := serveProblems(cfg); len(problems) > 0 {
				return usageErr(errors.Join(problems...))
			}
			logger := newLogger(cfg, g.stderr)
			if !cfg.Sandbox && cfg.WhatsApp.AccessToken.Reveal() == "" {
				logger.Warn("whatsapp.access_token is empty: the hub receives webhooks but every outbound message (replies, triggers, agents' answers) will fail; export WHATSAPP_ACCESS_TOKEN")
			}
			h, err := hub.New(cfg, hub.Options{Logger: logger})
			if err != nil {
				return runtimeErr(err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			runErr := h.Run(ctx, nil)
			closeErr := h.Close()
			if runErr != nil {
				return runtimeErr(runErr)
			}
			if closeErr != nil {
				return runtimeErr(closeErr)
			}
			logger.Info("wahub stopped")
			return nil
		},
	}
}
