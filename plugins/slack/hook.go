package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

const (
	// signatureTolerance is Slack's: a request whose timestamp is further
	// from now is refused, so that a captured request cannot be replayed.
	signatureTolerance = 5 * time.Minute
	// postBackTimeout bounds telling the agent in Slack why a reply was
	// not sent: Slack wants its answer within 3 seconds.
	postBackTimeout = 2 * time.Second
)

// envelope is an Events API request body.
type envelope struct {
	Type           string        `json:"type"`
	Challenge      string        `json:"challenge"`
	EventID        string        `json:"event_id"`
	Event          *messageEvent `json:"event"`
	Authorizations []struct {
		UserID string `json:"user_id"`
		IsBot  bool   `json:"is_bot"`
	} `json:"authorizations"`
}

// messageEvent is the inner event, as far as a message needs it.
type messageEvent struct {
	Type     string            `json:"type"`
	SubType  string            `json:"subtype"`
	User     string            `json:"user"`
	BotID    string            `json:"bot_id"`
	Text     string            `json:"text"`
	TS       string            `json:"ts"`
	ThreadTS string            `json:"thread_ts"`
	Channel  string            `json:"channel"`
	Files    []json.RawMessage `json:"files"`
	// Reaction and Item are set on reaction_added and reaction_removed.
	Reaction string `json:"reaction"`
	Item     struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	} `json:"item"`
}

// hookState is the value of hook:<event_id>.
type hookState struct {
	Done bool  `json:"done,omitempty"`
	At   int64 `json:"at"`
}

// HandleHook answers Slack's Events API requests to POST /hooks/<name>.
func (i *instance) HandleHook(ctx context.Context, req *sdk.HookRequest) (*sdk.HookResponse, error) {
	c, s := i.c, i.s
	if req.Method != http.MethodPost {
		resp := text(http.StatusMethodNotAllowed, "use POST")
		resp.Header.Set("Allow", http.MethodPost)
		return resp, nil
	}
	if len(s.secret) == 0 {
		// Socket Mode without a signing secret: nothing could be verified.
		return text(http.StatusForbidden, "this connector receives Slack events over Socket Mode; set signing_secret to accept them at /hooks too"), nil
	}
	if err := verify(s.secret, req.Header, req.Body, c.now()); err != nil {
		c.log.Warn("slack hook: refused a request", "err", err, "remote", req.RemoteAddr)
		return text(http.StatusUnauthorized, err.Error()), nil
	}
	if ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
		// Interactivity (buttons, shortcuts): this connector posts none.
		return text(http.StatusOK, ""), nil
	}
	var env envelope
	if err := json.Unmarshal(req.Body, &env); err != nil {
		return text(http.StatusBadRequest, "body is not an Events API JSON payload"), nil
	}
	switch env.Type {
	case "url_verification":
		return text(http.StatusOK, env.Challenge), nil
	case "event_callback":
		return c.handleEvent(ctx, s, &env, req.Header.Get("X-Slack-Retry-Num")), nil
	}
	return text(http.StatusOK, ""), nil
}

// handleEvent sends an agent's reply in a conversation thread to the
// customer. Everything that is not such a reply is acknowledged and
// ignored: Slack would otherwise retry it.
func (c *connector) handleEvent(ctx context.Context, s *settings, env *envelope, retryNum string) *sdk.HookResponse {
	ok := text(http.StatusOK, "")
	m := env.Event
	if m != nil && (m.Type == "reaction_added" || m.Type == "reaction_removed") && env.EventID != "" {
		return c.handleReaction(ctx, s, env)
	}
	if m == nil || m.Type != "message" || env.EventID == "" {
		return ok
	}
	switch {
	case m.BotID != "", m.User == "":
		// Our own posts and other apps': answering them would loop.
		return ok
	case m.SubType != "" && m.SubType != "thread_broadcast" && m.SubType != "file_share":
		// Edits, deletions, joins: not something to send.
		return ok
	case m.ThreadTS == "" || m.ThreadTS == m.TS:
		return ok
	}
	for _, a := range env.Authorizations {
		if a.IsBot && a.UserID == m.User {
			// A customer's file the bot shared (file_share, with the
			// bot's user and no bot_id): sending it back would loop.
			return ok
		}
	}
	r := &run{c: c, s: s, kv: s.host.KV()}
	var info convInfo
	found, err := r.getJSON(ctx, threadKey(m.Channel, m.ThreadTS), &info)
	if err != nil {
		c.log.Warn("slack hook: cannot read the hub's KV; Slack will retry", "err", err)
		return text(http.StatusServiceUnavailable, "try again")
	}
	if !found {
		return ok // a thread that is not a conversation
	}
	if isNote(m.Text) {
		return ok
	}

	// Slack redelivers an event it thinks we missed (X-Slack-Retry-Num),
	// possibly while we still handle the first one: the claim makes one
	// of them do the work. SendMessage's idempotency key would stop a
	// second send anyway; the claim also stops a second post-back.
	key := hookKey(env.EventID)
	claim, _ := json.Marshal(hookState{At: c.now().Unix()})
	if took, err := r.claimHook(ctx, key, claim); err != nil {
		c.log.Warn("slack hook: cannot claim the event in the hub's KV; Slack will retry", "err", err)
		return text(http.StatusServiceUnavailable, "try again")
	} else if !took {
		c.log.Debug("slack hook: duplicate event ignored", "event_id", env.EventID, "retry", retryNum)
		return ok
	}
	finish := func() {
		done, _ := json.Marshal(hookState{Done: true, At: c.now().Unix()})
		if err := r.kv.Put(ctx, key, done); err != nil {
			c.log.Warn("slack hook: handled, but could not record it", "event_id", env.EventID, "err", err)
		}
	}

	if len(m.Files) > 0 {
		// Files take longer than Slack waits: recorded, then sent in the
		// background (outbound.go), which marks the hook key done.
		if !c.queueFiles(ctx, r, env, info) {
			_ = r.kv.Delete(ctx, key)
			return text(http.StatusServiceUnavailable, "could not record the attachments, retry later")
		}
		return ok
	}
	body := toWhatsApp(m.Text)
	thread := msgRef{Channel: m.Channel, ThreadTS: m.ThreadTS}
	if body == "" {
		finish()
		return ok
	}
	res, err := s.host.SendMessage(ctx, sdk.OutboundMessage{
		To: info.To, PhoneNumberID: info.PhoneNumberID, Text: body, IdempotencyKey: env.EventID,
	})
	var refused *sdk.RefusedError
	switch {
	case errors.As(err, &refused):
		msg := strings.TrimSuffix(refused.Message, ".")
		if msg == "" {
			msg = refused.Code
		}
		r.postBack(ctx, thread, ":warning: Not delivered: "+esc(msg)+". _("+esc(refused.Code)+")_")
		finish()
		return ok
	case err != nil:
		// Not taken: let Slack's retry try again (same key, so at most
		// one message ever leaves).
		_ = r.kv.Delete(ctx, key)
		c.log.Warn("slack hook: the hub could not queue the reply; Slack will retry", "event_id", env.EventID, "err", err)
		return text(http.StatusServiceUnavailable, "could not queue the message, retry later")
	}
	r.remember(ctx, outKey(res.ID), msgRef{Channel: m.Channel, ThreadTS: m.ThreadTS, TS: m.TS})
	finish()
	return ok
}

// claimHook takes key for this request: it is free, or a claim older
// than claimLease (a crash mid-way) is taken over.
func (r *run) claimHook(ctx context.Context, key string, claim []byte) (bool, error) {
	ok, err := r.kv.CompareAndSwap(ctx, key, nil, claim)
	if err != nil || ok {
		return ok, err
	}
	raw, found, err := r.kv.Get(ctx, key)
	if err != nil || !found {
		return false, err
	}
	var st hookState
	if json.Unmarshal(raw, &st) == nil && (st.Done || r.c.now().Sub(time.Unix(st.At, 0)) < claimLease) {
		return false, nil
	}
	return r.kv.CompareAndSwap(ctx, key, raw, claim)
}

// postBack tells the agent something in the thread; failing to is
// logged, since the request itself was handled.
func (r *run) postBack(ctx context.Context, thread msgRef, mrk string) {
	ctx, cancel := context.WithTimeout(ctx, postBackTimeout)
	defer cancel()
	plain := plainNotice(mrk)
	if _, _, err := r.post(ctx, thread.Channel, "", thread.ThreadTS, post{text: plain, blocks: sections(mrk)}); err != nil {
		r.c.log.Warn("slack hook: could not post the notice in the thread", "channel", thread.Channel, "thread_ts", thread.ThreadTS, "err", err)
	}
}

// italic matches an mrkdwn italic span: underscores that open after a
// space (or at the start) and close before one (or at the end or a
// punctuation mark), so that media_too_large and foto_grande.jpg keep
// theirs.
var italic = regexp.MustCompile(`(^|\s)_([^_\s](?:[^\n]*?[^_\s])?)_($|[\s.,;:!?)])`)

// plainNotice is a notice's mrkdwn as the plain text Slack shows in
// notifications and the CLI prints: no emoji code, no italic markers.
func plainNotice(mrk string) string {
	return italic.ReplaceAllString(strings.ReplaceAll(mrk, ":warning: ", ""), "$1$2$3")
}

// isNote reports whether an agent's reply is an internal note.
func isNote(text string) bool {
	t := strings.TrimSpace(text)
	return len(t) >= 5 && strings.EqualFold(t[:5], "note:")
}

// verify checks Slack's v0 request signature and its timestamp.
func verify(secret []byte, h http.Header, body []byte, now time.Time) error {
	sig, stamp := h.Get("X-Slack-Signature"), h.Get("X-Slack-Request-Timestamp")
	if sig == "" || stamp == "" {
		return errors.New("missing X-Slack-Signature or X-Slack-Request-Timestamp: not a request from Slack")
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return errors.New("X-Slack-Request-Timestamp is not a Unix time")
	}
	if d := now.Sub(time.Unix(secs, 0)); d > signatureTolerance || d < -signatureTolerance {
		return fmt.Errorf("X-Slack-Request-Timestamp is %s away from now, more than %s: a stale or replayed request (or a clock that is off)", d.Round(time.Second).Abs(), signatureTolerance)
	}
	got, ok := strings.CutPrefix(sig, "v0=")
	raw, err := hex.DecodeString(got)
	if !ok || err != nil {
		return errors.New("X-Slack-Signature is not a v0= signature")
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("v0:" + stamp + ":"))
	mac.Write(body)
	if !hmac.Equal(raw, mac.Sum(nil)) {
		return errors.New("X-Slack-Signature does not match: check signing_secret")
	}
	return nil
}

var (
	reUserMention = regexp.MustCompile(`<@[A-Z0-9]+(?:\|([^>]*))?>`)
	reChannel     = regexp.MustCompile(`<#[A-Z0-9]+(?:\|([^>]*))?>`)
	reSpecial     = regexp.MustCompile(`<![^>]*>`)
	reLink        = regexp.MustCompile(`<((?:https?|mailto|tel):[^|>]*)(?:\|([^>]*))?>`)
)

// toWhatsApp turns Slack's message text into what a WhatsApp customer
// should read. *bold*, _italic_, ~strike~ and ``` are the same on both
// sides; Slack's <…> markup and &-escapes are not.
func toWhatsApp(s string) string {
	s = reUserMention.ReplaceAllStringFunc(s, func(m string) string {
		if sub := reUserMention.FindStringSubmatch(m); sub[1] != "" {
			return "@" + sub[1]
		}
		return "" // an unnamed mention means nothing to the customer
	})
	s = reChannel.ReplaceAllString(s, "#$1")
	s = reSpecial.ReplaceAllString(s, "")
	s = reLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := reLink.FindStringSubmatch(m)
		target, label := sub[1], sub[2]
		plain := strings.TrimPrefix(strings.TrimPrefix(target, "mailto:"), "tel:")
		if label == "" || label == target || label == plain {
			return plain
		}
		return label + " (" + plain + ")"
	})
	s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
	return strings.TrimSpace(s)
}

func text(status int, body string) *sdk.HookResponse {
	return &sdk.HookResponse{Status: status, Header: http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, Body: []byte(body)}
}
