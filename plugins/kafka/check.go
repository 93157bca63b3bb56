package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// check asks the cluster, when it can be reached, whether the topics the
// configuration names exist and the credentials are accepted, so that
// `wahub check` reports a missing topic or a refused login before any
// event becomes a dead letter. An unreachable cluster is not an error
// here: it may be reachable only from where the hub runs, and the hub
// retries a cluster that is down.
func (s *settings) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	client, err := kgo.NewClient(append(s.opts[:len(s.opts):len(s.opts)], kgo.RequestRetries(0))...)
	if err != nil {
		return fmt.Errorf("connectors.%s.config: %w", s.name, err)
	}
	defer client.Close()
	err = s.checkTopics(ctx, client)
	if err == nil || unreachable(err) {
		return nil
	}
	return err
}

// checkTopics asks for the metadata of the configured topics (every name
// a template gives the known event types).
func (s *settings) checkTopics(ctx context.Context, client *kgo.Client) error {
	topics := []string{s.topic.String()}
	if !s.topic.Static() {
		topics = s.topic.Names()
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, client)
	if err != nil {
		if errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.IllegalSaslState) {
			return fmt.Errorf("connectors.%s.config.sasl: the brokers refused the login: %v", s.name, err)
		}
		if s.sasl && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
			// Brokers hang up on a refused SASL login rather than answer.
			return fmt.Errorf("connectors.%s.config.sasl: the broker closed the connection during the SASL login: check the mechanism, username and password", s.name)
		}
		return fmt.Errorf("connectors.%s.config.brokers: %w", s.name, err)
	}
	var missing, denied []string
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		switch err := kerr.ErrorForCode(t.ErrorCode); {
		case err == nil:
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			missing = append(missing, name)
		case errors.Is(err, kerr.TopicAuthorizationFailed):
			denied = append(denied, name)
		default:
			return fmt.Errorf("connectors.%s.config.topic: topic %s: %v", s.name, name, err)
		}
	}
	if len(denied) > 0 {
		return fmt.Errorf("connectors.%s.config.topic: not authorised to describe topic %s: grant the connector's principal DESCRIBE and WRITE", s.name, strings.Join(denied, ", "))
	}
	if len(missing) > 0 {
		return fmt.Errorf("connectors.%s.config.topic: topic %s does not exist on the cluster: create it (events to it would become dead letters)", s.name, strings.Join(missing, ", "))
	}
	return nil
}

// unreachable reports whether err means no broker could be reached at all
// (rather than one that answered no).
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrClientClosed)
}
