// Package freshdesk is the built-in `freshdesk` connector: every WhatsApp
// conversation becomes a Freshdesk ticket, the customer's later messages
// become incoming notes on it, and the agents' replies on the ticket go
// back to the customer on WhatsApp.
//
// # Configuration (connectors.<name>.config)
//
//	domain: acme                      # https://acme.freshdesk.com; or:
//	api_url: https://acme.freshdesk.com   # wins over domain; a trailing /api/v2 is accepted
//	api_key: ${FRESHDESK_API_KEY}     # required: Profile settings › View API key
//	webhook_secret: ${FRESHDESK_WEBHOOK_SECRET}   # turns agent replies on (below); 16+ characters
//	priorities: {billing: 3, vip: 4}  # per team: 1 low, 2 medium, 3 high, 4 urgent
//	priority: 1                       # teams not listed; default 1 (low)
//	groups: {billing: 43000012345}    # per team: the group_id to assign
//	status: 2                         # of new tickets: 2 open (default), 3 pending, or a custom status id (6+)
//	source: 7                         # of new tickets: default 7 (Chat); an account's WhatsApp source id if it has one
//	reopen_within: 72h                # default 72h; "7d" works too; 0: never reopen
//	tags: [vip-line]                  # more tags on every new ticket
//	timeout: 15s                      # one API call; default 15s
//
// # Customer → Freshdesk
//
// message.received and button.clicked events. The customer is a Freshdesk
// contact found by phone (GET /api/v2/contacts?phone=+<wa_id>, then
// ?mobile=) or created (name: the WhatsApp profile name, else the number;
// phone: +<wa_id>). A customer WhatsApp knows only by a business-scoped
// user id has no number: the contact is then found and created by
// unique_external_id "whatsapp:<user_id>", which the account must have
// enabled (Admin › Customer fields).
//
// The first message of a conversation opens a ticket: subject from the
// message's first line, description the message, requester the contact,
// status, priority and group as configured, tags "whatsapp",
// "team_<team>", "rule_<rule>", config.tags and one "wahub-…" tag unique
// to the ticket (below). Source 7 (Chat): no WhatsApp source value is
// documented that the API accepts on every account, and Chat is what a
// WhatsApp conversation is; accounts with a WhatsApp source can set it.
// Later messages are notes with
// incoming: true, private: false, user_id the requester: the API cannot
// post a reply as the customer (replies are agents'), and an incoming
// public note is shown as the customer's message. Media is shown as a link
// (the WhatsApp media URL, which needs the business's token) or as its
// media id: the connector cannot download it to attach it.
//
// When the ticket was resolved or closed, a message within reopen_within
// of the resolution (stats.resolved_at, which the automatic closure of a
// resolved ticket does not move) reopens it (status 2) and is added to
// it; a later one opens a new ticket, as does a message to a deleted
// ticket.
//
// message.sent events of messages this connector asked for (an agent's
// reply echoed back) are skipped; those from other sources (triggers, the
// admin API, another connector) are added to the ticket as private notes,
// so that agents see everything the customer received. A status.failed of
// an agent's reply adds a private note saying it did not arrive. Other
// events are skipped.
//
// # Idempotency
//
// The hub may deliver an event again. The host KV keeps, per connector:
//
//	evt:<event id>        → "ticket:<id>" or "note:<id>": done; a redelivery adds nothing
//	conv:<conversation>   → {ticket_id, contact_id, to, phone_number_id, creating}
//	ticket:<ticket id>    → the conversation, for the agents' replies
//	contact:<customer>    → the Freshdesk contact id
//	reply:<key>           → what became of an agent reply (sent, refused, noted)
//
// Freshdesk tickets have no external id to make their creation
// idempotent. Before creating one, the connector records in conv: (with
// CompareAndSwap) that it is creating a ticket tagged "wahub-<hash of the
// event id>". If it crashes before learning the ticket id, the redelivery
// finds the marker and looks for the tagged ticket among the requester's
// tickets (GET /api/v2/tickets?requester_id=, which reads the database,
// not the lagging search index) before creating one. The cost is one tag
// agents see, and one extra call only after a crash; a custom field would
// need the admin to create it first, and search by tag lags by minutes.
// Notes have no external id either: before adding one, the connector
// records pending:<event id> (the ticket, the time); a redelivery that
// finds the mark looks for the customer's note with the same text among
// the ticket's conversations before adding it again, so a lost answer or
// a crash after the note was added (with its file) adds nothing twice.
// Only such a redelivery costs the extra call.
//
// # Agent replies: Freshdesk → WhatsApp
//
// Freshdesk has no signed webhooks; an automation rule calls the hub.
// Admin › Workflows › Automations › Ticket updates › New rule:
//
//   - When: "Reply is sent", performed by "Agent". (Only replies go to the
//     customer: notes, public or private, stay in Freshdesk, and the
//     customer's own messages, added as notes, do not fire it.)
//   - Conditions: Tags contains "whatsapp".
//   - Action: Trigger webhook, POST https://<hub>/hooks/<name>, encoding
//     JSON, Advanced content, custom header X-Wahub-Secret:
//     <webhook_secret>, and the body below.
//
// The webhook's body (WebhookTemplate):
//
//	{"ticket_id": "{{ticket.id}}", "body": "{{ticket.latest_public_comment}}"}
//
// "Simple" content with Ticket ID and Last public comment ticked works
// too. Where custom headers are not offered, basic authentication with
// the secret as the password (any user name) works too. A request without the secret is answered 401 and sends nothing.
//
// Freshdesk has no placeholder for the reply's id, so the connector reads
// the ticket's conversations (GET /api/v2/tickets/{id}/conversations) and
// takes the latest public agent reply whose text matches the body (the
// latest one when the body is missing or the JSON is broken by an
// unescaped quote). Its id is the idempotency key ("reply:<id>"), so a
// webhook delivered twice sends once, and two equal replies ("ok") are two
// messages. The text sent is always the reply's body_text as the API
// returns it, never the webhook body's; when the conversations cannot be
// read the answer is 503 and Freshdesk retries. Each attachment of the
// reply becomes a WhatsApp media message of its own after the text: its
// attachment_url (a pre-signed link on Freshdesk's file store, which gets
// no API key) is downloaded, stored in the hub (Host.PutMedia) and sent
// with "<reply key>/att:<attachment id>" as idempotency key; reply:<that
// key> records it, so a repeated webhook neither stores nor sends a file
// twice, and what is refused (too large, a type WhatsApp does not send, a
// link that expired) is named in the private note. When the hub refuses the message (opted out, the
// 24-hour window closed, ...), a private note on the ticket tells the
// agent why it was not delivered. The answer is 200 unless the hub or
// Freshdesk is unavailable (503: Freshdesk's retry is then safe).
//
// A ticket the KV does not know is read from the API: the connector
// records a ticket just after creating it, so a reply in that moment (or
// after a crash or a failed KV write there) is on a ticket carrying its
// "wahub-…" tag, and is answered 503 with Retry-After: 5 until the
// record exists. Other tickets (email, portal) are answered 200 and left
// alone; a 404 (deleted) too. When the ticket cannot be read: 503.
//
// # Errors
//
// 429: retry after Retry-After, and no more calls until then (Freshdesk
// counts refused calls against the limit too). 5xx, timeouts: retry. 401:
// the API key is wrong; 403: its agent may not do this; 400: the field
// Freshdesk names is invalid — all permanent, with what to fix. Events of
// a conversation after one that was not delivered are held back, so that
// the ticket keeps the customer's order.
package freshdesk

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// Name is the connector's built-in name.
const Name = "freshdesk"

// Version is reported by Describe and sent in the User-Agent.
const Version = "1.0.0"

// SecretHeader carries webhook_secret on the automation rule's requests.
const SecretHeader = "X-Wahub-Secret"

// WebhookTemplate is the body to paste in the automation rule's webhook
// action.
const WebhookTemplate = `{"ticket_id": "{{ticket.id}}", "body": "{{ticket.latest_public_comment}}"}`

const (
	defaultTimeout = 15 * time.Second
	// defaultReopen matches the zendesk connector's, so that both
	// helpdesks behave alike.
	defaultReopen = 72 * time.Hour
	// defaultSource is Chat: see the package doc.
	defaultSource = 7
	// maxConcurrent bounds the conversations of a batch in flight at
	// once; Freshdesk's limit is per minute and account-wide, so there is
	// little to gain from more.
	maxConcurrent = 4
	// maxRetryAfter caps a Retry-After.
	maxRetryAfter = time.Hour
)

// New returns the Freshdesk connector. It does nothing until Configure.
func New() sdk.Connector {
	c := &connector{now: time.Now, log: sdk.Logger()}
	c.Runtime = sdk.NewRuntime(sdk.Info{Name: Name, Version: Version}, c.configure)
	return c
}

var _ sdk.HookHandler = (*instance)(nil)

// connector is what outlives a configuration; instance is one.
type connector struct {
	*sdk.Runtime[*instance]
	// now reads the reopen window and Retry-After dates; tests fix it.
	now func() time.Time
	log *slog.Logger
}

type instance struct {
	c *connector
	s *settings
}

// settings is a validated configuration.
type settings struct {
	name         string // the connector's key in connectors.yaml
	base         string // e.g. https://acme.freshdesk.com, without /api/v2
	apiKey       string
	secret       []byte
	priorities   map[string]int
	priority     int
	groups       map[string]int64
	tags         []string
	status       int
	source       int
	reopenWithin time.Duration
	timeout      time.Duration
	client       *http.Client
	// files downloads agents' attachments (sdkhttp.FollowFileRedirects).
	files *http.Client
	host  sdk.Host

	// pausedUntil is when Freshdesk's rate limit lets calls through
	// again (Unix nanoseconds); until then calls fail at once rather than
	// spend the next window's credits on refusals.
	pausedUntil atomic.Int64
}

type config struct {
	Domain        string           `json:"domain"`
	APIURL        string           `json:"api_url"`
	APIKey        string           `json:"api_key"`
	WebhookSecret string           `json:"webhook_secret"`
	Priorities    map[string]int   `json:"priorities"`
	Priority      *int             `json:"priority"`
	Groups        map[string]int64 `json:"groups"`
	Status        *int             `json:"status"`
	Source        *int             `json:"source"`
	ReopenWithin  *sdk.Duration    `json:"reopen_within"`
	Tags          []string         `json:"tags"`
	Timeout       *sdk.Duration    `json:"timeout"`
}

func (c *connector) configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*instance, error) {
	s, err := parseConfig(cfg)
	if err != nil || cfg.CheckOnly {
		return nil, err
	}
	// A redirect means a wrong domain or api_url (Freshdesk sends the
	// browser to a login page): it is reported, not followed.
	s.client = sdkhttp.NewClient(maxConcurrent, nil)
	s.files = &http.Client{Transport: s.client.Transport, CheckRedirect: sdkhttp.FollowFileRedirects(s.base, maxRedirects)}
	s.host = host
	return &instance{c: c, s: s}, nil
}

var (
	domainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	daysRE   = regexp.MustCompile(`^(\d+)d$`)
)

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, priority: 1, status: 2, source: defaultSource, reopenWithin: defaultReopen, timeout: defaultTimeout}

	if err := cfg.Required(
		sdk.Requirement{Key: "domain", Set: c.APIURL != "" || c.Domain != "", Hint: " (or api_url): the account's name, acme for https://acme.freshdesk.com"},
		sdk.Requirement{Key: "api_key", Set: c.APIKey != "", Hint: ": the API key of the agent the connector acts as (Freshdesk › Profile settings › View API key)"},
	); err != nil {
		return nil, err
	}

	switch {
	case c.APIURL != "":
		base, err := sdkhttp.BaseURL(c.APIURL, "/api/v2")
		if err != nil {
			return nil, fmt.Errorf("%s: %v (such as https://acme.freshdesk.com; the key goes in api_key)", key("api_url"), err)
		}
		s.base = base
	case c.Domain != "":
		d := strings.ToLower(strings.TrimSpace(c.Domain))
		if !domainRE.MatchString(d) {
			return nil, fmt.Errorf("%s: %q is not a domain: write the account's name (acme for acme.freshdesk.com) or its host name", key("domain"), c.Domain)
		}
		if !strings.Contains(d, ".") {
			d += ".freshdesk.com"
		}
		s.base = "https://" + d
	}

	if strings.ContainsAny(c.APIKey, ":\r\n") {
		return nil, fmt.Errorf("%s: contains a colon or a line break; paste the key alone", key("api_key"))
	}
	s.apiKey = c.APIKey
	if c.WebhookSecret != "" {
		if len(c.WebhookSecret) < 16 {
			return nil, fmt.Errorf("%s: too short (%d characters): use at least 16 random characters, e.g. `openssl rand -hex 24`", key("webhook_secret"), len(c.WebhookSecret))
		}
		s.secret = []byte(c.WebhookSecret)
	}

	teams := make([]string, 0, len(c.Priorities))
	for team := range c.Priorities {
		teams = append(teams, team)
	}
	sort.Strings(teams)
	for _, team := range teams {
		if p := c.Priorities[team]; p < 1 || p > 4 {
			return nil, fmt.Errorf("%s: %d is not a priority: 1 low, 2 medium, 3 high, 4 urgent", key("priorities."+team), p)
		}
	}
	s.priorities = c.Priorities
	if c.Priority != nil {
		if *c.Priority < 1 || *c.Priority > 4 {
			return nil, fmt.Errorf("%s: %d is not a priority: 1 low, 2 medium, 3 high, 4 urgent", key("priority"), *c.Priority)
		}
		s.priority = *c.Priority
	}
	for team, g := range c.Groups {
		if g <= 0 {
			return nil, fmt.Errorf("%s: %d is not a group id (Admin › Groups: the number in the group's URL)", key("groups."+team), g)
		}
	}
	s.groups = c.Groups
	for i, tag := range c.Tags {
		if strings.TrimSpace(tag) == "" || strings.Contains(tag, ",") {
			return nil, fmt.Errorf("%s: %q is not a tag: no commas, not empty", key(fmt.Sprintf("tags[%d]", i)), tag)
		}
	}
	s.tags = c.Tags
	if c.Status != nil {
		st := *c.Status
		if st != 2 && st != 3 && st < 6 {
			return nil, fmt.Errorf("%s: %d cannot be the status of a new ticket: use 2 (open), 3 (pending) or a custom status id", key("status"), st)
		}
		s.status = st
	}
	if c.Source != nil {
		if *c.Source < 1 {
			return nil, fmt.Errorf("%s: %d is not a ticket source: 7 is Chat, 3 Phone", key("source"), *c.Source)
		}
		s.source = *c.Source
	}
	if c.ReopenWithin != nil {
		if *c.ReopenWithin < 0 {
			return nil, fmt.Errorf("%s: %q is not a duration: write one such as 72h or 7d (0: never reopen)", key("reopen_within"), c.ReopenWithin.String())
		}
		s.reopenWithin = c.ReopenWithin.D()
	}
	if c.Timeout != nil {
		if *c.Timeout <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration such as 15s", key("timeout"), c.Timeout.String())
		}
		s.timeout = c.Timeout.D()
	}
	return s, nil
}

// priorityFor is the priority of a new ticket of team.
func (s *settings) priorityFor(team string) int {
	if p, ok := s.priorities[team]; ok {
		return p
	}
	return s.priority
}
