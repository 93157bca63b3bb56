package nats

import (
	"context"
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahub/wahub/plugins/internal/stream"
	"github.com/wahub/wahub/sdk"
)

// Deliver publishes every event of the batch and answers once JetStream
// acknowledged each message (or the delivery timeout passed): a result is
// Delivered only for a message the stream stored, or had stored already
// (a duplicate of the same Nats-Msg-Id within the stream's window).
func (st *state) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	outcomes := make([]stream.Outcome, len(events))
	futures := make([]jetstream.PubAckFuture, len(events))
	pctx, cancel := context.WithTimeout(ctx, st.deliveryTimeout)
	defer cancel()
	for i := range events {
		msg, err := st.message(&events[i])
		if err == nil {
			// One connection's publishes reach the stream in the order
			// sent, so a conversation is stored in the batch's order. No
			// library retries: a retried publish could overtake a later
			// one; the hub retries instead, holding the conversation.
			futures[i], err = st.js.PublishMsgAsync(msg, jetstream.WithMsgID(events[i].ID), jetstream.WithRetryAttempts(0))
		}
		if err != nil {
			outcomes[i] = stream.Outcome{Err: err}
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			outcomes[i] = stream.Outcome{Err: err}
		case <-pctx.Done():
			// Not acknowledged in time (the server is away, or the hub
			// gave up on the batch). The hub sends it again; if it was
			// stored after all, the same Nats-Msg-Id makes JetStream
			// drop the second copy.
			outcomes[i] = stream.Outcome{Pending: true}
		}
	}
	// Whether a stream captures a subject is asked once per subject and
	// batch, not once per conversation that failed on it.
	captured := map[string]bool{}
	return stream.Results(events, outcomes, func(ev *sdk.Event, err error) sdk.Result {
		return st.classify(ev, err, captured)
	})
}

// message builds ev's NATS message.
func (st *state) message(ev *sdk.Event) (*natsgo.Msg, error) {
	body, headers, err := st.enc.Encode(ev)
	if err != nil {
		return nil, err
	}
	msg := natsgo.NewMsg(st.subject.Expand(ev))
	msg.Data = body
	for _, h := range headers {
		msg.Header.Set(h.Key, h.Value)
	}
	return msg, nil
}

func (st *state) classify(ev *sdk.Event, err error, captured map[string]bool) sdk.Result {
	subject := st.subject.Expand(ev)
	switch {
	case errors.Is(err, natsgo.ErrMaxPayload):
		return sdk.FailedResult(ev.ID, fmt.Errorf("nats: subject %s: the event is larger than the server's max_payload", subject))
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, natsgo.ErrNoResponders):
		// Nobody answered: either no stream captures the subject, which
		// no retry fixes, or JetStream is between leaders. Ask.
		ok, asked := captured[subject]
		if !asked {
			ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
			_, serr := st.js.StreamNameBySubject(ctx, subject)
			cancel()
			ok = !errors.Is(serr, jetstream.ErrStreamNotFound)
			captured[subject] = ok
		}
		if !ok {
			return sdk.FailedResult(ev.ID, fmt.Errorf("nats: no JetStream stream captures subject %s: add it to a stream's subjects, then replay the dead letters", subject))
		}
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500 && apiErr.Code != 408 && apiErr.Code != 429 {
		return sdk.FailedResult(ev.ID, fmt.Errorf("nats: subject %s: the stream refused the message: %v", subject, err))
	}
	return sdk.RetryResult(ev.ID, 0, fmt.Errorf("nats: subject %s: %w", subject, err))
}
