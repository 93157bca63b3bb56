package slacktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Header names of Slack's request signing.
const (
	HeaderSignature = "X-Slack-Signature"
	HeaderTimestamp = "X-Slack-Request-Timestamp"
	HeaderRetryNum  = "X-Slack-Retry-Num"
	HeaderRetryWhy  = "X-Slack-Retry-Reason"
)

// Signature is Slack's v0 signature of body sent at ts:
// "v0=" + hex(HMAC-SHA256(secret, "v0:{unix ts}:{body}")).
func Signature(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + strconv.FormatInt(ts.Unix(), 10) + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedEvent returns the headers Slack sends with an Events API request:
// the signature and timestamp, and the JSON content type.
func SignedEvent(secret string, ts time.Time, body []byte) http.Header {
	return http.Header{
		"Content-Type":  {"application/json"},
		HeaderTimestamp: {strconv.FormatInt(ts.Unix(), 10)},
		HeaderSignature: {Signature(secret, ts, body)},
	}
}

// NewEventRequest builds the signed POST Slack would make to url (the
// hub's /hooks/<connector>). retry > 0 adds the X-Slack-Retry-Num and
// X-Slack-Retry-Reason headers of Slack's redeliveries.
func NewEventRequest(ctx context.Context, url, secret string, ts time.Time, body []byte, retry int) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = SignedEvent(secret, ts, body)
	if retry > 0 {
		req.Header.Set(HeaderRetryNum, strconv.Itoa(retry))
		req.Header.Set(HeaderRetryWhy, "http_timeout")
	}
	return req, nil
}

// MessageEvent is the inner event of a message callback, with the fields
// slackevents.MessageEvent reads.
type MessageEvent struct {
	Type        string            `json:"type"` // "message" when empty
	SubType     string            `json:"subtype,omitempty"`
	ClientMsgID string            `json:"client_msg_id,omitempty"`
	User        string            `json:"user,omitempty"`
	BotID       string            `json:"bot_id,omitempty"`
	Text        string            `json:"text"`
	TS          string            `json:"ts"`
	ThreadTS    string            `json:"thread_ts,omitempty"`
	ParentUser  string            `json:"parent_user_id,omitempty"`
	Channel     string            `json:"channel"`
	ChannelType string            `json:"channel_type"`
	EventTS     string            `json:"event_ts"`
	Files       []json.RawMessage `json:"files,omitempty"`
}

// EventCallback is the body of an event_callback carrying ev, as Slack
// sends it; eventID is the event_id Slack keeps across its retries.
func EventCallback(eventID string, eventTime time.Time, ev MessageEvent) []byte {
	if ev.Type == "" {
		ev.Type = "message"
	}
	if ev.ChannelType == "" {
		ev.ChannelType = "channel"
	}
	if ev.EventTS == "" {
		ev.EventTS = ev.TS
	}
	body, _ := json.Marshal(map[string]any{
		"token": "verification-token-unused", "team_id": TeamID, "api_app_id": AppID,
		"type": "event_callback", "event_id": eventID, "event_time": eventTime.Unix(),
		"authorizations": []map[string]any{{"team_id": TeamID, "user_id": BotUserID, "is_bot": true}},
		"event":          ev,
	})
	return body
}

// URLVerification is the body of Slack's url_verification handshake.
func URLVerification(challenge string) []byte {
	body, _ := json.Marshal(map[string]string{"token": "verification-token-unused", "challenge": challenge, "type": "url_verification"})
	return body
}

// HumanReply records a person's reply in a thread of the fake (so that
// reactions can be added to it) and returns the event_callback body Slack
// would send for it, to be signed with SignedEvent.
func (s *Server) HumanReply(eventID, channel, threadTS, user, text string) (Message, []byte) {
	m := s.PostAsUser(channel, threadTS, user, text)
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	body := EventCallback(eventID, now, MessageEvent{
		ClientMsgID: "cm-" + eventID, User: user, Text: text, TS: m.TS, ThreadTS: threadTS,
		ParentUser: BotUserID, Channel: channel,
	})
	return m, body
}

// HumanReaction is the event_callback body Slack sends when user adds
// (added) or removes a reaction name (":+1:" without the colons) on the
// message channel/ts. The fake's own message is not changed: only bot
// reactions are recorded there.
func HumanReaction(eventID string, eventTime time.Time, channel, ts, user, name string, added bool) []byte {
	typ := "reaction_added"
	if !added {
		typ = "reaction_removed"
	}
	body, _ := json.Marshal(map[string]any{
		"token": "verification-token-unused", "team_id": TeamID, "api_app_id": AppID,
		"type": "event_callback", "event_id": eventID, "event_time": eventTime.Unix(),
		"authorizations": []map[string]any{{"team_id": TeamID, "user_id": BotUserID, "is_bot": true}},
		"event": map[string]any{
			"type": typ, "user": user, "reaction": name, "item_user": BotUserID,
			"item":     map[string]string{"type": "message", "channel": channel, "ts": ts},
			"event_ts": strconv.FormatInt(eventTime.Unix(), 10) + ".000100",
		},
	})
	return body
}
