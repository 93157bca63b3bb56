package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/sdk"
)

// decide routes one event as it is dispatched. The decision and its
// effects (consent, attributes set by triggers, the conversation's team,
// trigger replies) are stored with the event in one commit, so replays
// and explanations agree with what happened and a trigger fires once.
//
// Schedules are evaluated at the event's own time, not the dispatch time:
// a message written at 17:59 is within office hours even if the hub
// routes it a minute later, after a restart.
func (h *Hub) decide(ev *sdk.Event, st store.RouteState) store.Decision {
	d := h.router.Route(ev, timeZero, route.State{Consent: st.Consent, Team: st.Team, LastActive: st.LastActive})
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("routed", "component", "route", "event", ev.ID, "type", ev.Type, "conversation", ev.ConversationID,
			"rule", d.Rule, "team", d.Team, "connectors", d.Connectors, "triggers", d.Triggers)
	}
	out := store.Decision{Connectors: d.Connectors, Team: d.Team}
	if h.decisions != nil {
		h.decisions.WithLabelValues(d.Team, d.Rule).Inc()
	}
	if d.Rule != "" || d.Team != "" || len(d.Connectors) > 0 || len(d.Triggers) > 0 {
		out.Route = &sdk.Route{Rule: d.Rule, Team: d.Team, Connectors: d.Connectors, Triggers: d.Triggers}
	}
	if state, source := h.router.ConsentChange(ev); state != "" {
		out.Consent, out.ConsentSource = state, source
		if ev.Type != sdk.TypeOptinGranted && ev.Type != sdk.TypeOptinRevoked {
			out.ConsentEvent = consentEvent(ev, state, source)
		}
	}
	for _, a := range d.Actions {
		switch a.Kind {
		case route.ActionSet:
			if out.Attributes == nil {
				out.Attributes = map[string]string{}
			}
			for k, v := range a.Set {
				out.Attributes[k] = v
			}
		case route.ActionReply:
			if msg, ok := triggerReply(ev, a.Reply); ok {
				out.Messages = append(out.Messages, store.QueuedMessage{Source: "trigger:" + a.Trigger, Msg: msg})
			}
		}
	}
	return out
}

// timeZero asks the router for the event's own time.
var timeZero time.Time

// consentEvent announces a consent change a message stated. Its id derives
// from the message's, so that it is appended once however often the
// message is seen.
func consentEvent(cause *sdk.Event, state sdk.Consent, source string) *sdk.Event {
	typ, value := sdk.TypeOptinGranted, "resume"
	if state == sdk.ConsentRevoked {
		typ, value = sdk.TypeOptinRevoked, "stop"
	}
	ev := &sdk.Event{
		ID:         ingest.EventID("consent:" + cause.ID),
		Type:       typ,
		OccurredAt: cause.OccurredAt,
		ReceivedAt: cause.ReceivedAt,
		Business:   cause.Business,
		Preference: &sdk.Preference{Category: "marketing_messages", Value: value, Source: source},
	}
	if cause.Contact != nil {
		c := *cause.Contact
		c.Attributes = nil
		ev.Contact = &c
	}
	return ev
}

// triggerReply is the message a reply action sends to the event's
// customer, from the business number the event came to. The event id is
// the idempotency key: the trigger can never send twice for one event.
func triggerReply(ev *sdk.Event, r *config.Reply) (sdk.OutboundMessage, bool) {
	if r == nil || ev.Contact == nil || ev.Contact.Key() == "" {
		return sdk.OutboundMessage{}, false
	}
	msg := sdk.OutboundMessage{To: ev.Contact.Key(), Text: r.Text, IdempotencyKey: ev.ID}
	if ev.Business != nil {
		msg.PhoneNumberID = ev.Business.PhoneNumberID
	}
	if t := r.Template; t != nil {
		msg.Text = ""
		msg.Template = &sdk.Template{Name: t.Name, Language: t.Language}
		for _, c := range t.Components {
			b, err := json.Marshal(c)
			if err != nil {
				continue // config.Load decoded it from YAML: it marshals
			}
			msg.Template.Components = append(msg.Template.Components, b)
		}
	}
	if len(r.Interactive) > 0 {
		b, err := json.Marshal(r.Interactive)
		if err == nil {
			msg.Text, msg.Interactive = "", b
		}
	}
	if m := r.Media; m != nil {
		msg.Text = ""
		msg.Media = &sdk.OutboundMedia{Type: m.Type, ID: m.ID, URL: m.URL, Caption: m.Caption, Filename: m.Filename}
	}
	return msg, true
}
