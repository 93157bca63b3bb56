package zendesk

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Headers of Zendesk's webhook signature.
const (
	HeaderSignature = "X-Zendesk-Webhook-Signature"
	HeaderTimestamp = "X-Zendesk-Webhook-Signature-Timestamp"
)

// Errors Verify wraps.
var (
	ErrMissingSignature = errors.New("missing " + HeaderSignature + " or " + HeaderTimestamp)
	ErrStale            = errors.New("webhook timestamp too far from now")
	ErrBadSignature     = errors.New("webhook signature does not match")
)

// Verify checks a Zendesk webhook: the signature is base64(HMAC-SHA256 of
// the timestamp header's value followed by the raw body) under secret, and
// the timestamp (ISO 8601, or Unix seconds) is within tolerance of now.
func Verify(secret []byte, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	sig, ts := header.Get(HeaderSignature), header.Get(HeaderTimestamp)
	if sig == "" || ts == "" {
		return ErrMissingSignature
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write(body)
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig))
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return ErrBadSignature
	}
	at, ok := parseTimestamp(ts)
	if !ok {
		return fmt.Errorf("%w: %s %q is not a time", ErrStale, HeaderTimestamp, ts)
	}
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s is %s from now (at most %s allowed)", ErrStale, ts, d.Round(time.Second), tolerance)
	}
	return nil
}

func parseTimestamp(ts string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339, ts); err == nil {
		return t, true
	}
	if n, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return time.Unix(n, 0), true
	}
	return time.Time{}, false
}

// flexID is an id Zendesk's placeholders render as a string ("123") or a
// template writes as a number.
type flexID int64

func (f *flexID) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an id", s)
	}
	*f = flexID(n)
	return nil
}

// hookBody is TriggerBody as Zendesk renders it.
type hookBody struct {
	TicketID  flexID `json:"ticket_id"`
	CommentID flexID `json:"comment_id"`
}

// HandleHook answers Zendesk's webhook for an agent's comment: a verified
// public comment by an agent on a ticket wahub opened is sent to the
// customer; see the package documentation.
func (i *instance) HandleHook(ctx context.Context, req *sdk.HookRequest) (*sdk.HookResponse, error) {
	c, s := i.c, i.s
	if req.Method != http.MethodPost {
		resp := reply(http.StatusMethodNotAllowed, map[string]any{"ok": false, "error": "use POST"})
		resp.Header.Set("Allow", http.MethodPost)
		return resp, nil
	}
	if len(s.webhookSecret) == 0 {
		return failure(http.StatusForbidden, "hooks are off: set connectors."+s.name+".config.webhook_secret to the signing secret of the Zendesk webhook"), nil
	}
	if err := Verify(s.webhookSecret, req.Header, req.Body, c.now(), hookTolerance); err != nil {
		c.log.Warn("zendesk: webhook refused", "err", err, "remote", req.RemoteAddr)
		msg := err.Error()
		if errors.Is(err, ErrBadSignature) {
			msg += ": webhook_secret must be the webhook's signing secret (Admin Center > Webhooks > the webhook > Signing secret)"
		}
		return failure(http.StatusUnauthorized, msg), nil
	}
	var body hookBody
	if err := json.Unmarshal(req.Body, &body); err != nil || body.TicketID == 0 {
		return failure(http.StatusBadRequest, "the body must be the trigger's JSON: "+TriggerBody), nil
	}
	ticketID, commentID := int64(body.TicketID), int64(body.CommentID)

	kv := s.host.KV()
	var tr ticketRecord
	found, err := getJSON(ctx, kv, ticketKey(ticketID), &tr)
	switch {
	case err != nil:
		return retryLater(err.Error()), nil
	case !found:
		return c.unknownTicket(ctx, s, ticketID), nil
	}

	comments, users, err := s.comments(ctx, ticketID)
	if err != nil {
		c.log.Warn("zendesk: cannot read the comment of a webhook", "ticket_id", ticketID, "err", err)
		return retryLater("cannot read the ticket's comments: " + err.Error()), nil
	}
	var cm *zComment
	for i := range comments {
		if (commentID != 0 && comments[i].ID == commentID) || (commentID == 0 && comments[i].Public) {
			cm = &comments[i]
			break
		}
	}
	switch {
	case cm == nil:
		return ignored("no such comment on the ticket"), nil
	case !cm.Public:
		return ignored("an internal note stays in Zendesk"), nil
	case cm.AuthorID == tr.RequesterID, users[cm.AuthorID].Role == "end-user":
		return ignored("a comment by the customer, not an agent's reply"), nil
	}

	var cr commentRecord
	if _, err := getJSON(ctx, kv, commentKey(cm.ID), &cr); err != nil {
		return retryLater(err.Error()), nil
	}
	switch cr.State {
	case "sent", "noted":
		return reply(http.StatusOK, map[string]any{"ok": true, "duplicate": true}), nil
	case "refused":
		return c.noteRefusal(ctx, s, ticketID, cm.ID, &sdk.RefusedError{Code: cr.Code, Message: cr.Reason}), nil
	}

	return c.sendReply(ctx, s, tr, ticketID, cm), nil
}

// notYetAdopted is the Retry-After of a webhook about a ticket this
// connector created but has not recorded yet.
const notYetAdopted = "5"

// unknownTicket answers the webhook of a ticket with no ticket:<id>
// record. The connector creates a ticket and records it just after
// (customerMessage, adopt): a reply in between, or after a crash or a
// failed KV write there, is on one of ours, which a later attempt of the
// delivery adopts. Such a ticket carries the external_id naming its
// conversation and generation, and that conversation's record says its
// ticket of that generation is being created: it is answered 503, so that
// Zendesk retries once the record exists. Any other ticket is not ours,
// and answered 200.
func (c *connector) unknownTicket(ctx context.Context, s *settings, ticketID int64) *sdk.HookResponse {
	id := strconv.FormatInt(ticketID, 10)
	t, err := s.getTicket(ctx, ticketID)
	switch {
	case isStatus(err, 404):
		return ignored("ticket " + id + " does not exist (deleted?)")
	case err != nil:
		c.log.Warn("zendesk: cannot read an unrecorded ticket to tell whether wahub opened it", "ticket_id", ticketID, "err", err)
		return retryLater("cannot read ticket " + id + ", which the hub has no record of: " + err.Error())
	}
	conv, gen, ok := parseTicketExternalID(t.ExternalID)
	if !ok {
		return ignored("ticket " + id + " was not opened by wahub")
	}
	var cr convRecord
	found, err := getJSON(ctx, s.host.KV(), convKey(conv), &cr)
	switch {
	case err != nil:
		return retryLater(err.Error())
	case !found || cr.Gen != gen || cr.TicketID != 0:
		return ignored("ticket " + id + " was not opened by wahub")
	}
	c.log.Warn("zendesk: reply on a ticket wahub opened but has not recorded yet; asking Zendesk to retry", "ticket_id", ticketID, "conversation_id", conv)
	r := failure(http.StatusServiceUnavailable, "ticket "+id+" is being recorded as the conversation's ticket; retry")
	r.Header.Set("Retry-After", notYetAdopted)
	return r
}

// noteRefusal tells the agent, in an internal note on the ticket, why
// their reply did not go out and what to do.
func (c *connector) noteRefusal(ctx context.Context, s *settings, ticketID, commentID int64, refused *sdk.RefusedError) *sdk.HookResponse {
	err := s.comment(ctx, ticketID, refusalNote(refused), false, 0, "", nil)
	switch {
	case isClosedRefusal(err) || isStatus(err, 404):
		// Nowhere to write it; the reply is refused all the same.
	case err != nil:
		c.log.Warn("zendesk: could not add the refusal note", "ticket_id", ticketID, "err", err)
		return retryLater("the reply was refused (" + refused.Code + ") and the note for the agent could not be added: " + err.Error())
	}
	if err := putJSON(ctx, s.host.KV(), commentKey(commentID), commentRecord{State: "noted", Code: refused.Code, Reason: refused.Message}); err != nil {
		c.log.Warn("zendesk: refusal note not recorded", "comment_id", commentID, "err", err)
	}
	return reply(http.StatusOK, map[string]any{"ok": true, "delivered": false, "refused": refused.Code})
}

func reply(status int, v any) *sdk.HookResponse {
	b, _ := json.Marshal(v) // maps of plain values always encode
	return &sdk.HookResponse{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: b}
}

func failure(status int, msg string) *sdk.HookResponse {
	return reply(status, map[string]any{"ok": false, "error": msg})
}

// ignored answers 200 so that Zendesk does not retry what we leave alone.
func ignored(why string) *sdk.HookResponse {
	return reply(http.StatusOK, map[string]any{"ok": true, "ignored": why})
}

// retryLater is a 503 with Retry-After, which Zendesk's webhooks retry.
func retryLater(msg string) *sdk.HookResponse {
	r := failure(http.StatusServiceUnavailable, msg)
	r.Header.Set("Retry-After", "10")
	return r
}
