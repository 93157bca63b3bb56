package freshdesk

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// hookPayload is the automation rule's body: WebhookTemplate, or the
// "Simple" content Freshdesk builds from ticket fields, which nests them
// under freshdesk_webhook with ticket_ names.
type hookPayload struct {
	TicketID flexID `json:"ticket_id"`
	Body     string `json:"body"`
	Simple   *struct {
		TicketID flexID `json:"ticket_id"`
		Comment  string `json:"ticket_latest_public_comment"`
	} `json:"freshdesk_webhook"`
}

// flexID is a ticket id the template sends as a string ("{{ticket.id}}"
// in quotes) or as a number.
type flexID int64

func (f *flexID) UnmarshalJSON(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if s == "" || s == "null" {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || n <= 0 {
		return fmt.Errorf("ticket_id %q is not a ticket number", s)
	}
	*f = flexID(n)
	return nil
}

// ticketIDRE finds the ticket id in a body that is not valid JSON, as
// when a reply's double quote is inserted unescaped.
var ticketIDRE = regexp.MustCompile(`"ticket_id"\s*:\s*"?#?(\d+)`)

// replyState is what the KV keeps per agent reply (key reply:<key>).
type replyState struct {
	State   string `json:"state"` // sent, refused, noted
	ID      string `json:"id,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Media is the hub's id of an attachment stored for sending.
	Media string `json:"media_id,omitempty"`
}

// HandleHook takes the automation rule's call about an agent's reply and
// sends the reply to the customer on WhatsApp. See the package doc.
func (i *instance) HandleHook(ctx context.Context, req *sdk.HookRequest) (*sdk.HookResponse, error) {
	c, s := i.c, i.s
	if len(s.secret) == 0 {
		return reply(http.StatusForbidden, "agent replies are off: set connectors."+s.name+".config.webhook_secret and send it in the "+SecretHeader+" header"), nil
	}
	if !authorized(req.Header, s.secret) {
		return reply(http.StatusUnauthorized, "missing or wrong "+SecretHeader+" header (the connector's webhook_secret)"), nil
	}
	if req.Method != http.MethodPost {
		resp := reply(http.StatusMethodNotAllowed, "use POST")
		resp.Header.Set("Allow", http.MethodPost)
		return resp, nil
	}
	ticketID, body, ok := parseHook(req.Body)
	if !ok {
		return reply(http.StatusBadRequest, "the body must be the JSON "+WebhookTemplate), nil
	}
	kv := s.host.KV()
	raw, found, err := kv.Get(ctx, ticketKey(ticketID))
	if err != nil {
		return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry"), nil
	}
	var link ticketLink
	if !found || json.Unmarshal(raw, &link) != nil || link.ConversationID == "" {
		return c.unknownTicket(ctx, s, ticketID), nil
	}
	st, err := loadConv(ctx, kv, link.ConversationID)
	if err != nil {
		return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry"), nil
	}
	if st.To == "" {
		return ignored("the conversation has no customer to answer"), nil
	}

	key, text, atts, err := c.identifyReply(ctx, s, ticketID, body)
	if err != nil {
		c.log.Warn("hook: the agent's reply could not be identified", "ticket_id", ticketID, "err", err)
		return retryLater(err), nil
	}
	if key == "" {
		return ignored("no public agent reply on the ticket to send"), nil
	}
	var prior replyState
	if raw, found, err := kv.Get(ctx, replyKey(key)); err != nil {
		return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry"), nil
	} else if found {
		_ = json.Unmarshal(raw, &prior)
	}
	switch prior.State {
	case "sent":
		return replyJSON(http.StatusOK, map[string]any{"ok": true, "id": prior.ID, "duplicate": true}), nil
	case "noted":
		return replyJSON(http.StatusOK, map[string]any{"ok": true, "delivered": false, "duplicate": true}), nil
	case "refused":
		return c.noteRefusal(ctx, s, ticketID, key, prior), nil
	}

	return c.sendReply(ctx, s, st, ticketID, key, text, atts), nil
}

// notYetLinked is how long Freshdesk is asked to wait before calling
// again about a ticket this connector opened but has not recorded yet.
const notYetLinked = 5 * time.Second

// unknownTicket answers the webhook of a ticket the KV does not link to a
// conversation. Delivery creates the ticket first and records it after
// (openTicket, linkTicket): a reply in between, or after a crash or a
// failed KV write there, is about one of ours. A ticket carrying the
// marker tag ticketBody sets is therefore answered 503, so that Freshdesk
// retries once the link is written; any other ticket (email, portal) is
// not ours to answer and not worth retrying.
func (c *connector) unknownTicket(ctx context.Context, s *settings, ticketID int64) *sdk.HookResponse {
	t, err := c.getTicket(ctx, s, ticketID, false)
	switch {
	case isStatus(err, http.StatusNotFound):
		return ignored(fmt.Sprintf("ticket %d does not exist (deleted?)", ticketID))
	case err != nil:
		c.log.Warn("hook: could not read an unknown ticket to tell whether wahub opened it", "ticket_id", ticketID, "err", err)
		return retryLater(fmt.Errorf("%w (reading ticket %d, which the hub does not know)", err, ticketID))
	case !hasMarker(t.Tags):
		return ignored(fmt.Sprintf("ticket %d is not a WhatsApp conversation of this connector", ticketID))
	}
	c.log.Info("hook: reply on a ticket wahub opened but has not recorded yet; asking Freshdesk to retry", "ticket_id", ticketID)
	resp := reply(http.StatusServiceUnavailable, fmt.Sprintf("ticket %d is being linked to its WhatsApp conversation; retry", ticketID))
	resp.Header.Set("Retry-After", strconv.Itoa(int(notYetLinked/time.Second)))
	return resp
}

// markerRE is markerTag's form: the tag only this connector sets.
var markerRE = regexp.MustCompile(`^wahub-[0-9a-f]{12}$`)

// hasMarker reports whether tags hold the "wahub-…" tag of a ticket this
// connector opened (beside "whatsapp", which other integrations may set).
func hasMarker(tags []string) bool {
	for _, tag := range tags {
		if markerRE.MatchString(strings.ToLower(strings.TrimSpace(tag))) {
			return true
		}
	}
	return false
}

// authorized checks the shared secret, in SecretHeader or as the basic
// auth password (or user name, for Freshdesk's "API key" option), in
// constant time.
func authorized(h http.Header, secret []byte) bool {
	if v := h.Get(SecretHeader); v != "" {
		return subtle.ConstantTimeCompare([]byte(v), secret) == 1
	}
	r := http.Request{Header: h}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	p := subtle.ConstantTimeCompare([]byte(pass), secret)
	u := subtle.ConstantTimeCompare([]byte(user), secret)
	return p|u == 1
}

// parseHook reads the ticket id and the reply's text, as rendered, from
// the rule's body. A body that is not JSON still yields the ticket id
// when it can be found: the reply is then read from the API.
func parseHook(raw []byte) (int64, string, bool) {
	var p hookPayload
	if err := json.Unmarshal(raw, &p); err == nil {
		id, body := int64(p.TicketID), p.Body
		if p.Simple != nil {
			if id == 0 {
				id = int64(p.Simple.TicketID)
			}
			if body == "" {
				body = p.Simple.Comment
			}
		}
		return id, body, id > 0
	}
	if m := ticketIDRE.FindSubmatch(raw); m != nil {
		id, err := strconv.ParseInt(string(m[1]), 10, 64)
		return id, "", err == nil && id > 0
	}
	return 0, "", false
}

// identifyReply finds the agent reply the rule announced: its idempotency
// key and its text. The latest public agent reply whose text matches the
// body; the latest one when none matches (the rule fired for a reply, and
// the body can differ in markup) or when there is no body. The text is
// always the one read from Freshdesk's API, never the webhook body's:
// the body only helps pick the reply, since anyone holding the webhook
// secret (or replaying a request) could write anything in it. When the
// ticket's conversations cannot be read the error is returned, and the
// webhook is answered 503 so that Freshdesk retries. An empty key means
// nothing to send.
func (c *connector) identifyReply(ctx context.Context, s *settings, ticketID int64, body string) (key, text string, atts []fdAttachment, err error) {
	convs, err := c.conversations(ctx, s, ticketID)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			return "", "", nil, nil // deleted since
		}
		return "", "", nil, err
	}
	var replies []conversation
	for _, cv := range convs {
		if cv.Source == sourceReply && !cv.Incoming && !cv.Private {
			replies = append(replies, cv)
		}
	}
	if len(replies) == 0 {
		return "", "", nil, nil
	}
	sort.SliceStable(replies, func(i, j int) bool {
		if !replies[i].CreatedAt.Equal(replies[j].CreatedAt) {
			return replies[i].CreatedAt.After(replies[j].CreatedAt)
		}
		return replies[i].ID > replies[j].ID
	})
	pick := replies[0]
	if want := normalize(body); want != "" {
		for _, r := range replies {
			got := normalize(replyText(r))
			if got == "" {
				continue
			}
			if rest, ok := strings.CutSuffix(want, got); ok && (rest == "" || strings.HasSuffix(strings.TrimSpace(rest), ":")) {
				pick = r
				break
			}
		}
	}
	return "conversation:" + strconv.FormatInt(pick.ID, 10), replyText(pick), pick.Attachments, nil
}

func replyText(cv conversation) string {
	if cv.BodyText != "" {
		return strings.TrimSpace(cv.BodyText)
	}
	return htmlText(cv.Body)
}

// noteRefusal tells the agents, in a private note, why their reply did
// not reach the customer.
func (c *connector) noteRefusal(ctx context.Context, s *settings, ticketID int64, key string, why replyState) *sdk.HookResponse {
	msg := why.Message
	if msg == "" {
		msg = "the hub refused to send it"
	}
	body := "<p><strong>This reply was not delivered on WhatsApp:</strong> " + html.EscapeString(msg)
	if why.Code != "" {
		body += " (" + html.EscapeString(why.Code) + ")"
	}
	body += "</p>"
	if id, ok := replyIDFromKey(key); ok {
		body += "<p>The reply: conversation " + strconv.FormatInt(id, 10) + " on this ticket.</p>"
	}
	if why.Code == "outside_window" {
		body += "<p>WhatsApp lets a business write freely only within 24 hours of the customer's last message; until the customer writes again, only approved templates can be sent.</p>"
	}
	if _, err := c.addNote(ctx, s, ticketID, map[string]any{"body": body, "private": true}, nil); err != nil && !isStatus(err, http.StatusNotFound) {
		c.log.Warn("hook: the refusal could not be noted on the ticket", "ticket_id", ticketID, "err", err)
		return retryLater(err)
	}
	if raw, err := json.Marshal(replyState{State: "noted", Code: why.Code, Message: why.Message}); err == nil {
		if err := s.host.KV().Put(ctx, replyKey(key), raw); err != nil {
			c.log.Warn("hook: refusal note not recorded; a repeated webhook would add it again", "err", err)
		}
	}
	return replyJSON(http.StatusOK, map[string]any{"ok": true, "delivered": false,
		"refused": map[string]string{"code": why.Code, "message": why.Message}})
}

func reply(status int, msg string) *sdk.HookResponse {
	return replyJSON(status, map[string]any{"ok": false, "error": msg})
}

func ignored(why string) *sdk.HookResponse {
	return replyJSON(http.StatusOK, map[string]any{"ok": true, "ignored": why})
}

// retryLater answers 503, asking Freshdesk to call again; the reply's
// idempotency key makes that safe.
func retryLater(err error) *sdk.HookResponse {
	resp := reply(http.StatusServiceUnavailable, "not sent now, retry: "+err.Error())
	if ae, ok := asAPIError(err); ok && ae.retryAfter > 0 {
		resp.Header.Set("Retry-After", strconv.Itoa(int(ae.retryAfter.Seconds())))
	}
	return resp
}

func replyJSON(status int, v any) *sdk.HookResponse {
	body, _ := json.Marshal(v)
	return &sdk.HookResponse{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
}
