package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wahub/wahub/sdk"
)

// emojiNames are Slack's names for the emoji customers react with most;
// reactions.add takes a name, not the character. A reaction outside this
// list is told in the thread instead.
var emojiNames = map[string]string{
	"👍": "+1", "👎": "-1", "❤️": "heart", "❤": "heart", "😂": "joy", "😮": "open_mouth", "😢": "cry",
	"🙏": "pray", "🔥": "fire", "🎉": "tada", "👏": "clap", "😀": "grinning", "😃": "smiley", "😊": "blush",
	"😍": "heart_eyes", "🥰": "smiling_face_with_3_hearts", "😡": "rage", "😠": "angry", "😭": "sob",
	"✅": "white_check_mark", "👌": "ok_hand", "💯": "100", "🤔": "thinking_face", "😅": "sweat_smile",
	"🤣": "rolling_on_the_floor_laughing", "😉": "wink", "🙌": "raised_hands", "💪": "muscle", "👀": "eyes",
	"😱": "scream", "🥲": "smiling_face_with_tear", "❤️‍🔥": "heart_on_fire", "💔": "broken_heart", "⭐": "star",
}

func reactKey(wamid string) string { return "react:" + wamid }

// reaction shows a customer's reaction on the Slack message it reacts to
// (reactions.add, or reactions.remove when they took it back) instead of
// as a message of its own. It reports false when it cannot (the message
// is not in Slack, the emoji has no Slack name), and the reaction is then
// posted as a short note in the thread.
func (r *run) reaction(ctx context.Context, ev *sdk.Event) (sdk.Result, bool) {
	re := ev.Message.Reaction
	var ref msgRef
	found, err := r.getJSON(ctx, wamidKey(re.MessageID), &ref)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err), true
	}
	if !found || ref.TS == "" {
		return sdk.Result{}, false
	}
	if re.Emoji == "" {
		var name string
		if ok, err := r.getJSON(ctx, reactKey(re.MessageID), &name); err != nil {
			return sdk.RetryResult(ev.ID, 0, err), true
		} else if !ok {
			return sdk.Result{}, false
		}
		if err := r.unreact(ctx, ref, name); err != nil && !errors.Is(err, errGone) {
			return result(ev.ID, err), true
		}
		_ = r.kv.Delete(ctx, reactKey(re.MessageID))
		r.remember(ctx, evtKey(ev.ID), ref)
		return sdk.DeliveredResult(ev.ID), true
	}
	name, ok := emojiNames[re.Emoji]
	if !ok {
		name, ok = emojiNames[strings.TrimSuffix(re.Emoji, "\ufe0f")]
	}
	if !ok {
		return sdk.Result{}, false
	}
	// WhatsApp keeps one reaction per customer and message: a new one
	// replaces the old.
	var old string
	if had, _ := r.getJSON(ctx, reactKey(re.MessageID), &old); had && old != name {
		if err := r.unreact(ctx, ref, old); err != nil && !errors.Is(err, errGone) {
			return result(ev.ID, err), true
		}
	}
	if err := r.react(ctx, ref, name); err != nil {
		if errors.Is(err, errGone) {
			return sdk.Result{}, false
		}
		return result(ev.ID, err), true
	}
	r.remember(ctx, reactKey(re.MessageID), name)
	r.remember(ctx, evtKey(ev.ID), ref)
	return sdk.DeliveredResult(ev.ID), true
}

// unreact removes a reaction; one already gone is fine.
func (r *run) unreact(ctx context.Context, ref msgRef, name string) error {
	return r.setReaction(ctx, ref, name, false)
}

// quoteBlock is the mrkdwn quote of the message m replies to, or "".
func quoteBlock(m *sdk.Message) string {
	q := m.Quoted
	if q == nil || m.Reaction != nil {
		return ""
	}
	who := "Customer"
	if q.From == "business" {
		who = "You"
	}
	text := q.Text
	if text == "" {
		text = "(" + q.Type + " message)"
	}
	text = truncate(oneLine(text), 300)
	return "> *" + who + ":* " + esc(text) + "\n"
}

// adOf summarises a Click-to-WhatsApp referral: the ad's headline and id.
func adOf(raw []byte) string {
	ref, ok := sdk.ParseReferral(raw)
	if !ok {
		return ""
	}
	parts := []string{}
	if ref.Headline != "" {
		parts = append(parts, "“"+ref.Headline+"”")
	}
	if ref.SourceID != "" {
		parts = append(parts, ref.SourceType+" "+ref.SourceID)
	}
	return strings.Join(parts, ", ")
}

// alert posts p as a message of its own in the team's channel, once.
func (r *run) alert(ctx context.Context, ev *sdk.Event, p post) sdk.Result {
	if done, err := r.done(ctx, ev); err != nil || done {
		return doneResult(ev, err)
	}
	channel, chKey, err := r.s.channelOf(ev)
	if err != nil {
		return sdk.FailedResult(ev.ID, err)
	}
	ch, ts, err := r.post(ctx, channel, chKey, "", p)
	if err != nil {
		return result(ev.ID, err)
	}
	r.remember(ctx, evtKey(ev.ID), msgRef{Channel: ch, TS: ts})
	return sdk.DeliveredResult(ev.ID)
}

// failedAlert is a failed WhatsApp message, for an alerts channel.
func failedAlert(ev *sdk.Event) post {
	why := "WhatsApp reported the message as failed"
	if len(ev.Status.Errors) > 0 {
		why = errorText(ev.Status.Errors[0])
	}
	who := "a customer"
	if ev.Contact != nil && ev.Contact.Key() != "" {
		who = ev.Contact.Key()
		if ev.Contact.WAID != "" {
			who = "+" + ev.Contact.WAID
		}
	}
	src := ""
	if ev.Outbound != nil && ev.Outbound.Source != "" {
		src = " (sent by " + ev.Outbound.Source + ")"
	}
	text := "WhatsApp message to " + who + " failed" + src + ": " + why
	return post{text: text, blocks: sections(":x: *WhatsApp message to " + esc(who) + " failed*" + esc(src) + "\n" + esc(why) +
		"\nmessage `" + esc(ev.Status.MessageID) + "`")}
}

// deadLetterAlert is a delivery the hub gave up on.
func deadLetterAlert(ev *sdk.Event) post {
	d := ev.DeadLetter
	text := fmt.Sprintf("Delivery to %s gave up after %d attempt(s): %s", d.Connector, d.Attempts, d.Error)
	body := fmt.Sprintf(":skull: *Delivery to %s gave up* after %d attempt(s)\n%s\nevent `%s` (%s) — `wahub deadletters replay --connector %s %s` sends it again",
		esc(d.Connector), d.Attempts, esc(d.Error), esc(d.EventID), esc(string(d.EventType)), esc(d.Connector), esc(d.EventID))
	return post{text: text, blocks: sections(body)}
}

func slackMsgKey(channel, ts string) string { return "slackmsg:" + channel + ":" + ts }

// customerMsg is what a Slack post of a customer's message maps back to.
type customerMsg struct {
	WAMID    string `json:"wamid"`
	ThreadTS string `json:"thread_ts"`
}

// emojiOf is the emoji a Slack reaction name stands for, for the names
// emojiNames maps (and their common aliases).
var emojiOf = func() map[string]string {
	m := map[string]string{"thumbsup": "👍", "thumbsdown": "👎", "heart": "❤️", "white_check_mark": "✅", "pray": "🙏"}
	for e, name := range emojiNames {
		if _, ok := m[name]; !ok && e != "❤" {
			m[name] = e
		}
	}
	return m
}()

// handleReaction sends an agent's reaction on a customer's message in
// Slack to WhatsApp, as a reaction on that message (and takes it back
// when the agent removes it). The bot's own reactions (statuses, the
// customer's reactions shown in Slack) are not agents'.
func (c *connector) handleReaction(ctx context.Context, s *settings, env *envelope) *sdk.HookResponse {
	ok := text(http.StatusOK, "")
	m := env.Event
	if m.User == "" || m.Item.Type != "message" {
		return ok
	}
	for _, a := range env.Authorizations {
		if a.IsBot && a.UserID == m.User {
			return ok
		}
	}
	emoji, known := emojiOf[strings.SplitN(m.Reaction, "::", 2)[0]]
	if !known {
		return ok // WhatsApp takes one emoji; a custom Slack one has none
	}
	r := &run{c: c, s: s, kv: s.host.KV()}
	var cm customerMsg
	found, err := r.getJSON(ctx, slackMsgKey(m.Item.Channel, m.Item.TS), &cm)
	if err != nil {
		return text(http.StatusServiceUnavailable, "try again")
	}
	if !found {
		return ok // not a customer's message
	}
	var info convInfo
	if found, err = r.getJSON(ctx, threadKey(m.Item.Channel, cm.ThreadTS), &info); err != nil {
		return text(http.StatusServiceUnavailable, "try again")
	} else if !found {
		return ok
	}
	if m.Type == "reaction_removed" {
		emoji = ""
	}
	_, err = s.host.SendMessage(ctx, sdk.OutboundMessage{
		To: info.To, PhoneNumberID: info.PhoneNumberID, IdempotencyKey: env.EventID,
		Reaction: &sdk.Reaction{MessageID: cm.WAMID, Emoji: emoji},
	})
	var refused *sdk.RefusedError
	switch {
	case errors.As(err, &refused):
		r.postBack(ctx, msgRef{Channel: m.Item.Channel, ThreadTS: cm.ThreadTS},
			":warning: Reaction not sent to WhatsApp: "+esc(strings.TrimSuffix(refused.Message, "."))+". _("+esc(refused.Code)+")_")
	case err != nil:
		c.log.Warn("slack hook: the hub could not queue the reaction; Slack will retry", "event_id", env.EventID, "err", err)
		return text(http.StatusServiceUnavailable, "could not queue the reaction, retry later")
	}
	return ok
}
