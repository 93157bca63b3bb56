// Package nats is the built-in `nats` connector: it publishes every event it
// is given to NATS JetStream with nats.go, with the event id as Nats-Msg-Id
// so that the stream's duplicate window drops a redelivery, and answers a
// batch only once JetStream acknowledged (stored) each message.
//
// Configuration (connectors.<name>.config):
//
//	url: nats://nats-1:4222,nats://nats-2:4222   # required
//	subject: wahub.events                        # required; or a template: wahub.{type}
//	format: wahub                                # or cloudevents (binary mode, ce-* headers)
//	source: /wahub/acme                          # CloudEvents source (default /wahub)
//	credentials_file: /etc/wahub/nats.creds      # or nkey_seed_file, token, username + password
//	tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}   # present = TLS
//	delivery_timeout: 30s                        # how long a batch waits for acks
//
// The subject must be captured by a stream (JetStream stores nothing
// otherwise); `wahub check` asks the server which stream captures it.
package nats

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahub/wahub/plugins/internal/stream"
	"github.com/wahub/wahub/sdk"
)

// Name is the connector's built-in name.
const Name = "nats"

// Version is reported by Describe.
const Version = "1.0.0"

const (
	defaultDeliveryTimeout = 30 * time.Second
	checkTimeout           = 10 * time.Second
	// maxPending bounds the publishes awaiting an ack; a batch is at most
	// the hub's batch_size, far below it.
	maxPending = 4096
)

// New returns the nats connector. It does nothing until Configure.
func New() sdk.Connector {
	return sdk.NewConnector(sdk.Info{Name: Name, Version: Version}, configure)
}

// state is a connection and its JetStream context: the connector's
// Instance.
type state struct {
	settings
	nc *natsgo.Conn
	js jetstream.JetStream
}

type settings struct {
	name            string
	url             string
	subject         stream.Template
	enc             stream.Encoder
	deliveryTimeout time.Duration
	opts            []natsgo.Option
}

type config struct {
	URL             string      `json:"url"`
	Subject         string      `json:"subject"`
	Format          string      `json:"format"`
	Source          string      `json:"source"`
	CredentialsFile string      `json:"credentials_file"`
	NKeySeedFile    string      `json:"nkey_seed_file"`
	Token           string      `json:"token"`
	Username        string      `json:"username"`
	Password        string      `json:"password"`
	TLS             *stream.TLS `json:"tls"`
	DeliveryTimeout string      `json:"delivery_timeout"`
}

// configure connects. With CheckOnly it validates, and asks the server
// about the subjects if it can reach it.
func configure(ctx context.Context, cfg sdk.Config, _ sdk.Host) (*state, error) {
	s, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.CheckOnly {
		return nil, s.check(ctx)
	}
	log := sdk.Logger().With("connector", s.name)
	opts := append(s.opts[:len(s.opts):len(s.opts)],
		// A server that is down at start, or goes away, is retried for
		// ever: batches meanwhile answer "retry" and nothing is lost.
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn("nats: disconnected", "err", err)
			}
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) { log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted()) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) { log.Warn("nats: error", "err", err) }),
	)
	nc, err := natsgo.Connect(s.url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connectors.%s.config: %w", s.name, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending), jetstream.WithPublishAsyncTimeout(s.deliveryTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connectors.%s.config: %w", s.name, err)
	}
	return &state{settings: *s, nc: nc, js: js}, nil
}

// Close ends the connection when the configuration is replaced or the
// plugin stops.
func (st *state) Close() error {
	st.nc.Close()
	return nil
}

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, deliveryTimeout: defaultDeliveryTimeout}

	if c.URL == "" {
		return nil, fmt.Errorf("%s: required (nats://host:4222, or several separated by commas)", key("url"))
	}
	for _, u := range strings.Split(c.URL, ",") {
		pu, err := url.Parse(strings.TrimSpace(u))
		if err != nil || pu.Host == "" || (pu.Scheme != "nats" && pu.Scheme != "tls") {
			// The URL is not quoted back: it may carry a password.
			return nil, fmt.Errorf("%s: each server must be nats://host:port or tls://host:port", key("url"))
		}
	}
	s.url = c.URL

	if c.Subject == "" {
		return nil, fmt.Errorf("%s: required (a subject such as wahub.events, or a template such as wahub.{type})", key("subject"))
	}
	t, err := stream.ParseTemplate(c.Subject, stream.NameRune)
	if err != nil {
		return nil, fmt.Errorf("%s: %v (a subject holds letters, digits, '_', '-' and '.' between tokens; no wildcards)", key("subject"), err)
	}
	if strings.HasPrefix(c.Subject, ".") || strings.HasSuffix(c.Subject, ".") || strings.Contains(c.Subject, "..") {
		return nil, fmt.Errorf("%s: %q has an empty token", key("subject"), c.Subject)
	}
	s.subject = t

	f, err := stream.ParseFormat(c.Format)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key("format"), err)
	}
	// The CloudEvents NATS binding prefixes attribute headers with ce-.
	s.enc = stream.Encoder{Format: f, Source: c.Source, CEPrefix: "ce-"}

	if c.DeliveryTimeout != "" {
		d, err := time.ParseDuration(c.DeliveryTimeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration such as 30s", key("delivery_timeout"), c.DeliveryTimeout)
		}
		s.deliveryTimeout = d
	}

	s.opts = []natsgo.Option{natsgo.Name("wahub " + cfg.Name)}
	auth := 0
	if c.CredentialsFile != "" {
		s.opts = append(s.opts, natsgo.UserCredentials(c.CredentialsFile))
		auth++
	}
	if c.NKeySeedFile != "" {
		o, err := natsgo.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", key("nkey_seed_file"), err)
		}
		s.opts = append(s.opts, o)
		auth++
	}
	if c.Token != "" {
		s.opts = append(s.opts, natsgo.Token(c.Token))
		auth++
	}
	if c.Username != "" || c.Password != "" {
		if c.Username == "" || c.Password == "" {
			return nil, errors.New(key("username") + ", " + key("password") + ": set both or neither")
		}
		s.opts = append(s.opts, natsgo.UserInfo(c.Username, c.Password))
		auth++
	}
	if auth > 1 {
		return nil, errors.New("connectors." + cfg.Name + ".config: set one of credentials_file, nkey_seed_file, token, username/password")
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config(func(k string) string { return key("tls." + k) })
		if err != nil {
			return nil, err
		}
		s.opts = append(s.opts, natsgo.Secure(tc))
	}
	return s, nil
}
