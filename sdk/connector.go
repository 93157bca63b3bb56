package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Connector is what a connector plugin implements; Serve runs it.
//
// Its methods may run concurrently (a hook or a health check while a batch
// is being delivered), so state that Configure sets must be guarded. The
// hub never calls Deliver concurrently with itself.
//
// The hub delivers every event at least once: after a crash or a lost
// answer the same event comes again with the same ID, so a connector must
// treat Event.ID as an idempotency key (remember what it created, through
// the Host's KV).
type Connector interface {
	// Describe names the connector. It does no I/O.
	Describe() Info
	// Configure receives connectors.<name>.config and the Host to call back.
	// It is called once per process start, before any delivery. It must
	// reject a bad configuration with an error that names the key and says
	// what to fix; with cfg.CheckOnly it must only validate.
	Configure(ctx context.Context, cfg Config, host Host) error
	// Deliver sends a batch to the external system and returns one Result
	// per event, in any order. Events of one conversation come in log
	// order. ctx ends when the hub gives up on the batch; stop then.
	Deliver(ctx context.Context, events []Event) []Result
}

// HookHandler is implemented by connectors whose external system calls back
// (Slack events, Zendesk webhooks): the hub hands them each request to
// POST /hooks/{connector}. The connector verifies the request itself.
type HookHandler interface {
	HandleHook(ctx context.Context, req *HookRequest) (*HookResponse, error)
}

// Syncer is implemented by connectors that pull changes from their system:
// the hub calls Sync on the configured interval with the cursor the last
// call returned ("" the first time), and stores the contact attributes and
// the next cursor together.
type Syncer interface {
	Sync(ctx context.Context, cursor string) (SyncResult, error)
}

// SyncIntervaler is implemented by a Syncer whose configuration says how
// often the hub should call Sync, and whether at all: 0 means never (the
// configuration turns sync off). The hub reads it through Describe after
// Configure and never looks into a connector's configuration itself. A
// Syncer without it is synced every DefaultSyncInterval.
type SyncIntervaler interface {
	SyncInterval() time.Duration
}

// DefaultSyncInterval is how often the hub syncs a connector that does
// not say.
const DefaultSyncInterval = 5 * time.Minute

// HealthChecker is implemented by connectors that can tell whether their
// external system is reachable with the configured credentials.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// Capability names, as Describe reports them to the host.
const (
	CapabilityHooks  = "hooks"
	CapabilitySync   = "sync"
	CapabilityHealth = "health"
)

// Capabilities lists the optional interfaces c implements; for a Runtime,
// those of its Instance type.
func Capabilities(c Connector) []string {
	if r, ok := c.(interface{ capabilities() []string }); ok {
		return r.capabilities()
	}
	var caps []string
	if _, ok := c.(HookHandler); ok {
		caps = append(caps, CapabilityHooks)
	}
	if _, ok := c.(Syncer); ok {
		caps = append(caps, CapabilitySync)
	}
	if _, ok := c.(HealthChecker); ok {
		caps = append(caps, CapabilityHealth)
	}
	return caps
}

// Info describes a connector.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Config is a connector's configuration as connectors.yaml gives it.
type Config struct {
	// Name is the connector's key in connectors.yaml.
	Name string
	// Raw is connectors.<name>.config as JSON, with ${VAR}s expanded.
	Raw json.RawMessage
	// CheckOnly asks for validation only (wahub check): no connections, no
	// state.
	CheckOnly bool
}

// Decode unmarshals the configuration into v, refusing unknown keys so a
// typo is reported rather than ignored. Errors name the key.
func (c Config) Decode(v any) error {
	raw := c.Raw
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Type == durationType {
				key := te.Field
				if key == "" {
					key = keyOf(raw, te.Value)
				}
				if strings.HasPrefix(te.Value, `"`) {
					return fmt.Errorf("connectors.%s.config.%s: %s is not a duration such as 10s, 15m or 3d", c.Name, key, te.Value)
				}
				return fmt.Errorf("connectors.%s.config.%s: expected a duration such as \"10s\", \"15m\" or \"3d\", got %s", c.Name, key, te.Value)
			}
			return fmt.Errorf("connectors.%s.config.%s: expected %s, got a JSON %s", c.Name, te.Field, te.Type, te.Value)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if path, known, ok := unknownKey(raw, v); ok && len(known) > 0 {
				return fmt.Errorf("connectors.%s.config.%s: unknown key (known keys here: %s)", c.Name, path, strings.Join(known, ", "))
			}
			return fmt.Errorf("connectors.%s.config.%s: unknown key", c.Name, strings.Trim(f, `"`))
		}
		return fmt.Errorf("connectors.%s.config: %w", c.Name, err)
	}
	return nil
}

// Key is the full path of one of the connector's keys as a user writes
// it in connectors.yaml (connectors.<name>.config.<k>): error messages
// name it so that the user finds the line to fix.
func (c Config) Key(k string) string { return "connectors." + c.Name + ".config." + k }

// Requirement is one required key: whether the configuration sets it and
// what to write there when it does not.
type Requirement struct {
	Key string
	Set bool
	// Hint follows "required" in the message: " (the app's Bot User
	// OAuth Token, xoxb-…)" or ": the account's name".
	Hint string
}

// Required reports every required key the configuration lacks, all at
// once, so that a new configuration is fixed in one go rather than one
// error at a time.
func (c Config) Required(reqs ...Requirement) error {
	var missing []error
	for _, r := range reqs {
		if !r.Set {
			missing = append(missing, fmt.Errorf("%s: required%s", c.Key(r.Key), r.Hint))
		}
	}
	return errors.Join(missing...)
}

// Outcome is what became of one event.
type Outcome int

const (
	// Delivered: the external system has it.
	Delivered Outcome = iota + 1
	// Retry: a transient failure; the hub tries again later (after
	// RetryAfter when set).
	Retry
	// Failed: a permanent failure; the event becomes a dead letter a user
	// can inspect and replay.
	Failed
	// Skipped: the connector has nothing to do for this event.
	Skipped
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Failed:
		return "failed"
	case Skipped:
		return "skipped"
	}
	return "unknown"
}

// Result is the outcome of delivering one event.
type Result struct {
	EventID    string
	Outcome    Outcome
	RetryAfter time.Duration
	// Error says what went wrong (Retry, Failed) or why it was skipped.
	Error string
	// NotAttempted, with Retry, says the connector did not try the event:
	// it held it back because an earlier event of its conversation failed.
	// The event then keeps its attempts, so that one failing message does
	// not use up its whole conversation's retries.
	NotAttempted bool
}

// DeliveredResult and the functions below build Results.
func DeliveredResult(eventID string) Result { return Result{EventID: eventID, Outcome: Delivered} }

// RetryResult asks the hub to try again, no sooner than after (0: its own
// backoff schedule).
func RetryResult(eventID string, after time.Duration, err error) Result {
	return Result{EventID: eventID, Outcome: Retry, RetryAfter: after, Error: errString(err)}
}

// FailedResult gives up on the event.
func FailedResult(eventID string, err error) Result {
	return Result{EventID: eventID, Outcome: Failed, Error: errString(err)}
}

// HeldResult answers an event the connector did not try because an
// earlier event of its conversation in the batch was not delivered.
func HeldResult(eventID string, after time.Duration, reason string) Result {
	return Result{EventID: eventID, Outcome: Retry, RetryAfter: after, Error: reason, NotAttempted: true}
}

// SkippedResult says the event needs nothing from this connector.
func SkippedResult(eventID, reason string) Result {
	return Result{EventID: eventID, Outcome: Skipped, Error: reason}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// HookRequest is an HTTP request to POST /hooks/{connector}, with the body
// exactly as received so that signatures can be checked.
type HookRequest struct {
	Method     string
	Path       string
	RawQuery   string
	Header     http.Header
	Body       []byte
	RemoteAddr string
}

// HookResponse is the answer the hub sends back for a hook request.
type HookResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// SyncResult is one page of changes from an external system.
type SyncResult struct {
	Contacts []ContactUpdate
	// NextCursor is stored with the contacts and passed to the next Sync.
	NextCursor string
	// More asks the hub to call again at once for the next page.
	More bool
}

// ContactUpdate sets a customer's attributes (tier, owner, ...), which
// routing rules read. The customer is found by UserID or WAID.
type ContactUpdate struct {
	WAID       string            `json:"wa_id,omitempty"`
	UserID     string            `json:"user_id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Host is the hub, as a plugin calls it back.
type Host interface {
	// SendMessage queues a WhatsApp message through the hub's outbound
	// sender, which applies consent, the 24-hour window and rate limits. A
	// policy refusal is a *RefusedError. The same IdempotencyKey never
	// sends twice.
	SendMessage(ctx context.Context, msg OutboundMessage) (SendResult, error)
	// KV is the connector's own key-value state, kept by the hub.
	KV() KV
	// UpsertContact records attributes of a customer.
	UpsertContact(ctx context.Context, c ContactUpdate) error
	// OpenMedia streams a file the hub keeps: an inbound message's
	// Media.ID, or an id PutMedia returned. A file the hub cannot have is
	// ErrMediaUnavailable. The caller closes the reader; the bytes come in
	// chunks, never as one message, whatever the file's size.
	OpenMedia(ctx context.Context, id string) (MediaInfo, io.ReadCloser, error)
	// PutMedia stores the file r holds (read to its end) for sending as
	// OutboundMessage.Media.ID: an agent's attachment. A file the hub will
	// not take (larger than its media store allows) is a *RefusedError
	// whose Message a connector shows the agent.
	PutMedia(ctx context.Context, m MediaUpload, r io.Reader) (MediaInfo, error)
}

// KV is a key-value store namespaced to one connector. Use it for ids that
// must survive restarts: a conversation's Slack thread, a CRM contact id.
type KV interface {
	Get(ctx context.Context, key string) (value []byte, found bool, err error)
	Put(ctx context.Context, key string, value []byte) error
	// CompareAndSwap sets key to new if its value is old; old nil means the
	// key must not exist. It reports whether it swapped.
	CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error)
	Delete(ctx context.Context, key string) error
	// List returns the pairs whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]KVPair, error)
}

// KVPair is one entry of a KV listing.
type KVPair struct {
	Key   string
	Value []byte
}

// OutboundMessage is a WhatsApp message a connector asks the hub to send.
type OutboundMessage struct {
	// To is the customer: a wa_id or a user_id.
	To string `json:"to"`
	// PhoneNumberID is the business number to send from; empty means the
	// one the customer last wrote to.
	PhoneNumberID string    `json:"phone_number_id,omitempty"`
	Text          string    `json:"text,omitempty"`
	Template      *Template `json:"template,omitempty"`
	// Media is a file to send; a policy the file breaks (too large for
	// its type, a MIME type WhatsApp refuses) is a *RefusedError.
	Media *OutboundMedia `json:"media,omitempty"`
	// Interactive is a WhatsApp interactive object (buttons, list), as the
	// Graph API takes it.
	Interactive json.RawMessage `json:"interactive,omitempty"`
	// Reaction puts an emoji on a message of the conversation (an empty
	// Emoji removes it); it is a message of its own, without ReplyTo.
	Reaction *Reaction `json:"reaction,omitempty"`
	// ReplyTo is the wamid the message answers (shown as a quote).
	ReplyTo string `json:"reply_to,omitempty"`
	// MarkRead marks the customer's latest message read, with the typing
	// indicator, just before this one is sent: what an agent answering
	// looks like. The hub sets it for every message a connector sends.
	MarkRead bool `json:"mark_read,omitempty"`
	// IdempotencyKey makes a retried request send at most once: use the id
	// of whatever caused it (a Slack event id, a ticket comment id). Keys
	// are scoped to the connector that sends.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Template is an approved message template to send.
type Template struct {
	Name       string            `json:"name"`
	Language   string            `json:"language"`
	Components []json.RawMessage `json:"components,omitempty"`
}

// SendResult is the hub's answer to SendMessage.
type SendResult struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// RefusedError is a policy refusal of an outbound message: the customer
// opted out, the 24-hour window is closed, the country is blocked. Code
// names the rule; Message says it to a person.
type RefusedError struct {
	Code    string
	Message string
}

func (e *RefusedError) Error() string { return "refused (" + e.Code + "): " + e.Message }
