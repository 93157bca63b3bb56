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
			failed := 0
			for _, file := range files {
				body, err := readInput(file)
				if err != nil {
					return runtimeErr(err)
				}
				if now {
					body = stampNow(body, time.Now())
				}
				status, answer, err := post(client, endpoint, secret, body)
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
	cmd.Flags().BoolVar(&now, "now", false, "rewrite every \"timestamp\" to the current time (the 24-hour window and office hours then apply to now)")
	return cmd
}

var timestampField = regexp.MustCompile(`"timestamp"(\s*):(\s*)"\d+"`)

// stampNow makes a fixture's items happen now, keeping its bytes otherwise
// as they were (it is signed after).
func stampNow(body []byte, now time.Time) []byte {
	return timestampField.ReplaceAll(body, []byte(`"timestamp"$1:$2"`+strconv.FormatInt(now.Unix(), 10)+`"`))
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
