package hubspot

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
)

// API paths (the classic v3 style).
const (
	pathContacts       = "/crm/v3/objects/contacts"
	pathContactSearch  = "/crm/v3/objects/contacts/search"
	pathCommunications = "/crm/v3/objects/communications"
	pathNotes          = "/crm/v3/objects/notes"
)

// Scopes a private app needs, as HubSpot names them.
const (
	scopeContactsRead  = "crm.objects.contacts.read"
	scopeContactsWrite = "crm.objects.contacts.write"
)

const (
	// maxBody bounds what is read of an answer; a search page of 200
	// contacts is far smaller.
	maxBody = 4 << 20
	// snippetBytes is how much of an unreadable answer goes into errors.
	snippetBytes = 200
	// Pauses after a 429 without Retry-After. The ten-secondly window is
	// 10 s; the search limit is per second; the daily limit resets at
	// midnight in the account's time zone, which the API does not tell,
	// so it is probed hourly.
	pauseTenSecondly = 10 * time.Second
	pauseSearch      = time.Second
	pauseDaily       = time.Hour
	maxRetryAfter    = 24 * time.Hour
	// pauseLocked is the wait after a 423 (HubSpot locks a record being
	// written concurrently).
	pauseLocked = 2 * time.Second
)

// op is one kind of call, for pacing and for saying what failed.
type op struct {
	what   string
	scope  string
	search bool
}

var (
	opSearch        = op{what: "search contacts by phone", scope: scopeContactsRead, search: true}
	opSyncSearch    = op{what: "search contacts changed since the sync cursor", scope: scopeContactsRead, search: true}
	opCreateContact = op{what: "create a contact", scope: scopeContactsWrite}
	opGetContact    = op{what: "read a contact", scope: scopeContactsRead}
	opCommunication = op{what: "log a WhatsApp communication", scope: scopeContactsWrite}
	opNote          = op{what: "log a note", scope: scopeContactsWrite}
	opHealth        = op{what: "list contacts", scope: scopeContactsRead}
)

// apiError is a non-2xx answer from HubSpot.
type apiError struct {
	op            op
	method, path  string
	status        int
	statusText    string
	category      string
	message       string
	policy        string // policyName of a 429
	correlationID string
	scopes        []string      // required scopes named by a 403
	retryAfter    time.Duration // the Retry-After header, 0 if none
	pause         time.Duration // how long the connector pauses (429)
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HubSpot answered %s to %s %s", e.statusText, e.method, e.path)
	if e.category != "" || e.policy != "" {
		b.WriteString(" (")
		b.WriteString(strings.Join(nonEmpty(e.category, e.policy), ", "))
		b.WriteString(")")
	}
	if e.message != "" {
		b.WriteString(": ")
		b.WriteString(e.message)
	}
	if e.correlationID != "" {
		fmt.Fprintf(&b, " [correlation id %s]", e.correlationID)
	}
	return b.String()
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// transportError is a request that got no HTTP answer. HubSpot may or may
// not have acted on it.
type transportError struct {
	op        op
	method    string
	path      string
	err       error
	cancelled bool
	timeout   time.Duration // set when the request timed out
}

func (e *transportError) Error() string {
	switch {
	case e.cancelled:
		return fmt.Sprintf("%s %s: cancelled before HubSpot answered", e.method, e.path)
	case e.timeout > 0:
		return fmt.Sprintf("%s %s: HubSpot did not answer within %s (config.timeout)", e.method, e.path, e.timeout)
	}
	return fmt.Sprintf("%s %s: %v", e.method, e.path, e.err)
}

// notSentError is a request the connector did not send: the context ended
// while it waited for its turn under the rate limit.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "not sent: " + e.err.Error() }

// pausedError is a request not sent because a 429 paused the connector.
type pausedError struct {
	until  time.Time
	reason string
}

func (e *pausedError) Error() string {
	return "not sent: HubSpot's rate limit was reached (" + e.reason + "); waiting until " + e.until.UTC().Format(time.RFC3339)
}

// envelope is HubSpot's error body.
type envelope struct {
	Status        string `json:"status"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
	Category      string `json:"category"`
	ErrorType     string `json:"errorType"`
	PolicyName    string `json:"policyName"`
	Errors        []struct {
		Message string `json:"message"`
		Context struct {
			RequiredScopes         []string `json:"requiredScopes"`
			RequiredGranularScopes []string `json:"requiredGranularScopes"`
		} `json:"context"`
	} `json:"errors"`
}

// checkPause reports the pause a 429 started, if it still runs.
func (c *connector) checkPause() error {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if c.now().Before(c.pauseUntil) {
		return &pausedError{until: c.pauseUntil, reason: c.pauseReason}
	}
	return nil
}

func (c *connector) setPause(d time.Duration, reason string) {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	if until := c.now().Add(d); until.After(c.pauseUntil) {
		c.pauseUntil, c.pauseReason = until, reason
	}
}

// call sends one request, paced, and decodes a 2xx answer into out.
func (c *connector) call(ctx context.Context, s *settings, o op, method, path string, in, out any) error {
	if err := c.pace(ctx, s, o); err != nil {
		return err
	}
	var body io.Reader
	contentType := ""
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body, contentType = bytes.NewReader(raw), "application/json"
	}
	return c.send(ctx, s, o, method, path, body, contentType, s.timeout, out)
}

// pace waits for a request's turn under the rate limits; an error means
// the request must not be sent.
func (c *connector) pace(ctx context.Context, s *settings, o op) error {
	if err := c.checkPause(); err != nil {
		return err
	}
	if o.search {
		if err := s.search.Wait(ctx); err != nil {
			return &notSentError{err}
		}
	}
	if err := s.all.Wait(ctx); err != nil {
		return &notSentError{err}
	}
	// Another conversation may have met a 429 while this one waited.
	return c.checkPause()
}

// send sends one request whose body the caller made (paced already) and
// decodes a 2xx answer into out.
func (c *connector) send(ctx context.Context, s *settings, o op, method, path string, body io.Reader, contentType string, timeout time.Duration, out any) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, s.apiURL+path, body)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	// The path without its query names the call in errors.
	shown, _, _ := strings.Cut(path, "?")
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahub-hubspot/"+Version)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		te := &transportError{op: o, method: method, path: shown, err: err}
		switch {
		case ctx.Err() != nil:
			te.cancelled = true
		case errors.Is(err, context.DeadlineExceeded):
			te.timeout = timeout
		}
		// url.Error repeats the whole URL; the path is said already.
		var ue *url.Error
		if errors.As(err, &ue) {
			te.err = ue.Err
		}
		return te
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &transportError{op: o, method: method, path: shown, err: fmt.Errorf("reading the answer: %w", err), cancelled: ctx.Err() != nil}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			// It did answer 2xx: whatever it did is done, but we cannot
			// tell what. Treated like no answer at all.
			return &transportError{op: o, method: method, path: shown, err: fmt.Errorf("unreadable %s answer: %v: %s", resp.Status, err, snippet(raw))}
		}
		return nil
	}
	return c.apiError(o, method, shown, resp, raw)
}

func (c *connector) apiError(o op, method, path string, resp *http.Response, raw []byte) *apiError {
	e := &apiError{op: o, method: method, path: path, status: resp.StatusCode, statusText: resp.Status,
		retryAfter: sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), c.now(), maxRetryAfter)}
	var env envelope
	if json.Unmarshal(raw, &env) == nil && (env.Message != "" || env.Category != "" || env.PolicyName != "") {
		e.category, e.message, e.policy, e.correlationID = env.Category, env.Message, env.PolicyName, env.CorrelationID
		for _, er := range env.Errors {
			e.scopes = append(e.scopes, er.Context.RequiredScopes...)
			e.scopes = append(e.scopes, er.Context.RequiredGranularScopes...)
		}
	} else {
		e.message = snippet(raw)
	}
	if e.correlationID == "" {
		e.correlationID = resp.Header.Get("X-HubSpot-Correlation-Id")
	}
	if e.status == http.StatusTooManyRequests {
		e.pause = e.retryAfter
		reason := "429 " + e.limitName()
		if e.pause == 0 {
			switch e.limitName() {
			case "daily limit":
				e.pause = pauseDaily
			case "search limit":
				e.pause = pauseSearch
			default:
				e.pause = pauseTenSecondly
			}
		}
		c.setPause(e.pause, reason)
	}
	return e
}

// limitName says which of HubSpot's limits a 429 is about. The search
// API's 429 has no policyName, only its message.
func (e *apiError) limitName() string {
	switch {
	case e.policy == "DAILY":
		return "daily limit"
	case e.policy == "TEN_SECONDLY_ROLLING":
		return "ten-secondly limit"
	case strings.Contains(strings.ToLower(e.message), "secondly limit"), e.op.search:
		return "search limit"
	}
	return "rate limit"
}

func snippet(raw []byte) string {
	s := strings.TrimSpace(strings.ToValidUTF8(string(raw), string(utf8.RuneError)))
	if len(s) > snippetBytes {
		s = s[:snippetBytes] + "…"
	}
	return s
}

// describe turns an error into what a user reads in the dead-letter list
// or the hub's log: what failed and what to do about it.
func describe(s *settings, err error) string {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err.Error()
	}
	key := "connectors." + s.name + ".config.token"
	switch {
	case ae.status == http.StatusUnauthorized:
		return fmt.Sprintf("HubSpot refused the access token (%s): set %s to the access token of a HubSpot private app (Settings → Integrations → Private apps; it starts with pat-), then replay the dead letters", ae, key)
	case ae.status == http.StatusForbidden:
		scopes := ae.scopes
		if len(scopes) == 0 {
			scopes = []string{ae.op.scope}
		}
		return fmt.Sprintf("the HubSpot private app lacks the scope %s needed to %s (%s): add it in HubSpot under Settings → Integrations → Private apps → Scopes (the token stays the same), then replay the dead letters", strings.Join(scopes, " or "), ae.op.what, ae)
	case ae.status == http.StatusTooManyRequests && ae.limitName() == "daily limit":
		return fmt.Sprintf("HubSpot's daily API limit for this account is used up (%s); it resets at midnight in the HubSpot account's time zone. wahub holds the events and tries again in %s; to avoid this, lower the traffic or buy HubSpot's API limit increase", ae, ae.pause)
	case ae.status == http.StatusTooManyRequests:
		return fmt.Sprintf("HubSpot's %s was reached (%s); trying again in %s. If this happens often, lower config.requests_per_10s or config.search_per_second to the limits of the HubSpot account", ae.limitName(), ae, ae.pause)
	case ae.status == http.StatusBadRequest:
		return fmt.Sprintf("HubSpot refused to %s as invalid (%s): fix what the message names (often a property's definition in HubSpot), then replay the dead letter", ae.op.what, ae)
	case ae.status >= 500:
		return fmt.Sprintf("HubSpot failed to %s (%s); trying again", ae.op.what, ae)
	}
	return fmt.Sprintf("HubSpot refused to %s (%s)", ae.op.what, ae)
}

// flexString is an id or a value HubSpot may send as a string, a number
// or null.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		*f = flexString(x)
	case float64:
		*f = flexString(strconv.FormatFloat(x, 'f', -1, 64))
	case bool:
		*f = flexString(strconv.FormatBool(x))
	default:
		*f = ""
	}
	return nil
}

// object is a CRM record as HubSpot returns it.
type object struct {
	ID         flexString             `json:"id"`
	Properties map[string]*flexString `json:"properties"`
	CreatedAt  string                 `json:"createdAt"`
}

// prop is a property's value; "" when unset or null.
func (o *object) prop(name string) string {
	if v := o.Properties[name]; v != nil {
		return string(*v)
	}
	return ""
}

type filter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        string `json:"value"`
}

type filterGroup struct {
	Filters []filter `json:"filters"`
}

type sortSpec struct {
	PropertyName string `json:"propertyName"`
	Direction    string `json:"direction"`
}

type searchRequest struct {
	FilterGroups []filterGroup `json:"filterGroups"`
	Sorts        []sortSpec    `json:"sorts,omitempty"`
	Properties   []string      `json:"properties"`
	Limit        int           `json:"limit"`
	After        string        `json:"after,omitempty"`
}

type searchResponse struct {
	Total   int      `json:"total"`
	Results []object `json:"results"`
	Paging  *struct {
		Next *struct {
			After flexString `json:"after"`
		} `json:"next"`
	} `json:"paging"`
}

func (r *searchResponse) next() string {
	if r.Paging == nil || r.Paging.Next == nil {
		return ""
	}
	return string(r.Paging.Next.After)
}

type association struct {
	To    associationTarget `json:"to"`
	Types []associationType `json:"types"`
}

type associationTarget struct {
	ID string `json:"id"`
}

type associationType struct {
	AssociationCategory string `json:"associationCategory"`
	AssociationTypeID   int    `json:"associationTypeId"`
}

type createRequest struct {
	Properties   map[string]string `json:"properties"`
	Associations []association     `json:"associations,omitempty"`
}

// Association type ids (HUBSPOT_DEFINED), apis.md §1.3.
const (
	assocCommunicationToContact = 81
	assocNoteToContact          = 202
)

func toContact(id string, typeID int) []association {
	return []association{{To: associationTarget{ID: id}, Types: []associationType{{AssociationCategory: "HUBSPOT_DEFINED", AssociationTypeID: typeID}}}}
}
