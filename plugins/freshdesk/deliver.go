package freshdesk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
)

// Deliver answers one result per event. Conversations go concurrently
// (at most maxConcurrent), each one's events in order; once an event of a
// conversation is not delivered, its later events are held back
// (sdk.DeliverInOrder), so that the ticket never shows a message before
// an earlier one.
func (i *instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	return sdk.DeliverInOrder(ctx, events, maxConcurrent, func(ctx context.Context, ev *sdk.Event) sdk.Result {
		return i.c.deliverEvent(ctx, i.s, ev)
	})
}

func (c *connector) deliverEvent(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	switch ev.Type {
	case sdk.TypeMessageReceived, sdk.TypeButtonClicked:
		return c.inbound(ctx, s, ev)
	case sdk.TypeMessageSent:
		return c.sentNote(ctx, s, ev)
	case sdk.TypeStatusFailed:
		return c.failedNote(ctx, s, ev)
	}
	return sdk.SkippedResult(ev.ID, "freshdesk files customer messages, messages sent and failed replies, not "+string(ev.Type))
}

// convState is what the KV keeps per conversation (key conv:<id>).
type convState struct {
	TicketID  int64 `json:"ticket_id,omitempty"`
	ContactID int64 `json:"contact_id,omitempty"`
	// To and PhoneNumberID address the agents' replies: the customer as
	// the hub knows them, and the business number they last wrote to.
	To            string `json:"to,omitempty"`
	PhoneNumberID string `json:"phone_number_id,omitempty"`
	// Creating is set while a ticket is being created: see the package
	// doc on idempotency.
	Creating *creating `json:"creating,omitempty"`
}

type creating struct {
	EventID string `json:"event_id"`
	Tag     string `json:"tag"`
}

// ticketLink is what the KV keeps per ticket (key ticket:<id>).
type ticketLink struct {
	ConversationID string `json:"conversation_id"`
}

func convKey(conv string) string      { return "conv:" + conv }
func ticketKey(id int64) string       { return "ticket:" + strconv.FormatInt(id, 10) }
func eventKey(id string) string       { return "evt:" + id }
func contactKey(who string) string    { return "contact:" + who }
func replyKey(key string) string      { return "reply:" + key }
func markerTag(eventID string) string { return "wahub-" + shortHash(eventID) }

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// stored is a conversation's state with the bytes it was read as, for
// CompareAndSwap.
type stored struct {
	key string
	raw []byte // nil: not in the KV
	convState
}

func loadConv(ctx context.Context, kv sdk.KV, conv string) (*stored, error) {
	st := &stored{key: convKey(conv)}
	raw, found, err := kv.Get(ctx, st.key)
	if err != nil {
		return nil, fmt.Errorf("read %s from the hub's KV: %w", st.key, err)
	}
	if found {
		st.raw = raw
		if err := json.Unmarshal(raw, &st.convState); err != nil {
			return nil, fmt.Errorf("read %s from the hub's KV: %w", st.key, err)
		}
	}
	return st, nil
}

// save writes st if it changed, refusing to overwrite a value someone
// else wrote meanwhile.
func (st *stored) save(ctx context.Context, kv sdk.KV) error {
	raw, err := json.Marshal(st.convState)
	if err != nil {
		return err
	}
	if st.raw != nil && string(raw) == string(st.raw) {
		return nil
	}
	ok, err := kv.CompareAndSwap(ctx, st.key, st.raw, raw)
	if err != nil {
		return fmt.Errorf("write %s to the hub's KV: %w", st.key, err)
	}
	if !ok {
		return fmt.Errorf("write %s to the hub's KV: it changed meanwhile; trying again", st.key)
	}
	st.raw = raw
	return nil
}

// done reports whether an earlier delivery of the event had its effect.
func done(ctx context.Context, kv sdk.KV, eventID string) (bool, error) {
	_, found, err := kv.Get(ctx, eventKey(eventID))
	if err != nil {
		return false, fmt.Errorf("read %s from the hub's KV: %w", eventKey(eventID), err)
	}
	return found, nil
}

// markDone records the event's effect. A failure is only logged: the
// effect exists, so the event is delivered; what is lost is the guard
// against a redelivery, which would add the note twice.
func (c *connector) markDone(ctx context.Context, kv sdk.KV, eventID, effect string) {
	if err := kv.Put(ctx, eventKey(eventID), []byte(effect)); err != nil {
		c.log.Warn("event delivered but not recorded; a redelivery would repeat it", "event_id", eventID, "err", err)
	}
	if strings.HasPrefix(effect, "note:") {
		_ = kv.Delete(ctx, pendingKey(eventID)) // a leftover only costs a look-up
	}
}

// pending is pending:<event id>: the event's note is being added to a
// ticket since At (Unix seconds).
type pending struct {
	TicketID int64 `json:"ticket_id"`
	At       int64 `json:"at"`
}

func pendingKey(eventID string) string { return "pending:" + eventID }

// pendingSlack is how much earlier than the pending mark a note may be
// stamped and still count as ours (the clocks of Freshdesk and the hub
// differ).
const pendingSlack = 2 * time.Minute

func (c *connector) markPending(ctx context.Context, kv sdk.KV, eventID string, ticketID int64) error {
	raw, _ := json.Marshal(pending{TicketID: ticketID, At: c.now().Unix()})
	if err := kv.Put(ctx, pendingKey(eventID), raw); err != nil {
		return fmt.Errorf("write %s to the hub's KV: %w", pendingKey(eventID), err)
	}
	return nil
}

// pendingNote finds the note an earlier delivery of the event was adding
// to t when it ended without recording it: the customer's incoming note
// with the same text, added since the pending mark. Only a delivery that
// left a mark reads the ticket's conversations.
func (c *connector) pendingNote(ctx context.Context, s *settings, eventID string, t ticket, html string) (int64, bool, error) {
	raw, found, err := s.host.KV().Get(ctx, pendingKey(eventID))
	if err != nil {
		return 0, false, fmt.Errorf("read %s from the hub's KV: %w", pendingKey(eventID), err)
	}
	var p pending
	if !found || json.Unmarshal(raw, &p) != nil || p.TicketID != t.ID {
		return 0, false, nil
	}
	convs, err := c.conversations(ctx, s, t.ID)
	if err != nil {
		return 0, false, fmt.Errorf("%w (looking for the note an interrupted delivery added)", err)
	}
	since := time.Unix(p.At, 0).Add(-pendingSlack)
	want := normalize(html)
	for i := len(convs) - 1; i >= 0; i-- {
		cv := convs[i]
		if cv.Incoming && !cv.Private && cv.UserID == t.RequesterID && !cv.CreatedAt.Before(since) && normalize(cv.Body) == want {
			return cv.ID, true, nil
		}
	}
	return 0, false, nil
}

// inbound files a customer's message: a new ticket or a note on the
// conversation's ticket.
func (c *connector) inbound(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	kv := s.host.KV()
	if ok, err := done(ctx, kv, ev.ID); err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	} else if ok {
		return sdk.DeliveredResult(ev.ID)
	}
	who := ev.Contact.Key()
	if who == "" {
		return sdk.FailedResult(ev.ID, errors.New("the event names no customer (no wa_id or user_id): nothing to file a ticket for"))
	}
	conv := ev.ConversationID
	if conv == "" {
		conv = "customer:" + who
	}
	st, err := loadConv(ctx, kv, conv)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	st.To = who
	if ev.Business != nil && ev.Business.PhoneNumberID != "" {
		st.PhoneNumberID = ev.Business.PhoneNumberID
	}
	msg := renderMessage(ev)

	if st.Creating != nil {
		// A delivery before this one was creating a ticket when it ended
		// without recording the ticket's id.
		t, found, err := c.findMarked(ctx, s, st)
		if err != nil {
			return resultFor(ev.ID, err)
		}
		creator := st.Creating.EventID
		st.Creating = nil
		if found {
			st.TicketID = t.ID
			if err := c.linkTicket(ctx, kv, st, conv); err != nil {
				return sdk.RetryResult(ev.ID, 0, err)
			}
			if creator == ev.ID {
				c.markDone(ctx, kv, ev.ID, "ticket:"+strconv.FormatInt(t.ID, 10))
				return sdk.DeliveredResult(ev.ID)
			}
		}
	}

	file, note, err := c.inboundMedia(ctx, s, ev)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	defer file.close()
	msg.html += note

	if st.TicketID != 0 {
		t, err := c.getTicket(ctx, s, st.TicketID, false)
		switch {
		case isStatus(err, http.StatusNotFound):
			c.log.Info("the conversation's ticket is gone; opening a new one", "ticket_id", st.TicketID)
			st.TicketID = 0
		case err != nil:
			return resultFor(ev.ID, fmt.Errorf("%w (looking up ticket %d)", err, st.TicketID))
		case t.Status == statusResolved || t.Status == statusClosed:
			reopen, err := c.shouldReopen(ctx, s, t)
			if err != nil {
				return resultFor(ev.ID, err)
			}
			if !reopen {
				st.TicketID = 0
				break
			}
			if _, err := c.updateTicket(ctx, s, t.ID, map[string]any{"status": statusOpen}); err != nil {
				return resultFor(ev.ID, fmt.Errorf("%w (reopening ticket %d)", err, t.ID))
			}
		}
		if st.TicketID != 0 {
			// A delivery before this one may have added the note and
			// lost the answer (or crashed before recording it).
			if id, found, err := c.pendingNote(ctx, s, ev.ID, t, msg.html); err != nil {
				return resultFor(ev.ID, err)
			} else if found {
				c.markDone(ctx, kv, ev.ID, "note:"+strconv.FormatInt(id, 10))
				return sdk.DeliveredResult(ev.ID)
			}
			if err := c.markPending(ctx, kv, ev.ID, t.ID); err != nil {
				return sdk.RetryResult(ev.ID, 0, err)
			}
			body := map[string]any{"body": msg.html, "private": false, "incoming": true, "user_id": t.RequesterID}
			note, err := c.addNote(ctx, s, t.ID, body, file)
			if file != nil && fileRefused(err) {
				body["body"] = msg.html + refusedNote(mediafile.Noun(ev.Message), err, file.id)
				note, err = c.addNote(ctx, s, t.ID, body, nil)
			}
			if isStatus(err, http.StatusNotFound) {
				// Deleted since the look-up: the next attempt opens a
				// new ticket.
				return sdk.RetryResult(ev.ID, 0, fmt.Errorf("%w (ticket %d was deleted meanwhile)", err, t.ID))
			}
			if err != nil {
				return resultFor(ev.ID, fmt.Errorf("%w (adding the message to ticket %d)", err, t.ID))
			}
			if err := st.save(ctx, kv); err != nil {
				c.log.Warn("note added but the conversation's address not updated", "err", err)
			}
			c.markDone(ctx, kv, ev.ID, "note:"+strconv.FormatInt(note.ID, 10))
			return sdk.DeliveredResult(ev.ID)
		}
	}
	return c.openTicket(ctx, s, ev, conv, st, msg, file)
}

// shouldReopen decides between reopening a resolved or closed ticket and
// opening a new one: reopen when the customer writes within reopen_within
// of the resolution, as a customer's email reply would.
func (c *connector) shouldReopen(ctx context.Context, s *settings, t ticket) (bool, error) {
	if s.reopenWithin <= 0 {
		return false, nil
	}
	// The stats cost a credit more, so they are asked only now. The
	// resolution time, not updated_at: the automatic closure of a
	// resolved ticket updates it days later.
	full, err := c.getTicket(ctx, s, t.ID, true)
	if err != nil {
		return false, fmt.Errorf("%w (reading when ticket %d was resolved)", err, t.ID)
	}
	at := full.UpdatedAt
	if full.Stats != nil {
		switch {
		case full.Stats.ResolvedAt != nil:
			at = *full.Stats.ResolvedAt
		case full.Stats.ClosedAt != nil:
			at = *full.Stats.ClosedAt
		}
	}
	return c.now().Sub(at) <= s.reopenWithin, nil
}

// findMarked looks for the ticket an interrupted delivery may have
// created, by its tag, among the requester's newest tickets.
func (c *connector) findMarked(ctx context.Context, s *settings, st *stored) (ticket, bool, error) {
	if st.ContactID == 0 {
		return ticket{}, false, nil
	}
	list, err := c.recentTickets(ctx, s, st.ContactID)
	if err != nil {
		return ticket{}, false, fmt.Errorf("%w (looking for a ticket an interrupted delivery created)", err)
	}
	for _, t := range list {
		for _, tag := range t.Tags {
			if tag == st.Creating.Tag {
				return t, true, nil
			}
		}
	}
	return ticket{}, false, nil
}

// linkTicket records the conversation's ticket, both ways.
func (c *connector) linkTicket(ctx context.Context, kv sdk.KV, st *stored, conv string) error {
	link, _ := json.Marshal(ticketLink{ConversationID: conv})
	if err := kv.Put(ctx, ticketKey(st.TicketID), link); err != nil {
		return fmt.Errorf("write %s to the hub's KV: %w", ticketKey(st.TicketID), err)
	}
	return st.save(ctx, kv)
}

// openTicket creates the conversation's ticket with ev as its first
// message.
func (c *connector) openTicket(ctx context.Context, s *settings, ev *sdk.Event, conv string, st *stored, msg rendered, file *inboundFile) sdk.Result {
	kv := s.host.KV()
	var t ticket
	for attempt := 1; ; attempt++ {
		contactID, err := c.ensureContact(ctx, s, ev)
		if err != nil {
			return resultFor(ev.ID, err)
		}
		st.ContactID = contactID
		st.Creating = &creating{EventID: ev.ID, Tag: markerTag(ev.ID)}
		if err := st.save(ctx, kv); err != nil {
			return sdk.RetryResult(ev.ID, 0, err)
		}
		t, err = c.createTicket(ctx, s, c.ticketBody(s, ev, msg, contactID, st.Creating.Tag), file)
		if err == nil {
			break
		}
		if file != nil && fileRefused(err) {
			// Not created: the ticket goes without the file, saying so.
			msg.html += refusedNote(mediafile.Noun(ev.Message), err, file.id)
			file = nil
			continue
		}
		ae, answered := asAPIError(err)
		if answered && ae.status >= 400 && ae.status < 500 && ae.status != http.StatusRequestTimeout {
			// Refused, so not created: no ticket to look for later.
			st.Creating = nil
			if serr := st.save(ctx, kv); serr != nil {
				c.log.Warn("could not clear the ticket-creation marker", "err", serr)
			}
		}
		if answered && ae.field("requester_id") != nil && attempt == 1 {
			// The contact remembered is gone (deleted or merged by an
			// agent): look the customer up again, once.
			if err := kv.Delete(ctx, contactKey(ev.Contact.Key())); err != nil {
				return sdk.RetryResult(ev.ID, 0, err)
			}
			continue
		}
		return resultFor(ev.ID, fmt.Errorf("%w (opening a ticket)", err))
	}
	st.TicketID = t.ID
	st.Creating = nil
	if err := c.linkTicket(ctx, kv, st, conv); err != nil {
		// The ticket exists; the marker left in conv: lets the next
		// attempt find it instead of creating another.
		return sdk.RetryResult(ev.ID, 0, err)
	}
	c.markDone(ctx, kv, ev.ID, "ticket:"+strconv.FormatInt(t.ID, 10))
	return sdk.DeliveredResult(ev.ID)
}

func (c *connector) ticketBody(s *settings, ev *sdk.Event, msg rendered, requester int64, marker string) map[string]any {
	tags := []string{"whatsapp"}
	team := ""
	if ev.Route != nil {
		team = ev.Route.Team
		if ev.Route.Team != "" {
			tags = append(tags, "team_"+ev.Route.Team)
		}
		if ev.Route.Rule != "" {
			tags = append(tags, "rule_"+ev.Route.Rule)
		}
	}
	tags = append(append(tags, s.tags...), marker)
	body := map[string]any{
		"subject":      subject(ev, msg),
		"description":  msg.html,
		"requester_id": requester,
		"status":       s.status,
		"priority":     s.priorityFor(team),
		"source":       s.source,
		"tags":         tags,
	}
	if g, ok := s.groups[team]; ok {
		body["group_id"] = g
	}
	return body
}

// ensureContact returns the customer's Freshdesk contact, found or
// created, remembering its id.
func (c *connector) ensureContact(ctx context.Context, s *settings, ev *sdk.Event) (int64, error) {
	kv := s.host.KV()
	who := ev.Contact.Key()
	if raw, found, err := kv.Get(ctx, contactKey(who)); err != nil {
		return 0, fmt.Errorf("read %s from the hub's KV: %w", contactKey(who), err)
	} else if found {
		if id, err := strconv.ParseInt(string(raw), 10, 64); err == nil && id > 0 {
			return id, nil
		}
	}
	var fields []string
	value := ""
	name := ev.Contact.Name
	if ev.Contact.WAID != "" {
		value = "+" + ev.Contact.WAID
		fields = []string{"phone", "mobile"}
		if name == "" {
			name = value
		}
	} else {
		value = "whatsapp:" + ev.Contact.UserID
		fields = []string{"unique_external_id"}
		if name == "" {
			name = "WhatsApp " + ev.Contact.UserID
		}
	}
	find := func() (int64, error) {
		for _, f := range fields {
			list, err := c.findContacts(ctx, s, f, value)
			if err != nil {
				return 0, fmt.Errorf("%w (looking up the customer by %s)", err, f)
			}
			if len(list) > 0 {
				return list[0].ID, nil
			}
		}
		return 0, nil
	}
	id, err := find()
	if err != nil {
		return 0, err
	}
	if id == 0 {
		created, cerr := c.createContact(ctx, s, map[string]any{"name": name, fields[0]: value})
		switch {
		case cerr == nil:
			id = created.ID
		case isStatus(cerr, http.StatusConflict):
			// The number belongs to a contact the look-up did not return
			// (created meanwhile, or holding it in another field):
			// Freshdesk names the holder.
			ae, _ := asAPIError(cerr)
			for _, f := range ae.fields {
				if n, ok := f.AdditionalInfo["user_id"].(float64); ok && n > 0 {
					id = int64(n)
				}
			}
			if id == 0 {
				if id, err = find(); err != nil {
					return 0, err
				}
			}
			if id == 0 {
				return 0, fmt.Errorf("%w (creating the customer's contact)", cerr)
			}
		default:
			return 0, fmt.Errorf("%w (creating the customer's contact)", cerr)
		}
	}
	if err := kv.Put(ctx, contactKey(who), []byte(strconv.FormatInt(id, 10))); err != nil {
		c.log.Warn("contact found but not remembered", "err", err)
	}
	return id, nil
}

// sentNote adds a message the hub sent for someone else than this
// connector (a trigger, the admin API, another connector) to the ticket,
// as a private note, so agents see all the customer received.
func (c *connector) sentNote(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	source := "the hub"
	if ev.Outbound != nil && ev.Outbound.Source != "" {
		source = ev.Outbound.Source
	}
	if source == "connector:"+s.name {
		return sdk.SkippedResult(ev.ID, "an agent's reply from this ticket, already on it")
	}
	text := "<p><em>Sent to the customer on WhatsApp by " + html.EscapeString(source) + ":</em></p>" + renderMessage(ev).html
	return c.privateNote(ctx, s, ev, text)
}

// failedNote tells agents that one of their replies did not reach the
// customer.
func (c *connector) failedNote(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	if ev.Outbound == nil || ev.Outbound.Source != "connector:"+s.name {
		return sdk.SkippedResult(ev.ID, "a failed message that is not an agent's reply from Freshdesk")
	}
	text := "<p><strong>A reply did not reach the customer on WhatsApp.</strong></p>"
	if ev.Status != nil {
		for _, e := range ev.Status.Errors {
			line := strconv.Itoa(e.Code)
			for _, part := range []string{e.Title, e.Message, e.Details} {
				if part != "" {
					line += ": " + part
				}
			}
			text += "<p>WhatsApp error " + html.EscapeString(line) + "</p>"
		}
	}
	if id, ok := replyIDFromKey(ev.Outbound.IdempotencyKey); ok {
		text += "<p>The reply: conversation " + strconv.FormatInt(id, 10) + " on this ticket.</p>"
	}
	return c.privateNote(ctx, s, ev, text)
}

func (c *connector) privateNote(ctx context.Context, s *settings, ev *sdk.Event, body string) sdk.Result {
	kv := s.host.KV()
	if ok, err := done(ctx, kv, ev.ID); err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	} else if ok {
		return sdk.DeliveredResult(ev.ID)
	}
	if ev.ConversationID == "" {
		return sdk.SkippedResult(ev.ID, "no conversation, so no ticket")
	}
	st, err := loadConv(ctx, kv, ev.ConversationID)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	if st.TicketID == 0 {
		return sdk.SkippedResult(ev.ID, "the conversation has no ticket yet")
	}
	note, err := c.addNote(ctx, s, st.TicketID, map[string]any{"body": body, "private": true}, nil)
	if isStatus(err, http.StatusNotFound) {
		return sdk.SkippedResult(ev.ID, fmt.Sprintf("ticket %d was deleted", st.TicketID))
	}
	if err != nil {
		return resultFor(ev.ID, fmt.Errorf("%w (adding a private note to ticket %d)", err, st.TicketID))
	}
	c.markDone(ctx, kv, ev.ID, "note:"+strconv.FormatInt(note.ID, 10))
	return sdk.DeliveredResult(ev.ID)
}
