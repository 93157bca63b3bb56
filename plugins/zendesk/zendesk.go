// Package zendesk is the built-in `zendesk` connector: WhatsApp
// conversations become Zendesk Support tickets, and agents' public replies
// on those tickets go back to the customer on WhatsApp.
//
// # Configuration (connectors.<name>.config)
//
//	subdomain: acme                      # acme.zendesk.com; or:
//	api_url: https://acme.zendesk.com    # wins over subdomain; "/api/v2" is added
//	email: ops@acme.example              # required: the agent the API token belongs to
//	token: ${ZENDESK_TOKEN}              # required: an API token (Admin Center > Apps and integrations > Zendesk API)
//	webhook_secret: ${ZENDESK_WEBHOOK_SECRET}  # the signing secret of the webhook below; without it agents' replies are refused
//	priorities: {billing: high}          # ticket priority per team (low, normal, high, urgent); default normal
//	groups: {billing: 360001234567}      # optional: the Zendesk group that gets a team's tickets
//	reopen_within: 72h                   # a solved ticket younger than this is reopened; default 72h, 0 = never
//	tags: [vip-line]                     # optional: more tags on every ticket
//	timeout: 15s                         # one API call; default 15s
//
// # Customers to tickets
//
// A customer (contact.user_id, else wa_id) becomes a Zendesk end user: the
// one found by external_id "whatsapp:<key>", else by phone through search,
// else one created with users/create_or_update (keyed by that external_id,
// so a retry never makes two; search is not used to find our own users
// because its index lags by a minute or two).
//
// The first message of a conversation opens a ticket: the subject is the
// message's first line (cut at 80 characters), the requester is the end
// user and the first comment is public and authored by them; tags are
// "whatsapp", "team_<route.team>", "rule_<route.rule>" and config.tags;
// priority and group follow the team. Later messages (message.received
// and button.clicked) become public comments authored by the requester.
// Media (images, voice notes, audio, video, documents, stickers) is
// attached to the comment: the file is streamed from the hub
// (Host.OpenMedia) into POST /api/v2/uploads and the comment names the
// upload's token; its text is a line naming the kind, caption, file name,
// type and size. A file the hub could not get, or larger than Zendesk's
// 50 MB, is not attached: the comment says so and why (with the hub's
// GET /api/v1/media/{id} for an admin), and the event is delivered.
// up:<event id> keeps the upload token, so that a redelivery attaches the
// same upload instead of uploading again. Locations get a map link.
//
// When the ticket was solved less than reopen_within ago the next message
// reopens it; when it was solved earlier, is closed (Zendesk refuses any
// update of a closed ticket) or was deleted, the message opens a new
// ticket. Ticket external_id is the conversation id for the first ticket
// and "<conversation id>/<n>" for the n-th.
//
// message.sent events of messages this connector asked for are already on
// the ticket (the agent wrote them) and are skipped. Messages other
// sources sent (a Slack agent, a trigger, the admin API) are added as an
// INTERNAL note by the API user, "Sent on WhatsApp by ...": a public
// comment would be mailed to the requester and, written by an agent,
// would come back through the webhook below. status.failed of our own
// replies adds an internal note saying WhatsApp did not deliver it. Every
// other event is skipped.
//
// # Idempotency (the hub delivers at least once)
//
// KV keys: conv:<conversation_id> (ticket, generation, requester),
// ticket:<id> (conversation, customer, business number: for replies),
// user:<contact key> (end user id), evt:<event id> (the event's comment is
// written, or being written), cmt:<comment id> (a reply was handed to the
// hub). Before a ticket is created the conversation record names the
// event creating it, and the ticket carries an external_id: if the answer
// or the KV write was lost, the next attempt finds the ticket with
// GET /api/v2/tickets?external_id= instead of opening a second one. Before
// a comment is written evt:<id> is marked pending; a retry of a pending
// event first looks for the comment on the ticket.
//
// # Errors
//
// 429 (with Retry-After, with only a text body, or bare), 409 and 5xx,
// timeouts and connection errors are retried, after Retry-After when
// Zendesk sends one (the hub's backoff otherwise); 401, 403, 404 and 422
// fail the event with what to fix. Events of one conversation stay in
// order: after an event is not delivered the later ones of its
// conversation in the batch are held.
//
// # Agents' replies: the Zendesk webhook and trigger
//
// In Admin Center create a webhook: Apps and integrations > Webhooks >
// Create webhook > "Trigger or automation"; endpoint URL
// https://<wahub host>/hooks/<connector name>, method POST, format JSON,
// authentication none; copy its signing secret into webhook_secret. Then
// a trigger (Objects and rules > Business rules > Triggers) with the
// conditions
//
//	Ticket > Ticket   Is            Updated
//	Ticket > Comment  Is            Public
//	Ticket > Current user  Is       (agent)
//	Ticket > Tags     Contains at least one of   whatsapp
//
// and the action "Notify by > Active webhook" with this JSON body
// (TriggerBody):
//
//	{"ticket_id": "{{ticket.id}}", "comment_id": "{{ticket.latest_comment.id}}"}
//
// The connector checks X-Zendesk-Webhook-Signature (base64 HMAC-SHA256,
// under the signing secret, of X-Zendesk-Webhook-Signature-Timestamp
// followed by the raw body) and refuses a wrong one or a timestamp more
// than 5 minutes off with 401. It then reads the comment from the API
// (GET /api/v2/tickets/{id}/comments?include=users: the body stays out of
// the trigger, so quotes or line breaks in a reply cannot break its JSON),
// (when comment_id renders empty, the latest public comment is taken),
// and sends it to the customer of that ticket through the hub, with the
// comment id as idempotency key: a webhook delivered twice sends once.
// Each attachment of the comment becomes a WhatsApp media message of its
// own after the text: its content_url is downloaded with the API
// credentials (sent to the account's own host only: Zendesk redirects to
// a signed URL on its file host, which gets none), stored in the hub
// (Host.PutMedia) and sent with "<comment id>/att:<attachment id>" as
// idempotency key; cmt:<comment id>:<part> records each part, so a
// repeated webhook neither stores nor sends a file twice. A file the hub
// or WhatsApp refuses (too large for its type, a type WhatsApp does not
// send), or that cannot be downloaded, is named in the internal note with
// the reason. Zendesk gives a webhook 12 seconds: a large file can take
// longer, and the connector carries on after Zendesk stops waiting; the
// retry finds the parts done, and one still in flight is sent once (the
// hub's idempotency key). Internal notes, comments by the
// requester or any end user, and tickets wahub did not open are answered
// 200 and left alone. When the hub refuses the message (the customer
// opted out, or the 24-hour window is closed) the connector adds an
// internal note to the ticket saying why and what to do (send an approved
// template). A failure to reach the hub or Zendesk answers 503 so that
// Zendesk retries.
//
// A ticket with no ticket:<id> record is read from the API: the connector
// records a ticket just after creating it, so a reply in that moment (or
// after a crash or a failed KV write there) is on a ticket whose
// external_id names a conversation whose record says that ticket is being
// created. That webhook is answered 503 with Retry-After: 5 until a later
// attempt of the delivery records the ticket; other tickets are answered
// 200 and left alone. When the ticket cannot be read: 503.
package zendesk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// Name is the connector's built-in name.
const Name = "zendesk"

// Version is reported by Describe and sent in the User-Agent.
const Version = "1.0.0"

// TriggerBody is the JSON body of the Zendesk trigger that calls the
// connector's hook: Zendesk replaces the placeholders.
const TriggerBody = `{"ticket_id": "{{ticket.id}}", "comment_id": "{{ticket.latest_comment.id}}"}`

const (
	defaultTimeout      = 15 * time.Second
	defaultReopenWithin = 72 * time.Hour
	defaultPriority     = "normal"
	// maxConcurrent bounds the conversations of one batch in flight. Each
	// message costs Zendesk two or three calls; a few at once hides the
	// latency without running into the per-minute limit.
	maxConcurrent = 4
	// maxRetryAfter caps a Retry-After, so that one answer cannot park
	// events for a day.
	maxRetryAfter = time.Hour
	// hookTolerance is how far a webhook timestamp may be from our clock.
	hookTolerance = 5 * time.Minute
)

// New returns the Zendesk connector. It does nothing until Configure.
func New() sdk.Connector {
	c := &connector{now: time.Now, log: sdk.Logger()}
	c.Runtime = sdk.NewRuntime(sdk.Info{Name: Name, Version: Version}, c.configure)
	return c
}

var (
	_ sdk.HookHandler   = (*instance)(nil)
	_ sdk.HealthChecker = (*instance)(nil)
)

// connector is what outlives a configuration; instance is one.
type connector struct {
	*sdk.Runtime[*instance]
	// now decides reopening and checks webhook timestamps; tests fix it.
	now func() time.Time
	log *slog.Logger
}

// settings is a validated configuration with what it needs to run.
type instance struct {
	c *connector
	s *settings
}

type settings struct {
	name          string // the connector's key in connectors.yaml
	base          string // https://acme.zendesk.com (no /api/v2)
	email         string
	auth          string // the Authorization header
	webhookSecret []byte
	priorities    map[string]string
	groups        map[string]int64
	reopenWithin  time.Duration
	tags          []string
	timeout       time.Duration
	now           func() time.Time // the connector's clock, for HTTP-date Retry-Afters
	client        *http.Client
	// files downloads attachments: it follows content_url's redirect to
	// the signed URL, without the credentials (sdkhttp.FollowFileRedirects).
	files *http.Client
	host  sdk.Host
}

// config is connectors.<name>.config as users write it.
type config struct {
	Subdomain     string            `json:"subdomain"`
	APIURL        string            `json:"api_url"`
	Email         string            `json:"email"`
	Token         string            `json:"token"`
	WebhookSecret string            `json:"webhook_secret"`
	Priorities    map[string]string `json:"priorities"`
	Groups        map[string]int64  `json:"groups"`
	ReopenWithin  *sdk.Duration     `json:"reopen_within"`
	Tags          []string          `json:"tags"`
	Timeout       *sdk.Duration     `json:"timeout"`
}

func (c *connector) configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*instance, error) {
	s, err := parseConfig(cfg)
	if err != nil || cfg.CheckOnly {
		return nil, err
	}
	// A redirect means a wrong api_url (http to https, a renamed
	// subdomain); following it would turn a PUT into a GET.
	s.client = sdkhttp.NewClient(maxConcurrent, nil)
	s.files = &http.Client{Transport: s.client.Transport, CheckRedirect: sdkhttp.FollowFileRedirects(s.base, maxRedirects)}
	s.host, s.now = host, c.now
	if len(s.webhookSecret) == 0 {
		c.log.Warn("zendesk: webhook_secret is not set: agents' replies from Zendesk will be refused until it is", "connector", cfg.Name)
	}
	return &instance{c: c, s: s}, nil
}

var (
	subdomainRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	priorityOK  = map[string]bool{"low": true, "normal": true, "high": true, "urgent": true}
)

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, timeout: defaultTimeout, reopenWithin: defaultReopenWithin,
		priorities: map[string]string{}, groups: map[string]int64{}}

	if err := cfg.Required(
		sdk.Requirement{Key: "subdomain", Set: c.APIURL != "" || c.Subdomain != "", Hint: " (acme for acme.zendesk.com), or set api_url"},
		sdk.Requirement{Key: "email", Set: c.Email != "", Hint: " (the email of the agent whose API token is configured)"},
		sdk.Requirement{Key: "token", Set: c.Token != "", Hint: " (an API token from Admin Center > Apps and integrations > Zendesk API)"},
	); err != nil {
		return nil, err
	}

	switch {
	case c.APIURL != "":
		base, err := sdkhttp.BaseURL(c.APIURL, "/api/v2")
		if err != nil {
			return nil, fmt.Errorf("%s: %v (such as https://acme.zendesk.com; credentials go in email and token)", key("api_url"), err)
		}
		s.base = base
	case c.Subdomain != "":
		sub := strings.ToLower(strings.TrimSuffix(c.Subdomain, ".zendesk.com"))
		if !subdomainRe.MatchString(sub) {
			return nil, fmt.Errorf("%s: %q is not a Zendesk subdomain: write acme for acme.zendesk.com", key("subdomain"), c.Subdomain)
		}
		s.base = "https://" + sub + ".zendesk.com"
	}

	if !strings.Contains(c.Email, "@") {
		return nil, fmt.Errorf("%s: %q is not an email address", key("email"), c.Email)
	}
	s.email = c.Email
	s.auth = basicAuth(c.Email+"/token", c.Token)
	s.webhookSecret = []byte(c.WebhookSecret)

	for _, team := range sortedKeys(c.Priorities) {
		p := strings.ToLower(c.Priorities[team])
		if !priorityOK[p] {
			return nil, fmt.Errorf("%s: %q is not a Zendesk priority: use low, normal, high or urgent", key("priorities."+team), c.Priorities[team])
		}
		s.priorities[team] = p
	}
	for _, team := range sortedKeys(c.Groups) {
		if c.Groups[team] <= 0 {
			return nil, fmt.Errorf("%s: must be a Zendesk group id (a positive number)", key("groups."+team))
		}
		s.groups[team] = c.Groups[team]
	}
	if c.ReopenWithin != nil {
		if *c.ReopenWithin < 0 {
			return nil, fmt.Errorf("%s: %q is not a duration such as 72h or 3d (0 never reopens a solved ticket)", key("reopen_within"), c.ReopenWithin.String())
		}
		s.reopenWithin = c.ReopenWithin.D()
	}
	for i, t := range c.Tags {
		tag := tagName(t)
		if tag == "" {
			return nil, fmt.Errorf("%s: empty tag", key("tags["+strconv.Itoa(i)+"]"))
		}
		s.tags = append(s.tags, tag)
	}
	if c.Timeout != nil {
		if *c.Timeout <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration such as 15s", key("timeout"), c.Timeout.String())
		}
		s.timeout = c.Timeout.D()
	}
	return s, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Health checks the credentials: GET /api/v2/users/me answers the agent
// they belong to.
func (i *instance) Health(ctx context.Context) error {
	s := i.s
	var me struct {
		User struct {
			ID   *int64 `json:"id"`
			Role string `json:"role"`
		} `json:"user"`
	}
	if err := s.call(ctx, http.MethodGet, "/users/me", nil, nil, &me); err != nil {
		return err
	}
	if me.User.ID == nil {
		return fmt.Errorf("zendesk answered as an anonymous user: check connectors.%s.config.email and token", s.name)
	}
	if me.User.Role == "end-user" {
		return fmt.Errorf("%s is an end user in Zendesk; the connector needs an agent or admin to create users and tickets", s.email)
	}
	return nil
}
