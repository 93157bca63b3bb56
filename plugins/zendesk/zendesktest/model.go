package zendesktest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wahub/wahub/plugins/internal/fakeapi"
)

type user struct {
	ID         int64
	Name       string
	Email      string
	Phone      string
	ExternalID string
	Role       string
	Active     bool
	Verified   bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (u *user) json() map[string]any {
	return map[string]any{
		"id": u.ID, "name": u.Name, "email": nullable(u.Email), "phone": nullable(u.Phone),
		"shared_phone_number": false, "external_id": nullable(u.ExternalID), "role": u.Role,
		"active": u.Active, "verified": u.Verified,
		"created_at": u.CreatedAt.Format(time.RFC3339), "updated_at": u.UpdatedAt.Format(time.RFC3339),
	}
}

type comment struct {
	ID        int64
	AuthorID  int64
	Body      string
	Public    bool
	CreatedAt time.Time
	AuditID   int64
}

func (c *comment) json() map[string]any {
	return map[string]any{
		"id": c.ID, "type": "Comment", "author_id": c.AuthorID, "body": c.Body,
		"html_body": "<div class=\"zd-comment\"><p>" + htmlEscape(c.Body) + "</p></div>", "plain_body": c.Body,
		"public": c.Public, "attachments": []any{}, "audit_id": c.AuditID,
		"via": map[string]any{"channel": "api"}, "metadata": map[string]any{},
		"created_at": c.CreatedAt.Format(time.RFC3339),
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;", "\n", "<br>").Replace(s)
}

type ticket struct {
	ID          int64
	Subject     string
	Description string
	Status      string
	Priority    string
	Tags        []string
	RequesterID int64
	SubmitterID int64
	GroupID     int64
	ExternalID  string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	SolvedAt    time.Time
	Reopens     int
	Comments    []*comment
}

func (t *ticket) json() map[string]any {
	var group any
	if t.GroupID != 0 {
		group = t.GroupID
	}
	var priority any
	if t.Priority != "" {
		priority = t.Priority
	}
	return map[string]any{
		"id": t.ID, "external_id": nullable(t.ExternalID), "via": map[string]any{"channel": "api"},
		"subject": t.Subject, "raw_subject": t.Subject, "description": t.Description,
		"status": t.Status, "priority": priority, "type": nil,
		"requester_id": t.RequesterID, "submitter_id": t.SubmitterID, "assignee_id": nil,
		"organization_id": nil, "group_id": group, "tags": append([]string{}, t.Tags...), "custom_fields": []any{},
		"created_at": t.CreatedAt.Format(time.RFC3339), "updated_at": t.UpdatedAt.Format(time.RFC3339),
	}
}

func (t *ticket) metric() map[string]any {
	var solved any
	if !t.SolvedAt.IsZero() {
		solved = t.SolvedAt.Format(time.RFC3339)
	}
	return map[string]any{
		"id": t.ID + 70000, "ticket_id": t.ID, "reopens": t.Reopens, "solved_at": solved,
		"created_at": t.CreatedAt.Format(time.RFC3339), "updated_at": t.UpdatedAt.Format(time.RFC3339),
	}
}

var (
	statuses   = map[string]bool{"new": true, "open": true, "pending": true, "hold": true, "solved": true, "closed": true}
	priorities = map[string]bool{"low": true, "normal": true, "high": true, "urgent": true}
)

// normalizeTags does what Zendesk does to tags: lower case, and a space
// separates two tags.
func normalizeTags(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range in {
		for _, f := range strings.Fields(strings.ToLower(t)) {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// indexed reports whether search sees u yet.
func (s *Server) indexed(u *user, now time.Time) bool {
	return !u.UpdatedAt.After(now.Add(-s.searchLag))
}

// usersSearch is GET /api/v2/users/search: ?external_id= reads the
// database (no lag); ?query= goes through the search index.
func (s *Server) usersSearch(w http.ResponseWriter, q url.Values, now time.Time) {
	out := []map[string]any{}
	if ext := q.Get("external_id"); ext != "" {
		for _, id := range sortedIDs(s.users) {
			if u := s.users[id]; u.ExternalID == ext {
				out = append(out, u.json())
			}
		}
		writeJSON(w, http.StatusOK, page("users", out, len(out)))
		return
	}
	query := strings.ToLower(strings.TrimSpace(q.Get("query")))
	if query == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidSearch", "description": "query or external_id required"})
		return
	}
	for _, id := range sortedIDs(s.users) {
		u := s.users[id]
		if !s.indexed(u, now) {
			continue
		}
		if strings.Contains(strings.ToLower(u.Name), query) || strings.EqualFold(u.Email, query) ||
			(fakeapi.Digits(query) != "" && fakeapi.Digits(query) == fakeapi.Digits(u.Phone)) {
			out = append(out, u.json())
		}
	}
	writeJSON(w, http.StatusOK, page("users", out, len(out)))
}

// search is GET /api/v2/search for users: terms type:user, role:<role>,
// phone:<digits> (a leading * matches any formatting before them),
// external_id:<id>, email:<email>, and bare words matched against names.
// Only indexed users are found.
func (s *Server) search(w http.ResponseWriter, query string, now time.Time) {
	results := []map[string]any{}
	var (
		typ, role, phone, ext, email string
		words                        []string
		wildcard                     bool
	)
	for _, term := range strings.Fields(query) {
		k, v, ok := strings.Cut(term, ":")
		if !ok {
			words = append(words, strings.ToLower(term))
			continue
		}
		switch strings.ToLower(k) {
		case "type":
			typ = strings.ToLower(v)
		case "role":
			role = strings.ToLower(v)
		case "phone":
			wildcard = strings.HasPrefix(v, "*")
			phone = fakeapi.Digits(v)
		case "external_id":
			ext = v
		case "email":
			email = strings.ToLower(v)
		}
	}
	if typ != "" && typ != "user" {
		writeJSON(w, http.StatusOK, map[string]any{"results": results, "facets": nil, "next_page": nil, "previous_page": nil, "count": 0})
		return
	}
	for _, id := range sortedIDs(s.users) {
		u := s.users[id]
		if !s.indexed(u, now) || (role != "" && u.Role != role) || (ext != "" && u.ExternalID != ext) ||
			(email != "" && strings.ToLower(u.Email) != email) {
			continue
		}
		if phone != "" {
			d := fakeapi.Digits(u.Phone)
			if d == "" || (wildcard && !strings.HasSuffix(d, phone)) || (!wildcard && d != phone) {
				continue
			}
		}
		match := true
		for _, word := range words {
			if !strings.Contains(strings.ToLower(u.Name), word) {
				match = false
			}
		}
		if !match {
			continue
		}
		r := u.json()
		r["result_type"] = "user"
		results = append(results, r)
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "facets": nil, "next_page": nil, "previous_page": nil, "count": len(results)})
}

type userBody struct {
	User *struct {
		Name       *string `json:"name"`
		Email      *string `json:"email"`
		Phone      *string `json:"phone"`
		ExternalID *string `json:"external_id"`
		Role       *string `json:"role"`
		Verified   *bool   `json:"verified"`
	} `json:"user"`
}

// createOrUpdateUser is POST /api/v2/users/create_or_update: the user
// matched by external_id, else by email, is updated (200); otherwise one
// is created (201).
func (s *Server) createOrUpdateUser(w http.ResponseWriter, body []byte, now time.Time) {
	var b userBody
	if err := json.Unmarshal(body, &b); err != nil || b.User == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidJSON", "description": "The request body is not a JSON object with a user"})
		return
	}
	in := b.User
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	var found *user
	for _, id := range sortedIDs(s.users) {
		u := s.users[id]
		if (str(in.ExternalID) != "" && u.ExternalID == str(in.ExternalID)) ||
			(str(in.ExternalID) == "" && str(in.Email) != "" && strings.EqualFold(u.Email, str(in.Email))) {
			found = u
			break
		}
	}
	if in.Role != nil && !map[string]bool{"end-user": true, "agent": true, "admin": true}[*in.Role] {
		writeJSON(w, http.StatusUnprocessableEntity, invalid("role", "Role: is invalid", "InvalidValue"))
		return
	}
	status := http.StatusOK
	if found == nil {
		if strings.TrimSpace(str(in.Name)) == "" {
			writeJSON(w, http.StatusUnprocessableEntity, invalid("name", "Name: is too short (minimum is 1 character)", "BlankValue"))
			return
		}
		s.nextUser++
		found = &user{ID: s.nextUser, Role: "end-user", Active: true, CreatedAt: now}
		s.users[found.ID] = found
		status = http.StatusCreated
	}
	if in.Name != nil && *in.Name != "" {
		found.Name = *in.Name
	}
	setIf(&found.Email, in.Email)
	setIf(&found.Phone, in.Phone)
	setIf(&found.ExternalID, in.ExternalID)
	setIf(&found.Role, in.Role)
	setIf(&found.Verified, in.Verified)
	found.UpdatedAt = now
	writeJSON(w, status, map[string]any{"user": found.json()})
}

// listTickets is GET /api/v2/tickets, with ?external_id= the lookup
// integrations use to find their tickets (read from the database).
func (s *Server) listTickets(w http.ResponseWriter, q url.Values) {
	ext, filter := q.Get("external_id"), q.Has("external_id")
	out := []map[string]any{}
	for _, id := range sortedIDs(s.tickets) {
		if t := s.tickets[id]; !filter || t.ExternalID == ext {
			out = append(out, t.json())
		}
	}
	writeJSON(w, http.StatusOK, page("tickets", out, len(out)))
}

type commentIn struct {
	Body     string   `json:"body"`
	HTMLBody string   `json:"html_body"`
	Public   *bool    `json:"public"`
	AuthorID int64    `json:"author_id"`
	Uploads  []string `json:"uploads"`
}

type ticketIn struct {
	Subject     *string    `json:"subject"`
	Comment     *commentIn `json:"comment"`
	RequesterID int64      `json:"requester_id"`
	SubmitterID int64      `json:"submitter_id"`
	Tags        []string   `json:"tags"`
	AddTags     []string   `json:"additional_tags"`
	ExternalID  *string    `json:"external_id"`
	Priority    *string    `json:"priority"`
	Status      *string    `json:"status"`
	GroupID     int64      `json:"group_id"`
}

func decodeTicket(w http.ResponseWriter, body []byte) (*ticketIn, bool) {
	var b struct {
		Ticket *ticketIn `json:"ticket"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Ticket == nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "InvalidJSON", "description": "The request body is not a JSON object with a ticket"})
		return nil, false
	}
	return b.Ticket, true
}

// validate refuses what Zendesk refuses with 422, before anything changes.
func (s *Server) validate(w http.ResponseWriter, in *ticketIn) bool {
	switch {
	case in.Priority != nil && *in.Priority != "" && !priorities[*in.Priority]:
		writeJSON(w, http.StatusUnprocessableEntity, invalid("priority", "Priority: is not valid", "InvalidValue"))
	case in.Status != nil && !statuses[*in.Status]:
		writeJSON(w, http.StatusUnprocessableEntity, invalid("status", "Status: is not valid", "InvalidValue"))
	case in.Comment != nil && in.Comment.AuthorID != 0 && s.users[in.Comment.AuthorID] == nil:
		writeJSON(w, http.StatusUnprocessableEntity, invalid("base", "Author: is invalid", "InvalidValue"))
	case in.RequesterID != 0 && s.users[in.RequesterID] == nil:
		writeJSON(w, http.StatusUnprocessableEntity, invalid("requester", "Requester: is invalid", "InvalidValue"))
	default:
		return true
	}
	return false
}

func (s *Server) createTicket(w http.ResponseWriter, body []byte, now time.Time) {
	in, ok := decodeTicket(w, body)
	if !ok || !s.validate(w, in) {
		return
	}
	if in.Comment == nil || (strings.TrimSpace(in.Comment.Body) == "" && strings.TrimSpace(in.Comment.HTMLBody) == "") {
		writeJSON(w, http.StatusUnprocessableEntity, invalid("base", "Description: cannot be blank", "BlankValue"))
		return
	}
	t := &ticket{Status: "new", RequesterID: APIUserID, SubmitterID: APIUserID, CreatedAt: now, UpdatedAt: now, GroupID: in.GroupID}
	if in.RequesterID != 0 {
		t.RequesterID = in.RequesterID
	}
	// "The submitter always becomes the author of the first comment."
	author := APIUserID
	switch {
	case in.SubmitterID != 0:
		t.SubmitterID, author = in.SubmitterID, in.SubmitterID
	case in.Comment.AuthorID != 0:
		author = in.Comment.AuthorID
	}
	setIf(&t.Subject, in.Subject)
	setIf(&t.ExternalID, in.ExternalID)
	setIf(&t.Priority, in.Priority)
	setIf(&t.Status, in.Status)
	t.Tags = normalizeTags(append(in.Tags, in.AddTags...))
	s.nextTkt++
	t.ID = s.nextTkt - 1
	s.tickets[t.ID] = t
	c := s.addComment(t, author, commentBody(in.Comment), in.Comment.Public == nil || *in.Comment.Public, now)
	s.attach(c, in.Comment.Uploads, now)
	t.Description = c.Body
	if t.Status == "solved" {
		t.SolvedAt = now
	}
	w.Header().Set("Location", "/api/v2/tickets/"+itoa(t.ID)+".json")
	writeJSON(w, http.StatusCreated, map[string]any{"ticket": t.json(), "audit": audit(t, c, now)})
}

// setIf applies a field a write names: a nil v leaves *dst as it was,
// as the API leaves fields a request does not send.
func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func commentBody(c *commentIn) string {
	if strings.TrimSpace(c.Body) != "" {
		return c.Body
	}
	return c.HTMLBody
}

func (s *Server) addComment(t *ticket, author int64, body string, public bool, now time.Time) *comment {
	s.nextCmt++
	s.nextAud++
	c := &comment{ID: s.nextCmt, AuthorID: author, Body: body, Public: public, CreatedAt: now, AuditID: s.nextAud}
	t.Comments = append(t.Comments, c)
	t.UpdatedAt = now
	return c
}

func audit(t *ticket, c *comment, now time.Time) map[string]any {
	a := map[string]any{"ticket_id": t.ID, "created_at": now.Format(time.RFC3339), "events": []any{}}
	if c != nil {
		a["id"] = c.AuditID
		a["author_id"] = c.AuthorID
		a["events"] = []any{map[string]any{"id": c.ID, "type": "Comment", "author_id": c.AuthorID, "body": c.Body, "public": c.Public}}
	}
	return a
}

func (s *Server) updateTicket(w http.ResponseWriter, t *ticket, body []byte, now time.Time) {
	in, ok := decodeTicket(w, body)
	if !ok {
		return
	}
	if t.Status == "closed" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error": "RecordInvalid", "description": "Record validation errors",
			"details": map[string]any{"status": []map[string]string{{"description": "Status closed prevents ticket update"}}},
		})
		return
	}
	if !s.validate(w, in) {
		return
	}
	var c *comment
	if in.Comment != nil && strings.TrimSpace(commentBody(in.Comment)) != "" {
		author := in.Comment.AuthorID
		if author == 0 {
			author = APIUserID
		}
		c = s.addComment(t, author, commentBody(in.Comment), in.Comment.Public == nil || *in.Comment.Public, now)
		s.attach(c, in.Comment.Uploads, now)
		// The requester answering puts the ticket back in the agents'
		// queue: Zendesk reopens pending and solved tickets on it.
		if c.Public && author == t.RequesterID && (t.Status == "pending" || t.Status == "solved") && in.Status == nil {
			s.setStatus(t, "open", now)
		}
	}
	setIf(&t.Subject, in.Subject)
	setIf(&t.Priority, in.Priority)
	if in.Tags != nil {
		t.Tags = normalizeTags(in.Tags)
	}
	if len(in.AddTags) > 0 {
		t.Tags = normalizeTags(append(t.Tags, in.AddTags...))
	}
	if in.Status != nil {
		s.setStatus(t, *in.Status, now)
	}
	t.UpdatedAt = now
	writeJSON(w, http.StatusOK, map[string]any{"ticket": t.json(), "audit": audit(t, c, now)})
}

func (s *Server) setStatus(t *ticket, status string, now time.Time) {
	if t.Status == "solved" && status != "solved" && status != "closed" {
		t.Reopens++
	}
	if status == "solved" && t.Status != "solved" {
		t.SolvedAt = now
	}
	t.Status = status
	t.UpdatedAt = now
}

// listComments is GET /api/v2/tickets/{id}/comments, oldest first unless
// sort_order=desc.
func (s *Server) listComments(w http.ResponseWriter, t *ticket, q url.Values) {
	out := make([]map[string]any, 0, len(t.Comments))
	for _, c := range t.Comments {
		j := c.json()
		j["attachments"] = s.attachmentsJSON(c.ID)
		out = append(out, j)
	}
	if q.Get("sort_order") == "desc" {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	resp := page("comments", out, len(out))
	if q.Get("include") == "users" {
		seen := map[int64]bool{}
		users := []map[string]any{}
		for _, c := range t.Comments {
			if u := s.users[c.AuthorID]; u != nil && !seen[u.ID] {
				seen[u.ID] = true
				users = append(users, u.json())
			}
		}
		resp["users"] = users
	}
	writeJSON(w, http.StatusOK, resp)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
