package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/sdk"
)

// maxRetryAfter caps Slack's Retry-After, so that one odd answer does not
// park a conversation for a day.
const maxRetryAfter = time.Hour

// apiError is a failed Slack call, classified: retry later or fix
// something first.
type apiError struct {
	permanent  bool
	retryAfter time.Duration
	msg        string
}

func (e *apiError) Error() string { return e.msg }

// result turns err into the event's Result.
func result(eventID string, err error) sdk.Result {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.permanent {
			return sdk.FailedResult(eventID, ae)
		}
		return sdk.RetryResult(eventID, ae.retryAfter, ae)
	}
	// Errors of our own (the hub's KV): the hub's schedule retries them.
	return sdk.RetryResult(eventID, 0, err)
}

// slackCode returns Slack's error code of an ok:false answer.
func slackCode(err error) string {
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// describe classifies an error of a Slack call of method about channel,
// which came from config key chKey, and says what to do about it.
func (s *settings) describe(err error, method, channel, chKey string) *apiError {
	cfgKey := func(k string) string { return "connectors." + s.name + ".config." + k }
	retry := func(after time.Duration, format string, args ...any) *apiError {
		return &apiError{retryAfter: after, msg: fmt.Sprintf(format, args...)}
	}
	fail := func(format string, args ...any) *apiError {
		return &apiError{permanent: true, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return retry(0, "Slack %s: cancelled before Slack answered", method)
	case errors.Is(err, context.DeadlineExceeded):
		return retry(0, "Slack %s: no answer within %s (%s)", method, s.timeout, cfgKey("timeout"))
	}
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		return retry(min(rl.RetryAfter, maxRetryAfter), "Slack rate-limited %s: retry after %s", method, rl.RetryAfter)
	}
	var sc slackapi.StatusCodeError
	if errors.As(err, &sc) {
		switch {
		case sc.Code == http.StatusTooManyRequests, sc.Code == http.StatusRequestTimeout, sc.Code >= 500:
			return retry(0, "Slack %s: HTTP %d", method, sc.Code)
		case sc.Code == http.StatusNotFound:
			return fail("Slack %s: HTTP 404 from %s: check %s (Slack's is %s)", method, s.apiURL, cfgKey("api_url"), defaultAPIURL)
		}
		return fail("Slack %s: HTTP %d from %s: check %s", method, sc.Code, s.apiURL, cfgKey("api_url"))
	}
	where := ""
	if chKey != "" {
		where = " (" + cfgKey(chKey) + ")"
	}
	switch code := slackCode(err); code {
	case "":
	case "channel_not_found":
		return fail("Slack %s: channel %s not found%s: use the channel's ID (channel details, e.g. C0123ABCD); for a private channel invite the app first", method, channel, where)
	case "not_in_channel":
		return fail("Slack %s: the bot is not a member of channel %s%s: type /invite @<your app> in that channel", method, channel, where)
	case "is_archived":
		return fail("Slack %s: channel %s is archived%s: unarchive it or configure another channel", method, channel, where)
	case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission", "org_login_required", "ekm_access_denied":
		return fail("Slack %s: %s: Slack refused %s; set the app's current Bot User OAuth Token (xoxb-…) from OAuth & Permissions, and reinstall the app if it was revoked", method, code, cfgKey("token"))
	case "missing_scope":
		needed := "chat:write"
		if method == "reactions.add" {
			needed = "reactions:write"
		}
		var se slackapi.SlackErrorResponse
		if errors.As(err, &se) && se.Needed != "" {
			needed = se.Needed
		}
		if strings.HasPrefix(method, "reactions.") {
			return fail("Slack %s: missing_scope: add the bot scope %s under OAuth & Permissions → Bot Token Scopes and reinstall the app (or set %s: off to stop status reactions)", method, needed, cfgKey("statuses"))
		}
		return fail("Slack %s: missing_scope: add the bot scope %s under OAuth & Permissions → Bot Token Scopes and reinstall the app", method, needed)
	case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org":
		return retry(0, "Slack %s: %s", method, code)
	default:
		return fail("Slack %s refused the request: %s", method, code)
	}
	// Anything else is the network or an answer that did not parse: it
	// may work next time, and the hub dead-letters it once it gives up.
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error quotes the whole URL; say which API without it.
		return retry(0, "Slack %s: cannot reach %s: %v", method, s.apiURL, ue.Err)
	}
	return retry(0, "Slack %s: %v", method, err)
}
