// Package agentreply sends an agent's helpdesk reply to the customer on
// WhatsApp part by part: its text, then each attachment as a media
// message. The helpdesk connectors share it because the hard part is the
// same everywhere: a helpdesk retries its webhook (and stops waiting
// before a large file is through), so every part is recorded as it goes
// and a retry does only what is left; a refusal of one file (too large,
// a type WhatsApp does not take) costs only that part, while a refusal of
// the customer (the window, consent) is met by every later part too and
// is not asked again.
package agentreply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/wahub/wahub/sdk"
)

// Part is one WhatsApp message of a reply.
type Part struct {
	// Record is the key of the part's record in Records.
	Record string
	// IdempotencyKey is the outbound message's: the hub sends a part
	// once even when a retry comes while the first try is in flight.
	IdempotencyKey string
	Text           string
	// File, when set, makes the part a media message.
	File *File
}

// File is an agent's attachment.
type File struct {
	Name string
	// Store downloads the file from the helpdesk into the hub
	// (Host.PutMedia). A file that cannot be had or that the hub refuses
	// is a *sdk.RefusedError; any other error is worth a retry.
	Store func(ctx context.Context) (sdk.MediaInfo, error)
}

// What names the part for the agents' note.
func (p Part) What() string {
	if p.File != nil {
		return "the attachment " + p.File.Name
	}
	return "the text"
}

// Record is what is known of a part between tries.
type Record struct {
	State   State
	Media   string // the hub's media id once the file is stored
	Message string // the outbound message's id once sent
	Code    string // the refusal's code and message
	Reason  string
}

// State is how far a part got.
type State string

const (
	New     State = ""
	Stored  State = "stored" // the file is in the hub, the message not sent
	Sent    State = "sent"
	Refused State = "refused"
)

// Records keeps the parts' records (each connector in its own KV keys
// and encoding). Get answers a zero Record for a part never tried.
type Records interface {
	Get(ctx context.Context, key string) (Record, error)
	Put(ctx context.Context, key string, r Record) error
}

// Refusal is a part the hub did not send, and why.
type Refusal struct {
	What string
	Err  *sdk.RefusedError
}

// Result is what became of a reply whose every part was tried.
type Result struct {
	Sent    []string // the outbound ids, in part order
	Refused []Refusal
}

// FileRefusal tells a refusal of one file (media_too_large, media_type,
// media_unavailable) from one of the customer, which every later part
// would meet too.
func FileRefusal(code string) bool {
	return len(code) > 6 && code[:6] == "media_"
}

// ErrState wraps a failure to read or write a part's record: nothing is
// lost, the helpdesk's retry goes on from the last recorded part.
var ErrState = errors.New("the hub's state is unavailable")

// Send sends the parts not yet sent, as to (its To and PhoneNumberID) and
// in order. An error means stop and ask the helpdesk to retry: the parts
// done stay done.
func Send(ctx context.Context, host sdk.Host, to sdk.OutboundMessage, parts []Part, recs Records, log *slog.Logger) (Result, error) {
	var (
		res    Result
		policy *sdk.RefusedError // a refusal of the customer
	)
	for _, p := range parts {
		rec, err := recs.Get(ctx, p.Record)
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrState, err)
		}
		refuse := func(r *sdk.RefusedError) error {
			if rec.State != Refused {
				if err := recs.Put(ctx, p.Record, Record{State: Refused, Code: r.Code, Reason: r.Message}); err != nil {
					return fmt.Errorf("%w: %w", ErrState, err)
				}
			}
			res.Refused = append(res.Refused, Refusal{p.What(), r})
			if !FileRefusal(r.Code) {
				policy = r
			}
			return nil
		}
		switch {
		case rec.State == Sent:
			res.Sent = append(res.Sent, rec.Message)
			continue
		case rec.State == Refused:
			if err := refuse(&sdk.RefusedError{Code: rec.Code, Message: rec.Reason}); err != nil {
				return res, err
			}
			continue
		case policy != nil:
			if err := refuse(policy); err != nil {
				return res, err
			}
			continue
		}
		msg := sdk.OutboundMessage{To: to.To, PhoneNumberID: to.PhoneNumberID, IdempotencyKey: p.IdempotencyKey}
		if p.File == nil {
			msg.Text = p.Text
		} else {
			if rec.Media == "" {
				info, err := p.File.Store(ctx)
				var r *sdk.RefusedError
				switch {
				case errors.As(err, &r):
					if err := refuse(r); err != nil {
						return res, err
					}
					continue
				case err != nil:
					log.Warn("an agent's attachment could not be stored in the hub", "file", p.File.Name, "err", err)
					return res, fmt.Errorf("could not store the attachment %s: %w", p.File.Name, err)
				}
				rec = Record{State: Stored, Media: info.ID}
				if err := recs.Put(ctx, p.Record, rec); err != nil {
					return res, fmt.Errorf("%w: %w", ErrState, err)
				}
			}
			msg.Media = &sdk.OutboundMedia{ID: rec.Media, Filename: p.File.Name}
		}
		out, err := host.SendMessage(ctx, msg)
		var r *sdk.RefusedError
		switch {
		case errors.As(err, &r):
			log.Info("the hub refused part of the agent's reply", "part", p.Record, "code", r.Code)
			if err := refuse(r); err != nil {
				return res, err
			}
			continue
		case err != nil:
			log.Warn("SendMessage failed", "part", p.Record, "err", err)
			return res, fmt.Errorf("the hub could not queue the message: %w", err)
		}
		if err := recs.Put(ctx, p.Record, Record{State: Sent, Media: rec.Media, Message: out.ID}); err != nil {
			// The idempotency key still guards a repeat.
			log.Warn("part of a reply sent but not recorded", "part", p.Record, "err", err)
		}
		res.Sent = append(res.Sent, out.ID)
	}
	return res, nil
}
