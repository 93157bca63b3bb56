package slack

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/sdk"
)

// Slack refuses a section whose text exceeds 3000 characters; a WhatsApp
// text (up to 4096) is split over several sections instead of cut.
const sectionMax = 3000

// fallbackMax bounds the plain text of a post: it is what notifications
// and screen readers show, not where the message is read.
const fallbackMax = 400

// post is a Slack message ready to send: blocks, and the plain text Slack
// shows where blocks cannot be (notifications).
type post struct {
	text   string
	blocks []slackapi.Block
}

// esc makes s safe in mrkdwn: Slack reads <…> as links and mentions
// (<!channel> would ping everyone) and & as an entity. WhatsApp's *bold*,
// _italic_ and ~strike~ are Slack's too, so they are kept.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func mrkdwn(s string) *slackapi.TextBlockObject {
	return slackapi.NewTextBlockObject(slackapi.MarkdownType, s, false, false)
}

// sections renders mrkdwn text as one or more section blocks.
func sections(text string) []slackapi.Block {
	var out []slackapi.Block
	for _, part := range split(text, sectionMax) {
		out = append(out, slackapi.NewSectionBlock(mrkdwn(part), nil, nil))
	}
	return out
}

// contextLine renders small grey text; empty parts are dropped.
func contextLine(parts ...string) []slackapi.Block {
	var elems []slackapi.MixedElement
	for _, p := range parts {
		if p != "" && len(elems) < 10 {
			elems = append(elems, mrkdwn(truncate(p, sectionMax)))
		}
	}
	if len(elems) == 0 {
		return nil
	}
	return []slackapi.Block{slackapi.NewContextBlock("", elems...)}
}

// split cuts s into pieces of at most n runes, at a line break or space
// when there is one in the second half of a piece, never inside an
// escape such as &amp;.
func split(s string, n int) []string {
	var out []string
	for utf8.RuneCountInString(s) > n {
		cut := byteIndexOfRune(s, n)
		if i := strings.LastIndexAny(s[:cut], "\n "); i > cut/2 {
			cut = i + 1
		} else if i := strings.LastIndexByte(s[:cut], '&'); i >= 0 && i > cut-6 && !strings.Contains(s[i:cut], ";") {
			cut = i
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

func byteIndexOfRune(s string, n int) int {
	i := 0
	for k := range s {
		if i == n {
			return k
		}
		i++
	}
	return len(s)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// oneLine flattens s for a plain-text fallback.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// customer says who the customer is, as configured: the name, the number
// and how to label them together.
func (s *settings) customer(c *sdk.Contact) (name, number string) {
	if c == nil {
		return "", ""
	}
	if s.showName {
		name = c.Name
	}
	switch {
	case c.WAID != "" && s.showNumber == "full":
		number = "+" + c.WAID
	case c.WAID != "" && s.showNumber == "last4":
		number = "•••" + c.WAID[max(0, len(c.WAID)-4):]
	case c.WAID == "" && c.UserID != "" && s.showNumber == "full":
		// WhatsApp hides the number of users with a username; their
		// business-scoped id is what there is.
		number = "WhatsApp user " + c.UserID
	}
	return name, number
}

func (s *settings) customerLabel(c *sdk.Contact) string {
	name, number := s.customer(c)
	switch {
	case name != "" && number != "":
		return name + " (" + number + ")"
	case name != "":
		return name
	case number != "":
		return number
	}
	return "The customer"
}

// rootPost is the first message of a conversation in a channel: who, which
// team and rule, the message itself, and how to answer.
func (s *settings) rootPost(ev *sdk.Event) post {
	name, number := s.customer(ev.Contact)
	head := ":speech_balloon: *New WhatsApp conversation*"
	switch {
	case name != "" && number != "":
		head += " with *" + esc(name) + "* · " + esc(number)
	case name != "" || number != "":
		head += " with *" + esc(name+number) + "*"
	}
	var facts []string
	if ev.Route != nil && ev.Route.Team != "" {
		facts = append(facts, "Team *"+esc(ev.Route.Team)+"*")
	}
	if ev.Route != nil && ev.Route.Rule != "" {
		facts = append(facts, "Rule *"+esc(ev.Route.Rule)+"*")
	}
	if ev.Business != nil && ev.Business.DisplayPhoneNumber != "" {
		facts = append(facts, "To +"+esc(strings.TrimPrefix(ev.Business.DisplayPhoneNumber, "+")))
	}
	// The root stays link-free: a link there would unfurl in the channel
	// for every conversation.
	body := renderMessage(ev, false)
	blocks := sections(head)
	blocks = append(blocks, contextLine(strings.Join(facts, " · "))...)
	blocks = append(blocks, body.blocks...)
	blocks = append(blocks, contextLine(":thread: Reply in this thread to answer on WhatsApp. Start with `note:` to keep a reply internal.")...)
	text := "New WhatsApp conversation with " + s.customerLabel(ev.Contact)
	if ev.Route != nil && ev.Route.Team != "" {
		text += ", team " + ev.Route.Team
	}
	return post{text: truncate(text+": "+body.text, fallbackMax), blocks: blocks}
}

// replyPost is a later customer message, posted in the thread.
func (s *settings) replyPost(ev *sdk.Event) post {
	body := renderMessage(ev, true)
	name, _ := s.customer(ev.Contact)
	if name == "" {
		name = "Customer"
	}
	return post{text: truncate(name+": "+body.text, fallbackMax), blocks: body.blocks}
}

// renderMessage renders an inbound message (message.received or
// button.clicked): the blocks, and a one-line plain text.
func renderMessage(ev *sdk.Event, links bool) post {
	m := ev.Message
	if m == nil {
		return post{text: "(empty message)", blocks: sections("_(empty message)_")}
	}
	var (
		body  string   // mrkdwn
		plain string   // fallback
		notes []string // context line
	)
	caption := func() {
		if m.Text != "" {
			body += "\n" + esc(m.Text)
			plain += " " + m.Text
		}
	}
	switch {
	case ev.Type == sdk.TypeButtonClicked && m.Button != nil:
		title := m.Button.Title
		if title == "" {
			title = m.Button.ID
		}
		body = ":point_right: Tapped *" + esc(title) + "*"
		plain = "[Tapped] " + title
		if m.Button.Description != "" {
			body += " — " + esc(m.Button.Description)
		}
		if m.Button.ID != "" && m.Button.ID != title {
			notes = append(notes, "button id `"+esc(m.Button.ID)+"`")
		}
	case m.Media != nil:
		icon, label := mediaLabel(m)
		body = icon + " *" + label + "*"
		plain = "[" + label + "]"
		var details []string
		if m.Media.Filename != "" {
			details = append(details, "`"+esc(m.Media.Filename)+"`")
			plain += " " + m.Media.Filename
		}
		if m.Media.MimeType != "" {
			details = append(details, esc(m.Media.MimeType))
		}
		if len(details) > 0 {
			body += " (" + strings.Join(details, ", ") + ")"
		}
		caption()
		switch {
		case m.Media.State == sdk.MediaUnavailable || m.Media.ID == "":
			why := m.Media.Reason
			if why == "" {
				why = "WhatsApp did not give the file"
			}
			body += "\n:warning: _The " + kindOf(m) + " could not be retrieved: " + esc(why) + "_"
			plain += " (the " + kindOf(m) + " could not be retrieved)"
		case !links:
			// The root: the file itself follows in the thread.
			notes = append(notes, ":thread: the "+kindOf(m)+" is in the thread")
		}
	case m.Location != nil:
		l := m.Location
		coords := strconv.FormatFloat(l.Latitude, 'f', -1, 64) + ", " + strconv.FormatFloat(l.Longitude, 'f', -1, 64)
		body = ":round_pushpin: *Location*"
		plain = "[Location]"
		if l.Name != "" {
			body += " " + esc(l.Name)
			plain += " " + l.Name
		}
		if l.Address != "" {
			body += "\n" + esc(l.Address)
			plain += ", " + l.Address
		}
		if links {
			// No & in the URL: inside <…> it would need escaping as well.
			body += "\n<https://www.google.com/maps?q=" + strconv.FormatFloat(l.Latitude, 'f', -1, 64) + "," + strconv.FormatFloat(l.Longitude, 'f', -1, 64) + "|" + coords + ">"
		} else {
			body += "\n" + coords
		}
		plain += " (" + coords + ")"
	case len(m.Contacts) > 0:
		body = ":bust_in_silhouette: *Contact card*"
		plain = "[Contact card]"
		for _, c := range m.Contacts {
			line := "*" + esc(c.Name) + "*"
			if c.Org != "" {
				line += " (" + esc(c.Org) + ")"
			}
			var ways []string
			for _, p := range c.Phones {
				ways = append(ways, esc(p))
			}
			for _, e := range c.Emails {
				ways = append(ways, esc(e))
			}
			if len(ways) > 0 {
				line += ": " + strings.Join(ways, " · ")
			}
			body += "\n" + line
			plain += " " + c.Name
			if len(c.Phones) > 0 {
				plain += " " + c.Phones[0]
			}
		}
	case m.Reaction != nil:
		to := "a message"
		if q := m.Quoted; q != nil && q.Text != "" {
			to = "“" + truncate(oneLine(q.Text), 80) + "”"
		}
		if m.Reaction.Emoji == "" {
			body = ":leftwards_arrow_with_hook: Removed a reaction from " + esc(to)
			plain = "[Removed a reaction]"
		} else {
			body = "Reacted " + esc(m.Reaction.Emoji) + " to " + esc(to)
			plain = "[Reacted " + m.Reaction.Emoji + "]"
		}
	case m.Type == "unsupported" && m.Unsupported == "edit", m.Type == "edit":
		body = ":pencil2: _Edited a message_ (WhatsApp does not send the new text to businesses)"
		plain = "[Edited a message]"
		caption()
	case m.Type == "unsupported" && (m.Unsupported == "revoke" || m.Unsupported == "delete"), m.Type == "revoke":
		body = ":wastebasket: _Deleted a message_"
		plain = "[Deleted a message]"
	case m.Type == "order":
		body = ":shopping_trolley: *Order*"
		plain = "[Order]"
		caption()
		notes = append(notes, "the items are in the event's raw WhatsApp message")
	case m.Type == "unsupported":
		body = ":grey_question: WhatsApp could not show this message"
		plain = "[Unsupported message]"
		if m.Unsupported != "" {
			body += " (" + esc(m.Unsupported) + ")"
		}
		caption()
	case m.Type == "interactive":
		body = ":memo: *Form reply*"
		plain = "[Form reply]"
		caption()
	case m.Type == "text" || m.Text != "":
		body = esc(m.Text)
		plain = m.Text
	default:
		body = ":grey_question: A *" + esc(m.Type) + "* message"
		plain = "[" + m.Type + " message]"
	}
	if c := m.Context; c != nil {
		switch {
		case c.FrequentlyForwarded:
			notes = append(notes, ":fast_forward: forwarded many times")
		case c.Forwarded:
			notes = append(notes, ":arrow_right: forwarded")
		}
		if c.ID != "" && m.Reaction == nil && m.Quoted == nil {
			notes = append(notes, ":leftwards_arrow_with_hook: in reply to an earlier message")
		}
	}
	if ad := adOf(m.Referral); ad != "" {
		notes = append(notes, ":mega: came from a Click-to-WhatsApp ad: "+esc(ad))
	} else if len(m.Referral) > 0 {
		notes = append(notes, ":mega: came from a Click-to-WhatsApp ad")
	}
	for _, e := range m.Errors {
		notes = append(notes, ":warning: WhatsApp: "+esc(errorText(e)))
	}
	if strings.TrimSpace(body) == "" {
		body, plain = "_(empty message)_", "(empty message)"
	}
	body = quoteBlock(m) + body
	blocks := sections(body)
	blocks = append(blocks, contextLine(notes...)...)
	return post{text: oneLine(plain), blocks: blocks}
}

func mediaLabel(m *sdk.Message) (icon, label string) {
	switch m.Type {
	case "image":
		return ":frame_with_picture:", "Image"
	case "video":
		return ":movie_camera:", "Video"
	case "audio":
		if m.Media.Voice {
			return ":microphone:", "Voice message"
		}
		return ":musical_note:", "Audio"
	case "document":
		return ":page_facing_up:", "Document"
	case "sticker":
		if m.Media.Animated {
			return ":sparkles:", "Animated sticker"
		}
		return ":sparkles:", "Sticker"
	}
	return ":paperclip:", "Attachment"
}

func errorText(e sdk.Error) string {
	t := e.Title
	if t == "" {
		t = e.Message
	}
	if t == "" {
		t = "error"
	}
	if e.Code != 0 {
		t += fmt.Sprintf(" (code %d)", e.Code)
	}
	if e.Details != "" && e.Details != e.Title {
		t += ": " + e.Details
	}
	return t
}

// outboundPost shows in the thread a message the hub sent on someone
// else's behalf (a trigger's auto-reply, the admin API), so that agents
// see the whole conversation.
func outboundPost(ev *sdk.Event) post {
	who := "the hub"
	if ev.Outbound != nil && ev.Outbound.Source != "" {
		who = ev.Outbound.Source
	}
	text := ev.Message.Text
	body := esc(text)
	if text == "" {
		kind := ev.Message.Type
		if kind == "" {
			kind = "message"
		}
		body = "_(a " + esc(kind) + " without text)_"
		text = "(" + kind + ")"
	}
	blocks := contextLine(":outbox_tray: Sent to the customer by " + esc(who) + ", not from this thread")
	blocks = append(blocks, sections(body)...)
	return post{text: truncate("Sent to the customer by "+who+": "+oneLine(text), fallbackMax), blocks: blocks}
}

// notePost is a one-line notice in a thread.
func notePost(mrk, plain string) post {
	return post{text: plain, blocks: contextLine(mrk)}
}

// eventNote renders the events that are noted in a conversation's thread
// rather than posted as messages: opt-in changes and system messages.
func (s *settings) eventNote(ev *sdk.Event) (post, bool) {
	who := s.customerLabel(ev.Contact)
	switch ev.Type {
	case sdk.TypeOptinRevoked:
		what := "marketing messages"
		if ev.Preference != nil && ev.Preference.Category != "" && ev.Preference.Category != "marketing_messages" {
			what = strings.ReplaceAll(ev.Preference.Category, "_", " ")
		}
		return notePost(":no_bell: "+esc(who)+" opted out of "+esc(what)+".", who+" opted out of "+what+"."), true
	case sdk.TypeOptinGranted:
		return notePost(":bell: "+esc(who)+" opted in to marketing messages again.", who+" opted in to marketing messages again."), true
	case sdk.TypeContactChanged:
		text := "The customer's WhatsApp account changed."
		if m := ev.Message; m != nil && m.System != nil {
			switch {
			case m.System.Body != "":
				text = m.System.Body
			case m.System.NewWAID != "":
				text = "The customer changed their number to +" + m.System.NewWAID + "."
			}
		}
		return notePost(":information_source: "+esc(text), text), true
	}
	return post{}, false
}

// failedPost explains in the thread why WhatsApp did not deliver a reply.
func failedPost(ev *sdk.Event) post {
	why := "WhatsApp reported the message as failed"
	if len(ev.Status.Errors) > 0 {
		why = errorText(ev.Status.Errors[0])
	}
	return post{
		text:   "Not delivered to the customer: " + why,
		blocks: sections(":x: *Not delivered to the customer:* " + esc(why)),
	}
}
