package zendesk

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// maxGenerations bounds the tickets one message walks through looking for
// an open one (after lost KV state every earlier ticket may be closed).
const maxGenerations = 50

// pendingSlack is how much earlier than the pending mark a comment may be
// stamped and still count as ours (clocks of Zendesk and the hub differ).
const pendingSlack = 2 * time.Minute

// Deliver writes each event to Zendesk and answers one result per event.
// Conversations go concurrently, each one's events in order; once an
// event of a conversation is not delivered, its later events in the batch
// are held (sdk.DeliverInOrder): writing them now would put them on the
// ticket before it.
func (i *instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	return sdk.DeliverInOrder(ctx, events, maxConcurrent, func(ctx context.Context, ev *sdk.Event) sdk.Result {
		return i.c.deliverEvent(ctx, i.s, ev)
	})
}

func (c *connector) deliverEvent(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	switch ev.Type {
	case sdk.TypeMessageReceived, sdk.TypeButtonClicked:
		if ev.ConversationID == "" || ev.Contact.Key() == "" {
			return sdk.SkippedResult(ev.ID, "no conversation or customer on the event")
		}
		return c.customerMessage(ctx, s, ev)
	case sdk.TypeMessageSent:
		switch {
		case ev.Outbound == nil:
			return sdk.SkippedResult(ev.ID, "message.sent without outbound: who sent it is unknown")
		case ev.Outbound.Source == "connector:"+s.name:
			return sdk.SkippedResult(ev.ID, "sent for an agent's comment: already on the ticket")
		}
		return c.note(ctx, s, ev, outboundNote(ev))
	case sdk.TypeStatusFailed:
		if ev.Outbound == nil || ev.Outbound.Source != "connector:"+s.name {
			return sdk.SkippedResult(ev.ID, "failure of a message this connector did not send")
		}
		return c.note(ctx, s, ev, failedNote(ev))
	}
	return sdk.SkippedResult(ev.ID, "the zendesk connector turns customer messages into tickets; "+string(ev.Type)+" is not one")
}

// customerMessage adds a customer's message to the conversation's ticket,
// opening (or reopening) one as needed.
func (c *connector) customerMessage(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	kv := s.host.KV()
	body := renderMessage(ev)
	if ev.Message != nil && ev.Message.Media != nil {
		// A retry renders the comment as the first attempt did, so that
		// written finds it.
		var up uploadRecord
		if _, err := getJSON(ctx, kv, uploadKey(ev.ID), &up); err != nil {
			return result(ev, err)
		}
		body = withNote(body, up.Note)
	}
	if done, res := c.written(ctx, s, ev, body, true); done {
		return res
	}
	token, note, err := c.mediaUpload(ctx, s, ev)
	if err != nil {
		return result(ev, err)
	}
	body = withNote(renderMessage(ev), note)
	var uploads []string
	if token != "" {
		uploads = []string{token}
	}
	var conv convRecord
	if _, err := getJSON(ctx, kv, convKey(ev.ConversationID), &conv); err != nil {
		return result(ev, err)
	}
	conv.To = ev.Contact.Key()
	if ev.Business != nil && ev.Business.PhoneNumberID != "" {
		conv.PhoneNumberID = ev.Business.PhoneNumberID
	}
	for range maxGenerations {
		var t *zTicket
		var err error
		if conv.TicketID == 0 {
			if conv.Gen == 0 {
				conv.Gen = 1
			}
			ext := ticketExternalID(ev.ConversationID, conv.Gen)
			// An earlier attempt may have created it and lost the answer
			// or the KV write.
			if t, err = s.ticketByExternalID(ctx, ext); err != nil {
				return result(ev, err)
			}
			if t == nil {
				requester, err := c.endUser(ctx, s, ev.Contact)
				if err != nil {
					return result(ev, err)
				}
				conv.OpenedBy = ev.ID
				if err := putJSON(ctx, kv, convKey(ev.ConversationID), conv); err != nil {
					return result(ev, err)
				}
				if t, err = s.createTicket(ctx, ev, ext, requester, body, uploads); err != nil {
					return result(ev, err)
				}
				if err := c.adopt(ctx, s, ev, &conv, t); err != nil {
					return c.writtenButNotRecorded(ev, t.ID, err)
				}
				return c.markDone(ctx, s, ev, t.ID)
			}
			opener := conv.OpenedBy
			if err := c.adopt(ctx, s, ev, &conv, t); err != nil {
				return result(ev, err)
			}
			if opener == ev.ID {
				return c.markDone(ctx, s, ev, t.ID)
			}
		} else {
			t, err = s.getTicket(ctx, conv.TicketID)
			switch {
			case isStatus(err, 404):
				t = nil // deleted by an agent
			case err != nil:
				return result(ev, err)
			}
		}

		reopen := false
		if t != nil {
			switch t.Status {
			case "closed":
				t = nil
			case "solved":
				at, err := s.solvedAt(ctx, t)
				if err != nil {
					return result(ev, err)
				}
				if s.reopenWithin > 0 && c.now().Sub(at) < s.reopenWithin {
					reopen = true
				} else {
					t = nil
				}
			}
		}
		if t == nil {
			conv = convRecord{Gen: conv.Gen + 1, To: conv.To, PhoneNumberID: conv.PhoneNumberID}
			continue
		}

		if err := putJSON(ctx, kv, eventKey(ev.ID), eventRecord{TicketID: t.ID, At: c.now().Unix()}); err != nil {
			return result(ev, err)
		}
		status := ""
		if reopen {
			status = "open"
		}
		err = s.comment(ctx, t.ID, body, true, t.RequesterID, status, uploads)
		if isClosedRefusal(err) || isStatus(err, 404) {
			// Closed or deleted between our read and our write.
			conv = convRecord{Gen: conv.Gen + 1, To: conv.To, PhoneNumberID: conv.PhoneNumberID}
			continue
		}
		if err != nil {
			return result(ev, err)
		}
		return c.markDone(ctx, s, ev, t.ID)
	}
	return sdk.FailedResult(ev.ID, fmt.Errorf("conversation %s: %d tickets in a row are closed; check the tickets with external_id %s", ev.ConversationID, maxGenerations, ev.ConversationID))
}

// adopt makes t the conversation's current ticket and records whom replies
// on it go to.
func (c *connector) adopt(ctx context.Context, s *settings, ev *sdk.Event, conv *convRecord, t *zTicket) error {
	kv := s.host.KV()
	conv.TicketID = t.ID
	rec := ticketRecord{ConversationID: ev.ConversationID, To: conv.To, PhoneNumberID: conv.PhoneNumberID, RequesterID: t.RequesterID}
	if err := putJSON(ctx, kv, ticketKey(t.ID), rec); err != nil {
		return err
	}
	return putJSON(ctx, kv, convKey(ev.ConversationID), conv)
}

// writtenButNotRecorded answers an event whose ticket exists but whose
// record did not reach the KV: a retry finds the ticket by external_id
// and, the conversation record naming this event as its opener, adds
// nothing.
func (c *connector) writtenButNotRecorded(ev *sdk.Event, ticket int64, err error) sdk.Result {
	return sdk.RetryResult(ev.ID, 0, fmt.Errorf("ticket %d created, but not recorded: %w", ticket, err))
}

// markDone records that ev's comment is on the ticket.
func (c *connector) markDone(ctx context.Context, s *settings, ev *sdk.Event, ticket int64) sdk.Result {
	if err := putJSON(ctx, s.host.KV(), eventKey(ev.ID), eventRecord{TicketID: ticket, Done: true}); err != nil {
		// The comment is there; a redelivery finds the pending mark (or
		// the opener) and looks before writing again.
		c.log.Warn("zendesk: comment written but not recorded as done", "event_id", ev.ID, "ticket_id", ticket, "err", err)
	}
	return sdk.DeliveredResult(ev.ID)
}

// written reports whether ev's comment is already on its ticket: recorded
// as done, or pending (the answer of the write was lost) and found among
// the ticket's latest comments.
func (c *connector) written(ctx context.Context, s *settings, ev *sdk.Event, body string, public bool) (bool, sdk.Result) {
	var rec eventRecord
	found, err := getJSON(ctx, s.host.KV(), eventKey(ev.ID), &rec)
	switch {
	case err != nil:
		return true, result(ev, err)
	case !found || rec.TicketID == 0:
		return false, sdk.Result{}
	case rec.Done:
		return true, sdk.DeliveredResult(ev.ID)
	}
	comments, _, err := s.comments(ctx, rec.TicketID)
	switch {
	case isStatus(err, 404):
		return false, sdk.Result{}
	case err != nil:
		return true, result(ev, err)
	}
	since := time.Unix(rec.At, 0).Add(-pendingSlack)
	want := normalize(body)
	for _, cm := range comments {
		if cm.Public == public && !cm.CreatedAt.Before(since) && (normalize(cm.Body) == want || normalize(cm.PlainBody) == want) {
			return true, c.markDone(ctx, s, ev, rec.TicketID)
		}
	}
	return false, sdk.Result{}
}

func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// withNote adds the line about a file the comment does not carry.
func withNote(body, note string) string {
	if note == "" {
		return body
	}
	return body + "\n" + note
}

// note adds an internal note to the conversation's current ticket.
func (c *connector) note(ctx context.Context, s *settings, ev *sdk.Event, text string) sdk.Result {
	if ev.ConversationID == "" {
		return sdk.SkippedResult(ev.ID, "no conversation on the event")
	}
	if done, res := c.written(ctx, s, ev, text, false); done {
		return res
	}
	var conv convRecord
	found, err := getJSON(ctx, s.host.KV(), convKey(ev.ConversationID), &conv)
	switch {
	case err != nil:
		return result(ev, err)
	case !found || conv.TicketID == 0:
		return sdk.SkippedResult(ev.ID, "no ticket for this conversation yet")
	}
	if err := putJSON(ctx, s.host.KV(), eventKey(ev.ID), eventRecord{TicketID: conv.TicketID, At: c.now().Unix()}); err != nil {
		return result(ev, err)
	}
	err = s.comment(ctx, conv.TicketID, text, false, 0, "", nil)
	switch {
	case isClosedRefusal(err):
		return sdk.SkippedResult(ev.ID, fmt.Sprintf("ticket %d is closed; Zendesk takes no notes on it", conv.TicketID))
	case isStatus(err, 404):
		return sdk.SkippedResult(ev.ID, fmt.Sprintf("ticket %d was deleted", conv.TicketID))
	case err != nil:
		return result(ev, err)
	}
	return c.markDone(ctx, s, ev, conv.TicketID)
}
