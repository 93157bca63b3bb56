// Package kafka is the built-in `kafka` connector: it writes every event it
// is given to a Kafka topic with franz-go, through an idempotent producer
// with acks=all, keyed by conversation so that one customer's events stay
// in one partition, in log order.
//
// Configuration (connectors.<name>.config):
//
//	brokers: [kafka-1:9092, kafka-2:9092]   # required
//	topic: wahub.events                     # required; or a template: wahub.{type}
//	format: wahub                           # or cloudevents (binary mode, ce_* headers)
//	source: /wahub/acme                     # CloudEvents source (default /wahub)
//	client_id: wahub
//	tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem}   # present = TLS
//	sasl: {mechanism: SCRAM-SHA-512, username: wahub, password: "${KAFKA_PASSWORD}"}
//	delivery_timeout: 30s                   # how long a batch waits for the brokers
//	compression: snappy                     # snappy (default), lz4, zstd, gzip, none
//	allow_auto_topic_creation: false
//
// A batch is answered only once the brokers acknowledged (or refused)
// every record of it. A retriable broker error, an unreachable cluster or
// the delivery timeout asks the hub to retry; a missing topic, a refused
// authorisation or a record the broker will never take fails the event
// with a dead letter saying so.
package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/wahub/wahub/plugins/internal/stream"
	"github.com/wahub/wahub/sdk"
)

// Name is the connector's built-in name.
const Name = "kafka"

// Version is reported by Describe.
const Version = "1.0.0"

const (
	defaultDeliveryTimeout = 30 * time.Second
	// checkTimeout bounds wahub check's metadata request.
	checkTimeout = 10 * time.Second
)

// New returns the kafka connector. It does nothing until Configure.
func New() sdk.Connector {
	return sdk.NewConnector(sdk.Info{Name: Name, Version: Version}, configure)
}

// state is a configured producer: the connector's Instance.
type state struct {
	settings
	client *kgo.Client

	mu sync.Mutex
	// inflight are the records produced and not yet answered, by event
	// id.
	inflight map[string]*flight
}

// settings is a validated configuration.
type settings struct {
	name            string
	brokers         []string
	topic           stream.Template
	enc             stream.Encoder
	deliveryTimeout time.Duration
	sasl            bool
	opts            []kgo.Opt
}

// config is connectors.<name>.config as users write it.
type config struct {
	Brokers                brokerList  `json:"brokers"`
	Topic                  string      `json:"topic"`
	Format                 string      `json:"format"`
	Source                 string      `json:"source"`
	ClientID               string      `json:"client_id"`
	TLS                    *stream.TLS `json:"tls"`
	SASL                   *saslConfig `json:"sasl"`
	DeliveryTimeout        string      `json:"delivery_timeout"`
	Compression            string      `json:"compression"`
	AllowAutoTopicCreation bool        `json:"allow_auto_topic_creation"`
}

// brokerList is a list of host:port, or one string of them separated by
// commas, which is what an environment variable can hold
// (brokers: ${KAFKA_BROKERS}).
type brokerList []string

func (b *brokerList) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*b = nil
		for _, s := range strings.Split(one, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*b = append(*b, s)
			}
		}
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return errors.New("want a list of host:port, or one string of them separated by commas")
	}
	*b = list
	return nil
}

type saslConfig struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
}

// configure builds a producer from the configuration. With CheckOnly it
// validates, and asks the cluster about the topics if it can reach it.
func configure(ctx context.Context, cfg sdk.Config, _ sdk.Host) (*state, error) {
	s, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.CheckOnly {
		return nil, s.check(ctx)
	}
	// NewClient does not connect: a cluster that is down now is retried
	// by every batch rather than failing the plugin's start.
	client, err := kgo.NewClient(s.opts...)
	if err != nil {
		return nil, fmt.Errorf("connectors.%s.config: %w", s.name, err)
	}
	return &state{settings: *s, client: client, inflight: map[string]*flight{}}, nil
}

// Close ends the producer when the configuration is replaced or the
// plugin stops; records not yet answered are failed (and the hub, not
// having heard "delivered", sends them again).
func (st *state) Close() error {
	st.client.Close()
	return nil
}

func parseConfig(cfg sdk.Config) (*settings, error) {
	var c config
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	key := cfg.Key
	s := &settings{name: cfg.Name, deliveryTimeout: defaultDeliveryTimeout}

	if len(c.Brokers) == 0 {
		return nil, fmt.Errorf("%s: required (a list of host:port of the Kafka bootstrap brokers)", key("brokers"))
	}
	for i, b := range c.Brokers {
		if b == "" || strings.Contains(b, "://") || !strings.Contains(b, ":") {
			return nil, fmt.Errorf("%s[%d]: %q is not host:port (no scheme: TLS is the tls key)", key("brokers"), i, b)
		}
	}
	s.brokers = c.Brokers

	if c.Topic == "" {
		return nil, fmt.Errorf("%s: required (a topic such as wahub.events, or a template such as wahub.{type})", key("topic"))
	}
	t, err := stream.ParseTemplate(c.Topic, stream.NameRune)
	if err != nil {
		return nil, fmt.Errorf("%s: %v (a topic holds letters, digits, '.', '_' and '-')", key("topic"), err)
	}
	if len(c.Topic) > 249 {
		return nil, fmt.Errorf("%s: longer than Kafka's 249 characters", key("topic"))
	}
	s.topic = t

	f, err := stream.ParseFormat(c.Format)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", key("format"), err)
	}
	// The CloudEvents Kafka binding prefixes attribute headers with ce_.
	s.enc = stream.Encoder{Format: f, Source: c.Source, CEPrefix: "ce_"}

	if c.DeliveryTimeout != "" {
		d, err := time.ParseDuration(c.DeliveryTimeout)
		if err != nil || d < time.Second {
			// franz-go refuses a record timeout under a second.
			return nil, fmt.Errorf("%s: %q is not a duration of at least 1s, such as 30s", key("delivery_timeout"), c.DeliveryTimeout)
		}
		s.deliveryTimeout = d
	}

	clientID := c.ClientID
	if clientID == "" {
		clientID = "wahub"
	}
	s.opts = []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(clientID),
		// Every in-sync replica has the record before it counts as
		// delivered. Idempotent writes are franz-go's default and are
		// kept: with them up to five produce requests per broker may be
		// in flight and a retried one still cannot reorder or duplicate
		// records within the session.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// Records with a key (the conversation) go to the partition
		// murmur2(key) picks, as Java clients do, so one conversation
		// is one partition and consumers in other languages agree.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// A record waits for the brokers at most this long (unless it is
		// already in a request, whose answer is awaited so that the
		// idempotent sequence stays valid).
		kgo.RecordDeliveryTimeout(s.deliveryTimeout),
		// A topic that is still missing after two metadata refreshes is
		// missing (a dead letter), not slow to appear; refreshes come
		// often enough that this takes about a second.
		kgo.UnknownTopicRetries(2),
		kgo.MetadataMinAge(500 * time.Millisecond),
		kgo.WithLogger(logger{sdk.Logger().With("connector", cfg.Name)}),
	}
	if c.AllowAutoTopicCreation {
		s.opts = append(s.opts, kgo.AllowAutoTopicCreation())
	}
	switch strings.ToLower(c.Compression) {
	case "", "snappy":
		s.opts = append(s.opts, kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
	case "lz4":
		s.opts = append(s.opts, kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()))
	case "zstd":
		s.opts = append(s.opts, kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()))
	case "gzip":
		s.opts = append(s.opts, kgo.ProducerBatchCompression(kgo.GzipCompression(), kgo.NoCompression()))
	case "none":
		s.opts = append(s.opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	default:
		return nil, fmt.Errorf("%s: %q is not one of snappy, lz4, zstd, gzip, none", key("compression"), c.Compression)
	}
	if c.TLS != nil {
		tc, err := c.TLS.Config(func(k string) string { return key("tls." + k) })
		if err != nil {
			return nil, err
		}
		s.opts = append(s.opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL != nil {
		m, err := c.SASL.mechanism(func(k string) string { return key("sasl." + k) })
		if err != nil {
			return nil, err
		}
		s.opts = append(s.opts, kgo.SASL(m))
		s.sasl = true
	}
	return s, nil
}

func (c *saslConfig) mechanism(key func(string) string) (sasl.Mechanism, error) {
	if c.Username == "" || c.Password == "" {
		return nil, errors.New(key("username") + ", " + key("password") + ": both required with sasl")
	}
	switch strings.ToUpper(c.Mechanism) {
	case "PLAIN":
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism(), nil
	case "":
		return nil, errors.New(key("mechanism") + ": required: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	}
	return nil, fmt.Errorf("%s: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", key("mechanism"), c.Mechanism)
}
