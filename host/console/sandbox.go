package console

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Sandbox is the sandbox's fakes as the console shows and plays them.
type Sandbox interface {
	// View is what each fake received, shaped for reading.
	View() SandboxView
	// SlackReply posts an agent's reply in a Slack thread (the newest
	// conversation thread when threadTS is empty), signed as Slack would.
	SlackReply(ctx context.Context, threadTS, text string) error
	// ZendeskComment adds an agent's public comment to a ticket, which
	// the fake announces to the hub by its signed webhook.
	ZendeskComment(ctx context.Context, ticketID int64, text string) error
	// CustomerMessage posts a signed WhatsApp webhook with a customer
	// message from the sample, its text replaced when text is not empty.
	CustomerMessage(ctx context.Context, sample, text string) error
	// Samples are the customer messages CustomerMessage knows.
	Samples() []string
}

// SandboxView is the fakes' content.
type SandboxView struct {
	// WhatsApp is what the hub sent to customers, per customer.
	WhatsApp []SandboxChat
	Slack    []SandboxChannel
	Tickets  []SandboxTicket
	Records  []SandboxRecord
	Webhooks []SandboxDelivery
}

// SandboxChat is the messages the fake Graph API accepted for one customer.
type SandboxChat struct {
	To       string
	Messages []SandboxMessage
}

// SandboxMessage is one message in a fake's thread.
type SandboxMessage struct {
	From   string
	Text   string
	At     time.Time
	Status string
}

// SandboxChannel is a Slack channel's threads.
type SandboxChannel struct {
	Channel string
	Threads []SandboxThread
}

// SandboxThread is a Slack thread: its root post and replies.
type SandboxThread struct {
	TS      string
	Root    SandboxMessage
	Replies []SandboxMessage
}

// SandboxTicket is a help-desk ticket with its comments.
type SandboxTicket struct {
	System    string // zendesk, freshdesk
	ID        int64
	Subject   string
	Requester string
	Status    string
	Comments  []SandboxMessage
}

// SandboxRecord is a CRM record.
type SandboxRecord struct {
	System string // hubspot, bitrix24
	Kind   string // contact, note, deal, …
	Title  string
	Fields []SandboxField
}

// SandboxField is one name and value of a record.
type SandboxField struct{ Name, Value string }

// SandboxDelivery is one request the webhook receiver got.
type SandboxDelivery struct {
	ID, Type string
	Valid    bool
	At       time.Time
}

type sandboxData struct {
	View    SandboxView
	Samples []string
}

func (c *Console) sandbox(w http.ResponseWriter, r *http.Request, s *session) {
	if c.opt.Sandbox == nil {
		c.render(w, r, http.StatusNotFound, "error", pageData{Session: s, Title: "Sandbox is off",
			Error: "This hub runs with sandbox: false: its connectors talk to the real services."})
		return
	}
	notice := ""
	if done := r.URL.Query().Get("done"); done != "" {
		notice = map[string]string{
			"slack-reply": "The agent's Slack reply went to the hub: the customer gets it on WhatsApp (see the WhatsApp chat below).",
			"zendesk":     "The Zendesk comment went to the hub: the customer gets it on WhatsApp.",
			"customer":    "The customer's message went to the hub: watch it reach the connectors.",
		}[done]
	}
	c.render(w, r, http.StatusOK, "sandbox", pageData{Session: s, Title: "Sandbox", Nav: "sandbox", Live: true, Notice: notice,
		Data: sandboxData{View: c.opt.Sandbox.View(), Samples: c.opt.Sandbox.Samples()}})
}

func (c *Console) sandboxAction(w http.ResponseWriter, r *http.Request, s *session) {
	sb := c.opt.Sandbox
	if sb == nil {
		c.render(w, r, http.StatusNotFound, "error", pageData{Session: s, Title: "Sandbox is off"})
		return
	}
	text := strings.TrimSpace(r.PostFormValue("text"))
	var err error
	action := r.PathValue("action")
	switch action {
	case "slack-reply":
		if text == "" {
			err = errText
			break
		}
		err = sb.SlackReply(r.Context(), r.PostFormValue("thread"), text)
	case "zendesk":
		id, perr := strconv.ParseInt(r.PostFormValue("ticket"), 10, 64)
		if perr != nil || text == "" {
			err = errText
			break
		}
		err = sb.ZendeskComment(r.Context(), id, text)
	case "customer":
		err = sb.CustomerMessage(r.Context(), r.PostFormValue("sample"), text)
	default:
		c.render(w, r, http.StatusNotFound, "error", pageData{Session: s, Title: "Not found", Error: "No sandbox action " + action + "."})
		return
	}
	if err != nil {
		c.render(w, r, http.StatusUnprocessableEntity, "sandbox", pageData{Session: s, Title: "Sandbox", Nav: "sandbox", Error: err.Error(),
			Data: sandboxData{View: sb.View(), Samples: sb.Samples()}})
		return
	}
	http.Redirect(w, r, "/console/sandbox?done="+action, http.StatusSeeOther)
}

type textError string

func (e textError) Error() string { return string(e) }

const errText = textError("Write the text first (and pick the ticket).")
