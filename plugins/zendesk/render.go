package zendesk

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
)

// subjectRunes is where a subject is cut: Zendesk's views show about that
// much.
const subjectRunes = 80

// renderMessage is the comment for a customer's message: its text, or a
// readable line for what is not text.
func renderMessage(ev *sdk.Event) string {
	m := ev.Message
	if m == nil {
		return "[" + string(ev.Type) + "]"
	}
	var b strings.Builder
	if q := m.Quoted; q != nil && m.Reaction == nil {
		b.WriteString("> " + quotedLine(q) + "\n")
	}
	if m.Context != nil && (m.Context.Forwarded || m.Context.FrequentlyForwarded) {
		b.WriteString("[Forwarded] ")
	}
	switch {
	case ev.Type == sdk.TypeButtonClicked || m.Button != nil:
		title := m.Text
		if m.Button != nil && m.Button.Title != "" {
			title = m.Button.Title
		}
		if title == "" && m.Button != nil {
			title = m.Button.ID
		}
		b.WriteString("[Button] " + title)
		if m.Button != nil && m.Button.Description != "" {
			b.WriteString(" — " + m.Button.Description)
		}
	case m.Media != nil:
		b.WriteString(renderMedia(m))
	case m.Location != nil:
		l := m.Location
		b.WriteString("[Location]")
		for _, s := range []string{l.Name, l.Address} {
			if s != "" {
				b.WriteString(" " + s)
			}
		}
		lat := strconv.FormatFloat(l.Latitude, 'f', -1, 64)
		lng := strconv.FormatFloat(l.Longitude, 'f', -1, 64)
		b.WriteString("\nhttps://www.google.com/maps/search/?api=1&query=" + lat + "," + lng)
	case len(m.Contacts) > 0:
		for i, c := range m.Contacts {
			if i > 0 {
				b.WriteString("\n")
			}
			b.WriteString("[Contact] " + c.Name)
			if c.Org != "" {
				b.WriteString(" (" + c.Org + ")")
			}
			for _, p := range c.Phones {
				b.WriteString(", " + p)
			}
			for _, e := range c.Emails {
				b.WriteString(", " + e)
			}
		}
	case m.Reaction != nil:
		if m.Reaction.Emoji == "" {
			b.WriteString("[Reaction removed]")
		} else {
			to := "an earlier message"
			if m.Quoted != nil {
				to = quotedLine(m.Quoted)
			}
			b.WriteString("[Reaction] " + m.Reaction.Emoji + " to " + to)
		}
	case m.Unsupported == "edit" || m.Type == "edit":
		b.WriteString("[Edited a message] WhatsApp does not pass the new text to businesses")
	case m.Unsupported == "revoke" || m.Unsupported == "delete" || m.Type == "revoke":
		b.WriteString("[Deleted a message]")
	case m.System != nil:
		b.WriteString("[WhatsApp] " + m.System.Body)
	case m.Unsupported != "":
		b.WriteString("[Unsupported WhatsApp message: " + m.Unsupported + "]")
	case m.Text != "":
		b.WriteString(m.Text)
	default:
		b.WriteString("[" + kindName(m.Type) + " message]")
	}
	if ref, ok := sdk.ParseReferral(m.Referral); ok {
		b.WriteString("\n[From " + ref.Summary() + "]")
	}
	return b.String()
}

// quotedLine names the message a reply quotes or a reaction is on:
// `you wrote: "Your order shipped"`.
func quotedLine(q *sdk.Quoted) string {
	who := "the customer wrote"
	if q.From == "business" {
		who = "you wrote"
	}
	text := q.Excerpt(200)
	if text == "" {
		text = "(" + kindName(q.Type) + " message)"
	}
	return who + ": “" + text + "”"
}

// renderMedia names a media message. The file itself is attached to the
// comment (mediaUpload); the line says what it is.
func renderMedia(m *sdk.Message) string {
	md := m.Media
	kind := kindName(m.Type)
	switch {
	case md.Voice:
		kind = "Voice message"
	case md.Animated:
		kind = "Animated sticker"
	}
	line := "[" + kind
	if md.Filename != "" {
		line += ": " + md.Filename
	}
	line += "]"
	caption := md.Caption
	if caption == "" {
		caption = m.Text
	}
	if caption != "" {
		line += " " + caption
	}
	var about []string
	if md.MimeType != "" {
		about = append(about, md.MimeType)
	}
	if md.Size > 0 {
		about = append(about, mediafile.Size(md.Size))
	}
	if len(about) > 0 {
		line += "\n(" + strings.Join(about, ", ") + ")"
	}
	return line
}

func kindName(t string) string {
	if t == "" {
		return "Message"
	}
	r, n := utf8.DecodeRuneInString(t)
	return string(unicode.ToUpper(r)) + t[n:]
}

// subject is the first line of the first message, cut at a word.
func subject(ev *sdk.Event, body string) string {
	line, _, _ := strings.Cut(body, "\n")
	line = strings.Join(strings.Fields(line), " ")
	if line == "" {
		return "WhatsApp conversation with " + customerName(ev.Contact)
	}
	if utf8.RuneCountInString(line) <= subjectRunes {
		return line
	}
	runes := []rune(line)[:subjectRunes-1]
	cut := string(runes)
	if i := strings.LastIndex(cut, " "); i > subjectRunes/2 {
		cut = cut[:i]
	}
	return strings.TrimRight(cut, " ,.;:") + "…"
}

func customerName(c *sdk.Contact) string {
	switch {
	case c == nil:
		return "a WhatsApp customer"
	case c.Name != "":
		return c.Name
	case c.WAID != "":
		return "+" + c.WAID
	case c.Username != "":
		return "@" + c.Username
	}
	return "a WhatsApp customer"
}

// tagName makes a Zendesk tag: lower case, letters, digits, "_" and "-";
// anything else (a space would split it in two) becomes "_".
func tagName(s string) string {
	s = strings.TrimSpace(strings.ToLower(s))
	var b strings.Builder
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	return b.String()
}

func (s *settings) ticketTags(ev *sdk.Event) []string {
	tags := []string{"whatsapp"}
	if ev.Route != nil && ev.Route.Team != "" {
		tags = append(tags, "team_"+tagName(ev.Route.Team))
	}
	if ev.Route != nil && ev.Route.Rule != "" {
		tags = append(tags, "rule_"+tagName(ev.Route.Rule))
	}
	return append(tags, s.tags...)
}

// sourceName says who asked the hub to send a message, for agents.
func sourceName(o *sdk.Outbound) string {
	kind, name, _ := strings.Cut(o.Source, ":")
	switch kind {
	case "connector":
		return "the " + name + " connector"
	case "trigger":
		return "the wahub trigger " + name
	case "api":
		return "the wahub admin API"
	case "":
		return "wahub"
	}
	return o.Source
}

// outboundNote is the internal note for a message another source sent.
func outboundNote(ev *sdk.Event) string {
	text := ""
	if ev.Message != nil {
		text = ev.Message.Text
		if text == "" {
			text = "[" + kindName(ev.Message.Type) + " message]"
		}
	}
	return fmt.Sprintf("Sent on WhatsApp by %s:\n\n%s", sourceName(ev.Outbound), text)
}

// whatsappErrorReengagement is WhatsApp's "more than 24 hours since the
// customer last replied" delivery error.
const whatsappErrorReengagement = 131047

// failedNote is the internal note for a reply WhatsApp did not deliver.
func failedNote(ev *sdk.Event) string {
	var b strings.Builder
	b.WriteString("WhatsApp did not deliver a reply to the customer")
	if ev.Outbound != nil && ev.Outbound.IdempotencyKey != "" {
		b.WriteString(" (comment " + ev.Outbound.IdempotencyKey + ")")
	}
	b.WriteString(".")
	window := false
	if ev.Status != nil {
		for _, e := range ev.Status.Errors {
			b.WriteString("\nError " + strconv.Itoa(e.Code))
			for _, s := range []string{e.Title, e.Message, e.Details} {
				if s != "" {
					b.WriteString(": " + s)
				}
			}
			window = window || e.Code == whatsappErrorReengagement
		}
	}
	if window {
		b.WriteString("\n\n" + windowAdvice)
	}
	return b.String()
}

const windowAdvice = "The customer last wrote more than 24 hours ago, so WhatsApp only accepts an approved template message now. " +
	"Send one (wahub send with a template, or POST /api/v1/messages with \"template\"); when the customer answers, reply on this ticket again."

// refusalNote is the internal note for a reply the hub refused to send.
func refusalNote(r *sdk.RefusedError) string {
	msg := "wahub did not send this reply on WhatsApp: " + r.Message + " (" + r.Code + ")."
	switch r.Code {
	case "outside_window":
		return msg + "\n\n" + windowAdvice
	case "opted_out":
		return msg + "\n\nThe customer opted out of WhatsApp messages. Reach them another way; if they write again on WhatsApp, you can reply here."
	case "blocked_country":
		return msg + "\n\nwahub is configured not to send to this country (whatsapp.blocked_country_codes). Reach the customer another way."
	case "media_too_large", "media_type":
		return msg + "\n\n" + mediaAdvice
	}
	return msg + "\n\nAsk the wahub administrator about the rule " + r.Code + "; the reply can be sent again by adding it as a new public comment."
}
