// Package bitrix24 is the built-in `bitrix24` connector: every WhatsApp
// conversation appears on the customer's Bitrix24 CRM record, and CRM
// fields (tier, responsible person) flow back into routing.
//
// For each message.received, button.clicked and message.sent it finds the
// customer's contact (or lead) by phone with crm.duplicate.findbycomm,
// creates one when there is none (crm.contact.add or crm.lead.add, with
// the WhatsApp profile name and the number as a WORK phone), and adds one
// timeline comment per message (crm.timeline.comment.add). Other events
// are skipped. A message's photo, voice note, video or document is
// attached to its comment (FILES, base64 streamed from the hub into the
// request; the portal keeps it on its Drive); a file the hub could not
// retrieve, or the portal refuses, leaves the comment saying so, and the
// event is delivered. It talks to the portal through an inbound webhook
// (Developer resources → Other → Inbound webhook, with the crm scope).
//
// Configuration (connectors.<name>.config):
//
//	webhook_url: https://acme.bitrix24.com/rest/1/abc123def456/   # the inbound webhook; it holds the secret code
//	# or, equivalently, the three parts (what the sandbox fills in):
//	# api_url: https://acme.bitrix24.com
//	# user_id: 1
//	# token: abc123def456
//	entity: contact              # contact (default) or lead: what a new customer becomes
//	create_fields: {SOURCE_ID: WEB, ASSIGNED_BY_ID: 7}   # optional, added to every new contact or lead
//	requests_per_second: 2       # this connector's share of the portal's limit (default 2)
//	timeout: 30s                 # one HTTP request (default 30s; a file adds 1s per 512 KiB)
//	attach_media: true           # attach customers' files to their comments (default true)
//	sync:                        # optional: pull CRM fields into contact attributes
//	  interval: 5m               # how often the hub calls (default 5m)
//	  fields: {tier: UF_CRM_TIER, owner: ASSIGNED_BY_ID}   # attribute: contact field
//	  properties: [UF_CRM_SEGMENT]   # shorthand: the attribute is named like the field
//
// Ids: the contact or lead of a customer is kept in the host KV under
// "customer:<wa_id or user_id>" (with the portal it belongs to), and each
// event's comment under "evt:<event id>", so a redelivered batch never
// comments twice. Calls go one at a time, at most requests_per_second,
// and several go as one `batch` call where that saves calls: lookups and
// creations of several customers, the comments of one conversation
// (halt=1, so a failure stops the rest and order is kept), or the next
// comment of each of several conversations (halt=0).
//
// Errors: 503 QUERY_LIMIT_EXCEEDED pauses and slows down, then retries a
// few times before asking the hub to retry; 429 OPERATION_TIME_LIMIT, 5xx
// and network errors retry; a rejected webhook (401, NO_AUTH_FOUND,
// INVALID_CREDENTIALS, insufficient_scope, 403, 404) fails every event
// with a message saying what to fix; other method errors fail the event.
//
// Sync (sdk.Syncer) lists contacts changed since the cursor
// (crm.contact.list, >DATE_MODIFY, ordered by DATE_MODIFY and ID, with
// PHONE selected) and reports each phone number as a WhatsApp id with the
// configured fields as attributes; a list field's option id is reported
// as the option's value (from crm.contact.fields), so that a "Tier" list
// with Gold routes as tier: Gold. The cursor is "<DATE_MODIFY>#<ID>" of
// the last contact reported; contacts sharing that second are read by ID
// after it, so equal timestamps never skip anything, and the last few
// seconds are read again until they are settled.
package bitrix24

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Name is the connector's built-in name.
const Name = "bitrix24"

// Version is reported by Describe and sent in the User-Agent.
const Version = "1.0.0"

const (
	defaultTimeout      = 30 * time.Second
	defaultRate         = 2.0 // the non-Enterprise drain rate of the portal's bucket
	defaultSyncInterval = 5 * time.Minute
	minSyncInterval     = 10 * time.Second
)

// New returns the Bitrix24 connector. It does nothing until Configure.
func New() sdk.Connector {
	c := &connector{clock: realClock{}, log: sdk.Logger()}
	c.Runtime = sdk.NewRuntime(sdk.Info{Name: Name, Version: Version}, c.configure)
	return c
}

var (
	_ sdk.Syncer         = (*instance)(nil)
	_ sdk.SyncIntervaler = (*instance)(nil)
	_ sdk.HealthChecker  = (*instance)(nil)
)

// connector is what outlives a configuration; instance is one.
type connector struct {
	*sdk.Runtime[*instance]
	// clock paces requests and backs off; tests replace it with a virtual
	// one so that pacing is tested without sleeping.
	clock clock
	log   interface {
		Warn(msg string, args ...any)
		Info(msg string, args ...any)
	}
}

type instance struct {
	c *connector
	s *settings
}

// settings is a validated configuration, ready to use.
type settings struct {
	name string // connectors.<name>
	// base is the webhook URL ending in "/": it holds the secret code and
	// is never printed. portal names it without the code, for messages
	// and for the KV (a customer's entity id is only valid on its portal).
	base, portal string
	entity       string // "contact" or "lead"
	createFields map[string]any
	timeout      time.Duration
	rate         float64
	sync         syncSettings
	attachMedia  bool
	lists        *listCache
	client       *client
	host         sdk.Host
}

type syncSettings struct {
	enabled  bool
	interval time.Duration
	attrs    []attrField // sorted by attribute
}

type attrField struct{ attr, field string }

// config is connectors.<name>.config as users write it.
type config struct {
	WebhookURL        string         `json:"webhook_url"`
	APIURL            string         `json:"api_url"`
	UserID            flexString     `json:"user_id"`
	Token             string         `json:"token"`
	Entity            string         `json:"entity"`
	CreateFields      map[string]any `json:"create_fields"`
	RequestsPerSecond flexString     `json:"requests_per_second"`
	Timeout           *sdk.Duration  `json:"timeout"`
	Sync              *syncConfig    `json:"sync"`
	// AttachMedia attaches customers' photos, voice notes and documents
	// to their timeline comments.
	AttachMedia *bool `json:"attach_media"`
}

type syncConfig struct {
	Interval   *sdk.Duration     `json:"interval"`
	Fields     map[string]string `json:"fields"`
	Properties []string          `json:"properties"`
}

// flexString takes a JSON string or number: YAML writes user_id: 1 as a
// number, an environment override as a string.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		kind := map[byte]string{'t': "bool", 'f': "bool", '{': "object", '[': "array", 'n': "null"}[b[0]]
		return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeOf("")}
	}
	*f = flexString(n.String())
	return nil
}

func (c *connector) configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*instance, error) {
	s, err := parseConfig(cfg)
	if err != nil || cfg.CheckOnly {
		return nil, err
	}
	s.host = host
	s.lists = &listCache{}
	s.client = newClient(s, c.clock, c.log)
	return &instance{c: c, s: s}, nil
}

// SyncInterval is sync.interval (default 5m); 0 without a sync section.
func (i *instance) SyncInterval() time.Duration {
	if !i.s.sync.enabled {
		return 0
	}
	return i.s.sync.interval
}

var (
	// webhookPath is the tail of an inbound webhook URL: /rest/<user>/<code>.
	webhookPath = regexp.MustCompile(`^(.*)/rest/(\d+)/([^/]+)/?$`)
	fieldName   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	codeChars   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, entity: "contact", timeout: defaultTimeout, rate: defaultRate, attachMedia: true}
	if c.AttachMedia != nil {
		s.attachMedia = *c.AttachMedia
	}

	const howTo = "create one in Bitrix24 under Developer resources → Other → Inbound webhook, with the crm scope"
	switch {
	case c.WebhookURL != "" && (c.APIURL != "" || c.Token != "" || c.UserID != ""):
		return nil, fmt.Errorf("%s: set either webhook_url or api_url with user_id and token, not both", key("webhook_url"))
	case c.WebhookURL != "":
		u, err := url.Parse(c.WebhookURL)
		// The URL is never quoted back: it holds the webhook's code.
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("%s: not an http(s) URL like https://acme.bitrix24.com/rest/1/<code>/ (%s)", key("webhook_url"), howTo)
		}
		m := webhookPath.FindStringSubmatch(u.Path)
		if m == nil {
			return nil, fmt.Errorf("%s: the path must end in /rest/<user id>/<webhook code>/, as Bitrix24 shows the inbound webhook's URL (without a method name)", key("webhook_url"))
		}
		s.base = (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: m[1] + "/rest/" + m[2] + "/" + m[3] + "/"}).String()
		s.portal = u.Host + m[1] + "/rest/" + m[2]
	case c.APIURL != "" || c.Token != "":
		if c.APIURL == "" {
			return nil, fmt.Errorf("%s: required with token (the portal's address, e.g. https://acme.bitrix24.com); or set webhook_url instead", key("api_url"))
		}
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("%s: not an http(s) URL like https://acme.bitrix24.com", key("api_url"))
		}
		if c.Token == "" {
			return nil, fmt.Errorf("%s: required with api_url (the inbound webhook's code; %s)", key("token"), howTo)
		}
		if !codeChars.MatchString(c.Token) {
			return nil, fmt.Errorf("%s: the webhook code has characters a code never has; copy it from the webhook's URL, between /rest/<user id>/ and the next /", key("token"))
		}
		user := string(c.UserID)
		if user == "" {
			user = "1"
		}
		if _, err := strconv.ParseUint(user, 10, 32); err != nil {
			return nil, fmt.Errorf("%s: %q is not a user id (the number after /rest/ in the webhook's URL)", key("user_id"), user)
		}
		path := strings.TrimSuffix(u.Path, "/")
		s.base = (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: path + "/rest/" + user + "/" + c.Token + "/"}).String()
		s.portal = u.Host + path + "/rest/" + user
	default:
		return nil, fmt.Errorf("%s: required (the inbound webhook's URL, https://<portal>/rest/<user id>/<code>/; %s)", key("webhook_url"), howTo)
	}

	switch e := strings.ToLower(c.Entity); e {
	case "", "contact":
	case "lead":
		s.entity = "lead"
	default:
		return nil, fmt.Errorf("%s: %q is not contact or lead (what a new customer becomes in the CRM)", key("entity"), c.Entity)
	}

	if len(c.CreateFields) > 0 {
		s.createFields = map[string]any{}
		for k, v := range c.CreateFields {
			if !fieldName.MatchString(k) {
				return nil, fmt.Errorf("%s: %q is not a Bitrix24 field name (upper case, like SOURCE_ID or UF_CRM_1700000000)", key("create_fields"), k)
			}
			switch k {
			case "PHONE", "NAME", "TITLE", "ID":
				return nil, fmt.Errorf("%s: %s is set by the connector", key("create_fields."+k), k)
			}
			switch v.(type) {
			case string, float64, bool:
			default:
				return nil, fmt.Errorf("%s: must be a string or a number", key("create_fields."+k))
			}
			s.createFields[k] = v
		}
	}

	if c.RequestsPerSecond != "" {
		r, err := strconv.ParseFloat(string(c.RequestsPerSecond), 64)
		if err != nil || r <= 0 || r > 50 {
			return nil, fmt.Errorf("%s: %q is not a number of requests per second between 0 and 50 (the portal drains 2 per second, 5 on Enterprise plans)", key("requests_per_second"), string(c.RequestsPerSecond))
		}
		s.rate = r
	}

	if c.Timeout != nil {
		if *c.Timeout <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration such as 30s", key("timeout"), c.Timeout.String())
		}
		s.timeout = c.Timeout.D()
	}

	if c.Sync != nil {
		sy := syncSettings{enabled: true, interval: defaultSyncInterval}
		if c.Sync.Interval != nil {
			if c.Sync.Interval.D() < minSyncInterval {
				return nil, fmt.Errorf("%s: %q is not a duration of at least %s, such as 5m", key("sync.interval"), c.Sync.Interval.String(), minSyncInterval)
			}
			sy.interval = c.Sync.Interval.D()
		}
		seen := map[string]string{}
		add := func(k, attr, field string) error {
			if strings.TrimSpace(attr) == "" || strings.ContainsAny(attr, " \t\r\n") {
				return fmt.Errorf("%s: %q is not an attribute name (a word, like tier)", key(k), attr)
			}
			if !fieldName.MatchString(field) {
				return fmt.Errorf("%s: %q is not a Bitrix24 contact field name (upper case, like ASSIGNED_BY_ID or UF_CRM_TIER)", key(k), field)
			}
			switch field {
			case "PHONE", "EMAIL", "WEB", "IM", "LINK":
				return fmt.Errorf("%s: %s is a multi-field; only single-valued fields can be attributes", key(k), field)
			}
			if prev, dup := seen[attr]; dup && prev != field {
				return fmt.Errorf("%s: attribute %q is mapped twice (%s and %s)", key(k), attr, prev, field)
			}
			seen[attr] = field
			return nil
		}
		for attr, field := range c.Sync.Fields {
			if err := add("sync.fields."+attr, attr, field); err != nil {
				return nil, err
			}
		}
		for _, field := range c.Sync.Properties {
			if err := add("sync.properties", field, field); err != nil {
				return nil, err
			}
		}
		if len(seen) == 0 {
			return nil, fmt.Errorf("%s: sync needs at least one field, e.g. fields: {tier: UF_CRM_TIER, owner: ASSIGNED_BY_ID}", key("sync.fields"))
		}
		for attr, field := range seen {
			sy.attrs = append(sy.attrs, attrField{attr, field})
		}
		sort.Slice(sy.attrs, func(i, j int) bool { return sy.attrs[i].attr < sy.attrs[j].attr })
		s.sync = sy
	}
	return s, nil
}

// Health checks that the webhook works and has the crm scope.
func (i *instance) Health(ctx context.Context) error {
	s := i.s
	env, err := s.client.call(ctx, "scope", obj{})
	if err != nil {
		return err
	}
	var scopes []string
	if err := json.Unmarshal(env.Result, &scopes); err != nil {
		return fmt.Errorf("scope: unexpected answer from Bitrix24 at %s", s.portal)
	}
	for _, sc := range scopes {
		if sc == "crm" {
			return nil
		}
	}
	return fmt.Errorf("the inbound webhook of %s lacks the crm scope (it has %s): edit it in Bitrix24 and tick CRM (crm)", s.portal, strings.Join(scopes, ", "))
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clock is what pacing needs of time.
type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}
