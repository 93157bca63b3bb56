package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/host/ingest"
)

func newSimulateCmd(g *globals) *cobra.Command {
	var target string
	var now bool
	cmd := &cobra.Command{
		Use:   "simulate [--url URL] [--now] FILE...",
		Short: "Sign webhook fixtures with the app secret and POST them to the hub",
		Long: "Sign each file (a WhatsApp webhook body; - reads standard input) with the first configured\n" +
			"whatsapp.app_secret, exactly as Meta would, and POST it to the hub. URL defaults to the\n" +
			"configured listen address; a URL without a path gets /webhooks/whatsapp. Each response is\n" +
			"printed; the exit status is 1 if any request was not answered with 200.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, files []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if len(cfg.WhatsApp.AppSecret) == 0 || cfg.WhatsApp.AppSecret[0].Reveal() == "" {
				return usageErr(errors.New("config: whatsapp.app_secret: not set; simulate signs with it (set WHATSAPP_APP_SECRET)"))
			}
			endpoint, err := webhookURL(target, cfg.Server.Listen)
			if err != nil {
				return usageErr(err)
			}
			secret := []byte(cfg.WhatsApp.AppSecret[0].Reveal())
			client := &http.Client{Timeout: 30 * time.Second}
			bodies := make([][]byte, len(files))
			for i, file := range files {
				if bodies[i], err = readInput(file); err != nil {
					return runtimeErr(err)
				}
			}
			if now {
				bodies = stampNow(bodies, time.Now())
			}
			failed := 0
			for i, file := range files {
				status, answer, err := post(client, endpoint, secret, bodies[i])
				if err != nil {
					return runtimeErr(fmt.Errorf("%s: %w (is `wahub serve` running at %s?)", file, err, endpoint))
				}
				fmt.Fprintf(g.stdout, "%s: %d %s\n", file, status, strings.TrimSpace(answer))
				if status != http.StatusOK {
					failed++
				}
			}
			if failed > 0 {
				return runtimeErr(fmt.Errorf("%d of %d requests were not accepted", failed, len(files)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "hub base URL or full webhook URL (default: http://<server.listen>)")
	cmd.Flags().BoolVar(&now, "now", false, "move every \"timestamp\" to the last seconds before now, in their order (the 24-hour window and office hours then apply to now)")
	return cmd
}

// timestampField is a WhatsApp item's time: a string of Unix seconds in
// messages and statuses, a number in user_preferences.
var timestampField = regexp.MustCompile(`"timestamp"(\s*):(\s*)(?:"(\d+)"|(\d+))`)

// stampNow moves the fixtures' items to the last seconds before now,
// keeping their order: the k-th distinct time of all the files becomes
// now minus the number of later ones. Setting every time to now would
// tie a STOP and the START that answered it, and the hub, which follows
// the times, could not tell which came last. Bytes otherwise stay as they
// were (they are signed after).
func stampNow(bodies [][]byte, now time.Time) [][]byte {
	seen := map[int64]bool{}
	for _, body := range bodies {
		for _, m := range timestampField.FindAllSubmatch(body, -1) {
			seen[stampValue(m)] = true
		}
	}
	times := make([]int64, 0, len(seen))
	for ts := range seen {
		times = append(times, ts)
	}
	slices.Sort(times)
	moved := make(map[int64]string, len(times))
	for i, ts := range times {
		moved[ts] = strconv.FormatInt(now.Unix()-int64(len(times)-1-i), 10)
	}
	out := make([][]byte, len(bodies))
	for i, body := range bodies {
		out[i] = timestampField.ReplaceAllFunc(body, func(match []byte) []byte {
			m := timestampField.FindSubmatch(match)
			v := moved[stampValue(m)]
			if len(m[3]) > 0 {
				v = `"` + v + `"`
			}
			return []byte(`"timestamp"` + string(m[1]) + ":" + string(m[2]) + v)
		})
	}
	return out
}

func stampValue(m [][]byte) int64 {
	digits := m[3]
	if len(digits) == 0 {
		digits = m[4]
	}
	v, _ := strconv.ParseInt(string(digits), 10, 64)
	return v
}

// webhookURL resolves where simulate posts: --url, or the listen address
// (a wildcard host becomes loopback, where the hub can be reached).
func webhookURL(target, listen string) (string, error) {
	if target == "" {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return "", fmt.Errorf("config: server.listen: %q is not host:port", listen)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		target = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url: %q is not an http(s) URL", target)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/webhooks/whatsapp"
	}
	return u.String(), nil
}

func readInput(file string) ([]byte, error) {
	if file == "-" {
		return io.ReadAll(os.Stdin)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read fixture: %w", err)
	}
	return body, nil
}

func post(client *http.Client, endpoint string, secret, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ingest.SignatureHeader, ingest.Sign(secret, body))
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, string(answer), nil
}
