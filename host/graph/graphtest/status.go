package graphtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// StatusWebhook is where the fake posts status webhooks, as Meta posts them
// to the app's callback URL.
type StatusWebhook struct {
	URL       string
	AppSecret string       // signs X-Hub-Signature-256
	Client    *http.Client // nil: a client with a 10 s timeout
}

// StatusError is one entry of statuses[].errors.
type StatusError struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
	Details string `json:"details,omitempty"`
}

// StatusErrorFor is the failed-status error Meta sends for a code.
func StatusErrorFor(code int) StatusError {
	e := ErrorFor(code)
	title := trimCodePrefix(e.Message)
	return StatusError{Code: code, Title: title, Message: title, Details: e.Details}
}

// Status is one status webhook the fake posted (or tried to).
type Status struct {
	WAMID         string          `json:"wamid"`
	Status        string          `json:"status"`
	PhoneNumberID string          `json:"phone_number_id"`
	Recipient     string          `json:"recipient"`
	Time          time.Time       `json:"time"`
	Errors        []StatusError   `json:"errors,omitempty"`
	Body          json.RawMessage `json:"body"`
	// HTTPStatus is the hub's answer, 0 when the post failed or no webhook
	// is configured; Err says why.
	HTTPStatus int    `json:"http_status"`
	Err        string `json:"error,omitempty"`
}

// Order in which auto-emitted statuses follow an accepted message.
var defaultSteps = []string{"sent", "delivered", "read"}

// EmitStatus posts one status webhook for a message the fake accepted, now
// (by the injected clock), and waits for the hub's answer. Tests call it to
// choose the order, including out of order or duplicated. A "failed" status
// without errs carries 131000.
func (s *Server) EmitStatus(wamid, status string, errs ...StatusError) error {
	s.mu.Lock()
	i, ok := s.byWAMID[wamid]
	var m Sent
	if ok {
		m = s.sent[i]
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("graphtest: no accepted message %q", wamid)
	}
	if status == "failed" && len(errs) == 0 {
		errs = []StatusError{StatusErrorFor(131000)}
	}
	st := s.post(context.Background(), m, status, errs)
	if st.Err != "" {
		return errors.New("graphtest: status webhook: " + st.Err)
	}
	return nil
}

// Statuses returns every status the fake emitted, in order.
func (s *Server) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Status(nil), s.statuses...)
}

// autoEmit runs the configured steps for one accepted message in its own
// goroutine, so the send answer never waits for the hub.
func (s *Server) autoEmit(m Sent, steps []string, errs []StatusError) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		for _, step := range steps {
			if s.autoGap > 0 {
				t := time.NewTimer(s.autoGap)
				select {
				case <-s.done:
					t.Stop()
					return
				case <-t.C:
				}
			}
			select {
			case <-s.done:
				return
			default:
			}
			var e []StatusError
			if step == "failed" {
				e = errs
			}
			s.post(s.ctx, m, step, e)
		}
	}()
}

func (s *Server) post(ctx context.Context, m Sent, status string, errs []StatusError) Status {
	now := s.now()
	body := s.statusBody(m, status, errs, now)
	st := Status{
		WAMID: m.WAMID, Status: status, PhoneNumberID: m.PhoneNumberID, Recipient: m.To,
		Time: now, Errors: errs, Body: body,
	}
	if s.hook == nil {
		st.Err = "no status webhook configured"
	} else {
		st.HTTPStatus, st.Err = s.deliver(ctx, body)
	}
	s.mu.Lock()
	s.statuses = append(s.statuses, st)
	s.mu.Unlock()
	return st
}

func (s *Server) deliver(ctx context.Context, body []byte) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "facebookexternalua")
	req.Header.Set("X-Hub-Signature-256", Sign(s.hook.AppSecret, body))
	client := s.hook.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		// Only 200 counts for Meta; anything else would be retried.
		return resp.StatusCode, "hub answered " + resp.Status
	}
	return resp.StatusCode, ""
}

// Sign is Meta's X-Hub-Signature-256 value for body under an app secret.
func Sign(appSecret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type wireStatus struct {
	ID              string            `json:"id"`
	Status          string            `json:"status"`
	Timestamp       string            `json:"timestamp"`
	RecipientID     string            `json:"recipient_id,omitempty"`
	RecipientUserID string            `json:"recipient_user_id,omitempty"`
	CallbackData    string            `json:"biz_opaque_callback_data,omitempty"`
	Pricing         *wirePricing      `json:"pricing,omitempty"`
	Errors          []wireStatusError `json:"errors,omitempty"`
}

type wirePricing struct {
	Billable     bool   `json:"billable"`
	PricingModel string `json:"pricing_model"`
	Type         string `json:"type"`
	Category     string `json:"category"`
}

type wireStatusError struct {
	Code      int    `json:"code"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	ErrorData *struct {
		Details string `json:"details"`
	} `json:"error_data,omitempty"`
	Href string `json:"href"`
}

type wireStatusContact struct {
	UserID string `json:"user_id"`
}

// statusBody builds the webhook exactly as Meta does for a messages-field
// status (whatsapp.md §3.8, §3.10): entry[].id is the WABA, metadata names
// the business number, and a BSUID recipient gets recipient_user_id plus a
// contacts block (not on failed).
func (s *Server) statusBody(m Sent, status string, errs []StatusError, now time.Time) []byte {
	ws := wireStatus{
		ID: m.WAMID, Status: status, Timestamp: strconv.FormatInt(now.Unix(), 10),
		RecipientID: m.WAID, RecipientUserID: m.UserID, CallbackData: m.CallbackData,
	}
	// Pricing comes with sent and with one of delivered/read.
	if status == "sent" || status == "delivered" {
		ws.Pricing = &wirePricing{Billable: true, PricingModel: "PMP", Type: "regular", Category: "utility"}
		if m.Kind != "template" {
			ws.Pricing = &wirePricing{Billable: false, PricingModel: "PMP", Type: "free_customer_service", Category: "service"}
		}
	}
	for _, e := range errs {
		we := wireStatusError{Code: e.Code, Title: e.Title, Message: e.Message,
			Href: "/documentation/business-messaging/whatsapp/support/error-codes"}
		if e.Details != "" {
			we.ErrorData = &struct {
				Details string `json:"details"`
			}{e.Details}
		}
		ws.Errors = append(ws.Errors, we)
	}
	v := wireValue{
		MessagingProduct: "whatsapp",
		Metadata:         wireMetadata{DisplayPhoneNumber: s.display(m.PhoneNumberID), PhoneNumberID: m.PhoneNumberID},
		Statuses:         []wireStatus{ws},
	}
	if m.UserID != "" && status != "failed" {
		v.Contacts = []wireStatusContact{{UserID: m.UserID}}
	}
	env := wireEnvelope{
		Object: "whatsapp_business_account",
		Entry:  []wireEntry{{ID: s.waba, Changes: []wireChange{{Value: v, Field: "messages"}}}},
	}
	body, _ := json.Marshal(env)
	return escapeNonASCII(body)
}

type wireEnvelope struct {
	Object string      `json:"object"`
	Entry  []wireEntry `json:"entry"`
}

type wireEntry struct {
	ID      string       `json:"id"`
	Changes []wireChange `json:"changes"`
}

type wireChange struct {
	Value wireValue `json:"value"`
	Field string    `json:"field"`
}

type wireValue struct {
	MessagingProduct string              `json:"messaging_product"`
	Metadata         wireMetadata        `json:"metadata"`
	Contacts         []wireStatusContact `json:"contacts,omitempty"`
	Statuses         []wireStatus        `json:"statuses"`
}

type wireMetadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// escapeNonASCII writes every non-ASCII character as \uXXXX, as Meta
// does: a hub that hashes decoded or re-encoded text instead of the raw
// bytes then fails the signature check here as it would in production.
// Go's encoder only emits non-ASCII inside strings, so this is safe.
func escapeNonASCII(b []byte) []byte {
	var out bytes.Buffer
	for _, r := range string(b) {
		switch {
		case r < utf8.RuneSelf:
			out.WriteByte(byte(r))
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&out, "\\u%04x\\u%04x", r1, r2)
		default:
			fmt.Fprintf(&out, "\\u%04x", r)
		}
	}
	return out.Bytes()
}

func (s *Server) display(pnid string) string {
	if d := s.numbers[pnid]; d != "" {
		return d
	}
	return "15550000000"
}
