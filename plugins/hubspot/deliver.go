package hubspot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/wahub/wahub/sdk"
)

// KV key prefixes; see the package documentation.
const (
	kvContact = "contact:"
	kvEvent   = "evt:"
	// markerPrefix starts a contact: value while the contact is being
	// created; the rest is when the creation started.
	markerPrefix = "creating:"
)

// hsTime is how timestamps are sent: ISO 8601 UTC with milliseconds,
// which hs_timestamp and search filters both take.
const hsTime = "2006-01-02T15:04:05.000Z"

// Deliver logs each event on its customer's contact and answers one result
// per event. Conversations go concurrently, each one's events in order;
// once an event of a conversation is not delivered, its later events are
// held (sdk.DeliverInOrder), so that the timeline never shows a later
// message without an earlier one that is still to come.
func (i *instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	return sdk.DeliverInOrder(ctx, events, maxConcurrent, func(ctx context.Context, ev *sdk.Event) sdk.Result {
		return i.c.deliverOne(ctx, i.s, ev)
	})
}

// kind is what the connector does with an event.
type kind int

const (
	kindSkip kind = iota
	kindInbound
	kindOutbound
	kindFailedStatus
)

func classify(s *settings, ev *sdk.Event) (kind, string) {
	switch ev.Type {
	case sdk.TypeMessageReceived, sdk.TypeButtonClicked:
		return kindInbound, ""
	case sdk.TypeMessageSent:
		return kindOutbound, ""
	case sdk.TypeStatusFailed:
		if !s.failedNotes {
			return kindSkip, "failed statuses are not logged (config.failed_status_notes is false)"
		}
		return kindFailedStatus, ""
	}
	return kindSkip, "the hubspot connector logs messages (message.received, button.clicked, message.sent) and failed statuses only"
}

func (c *connector) deliverOne(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	k, why := classify(s, ev)
	if k == kindSkip {
		return sdk.SkippedResult(ev.ID, why)
	}
	if ev.Contact.Key() == "" {
		return sdk.FailedResult(ev.ID, errors.New("the event names no customer (contact.wa_id or contact.user_id), so there is no HubSpot contact to log it on"))
	}
	kv := s.host.KV()
	if _, done, err := kv.Get(ctx, kvEvent+ev.ID); err != nil {
		return sdk.RetryResult(ev.ID, 0, fmt.Errorf("hub KV: reading %s%s: %w", kvEvent, ev.ID, err))
	} else if done {
		// A redelivery: HubSpot has it already.
		return sdk.DeliveredResult(ev.ID)
	}
	var ref *sdk.Referral
	if ev.Message != nil {
		if r, ok := sdk.ParseReferral(ev.Message.Referral); ok {
			ref = &r
		}
	}
	contactID, err := c.contactID(ctx, s, ev.Contact, ref)
	if err != nil {
		return c.result(s, ev, err)
	}
	att, err := c.attach(ctx, s, k, ev)
	if err != nil {
		return c.result(s, ev, err)
	}
	objID, err := c.logEvent(ctx, s, k, ev, contactID, att)
	var ae *apiError
	if errors.As(err, &ae) && (ae.status == http.StatusBadRequest || ae.status == http.StatusNotFound) {
		// The cached contact may have been deleted or merged in HubSpot
		// since: find the contact again and try once more, rather than
		// failing every later message of this customer.
		if newID, changed, rerr := c.recheckContact(ctx, s, ev.Contact, contactID); rerr == nil && changed {
			objID, err = c.logEvent(ctx, s, k, ev, newID, att)
		}
	}
	if err != nil {
		return c.result(s, ev, err)
	}
	if err := kv.Put(ctx, kvEvent+ev.ID, []byte(objID)); err != nil {
		// HubSpot has it: answering Retry would log it twice. Only the
		// guard against a future redelivery is missing.
		c.log.Warn("hubspot: message logged but not recorded as logged; a redelivery would log it again",
			"event_id", ev.ID, "object_id", objID, "err", err)
	}
	return sdk.DeliveredResult(ev.ID)
}

// result turns an error into the event's outcome.
func (c *connector) result(s *settings, ev *sdk.Event, err error) sdk.Result {
	var (
		pe *pausedError
		we *waitError
		ae *apiError
	)
	switch {
	case errors.As(err, &pe):
		// Not tried: the whole connector waits out a 429, and this event
		// is no more to blame than the others.
		return sdk.HeldResult(ev.ID, max(pe.until.Sub(c.now()), time.Second), err.Error())
	case errors.As(err, &we):
		return sdk.RetryResult(ev.ID, we.after, err)
	case errors.As(err, &ae):
		msg := errors.New(describe(s, err))
		switch {
		case ae.status == http.StatusTooManyRequests:
			return sdk.RetryResult(ev.ID, ae.pause, msg)
		case ae.status >= 500, ae.status == http.StatusRequestTimeout:
			return sdk.RetryResult(ev.ID, ae.retryAfter, msg)
		case ae.status == http.StatusLocked:
			return sdk.RetryResult(ev.ID, max(ae.retryAfter, pauseLocked), msg)
		}
		return sdk.FailedResult(ev.ID, msg)
	}
	// No answer, not sent, the hub's KV: all may work next time.
	return sdk.RetryResult(ev.ID, 0, err)
}

// ---- contacts ----

// waitError asks to retry after a while: an interrupted creation of the
// contact may have happened, and search cannot show it yet.
type waitError struct{ after time.Duration }

func (e *waitError) Error() string {
	return fmt.Sprintf("an earlier attempt to create this customer's HubSpot contact was interrupted; waiting %s for HubSpot's search to show the contact if it was created, so that it is not created twice (config.search_lag)", e.after.Round(time.Second))
}

// e164 is the customer's phone number in E.164, "" when WhatsApp gave
// only a user id.
func e164(ct *sdk.Contact) string {
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, ct.WAID)
	if digits == "" {
		return ""
	}
	return "+" + digits
}

// contactID returns the HubSpot contact of a customer: from the KV, else
// found by phone, else created.
func (c *connector) contactID(ctx context.Context, s *settings, ct *sdk.Contact, ref *sdk.Referral) (string, error) {
	key := kvContact + ct.Key()
	unlock := c.lockCustomer(key)
	defer unlock()
	kv := s.host.KV()
	phone := e164(ct)
	// A few rounds: a compare-and-swap lost to another writer (a
	// restarted plugin's leftover, a concurrent one) reads again.
	for range 3 {
		val, found, err := kv.Get(ctx, key)
		if err != nil {
			return "", fmt.Errorf("hub KV: reading %s: %w", key, err)
		}
		if found && !strings.HasPrefix(string(val), markerPrefix) && string(val) != "" {
			return string(val), nil
		}
		// cur is what a compare-and-swap must find: the marker of an
		// interrupted creation, or nothing.
		var cur []byte
		if found {
			cur = val
			since, ok := parseMarker(val)
			if ok {
				if wait := since.Add(s.searchLag).Sub(c.now()); wait > 0 {
					return "", &waitError{after: wait}
				}
			}
			// The interrupted creation is old enough for search to show
			// its contact, if it happened.
		}
		switch {
		case phone != "" && (found || !c.recentlyNotFound(phone)):
			obj, err := c.searchByPhone(ctx, s, phone)
			if err != nil {
				return "", err
			}
			if obj != nil {
				if ok, err := kv.CompareAndSwap(ctx, key, cur, []byte(obj.ID)); err != nil {
					return "", fmt.Errorf("hub KV: writing %s: %w", key, err)
				} else if !ok {
					continue
				}
				return string(obj.ID), nil
			}
			if !found {
				c.rememberNotFound(phone)
			}
		case found:
			c.log.Warn("hubspot: an earlier creation of this customer's contact was interrupted and the customer has no phone number to search by; creating the contact again, which may duplicate it", "customer", ct.Key())
		}
		marker := c.marker()
		if ok, err := kv.CompareAndSwap(ctx, key, cur, marker); err != nil {
			return "", fmt.Errorf("hub KV: writing %s: %w", key, err)
		} else if !ok {
			continue
		}
		return c.createContact(ctx, s, key, ct, phone, ref)
	}
	return "", fmt.Errorf("hub KV: %s keeps changing under this connector; is a second copy of the plugin running?", key)
}

func (c *connector) marker() []byte {
	return []byte(markerPrefix + c.now().UTC().Format(time.RFC3339Nano))
}

func parseMarker(v []byte) (time.Time, bool) {
	rest, ok := strings.CutPrefix(string(v), markerPrefix)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, rest)
	return t, err == nil
}

// searchByPhone finds the oldest contact whose phone or mobile phone is
// the number. HubSpot's EQ is an exact string match, so numbers stored in
// another format ("+55 11 9…") are not found.
func (c *connector) searchByPhone(ctx context.Context, s *settings, phone string) (*object, error) {
	req := searchRequest{
		FilterGroups: []filterGroup{
			{Filters: []filter{{PropertyName: "phone", Operator: "EQ", Value: phone}}},
			{Filters: []filter{{PropertyName: "mobilephone", Operator: "EQ", Value: phone}}},
		},
		Sorts:      []sortSpec{{PropertyName: "createdate", Direction: "ASCENDING"}},
		Properties: []string{"phone", "mobilephone", "firstname", "lastname", "createdate"},
		Limit:      10,
	}
	var resp searchResponse
	if err := c.call(ctx, s, opSearch, http.MethodPost, pathContactSearch, req, &resp); err != nil {
		return nil, err
	}
	if len(resp.Results) == 0 {
		return nil, nil
	}
	// Sorted already; sorted again so that a server ignoring the sort
	// still yields the oldest.
	sort.SliceStable(resp.Results, func(i, j int) bool {
		return resp.Results[i].prop("createdate") < resp.Results[j].prop("createdate")
	})
	return &resp.Results[0], nil
}

// createContact creates the contact under the marker the caller put in
// the KV, and replaces the marker with its id.
func (c *connector) createContact(ctx context.Context, s *settings, key string, ct *sdk.Contact, phone string, ref *sdk.Referral) (string, error) {
	kv := s.host.KV()
	props := map[string]string{}
	if ref != nil {
		// A customer who came from an ad is a lead, and the ad its source.
		props["lifecyclestage"] = "lead"
		if s.leadSource != "" {
			props[s.leadSource] = ref.Summary()
		}
	}
	if phone != "" {
		props["phone"] = phone
	}
	name := strings.TrimSpace(ct.Name)
	if name == "" {
		name = strings.TrimSpace(ct.Username)
	}
	if first, last := splitName(name); first != "" {
		props["firstname"] = first
		if last != "" {
			props["lastname"] = last
		}
	}
	var obj object
	err := c.call(ctx, s, opCreateContact, http.MethodPost, pathContacts, createRequest{Properties: props}, &obj)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusConflict {
		// A unique property (email, a custom one) matched an existing
		// contact, which HubSpot names.
		if id := existingID(ae.message); id != "" {
			obj, err = object{ID: flexString(id)}, nil
		}
	}
	if err != nil {
		if createdNot(err) {
			// Certainly not created: free the way for the next attempt
			// (the customer lock keeps anyone else off the key).
			if derr := kv.Delete(ctx, key); derr != nil {
				c.log.Warn("hubspot: could not clear a contact-creation marker; the next attempt waits config.search_lag", "key", key, "err", derr)
			}
		}
		return "", err
	}
	if phone != "" {
		c.forgetNotFound(phone)
	}
	if obj.ID == "" {
		return "", fmt.Errorf("HubSpot created a contact but its answer has no id")
	}
	if err := kv.Put(ctx, key, []byte(obj.ID)); err != nil {
		// The marker stays: a later delivery waits for search and finds
		// this contact instead of creating another.
		c.log.Warn("hubspot: contact created but its id not recorded", "key", key, "contact_id", string(obj.ID), "err", err)
	}
	c.log.Info("hubspot: contact created", "contact_id", string(obj.ID))
	return string(obj.ID), nil
}

// createdNot reports whether a failed create certainly did not happen:
// HubSpot refused it (4xx, 429) or it was never sent. A 5xx or a lost
// answer may hide a contact that exists.
func createdNot(err error) bool {
	var (
		ae *apiError
		pe *pausedError
		ne *notSentError
		te *transportError
	)
	switch {
	case errors.As(err, &ae):
		return ae.status < 500
	case errors.As(err, &pe), errors.As(err, &ne):
		return true
	case errors.As(err, &te):
		return false
	}
	// Encoding or building the request: never sent.
	return true
}

// existingID reads the id from HubSpot's "Contact already exists.
// Existing ID: 777".
func existingID(msg string) string {
	_, rest, ok := strings.Cut(msg, "Existing ID: ")
	if !ok {
		return ""
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
}

// splitName splits a WhatsApp profile name into HubSpot's first and last
// name at the first space: "Maria da Silva" → "Maria", "da Silva". A
// single word is a first name.
func splitName(name string) (first, last string) {
	name = strings.Join(strings.Fields(name), " ")
	i := strings.IndexFunc(name, unicode.IsSpace)
	if i < 0 {
		return name, ""
	}
	return name[:i], name[i+1:]
}

// recheckContact is called when logging on the cached contact id was
// refused: it reports a replacement id if the contact was merged or
// deleted in HubSpot since it was cached.
func (c *connector) recheckContact(ctx context.Context, s *settings, ct *sdk.Contact, id string) (string, bool, error) {
	var obj object
	err := c.call(ctx, s, opGetContact, http.MethodGet, pathContacts+"/"+url.PathEscape(id)+"?properties=phone", nil, &obj)
	var ae *apiError
	key := kvContact + ct.Key()
	kv := s.host.KV()
	switch {
	case err == nil && string(obj.ID) == id:
		return id, false, nil // the contact is fine; the refusal was about something else
	case err == nil && obj.ID != "":
		// Merged: HubSpot answers with the surviving contact.
		if _, err := kv.CompareAndSwap(ctx, key, []byte(id), []byte(obj.ID)); err != nil {
			return "", false, err
		}
		return string(obj.ID), true, nil
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		c.log.Info("hubspot: cached contact no longer exists; finding the customer's contact again", "contact_id", id)
		if err := kv.Delete(ctx, key); err != nil {
			return "", false, err
		}
		newID, err := c.contactID(ctx, s, ct, nil)
		if err != nil {
			return "", false, err
		}
		return newID, newID != id, nil
	}
	if err == nil {
		err = errors.New("HubSpot answered a contact without id")
	}
	return "", false, err
}

// ---- logging ----

// logEvent creates the communication (or, for a failed status, the note)
// and returns its id.
func (c *connector) logEvent(ctx context.Context, s *settings, k kind, ev *sdk.Event, contactID string, att attachment) (string, error) {
	if k == kindFailedStatus {
		return c.create(ctx, s, opNote, pathNotes, createRequest{
			Properties: map[string]string{
				"hs_note_body": noteBody(ev),
				"hs_timestamp": c.eventTime(ev),
			},
			Associations: toContact(contactID, assocNoteToContact),
		})
	}
	if att.fileID != "" && !c.commNoAttachments.Load() {
		id, err := c.logCommunication(ctx, s, k, ev, contactID, att, "")
		if !attachmentRefused(err) {
			return id, err
		}
		// This account's communications have no attachments: from now on
		// the file goes on a note beside the communication.
		c.commNoAttachments.Store(true)
		c.log.Info("hubspot: communications do not take attachments in this account; files go on a note beside each message", "err", err)
	}
	if att.fileID != "" {
		return c.logWithNote(ctx, s, k, ev, contactID, att)
	}
	return c.logCommunication(ctx, s, k, ev, contactID, att, "")
}

// logCommunication logs the message as a WhatsApp communication, with
// its file attached unless note (what the body says of the file
// instead) is set.
func (c *connector) logCommunication(ctx context.Context, s *settings, k kind, ev *sdk.Event, contactID string, att attachment, note string) (string, error) {
	body := communicationBody(k, ev)
	if att.note != "" {
		note = att.note
	}
	if note != "" {
		body = truncate(body + "\n(" + note + ")")
	}
	req := createRequest{
		Properties: map[string]string{
			"hs_communication_channel_type": "WHATS_APP",
			"hs_communication_logged_from":  "CRM",
			"hs_communication_body":         body,
			"hs_timestamp":                  c.eventTime(ev),
		},
		Associations: toContact(contactID, assocCommunicationToContact),
	}
	if att.fileID != "" && note == "" {
		// HubSpot's engagements take attachments as file ids,
		// semicolon-separated.
		req.Properties["hs_attachment_ids"] = att.fileID
	}
	return c.create(ctx, s, opCommunication, pathCommunications, req)
}

// create creates an engagement and returns its id.
func (c *connector) create(ctx context.Context, s *settings, o op, path string, req createRequest) (string, error) {
	var obj object
	if err := c.call(ctx, s, o, http.MethodPost, path, req, &obj); err != nil {
		return "", err
	}
	if obj.ID == "" {
		return "", errors.New("HubSpot logged the message but its answer has no id")
	}
	return string(obj.ID), nil
}

// eventTime places the message on the timeline when it happened, not
// when it was delivered.
func (c *connector) eventTime(ev *sdk.Event) string {
	t := ev.OccurredAt
	if t.IsZero() {
		t = ev.ReceivedAt
	}
	if t.IsZero() {
		t = c.now()
	}
	return t.UTC().Format(hsTime)
}

// customerName is how a message names the customer.
func customerName(ct *sdk.Contact) string {
	switch {
	case strings.TrimSpace(ct.Name) != "":
		return strings.TrimSpace(ct.Name)
	case ct.WAID != "":
		return e164(ct)
	case ct.Username != "":
		return ct.Username
	}
	return ct.Key()
}

// maxBodyChars keeps a body within what HubSpot stores for a text
// property (65,536 characters), with room for the prefix.
const maxBodyChars = 65000

// communicationBody is the text of the logged message. A communication
// has no direction property, so the text says it.
func communicationBody(k kind, ev *sdk.Event) string {
	var prefix string
	if k == kindOutbound {
		prefix = "Sent to " + customerName(ev.Contact)
		if ev.Outbound != nil && ev.Outbound.Source != "" {
			prefix += " (" + ev.Outbound.Source + ")"
		}
	} else {
		prefix = "Received from " + customerName(ev.Contact)
	}
	body := prefix + ": " + content(ev.Message)
	if m := ev.Message; m != nil {
		if q := m.Quoted; q != nil {
			who := "the customer's"
			if q.From == "business" {
				who = "your"
			}
			verb := "replying to"
			if m.Reaction != nil {
				verb = "on"
			}
			body += "\n(" + verb + " " + who + " message: " + strings.Join(strings.Fields(q.Text), " ") + ")"
		}
		if ref, ok := sdk.ParseReferral(m.Referral); ok {
			body += "\n(from " + ref.Summary() + ")"
		}
	}
	return truncate(body)
}

func noteBody(ev *sdk.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "WhatsApp message to %s could not be delivered", customerName(ev.Contact))
	if ev.Status != nil {
		if ev.Status.MessageID != "" {
			fmt.Fprintf(&b, " (message %s)", ev.Status.MessageID)
		}
		for _, e := range ev.Status.Errors {
			fmt.Fprintf(&b, "\nError %d: %s", e.Code, strings.Join(nonEmpty(e.Title, e.Message, e.Details), " — "))
		}
	}
	if ev.Outbound != nil && ev.Outbound.Source != "" {
		fmt.Fprintf(&b, "\nSent by %s", ev.Outbound.Source)
	}
	return truncate(b.String())
}

func truncate(s string) string {
	r := []rune(s)
	if len(r) <= maxBodyChars {
		return s
	}
	return string(r[:maxBodyChars]) + "…"
}

// content renders any kind of WhatsApp message as one line of text.
func content(m *sdk.Message) string {
	if m == nil {
		return "[message]"
	}
	withText := func(tag, text string) string {
		if text = strings.TrimSpace(text); text != "" {
			return tag + " " + text
		}
		return tag
	}
	switch {
	case m.Button != nil:
		title := m.Button.Title
		if title == "" {
			title = m.Button.ID
		}
		return "[button] " + title
	case m.Media != nil:
		tag := "[" + m.Type
		if m.Media.Filename != "" {
			tag += ": " + m.Media.Filename
		}
		text := m.Media.Caption
		if text == "" {
			text = m.Text
		}
		return withText(tag+"]", text)
	case m.Location != nil:
		l := m.Location
		desc := strings.Join(nonEmpty(l.Name, l.Address), ", ")
		return withText("[location]", fmt.Sprintf("%s (%.6f, %.6f)", desc, l.Latitude, l.Longitude))
	case m.Reaction != nil:
		if m.Reaction.Emoji == "" {
			return "[reaction removed]"
		}
		return "[reaction] " + m.Reaction.Emoji
	case len(m.Contacts) > 0:
		var cards []string
		for _, sc := range m.Contacts {
			cards = append(cards, strings.Join(nonEmpty(append([]string{sc.Name}, sc.Phones...)...), " "))
		}
		return "[contact] " + strings.Join(cards, "; ")
	case m.Unsupported == "edit" || m.Type == "edit":
		return "[edited a message]"
	case m.Unsupported == "revoke" || m.Unsupported == "delete" || m.Type == "revoke":
		return "[deleted a message]"
	case m.Unsupported != "":
		return "[unsupported message: " + m.Unsupported + "]"
	case m.Text != "":
		return m.Text
	case m.Type != "":
		return "[" + m.Type + " message]"
	}
	return "[message]"
}
