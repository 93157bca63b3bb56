package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/store"
)

// apiClient calls the admin API of the hub the configuration describes.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func (g *globals) client(target string) (*apiClient, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	u, err := webhookURL(target, cfg.Server.Listen)
	if err != nil {
		return nil, usageErr(err)
	}
	base := strings.TrimSuffix(u, "/webhooks/whatsapp")
	token := cfg.Server.AdminToken.Reveal()
	if token == "" {
		return nil, usageErr(errors.New("config: server.admin_token: not set; the admin API needs it (set WAHUB_ADMIN_TOKEN)"))
	}
	return &apiClient{base: base, token: token, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// call sends a request and decodes a 2xx JSON answer into out; any other
// answer becomes an error with the API's message.
func (c *apiClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return runtimeErr(fmt.Errorf("%s %s: %w (is `wahub serve` running?)", method, path, err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return runtimeErr(fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message))
		}
		return runtimeErr(fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw))))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return runtimeErr(fmt.Errorf("%s %s: %w", method, path, err))
		}
	}
	return nil
}

func newDeadLettersCmd(g *globals) *cobra.Command {
	var target, connector string
	var afterFlag int64
	var limitFlag int
	cmd := &cobra.Command{
		Use:   "deadletters",
		Short: "List or replay events whose delivery gave up",
	}
	cmd.PersistentFlags().StringVar(&target, "url", "", "hub base URL (default: http://<server.listen>)")
	list := &cobra.Command{
		Use:   "list [--connector NAME] [--limit N] [--after CURSOR]",
		Short: "List dead letters with their last error",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := g.client(target)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CONNECTOR\tEVENT\tTYPE\tATTEMPTS\tLAST ERROR")
			// Page by page: a store may hold any number of dead letters.
			after, left := afterFlag, limitFlag
			for {
				q := url.Values{}
				if connector != "" {
					q.Set("connector", connector)
				}
				page := 500
				if limitFlag > 0 {
					page = min(page, left)
				}
				q.Set("limit", strconv.Itoa(page))
				if after > 0 {
					q.Set("after", strconv.FormatInt(after, 10))
				}
				var out struct {
					DeadLetters []store.DeadLetter `json:"deadletters"`
					NextAfter   int64              `json:"next_after"`
				}
				if err := cl.call("GET", "/api/v1/deadletters?"+q.Encode(), nil, &out); err != nil {
					return err
				}
				for _, d := range out.DeadLetters {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", d.Connector, d.EventID, d.Type, d.Attempts, oneLineText(d.LastError))
				}
				left -= len(out.DeadLetters)
				if out.NextAfter == 0 || (limitFlag > 0 && left <= 0) {
					if limitFlag > 0 && out.NextAfter != 0 {
						fmt.Fprintf(g.stderr, "more dead letters follow: --after %d\n", out.NextAfter)
					}
					break
				}
				after = out.NextAfter
			}
			return tw.Flush()
		},
	}
	list.Flags().Int64Var(&afterFlag, "after", 0, "start after this cursor (the next_after of a previous page)")
	list.Flags().IntVar(&limitFlag, "limit", 0, "list at most this many (default: all, fetched page by page)")
	list.Flags().StringVar(&connector, "connector", "", "only this connector")
	replay := &cobra.Command{
		Use:   "replay --connector NAME [EVENT_ID...]",
		Short: "Deliver dead letters again (all of the connector's when no ids are given)",
		RunE: func(c *cobra.Command, ids []string) error {
			if connector == "" {
				return usageErr(errors.New("--connector: required"))
			}
			cl, err := g.client(target)
			if err != nil {
				return err
			}
			var out struct {
				Replayed int `json:"replayed"`
			}
			if err := cl.call("POST", "/api/v1/deadletters/replay", map[string]any{"connector": connector, "ids": ids}, &out); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "replayed %d dead letters of %s\n", out.Replayed, connector)
			return nil
		},
	}
	replay.Flags().StringVar(&connector, "connector", "", "the connector whose dead letters to replay")
	cmd.AddCommand(list, replay)
	return cmd
}

// oneLineText keeps a recorded error on its table row.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
