package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/wahub/wahub/host/eventid"
	"github.com/wahub/wahub/sdk"
)

// quoteEvents fills Message.Quoted of events that reply or react to an
// earlier message the log or the outbox has. It reads before the write is
// queued: a quoted message in the same webhook body is not found, which
// costs only the quote.
func (s *Store) quoteEvents(ctx context.Context, events []sdk.Event) {
	for i := range events {
		m := events[i].Message
		if m == nil || m.Quoted != nil {
			continue
		}
		id := ""
		switch {
		case m.Reaction != nil:
			id = m.Reaction.MessageID
		case m.Context != nil:
			id = m.Context.ID
		}
		if id == "" {
			continue
		}
		if q, err := s.Quote(ctx, id); err == nil && q != nil {
			m.Quoted = q
		}
	}
}

// Quote is the message wamid as the hub knows it: one it sent (from the
// outbox) or one the customer sent (from the log); nil when it knows none.
func (s *Store) Quote(ctx context.Context, wamid string) (*sdk.Quoted, error) {
	var req []byte
	err := s.reader.QueryRowContext(ctx, `SELECT request FROM outbox WHERE wamid = ?`, wamid).Scan(&req)
	switch {
	case err == nil:
		var msg sdk.OutboundMessage
		if json.Unmarshal(req, &msg) != nil {
			return nil, nil
		}
		q := &sdk.Quoted{ID: wamid, From: "business", Type: "text", Text: msg.Text}
		switch {
		case msg.Template != nil:
			q.Type, q.Text = "template", "[template "+msg.Template.Name+"]"
		case len(msg.Interactive) > 0:
			var in struct {
				Body struct {
					Text string `json:"text"`
				} `json:"body"`
			}
			_ = json.Unmarshal(msg.Interactive, &in)
			q.Type, q.Text = "interactive", in.Body.Text
		case msg.Reaction != nil:
			q.Type, q.Text = "reaction", msg.Reaction.Emoji
		}
		return q, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	var body []byte
	err = s.reader.QueryRowContext(ctx, `SELECT body FROM events WHERE id = ?`, eventid.Message(wamid)).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ev sdk.Event
	if json.Unmarshal(body, &ev) != nil || ev.Message == nil {
		return nil, nil
	}
	q := &sdk.Quoted{ID: wamid, From: "customer", Type: ev.Message.Type, Text: ev.Message.Text}
	if q.Text == "" && ev.Message.Media != nil {
		q.Text = "[" + ev.Message.Type + "]"
	}
	return q, nil
}
