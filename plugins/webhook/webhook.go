// Package webhook is the built-in `webhook` connector: it POSTs every event
// it is given, as the hub's event JSON, to one HTTP endpoint, signed the
// Standard Webhooks way (https://www.standardwebhooks.com): headers
// webhook-id (the event id, the same on every retry, so the receiver can
// drop duplicates), webhook-timestamp (Unix seconds) and webhook-signature
// ("v1," + base64 HMAC-SHA256 of id.timestamp.body).
//
// Configuration (connectors.<name>.config):
//
//	url: https://example.com/wahub   # required; http or https
//	secret: whsec_...                # required; "whsec_" + base64, or any string used as is
//	timeout: 10s                     # one request, default 10s
//	headers: {Authorization: "Bearer ${TOKEN}"}   # optional, sent on every request
//
// A 2xx answer delivers an event; 408, 429, 5xx, a timeout or a connection
// error asks the hub to retry (after Retry-After when the endpoint sends
// one); any other answer fails the event for good: it becomes a dead letter
// a user can inspect and replay. Redirects are not followed.
//
// Media: an event whose message carries a file has message.media with the
// id, mime_type, sha256 (base64, as WhatsApp sends it), size, filename,
// caption, voice/animated and state (available, pending, unavailable;
// reason says why a file is unavailable). The connector does not send
// the bytes: the receiver fetches them with GET /api/v1/media/{id} and
// the hub's admin token, and can check them against sha256. Pending
// means the hub was still fetching the file from WhatsApp when it sent
// the event; unavailable means it never will (the event is delivered all
// the same: a lost file never holds up a conversation).
//
// Verify is the receiving side, for endpoints written in Go, tests and the
// sandbox; package webhooktest is a recording fake endpoint.
package webhook

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// Name is the connector's built-in name.
const Name = "webhook"

// Version is reported by Describe and sent in the User-Agent.
const Version = "1.0.0"

const (
	defaultTimeout = 10 * time.Second
	// maxConcurrent bounds how many conversations of one batch are in
	// flight at once: enough to hide an endpoint's latency, few enough not
	// to flood it (the hub's rate limit counts events, not connections).
	maxConcurrent = 8
	// maxRetryAfter caps a Retry-After: an endpoint asking for a day's
	// pause would otherwise park events far past anyone's expectation.
	maxRetryAfter = time.Hour
)

// New returns the webhook connector. It does nothing until Configure.
func New() sdk.Connector {
	c := &connector{now: time.Now}
	c.Runtime = sdk.NewRuntime(sdk.Info{Name: Name, Version: Version}, c.configure)
	return c
}

// connector is what outlives a configuration: the clock.
type connector struct {
	*sdk.Runtime[*settings]
	// now stamps webhook-timestamp and reads HTTP-date Retry-Afters;
	// tests fix it.
	now func() time.Time
}

// settings is a validated configuration, ready to deliver with: the
// connector's Instance.
type settings struct {
	c        *connector
	url      string
	endpoint string // url without credentials or query, for error messages
	secret   []byte
	timeout  time.Duration
	headers  http.Header
	client   *http.Client
}

// config is connectors.<name>.config as users write it.
type config struct {
	URL     string            `json:"url"`
	Secret  string            `json:"secret"`
	Timeout *sdk.Duration     `json:"timeout"`
	Headers map[string]string `json:"headers"`
}

func (c *connector) configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*settings, error) {
	s, err := parseConfig(cfg)
	if err != nil || cfg.CheckOnly {
		return nil, err
	}
	s.c = c
	s.client = sdkhttp.NewClient(maxConcurrent, nil)
	return s, nil
}

// reservedHeaders are set by the connector on every request; letting the
// configuration replace them would break signing or the HTTP framing.
var reservedHeaders = map[string]bool{
	HeaderID: true, HeaderTimestamp: true, HeaderSignature: true,
	"Content-Type": true, "Content-Length": true, "Content-Encoding": true,
	"Transfer-Encoding": true, "Host": true, "Connection": true,
}

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{timeout: defaultTimeout, headers: http.Header{}}

	if c.URL == "" {
		return nil, fmt.Errorf("%s: required (the endpoint that receives events)", key("url"))
	}
	u, err := url.Parse(c.URL)
	// The URL itself is never quoted back: it may carry a token.
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid URL", key("url"))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: must be an absolute http:// or https:// URL", key("url"))
	}
	s.url = c.URL
	s.endpoint = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()

	if c.Secret == "" {
		return nil, fmt.Errorf("%s: required (the key events are signed with; the receiver verifies the webhook-signature header with it)", key("secret"))
	}
	if s.secret, err = DecodeSecret(c.Secret); err != nil {
		return nil, fmt.Errorf("%s: %v", key("secret"), err)
	}

	if c.Timeout != nil {
		if *c.Timeout <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration such as 10s or 1m", key("timeout"), c.Timeout.String())
		}
		s.timeout = c.Timeout.D()
	}

	// Sorted: the same config always reports the same error.
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		value := c.Headers[name]
		switch {
		case !validHeaderName(name):
			return nil, fmt.Errorf("%s: %q is not a valid HTTP header name", key("headers"), name)
		case reservedHeaders[http.CanonicalHeaderKey(name)]:
			return nil, fmt.Errorf("%s: %s is set by the connector and cannot be configured", key("headers."+name), name)
		case strings.ContainsAny(value, "\r\n\x00"):
			// The value is not quoted: headers often hold tokens.
			return nil, fmt.Errorf("%s: the value contains a line break or NUL", key("headers."+name))
		}
		s.headers.Set(name, value)
	}
	return s, nil
}

// validHeaderName reports whether name is an RFC 9110 token; net/http
// would refuse every request with any other name, so refuse it once at
// configuration instead.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
