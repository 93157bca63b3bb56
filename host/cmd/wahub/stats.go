package main

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
)

func newStatsCmd(g *globals) *cobra.Command {
	var target, since string
	cmd := &cobra.Command{
		Use:   "stats [--since 24h|RFC3339]",
		Short: "Print inbound, outbound, per-connector and first-response figures (GET /api/v1/stats)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client(target)
			if err != nil {
				return err
			}
			var st struct {
				store.Stats
				FirstResponse map[string]string `json:"median_first_response"`
			}
			if err := cl.call("GET", "/api/v1/stats?since="+url.QueryEscape(since), nil, &st); err != nil {
				return err
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "since %s\n\nINBOUND\tTYPE\tCOUNT\n", st.Since.Format("2006-01-02T15:04:05Z07:00"))
			for _, k := range sortedKeys(st.Inbound.ByType) {
				fmt.Fprintf(w, "\t%s\t%d\n", k, st.Inbound.ByType[k])
			}
			fmt.Fprintf(w, "\nBY TEAM\tTEAM\tMESSAGES\tMEDIAN FIRST RESPONSE\n")
			for _, k := range sortedKeys(st.Inbound.ByTeam) {
				fr := st.FirstResponse[k]
				if fr == "" {
					fr = "-"
				}
				fmt.Fprintf(w, "\t%s\t%d\t%s\n", k, st.Inbound.ByTeam[k], fr)
			}
			o := st.Outbound
			fmt.Fprintf(w, "\nOUTBOUND\tSTATE\tCOUNT\n")
			for _, k := range sortedKeys(o.ByState) {
				fmt.Fprintf(w, "\t%s\t%d\n", k, o.ByState[k])
			}
			fmt.Fprintf(w, "\trates\tdelivered %.1f%%  read %.1f%%  failed %.1f%%\n", 100*o.DeliveredRate, 100*o.ReadRate, 100*o.FailedRate)
			for _, k := range sortedKeys(o.ByErrorCode) {
				fmt.Fprintf(w, "\tfailed %s\t%d\n", k, o.ByErrorCode[k])
			}
			window := store.RateWindow
			for _, c := range st.Connectors {
				window = time.Duration(c.PerMinuteWindow)
				break
			}
			fmt.Fprintf(w, "\nCONNECTOR\tDELIVERED\tPER MIN (LAST %s)\tPENDING\tRETRYING\tDEAD\tFAILED ATTEMPTS\n", shortDuration(window))
			for _, k := range sortedKeys(st.Connectors) {
				c := st.Connectors[k]
				fmt.Fprintf(w, "%s\t%d\t%.1f\t%d\t%d\t%d\t%d\n", k, c.DeliveredSince, c.PerMinute, c.Pending, c.Retrying, c.Dead, c.Errors)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "the hub's base URL (default: the configured listen address)")
	cmd.Flags().StringVar(&since, "since", "24h", "period: a duration back from now, or an RFC 3339 time")
	return cmd
}

// shortDuration writes 5m0s as 5m and 1h0m0s as 1h.
func shortDuration(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
