// Package graph is a client for the WhatsApp Cloud API's send endpoint,
// POST /{phone-number-id}/messages: text, reply context, templates,
// interactive buttons and lists, reactions, media, and mark-as-read; and
// of the upload a media message needs first, POST /{phone-number-id}/media.
//
// It sends one request per call and never retries: whether and when to
// retry depends on the outbox, the policy and the rate limits, which live
// in the sender. Classify, RetryAfter and MaybeSent give the sender what it
// needs to decide. A success means Meta accepted the message, not that it
// was delivered; delivery arrives later as status webhooks.
//
// The access token travels only in the Authorization header and is
// scrubbed from every error this package returns.
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// idleConns is how many connections to the API a client keeps open
// between requests: more than the sender has in flight (32 by default).
const idleConns = 128

// maxResponse bounds how much of a response is read; real answers are a
// few hundred bytes, and an error page from a proxy needs no more.
const maxResponse = 1 << 20

// Client talks to one Graph API base URL with one access token. It is safe
// for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	// upload is http without its overall timeout: a 100 MB file takes
	// longer than any message; Upload bounds it by the file's size.
	upload *http.Client
	now    func() time.Time
}

// New returns a client for baseURL (e.g. "https://graph.facebook.com/v23.0",
// or the hub's sandbox). A nil httpClient gets one with a 30 s timeout, so a
// hung connection cannot stall a sender forever; callers should still pass
// a context deadline.
func New(baseURL, accessToken string, httpClient *http.Client) *Client {
	var upload *http.Client
	if httpClient == nil {
		// The default transport keeps 2 idle connections per host: with
		// the sender's requests in flight together, every other one
		// would open (and on the real API handshake TLS for) a new
		// connection and close it after one message.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = idleConns
		t.MaxIdleConns = idleConns
		httpClient = &http.Client{Timeout: 30 * time.Second, Transport: t}
		// Uploads write large bodies: a bigger write buffer than the
		// transport's 4 KiB means far fewer syscalls per file.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.WriteBufferSize = 256 << 10
		tr.ResponseHeaderTimeout = 2 * time.Minute
		upload = &http.Client{Transport: tr}
	} else {
		u := *httpClient
		u.Timeout = 0
		upload = &u
	}
	return &Client{
		base:   strings.TrimRight(baseURL, "/"),
		token:  accessToken,
		http:   httpClient,
		upload: upload,
		now:    time.Now,
	}
}

// Accepted is Meta's answer to an accepted send.
type Accepted struct {
	WAMID string // the message id statuses will refer to
	Input string // the recipient as sent (contacts[0].input)
	WAID  string // the recipient's WhatsApp id, when sent to a phone number
	// UserID is the recipient's BSUID, when sent to one.
	UserID string
	// MessageStatus is messages[0].message_status when present: "accepted",
	// or "held_for_quality_assessment" for paced marketing templates.
	MessageStatus string
}

type wireAccepted struct {
	Contacts []struct {
		Input  string `json:"input"`
		WAID   string `json:"wa_id"`
		UserID string `json:"user_id"`
	} `json:"contacts"`
	Messages []struct {
		ID            string `json:"id"`
		MessageStatus string `json:"message_status"`
	} `json:"messages"`
}

// Send posts m from the business number phoneNumberID.
func (c *Client) Send(ctx context.Context, phoneNumberID string, m Message) (Accepted, error) {
	if phoneNumberID == "" {
		return Accepted{}, &ValidationError{"no phone number id"}
	}
	body, err := m.body()
	if err != nil {
		return Accepted{}, err
	}
	resp, err := c.post(ctx, "send", phoneNumberID, body)
	if err != nil {
		return Accepted{}, err
	}
	var w wireAccepted
	if err := json.Unmarshal(resp, &w); err != nil || len(w.Messages) == 0 || w.Messages[0].ID == "" {
		// A 2xx means Meta probably accepted it; we just cannot tell the
		// wamid, so this is as uncertain as a lost response.
		return Accepted{}, &TransportError{Op: "send", Err: fmt.Errorf("%w: %s", errBadResponse, snippet(resp)), MaybeSent: true}
	}
	a := Accepted{WAMID: w.Messages[0].ID, MessageStatus: w.Messages[0].MessageStatus}
	if len(w.Contacts) > 0 {
		a.Input, a.WAID, a.UserID = w.Contacts[0].Input, w.Contacts[0].WAID, w.Contacts[0].UserID
	}
	return a, nil
}

// MarkRead marks an inbound message (and the earlier ones in its thread) as
// read, which shows the customer blue ticks.
func (c *Client) MarkRead(ctx context.Context, phoneNumberID, wamid string) error {
	return c.markRead(ctx, phoneNumberID, wamid, false)
}

// MarkReadTyping marks an inbound message read and shows the customer the
// typing indicator, which WhatsApp removes when the next message arrives
// (or after 25 seconds): what an agent answering looks like.
func (c *Client) MarkReadTyping(ctx context.Context, phoneNumberID, wamid string) error {
	return c.markRead(ctx, phoneNumberID, wamid, true)
}

type wireTyping struct {
	Type string `json:"type"`
}

func (c *Client) markRead(ctx context.Context, phoneNumberID, wamid string, typing bool) error {
	if phoneNumberID == "" || wamid == "" {
		return &ValidationError{"mark read needs a phone number id and a message id"}
	}
	var ti *wireTyping
	if typing {
		ti = &wireTyping{Type: "text"}
	}
	body, err := marshal(struct {
		MessagingProduct string      `json:"messaging_product"`
		Status           string      `json:"status"`
		MessageID        string      `json:"message_id"`
		Typing           *wireTyping `json:"typing_indicator,omitempty"`
	}{"whatsapp", "read", wamid, ti})
	if err != nil {
		return err
	}
	resp, err := c.post(ctx, "mark_read", phoneNumberID, body)
	if err != nil {
		return err
	}
	var w struct {
		Success bool `json:"success"`
	}
	if json.Unmarshal(resp, &w) != nil || !w.Success {
		return &TransportError{Op: "mark_read", Err: fmt.Errorf("%w: %s", errBadResponse, snippet(resp)), MaybeSent: true}
	}
	return nil
}

// post sends a JSON body to /{phone-number-id}/messages and returns a 2xx
// response's body, or an *Error or a *TransportError.
func (c *Client) post(ctx context.Context, op, phoneNumberID string, body []byte) ([]byte, error) {
	return c.do(ctx, c.http, op, phoneNumberID, "messages", "application/json", bytes.NewReader(body), int64(len(body)))
}

// do sends body (of length bytes; -1: unknown) to /{phone-number-id}/{edge}.
func (c *Client) do(ctx context.Context, hc *http.Client, op, phoneNumberID, edge, contentType string, body io.Reader, length int64) ([]byte, error) {
	u := c.base + "/" + url.PathEscape(phoneNumberID) + "/" + edge
	// The transport reports the write from its own goroutine.
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, u, body)
	if err != nil {
		return nil, &ValidationError{c.scrub(err.Error())}
	}
	req.ContentLength = length
	if length < 0 {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &TransportError{Op: op, Err: c.scrubErr(err), MaybeSent: wrote.Load()}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The status line arrived, so Graph did answer; only a 2xx leaves
		// the outcome open.
		if resp.StatusCode/100 != 2 {
			return nil, c.apiError(resp, raw)
		}
		return nil, &TransportError{Op: op, Err: c.scrubErr(err), MaybeSent: true}
	}
	if resp.StatusCode/100 != 2 {
		return nil, c.apiError(resp, raw)
	}
	return raw, nil
}

type wireError struct {
	Error *struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      *int   `json:"code"`
		Subcode   int    `json:"error_subcode"`
		UserTitle string `json:"error_user_title"`
		UserMsg   string `json:"error_user_msg"`
		FBTraceID string `json:"fbtrace_id"`
		Transient bool   `json:"is_transient"`
		Data      struct {
			Details string `json:"details"`
		} `json:"error_data"`
	} `json:"error"`
}

func (c *Client) apiError(resp *http.Response, raw []byte) *Error {
	e := &Error{HTTPStatus: resp.StatusCode, RetryAfter: c.retryAfter(resp.Header)}
	var w wireError
	if json.Unmarshal(raw, &w) == nil && w.Error != nil && w.Error.Code != nil {
		we := w.Error
		e.envelope = true
		e.Code, e.Subcode = *we.Code, we.Subcode
		e.Type, e.Message, e.Title, e.UserMsg = we.Type, c.scrub(we.Message), c.scrub(we.UserTitle), c.scrub(we.UserMsg)
		e.Details, e.FBTraceID, e.Transient = c.scrub(we.Data.Details), we.FBTraceID, we.Transient
		return e
	}
	e.Message = c.scrub(snippet(raw))
	return e
}

// retryAfter reads Retry-After (seconds or an HTTP date) and, failing that,
// the business-use-case usage header Graph sends when throttling
// (estimated_time_to_regain_access, in minutes).
func (c *Client) retryAfter(h http.Header) time.Duration {
	if d, ok := parseRetryAfter(h.Get("Retry-After"), c.now()); ok {
		return d
	}
	return parseBUCUsage(h.Get("X-Business-Use-Case-Usage"))
}

func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

func parseBUCUsage(v string) time.Duration {
	if v == "" {
		return 0
	}
	var usage map[string][]struct {
		Minutes int `json:"estimated_time_to_regain_access"`
	}
	if json.Unmarshal([]byte(v), &usage) != nil {
		return 0
	}
	longest := 0
	for _, list := range usage {
		for _, u := range list {
			longest = max(longest, u.Minutes)
		}
	}
	return time.Duration(longest) * time.Minute
}

// scrub removes the access token from text that may reach logs or the
// outbox: a misconfigured proxy or a Graph message can echo it.
func (c *Client) scrub(s string) string {
	// A token of a few characters is no secret, and replacing it would
	// garble ordinary words.
	if len(c.token) < 4 {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[redacted]")
}

// scrubErr keeps the error chain (so errors.Is(err, context.Canceled) and
// net.Error still work) while its text is token-free.
func (c *Client) scrubErr(err error) error {
	if len(c.token) < 4 || !strings.Contains(err.Error(), c.token) {
		return err
	}
	return &scrubbed{msg: c.scrub(err.Error()), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

// snippet keeps error text short and printable.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 {
			return ' '
		}
		return r
	}, s)
}
