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
	// profiled runs fn with a CPU profile of this process when asked.
	profiled := func(fn func() error) error {
		if cpuProfile == "" {
			return fn()
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return usageErr(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return usageErr(err)
		}
		defer pprof.StopCPUProfile()
		return fn()
	}
	ingestCmd := &cobra.Command{
		Use:   "ingest",
		Short: "Signed webhook POSTs to a whole hub vs. a verify-and-parse-only server, interleaved; p99 at a paced rate; PostgreSQL; soak",
		Long: "Alternate a bare verify-and-parse server and a whole hub (commit before 200, synchronous=full,\n" +
			"routing and delivery to a no-op plugin running) under the same closed-loop load, --rounds times,\n" +
			"each phase after a warm-up, and print the median and range of the ratio; then p99 at --rate.\n" +
			"--postgres adds the same hub on PostgreSQL against a bare pgx batched-insert loop into the same\n" +
			"database (a throw-away server from initdb, or --postgres=URL). --soak holds --rate for --duration (10m) that\n" +
			"long and reports RSS at its start and end. Each goal is printed as met or MISSED.",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opt.Plugin = noop.Name
			if opt.Soak && !c.Flags().Changed("duration") {
				opt.Duration = 10 * time.Minute
			}
			return profiled(func() error {
				if err := bench.Ingest(ctx, opt, g.stdout); err != nil {
					return runtimeErr(err)
				}
				return nil
			})
		},
	}
	ingestCmd.Flags().DurationVar(&opt.Duration, "duration", 5*time.Second, "length of each measured throughput phase")
	ingestCmd.Flags().DurationVar(&opt.Warmup, "warmup", time.Second, "unmeasured load before each phase")
	ingestCmd.Flags().IntVar(&opt.Rounds, "rounds", 3, "baseline/durable pairs, interleaved")
	ingestCmd.Flags().IntVar(&opt.Concurrency, "concurrency", 32, "concurrent clients (connections) in the throughput phases")
	ingestCmd.Flags().IntVar(&opt.PacedRate, "rate", 2000, "requests per second in the latency phase and the soak")
	ingestCmd.Flags().DurationVar(&opt.PacedFor, "paced-for", 5*time.Second, "length of the latency phase")
	ingestCmd.Flags().BoolVar(&opt.Soak, "soak", false, "instead of the throughput phases, hold --rate for --duration (default 10m) and report memory")
	ingestCmd.Flags().StringVar(&opt.Postgres, "postgres", "", "add the PostgreSQL phases: alone, a throw-away server (initdb); =URL, that server (its user may create databases)")
	ingestCmd.Flags().Lookup("postgres").NoOptDefVal = "auto"
	ingestCmd.Flags().StringVar(&opt.Target, "target", "", "load this running hub's webhook URL (loopback only, e.g. http://127.0.0.1:8080/webhooks/whatsapp) instead of one the bench starts")
	ingestCmd.Flags().StringVar(&opt.Secret, "secret", "", "with --target: the hub's whatsapp.app_secret, to sign the webhooks")
	ingestCmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	ingestCmd.Flags().StringVar(&opt.Dir, "dir", "", "directory for the SQLite file (default: a temporary one)")
	var sopt bench.SendOptions
	sendCmd := &cobra.Command{
		Use:   "send",
		Short: "Outbound messages through the whole outbox path against the fake Graph API, vs. the Graph client alone; the rate when limited",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return profiled(func() error {
				if err := bench.Send(ctx, sopt, g.stdout); err != nil {
					return runtimeErr(err)
				}
				return nil
			})
		},
	}
	sendCmd.Flags().IntVar(&sopt.Messages, "messages", 10000, "messages per measured phase")
	sendCmd.Flags().IntVar(&sopt.Rounds, "rounds", 3, "baseline/sender pairs, interleaved")
	sendCmd.Flags().Float64Var(&sopt.Limit, "limit", 80, "messages_per_second of the limited phase")
	sendCmd.Flags().DurationVar(&sopt.LimitedFor, "limited-for", 10*time.Second, "length of the limited phase")
	sendCmd.Flags().StringVar(&sopt.Dir, "dir", "", "directory for the SQLite file (default: a temporary one)")
	sendCmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
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
	cmd.AddCommand(ingestCmd, sendCmd, deliveryCmd)
	return cmd
}
