package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/bench"
	"github.com/wahub/wahub/plugins/noop"
)

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hub's hot paths against same-run baselines",
		Long: "Run a benchmark in this process against temporary state and print each figure with its\n" +
			"baseline measured in the same run, and the ratio. Needs no configuration.",
	}
	var opt bench.IngestOptions
	var cpuProfile string
	ingestCmd := &cobra.Command{
		Use:   "ingest",
		Short: "Signed webhook POSTs: durable ingest vs. a verify-and-parse-only handler, and p99 at a paced rate",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return usageErr(err)
				}
				defer f.Close()
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
			if _, err := bench.Ingest(ctx, opt, g.stdout); err != nil {
				return runtimeErr(err)
			}
			return nil
		},
	}
	ingestCmd.Flags().DurationVar(&opt.Duration, "duration", 5*time.Second, "length of each throughput phase")
	ingestCmd.Flags().IntVar(&opt.Concurrency, "concurrency", 64, "concurrent clients in the throughput phases")
	ingestCmd.Flags().IntVar(&opt.PacedRate, "rate", 2000, "requests per second in the latency phase")
	ingestCmd.Flags().DurationVar(&opt.PacedFor, "paced-for", 5*time.Second, "length of the latency phase")
	ingestCmd.Flags().StringVar(&opt.Synchronous, "synchronous", "full", "store synchronous mode: full or normal")
	ingestCmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	ingestCmd.Flags().StringVar(&opt.Dir, "dir", "", "directory for the SQLite file (default: a temporary one)")
	var dopt bench.DeliveryOptions
	deliveryCmd := &cobra.Command{
		Use:   "delivery",
		Short: "Events through a no-op plugin: in process vs out of process, the whole pipeline, latency, memory",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			dopt.Connector, dopt.Plugin = noop.New, noop.Name
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return usageErr(err)
				}
				defer f.Close()
				pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
			if err := bench.Delivery(ctx, dopt, g.stdout); err != nil {
				return runtimeErr(err)
			}
			return nil
		},
	}
	deliveryCmd.Flags().IntVar(&dopt.Events, "events", 50000, "events to deliver in the throughput phases")
	deliveryCmd.Flags().IntVar(&dopt.BatchSize, "batch", 100, "events per batch")
	deliveryCmd.Flags().StringVar(&dopt.Dir, "dir", "", "directory for the SQLite files (default: a temporary one)")
	deliveryCmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	cmd.AddCommand(ingestCmd, deliveryCmd)
	return cmd
}
