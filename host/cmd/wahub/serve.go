package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/hub"
)

func newServeCmd(g *globals) *cobra.Command {
	var listen string
	var strict bool
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR] [--strict]",
		Short: "Run the hub until SIGINT or SIGTERM",
		Long: "Run the hub: the WhatsApp webhook, health and metrics endpoints, and every stage behind them.\n" +
			"On SIGINT or SIGTERM it stops taking requests, finishes those in flight and exits 0.\n" +
			"A connector whose plugin refuses its config does not stop the hub: ingest keeps taking\n" +
			"webhooks, the connector's events wait, and /readyz answers 503 naming it. With --strict the\n" +
			"hub first has every plugin validate its config, as wahub check does, and exits 2 if one refuses.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if listen != "" {
				g.env = append(g.env, "WAHUB_SERVER__LISTEN="+listen)
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if problems := serveProblems(cfg); len(problems) > 0 {
				return usageErr(errors.Join(problems...))
			}
			if strict {
				if err := checkConnectors(c.Context(), g); err != nil {
					return err
				}
			}
			logger := newLogger(cfg, g.stderr)
			if err := hideEnvironment(); err != nil {
				logger.Warn("could not make the hub non-dumpable; plugins running as the same user could read its environment", "err", err)
			}
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
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on, host:port (overrides server.listen)")
	cmd.Flags().BoolVar(&strict, "strict", false, "refuse to start (exit 2) when a connector's plugin refuses its config")
	return cmd
}

// checkConnectors has every enabled connector's plugin validate its
// config, as wahub check does, and joins the refusals.
func checkConnectors(ctx context.Context, g *globals) error {
	cfg, err := g.loadProbeConfig()
	if err != nil {
		return err
	}
	var problems []error
	for _, name := range keys(cfg.Connectors) {
		if cc := cfg.Connectors[name]; cc.Enabled {
			if _, err := probe(ctx, name, cc, true); err != nil {
				problems = append(problems, err)
			}
		}
	}
	if len(problems) > 0 {
		return usageErr(fmt.Errorf("serve --strict: %w", errors.Join(problems...)))
	}
	return nil
}
