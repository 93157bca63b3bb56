package webhook

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

// errorBodyBytes is how much of an error answer's body goes into the
// result: enough for the endpoint's own message, short enough for a log
// line and the dead-letter list.
const errorBodyBytes = 200

// drainBytes is how much of a body is read past what we keep, so that the
// connection can be reused; a longer body costs a new connection instead.
const drainBytes = 64 << 10

// Deliver POSTs each event and answers one result per event. Conversations
// are delivered concurrently, each one's events in order; once an event of
// a conversation is not delivered, its later events are not sent but
// answered Retry, so that on redelivery the endpoint still sees the
// conversation in order.
func (c *connector) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	results := make([]sdk.Result, len(events))
	s := c.cfg.Load()
	if s == nil {
		for i, ev := range events {
			results[i] = sdk.RetryResult(ev.ID, 0, errNotConfigured)
		}
		return results
	}
	sdk.ByConversation(events, maxConcurrent, func(idx []int) { c.deliverConversation(ctx, s, events, idx, results) })
	return results
}

func (c *connector) deliverConversation(ctx context.Context, s *settings, events []sdk.Event, idx []int, results []sdk.Result) {
	for k, i := range idx {
		ev := events[i]
		if ctx.Err() != nil {
			// Not sent, and not the event's fault: the hub gave up on the
			// batch (shutdown, batch timeout) and will send it again.
			results[i] = sdk.RetryResult(ev.ID, 0, errors.New("not sent: the delivery was cancelled"))
			continue
		}
		res := c.post(ctx, s, &ev)
		results[i] = res
		if res.Outcome == sdk.Delivered {
			continue
		}
		// Holding the rest back keeps the endpoint's view in order. They
		// wait as long as the event that blocks them: sending them sooner
		// would only find it still pending.
		held := fmt.Errorf("not sent, to keep the conversation in order: the earlier event %s was not delivered (%s)", ev.ID, res.Outcome)
		after := time.Duration(0)
		if res.Outcome == sdk.Retry {
			after = res.RetryAfter
		}
		for _, j := range idx[k+1:] {
			results[j] = sdk.HeldResult(events[j].ID, after, held.Error())
		}
		return
	}
}

// post sends one event and classifies the answer.
func (c *connector) post(ctx context.Context, s *settings, ev *sdk.Event) sdk.Result {
	body, err := json.Marshal(ev)
	if err != nil {
		// Only a malformed raw item can do this, and it will not get
		// better by retrying.
		return sdk.FailedResult(ev.ID, fmt.Errorf("encode event: %w", err))
	}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return sdk.FailedResult(ev.ID, fmt.Errorf("build request to %s: %w", s.endpoint, err))
	}
	for name, values := range s.headers {
		req.Header[name] = values
	}
	now := c.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wahub-webhook/"+Version)
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.secret, ev.ID, now, body))

	resp, err := s.client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return sdk.RetryResult(ev.ID, 0, fmt.Errorf("POST %s: cancelled before the endpoint answered", s.endpoint))
		case errors.Is(err, context.DeadlineExceeded):
			return sdk.RetryResult(ev.ID, 0, fmt.Errorf("POST %s: no answer within %s (config.timeout)", s.endpoint, s.timeout))
		}
		// url.Error quotes the full URL, query and all; say it without.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return sdk.RetryResult(ev.ID, 0, fmt.Errorf("POST %s: %v", s.endpoint, err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return sdk.DeliveredResult(ev.ID)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500 && code < 600:
		return sdk.RetryResult(ev.ID, sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), now, maxRetryAfter), answerError(s, resp, snippet))
	}
	return sdk.FailedResult(ev.ID, answerError(s, resp, snippet))
}

func answerError(s *settings, resp *http.Response, snippet []byte) error {
	msg := fmt.Sprintf("POST %s: endpoint answered %s", s.endpoint, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed"
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := resp.Request.URL.Parse(loc); err == nil {
				msg += "; it points to " + (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
			}
		}
		msg += ": set config.url to the final address)"
	}
	if text := strings.TrimSpace(strings.ToValidUTF8(string(snippet), string(utf8.RuneError))); text != "" {
		msg += ": " + text
	}
	return errors.New(msg)
}
