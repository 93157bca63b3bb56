package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
)

func newTemplatesCmd(g *globals) *cobra.Command {
	var target, status string
	var refresh, asJSON bool
	cmd := &cobra.Command{
		Use:   "templates [--refresh] [--status APPROVED] [--json]",
		Short: "List the business's message templates and their status (GET /api/v1/templates)",
		Long: "List the template catalogue the hub holds sends against: name, language, category,\n" +
			"status, quality and the parameters each template takes. --refresh fetches it from the\n" +
			"Graph API first (needs whatsapp.business_account_id).",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client(target)
			if err != nil {
				return err
			}
			if refresh {
				var res map[string]int
				if err := cl.call("POST", "/api/v1/templates/refresh", nil, &res); err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "refreshed: %d templates (%d added, %d changed, %d removed)\n",
					res["templates"], res["added"], res["changed"], res["removed"])
			}
			var cat store.Catalogue
			if err := cl.call("GET", "/api/v1/templates?status="+url.QueryEscape(status), nil, &cat); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(cat)
			}
			switch {
			case cat.RefreshedAt != nil:
				fmt.Fprintf(g.stdout, "catalogue fetched %s\n", cat.RefreshedAt.Format("2006-01-02T15:04:05Z07:00"))
			default:
				fmt.Fprintln(g.stdout, "catalogue never fetched (set whatsapp.business_account_id); known from webhooks only")
			}
			if cat.LastError != "" {
				fmt.Fprintf(g.stdout, "last fetch failed: %s\n", cat.LastError)
			}
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "\nNAME\tLANGUAGE\tCATEGORY\tSTATUS\tQUALITY\tPARAMETERS")
			for _, t := range cat.Templates {
				params := "?"
				if p := t.Parameters; p != nil {
					var parts []string
					if p.Header != "" {
						parts = append(parts, "header "+p.Header)
					}
					if len(p.Body) > 0 {
						parts = append(parts, fmt.Sprintf("body %d", len(p.Body)))
					}
					for _, b := range p.Buttons {
						if b.Dynamic {
							parts = append(parts, fmt.Sprintf("button %d %s", b.Index, b.Type))
						}
					}
					params = strings.Join(parts, ", ")
					if params == "" {
						params = "-"
					}
				}
				status := t.Status
				if t.Reason != "" && t.Reason != "NONE" {
					status += " (" + t.Reason + ")"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Language, dash(t.Category), status, dash(t.Quality), params)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "the hub's base URL (default: the configured listen address)")
	cmd.Flags().StringVar(&status, "status", "", "only templates with this status (APPROVED, PAUSED, ...)")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "fetch the catalogue from the Graph API first")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the catalogue as JSON")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
