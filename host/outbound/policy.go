// Package outbound is the one way a WhatsApp message leaves the hub: from
// a connector (SendMessage), a trigger, or the admin API. Submit checks
// WhatsApp's rules and queues the message in the store's outbox; the
// Sender sends queued messages through the Graph API within the number's
// throughput and each recipient's pair limit, retries what Meta asks to
// retry, and never sends a message twice.
package outbound

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

// Refusal codes, one per rule; the admin API answers 422 with them.
const (
	RefusedOptedOut       = "opted_out"
	RefusedOutsideWindow  = "outside_window"
	RefusedBlockedCountry = "blocked_country"
	RefusedUnknownNumber  = "unknown_business_number"
)

// Window is WhatsApp's customer-service window: free-form messages only
// within 24 hours of the customer's last message.
const Window = 24 * time.Hour

// Templates is the template catalogue the policy holds template messages
// against (*store.Store).
type Templates interface {
	// TemplateVersions is every language of a template, and whether the
	// catalogue has been fetched completely.
	TemplateVersions(ctx context.Context, name string) ([]templates.Template, bool, error)
}

// Policy holds the rules a message must pass before it is sent.
type Policy struct {
	// Templates, when set, is the catalogue template messages must match:
	// approved, in the language asked for, with the parameters the
	// template takes.
	Templates           Templates
	BlockedCountryCodes []string
	// PhoneNumberIDs, when set, are the only numbers to send from.
	PhoneNumberIDs []string
	// TemplateCategories maps template names to their category; unnamed
	// templates count as marketing, the strictest.
	TemplateCategories map[string]string
}

// InvalidError is a request that cannot be a WhatsApp message at all.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func refuse(code, format string, args ...any) *sdk.RefusedError {
	return &sdk.RefusedError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// normalizeRecipient accepts "+55 11 98765-4321" for a phone number and
// returns its digits; user ids (BSUIDs such as "BR.1234…") stay as given.
func normalizeRecipient(to string) string {
	to = strings.TrimSpace(to)
	digits := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return r
		case r == '+' || r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
			return -1
		}
		return 'x'
	}, to)
	if digits != "" && !strings.ContainsRune(digits, 'x') {
		return digits
	}
	return to
}

// check applies the rules to msg for recipient r at now. It returns the
// business number to send from.
func (p *Policy) check(ctx context.Context, known func(context.Context, string) (bool, error), msg *sdk.OutboundMessage, r store.Recipient, now time.Time) (string, error) {
	kinds := 0
	for _, set := range []bool{msg.Text != "", msg.Template != nil, len(msg.Interactive) > 0, msg.Reaction != nil, msg.Media != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return "", &InvalidError{`a message needs exactly one of "text", "template", "interactive", "reaction" or "media"`}
	}
	if msg.Media != nil {
		if err := checkMediaShape(msg.Media); err != nil {
			return "", err
		}
	}
	if msg.Template != nil && (msg.Template.Name == "" || msg.Template.Language == "") {
		return "", &InvalidError{`template: "name" and "language" are required`}
	}
	if r := msg.Reaction; r != nil {
		if r.MessageID == "" {
			return "", &InvalidError{`reaction: "message_id" (the wamid reacted to) is required`}
		}
		if msg.ReplyTo != "" {
			return "", &InvalidError{`a reaction cannot reply to a message: drop "reply_to"`}
		}
	}
	if len(msg.Interactive) > 0 {
		if err := checkInteractive(msg.Interactive); err != nil {
			return "", err
		}
	}
	var tpl *templates.Template
	if msg.Template != nil && p.Templates != nil {
		versions, known, err := p.Templates.TemplateVersions(ctx, msg.Template.Name)
		if err != nil {
			return "", fmt.Errorf("template catalogue: %w", err)
		}
		t, prob := templates.Resolve(versions, known, msg.Template.Name, msg.Template.Language)
		if prob == nil && t != nil {
			prob = templates.Check(t, msg.Template.Components)
		}
		if prob != nil {
			return "", refuse(prob.Code, "%s", prob.Message)
		}
		tpl = t
	}

	pn := msg.PhoneNumberID
	if pn == "" {
		pn = r.LastPhoneNumberID
	}
	if pn == "" && len(p.PhoneNumberIDs) == 1 {
		pn = p.PhoneNumberIDs[0]
	}
	if pn == "" {
		return "", refuse(RefusedUnknownNumber, "no business number to send from: %s has never written to one; set phone_number_id", msg.To)
	}
	if len(p.PhoneNumberIDs) > 0 {
		if !slices.Contains(p.PhoneNumberIDs, pn) {
			return "", refuse(RefusedUnknownNumber, "business number %s is not in whatsapp.phone_number_ids", pn)
		}
	} else if ok, err := known(ctx, pn); err != nil {
		return "", err
	} else if !ok {
		return "", refuse(RefusedUnknownNumber, "business number %s is unknown: no webhook has come for it (list it in whatsapp.phone_number_ids)", pn)
	}

	phone := r.WAID
	if phone == "" && normalizeRecipient(msg.To) == msg.To && !strings.ContainsAny(msg.To, ".") {
		phone = msg.To
	}
	for _, cc := range p.BlockedCountryCodes {
		if cc != "" && strings.HasPrefix(phone, cc) {
			return "", refuse(RefusedBlockedCountry, "country calling code +%s is blocked (whatsapp.blocked_country_codes)", cc)
		}
	}

	template := msg.Template != nil
	if r.Consent == sdk.ConsentRevoked {
		if !template {
			return "", refuse(RefusedOptedOut, "%s opted out; only utility and authentication templates may be sent", msg.To)
		}
		cat := strings.ToLower(p.TemplateCategories[msg.Template.Name])
		if tpl != nil && tpl.Category != "" {
			cat = strings.ToLower(tpl.Category) // Meta's category wins over the configuration's
		}
		if cat != "utility" && cat != "authentication" {
			if tpl != nil && tpl.Category != "" {
				return "", refuse(RefusedOptedOut, "%s opted out of marketing; template %s is %s in the WhatsApp Business Account", msg.To, msg.Template.Name, tpl.Category)
			}
			return "", refuse(RefusedOptedOut, "%s opted out of marketing; template %s is marketing (name it in whatsapp.template_categories if it is utility)", msg.To, msg.Template.Name)
		}
	}
	if !template {
		if r.LastInbound.IsZero() {
			return "", refuse(RefusedOutsideWindow, "%s has never written: the 24-hour window is closed; only templates can be sent", msg.To)
		}
		if since := now.Sub(r.LastInbound); since >= Window {
			return "", refuse(RefusedOutsideWindow, "the 24-hour window closed %s ago (last customer message %s); only templates can be sent",
				(since - Window).Round(time.Minute), r.LastInbound.UTC().Format(time.RFC3339))
		}
	}
	return pn, nil
}
