package stream

import (
	"fmt"

	"github.com/wahub/wahub/sdk"
)

// Outcome is what the broker said about one published event: nil error
// means it acknowledged (stored) it.
type Outcome struct {
	Err error
	// Pending: no answer yet when the batch had to end.
	Pending bool
}

// Results turns the broker's answers into the hub's results, keeping each
// conversation in order: the events the broker acknowledged are
// delivered; the first event of a conversation the broker did not take
// gets classify's verdict, and the conversation's later events that were
// not taken either are held behind it (answered Retry without spending
// their attempts), so that the hub sends them again only after it.
//
// A later event the broker did take stays delivered: it is in the stream
// already, and sending it again would only add a duplicate. Both brokers
// make this rare: franz-go fails every later buffered record of a
// partition once one fails (gapless ordering), and one NATS connection's
// publishes are stored in the order sent.
func Results(events []sdk.Event, outcomes []Outcome, classify func(ev *sdk.Event, err error) sdk.Result) []sdk.Result {
	results := make([]sdk.Result, len(events))
	blocked := map[string]string{} // conversation → the event that blocks it
	for i := range events {
		ev := &events[i]
		o := outcomes[i]
		if o.Err == nil && !o.Pending {
			results[i] = sdk.DeliveredResult(ev.ID)
			continue
		}
		if first, ok := blocked[ev.ConversationID]; ok && ev.ConversationID != "" {
			results[i] = sdk.HeldResult(ev.ID, 0, fmt.Sprintf("not stored, to keep the conversation in order: the earlier event %s was not delivered", first))
			continue
		}
		err := o.Err
		if o.Pending {
			err = fmt.Errorf("the broker did not acknowledge the event before the batch ended")
		}
		res := classify(ev, err)
		if res.Outcome != sdk.Failed && ev.ConversationID != "" {
			// A dead letter does not block its conversation: the hub will
			// not send it again, so what follows must not wait for it.
			blocked[ev.ConversationID] = ev.ID
		}
		results[i] = res
	}
	return results
}
