// Package sdk is everything a connector author imports: the event model the
// hub hands to connectors, the interface a connector implements (or the
// runtime that implements it from a Factory), the helpers every connector
// needs (DeliverInOrder, Duration, package sdkhttp) and the Serve function
// its main calls.
package sdk

import (
	"encoding/json"
	"strings"
	"time"
)

// EventType names what happened: the type field of the event JSON.
type EventType string

// Event types. A connector, a route or a subscription names these strings.
const (
	TypeMessageReceived EventType = "message.received" // every inbound customer message that is not a button click
	TypeButtonClicked   EventType = "button.clicked"   // interactive button/list replies and template quick replies
	TypeMessageSent     EventType = "message.sent"     // the hub sent a message and Meta accepted it
	TypeStatusSent      EventType = "status.sent"
	TypeStatusDelivered EventType = "status.delivered"
	TypeStatusRead      EventType = "status.read"
	TypeStatusFailed    EventType = "status.failed"
	TypeStatusPlayed    EventType = "status.played"
	TypeOptinGranted    EventType = "optin.granted"
	TypeOptinRevoked    EventType = "optin.revoked"
	TypeContactChanged  EventType = "contact.changed" // system messages such as a changed number
	// TypeDeadLetter: the hub gave up delivering an event to a connector
	// (DeadLetter says which); bind an alerts channel to "deadletter.*".
	TypeDeadLetter EventType = "deadletter.created"

	// TypeFieldPrefix starts the type of every webhook field wahub does not
	// model further: "whatsapp.message_template_status_update", and
	// "whatsapp.errors" for value-level errors of the messages field.
	TypeFieldPrefix = "whatsapp."
)

// FieldType is the type of an event for a webhook field wahub does not
// model further: FieldType("message_template_status_update") is
// "whatsapp.message_template_status_update".
func FieldType(field string) EventType { return EventType(TypeFieldPrefix + field) }

// Event is one thing that happened, as the hub's log keeps it and as every
// connector, the webhook connector and the admin API see it. Fields that do
// not apply are omitted from its JSON.
type Event struct {
	// ID is stable: the same WhatsApp item always yields the same id, so a
	// connector can use it as an idempotency key.
	ID string `json:"id"`
	// Seq is the event's position in the hub's log; 0 until it is stored.
	Seq        int64     `json:"seq,omitempty"`
	Type       EventType `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	ReceivedAt time.Time `json:"received_at"`

	Business       *Business   `json:"business,omitempty"`
	Contact        *Contact    `json:"contact,omitempty"`
	ConversationID string      `json:"conversation_id,omitempty"`
	Message        *Message    `json:"message,omitempty"`
	Status         *Status     `json:"status,omitempty"`
	Preference     *Preference `json:"preference,omitempty"`
	Route          *Route      `json:"route,omitempty"`
	// Outbound is set on message.sent and on status events of messages the
	// hub sent: which outbox message it was and who asked for it, so that
	// a connector can find its own replies (a Slack thread, a ticket).
	Outbound *Outbound `json:"outbound,omitempty"`
	// DeadLetter is set on deadletter.created.
	DeadLetter *DeadLetter `json:"dead_letter,omitempty"`

	// Raw is the WhatsApp item exactly as received: the element of
	// messages[], statuses[] or user_preferences[], or the change's value
	// for other fields.
	Raw json.RawMessage `json:"raw,omitempty"`
}

// Business is the WhatsApp Business account and number an event belongs to.
type Business struct {
	WABAID             string `json:"waba_id,omitempty"`
	PhoneNumberID      string `json:"phone_number_id,omitempty"`
	DisplayPhoneNumber string `json:"display_phone_number,omitempty"`
}

// Contact is the customer. WhatsApp identifies a customer by a
// business-scoped UserID when it sends one, by the phone-based WAID otherwise;
// either may be missing, never both.
type Contact struct {
	WAID       string            `json:"wa_id,omitempty"`
	UserID     string            `json:"user_id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Username   string            `json:"username,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Key is the identity the hub files a customer under: UserID when present,
// WAID otherwise.
func (c *Contact) Key() string {
	if c == nil {
		return ""
	}
	if c.UserID != "" {
		return c.UserID
	}
	return c.WAID
}

// Message is an inbound customer message (or, for message.sent, one the hub
// sent).
type Message struct {
	ID string `json:"id"`
	// Type is WhatsApp's message type: text, image, audio, video, document,
	// sticker, location, contacts, reaction, order, interactive, button,
	// system, unsupported, ...
	Type string `json:"type"`
	// Text is the body of a text message or the caption of a media message.
	Text string `json:"text,omitempty"`
	// Button is set on button.clicked: the reply button or list row id and
	// title, or a template quick-reply's payload and text.
	Button      *Button         `json:"button,omitempty"`
	Context     *Context        `json:"context,omitempty"`
	Media       *Media          `json:"media,omitempty"`
	Location    *Location       `json:"location,omitempty"`
	Reaction    *Reaction       `json:"reaction,omitempty"`
	Contacts    []SharedContact `json:"contacts,omitempty"`
	System      *System         `json:"system,omitempty"`
	Unsupported string          `json:"unsupported,omitempty"` // unsupported.type: edit, poll_creation, ...
	Referral    json.RawMessage `json:"referral,omitempty"`    // Click-to-WhatsApp ad details, as sent
	// Quoted is the message this one replies to (Context.ID) or reacts to
	// (Reaction.MessageID), as the hub knows it: so a connector can show
	// what the customer quoted without a lookup of its own.
	Quoted *Quoted `json:"quoted,omitempty"`
	Errors []Error `json:"errors,omitempty"`
}

// Button is the choice a customer made.
type Button struct {
	ID    string `json:"id"`
	Title string `json:"title,omitempty"`
	// Description is a list row's description.
	Description string `json:"description,omitempty"`
}

// Quoted is an earlier message of the conversation, as shown where
// another one refers to it.
type Quoted struct {
	ID string `json:"id"`
	// From is "business" (a message the hub sent) or "customer".
	From string `json:"from"`
	Type string `json:"type,omitempty"`
	// Text is the message's text, caption, template or button title.
	Text string `json:"text,omitempty"`
}

// Excerpt is the quoted message's text on one line, cut after n
// characters with an ellipsis: how a connector shows what a reply or a
// reaction is about. "" when the message had no text.
func (q *Quoted) Excerpt(n int) string {
	text := strings.Join(strings.Fields(q.Text), " ")
	if r := []rune(text); len(r) > n {
		text = string(r[:n]) + "…"
	}
	return text
}

// Context links a message to an earlier one.
type Context struct {
	ID                  string `json:"id,omitempty"`   // the wamid replied to
	From                string `json:"from,omitempty"` // the business number that sent it
	Forwarded           bool   `json:"forwarded,omitempty"`
	FrequentlyForwarded bool   `json:"frequently_forwarded,omitempty"`
}

// Media describes an image, audio, video, document or sticker. The hub
// fetches the file from WhatsApp as the message arrives and keeps it;
// a connector reads it with Host.OpenMedia(ID).
type Media struct {
	// ID is WhatsApp's media id, which Host.OpenMedia takes.
	ID       string `json:"id"`
	MimeType string `json:"mime_type,omitempty"`
	// SHA256 is the digest as WhatsApp sends it (base64).
	SHA256   string `json:"sha256,omitempty"`
	Size     int64  `json:"size,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	URL      string `json:"url,omitempty"`
	Voice    bool   `json:"voice,omitempty"`
	Animated bool   `json:"animated,omitempty"`
	// State says whether the hub holds the file; Reason, when it is
	// unavailable, says why.
	State  MediaState `json:"state,omitempty"`
	Reason string     `json:"reason,omitempty"`
}

// Location is a shared location pin.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
	Name      string  `json:"name,omitempty"`
	Address   string  `json:"address,omitempty"`
	URL       string  `json:"url,omitempty"`
}

// Reaction is an emoji on an earlier message; an empty Emoji removes it.
type Reaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji,omitempty"`
}

// SharedContact is a contact card the customer sent, reduced to what a
// person reading it needs; the full card is in the event's raw item.
type SharedContact struct {
	Name   string   `json:"name,omitempty"`
	Phones []string `json:"phones,omitempty"`
	Emails []string `json:"emails,omitempty"`
	Org    string   `json:"org,omitempty"`
}

// System is a system message, such as a customer's changed number.
type System struct {
	Type    string `json:"type"`
	Body    string `json:"body,omitempty"`
	NewWAID string `json:"new_wa_id,omitempty"`
}

// Status is a delivery status of a message the business sent.
type Status struct {
	MessageID string  `json:"message_id"`
	Status    string  `json:"status"`
	Errors    []Error `json:"errors,omitempty"`
	// Pricing category (utility, marketing, ...) when Meta sends one.
	Category string `json:"category,omitempty"`
	// ParticipantID is the group member this status is about
	// (recipient_participant_id): in a group each member's delivered and
	// read are separate events.
	ParticipantID string `json:"participant_id,omitempty"`
}

// Error is a WhatsApp error as webhooks carry it.
type Error struct {
	Code    int    `json:"code"`
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Details string `json:"details,omitempty"`
}

// Consent is whether a customer agreed to hear from the business, as the
// hub keeps it per contact; an optin.granted or optin.revoked event
// announces each change. "" means never stated.
type Consent string

// Consent states.
const (
	ConsentGranted Consent = "granted"
	ConsentRevoked Consent = "revoked"
)

// Preference is a customer's marketing preference change (user_preferences).
type Preference struct {
	Category string `json:"category,omitempty"`
	Value    string `json:"value"` // stop or resume
	Detail   string `json:"detail,omitempty"`
	// Source says how the hub learnt it when the change did not come from
	// a user_preferences webhook: "keyword PARAR", "button stop_promos",
	// "api".
	Source string `json:"source,omitempty"`
}

// Route is where the hub's rules sent an event.
type Route struct {
	Rule       string   `json:"rule,omitempty"`
	Team       string   `json:"team,omitempty"`
	Connectors []string `json:"connectors,omitempty"`
	// Triggers are the triggers that fired for the event.
	Triggers []string `json:"triggers,omitempty"`
}

// Outbound identifies a message the hub sent.
type Outbound struct {
	// ID is the outbox id ("msg_…") that SendMessage and POST
	// /api/v1/messages returned.
	ID string `json:"id"`
	// Source is who asked: "connector:<name>", "trigger:<name>" or "api".
	Source string `json:"source,omitempty"`
	// IdempotencyKey is the caller's key, if it gave one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Team is the team whose conversation the message belongs to, when
	// the hub knows it.
	Team string `json:"team,omitempty"`
}

// DeadLetter is a delivery the hub gave up on: the event, the connector,
// and why. `wahub deadletters replay` sends it again.
type DeadLetter struct {
	EventID   string    `json:"event_id"`
	EventType EventType `json:"event_type"`
	Connector string    `json:"connector"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error,omitempty"`
}
