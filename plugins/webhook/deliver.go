package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// errorBodyBytes is how much of an error answer's body goes into the
// result: enough for the endpoint's own message, short enough for a log
// line and the dead-letter list.
const errorBodyBytes = 200

// Deliver POSTs each event and answers one result per event.
// Conversations are delivered concurrently, each one's events in order;
// once an event of a conversation is not delivered, its later events are
// not sent but held (sdk.DeliverInOrder), so that on redelivery the
// endpoint still sees the conversation in order.
func (s *settings) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	return sdk.DeliverInOrder(ctx, events, maxConcurrent, s.post)
}

// post sends one event and classifies the answer.
func (s *settings) post(ctx context.Context, ev *sdk.Event) sdk.Result {
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
	now := s.c.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wahub-webhook/"+Version)
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.secret, ev.ID, now, body))

	resp, err := s.client.Do(req)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, sdkhttp.DoError(ctx, "POST "+s.endpoint, s.timeout, err))
	}
	defer resp.Body.Close()
	snippet := sdkhttp.Snippet(resp.Body, errorBodyBytes)
	return sdkhttp.Result(ev.ID, resp, now, maxRetryAfter, answerError(s, resp, snippet))
}

func answerError(s *settings, resp *http.Response, snippet []byte) error {
	msg := fmt.Sprintf("POST %s: endpoint answered %s", s.endpoint, resp.Status)
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirects are not followed"
		if loc := resp.Header.Get("Location"); loc != "" {
			if u, err := resp.Request.URL.Parse(loc); err == nil {
				msg += "; it points to " + sdkhttp.Redacted(u)
			}
		}
		msg += ": set config.url to the final address)"
	}
	if text := sdkhttp.Text(snippet); text != "" {
		msg += ": " + text
	}
	return errors.New(msg)
}
