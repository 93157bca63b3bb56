package zendesktest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/plugins/zendesk"
)

// User is an account's user, as tests and the sandbox see it.
type User struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	Email      string    `json:"email,omitempty"`
	Phone      string    `json:"phone,omitempty"`
	ExternalID string    `json:"external_id,omitempty"`
	Role       string    `json:"role"`
	CreatedAt  time.Time `json:"created_at"`
}

// Comment is one comment of a ticket.
type Comment struct {
	ID       int64  `json:"id"`
	AuthorID int64  `json:"author_id"`
	Author   string `json:"author"`
	Body     string `json:"body"`
	// Public comments are the conversation with the requester; the others
	// are internal notes.
	Public      bool         `json:"public"`
	CreatedAt   time.Time    `json:"created_at"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// Ticket is a ticket with its comments.
type Ticket struct {
	ID          int64     `json:"id"`
	Subject     string    `json:"subject"`
	Status      string    `json:"status"`
	Priority    string    `json:"priority,omitempty"`
	Tags        []string  `json:"tags"`
	RequesterID int64     `json:"requester_id"`
	Requester   string    `json:"requester"`
	SubmitterID int64     `json:"submitter_id"`
	GroupID     int64     `json:"group_id,omitempty"`
	ExternalID  string    `json:"external_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	SolvedAt    time.Time `json:"solved_at,omitzero"`
	Comments    []Comment `json:"comments"`
}

// HookDelivery is one webhook the fake sent to its target.
type HookDelivery struct {
	TicketID  int64     `json:"ticket_id"`
	CommentID int64     `json:"comment_id"`
	Status    int       `json:"status,omitempty"`
	Error     string    `json:"error,omitempty"`
	At        time.Time `json:"at"`
}

// Snapshot is what the fake holds and received, for GET /sandbox.
type Snapshot struct {
	Users       []User         `json:"users"`
	Tickets     []Ticket       `json:"tickets"`
	Requests    int            `json:"requests"`
	RateLimited int            `json:"rate_limited"`
	Webhooks    []HookDelivery `json:"webhooks"`
}

// Snapshot returns a copy of the account: end users, tickets with their
// comments (public and private), and counts of the calls.
func (s *Server) Snapshot() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot()
}

func (s *Server) snapshot() Snapshot {
	snap := Snapshot{Users: []User{}, Tickets: []Ticket{}, Requests: s.requests.Len(), Webhooks: append([]HookDelivery{}, s.hooks.All()...)}
	snap.RateLimited = s.requests.Count(func(r Request) bool { return r.Status == http.StatusTooManyRequests })
	for _, id := range sortedIDs(s.users) {
		if id == APIUserID || id == AgentID {
			continue
		}
		snap.Users = append(snap.Users, s.users[id].public())
	}
	for _, id := range sortedIDs(s.tickets) {
		snap.Tickets = append(snap.Tickets, s.ticketCopy(s.tickets[id]))
	}
	return snap
}

func (u *user) public() User {
	return User{ID: u.ID, Name: u.Name, Email: u.Email, Phone: u.Phone, ExternalID: u.ExternalID, Role: u.Role, CreatedAt: u.CreatedAt}
}

func (s *Server) ticketCopy(t *ticket) Ticket {
	out := Ticket{ID: t.ID, Subject: t.Subject, Status: t.Status, Priority: t.Priority, Tags: append([]string{}, t.Tags...),
		RequesterID: t.RequesterID, SubmitterID: t.SubmitterID, GroupID: t.GroupID, ExternalID: t.ExternalID,
		CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, SolvedAt: t.SolvedAt, Comments: []Comment{}}
	if u := s.users[t.RequesterID]; u != nil {
		out.Requester = u.Name
	}
	for _, c := range t.Comments {
		cc := Comment{ID: c.ID, AuthorID: c.AuthorID, Body: c.Body, Public: c.Public, CreatedAt: c.CreatedAt, Attachments: s.commentAttachments(c.ID)}
		if u := s.users[c.AuthorID]; u != nil {
			cc.Author = u.Name
		}
		out.Comments = append(out.Comments, cc)
	}
	return out
}

// Users returns the end users.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot().Users
}

// Tickets returns every ticket, oldest first.
func (s *Server) Tickets() []Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot().Tickets
}

// Ticket returns one ticket.
func (s *Server) Ticket(id int64) (Ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tickets[id]
	if t == nil {
		return Ticket{}, false
	}
	return s.ticketCopy(t), true
}

// AddUser creates an end user the way an agent would have, long enough
// ago for search to find them, and returns their id.
func (s *Server) AddUser(name, phone string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.clock.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	s.nextUser++
	s.users[s.nextUser] = &user{ID: s.nextUser, Name: name, Phone: phone, Role: "end-user", Active: true, CreatedAt: at, UpdatedAt: at}
	return s.nextUser
}

// ErrNoTicket is returned for a ticket id the fake does not hold.
var ErrNoTicket = errors.New("zendesktest: no such ticket")

var errClosed = errors.New("zendesktest: Status closed prevents ticket update")

// SetStatus changes a ticket's status as an agent would (any of new,
// open, pending, hold, solved, closed), at the fake's clock.
func (s *Server) SetStatus(ticketID int64, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setStatusAt(ticketID, status, s.clock.Now().UTC())
}

// Solve marks a ticket solved at the given time.
func (s *Server) Solve(ticketID int64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setStatusAt(ticketID, "solved", at.UTC())
}

// Close marks a ticket closed at the given time (solving it first if it
// was not), as Zendesk's automation does days after it was solved.
func (s *Server) Close(ticketID int64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tickets[ticketID]; t != nil && t.Status != "solved" {
		s.setStatus(t, "solved", at.UTC())
	}
	return s.setStatusAt(ticketID, "closed", at.UTC())
}

func (s *Server) setStatusAt(ticketID int64, status string, at time.Time) error {
	t := s.tickets[ticketID]
	if t == nil {
		return ErrNoTicket
	}
	if !statuses[status] {
		return fmt.Errorf("zendesktest: unknown status %q", status)
	}
	s.setStatus(t, status, at)
	return nil
}

// DeleteTicket removes a ticket, as an agent deleting it does: the API
// answers 404 for it from then on.
func (s *Server) DeleteTicket(ticketID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tickets, ticketID)
}

// AgentComment adds a comment by the agent AgentID, public (a reply the
// requester sees) or private (an internal note), and returns its id. With
// a webhook target set, a public comment fires the webhook, as the
// documented trigger does; the delivery is recorded in Webhooks.
func (s *Server) AgentComment(ticketID int64, body string, public bool) (int64, error) {
	return s.AgentCommentFiles(ticketID, body, public)
}

// SetWebhookTarget makes public agent comments POST the signed webhook to
// url ("" turns it off).
func (s *Server) SetWebhookTarget(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hookTarget = url
}

// Webhooks returns the webhooks the fake sent.
func (s *Server) Webhooks() []HookDelivery { return s.hooks.All() }

func (s *Server) fireWebhook(target string, ticketID, commentID int64) {
	d := HookDelivery{TicketID: ticketID, CommentID: commentID, At: s.clock.Now().UTC()}
	req, err := s.WebhookRequest(target, ticketID, commentID)
	if err == nil {
		var resp *http.Response
		resp, err = s.hookClient.Do(req)
		if err == nil {
			d.Status = resp.StatusCode
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
	}
	if err != nil {
		d.Error = err.Error()
	}
	s.hooks.Add(d)
}

// Webhook headers, as Zendesk names them.
const (
	HeaderSignature = "X-Zendesk-Webhook-Signature"
	HeaderTimestamp = "X-Zendesk-Webhook-Signature-Timestamp"
)

// Sign is Zendesk's webhook signature: base64 of the HMAC-SHA256, under
// the webhook's signing secret, of the timestamp header's value followed
// directly by the raw body.
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// WebhookBody renders zendesk.TriggerBody, the JSON body of the trigger
// the connector documents, for one comment: Zendesk replaces each
// placeholder with its value inside the JSON string.
func WebhookBody(ticketID, commentID int64) []byte {
	r := strings.NewReplacer(
		"{{ticket.id}}", strconv.FormatInt(ticketID, 10),
		"{{ticket.latest_comment.id}}", strconv.FormatInt(commentID, 10),
	)
	return []byte(r.Replace(zendesk.TriggerBody))
}

// SignWebhook returns the headers Zendesk sends with body: the timestamp
// (ISO 8601, UTC, at the fake's clock) and the signature under the fake's
// webhook secret.
func (s *Server) SignWebhook(body []byte) http.Header {
	s.mu.Lock()
	secret, now := s.webhookSecret, s.clock.Now().UTC()
	s.mu.Unlock()
	ts := now.Format(time.RFC3339)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "Zendesk Webhook")
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, Sign(secret, ts, body))
	return h
}

// WebhookRequest is the POST Zendesk's trigger sends to target after
// comment commentID was added to ticket ticketID, signed.
func (s *Server) WebhookRequest(target string, ticketID, commentID int64) (*http.Request, error) {
	body := WebhookBody(ticketID, commentID)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = s.SignWebhook(body)
	return req, nil
}

// serveControl answers the fake's own endpoints, which play the agent in
// the sandbox:
//
//	POST /_fake/agent_comments {"ticket_id": 1, "body": "...", "public": true, "files": [{"name", "content_type", "data" (base64)}]}
//	POST /_fake/tickets/{id}/status {"status": "solved"}
//	GET  /_fake/snapshot
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, path string, body []byte) {
	switch {
	case path == "/_fake/snapshot" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Snapshot())
	case path == "/_fake/agent_comments" && r.Method == http.MethodPost:
		var in struct {
			TicketID int64  `json:"ticket_id"`
			Body     string `json:"body"`
			Public   *bool  `json:"public"`
			// Files are attachments: {"name", "content_type", "data"
			// (base64)}.
			Files []struct {
				Name        string `json:"name"`
				ContentType string `json:"content_type"`
				Data        []byte `json:"data"`
			} `json:"files"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.TicketID == 0 || (in.Body == "" && len(in.Files) == 0) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": `want {"ticket_id": <id>, "body": "...", "public": true, "files": [{"name": "a.png", "content_type": "image/png", "data": "<base64>"}]}`})
			return
		}
		var files []File
		for _, f := range in.Files {
			files = append(files, File{Name: f.Name, ContentType: f.ContentType, Data: f.Data})
		}
		id, err := s.AgentCommentFiles(in.TicketID, in.Body, in.Public == nil || *in.Public, files...)
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"comment_id": id})
	case strings.HasPrefix(path, "/_fake/tickets/") && strings.HasSuffix(path, "/status") && r.Method == http.MethodPost:
		id, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(path, "/_fake/tickets/"), "/status"), 10, 64)
		var in struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(body, &in)
		if err := s.SetStatus(id, in.Status); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ticket_id": id, "status": in.Status})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no such fake endpoint"})
	}
}
