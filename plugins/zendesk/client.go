package zendesk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// apiError is a failed Zendesk call, classified.
type apiError struct {
	Status     int // 0: no answer (network, timeout)
	Code       string
	msg        string
	Transient  bool
	RetryAfter time.Duration
}

func (e *apiError) Error() string { return e.msg }

// isStatus reports whether err is a Zendesk answer with this status.
func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// errorBodyBytes is how much of an error answer is read: Zendesk's
// envelopes are short, a proxy's HTML page is not worth more.
const errorBodyBytes = 2048

// call sends one API request to /api/v2<path> and decodes a 2xx answer
// into out. Any other outcome is an *apiError.
func (s *settings) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	target := s.base + "/api/v2" + path + ".json"
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	what := method + " /api/v2" + path
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := sdkhttp.NewJSONRequest(rctx, method, target, in, "wahub-zendesk/"+Version)
	if err != nil {
		return &apiError{msg: fmt.Sprintf("%s: %v", what, err)}
	}
	req.Header.Set("Authorization", s.auth)
	resp, err := s.client.Do(req)
	if err != nil {
		return &apiError{Transient: true, msg: sdkhttp.DoError(ctx, what, s.timeout, err).Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			return nil
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 32<<20)).Decode(out); err != nil {
			// A 2xx that is not the API's JSON: a proxy or captive page at
			// api_url. Retrying may meet the real API.
			return &apiError{Status: resp.StatusCode, Transient: true, msg: fmt.Sprintf("%s: answer is not Zendesk's JSON (%v): check config.api_url", what, err)}
		}
		return nil
	}
	return s.classify(what, resp, sdkhttp.Snippet(resp.Body, errorBodyBytes))
}

// zendeskError is the API's error envelope.
type zendeskError struct {
	Error       json.RawMessage            `json:"error"`
	Description string                     `json:"description"`
	Details     map[string]json.RawMessage `json:"details"`
}

// describe renders an error answer in one line: the envelope's error,
// description and validation details, or the text body.
func describe(snippet []byte) (code, text string) {
	var env zendeskError
	if json.Unmarshal(snippet, &env) == nil && len(env.Error) > 0 {
		// "error" is a string ("RecordInvalid") or, on some endpoints, an
		// object {"title","message"}.
		var s string
		if json.Unmarshal(env.Error, &s) != nil {
			var o struct{ Title, Message string }
			_ = json.Unmarshal(env.Error, &o)
			s = strings.TrimSpace(o.Title + " " + o.Message)
		}
		code = s
		parts := []string{s}
		if env.Description != "" && env.Description != s {
			parts = append(parts, env.Description)
		}
		for _, field := range sortedKeys(env.Details) {
			for _, d := range detailTexts(env.Details[field]) {
				parts = append(parts, field+": "+d)
			}
		}
		return code, strings.Join(parts, "; ")
	}
	t := strings.TrimSpace(strings.ToValidUTF8(string(snippet), string(utf8.RuneError)))
	if len(t) > 200 {
		t = t[:200]
	}
	return "", t
}

// detailTexts reads one field of "details": a list of {description} or a
// single one.
func detailTexts(raw json.RawMessage) []string {
	type d struct {
		Description string `json:"description"`
	}
	var list []d
	if json.Unmarshal(raw, &list) != nil {
		var one d
		if json.Unmarshal(raw, &one) != nil {
			return nil
		}
		list = []d{one}
	}
	var out []string
	for _, x := range list {
		if x.Description != "" {
			out = append(out, x.Description)
		}
	}
	sort.Strings(out)
	return out
}

func (s *settings) classify(what string, resp *http.Response, snippet []byte) error {
	code, text := describe(snippet)
	e := &apiError{Status: resp.StatusCode, Code: code}
	answer := fmt.Sprintf("Zendesk answered %s", resp.Status)
	if text != "" {
		answer += " (" + text + ")"
	}
	key := "connectors." + s.name + ".config."
	switch st := resp.StatusCode; {
	case st == http.StatusTooManyRequests:
		e.Transient = true
		e.RetryAfter = sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now(), maxRetryAfter)
		e.msg = fmt.Sprintf("%s: rate limited: %s", what, answer)
		if e.RetryAfter > 0 {
			e.msg += "; retrying after " + e.RetryAfter.String()
		}
	case st == http.StatusConflict, st >= 500:
		// 409: another update of the same ticket won the race.
		e.Transient = true
		e.RetryAfter = sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now(), maxRetryAfter)
		e.msg = fmt.Sprintf("%s: %s", what, answer)
	case st == http.StatusUnauthorized:
		e.msg = fmt.Sprintf("%s: %s: check %semail and %stoken (an API token of that agent, with token access enabled in Admin Center > Apps and integrations > Zendesk API)", what, answer, key, key)
	case st == http.StatusForbidden:
		e.msg = fmt.Sprintf("%s: %s: the agent %s may not do this; use an admin, or an agent whose role may create end users and edit tickets", what, answer, s.email)
	case st == http.StatusNotFound:
		e.msg = fmt.Sprintf("%s: %s: check %ssubdomain or %sapi_url", what, answer, key, key)
	case st >= 300 && st < 400:
		e.msg = fmt.Sprintf("%s: %s, a redirect (to %s): set %sapi_url to the account's https://<subdomain>.zendesk.com address", what, answer, resp.Header.Get("Location"), key)
	case st == http.StatusUnprocessableEntity:
		e.msg = fmt.Sprintf("%s: Zendesk refused the data: %s", what, answer)
	default:
		e.msg = fmt.Sprintf("%s: %s", what, answer)
	}
	return e
}

// result turns the error of handling ev into its Result: a transient
// Zendesk failure or anything not from Zendesk (the hub's KV) is retried,
// a refusal by Zendesk fails the event.
func result(ev *sdk.Event, err error) sdk.Result {
	var ae *apiError
	if errors.As(err, &ae) && !ae.Transient {
		return sdk.FailedResult(ev.ID, err)
	}
	if errors.As(err, &ae) {
		return sdk.RetryResult(ev.ID, ae.RetryAfter, err)
	}
	return sdk.RetryResult(ev.ID, 0, err)
}
