package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wahub/wahub/plugins/slack/slacktest"
)

func newSandboxCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Play the other side of the sandbox's fakes",
	}
	var target, connector, thread, text string
	reply := &cobra.Command{
		Use:   "slack-reply --text TEXT [--thread TS]",
		Short: "Post a signed Slack agent reply into a conversation's thread, as Slack's Events API would",
		Long: "Find the conversation thread in the sandbox's fake Slack (the newest one, or --thread TS), and\n" +
			"POST a human message in it to /hooks/<connector>, signed with the connector's signing secret,\n" +
			"as Slack does when an agent answers. The hub sends it to the customer on WhatsApp (see\n" +
			"GET /sandbox: the whatsapp fake's sent messages).",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if text == "" {
				return usageErr(errors.New("sandbox slack-reply: --text is required"))
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if !cfg.Sandbox {
				return usageErr(errors.New("config: sandbox: false; slack-reply plays the sandbox's fake Slack"))
			}
			secret := slacktest.DefaultSigningSecret
			if cc, ok := cfg.Connectors[connector]; ok {
				if v, _ := cc.Config.Reveal()["signing_secret"].(string); v != "" {
					secret = v
				}
			}
			base, err := webhookURL(target, cfg.Server.Listen)
			if err != nil {
				return usageErr(err)
			}
			base = strings.TrimSuffix(base, "/webhooks/whatsapp")
			cl := &http.Client{Timeout: 30 * time.Second}
			channel, ts, err := sandboxThread(cl, base, thread)
			if err != nil {
				return runtimeErr(err)
			}
			now := time.Now()
			evTS := strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64)
			body := slacktest.EventCallback("Ev"+strconv.FormatInt(now.UnixNano(), 36), now, slacktest.MessageEvent{
				User: "U0AGENT", Text: text, TS: evTS, ThreadTS: ts, Channel: channel,
			})
			req, err := http.NewRequest(http.MethodPost, base+"/hooks/"+connector, bytes.NewReader(body))
			if err != nil {
				return runtimeErr(err)
			}
			for k, v := range slacktest.SignedEvent(secret, now, body) {
				req.Header[k] = v
			}
			resp, err := cl.Do(req)
			if err != nil {
				return runtimeErr(fmt.Errorf("POST /hooks/%s: %w (is `wahub serve` running?)", connector, err))
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			fmt.Fprintf(g.stdout, "reply in thread %s of %s: %d %s\n", ts, channel, resp.StatusCode, strings.TrimSpace(string(answer)))
			if resp.StatusCode/100 != 2 {
				return runtimeErr(fmt.Errorf("the hub answered %d", resp.StatusCode))
			}
			return nil
		},
	}
	f := reply.Flags()
	f.StringVar(&target, "url", "", "the hub's base URL (default: the configured listen address)")
	f.StringVar(&connector, "connector", "slack", "the Slack connector's name")
	f.StringVar(&thread, "thread", "", "the thread's root ts (default: the newest conversation)")
	f.StringVar(&text, "text", "", "what the agent writes")
	cmd.AddCommand(reply)
	return cmd
}

// sandboxThread finds a conversation thread in the fake Slack's snapshot.
func sandboxThread(cl *http.Client, base, want string) (channel, ts string, err error) {
	resp, err := cl.Get(base + "/sandbox?format=json")
	if err != nil {
		return "", "", fmt.Errorf("GET /sandbox: %w (is `wahub serve` running with sandbox: true?)", err)
	}
	defer resp.Body.Close()
	var snap struct {
		Slack struct {
			Channels map[string][]struct {
				Channel  string `json:"channel"`
				TS       string `json:"ts"`
				ThreadTS string `json:"thread_ts"`
			} `json:"channels"`
		} `json:"slack"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return "", "", fmt.Errorf("GET /sandbox: %w", err)
	}
	for ch, threads := range snap.Slack.Channels {
		for _, t := range threads {
			if want != "" && t.TS == want {
				return ch, t.TS, nil
			}
			if want == "" && t.TS > ts {
				channel, ts = ch, t.TS
			}
		}
	}
	if ts == "" {
		if want != "" {
			return "", "", fmt.Errorf("no thread %s in the fake Slack", want)
		}
		return "", "", errors.New("the fake Slack has no conversation yet: post a customer message first (wahub simulate --now testdata/whatsapp/text.json)")
	}
	return channel, ts, nil
}
