package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/host/eventid"
	"github.com/wahub/wahub/sdk"
)

// announceDeadLetter appends a deadletter.created event for a delivery
// that just gave up, in the same commit, so an alerts channel bound to
// "deadletter.*" hears of it. The event keeps the original's business and
// customer (it routes with their conversation). A dead letter of a
// deadletter event announces nothing: an alerts channel that is down
// must not feed itself.
func (s *Store) announceDeadLetter(tx *txn, deliveryID int64, reason string) error {
	var connector string
	var attempts int
	var body []byte
	if err := tx.QueryRow(`SELECT d.connector, d.attempts, e.body FROM deliveries d JOIN events e ON e.seq = d.seq WHERE d.id = ?`,
		deliveryID).Scan(&connector, &attempts, &body); err != nil {
		return err
	}
	var orig sdk.Event
	if err := json.Unmarshal(body, &orig); err != nil {
		return fmt.Errorf("event of delivery %d: %w", deliveryID, err)
	}
	if strings.HasPrefix(string(orig.Type), "deadletter.") {
		return nil
	}
	at := time.UnixMilli(s.now().UnixMilli()).UTC()
	ev := sdk.Event{
		// A replayed event that dies again is announced again: the
		// attempt count is part of the key.
		ID:         eventid.For(fmt.Sprintf("dead:%d:%d", deliveryID, attempts)),
		Type:       sdk.TypeDeadLetter,
		OccurredAt: at,
		ReceivedAt: at,
		Business:   orig.Business,
		Contact:    orig.Contact,
		DeadLetter: &sdk.DeadLetter{EventID: orig.ID, EventType: orig.Type, Connector: connector, Attempts: attempts, Error: reason},
	}
	if ev.Contact != nil {
		ev.Contact = &sdk.Contact{WAID: orig.Contact.WAID, UserID: orig.Contact.UserID, Name: orig.Contact.Name}
	}
	b, err := json.Marshal(&ev)
	if err != nil {
		return err
	}
	_, err = s.appendEvent(tx, &ev, b)
	return err
}
