package zendesk

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/sdk"
)

// The parts of Zendesk's objects the connector reads.
type zTicket struct {
	ID          int64     `json:"id"`
	Status      string    `json:"status"`
	RequesterID int64     `json:"requester_id"`
	UpdatedAt   time.Time `json:"updated_at"`
	ExternalID  string    `json:"external_id"`
}

type zUser struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

type zAttachment struct {
	ID          int64  `json:"id"`
	FileName    string `json:"file_name"`
	ContentURL  string `json:"content_url"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Deleted     bool   `json:"deleted"`
}

type zComment struct {
	ID          int64         `json:"id"`
	AuthorID    int64         `json:"author_id"`
	Body        string        `json:"body"`
	PlainBody   string        `json:"plain_body"`
	Public      bool          `json:"public"`
	CreatedAt   time.Time     `json:"created_at"`
	Attachments []zAttachment `json:"attachments"`
}

// text is the comment as plain text.
func (c *zComment) text() string {
	if c.PlainBody != "" {
		return c.PlainBody
	}
	return c.Body
}

func ticketPath(id int64) string { return "/tickets/" + strconv.FormatInt(id, 10) }

// ticketByExternalID finds the ticket carrying external_id ext; nil when
// there is none. This list reads the database, not the lagging search
// index, so a ticket created a moment ago is found.
func (s *settings) ticketByExternalID(ctx context.Context, ext string) (*zTicket, error) {
	var out struct {
		Tickets []zTicket `json:"tickets"`
	}
	if err := s.call(ctx, http.MethodGet, "/tickets", url.Values{"external_id": {ext}}, nil, &out); err != nil {
		return nil, err
	}
	if len(out.Tickets) == 0 {
		return nil, nil
	}
	// Several would mean someone copied the external_id; the newest is
	// the one a retry may have created.
	best := out.Tickets[0]
	for _, t := range out.Tickets[1:] {
		if t.ID > best.ID {
			best = t
		}
	}
	return &best, nil
}

func (s *settings) getTicket(ctx context.Context, id int64) (*zTicket, error) {
	var out struct {
		Ticket zTicket `json:"ticket"`
	}
	if err := s.call(ctx, http.MethodGet, ticketPath(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out.Ticket, nil
}

// solvedAt is when a solved ticket was solved: the ticket metric's
// solved_at, or, when the metric cannot be read (a role without access to
// metrics), the ticket's last update, which is no earlier.
func (s *settings) solvedAt(ctx context.Context, t *zTicket) (time.Time, error) {
	var out struct {
		Metric struct {
			SolvedAt *time.Time `json:"solved_at"`
		} `json:"ticket_metric"`
	}
	err := s.call(ctx, http.MethodGet, ticketPath(t.ID)+"/metrics", nil, nil, &out)
	var ae *apiError
	switch {
	case err == nil && out.Metric.SolvedAt != nil:
		return *out.Metric.SolvedAt, nil
	case err == nil, errors.As(err, &ae) && !ae.Transient:
		return t.UpdatedAt, nil
	}
	return time.Time{}, err
}

// createTicket opens a ticket whose first comment, public and by the
// requester, is body.
func (s *settings) createTicket(ctx context.Context, ev *sdk.Event, ext string, requester int64, body string, uploads []string) (*zTicket, error) {
	team := ""
	if ev.Route != nil {
		team = ev.Route.Team
	}
	priority := s.priorities[team]
	if priority == "" {
		priority = defaultPriority
	}
	first := map[string]any{"body": body, "public": true, "author_id": requester}
	if len(uploads) > 0 {
		first["uploads"] = uploads
	}
	t := map[string]any{
		"subject": subject(ev, body),
		"comment": first,
		// The submitter becomes the author of the first comment, so it is
		// the customer too, not the API agent.
		"requester_id": requester,
		"submitter_id": requester,
		"priority":     priority,
		"tags":         s.ticketTags(ev),
		"external_id":  ext,
	}
	if g := s.groups[team]; g != 0 {
		t["group_id"] = g
	}
	var out struct {
		Ticket zTicket `json:"ticket"`
	}
	if err := s.call(ctx, http.MethodPost, "/tickets", nil, map[string]any{"ticket": t}, &out); err != nil {
		return nil, err
	}
	return &out.Ticket, nil
}

// comment adds a comment to a ticket; author 0 is the API agent; status,
// when set, changes the ticket's status in the same update; uploads are
// the tokens of files to attach.
func (s *settings) comment(ctx context.Context, ticket int64, body string, public bool, author int64, status string, uploads []string) error {
	c := map[string]any{"body": body, "public": public}
	if len(uploads) > 0 {
		c["uploads"] = uploads
	}
	if author != 0 {
		c["author_id"] = author
	}
	t := map[string]any{"comment": c}
	if status != "" {
		t["status"] = status
	}
	return s.call(ctx, http.MethodPut, ticketPath(ticket), nil, map[string]any{"ticket": t}, nil)
}

// isClosedRefusal tells Zendesk's 422 for an update of a closed ticket.
func isClosedRefusal(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity && strings.Contains(strings.ToLower(ae.msg), "closed")
}

// comments lists a ticket's latest comments, newest first, with their
// authors.
func (s *settings) comments(ctx context.Context, ticket int64) ([]zComment, map[int64]zUser, error) {
	var out struct {
		Comments []zComment `json:"comments"`
		Users    []zUser    `json:"users"`
	}
	q := url.Values{"sort_order": {"desc"}, "include": {"users"}}
	if err := s.call(ctx, http.MethodGet, ticketPath(ticket)+"/comments", q, nil, &out); err != nil {
		return nil, nil, err
	}
	users := map[int64]zUser{}
	for _, u := range out.Users {
		users[u.ID] = u
	}
	return out.Comments, users, nil
}

// endUser returns the Zendesk end user of a customer, finding or creating
// them once and remembering the id in user:<key>.
func (c *connector) endUser(ctx context.Context, s *settings, contact *sdk.Contact) (int64, error) {
	kv := s.host.KV()
	key := contact.Key()
	var id int64
	if found, err := getJSON(ctx, kv, userKey(key), &id); err != nil || (found && id != 0) {
		return id, err
	}
	ext := externalUserID(key)
	var byExt struct {
		Users []zUser `json:"users"`
	}
	if err := s.call(ctx, http.MethodGet, "/users/search", url.Values{"external_id": {ext}}, nil, &byExt); err != nil {
		return 0, err
	}
	if len(byExt.Users) > 0 {
		id = byExt.Users[0].ID
	}
	if id == 0 && contact.WAID != "" {
		// A customer an agent already knows by phone (a call, an email
		// with a signature). Digits only; the leading * matches any
		// formatting the agent typed.
		var found struct {
			Results []zUser `json:"results"`
		}
		q := url.Values{"query": {"type:user role:end-user phone:*" + contact.WAID}}
		if err := s.call(ctx, http.MethodGet, "/search", q, nil, &found); err != nil {
			return 0, err
		}
		if len(found.Results) > 0 {
			id = found.Results[0].ID
		}
	}
	if id == 0 {
		u := map[string]any{"name": customerName(contact), "external_id": ext, "role": "end-user"}
		if contact.WAID != "" {
			u["phone"] = "+" + contact.WAID
		}
		var out struct {
			User zUser `json:"user"`
		}
		// Matched on external_id: a retry after a lost answer updates the
		// user it created instead of making another.
		if err := s.call(ctx, http.MethodPost, "/users/create_or_update", nil, map[string]any{"user": u}, &out); err != nil {
			return 0, err
		}
		id = out.User.ID
	}
	return id, putJSON(ctx, kv, userKey(key), id)
}
