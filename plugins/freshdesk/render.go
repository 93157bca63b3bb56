package freshdesk

import (
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
)

// maxSubject is how much of the first message makes the subject.
const maxSubject = 100

// rendered is a WhatsApp message as a ticket shows it: HTML for the
// description or note, and plain text for the subject.
type rendered struct {
	html string
	text string
}

// renderMessage describes the event's message. Everything from the
// customer is escaped: it is shown to agents as HTML.
func renderMessage(ev *sdk.Event) rendered {
	m := ev.Message
	if m == nil {
		return rendered{html: para(em("(no message)"))}
	}
	var blocks, plain []string
	add := func(h, t string) {
		blocks = append(blocks, h)
		if t != "" {
			plain = append(plain, t)
		}
	}
	if q := m.Quoted; q != nil && m.Reaction == nil {
		add("<blockquote>"+esc(quotedLine(q))+"</blockquote>", "> "+quotedLine(q))
	}
	if m.Context != nil && (m.Context.Forwarded || m.Context.FrequentlyForwarded) {
		add(para(em("Forwarded")), "")
	}
	start := len(blocks)
	text := m.Text
	switch {
	case m.Button != nil:
		title := m.Button.Title
		if title == "" {
			title = m.Button.ID
		}
		add(para(em("Chose:")+" "+esc(title)), title)
		if text == title {
			text = ""
		}
	case m.Media != nil:
		label := mediaLabel(m.Type, m.Media)
		// The file itself is attached (inboundMedia); the line says what
		// it is.
		line := em(esc(label))
		var about []string
		if m.Media.MimeType != "" {
			about = append(about, m.Media.MimeType)
		}
		if m.Media.Size > 0 {
			about = append(about, mediafile.Size(m.Media.Size))
		}
		if len(about) > 0 {
			line += " (" + esc(strings.Join(about, ", ")) + ")"
		}
		add(para(line), "")
		if text == "" && m.Media.Caption != "" {
			text = m.Media.Caption
		}
		if text == "" {
			plain = append(plain, label)
		}
	case m.Location != nil:
		l := m.Location
		where := strings.TrimSpace(strings.Join(nonEmpty(l.Name, l.Address), ", "))
		if where == "" {
			where = fmt.Sprintf("%.6f, %.6f", l.Latitude, l.Longitude)
		}
		maps := "https://www.google.com/maps/search/?api=1&query=" + url.QueryEscape(fmt.Sprintf("%.6f,%.6f", l.Latitude, l.Longitude))
		add(para(em("Location:")+" "+anchor(maps, where)), "Location: "+where)
	case len(m.Contacts) > 0:
		var items []string
		for _, sc := range m.Contacts {
			items = append(items, "<li>"+esc(strings.Join(nonEmpty(append(append([]string{sc.Name, sc.Org}, sc.Phones...), sc.Emails...)...), ", "))+"</li>")
		}
		add(para(em("Shared contacts:"))+"<ul>"+strings.Join(items, "")+"</ul>", "Shared contacts")
	case m.Reaction != nil:
		if m.Reaction.Emoji == "" {
			add(para(em("Removed a reaction")), "Removed a reaction")
		} else {
			to, plainTo := "an earlier message", ""
			if m.Quoted != nil {
				to = quotedLine(m.Quoted)
				plainTo = " to " + to
			}
			add(para(em("Reacted")+" "+esc(m.Reaction.Emoji)+" "+em("to")+" "+esc(to)), "Reacted "+m.Reaction.Emoji+plainTo)
		}
	case m.Unsupported == "edit" || m.Type == "edit":
		add(para(em("Edited a message (WhatsApp does not pass the new text to businesses)")), "Edited a message")
	case m.Unsupported == "revoke" || m.Unsupported == "delete" || m.Type == "revoke":
		add(para(em("Deleted a message")), "Deleted a message")
	case m.Unsupported != "" || m.Type == "unsupported":
		kind := m.Unsupported
		if kind == "" {
			kind = "unknown"
		}
		add(para(em("A message WhatsApp does not pass on ("+esc(kind)+"): ask the customer to send it another way")), "Unsupported message")
	case m.System != nil:
		add(para(em("WhatsApp: "+esc(strings.Join(nonEmpty(m.System.Body, m.System.Type), " ")))), "")
	}
	if text != "" {
		add("<div>"+strings.ReplaceAll(esc(text), "\n", "<br>")+"</div>", text)
	}
	if ref, ok := sdk.ParseReferral(m.Referral); ok {
		add(para(em("From "+esc(ref.Summary()))), "From "+ref.Summary())
	}
	if len(blocks) == start {
		kind := m.Type
		if kind == "" {
			kind = "empty"
		}
		add(para(em("("+esc(kind)+" message)")), "")
	}
	return rendered{html: strings.Join(blocks, ""), text: strings.Join(plain, "\n")}
}

func mediaLabel(typ string, md *sdk.Media) string {
	switch {
	case typ == "audio" && md.Voice:
		return "Voice message"
	case typ == "sticker":
		return "Sticker"
	case typ == "document" && md.Filename != "":
		return "Document " + md.Filename
	case typ == "":
		return "Media"
	}
	return strings.ToUpper(typ[:1]) + typ[1:]
}

// subject is the ticket's subject: the first line of the first message.
func subject(ev *sdk.Event, msg rendered) string {
	for _, line := range strings.Split(msg.text, "\n") {
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			if utf8.RuneCountInString(line) > maxSubject {
				cut := string([]rune(line)[:maxSubject-1])
				// At a word's end, when one is near.
				if i := strings.LastIndexByte(cut, ' '); i > len(cut)*2/3 {
					cut = cut[:i]
				}
				line = strings.TrimSpace(cut) + "…"
			}
			return line
		}
	}
	who := ""
	if ev.Contact != nil {
		who = ev.Contact.Name
		if who == "" && ev.Contact.WAID != "" {
			who = "+" + ev.Contact.WAID
		}
	}
	if who == "" {
		return "WhatsApp message"
	}
	return "WhatsApp message from " + who
}

func esc(s string) string  { return html.EscapeString(s) }
func em(h string) string   { return "<em>" + h + "</em>" }
func para(h string) string { return "<p>" + h + "</p>" }

func anchor(href, text string) string {
	return `<a href="` + esc(href) + `" target="_blank" rel="noopener noreferrer">` + esc(text) + "</a>"
}

func nonEmpty(parts ...string) []string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

var (
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	breakRE = regexp.MustCompile(`(?i)<br\s*/?>|</(p|div|li|h[1-6]|tr|blockquote)>`)
	blankRE = regexp.MustCompile(`\n[ \t]*\n(\s*\n)+`)
)

// htmlText turns a Freshdesk HTML body into text for WhatsApp: line
// breaks kept, tags dropped, entities decoded.
func htmlText(h string) string {
	t := breakRE.ReplaceAllString(h, "\n")
	t = tagRE.ReplaceAllString(t, "")
	t = html.UnescapeString(t)
	t = strings.ReplaceAll(t, "\u00a0", " ")
	lines := strings.Split(t, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	t = blankRE.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimSpace(t)
}

// normalize reduces text to compare a webhook's rendering of a reply with
// the API's.
func normalize(s string) string { return strings.Join(strings.Fields(htmlText(s)), " ") }

func replyIDFromKey(key string) (int64, bool) {
	v, ok := strings.CutPrefix(key, "conversation:")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(v, 10, 64)
	return id, err == nil
}

// quotedLine names the message a reply quotes or a reaction is on.
func quotedLine(q *sdk.Quoted) string {
	who := "The customer wrote"
	if q.From == "business" {
		who = "You wrote"
	}
	text := q.Excerpt(200)
	if text == "" {
		text = "(" + q.Type + " message)"
	}
	return who + ": “" + text + "”"
}
