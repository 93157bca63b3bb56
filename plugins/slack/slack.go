// Package slack is the built-in `slack` connector: a Slack thread per
// WhatsApp conversation, and agents answer customers by replying in it.
//
// Configuration (connectors.<name>.config):
//
//	token: xoxb-...              # required; the app's bot token (scopes chat:write, reactions:write, files:write, files:read)
//	signing_secret: ...          # required (unless socket_mode); verifies POST /hooks/<name>
//	channel: C0SUPPORT           # the default channel (an ID; the bot must be a member)
//	channels:                    # optional; team → channel, for events routed to that team
//	  billing: C0BILLING
//	api_url: https://slack.com/api/   # default; the fake's root in tests and the sandbox
//	show_name: true              # show the customer's WhatsApp profile name (default true)
//	show_number: full            # full (+5511987650001, default), last4 (•••0001) or none
//	statuses: reactions          # reactions (default) or off: see "Statuses" below
//	alerts: false                # true: post failed statuses not shown in a thread, and dead letters, as messages of their own
//	timeout: 10s                 # one Slack API call (default 10s)
//	socket_mode: false           # true: receive Slack's events over a WebSocket instead of /hooks
//	app_token: xapp-...          # with socket_mode; an app-level token with connections:write
//
// channel may be left out when channels names every team routed to the
// connector. In the Slack app, subscribe the Events API (Request URL
// https://<hub>/hooks/<name>) to message.channels (and message.groups for
// private channels) and invite the bot to each channel; add reaction_added and
// reaction_removed (scope reactions:read) for agents' reactions to reach
// WhatsApp. A hub Slack cannot
// reach uses Socket Mode instead: turn it on in the app, create the
// app-level token, and set socket_mode and app_token; signing_secret is
// then optional (without it /hooks/<name> is off).
//
// # Customers → Slack
//
// message.received and button.clicked go to the channel of the event's
// route.team (the default channel when the team has none). The first
// message of a conversation in a channel posts a root message: the
// customer's name and number, the team and the rule that routed it, and
// the message itself; later messages of that conversation are replies in
// its thread. Locations, contact cards, reactions, button clicks, orders
// and unsupported messages are rendered with Block Kit, with a plain-text
// fallback.
//
// A customer's file (image, voice note or audio, video, document,
// sticker) is uploaded into the thread from the hub's media store
// (Host.OpenMedia, streamed): files.getUploadURLExternal, the bytes to
// its upload_url, then files.completeUploadExternal with channel_id and
// thread_ts, whose initial_comment says who sent what ("sent a voice
// note") with the caption. Slack shows images inline and plays audio.
// As the first message of a conversation, the root says what it is and
// the file follows in its thread. A file the hub could not get (the
// event's media is unavailable, or OpenMedia says so) is posted as the
// message with "The image could not be retrieved: <reason>", and the
// event is delivered. A redelivered event shares nothing twice: the
// upload's progress is kept (file:<event id>), and after a crash between
// the upload and its completion files.info tells whether the share
// happened. Scope files:write (files.info also needs files:read).
// contact.changed and optin.* events are noted in the conversation's
// thread when it has one. Messages the hub sent for someone else (a
// trigger's reply, the admin API) appear in the thread too, marked with
// who sent them.
//
// # Slack → customers
//
// A person's reply in a conversation thread (an Events API message with a
// user, without bot_id, with no subtype or thread_broadcast/file_share) is
// sent to the customer through the hub, with Slack's event_id as the
// idempotency key: Slack's redeliveries (X-Slack-Retry-Num) never send
// twice; an error of the hub is answered 503, so that Slack retries.
// Requests must carry a valid X-Slack-Signature (v0) whose timestamp is
// within 5 minutes, or they are answered 401. A reply that starts with
// "note:" (any case) stays in Slack. When the hub refuses a
// reply (opted out, 24-hour window closed, blocked country) the reason is
// posted in the thread.
//
// An agent's files (a message with files[], subtype file_share) go to
// the customer as WhatsApp media: each is downloaded from its
// url_private_download with the bot token (files.info first when Slack
// sent a stub, file_access: check_file_info), stored with Host.PutMedia
// and sent with Host.SendMessage (type from its MIME type; the text as
// the first file's caption where WhatsApp shows one — image, video,
// document — else sent first on its own; a document keeps its file
// name), with the idempotency key <event_id>:<file id>. Moving files
// takes longer than Slack waits for an answer, so the message is first
// recorded (job:<event id>) and handled in the background; a job a
// crash interrupted resumes when the connector next starts. A file the
// hub or WhatsApp refuses (too large, a type WhatsApp does not send,
// the 24-hour window closed) or that Slack no longer has is explained in
// the thread, saying that nothing of it reached the customer (the text
// is still sent alone when only the file was refused). Scope files:read.
//
// Over Socket Mode the same events arrive on the WebSocket and are
// handled the same way; one is acknowledged once handled, so that Slack
// sends again what the hub could not take.
//
// # Statuses
//
// The agent's message gets a reaction as WhatsApp reports it:
// :heavy_check_mark: sent, :white_check_mark: delivered, :eyes: read, :x:
// failed. A failure is also explained in the thread, even with
// statuses: off.
//
// # Errors
//
// A Slack rate limit (429 with Retry-After) and 5xx answers are retried by
// the hub after the time Slack asked for; channel_not_found,
// not_in_channel, is_archived, invalid_auth and missing_scope fail the
// event with a message that says what to fix.
//
// # State (the host's KV, which survives restarts)
//
//	conv:<conversation_id>:<channel>  the thread's root ts (or a claim while it is being posted)
//	thread:<channel>:<root ts>        the conversation: customer key, business number, name
//	last:<conversation_id>            the thread most recently used
//	evt:<event id>                    what an event posted, so a redelivery posts nothing
//	evt:<event id>:note               a failure's explanation, posted once
//	out:<outbox id>                   the agent's Slack message behind a reply the hub queued
//	wamid:<wamid>                     the Slack message that shows an outbound WhatsApp message
//	hook:<slack event_id>             a Slack event being handled or handled
//	file:<event id>                   a customer's file being uploaded: Slack's file id, whether the bytes arrived
//	job:<slack event_id>              an agent's message with files, until every file was sent or explained
package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// Name is the connector's built-in name.
const Name = "slack"

// Version is reported by Describe.
const Version = "1.0.0"

const (
	defaultAPIURL  = "https://slack.com/api/"
	defaultTimeout = 10 * time.Second
	// maxConcurrent bounds the conversations of a batch posted at once:
	// Slack allows about one message per second per channel, so more
	// would only meet 429s sooner.
	maxConcurrent = 4
)

// New returns the Slack connector. It does nothing until Configure.
func New() sdk.Connector {
	c := &connector{now: time.Now, log: sdk.Logger()}
	c.Runtime = sdk.NewRuntime(sdk.Info{Name: Name, Version: Version}, c.configure)
	return c
}

var (
	_ sdk.HookHandler   = (*instance)(nil)
	_ sdk.HealthChecker = (*instance)(nil)
	_ io.Closer         = (*instance)(nil)
)

// connector is what outlives a configuration; instance is one, with its
// Socket Mode connection.
type connector struct {
	*sdk.Runtime[*instance]
	// now checks hook timestamps and dates claims; tests fix it.
	now func() time.Time
	log *slog.Logger
}

type instance struct {
	c          *connector
	s          *settings
	stopSocket func() // ends the Socket Mode connection; nil without one
}

// Close ends the Socket Mode connection: the runtime calls it when a new
// configuration replaces this one, and when the plugin ends.
func (i *instance) Close() error {
	if i.stopSocket != nil {
		i.stopSocket()
	}
	if i.s.jobs != nil {
		i.s.jobs.stop()
	}
	return nil
}

// settings is a validated configuration, ready to use.
type settings struct {
	name       string // the connector's key in connectors.yaml
	token      string
	secret     []byte
	channel    string
	channels   map[string]string
	apiURL     string
	showName   bool
	showNumber string
	statuses   string
	alerts     bool
	timeout    time.Duration
	socketMode bool
	appToken   string

	api *slackapi.Client
	// files moves files to and from Slack (media.go): no whole-request
	// timeout.
	files *slackapi.Client
	host  sdk.Host
	// jobs runs agents' attachments on to WhatsApp (outbound.go).
	jobs *jobs
}

// config is connectors.<name>.config as users write it.
type config struct {
	Token         string            `json:"token"`
	SigningSecret string            `json:"signing_secret"`
	Channel       string            `json:"channel"`
	Channels      map[string]string `json:"channels"`
	APIURL        string            `json:"api_url"`
	ShowName      *bool             `json:"show_name"`
	ShowNumber    string            `json:"show_number"`
	Statuses      string            `json:"statuses"`
	// Alerts posts failed statuses of messages Slack does not show and
	// dead letters (deadletter.created) as messages of their own: for a
	// channel bound to those event types only.
	Alerts     bool          `json:"alerts"`
	Timeout    *sdk.Duration `json:"timeout"`
	SocketMode bool          `json:"socket_mode"`
	AppToken   string        `json:"app_token"`
}

func (c *connector) configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*instance, error) {
	s, err := parseConfig(cfg)
	if err != nil || cfg.CheckOnly {
		return nil, err
	}
	if host == nil {
		return nil, errors.New("slack connector: configured without a host")
	}
	s.host = host
	s.api = slackapi.New(s.token,
		slackapi.OptionAPIURL(s.apiURL),
		// slack-go's own retries stay off (its default): a 429 must reach
		// the hub, which owns the schedule and honours Retry-After.
		slackapi.OptionHTTPClient(&http.Client{Timeout: s.timeout}),
	)
	s.files = newFilesClient(s)
	s.jobs = newJobs()
	i := &instance{c: c, s: s}
	// Agents' attachments a stopped process left unsent.
	s.jobs.wg.Go(func() { s.jobs.resume(&run{c: c, s: s, kv: host.KV()}) })
	if s.socketMode {
		i.stopSocket = c.startSocket(s)
	}
	return i, nil
}

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, showName: true, showNumber: "full", statuses: "reactions", timeout: defaultTimeout, apiURL: defaultAPIURL}

	if err := cfg.Required(
		sdk.Requirement{Key: "token", Set: c.Token != "", Hint: " (the app's Bot User OAuth Token, xoxb-…, from OAuth & Permissions)"},
		sdk.Requirement{Key: "signing_secret", Set: c.SigningSecret != "" || c.SocketMode,
			Hint: " (Basic Information → App Credentials → Signing Secret; it verifies the Events API requests to /hooks/" + cfg.Name + ")"},
		sdk.Requirement{Key: "channel", Set: c.Channel != "" || len(c.Channels) > 0,
			Hint: " (the channel ID conversations go to, e.g. C0123ABCD; or set channels: {team: channel})"},
	); err != nil {
		return nil, err
	}

	// Secrets are never quoted back, not even in part.
	switch {
	case strings.HasPrefix(c.Token, "xapp-"):
		return nil, fmt.Errorf("%s: this is an app-level token (xapp-…); use the Bot User OAuth Token (xoxb-…) from OAuth & Permissions", key("token"))
	case strings.ContainsAny(c.Token, " \t\r\n"):
		return nil, fmt.Errorf("%s: contains whitespace; paste the token alone", key("token"))
	}
	s.token = c.Token
	switch {
	case c.SocketMode && c.AppToken == "":
		return nil, fmt.Errorf("%s: required with socket_mode: true (Basic Information → App-Level Tokens, with the connections:write scope)", key("app_token"))
	case c.SocketMode && !strings.HasPrefix(c.AppToken, "xapp-"):
		return nil, fmt.Errorf("%s: must be an app-level token (xapp-…), not a bot or user token", key("app_token"))
	case !c.SocketMode && c.AppToken != "":
		return nil, fmt.Errorf("%s: only used with socket_mode: true; set that too, or remove app_token", key("app_token"))
	}
	s.socketMode, s.appToken = c.SocketMode, c.AppToken
	if c.SigningSecret == "" && !c.SocketMode {
		return nil, fmt.Errorf("%s: required (Basic Information → App Credentials → Signing Secret; it verifies the Events API requests to /hooks/%s)", key("signing_secret"), cfg.Name)
	}
	s.secret = []byte(c.SigningSecret)

	if c.Channel == "" && len(c.Channels) == 0 {
		return nil, fmt.Errorf("%s: required (the channel ID conversations go to, e.g. C0123ABCD; or set channels: {team: channel})", key("channel"))
	}
	if err := checkChannel(c.Channel); err != nil {
		return nil, fmt.Errorf("%s: %v", key("channel"), err)
	}
	s.channel = c.Channel
	s.channels = map[string]string{}
	// Sorted: the same config always reports the same error.
	for _, team := range slices.Sorted(maps.Keys(c.Channels)) {
		ch := c.Channels[team]
		if ch == "" {
			return nil, fmt.Errorf("%s: empty; name the team's channel ID or remove the entry", key("channels."+team))
		}
		if err := checkChannel(ch); err != nil {
			return nil, fmt.Errorf("%s: %v", key("channels."+team), err)
		}
		s.channels[team] = ch
	}

	if c.APIURL != "" {
		base, err := sdkhttp.BaseURL(c.APIURL, "")
		if err != nil {
			return nil, fmt.Errorf("%s: %v (such as %s; the token goes in config.token)", key("api_url"), err, defaultAPIURL)
		}
		// slack-go appends the method name to it as is.
		s.apiURL = base + "/"
	}
	if c.ShowName != nil {
		s.showName = *c.ShowName
	}
	switch c.ShowNumber {
	case "":
	case "full", "last4", "none":
		s.showNumber = c.ShowNumber
	default:
		return nil, fmt.Errorf("%s: %q is not one of full, last4, none", key("show_number"), c.ShowNumber)
	}
	s.alerts = c.Alerts
	switch c.Statuses {
	case "":
	case "reactions", "off":
		s.statuses = c.Statuses
	default:
		return nil, fmt.Errorf("%s: %q is not one of reactions, off", key("statuses"), c.Statuses)
	}
	if c.Timeout != nil {
		if *c.Timeout <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration such as 10s", key("timeout"), c.Timeout.String())
		}
		s.timeout = c.Timeout.D()
	}
	return s, nil
}

// checkChannel refuses what cannot be a channel. Slack also takes a
// channel name, so only the mistakes that never work are refused.
func checkChannel(ch string) error {
	switch {
	case strings.HasPrefix(ch, "#"):
		return fmt.Errorf("%q: use the channel ID (channel details → bottom of the About tab, e.g. C0123ABCD), not its name", ch)
	case strings.ContainsAny(ch, " \t\r\n,"):
		return fmt.Errorf("%q is not a channel ID such as C0123ABCD", ch)
	}
	return nil
}

// channelFor returns the channel of team and the config key it came from,
// for error messages.
func (s *settings) channelFor(team string) (channel, key string) {
	if ch, ok := s.channels[team]; ok {
		return ch, "channels." + team
	}
	return s.channel, "channel"
}

// routeTeam is the team the hub routed ev to, "" for none.
func routeTeam(ev *sdk.Event) string {
	if ev.Route == nil {
		return ""
	}
	return ev.Route.Team
}

// channelOf is the channel ev's team posts in and the config key it came
// from; with neither that team's channel nor a default, the error says
// which key to add.
func (s *settings) channelOf(ev *sdk.Event) (channel, key string, err error) {
	team := routeTeam(ev)
	if channel, key = s.channelFor(team); channel == "" {
		return "", "", fmt.Errorf("no Slack channel for team %q: add connectors.%s.config.channels.%s or a default connectors.%s.config.channel", team, s.name, team, s.name)
	}
	return channel, key, nil
}

// Health checks the token with auth.test.
func (i *instance) Health(ctx context.Context) error {
	s := i.s
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.api.AuthTestContext(ctx); err != nil {
		return s.describe(err, "auth.test", "", "")
	}
	return nil
}
