package freshdesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// maxAnswer bounds what is read of an answer; a page of 30 tickets with
// their descriptions fits many times over.
const maxAnswer = 8 << 20

// Freshdesk's objects, reduced to what the connector reads.
type (
	contact struct {
		ID     int64   `json:"id"`
		Name   string  `json:"name"`
		Phone  *string `json:"phone"`
		Mobile *string `json:"mobile"`
	}
	ticket struct {
		ID          int64        `json:"id"`
		Status      int          `json:"status"`
		RequesterID int64        `json:"requester_id"`
		Tags        []string     `json:"tags"`
		UpdatedAt   time.Time    `json:"updated_at"`
		Stats       *ticketStats `json:"stats"`
	}
	ticketStats struct {
		ResolvedAt *time.Time `json:"resolved_at"`
		ClosedAt   *time.Time `json:"closed_at"`
	}
	conversation struct {
		ID          int64          `json:"id"`
		Body        string         `json:"body"`
		BodyText    string         `json:"body_text"`
		Incoming    bool           `json:"incoming"`
		Private     bool           `json:"private"`
		Source      int            `json:"source"`
		UserID      int64          `json:"user_id"`
		CreatedAt   time.Time      `json:"created_at"`
		Attachments []fdAttachment `json:"attachments"`
	}
	fdAttachment struct {
		ID            int64  `json:"id"`
		Name          string `json:"name"`
		ContentType   string `json:"content_type"`
		Size          int64  `json:"size"`
		AttachmentURL string `json:"attachment_url"`
	}
)

// Ticket statuses and conversation sources.
const (
	statusOpen     = 2
	statusResolved = 4
	statusClosed   = 5
	sourceReply    = 0
)

// fieldError is one entry of Freshdesk's validation errors.
type fieldError struct {
	Field          string         `json:"field"`
	Message        string         `json:"message"`
	Code           string         `json:"code"`
	AdditionalInfo map[string]any `json:"additional_info"`
}

// apiError is a Freshdesk call that did not succeed. Its message says
// what the user must fix when that is something they can fix.
type apiError struct {
	op         string // "POST /api/v2/tickets", never the query (phone numbers)
	status     int    // 0: no answer
	retryAfter time.Duration
	code       string
	message    string
	fields     []fieldError
	text       string // the whole message
}

func (e *apiError) Error() string { return e.text }

// transient reports whether trying again later may succeed.
func (e *apiError) transient() bool {
	return e.status == 0 || e.status == http.StatusRequestTimeout || e.status == http.StatusTooManyRequests || e.status >= 500
}

// field returns the validation error about name.
func (e *apiError) field(name string) *fieldError {
	for i := range e.fields {
		if e.fields[i].Field == name {
			return &e.fields[i]
		}
	}
	return nil
}

// asAPIError unwraps err.
func asAPIError(err error) (*apiError, bool) {
	var ae *apiError
	ok := errors.As(err, &ae)
	return ae, ok
}

func isStatus(err error, status int) bool {
	ae, ok := asAPIError(err)
	return ok && ae.status == status
}

// resultFor turns a failed step of an event into its Result.
func resultFor(eventID string, err error) sdk.Result {
	if ae, ok := asAPIError(err); ok && !ae.transient() {
		return sdk.FailedResult(eventID, err)
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return sdk.RetryResult(eventID, ae.retryAfter, err)
	}
	// The host's KV and the like: nothing permanent about them.
	return sdk.RetryResult(eventID, 0, err)
}

// call makes one API call: in is sent as JSON, the answer decoded into
// out. path starts with /api/v2/.
func (c *connector) call(ctx context.Context, s *settings, method, path string, query url.Values, in, out any) error {
	op := method + " " + path
	var body io.Reader
	contentType := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return &apiError{op: op, status: -1, text: fmt.Sprintf("%s: encode request: %v", op, err)}
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	return c.send(ctx, s, method, path, query, body, contentType, -1, s.timeout, out)
}

// send makes one API call with body (of contentType, length bytes when
// known, else -1) and decodes a 2xx answer into out.
func (c *connector) send(ctx context.Context, s *settings, method, path string, query url.Values, body io.Reader, contentType string, length int64, timeout time.Duration, out any) error {
	op := method + " " + path
	now := c.now()
	if until := s.pausedUntil.Load(); until > now.UnixNano() {
		wait := time.Duration(until - now.UnixNano()).Round(time.Second)
		return &apiError{op: op, status: http.StatusTooManyRequests, retryAfter: wait,
			text: fmt.Sprintf("%s: not sent: Freshdesk's rate limit is used up for the next %s (it counts refused calls too)", op, wait)}
	}
	u := s.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u, body)
	if err != nil {
		return &apiError{op: op, status: -1, text: fmt.Sprintf("%s: build request: %v", op, err)}
	}
	if length >= 0 {
		req.ContentLength = length
	}
	req.SetBasicAuth(s.apiKey, "X")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahub-freshdesk/"+Version)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return &apiError{op: op, text: sdkhttp.DoError(ctx, op+" "+s.base, timeout, err).Error()}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return &apiError{op: op, text: fmt.Sprintf("%s: reading the answer: %v", op, err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			// A 200 that is not the API's JSON: a proxy or a login page.
			return &apiError{op: op, status: -1, text: fmt.Sprintf("%s: the answer is not Freshdesk's JSON (%v): check config.domain or config.api_url", op, err)}
		}
		return nil
	}
	return c.answerError(s, op, resp, raw, now)
}

// answerError describes a non-2xx answer.
func (c *connector) answerError(s *settings, op string, resp *http.Response, raw []byte, now time.Time) error {
	e := &apiError{op: op, status: resp.StatusCode}
	var env struct {
		Code        string       `json:"code"`
		Message     string       `json:"message"`
		Description string       `json:"description"`
		Errors      []fieldError `json:"errors"`
	}
	if json.Unmarshal(raw, &env) == nil {
		e.code, e.message, e.fields = env.Code, env.Message, env.Errors
		if e.message == "" {
			e.message = env.Description
		}
	} else if t := strings.TrimSpace(string(raw)); t != "" && utf8.ValidString(t) {
		e.message = cut(t, 200)
	}
	answered := "Freshdesk answered " + resp.Status
	if e.code != "" || e.message != "" {
		answered += " (" + strings.Trim(e.code+": "+e.message, ": ") + ")"
	}
	key := func(k string) string { return "connectors." + s.name + ".config." + k }
	var what string
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		e.retryAfter = sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter)
		if e.retryAfter > 0 {
			s.pausedUntil.Store(now.Add(e.retryAfter).UnixNano())
		}
		what = "the account's API rate limit is used up; retrying"
		if e.retryAfter > 0 {
			what += " after " + e.retryAfter.String()
		}
	case code >= 500 || code == http.StatusRequestTimeout:
		e.retryAfter = sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter)
		what = "Freshdesk is unavailable; retrying"
	case code == http.StatusUnauthorized:
		what = "the API key is not accepted: set " + key("api_key") + " to the key shown in Freshdesk › Profile settings › View API key"
	case code == http.StatusForbidden:
		what = "the agent whose API key is configured may not do this (or the plan has no API access): use the key of an agent with the permission, or an admin's"
	case code == http.StatusNotFound:
		what = "no such resource: check " + key("domain") + " or " + key("api_url")
	case code >= 300 && code < 400:
		what = "Freshdesk redirected the call"
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := url.Parse(loc); err == nil {
				what += " to " + u.Scheme + "://" + u.Host + u.Path
			}
		}
		what += ": set " + key("domain") + " or " + key("api_url") + " to the account's own address"
	case code == http.StatusBadRequest || code == http.StatusConflict:
		var parts []string
		for _, f := range e.fields {
			p := "field " + strconv.Quote(f.Field) + ": " + f.Message
			if f.Code != "" {
				p += " (" + f.Code + ")"
			}
			if hint := fieldHint(s, f.Field); hint != "" {
				p += ": " + hint
			}
			parts = append(parts, p)
		}
		if len(parts) > 0 {
			what = "Freshdesk refused the request: " + strings.Join(parts, "; ")
		} else {
			what = "Freshdesk refused the request"
		}
	default:
		what = "unexpected answer"
	}
	e.text = op + ": " + answered + ": " + what
	return e
}

// fieldHint says which setting a refused field comes from.
func fieldHint(s *settings, field string) string {
	key := func(k string) string { return "connectors." + s.name + ".config." + k }
	switch field {
	case "group_id":
		return "fix the team's group id in " + key("groups")
	case "priority":
		return "check " + key("priorities") + " and " + key("priority")
	case "status":
		return "check " + key("status")
	case "source":
		return "check " + key("source") + " (7 is Chat)"
	case "unique_external_id":
		return "this customer has no phone number, only a WhatsApp user id: enable the contact field \"Unique external ID\" (Admin › Customer fields)"
	case "phone", "mobile", "name":
		return "the customer's WhatsApp profile does not fit Freshdesk's contact fields"
	}
	return ""
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// The API calls the connector makes.

func (c *connector) findContacts(ctx context.Context, s *settings, field, value string) ([]contact, error) {
	var out []contact // a bare array, not an envelope
	err := c.call(ctx, s, http.MethodGet, "/api/v2/contacts", url.Values{field: {value}}, nil, &out)
	return out, err
}

func (c *connector) createContact(ctx context.Context, s *settings, body map[string]any) (contact, error) {
	var out contact
	err := c.call(ctx, s, http.MethodPost, "/api/v2/contacts", nil, body, &out)
	return out, err
}

func (c *connector) getTicket(ctx context.Context, s *settings, id int64, stats bool) (ticket, error) {
	var q url.Values
	if stats {
		q = url.Values{"include": {"stats"}}
	}
	var out ticket
	err := c.call(ctx, s, http.MethodGet, "/api/v2/tickets/"+strconv.FormatInt(id, 10), q, nil, &out)
	return out, err
}

// recentTickets lists the newest tickets of a requester (the list reads
// the database: a ticket created a moment ago is in it).
func (c *connector) recentTickets(ctx context.Context, s *settings, requester int64) ([]ticket, error) {
	var out []ticket
	q := url.Values{"requester_id": {strconv.FormatInt(requester, 10)}, "order_by": {"created_at"}, "order_type": {"desc"}, "per_page": {"30"}}
	err := c.call(ctx, s, http.MethodGet, "/api/v2/tickets", q, nil, &out)
	return out, err
}

// createTicket opens a ticket; with a file, as multipart/form-data.
func (c *connector) createTicket(ctx context.Context, s *settings, body map[string]any, file *inboundFile) (ticket, error) {
	var out ticket
	var err error
	if file != nil {
		err = c.callMultipart(ctx, s, "/api/v2/tickets", body, file, &out)
	} else {
		err = c.call(ctx, s, http.MethodPost, "/api/v2/tickets", nil, body, &out)
	}
	return out, err
}

func (c *connector) updateTicket(ctx context.Context, s *settings, id int64, body map[string]any) (ticket, error) {
	var out ticket
	err := c.call(ctx, s, http.MethodPut, "/api/v2/tickets/"+strconv.FormatInt(id, 10), nil, body, &out)
	return out, err
}

// addNote adds a note to a ticket; with a file, as multipart/form-data.
func (c *connector) addNote(ctx context.Context, s *settings, id int64, body map[string]any, file *inboundFile) (conversation, error) {
	var out conversation
	path := "/api/v2/tickets/" + strconv.FormatInt(id, 10) + "/notes"
	var err error
	if file != nil {
		err = c.callMultipart(ctx, s, path, body, file, &out)
	} else {
		err = c.call(ctx, s, http.MethodPost, path, nil, body, &out)
	}
	return out, err
}

// maxConversationPages bounds the pages of a ticket's conversations read
// to find an agent's reply: 1,000 conversations.
const maxConversationPages = 10

// conversations lists a ticket's replies and notes, oldest first. The
// list is paginated (100 a page at most); the reply an automation rule
// announces is among the last, so every page is read.
func (c *connector) conversations(ctx context.Context, s *settings, id int64) ([]conversation, error) {
	const perPage = 100
	var all []conversation
	for page := 1; page <= maxConversationPages; page++ {
		var out []conversation
		q := url.Values{"per_page": {strconv.Itoa(perPage)}, "page": {strconv.Itoa(page)}}
		if err := c.call(ctx, s, http.MethodGet, "/api/v2/tickets/"+strconv.FormatInt(id, 10)+"/conversations", q, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out...)
		if len(out) < perPage {
			break
		}
	}
	return all, nil
}
