package graph

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Error codes the Cloud API returns in error.code (synchronously) and in
// statuses[].errors[].code (asynchronously). Meta asks integrations to build
// logic on the code and error_data.details, never on titles or HTTP status.
const (
	ErrAuth                = 0      // AuthException: the token could not be used
	ErrAPIUnknown          = 1      // "An unknown error occurred"
	ErrAPIService          = 2      // "Service temporarily unavailable"
	ErrAPICapability       = 3      // the app lacks the capability
	ErrAPITooManyCalls     = 4      // app-level API call rate limit
	ErrPermissionDenied    = 10     // permission not granted or removed
	ErrInvalidParameter    = 100    // unsupported or misspelled parameter, or unknown object (subcode 33)
	ErrAccessToken         = 190    // access token expired or invalid
	ErrAPIPermission       = 200    // permission error (200-299)
	ErrPolicyBlocked       = 368    // temporarily blocked for policy violations
	ErrWABARateLimit       = 80007  // the WhatsApp Business Account reached its rate limit
	ErrThroughput          = 130429 // Cloud API message throughput reached
	ErrCountryRestricted   = 130497 // business cannot message users in this country
	ErrSomethingWentWrong  = 131000 // unknown server-side failure
	ErrAccessDenied        = 131005 // permission not granted or removed
	ErrMissingParameter    = 131008 // a required parameter is missing
	ErrInvalidValue        = 131009 // a parameter value is not valid
	ErrServiceUnavailable  = 131016 // a service is temporarily unavailable
	ErrRecipientIsSender   = 131021 // sending to the business number itself
	ErrUndeliverable       = 131026 // not on WhatsApp, ToS not accepted, old app, blocked
	ErrAccountLocked       = 131031 // business account locked
	ErrReengagement        = 131047 // outside the 24-hour customer service window
	ErrSpamRateLimit       = 131048 // number restricted after being blocked or flagged as spam
	ErrEcosystemEngagement = 131049 // per-user marketing limit ("healthy ecosystem engagement")
	ErrMarketingOptOut     = 131050 // the user stopped marketing messages
	ErrUnsupportedType     = 131051 // message type unknown or unsupported
	ErrMediaUpload         = 131053 // the media could not be uploaded or used (type, size, codec)
	ErrPairRateLimit       = 131056 // too many messages to the same recipient in a short period
	ErrMaintenance         = 131057 // business account in maintenance mode (e.g. throughput upgrade)
	ErrTemplateParamCount  = 132000 // parameter count does not match the template
	ErrTemplateMissing     = 132001 // template does not exist in that language or is not approved
	ErrTemplateTextLength  = 132005 // translated text too long
	ErrTemplatePolicy      = 132007 // template format character policy violated
	ErrTemplateParamFormat = 132012 // parameter format does not match the template
	ErrTemplatePaused      = 132015 // template paused for low quality
	ErrTemplateDisabled    = 132016 // template disabled for low quality
	ErrNotRegistered       = 133010 // business phone number not registered on the Cloud API
)

// Classification codes for failures that carry no Graph error code.
const (
	CodeTimeout        = "timeout"         // the deadline passed before an answer
	CodeCanceled       = "canceled"        // the caller gave up (shutdown, request cancelled)
	CodeNetwork        = "network"         // connection refused, reset, DNS, TLS, ...
	CodeBadResponse    = "bad_response"    // a 2xx whose body is not a send result
	CodeInvalidMessage = "invalid_message" // rejected locally before any request
	CodeUnknown        = "unknown"
)

// Error is a refusal from the Graph API, parsed from its error envelope:
//
//	{"error": {"message", "type", "code", "error_subcode", "error_data":
//	  {"messaging_product", "details"}, "error_user_title", "error_user_msg",
//	  "fbtrace_id", "is_transient"}}
//
// A response that is not the envelope (a proxy's HTML 502, an empty 503)
// becomes an Error with Code 0 and HasEnvelope false. No field ever holds
// the access token.
type Error struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string // e.g. OAuthException, GraphMethodException
	Title      string // error_user_title
	Message    string // message, e.g. "(#130429) Rate limit hit"
	UserMsg    string // error_user_msg
	Details    string // error_data.details, the most specific explanation
	FBTraceID  string // quote this to Meta support
	// RetryAfter is how long Meta asked us to wait (Retry-After or the
	// business-use-case usage header); zero when it did not say.
	RetryAfter time.Duration
	// Transient is the envelope's is_transient hint; it only decides codes
	// this package does not know.
	Transient bool

	envelope bool
}

// HasEnvelope reports whether the body was Graph's error envelope; if not,
// only HTTPStatus is meaningful.
func (e *Error) HasEnvelope() bool { return e.envelope }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("whatsapp graph api: ")
	if !e.envelope {
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "code %d", e.Code)
	if e.Subcode != 0 {
		fmt.Fprintf(&b, "/%d", e.Subcode)
	}
	// Meta prefixes messages with "(#code) "; the code is already shown.
	msg := strings.TrimSpace(strings.TrimPrefix(e.Message, fmt.Sprintf("(#%d)", e.Code)))
	if msg == "" {
		msg = e.Title
	}
	if msg != "" {
		b.WriteString(" ")
		b.WriteString(msg)
	}
	if e.Details != "" && e.Details != msg {
		b.WriteString(": ")
		b.WriteString(e.Details)
	}
	fmt.Fprintf(&b, " (HTTP %d", e.HTTPStatus)
	if e.FBTraceID != "" {
		b.WriteString(", fbtrace_id ")
		b.WriteString(e.FBTraceID)
	}
	b.WriteString(")")
	return b.String()
}

// Temporary reports whether sending the same request again later can
// succeed. The code decides; HTTP status and is_transient only decide for
// codes this package does not know.
func (e *Error) Temporary() bool {
	if !e.envelope {
		// A proxy or load balancer answered instead of Graph: 5xx and 429
		// are about the path, not the request.
		return e.HTTPStatus >= 500 || e.HTTPStatus == 429
	}
	if t, known := codeTemporary(e.Code); known {
		return t
	}
	return e.Transient || e.HTTPStatus >= 500
}

// IsTemporaryCode reports whether a Graph error code (synchronous or from a
// failed status webhook) means "try again later", and whether the code is
// one this package classifies at all.
func IsTemporaryCode(code int) (temporary, known bool) { return codeTemporary(code) }

func codeTemporary(code int) (temporary, known bool) {
	switch code {
	// Limits: the request was fine, the sender was too fast. Back off and
	// queue; 131056 concerns one recipient only.
	case ErrThroughput, ErrPairRateLimit, ErrAPITooManyCalls, ErrWABARateLimit:
		return true, true
	// Meta's side failed or is being reconfigured (131057 lasts up to a
	// minute during a throughput upgrade).
	case ErrSomethingWentWrong, ErrServiceUnavailable, ErrMaintenance,
		ErrAPIUnknown, ErrAPIService:
		return true, true

	// Credentials and permissions: nothing changes until someone fixes the
	// token or the app; retrying only burns rate limit. Alert instead.
	case ErrAuth, ErrAccessToken, ErrAPICapability, ErrPermissionDenied, ErrAccessDenied:
		return false, true
	// The request itself is wrong; the same bytes fail the same way.
	case ErrInvalidParameter, ErrMissingParameter, ErrInvalidValue,
		ErrUnsupportedType, ErrRecipientIsSender, ErrMediaUpload:
		return false, true
	// The recipient cannot or may not get this message: a template is
	// needed (131047), the user is unreachable (131026), opted out of
	// marketing (131050), or hit the per-user marketing cap that lasts a
	// day (131049). Retrying soon cannot help and may hurt quality.
	case ErrReengagement, ErrUndeliverable, ErrMarketingOptOut, ErrEcosystemEngagement:
		return false, true
	// The business account or number is restricted; retrying while flagged
	// as spam lowers quality further. Alert.
	case ErrSpamRateLimit, ErrPolicyBlocked, ErrAccountLocked, ErrCountryRestricted,
		ErrNotRegistered:
		return false, true
	}
	switch {
	case code >= 200 && code <= 299:
		// Graph's permission family (#200-#299).
		return false, true
	case code >= 132000 && code <= 132999:
		// Template errors: missing, unapproved, paused, bad parameters.
		// Fix the template or its parameters; the same send fails again.
		return false, true
	case code >= 133000 && code <= 133999:
		// Phone number registration and two-step verification.
		return false, true
	}
	return false, false
}

// TransportError is a send whose outcome is unknown: the network failed,
// the deadline passed, the caller cancelled, or a 2xx came back unreadable.
type TransportError struct {
	Op  string // "send" or "mark_read"
	Err error
	// MaybeSent is true once the request was written: Meta may have
	// accepted the message although we never saw the answer, so a retry
	// can deliver it twice (the Cloud API has no idempotency key).
	MaybeSent bool
}

func (e *TransportError) Error() string {
	return "whatsapp graph api: " + e.Op + ": " + e.Err.Error()
}

func (e *TransportError) Unwrap() error { return e.Err }

// ValidationError is a message refused before any request was made.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string { return "whatsapp graph api: invalid message: " + e.Reason }

// Classify tells a sender what to do with an error from Send or MarkRead:
// retry later or fail now, and a short stable code to store (the Graph code
// as a decimal string such as "130429", "http_502" for a non-Graph body, or
// one of the Code* constants).
func Classify(err error) (retry bool, code string) {
	if err == nil {
		return false, ""
	}
	var ge *Error
	if errors.As(err, &ge) {
		if !ge.envelope {
			return ge.Temporary(), "http_" + strconv.Itoa(ge.HTTPStatus)
		}
		return ge.Temporary(), strconv.Itoa(ge.Code)
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return false, CodeInvalidMessage
	}
	var te *TransportError
	if errors.As(err, &te) && errors.Is(te.Err, errBadResponse) {
		return true, CodeBadResponse
	}
	// Network trouble and timeouts say nothing about the message; a
	// cancelled context usually means shutdown, and the message should
	// stay queued for the next run.
	switch {
	case errors.Is(err, context.Canceled):
		return true, CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return true, CodeTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true, CodeTimeout
	}
	if te != nil || ne != nil {
		return true, CodeNetwork
	}
	return false, CodeUnknown
}

// RetryAfter returns the wait Meta asked for, or zero.
func RetryAfter(err error) time.Duration {
	var ge *Error
	if errors.As(err, &ge) {
		return ge.RetryAfter
	}
	return 0
}

// MaybeSent reports whether err leaves open that Meta accepted the message
// (see TransportError.MaybeSent). Graph errors and validation errors mean
// it was not.
func MaybeSent(err error) bool {
	var te *TransportError
	return errors.As(err, &te) && te.MaybeSent
}

var errBadResponse = errors.New("unreadable success response")
