package bitrix24

import (
	"fmt"
	"strings"

	"github.com/wahub/wahub/sdk"
)

// commentText is what a message looks like on the timeline: who, when
// (the timeline shows when the comment was added, which after a retry is
// later than the message), and the message. Never empty: Bitrix24 refuses
// an empty comment.
func commentText(ev *sdk.Event) string {
	who := "+" + digits(ev.Contact.WAID)
	if name := strings.TrimSpace(ev.Contact.Name); name != "" {
		who = name + " (" + who + ")"
	}
	when := ev.OccurredAt.UTC().Format("2006-01-02 15:04:05 UTC")
	var head string
	switch ev.Type {
	case sdk.TypeMessageSent:
		head = "WhatsApp message to " + who
		if ev.Outbound != nil && ev.Outbound.Source != "" {
			head += ", sent by " + ev.Outbound.Source
		}
	case sdk.TypeButtonClicked:
		head = "WhatsApp reply from " + who
	default:
		head = "WhatsApp message from " + who
	}
	return head + ", " + when + ":\n" + messageBody(ev.Message)
}

// messageBody renders a message as text; what is not text is described
// in brackets (a media file is attached to the comment besides, see
// media.go).
func messageBody(m *sdk.Message) string {
	if m == nil {
		return "[no content]"
	}
	withText := func(label string) string {
		text := strings.TrimSpace(m.Text)
		if m.Media != nil && text == "" {
			text = strings.TrimSpace(m.Media.Caption)
		}
		if m.Media != nil && m.Media.Filename != "" {
			label += ": " + m.Media.Filename
		}
		if text == "" {
			return "[" + label + "]"
		}
		return "[" + label + "] " + text
	}
	switch {
	case m.Button != nil:
		title := m.Button.Title
		if title == "" {
			title = m.Text
		}
		s := "[button] " + title
		if m.Button.ID != "" && m.Button.ID != title {
			s += " (" + m.Button.ID + ")"
		}
		return s
	case m.Location != nil:
		l := m.Location
		var parts []string
		for _, p := range []string{l.Name, l.Address} {
			if p != "" {
				parts = append(parts, p)
			}
		}
		parts = append(parts, fmt.Sprintf("%.6f, %.6f", l.Latitude, l.Longitude))
		return "[location] " + strings.Join(parts, ", ")
	case m.Reaction != nil:
		if m.Reaction.Emoji == "" {
			return "[removed a reaction]"
		}
		return "[reacted " + m.Reaction.Emoji + " to an earlier message]"
	case len(m.Contacts) > 0:
		var cards []string
		for _, c := range m.Contacts {
			card := c.Name
			if len(c.Phones) > 0 {
				card += " " + strings.Join(c.Phones, ", ")
			}
			cards = append(cards, strings.TrimSpace(card))
		}
		return "[contact card] " + strings.Join(cards, "; ")
	case m.System != nil:
		body := strings.TrimSpace(m.System.Body)
		if body == "" {
			body = m.System.Type
		}
		return "[system] " + body
	case m.Unsupported != "":
		return "[unsupported message: " + m.Unsupported + "]"
	case m.Media != nil:
		t := m.Type
		if t == "" {
			t = "media"
		}
		return withText(t)
	case strings.TrimSpace(m.Text) != "":
		return m.Text
	case m.Type != "" && m.Type != "text":
		return "[" + m.Type + " message]"
	}
	return "[empty message]"
}
