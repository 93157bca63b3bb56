// Package sdkhttp is the HTTP plumbing every connector of an HTTP API
// needs, written once: a client with sane pooling that follows no
// redirects, the rule that says which answers are worth retrying and when,
// and one-line errors for failed calls that never quote a URL's secrets.
package sdkhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wahub/wahub/sdk"
)

// NewClient returns a client for one external API. conns is how many
// requests the connector has in flight at once (its conversations in
// parallel): the default transport keeps only 2 idle connections per
// host, so more would open a new connection per request. rt, when not
// nil, replaces the transport (tests route requests to a fake with it).
//
// Redirects are not followed but returned: a redirected POST turns into a
// GET on 301-303, so the event would be "delivered" to a page that never
// saw it, and an Authorization header must not follow to another host. A
// 3xx is the user's cue to fix the configured URL.
func NewClient(conns int, rt http.RoundTripper) *http.Client {
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = max(conns, 2)
		rt = tr
	}
	return &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// NewJSONRequest builds a call to an API that speaks JSON, bounded by
// ctx: in, unless nil, is the body, marshalled, with Content-Type
// application/json; Accept asks for JSON and User-Agent is userAgent
// (wahub-<connector>/<version>, which API providers ask integrations to
// send so that they can tell them apart).
func NewJSONRequest(ctx context.Context, method, url string, in any, userAgent string) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// Transient reports whether an answer with this status may succeed when
// sent again: 408 Request Timeout, 429 Too Many Requests and every 5xx.
// Every other non-2xx answer fails the same way next time.
func Transient(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || (status >= 500 && status < 600)
}

// RetryAfter is how long resp asks to wait before the next try (its
// Retry-After, seconds or an HTTP date, read against now), capped at
// limit; 0 leaves the wait to the hub's backoff.
func RetryAfter(resp *http.Response, now time.Time, limit time.Duration) time.Duration {
	return sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), now, limit)
}

// Result turns an answer to an event's request into its Result: 2xx
// Delivered; Transient statuses Retry, after Retry-After (capped at
// limit); anything else Failed. err describes a non-2xx answer.
func Result(eventID string, resp *http.Response, now time.Time, limit time.Duration, err error) sdk.Result {
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return sdk.DeliveredResult(eventID)
	case Transient(code):
		return sdk.RetryResult(eventID, RetryAfter(resp, now, limit), err)
	}
	return sdk.FailedResult(eventID, err)
}

// DoError describes a request that got no answer in one line: what (the
// call, "POST https://host/path") was cancelled, found no answer within
// timeout (the configuration key being named so the user knows what to
// raise), or failed on the network. The URL error's own text is dropped:
// it quotes the whole URL, query and all, which may carry a token. Every
// such error is worth retrying. ctx is the caller's, not the request's.
func DoError(ctx context.Context, what string, timeout time.Duration, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: cancelled before an answer came", what)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: no answer within %s (config.timeout)", what, timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %v", what, err)
}

// drainBytes is how much of a body is read past what is kept, so that the
// connection can be reused; a longer body costs a new connection instead.
const drainBytes = 64 << 10

// Snippet reads at most n bytes of an error answer's body, for the error
// message, and drains a little more so that the connection is reused.
func Snippet(body io.Reader, n int) []byte {
	b, _ := io.ReadAll(io.LimitReader(body, int64(n)))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
	return b
}

// Text is a body snippet as one trimmed, valid UTF-8 line part of an
// error message.
func Text(snippet []byte) string {
	return strings.TrimSpace(strings.ToValidUTF8(string(snippet), string(utf8.RuneError)))
}

// BaseURL reads a configured API address (an api_url key): it must be an
// absolute http:// or https:// URL with a host, and carry no credentials
// and no query, which belong in the connector's own secret keys. The
// result is scheme://host/path without a trailing slash and without
// apiPath (the version prefix, such as /api/v2, that the connector adds to
// every call), so that a user may paste either form.
func BaseURL(raw, apiPath string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("must be an absolute http:// or https:// URL")
	}
	if u.User != nil || u.RawQuery != "" {
		return "", errors.New("must not carry credentials or a query")
	}
	path := strings.TrimSuffix(u.Path, "/")
	if apiPath != "" {
		path = strings.TrimSuffix(strings.TrimSuffix(path, apiPath), "/")
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: path}).String(), nil
}

// SameOrigin reports whether u is on base's scheme and host:port: where
// an API's credentials may go.
func SameOrigin(u *url.URL, base string) bool {
	b, err := url.Parse(base)
	return err == nil && strings.EqualFold(u.Scheme, b.Scheme) && strings.EqualFold(u.Host, b.Host)
}

// FollowFileRedirects is the CheckRedirect of a client that downloads an
// API's attachments, whose URLs redirect to a file host (a signed S3 or
// CDN URL): it follows at most max redirects, never from https to http,
// and drops Authorization on leaving base's origin, because the file
// host must not see the API's credentials. (Go's client drops it on a
// redirect to another domain, but keeps it for another port of the same
// host; this decides by scheme and host:port.)
func FollowFileRedirects(base string, max int) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= max {
			return fmt.Errorf("more than %d redirects", max)
		}
		prev := via[len(via)-1].URL
		if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && prev.Scheme == "http") {
			return fmt.Errorf("refusing a redirect from %s to %s", prev.Scheme, Redacted(req.URL))
		}
		if !SameOrigin(req.URL, base) {
			req.Header.Del("Authorization")
		}
		return nil
	}
}

// Redacted is u without credentials, query or fragment: the part of a URL
// an error message may quote.
func Redacted(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}
