// Package hubspot is the built-in `hubspot` connector: it puts every
// WhatsApp conversation on the customer's HubSpot contact record, and
// brings contact properties (tier, owner, ...) back into the hub's routing.
//
// For each inbound customer message (message.received, button.clicked) and
// each message the hub sent (message.sent) it finds the HubSpot contact by
// phone number in E.164 (search on `phone` OR `mobilephone`), creates it
// when missing with the WhatsApp profile name, and logs the message as a
// Communication (channel WHATS_APP, logged from CRM, at the event's time)
// associated with the contact (association type 81). A status.failed of a
// sent message is logged as a Note on the contact (association type 202)
// unless failed_status_notes is false. Other events are skipped.
//
// Media: the photo, voice note, video or document of a message is read
// from the hub (Host.OpenMedia), streamed into HubSpot's file manager
// (POST /files/v3/files, multipart, access PRIVATE, in files_folder) and
// attached to the logged communication (hs_attachment_ids), so that it
// opens from the contact's timeline. Should HubSpot refuse attachments on
// communications (it documents hs_attachment_ids for notes, emails,
// calls, meetings and tasks), the file goes on a note beside the
// communication, which says so. A file the hub could not retrieve
// (gone at Meta, too large for the hub) or that HubSpot refuses is not
// attached; the communication says so ("the image could not be
// retrieved: …") and the event is delivered. Uploading needs the files
// scope besides the contacts ones.
//
// Configuration (connectors.<name>.config):
//
//	token: ${HUBSPOT_TOKEN}          # required: a private-app access token (pat-…) with the
//	                                 # scopes crm.objects.contacts.read, crm.objects.contacts.write and files
//	api_url: https://api.hubapi.com  # default; point it at a fake in tests
//	timeout: 15s                     # one HTTP request
//	requests_per_10s: 100            # the app's HubSpot limit (Free/Starter: 100, Pro/Enterprise: 150-190)
//	search_per_second: 4             # the search API's own limit
//	search_lag: 60s                  # how long HubSpot's search may take to show a new contact
//	failed_status_notes: true        # log status.failed as a note
//	lead_source_property: whatsapp_lead_source   # optional: a contact property a contact created from a Click-to-WhatsApp ad gets the ad in
//	attach_media: true               # upload customers' files and attach them (needs the files scope)
//	files_folder: /WhatsApp          # the file manager folder they go in
//	sync:                            # optional: the sync capability
//	  properties: [tier, hubspot_owner_id]   # contact properties that become contact attributes
//	  interval: 5m                   # read by the hub: how often it calls Sync
//
// Idempotency, through the hub's KV (it survives plugin restarts):
//
//	contact:<customer key>  the HubSpot contact id, or "creating:<time>" while one is being created
//	evt:<event id>          the id of the communication or note logged for the event
//	file:<event id>:<media id>  the HubSpot file uploaded for the event's media
//	comm:<event id>         the communication of an event whose file went on a note
//
// A redelivered event whose evt: key exists is answered Delivered with no
// call. A contact is created under a compare-and-swap "creating" marker:
// HubSpot's search shows a new contact only seconds later, so a retry that
// cannot tell whether an interrupted create happened waits until search_lag
// has passed since the marker and then searches, rather than creating a
// second contact. (HubSpot would reject a duplicate of a property with
// unique values, but contacts have none by default except email, which
// WhatsApp does not give us, so relying on that would ask every user to
// define a custom unique property first.)
//
// Rate limits: requests are paced below requests_per_10s (and search below
// search_per_second) with a token bucket. A 429 pauses the connector: the
// event that met it is retried after Retry-After, or 10 s for the
// ten-secondly limit, 1 s for the search limit and 1 h for the daily
// limit, which HubSpot does not announce an end for; the other events of
// the batch are held without spending their attempts. 5xx and network
// errors retry; 401, 403 and 400 fail with a message saying what to fix.
package hubspot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// Name is the connector's built-in name.
const Name = "hubspot"

// Version is reported by Describe and sent in the User-Agent.
const Version = "0.1.0"

// DefaultAPIURL is HubSpot's API.
const DefaultAPIURL = "https://api.hubapi.com"

const (
	defaultTimeout         = 15 * time.Second
	defaultRequestsPer10s  = 100
	defaultSearchPerSecond = 4
	defaultSearchLag       = 60 * time.Second
	// maxConcurrent bounds the conversations of a batch in flight at once.
	// The pacing limits throughput anyway; a few in flight hide latency.
	maxConcurrent = 4
)

// New returns the HubSpot connector. It does nothing until Configure.
func New() sdk.Connector {
	c := &connector{now: time.Now, log: sdk.Logger()}
	c.Runtime = sdk.NewRuntime(sdk.Info{Name: Name, Version: Version}, c.configure)
	return c
}

var (
	_ sdk.Syncer         = (*instance)(nil)
	_ sdk.SyncIntervaler = (*instance)(nil)
	_ sdk.HealthChecker  = (*instance)(nil)
)

// connector is what outlives a configuration (the clock, the pause after
// a 429, the per-customer locks); instance is one configuration.
type connector struct {
	*sdk.Runtime[*instance]

	// now reads the time for creation markers, sync cursors and
	// HTTP-date Retry-Afters; tests fix it. The pacing uses the real
	// clock (golang.org/x/time/rate); tests of it run in a synctest
	// bubble.
	now func() time.Time
	// transport, when set by a test, replaces the HTTP transport.
	transport http.RoundTripper
	log       *slog.Logger

	// pause is a connector-wide stop after a 429: until then no request
	// is sent, because any request would only meet the same limit.
	pauseMu     sync.Mutex
	pauseUntil  time.Time
	pauseReason string

	// customers serialises contact lookups per customer within the
	// process, so that two conversations of one customer (two business
	// numbers) in one batch do not both create the contact.
	customersMu sync.Mutex
	customers   map[string]*customerLock
	// notFound remembers, per phone number, when a search last found no
	// contact: a create refused right after (a 429) then retries without
	// searching again, so that every successful call is progress even
	// when every other call is refused. Guarded by customersMu.
	notFound map[string]time.Time

	// commNoAttachments is set once HubSpot refused hs_attachment_ids on
	// a communication: files then go on a note (media.go).
	commNoAttachments atomic.Bool
}

// notFoundTTL is how long a search that found nothing is trusted. A
// contact created in HubSpot meanwhile by someone else would be
// duplicated; the window is kept short.
const notFoundTTL = 2 * time.Minute

func (c *connector) rememberNotFound(phone string) {
	c.customersMu.Lock()
	defer c.customersMu.Unlock()
	if c.notFound == nil {
		c.notFound = map[string]time.Time{}
	}
	now := c.now()
	for p, at := range c.notFound {
		if now.Sub(at) > notFoundTTL {
			delete(c.notFound, p)
		}
	}
	c.notFound[phone] = now
}

func (c *connector) recentlyNotFound(phone string) bool {
	c.customersMu.Lock()
	defer c.customersMu.Unlock()
	at, ok := c.notFound[phone]
	return ok && c.now().Sub(at) <= notFoundTTL
}

func (c *connector) forgetNotFound(phone string) {
	c.customersMu.Lock()
	defer c.customersMu.Unlock()
	delete(c.notFound, phone)
}

type customerLock struct {
	mu   sync.Mutex
	refs int
}

type instance struct {
	c *connector
	s *settings
}

// settings is a validated configuration, ready to deliver with.
type settings struct {
	name        string
	token       string
	apiURL      string
	timeout     time.Duration
	searchLag   time.Duration
	failedNotes bool
	syncProps   []string
	syncEvery   time.Duration
	leadSource  string // lead_source_property
	attachMedia bool
	filesFolder string // folderPath of uploaded files
	client      *http.Client
	host        sdk.Host
	// all paces every request, search paces searches (which also take a
	// token from all).
	all    *rate.Limiter
	search *rate.Limiter
}

// config is connectors.<name>.config as users write it.
type config struct {
	Token             string        `json:"token"`
	APIURL            string        `json:"api_url"`
	Timeout           *sdk.Duration `json:"timeout"`
	RequestsPer10s    int           `json:"requests_per_10s"`
	SearchPerSecond   int           `json:"search_per_second"`
	SearchLag         *sdk.Duration `json:"search_lag"`
	FailedStatusNotes *bool         `json:"failed_status_notes"`
	// LeadSourceProperty is a contact property (single-line text) that a
	// contact created from a Click-to-WhatsApp ad gets the ad in.
	LeadSourceProperty string      `json:"lead_source_property"`
	Sync               *syncConfig `json:"sync"`
	// AttachMedia uploads customers' photos, voice notes and documents
	// to the file manager and attaches them to the logged message.
	AttachMedia *bool  `json:"attach_media"`
	FilesFolder string `json:"files_folder"`
}

type syncConfig struct {
	Properties []string `json:"properties"`
	// Interval is how often the hub syncs: the instance reports it
	// (SyncInterval).
	Interval *sdk.Duration `json:"interval"`
}

func (c *connector) configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*instance, error) {
	s, err := parseConfig(cfg)
	if err != nil || cfg.CheckOnly {
		return nil, err
	}
	// The bearer token must not follow a redirect to another host;
	// HubSpot's API does not redirect.
	s.client = sdkhttp.NewClient(maxConcurrent, c.transport)
	s.host = host
	return &instance{c: c, s: s}, nil
}

// SyncInterval is sync.interval; 0 (no sync section) turns sync off.
func (i *instance) SyncInterval() time.Duration { return i.s.syncEvery }

// propertyName is HubSpot's internal property name format.
var propertyName = regexp.MustCompile(`^[a-z0-9_]+$`)

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, apiURL: DefaultAPIURL, timeout: defaultTimeout, searchLag: defaultSearchLag, failedNotes: true}

	switch {
	case c.Token == "":
		return nil, fmt.Errorf("%s: required (the access token of a HubSpot private app, pat-…, with the scopes crm.objects.contacts.read, crm.objects.contacts.write and, to attach customers' files, files)", key("token"))
	case strings.ContainsAny(c.Token, " \t\r\n"):
		// Never quoted back: it is a secret.
		return nil, fmt.Errorf("%s: contains whitespace; paste the token alone", key("token"))
	}
	s.token = c.Token
	if p := c.LeadSourceProperty; p != "" {
		if strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
			return nil, fmt.Errorf("%s: %q is not a HubSpot property's internal name (lower case, digits and _, like whatsapp_lead_source)", key("lead_source_property"), p)
		}
		s.leadSource = p
	}

	if c.APIURL != "" {
		base, err := sdkhttp.BaseURL(c.APIURL, "")
		if err != nil {
			return nil, fmt.Errorf("%s: %v (such as %s; the token goes in config.token)", key("api_url"), err, DefaultAPIURL)
		}
		s.apiURL = base
	}

	var err error
	if s.timeout, err = duration(c.Timeout, defaultTimeout); err != nil {
		return nil, fmt.Errorf("%s: %v", key("timeout"), err)
	}
	if s.searchLag, err = duration(c.SearchLag, defaultSearchLag); err != nil {
		return nil, fmt.Errorf("%s: %v", key("search_lag"), err)
	}

	per10s := defaultRequestsPer10s
	if c.RequestsPer10s != 0 {
		if c.RequestsPer10s < 1 {
			return nil, fmt.Errorf("%s: must be a positive number of requests (HubSpot allows 100 per 10 s on Free and Starter)", key("requests_per_10s"))
		}
		per10s = c.RequestsPer10s
	}
	perSec := defaultSearchPerSecond
	if c.SearchPerSecond != 0 {
		if c.SearchPerSecond < 1 {
			return nil, fmt.Errorf("%s: must be a positive number of requests (HubSpot allows about 4 per second)", key("search_per_second"))
		}
		perSec = c.SearchPerSecond
	}
	s.all = limiter(per10s, 10*time.Second)
	s.search = limiter(perSec, time.Second)

	if c.FailedStatusNotes != nil {
		s.failedNotes = *c.FailedStatusNotes
	}
	s.attachMedia, s.filesFolder = true, defaultFilesFolder
	if c.AttachMedia != nil {
		s.attachMedia = *c.AttachMedia
	}
	if f := strings.TrimSpace(c.FilesFolder); f != "" {
		if !strings.HasPrefix(f, "/") || strings.Contains(f, "//") || strings.ContainsAny(f, "\x00\r\n") {
			return nil, fmt.Errorf("%s: %q is not a folder path of HubSpot's file manager (it starts with / and names folders, like /WhatsApp)", key("files_folder"), c.FilesFolder)
		}
		s.filesFolder = strings.TrimRight(f, "/")
		if s.filesFolder == "" {
			return nil, fmt.Errorf("%s: files go in a folder, not the root of the file manager (e.g. /WhatsApp)", key("files_folder"))
		}
	}

	if c.Sync != nil {
		if len(c.Sync.Properties) == 0 {
			return nil, fmt.Errorf("%s: required when sync is set (the contact properties to copy into contact attributes, e.g. [tier, hubspot_owner_id])", key("sync.properties"))
		}
		seen := map[string]bool{}
		for i, p := range c.Sync.Properties {
			switch {
			case !propertyName.MatchString(p):
				return nil, fmt.Errorf("%s[%d]: %q is not a HubSpot property's internal name (lower case letters, digits and _; see Settings → Properties)", key("sync.properties"), i, p)
			case seen[p]:
				return nil, fmt.Errorf("%s[%d]: %q is listed twice", key("sync.properties"), i, p)
			}
			seen[p] = true
		}
		s.syncProps = c.Sync.Properties
		if c.Sync.Interval == nil {
			return nil, fmt.Errorf("%s: required when sync is set (how often to pull changes, e.g. 5m)", key("sync.interval"))
		}
		if s.syncEvery, err = duration(c.Sync.Interval, 0); err != nil {
			return nil, fmt.Errorf("%s: %v", key("sync.interval"), err)
		}
	}
	return s, nil
}

func duration(v *sdk.Duration, def time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	if *v <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration such as 30s or 5m", v.String())
	}
	return v.D(), nil
}

// limiter is a token bucket that never lets more than n requests into any
// window of length per: its burst plus what it refills over the window
// add up to n.
func limiter(n int, per time.Duration) *rate.Limiter {
	burst := max(1, n/10)
	refill := n - burst
	if refill < 1 {
		// One request per window, spaced a little more than a window
		// apart so that rounding never puts two in one.
		return rate.NewLimiter(rate.Every(per+per/100), 1)
	}
	return rate.NewLimiter(rate.Limit(float64(refill)/per.Seconds()), burst)
}

// Health checks the token with the cheapest call that needs it.
func (i *instance) Health(ctx context.Context) error {
	c, s := i.c, i.s
	var out struct{}
	if err := c.call(ctx, s, opHealth, http.MethodGet, pathContacts+"?limit=1", nil, &out); err != nil {
		return errors.New(describe(s, err))
	}
	return nil
}

// lockCustomer serialises work on one customer's contact in this process.
func (c *connector) lockCustomer(key string) func() {
	c.customersMu.Lock()
	if c.customers == nil {
		c.customers = map[string]*customerLock{}
	}
	l := c.customers[key]
	if l == nil {
		l = &customerLock{}
		c.customers[key] = l
	}
	l.refs++
	c.customersMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		c.customersMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(c.customers, key)
		}
		c.customersMu.Unlock()
	}
}
