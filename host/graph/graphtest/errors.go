package graphtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/wahub/wahub/host/graph"
)

// ErrorResponse is one refusal the fake sends. Unless Raw is set it is
// written as Graph's error envelope.
type ErrorResponse struct {
	HTTPStatus int
	Code       int
	Subcode    int
	Type       string // default OAuthException
	Message    string // e.g. "(#130429) Rate limit hit"
	Title      string // error_user_title, omitted when empty
	UserMsg    string // error_user_msg, omitted when empty
	Details    string // error_data.details
	Transient  bool   // is_transient, omitted when false
	// RetryAfter, when positive, is sent as a Retry-After header in seconds.
	RetryAfter time.Duration
	// Header adds response headers (e.g. X-Business-Use-Case-Usage).
	Header http.Header
	// Raw, when non-nil, is the whole body instead of the envelope: what a
	// proxy or load balancer sends when Graph itself did not answer.
	Raw []byte
}

type cannedError struct {
	status           int
	message, details string
	transient        bool
}

// canned holds the codes the fake knows, with Meta's wording. Meta says to
// build logic on code and details, not on HTTP status; the statuses here
// are those commonly reported (400 for request, window and limit errors,
// 401 for tokens, 403 for permissions, 5xx for Meta's own failures) and are
// not confirmed by a Meta page.
var canned = map[int]cannedError{
	graph.ErrAuth:             {401, "(#0) AuthException", "We were unable to authenticate the app user.", false},
	graph.ErrAPIUnknown:       {500, "An unknown error occurred", "", true},
	graph.ErrAPIService:       {503, "An unexpected error has occurred. Please retry your request later.", "", true},
	graph.ErrAPICapability:    {403, "(#3) Application does not have the capability to make this API call.", "", false},
	graph.ErrAPITooManyCalls:  {400, "(#4) Application request limit reached", "The app has reached its API call rate limit.", true},
	graph.ErrPermissionDenied: {403, "(#10) Application does not have permission for this action", "Permission is either not granted or has been removed.", false},
	graph.ErrInvalidParameter: {400, "(#100) Invalid parameter", "The request included one or more unsupported or misspelled parameters.", false},
	graph.ErrAccessToken:      {401, "Error validating access token: Session has expired.", "", false},
	graph.ErrAPIPermission:    {403, "(#200) Permissions error", "Permission is either not granted or has been removed.", false},
	graph.ErrPolicyBlocked:    {403, "(#368) Temporarily blocked for policies violations", "The WhatsApp Business Account associated with the app has been restricted or disabled for violating a platform policy.", false},
	graph.ErrWABARateLimit:    {400, "(#80007) Rate limit issues", "The WhatsApp Business Account has reached its rate limit.", true},
	graph.ErrThroughput:       {400, "(#130429) Rate limit hit", "Cloud API message throughput has been reached.", true},
	graph.ErrCountryRestricted: {400, "(#130497) Business account is restricted from messaging users in this country",
		"The WhatsApp Business Account is restricted from messaging to users in certain countries.", false},
	graph.ErrSomethingWentWrong: {500, "(#131000) Something went wrong", "Message failed to send due to an unknown error.", true},
	graph.ErrAccessDenied:       {403, "(#131005) Access denied", "Permission is either not granted or has been removed.", false},
	graph.ErrMissingParameter:   {400, "(#131008) Required parameter is missing", "The request is missing a required parameter.", false},
	graph.ErrInvalidValue:       {400, "(#131009) Parameter value is not valid", "One or more parameter values are invalid.", false},
	graph.ErrServiceUnavailable: {503, "(#131016) Service unavailable", "A service is temporarily unavailable.", true},
	graph.ErrRecipientIsSender:  {400, "(#131021) Recipient cannot be sender", "Sender and recipient phone number is the same.", false},
	graph.ErrUndeliverable: {400, "(#131026) Message undeliverable",
		"Unable to deliver message. Reasons can include: the recipient phone number is not a WhatsApp phone number; the recipient has not accepted the new Terms of Service; the recipient is using an old WhatsApp version.", false},
	graph.ErrAccountLocked: {403, "(#131031) Account has been locked", "The WhatsApp Business Account has been restricted or disabled.", false},
	graph.ErrReengagement: {400, "(#131047) Re-engagement message",
		"More than 24 hours have passed since the recipient last replied to the sender number.", false},
	graph.ErrSpamRateLimit: {400, "(#131048) Spam rate limit hit",
		"Message failed to send because there are restrictions on how many messages can be sent from this phone number. This may be because too many previous messages were blocked or flagged as spam.", false},
	graph.ErrEcosystemEngagement: {400, "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
		"In order to maintain a healthy ecosystem engagement, the message failed to be delivered.", false},
	graph.ErrMarketingOptOut: {400, "(#131050) Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
		"The user has stopped marketing messages.", false},
	graph.ErrUnsupportedType: {400, "(#131051) Unsupported message type", "Message type is not currently supported.", false},
	graph.ErrMediaUpload:     {400, "(#131053) Media upload error", "Unable to upload the media used in the message.", false},
	graph.ErrPairRateLimit: {400, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
		"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.", true},
	graph.ErrMaintenance:         {503, "(#131057) Account in maintenance mode", "Business Account is in maintenance mode.", true},
	graph.ErrTemplateParamCount:  {400, "(#132000) Number of parameters does not match the expected number of params", "The number of variable parameter values does not match the number of variables in the template.", false},
	graph.ErrTemplateMissing:     {400, "(#132001) Template name does not exist in the translation", "The template does not exist in the specified language or has not been approved.", false},
	graph.ErrTemplateTextLength:  {400, "(#132005) Translated text too long", "Translated text is too long.", false},
	graph.ErrTemplatePolicy:      {400, "(#132007) Template Format Character Policy Violated", "Template content violates a WhatsApp policy.", false},
	graph.ErrTemplateParamFormat: {400, "(#132012) Parameter format does not match format in the created template", "Variable parameter values formatted incorrectly.", false},
	graph.ErrTemplatePaused:      {400, "(#132015) Template is Paused", "The template has been paused due to low quality.", false},
	graph.ErrTemplateDisabled:    {400, "(#132016) Template is Disabled", "The template has been permanently disabled due to low quality.", false},
	graph.ErrNotRegistered:       {400, "(#133010) Phone number not registered", "The phone number is not registered on the WhatsApp Business Platform.", false},
}

// ErrorFor returns Meta's refusal for a Graph error code: its HTTP status,
// message and details. A code in 500-599 is taken as an HTTP status and
// gives a plain body without the envelope, as a failing proxy would.
// Unknown codes get a generic 400 envelope.
func ErrorFor(code int) *ErrorResponse {
	if code >= 500 && code <= 599 {
		return PlainHTTP(code)
	}
	c, ok := canned[code]
	if !ok {
		c = cannedError{status: http.StatusBadRequest, message: fmt.Sprintf("(#%d) Error", code)}
	}
	return &ErrorResponse{
		HTTPStatus: c.status,
		Code:       code,
		Type:       "OAuthException",
		Message:    c.message,
		Details:    c.details,
		Transient:  c.transient,
	}
}

// PlainHTTP is a non-Graph answer: the status with a short HTML body.
func PlainHTTP(status int) *ErrorResponse {
	text := strconv.Itoa(status) + " " + http.StatusText(status)
	return &ErrorResponse{
		HTTPStatus: status,
		Raw:        []byte("<html><head><title>" + text + "</title></head><body><h1>" + text + "</h1></body></html>\n"),
	}
}

// withDetails returns the canned error for code with other details, the
// way Meta names the exact parameter at fault.
func withDetails(code int, message, details string) *ErrorResponse {
	e := ErrorFor(code)
	if message != "" {
		e.Message = message
	}
	e.Details = details
	return e
}

// unknownObject is Graph's answer for an id it does not know (a wrong phone
// number id is the classic mistake).
func unknownObject(method, id string) *ErrorResponse {
	verb := "post"
	if method == http.MethodGet {
		verb = "get"
	} else if method == http.MethodDelete {
		verb = "delete"
	}
	return &ErrorResponse{
		HTTPStatus: http.StatusBadRequest,
		Code:       graph.ErrInvalidParameter,
		Subcode:    33,
		Type:       "GraphMethodException",
		Message: "Unsupported " + verb + " request. Object with ID '" + id + "' does not exist, cannot be loaded due to missing permissions, " +
			"or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
	}
}

func badToken(missing bool) *ErrorResponse {
	msg := "Invalid OAuth access token - Cannot parse access token"
	if missing {
		msg = "An active access token must be used to query information about the current user."
	}
	return &ErrorResponse{
		HTTPStatus: http.StatusUnauthorized,
		Code:       graph.ErrAccessToken,
		Type:       "OAuthException",
		Message:    msg,
		Header:     http.Header{"Www-Authenticate": {`OAuth "Facebook Platform" "invalid_token" "` + msg + `"`}},
	}
}

type wireError struct {
	Message   string         `json:"message"`
	Type      string         `json:"type"`
	Code      int            `json:"code"`
	Subcode   int            `json:"error_subcode,omitempty"`
	Transient bool           `json:"is_transient,omitempty"`
	Title     string         `json:"error_user_title,omitempty"`
	UserMsg   string         `json:"error_user_msg,omitempty"`
	Data      *wireErrorData `json:"error_data,omitempty"`
	FBTraceID string         `json:"fbtrace_id"`
}

type wireErrorData struct {
	MessagingProduct string `json:"messaging_product"`
	Details          string `json:"details"`
}

func (e *ErrorResponse) write(w http.ResponseWriter, traceID string) {
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	status := e.HTTPStatus
	if status == 0 {
		status = http.StatusBadRequest
	}
	if e.Raw != nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write(e.Raw)
		return
	}
	we := wireError{
		Message: e.Message, Type: e.Type, Code: e.Code, Subcode: e.Subcode,
		Transient: e.Transient, Title: e.Title, UserMsg: e.UserMsg, FBTraceID: traceID,
	}
	if we.Type == "" {
		we.Type = "OAuthException"
	}
	if e.Details != "" {
		we.Data = &wireErrorData{MessagingProduct: "whatsapp", Details: e.Details}
	}
	body, _ := json.Marshal(map[string]wireError{"error": we})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
