package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/sdk"
)

const (
	// claimLease is how long a claim to post a conversation's root holds
	// off other deliveries; past it the claimer is taken for dead (a
	// Slack call gives up long before: config timeout, 10s by default).
	claimLease = time.Minute
	// busyRetry is when to try again an event whose conversation's root
	// is being posted by another delivery.
	busyRetry = 2 * time.Second
)

// Reactions that show what WhatsApp reported about an agent's reply.
const (
	reactionSent      = "heavy_check_mark"
	reactionDelivered = "white_check_mark"
	reactionRead      = "eyes"
	reactionFailed    = "x"
)

// threadRef is the value of conv:… and last:… keys: a thread, or a claim
// on posting its root.
type threadRef struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
	// Pending is the event posting the root, since At (Unix seconds).
	Pending string `json:"pending,omitempty"`
	At      int64  `json:"at,omitempty"`
}

// convInfo is the value of thread:<channel>:<ts>: what a reply in the
// thread needs to reach the customer.
type convInfo struct {
	ConversationID string `json:"conversation_id"`
	To             string `json:"to"`
	PhoneNumberID  string `json:"phone_number_id,omitempty"`
	Name           string `json:"name,omitempty"`
	Team           string `json:"team,omitempty"`
}

// msgRef is a Slack message: the value of evt:, out: and wamid: keys.
type msgRef struct {
	Channel  string `json:"channel"`
	ThreadTS string `json:"thread_ts,omitempty"`
	TS       string `json:"ts,omitempty"`
}

func convKey(conv, channel string) string { return "conv:" + conv + ":" + channel }
func threadKey(channel, ts string) string { return "thread:" + channel + ":" + ts }
func lastKey(conv string) string          { return "last:" + conv }
func evtKey(id string) string             { return "evt:" + id }
func outKey(outboxID string) string       { return "out:" + outboxID }
func wamidKey(wamid string) string        { return "wamid:" + wamid }
func hookKey(eventID string) string       { return "hook:" + eventID }

// errBusy: another delivery is posting the conversation's root.
var errBusy = errors.New("another delivery is posting this conversation's root message in Slack; trying again shortly")

// batch is what the conversations of one Deliver share.
type batch struct {
	mu sync.Mutex
	// pause is set once Slack rate-limited a call: the rest of the batch
	// waits that long instead of meeting the same 429.
	pause time.Duration
}

func (b *batch) paused() time.Duration {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pause
}

func (b *batch) rateLimited(d time.Duration) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pause = max(b.pause, d, time.Second)
}

// run is one Deliver's (or hook's) view of the connector.
type run struct {
	c  *connector
	s  *settings
	kv sdk.KV
	b  *batch
}

// Deliver posts each event and answers one result per event.
// Conversations are posted concurrently, each one's events in order; once
// an event of a conversation is not delivered, its later events are held
// back (sdk.DeliverInOrder), so that the thread never shows them out of
// order. Once Slack rate-limits a call, the rest of the batch waits too.
func (i *instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	r := &run{c: i.c, s: i.s, kv: i.s.host.KV(), b: &batch{}}
	return sdk.DeliverInOrder(ctx, events, maxConcurrent, func(ctx context.Context, ev *sdk.Event) sdk.Result {
		if d := r.b.paused(); d > 0 {
			return sdk.HeldResult(ev.ID, d, "not posted: Slack rate-limited this batch")
		}
		return r.handle(ctx, ev)
	})
}

// handle delivers one event.
func (r *run) handle(ctx context.Context, ev *sdk.Event) sdk.Result {
	switch ev.Type {
	case sdk.TypeMessageReceived, sdk.TypeButtonClicked:
		return r.inbound(ctx, ev)
	case sdk.TypeMessageSent:
		return r.sent(ctx, ev)
	case sdk.TypeStatusDelivered, sdk.TypeStatusRead, sdk.TypeStatusFailed:
		return r.status(ctx, ev)
	case sdk.TypeOptinGranted, sdk.TypeOptinRevoked, sdk.TypeContactChanged:
		return r.note(ctx, ev)
	case sdk.TypeDeadLetter:
		if r.s.alerts && ev.DeadLetter != nil {
			return r.alert(ctx, ev, deadLetterAlert(ev))
		}
	}
	return sdk.SkippedResult(ev.ID, "the slack connector does not show "+string(ev.Type)+" events")
}

// conversation names ev's conversation; the hub sets one on every event
// of a customer, the fallback only guards against an event without.
func conversation(ev *sdk.Event) string {
	if ev.ConversationID != "" {
		return ev.ConversationID
	}
	if key := ev.Contact.Key(); key != "" {
		pn := ""
		if ev.Business != nil {
			pn = ev.Business.PhoneNumberID
		}
		return "contact:" + pn + ":" + key
	}
	return ""
}

// done reports whether an earlier delivery of ev already posted it.
func (r *run) done(ctx context.Context, ev *sdk.Event) (bool, error) {
	_, found, err := r.kv.Get(ctx, evtKey(ev.ID))
	if err != nil {
		return false, fmt.Errorf("look up %s in the hub's KV: %w", evtKey(ev.ID), err)
	}
	return found, nil
}

// remember records what ev posted. The post exists whatever happens here,
// so a failure is logged, not returned: answering Retry would post twice.
func (r *run) remember(ctx context.Context, key string, v any) {
	raw, _ := json.Marshal(v)
	if err := r.kv.Put(ctx, key, raw); err != nil {
		r.c.log.Warn("slack: posted, but could not record it in the hub's KV; a redelivery may post again", "key", key, "err", err)
	}
}

// msgOf is the Slack message recorded under key(id); an empty id names
// none.
func (r *run) msgOf(ctx context.Context, id string, key func(string) string) (ref msgRef, found bool, err error) {
	if id == "" {
		return ref, false, nil
	}
	found, err = r.getJSON(ctx, key(id), &ref)
	return ref, found, err
}

func (r *run) getJSON(ctx context.Context, key string, v any) (bool, error) {
	raw, found, err := r.kv.Get(ctx, key)
	if err != nil {
		return false, fmt.Errorf("look up %s in the hub's KV: %w", key, err)
	}
	if !found {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		// Not ours (or from a future version): treat as absent rather
		// than block the conversation forever.
		r.c.log.Warn("slack: ignoring an unreadable KV value", "key", key, "err", err)
		return false, nil
	}
	return true, nil
}

// inbound posts a customer's message: the root of its conversation's
// thread in the team's channel, or a reply in that thread.
func (r *run) inbound(ctx context.Context, ev *sdk.Event) sdk.Result {
	if done, err := r.done(ctx, ev); err != nil || done {
		return doneResult(ev, err)
	}
	if ev.Message != nil && ev.Message.Reaction != nil {
		if res, ok := r.reaction(ctx, ev); ok {
			return res
		}
	}
	channel, chKey, err := r.s.channelOf(ev)
	if err != nil {
		return sdk.FailedResult(ev.ID, err)
	}
	team := routeTeam(ev)
	conv := conversation(ev)
	if conv == "" {
		conv = "event:" + ev.ID // nothing to thread it with: a root of its own
	}
	key := convKey(conv, channel)
	rootTS, claim, err := r.claimThread(ctx, key, ev.ID)
	switch {
	case errors.Is(err, errBusy):
		return sdk.RetryResult(ev.ID, busyRetry, err)
	case err != nil:
		return sdk.RetryResult(ev.ID, 0, err)
	}

	if rootTS == "" {
		ch, ts, err := r.post(ctx, channel, chKey, "", r.s.rootPost(ev))
		if err != nil {
			r.release(ctx, key, claim)
			return result(ev.ID, err)
		}
		final, _ := json.Marshal(threadRef{Channel: ch, TS: ts})
		if ok, err := r.kv.CompareAndSwap(ctx, key, claim, final); err != nil || !ok {
			r.c.log.Warn("slack: root posted but its claim was lost; the conversation may get a second root", "key", key, "err", err)
		}
		r.remember(ctx, threadKey(ch, ts), r.info(ev, conv, team))
		r.rememberWAMID(ctx, ev, msgRef{Channel: ch, TS: ts})
		r.remember(ctx, lastKey(conv), threadRef{Channel: ch, TS: ts})
		if hasFile(ev) {
			// The root shows the message; the file goes in its thread. A
			// redelivery finds the root and goes on with the file only.
			return r.fileReply(ctx, ev, ch, ts, conv, team, true)
		}
		r.remember(ctx, evtKey(ev.ID), msgRef{Channel: ch, TS: ts})
		return sdk.DeliveredResult(ev.ID)
	}
	if hasFile(ev) {
		return r.fileReply(ctx, ev, channel, rootTS, conv, team, false)
	}

	ch, ts, err := r.post(ctx, channel, chKey, rootTS, r.s.replyPost(ev))
	if err != nil {
		return result(ev.ID, err)
	}
	r.remember(ctx, evtKey(ev.ID), msgRef{Channel: ch, ThreadTS: rootTS, TS: ts})
	r.rememberWAMID(ctx, ev, msgRef{Channel: ch, ThreadTS: rootTS, TS: ts})
	return r.refreshThread(ctx, ev, ch, rootTS, conv, team)
}

// fileReply shares the customer's file in the thread rootTS: the file
// itself with who sent it and the caption. A file the hub cannot have is
// told in the thread instead, and the event is delivered all the same.
func (r *run) fileReply(ctx context.Context, ev *sdk.Event, channel, rootTS, conv, team string, inRoot bool) sdk.Result {
	// An earlier attempt at ev may have posted the root and stopped
	// before the file.
	inRoot = inRoot || r.rootIsEvent(ctx, ev, channel, rootTS)
	ts, err := r.shareFile(ctx, ev, channel, rootTS, inRoot)
	var gone *errUnavailable
	switch {
	case errors.As(err, &gone):
		var p post
		if inRoot {
			p = r.s.unavailableNote(ev, gone.reason)
		} else {
			// The message itself, with the file marked as lost.
			lost := *ev
			msg := *ev.Message
			media := *msg.Media
			media.State, media.Reason = sdk.MediaUnavailable, gone.reason
			msg.Media, lost.Message = &media, &msg
			p = r.s.replyPost(&lost)
		}
		ch, nts, err := r.post(ctx, channel, "", rootTS, p)
		if err != nil {
			return result(ev.ID, err)
		}
		ts, channel = nts, ch
	case err != nil:
		return result(ev.ID, err)
	}
	ref := msgRef{Channel: channel, ThreadTS: rootTS, TS: ts}
	r.remember(ctx, evtKey(ev.ID), ref)
	if !inRoot && ts != "" {
		r.rememberWAMID(ctx, ev, ref)
	}
	_ = r.kv.Delete(ctx, fileKey(ev.ID))
	return r.refreshThread(ctx, ev, channel, rootTS, conv, team)
}

// rootIsEvent reports whether the root of the thread shows ev: the root
// was posted by an earlier attempt at ev, which then stopped before its
// file.
func (r *run) rootIsEvent(ctx context.Context, ev *sdk.Event, channel, rootTS string) bool {
	var cm customerMsg
	found, _ := r.getJSON(ctx, slackMsgKey(channel, rootTS), &cm)
	return found && ev.Message != nil && cm.WAMID == ev.Message.ID
}

// refreshThread keeps the thread's record of the customer current after
// a reply was posted in it.
func (r *run) refreshThread(ctx context.Context, ev *sdk.Event, ch, rootTS, conv, team string) sdk.Result {
	r.remember(ctx, lastKey(conv), threadRef{Channel: ch, TS: rootTS})
	// The customer's identity can change (a user_id appears, a number
	// changes); keep the thread's copy current so that replies reach them.
	info := r.info(ev, conv, team)
	var old convInfo
	found, err := r.getJSON(ctx, threadKey(ch, rootTS), &old)
	if err != nil {
		// Unknown what the thread holds: writing now could give it this
		// event's team instead of the one it started with. The message is
		// posted; the next one refreshes the record.
		r.c.log.Warn("slack: thread record not refreshed", "key", threadKey(ch, rootTS), "err", err)
		return sdk.DeliveredResult(ev.ID)
	}
	if found {
		info.Team = old.Team // the thread's team is the one it started with
	}
	if !found || old != info {
		r.remember(ctx, threadKey(ch, rootTS), info)
	}
	return sdk.DeliveredResult(ev.ID)
}

func (r *run) info(ev *sdk.Event, conv, team string) convInfo {
	info := convInfo{ConversationID: conv, To: ev.Contact.Key(), Team: team}
	if ev.Contact != nil {
		info.Name = ev.Contact.Name
	}
	if ev.Business != nil {
		info.PhoneNumberID = ev.Business.PhoneNumberID
	}
	return info
}

func doneResult(ev *sdk.Event, err error) sdk.Result {
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	// A redelivery: the post exists.
	return sdk.DeliveredResult(ev.ID)
}

// claimThread returns the root ts of the thread at key, or, when there is
// none yet, claims the right to post it (rootTS "" and the claim's value).
// The claim is a compare-and-swap, so that two deliveries never post two
// roots for one conversation; a claim older than claimLease, or made by an
// earlier attempt at the same event, is taken over.
func (r *run) claimThread(ctx context.Context, key, eventID string) (rootTS string, claim []byte, err error) {
	for range 3 {
		raw, found, err := r.kv.Get(ctx, key)
		if err != nil {
			return "", nil, fmt.Errorf("look up %s in the hub's KV: %w", key, err)
		}
		claim, _ = json.Marshal(threadRef{Pending: eventID, At: r.c.now().Unix()})
		if !found {
			ok, err := r.kv.CompareAndSwap(ctx, key, nil, claim)
			if err != nil {
				return "", nil, fmt.Errorf("claim %s in the hub's KV: %w", key, err)
			}
			if ok {
				return "", claim, nil
			}
			continue
		}
		var ref threadRef
		if err := json.Unmarshal(raw, &ref); err == nil && ref.TS != "" {
			return ref.TS, nil, nil
		}
		if ref.Pending != eventID && r.c.now().Sub(time.Unix(ref.At, 0)) < claimLease {
			return "", nil, errBusy
		}
		ok, err := r.kv.CompareAndSwap(ctx, key, raw, claim)
		if err != nil {
			return "", nil, fmt.Errorf("claim %s in the hub's KV: %w", key, err)
		}
		if ok {
			return "", claim, nil
		}
	}
	return "", nil, errBusy
}

// release drops a claim whose root could not be posted, so that the next
// attempt need not wait out the lease.
func (r *run) release(ctx context.Context, key string, claim []byte) {
	raw, found, err := r.kv.Get(ctx, key)
	if err == nil && found && string(raw) == string(claim) {
		_ = r.kv.Delete(ctx, key)
	}
}

// findThread returns the conversation's thread: the one in the channel of
// team if there is one, else the one used last.
func (r *run) findThread(ctx context.Context, ev *sdk.Event, team string) (threadRef, bool, error) {
	conv := conversation(ev)
	if conv == "" {
		return threadRef{}, false, nil
	}
	var ref threadRef
	if team != "" {
		if ch, _ := r.s.channelFor(team); ch != "" {
			found, err := r.getJSON(ctx, convKey(conv, ch), &ref)
			if err != nil {
				return ref, false, err
			}
			if found && ref.TS != "" && ref.Channel != "" {
				return ref, true, nil
			}
		}
	}
	found, err := r.getJSON(ctx, lastKey(conv), &ref)
	return ref, found && ref.TS != "", err
}

// sent handles message.sent: for a reply an agent sent from this
// connector, it links the wamid to the agent's Slack message (for status
// reactions); a message someone else had the hub send is shown in the
// conversation's thread.
func (r *run) sent(ctx context.Context, ev *sdk.Event) sdk.Result {
	if ev.Message == nil {
		return sdk.SkippedResult(ev.ID, "message.sent without a message")
	}
	if done, err := r.done(ctx, ev); err != nil || done {
		return doneResult(ev, err)
	}
	if ev.Outbound != nil && ev.Outbound.Source == "connector:"+r.s.name {
		ref, found, err := r.msgOf(ctx, ev.Outbound.ID, outKey)
		if err != nil {
			return sdk.RetryResult(ev.ID, 0, err)
		}
		if !found {
			// The hook could not record the agent's message: statuses
			// are then told in the thread instead of as reactions.
			th, ok, err := r.findThread(ctx, ev, ev.Outbound.Team)
			if err != nil {
				return sdk.RetryResult(ev.ID, 0, err)
			}
			if !ok {
				return sdk.SkippedResult(ev.ID, "sent from Slack, but its thread is not known")
			}
			ref = msgRef{Channel: th.Channel, ThreadTS: th.TS}
		}
		if ev.Message.ID != "" {
			r.remember(ctx, wamidKey(ev.Message.ID), ref)
		}
		if r.s.statuses == "reactions" && ref.TS != "" {
			if err := r.react(ctx, ref, reactionSent); err != nil && !errors.Is(err, errGone) {
				return result(ev.ID, err)
			}
		}
		r.remember(ctx, evtKey(ev.ID), ref)
		return sdk.DeliveredResult(ev.ID)
	}

	team := ""
	if ev.Outbound != nil {
		team = ev.Outbound.Team
	}
	th, ok, err := r.findThread(ctx, ev, team)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	if !ok {
		return sdk.SkippedResult(ev.ID, "the conversation has no Slack thread")
	}
	ch, ts, err := r.post(ctx, th.Channel, "", th.TS, outboundPost(ev))
	if err != nil {
		return result(ev.ID, err)
	}
	ref := msgRef{Channel: ch, ThreadTS: th.TS, TS: ts}
	if ev.Message.ID != "" {
		r.remember(ctx, wamidKey(ev.Message.ID), ref)
	}
	r.remember(ctx, evtKey(ev.ID), ref)
	return sdk.DeliveredResult(ev.ID)
}

// status shows what WhatsApp reported about a message shown in Slack: a
// reaction on it, and for a failure a line in the thread saying why.
func (r *run) status(ctx context.Context, ev *sdk.Event) sdk.Result {
	if ev.Status == nil {
		return sdk.SkippedResult(ev.ID, string(ev.Type)+" without a status")
	}
	failed := ev.Type == sdk.TypeStatusFailed
	if !failed && r.s.statuses == "off" {
		return sdk.SkippedResult(ev.ID, "statuses: off")
	}
	if done, err := r.done(ctx, ev); err != nil || done {
		return doneResult(ev, err)
	}
	ref, found, err := r.msgOf(ctx, ev.Status.MessageID, wamidKey)
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	if !found && ev.Outbound != nil && ev.Outbound.Source == "connector:"+r.s.name {
		// The status came before message.sent.
		if ref, found, err = r.msgOf(ctx, ev.Outbound.ID, outKey); err != nil {
			return sdk.RetryResult(ev.ID, 0, err)
		}
	}
	if !found {
		if failed && r.s.alerts {
			return r.alert(ctx, ev, failedAlert(ev))
		}
		return sdk.SkippedResult(ev.ID, "the message is not shown in Slack")
	}

	if failed && ref.ThreadTS != "" {
		// The line is posted once even if the reaction below is retried.
		noteKey := evtKey(ev.ID) + ":note"
		if _, posted, err := r.kv.Get(ctx, noteKey); err != nil {
			return sdk.RetryResult(ev.ID, 0, err)
		} else if !posted {
			ch, ts, err := r.post(ctx, ref.Channel, "", ref.ThreadTS, failedPost(ev))
			if err != nil {
				return result(ev.ID, err)
			}
			r.remember(ctx, noteKey, msgRef{Channel: ch, ThreadTS: ref.ThreadTS, TS: ts})
		}
	}
	if r.s.statuses == "reactions" && ref.TS != "" {
		name := map[sdk.EventType]string{sdk.TypeStatusDelivered: reactionDelivered, sdk.TypeStatusRead: reactionRead, sdk.TypeStatusFailed: reactionFailed}[ev.Type]
		if err := r.react(ctx, ref, name); err != nil {
			if !errors.Is(err, errGone) {
				return result(ev.ID, err)
			}
			if !failed {
				return sdk.SkippedResult(ev.ID, "the Slack message was deleted")
			}
		}
	} else if !failed {
		return sdk.SkippedResult(ev.ID, "the Slack message of this reply is not known")
	}
	r.remember(ctx, evtKey(ev.ID), ref)
	return sdk.DeliveredResult(ev.ID)
}

// note posts opt-in changes and system messages in the conversation's
// thread, when it has one.
func (r *run) note(ctx context.Context, ev *sdk.Event) sdk.Result {
	p, ok := r.s.eventNote(ev)
	if !ok {
		return sdk.SkippedResult(ev.ID, "nothing to show")
	}
	if done, err := r.done(ctx, ev); err != nil || done {
		return doneResult(ev, err)
	}
	th, found, err := r.findThread(ctx, ev, routeTeam(ev))
	if err != nil {
		return sdk.RetryResult(ev.ID, 0, err)
	}
	if !found {
		return sdk.SkippedResult(ev.ID, "the conversation has no Slack thread")
	}
	ch, ts, err := r.post(ctx, th.Channel, "", th.TS, p)
	if err != nil {
		return result(ev.ID, err)
	}
	r.remember(ctx, evtKey(ev.ID), msgRef{Channel: ch, ThreadTS: th.TS, TS: ts})
	return sdk.DeliveredResult(ev.ID)
}

// post sends p to channel (in the thread threadTS when set) and returns
// the channel ID and ts Slack gave it.
func (r *run) post(ctx context.Context, channel, chKey, threadTS string, p post) (string, string, error) {
	opts := []slackapi.MsgOption{
		// The fallback text is mrkdwn too: escaped, so that a customer's
		// "<!channel>" pings nobody.
		slackapi.MsgOptionText(esc(p.text), false),
		slackapi.MsgOptionBlocks(p.blocks...),
		slackapi.MsgOptionDisableLinkUnfurl(),
		slackapi.MsgOptionDisableMediaUnfurl(),
	}
	if threadTS != "" {
		opts = append(opts, slackapi.MsgOptionTS(threadTS))
	}
	cctx, cancel := context.WithTimeout(ctx, r.s.timeout)
	defer cancel()
	ch, ts, err := r.s.api.PostMessageContext(cctx, channel, opts...)
	if err != nil {
		return "", "", r.fail(ctx, err, "chat.postMessage", channel, chKey)
	}
	if ch == "" {
		ch = channel
	}
	return ch, ts, nil
}

// errGone: the message to react to no longer exists.
var errGone = errors.New("the Slack message is gone")

// react adds a reaction; one already there is fine.
func (r *run) react(ctx context.Context, ref msgRef, name string) error {
	return r.setReaction(ctx, ref, name, true)
}

// setReaction adds (or removes) a reaction on a posted message. A reaction
// already in the wanted state is fine; errGone says the message no
// longer exists.
func (r *run) setReaction(ctx context.Context, ref msgRef, name string, add bool) error {
	cctx, cancel := context.WithTimeout(ctx, r.s.timeout)
	defer cancel()
	item := slackapi.ItemRef{Channel: ref.Channel, Timestamp: ref.TS}
	method, already := "reactions.add", "already_reacted"
	var err error
	if add {
		err = r.s.api.AddReactionContext(cctx, name, item)
	} else {
		method, already = "reactions.remove", "no_reaction"
		err = r.s.api.RemoveReactionContext(cctx, name, item)
	}
	switch slackCode(err) {
	case "":
	case already:
		return nil
	case "message_not_found":
		return errGone
	}
	if err != nil {
		return r.fail(ctx, err, method, ref.Channel, "")
	}
	return nil
}

// fail classifies a Slack error and, for a rate limit, pauses the batch.
func (r *run) fail(ctx context.Context, err error, method, channel, chKey string) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	ae := r.s.describe(err, method, channel, chKey)
	var rl *slackapi.RateLimitedError
	if errors.As(err, &rl) {
		r.b.rateLimited(ae.retryAfter)
	}
	return ae
}

// rememberWAMID maps a customer's message to its Slack post, so that a
// reaction to it lands on it.
func (r *run) rememberWAMID(ctx context.Context, ev *sdk.Event, ref msgRef) {
	if m := ev.Message; m != nil && m.ID != "" && m.Reaction == nil {
		r.remember(ctx, wamidKey(m.ID), ref)
		thread := ref.ThreadTS
		if thread == "" {
			thread = ref.TS // the root
		}
		r.remember(ctx, slackMsgKey(ref.Channel, ref.TS), customerMsg{WAMID: m.ID, ThreadTS: thread})
	}
}
