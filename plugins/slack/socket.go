package slack

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// Socket Mode: for hubs Slack cannot reach, the connector opens a
// WebSocket to Slack (apps.connections.open with the app-level token) and
// receives the same Events API payloads over it. Each is handled as a
// signed POST /hooks/<name> would be, and acknowledged once handled; an
// event that could not be handled (the hub was busy) is left
// unacknowledged, and Slack sends it again.

const (
	socketRetryMin = time.Second
	socketRetryMax = 5 * time.Minute
)

// startSocket connects in the background until the function it returns
// is called.
func (c *connector) startSocket(s *settings) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	api := slackapi.New(s.token,
		slackapi.OptionAPIURL(s.apiURL),
		slackapi.OptionAppLevelToken(s.appToken),
		slackapi.OptionHTTPClient(&http.Client{Timeout: s.timeout}),
	)
	client := socketmode.New(api, socketmode.OptionLog(slogOutput{c.log}))
	wg.Go(func() { c.readSocket(ctx, s, client) })
	wg.Go(func() {
		wait := socketRetryMin
		for {
			err := client.RunContext(ctx)
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("slack socket mode: disconnected; reconnecting", "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, socketRetryMax)
		}
	})
	return func() { cancel(); wg.Wait() }
}

// readSocket handles what arrives over the socket.
func (c *connector) readSocket(ctx context.Context, s *settings, client *socketmode.Client) {
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case evt = <-client.Events:
		}
		switch evt.Type {
		case socketmode.EventTypeConnected:
			c.log.Info("slack socket mode: connected")
		case socketmode.EventTypeInvalidAuth:
			c.log.Error("slack socket mode: Slack refused config.app_token; set the app-level token (xapp-…) with the connections:write scope from Basic Information → App-Level Tokens")
		case socketmode.EventTypeConnectionError:
			c.log.Warn("slack socket mode: cannot connect", "err", evt.Data)
		case socketmode.EventTypeEventsAPI:
			var env envelope
			if evt.Request == nil || json.Unmarshal(evt.Request.Payload, &env) != nil {
				continue
			}
			resp := c.handleEvent(ctx, s, &env, strconv.Itoa(evt.Request.RetryAttempt))
			if resp.Status == http.StatusOK {
				if err := client.AckCtx(ctx, evt.Request.EnvelopeID, nil); err != nil {
					c.log.Warn("slack socket mode: could not acknowledge an event; Slack will send it again", "err", err)
				}
			}
		case socketmode.EventTypeInteractive, socketmode.EventTypeSlashCommand:
			// Not ours to answer, but unacknowledged Slack would retry.
			if evt.Request != nil {
				_ = client.AckCtx(ctx, evt.Request.EnvelopeID, nil)
			}
		}
	}
}

// slogOutput routes socketmode's debug log lines to the plugin's log.
type slogOutput struct{ log *slog.Logger }

func (l slogOutput) Output(_ int, s string) error {
	l.log.Debug("slack socket mode: " + strings.TrimSpace(s))
	return nil
}
