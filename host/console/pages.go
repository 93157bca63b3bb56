package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// pageData is what every page template gets.
type pageData struct {
	Session *session
	Title   string
	// Nav is the section highlighted in the navigation.
	Nav string
	// Error and Notice are shown above the page's content.
	Error, Notice string
	// Live pages refresh their data-live regions when the hub changes.
	Live    bool
	Sandbox bool
	Data    any
}

type pages struct{ t map[string]*template.Template }

var pageNames = []string{"login", "error", "overview", "conversations", "conversation", "event",
	"connectors", "deadletters", "outbox", "message", "cluster", "sandbox"}

func parsePages() (*pages, error) {
	p := &pages{t: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		p.t[name] = t
	}
	return p, nil
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	d.Sandbox = c.opt.Sandbox != nil
	var buf bytes.Buffer
	if err := c.pages.t[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		c.opt.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "the console could not render this page; see the hub's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
	"clock": func(t time.Time) string { return t.Local().Format("15:04") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return humanDuration(time.Since(t)) + " ago"
	},
	"since": humanDuration,
	"pretty": func(v any) string {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err.Error()
		}
		return string(b)
	},
	"join":    strings.Join,
	"outFile": outboundFile,
	"pct":     func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
	"summary": messageSummary,
	"ticks":   ticks,
	"short": func(s string, n int) string {
		if len([]rune(s)) <= n {
			return s
		}
		return string([]rune(s)[:n-1]) + "…"
	},
}

// humanDuration is "3s", "4m", "2h 5m", "3d 4h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}

// messageSummary is how a message reads in a bubble: its text, or what it
// is when it has none.
func messageSummary(m *sdk.Message) string {
	if m == nil {
		return ""
	}
	switch {
	case m.Button != nil:
		if m.Button.Title != "" {
			return m.Button.Title
		}
		return m.Button.ID
	case m.Text != "" && m.Media == nil:
		return m.Text
	case m.Media != nil:
		s := "[" + m.Type
		if m.Media.Filename != "" {
			s += ": " + m.Media.Filename
		} else if m.Media.MimeType != "" {
			s += ", " + m.Media.MimeType
		}
		s += "]"
		if m.Media.Caption != "" {
			s += " " + m.Media.Caption
		} else if m.Text != "" {
			s += " " + m.Text
		}
		return s
	case m.Location != nil:
		s := fmt.Sprintf("[location %.5f, %.5f]", m.Location.Latitude, m.Location.Longitude)
		if m.Location.Name != "" {
			s += " " + m.Location.Name
		}
		return s
	case m.Reaction != nil:
		if m.Reaction.Emoji == "" {
			return "[removed a reaction]"
		}
		return "[reacted " + m.Reaction.Emoji + "]"
	case len(m.Contacts) > 0:
		var names []string
		for _, c := range m.Contacts {
			names = append(names, c.Name)
		}
		return "[contact card: " + strings.Join(names, ", ") + "]"
	case m.System != nil:
		return "[" + m.System.Body + "]"
	case m.Unsupported != "":
		return "[unsupported: " + m.Unsupported + "]"
	}
	return "[" + m.Type + "]"
}

// ticks renders an outbound message's state the way WhatsApp shows it.
func ticks(state string) string {
	switch state {
	case "queued", "sending":
		return "🕓"
	case "accepted":
		return "✓"
	case "sent":
		return "✓"
	case "delivered", "read":
		return "✓✓"
	case "failed":
		return "✕"
	case "unknown":
		return "?"
	}
	return ""
}
