package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// check connects, when the server can be reached, and asks which stream
// captures each subject the configuration publishes to, so that `wahub
// check` reports refused credentials, JetStream being off or a subject no
// stream stores before any event becomes a dead letter. An unreachable
// server is not an error here: it may be reachable only from where the
// hub runs, and the hub retries a server that is down.
func (s *settings) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	nc, err := natsgo.Connect(s.url, append(s.opts[:len(s.opts):len(s.opts)], natsgo.Timeout(checkTimeout))...)
	if err != nil {
		if errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			return fmt.Errorf("connectors.%s.config: the server refused the credentials: %v", s.name, err)
		}
		return nil
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("connectors.%s.config: %w", s.name, err)
	}
	return s.checkSubjects(ctx, js)
}

func (s *settings) checkSubjects(ctx context.Context, js jetstream.JetStream) error {
	subjects := []string{s.subject.String()}
	if !s.subject.Static() {
		subjects = s.subject.Names()
	}
	var missing []string
	for _, subj := range subjects {
		_, err := js.StreamNameBySubject(ctx, subj)
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrStreamNotFound):
			missing = append(missing, subj)
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, natsgo.ErrNoResponders):
			return fmt.Errorf("connectors.%s.config.url: JetStream is not enabled on the server (or for this account): the nats connector needs it", s.name)
		default:
			return fmt.Errorf("connectors.%s.config.subject: asking which stream captures %s: %v", s.name, subj, err)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("connectors.%s.config.subject: no JetStream stream captures %s: add it to a stream's subjects (events published there would become dead letters)", s.name, strings.Join(missing, ", "))
	}
	return nil
}

// Health reports whether the server answers and a stream captures the
// configured subjects.
func (st *state) Health(ctx context.Context) error {
	if !st.nc.IsConnected() {
		return fmt.Errorf("nats: not connected to %s (%s)", st.nc.ConnectedUrlRedacted(), st.nc.Status())
	}
	return st.checkSubjects(ctx, st.js)
}
