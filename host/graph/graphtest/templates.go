package graphtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/wahub/wahub/host/graph"
)

// Template is one message template of the fake's WhatsApp Business
// Account, as GET /{waba-id}/message_templates lists it.
type Template struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Language        string          `json:"language"`
	Status          string          `json:"status"`
	Category        string          `json:"category"`
	ParameterFormat string          `json:"parameter_format,omitempty"`
	Components      json.RawMessage `json:"components,omitempty"`
}

// defaultTemplatePage is Graph's page size when the request names none.
const defaultTemplatePage = 25

// WithCatalog gives the fake's WABA these templates: GET
// /{waba-id}/message_templates lists them (paged with cursors), and a
// template send is held against them the way Graph does: an unknown name or
// language is 132001, a paused template 132015, a disabled one 132016, a
// template that is not approved 132001, and a body parameter count that
// does not match the template's placeholders 132000.
func WithCatalog(ts ...Template) Option {
	return func(s *Server) { s.catalog = append(s.catalog, ts...) }
}

// SetCatalog replaces the catalogue.
func (s *Server) SetCatalog(ts ...Template) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catalog = append([]Template(nil), ts...)
}

// SetTemplateStatus changes a template's status (all its languages when
// language is ""); it reports whether any matched.
func (s *Server) SetTemplateStatus(name, language, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for i := range s.catalog {
		t := &s.catalog[i]
		if t.Name == name && (language == "" || t.Language == language) {
			t.Status, found = status, true
		}
	}
	return found
}

// TemplateListings counts the GET message_templates requests answered
// with a page (every page counts).
func (s *Server) TemplateListings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listings
}

// EmitTemplateStatus posts a message_template_status_update webhook for
// the catalogue's template name/language, as Meta does when a template is
// approved, paused, disabled, ... (event: APPROVED, PAUSED, ...). The
// fake's own catalogue takes the new status too. It returns the hub's HTTP
// answer.
func (s *Server) EmitTemplateStatus(ctx context.Context, name, language, event, reason string) (int, error) {
	s.mu.Lock()
	var t Template
	for _, c := range s.catalog {
		if c.Name == name && c.Language == language {
			t = c
		}
	}
	s.mu.Unlock()
	if t.Name == "" {
		t = Template{Name: name, Language: language}
	}
	switch event {
	case "APPROVED", "PAUSED", "DISABLED", "REJECTED", "PENDING", "FLAGGED":
		s.SetTemplateStatus(name, language, event)
	case "REINSTATED":
		s.SetTemplateStatus(name, language, "APPROVED")
	}
	id, _ := strconv.ParseInt(t.ID, 10, 64)
	if reason == "" {
		reason = "NONE"
	}
	value := map[string]any{
		"event": event, "message_template_id": id, "message_template_name": name,
		// Webhooks write the language with a hyphen; Graph lists it with
		// an underscore.
		"message_template_language": strings.ReplaceAll(language, "_", "-"),
		"reason":                    reason,
	}
	if t.Category != "" {
		value["message_template_category"] = t.Category
	}
	body, _ := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": s.waba, "time": s.now().Unix(), "changes": []any{
			map[string]any{"value": value, "field": "message_template_status_update"},
		}}},
	})
	if s.hook == nil {
		return 0, errNoHook
	}
	code, msg := s.deliver(ctx, escapeNonASCII(body))
	if msg != "" && code == 0 {
		return 0, &hookError{msg}
	}
	return code, nil
}

type hookError struct{ msg string }

func (e *hookError) Error() string { return e.msg }

var errNoHook = &hookError{"no status webhook configured"}

// templatesPath reports whether path is /{version}/{waba-id}/message_templates
// (or without the version) and returns the WABA id.
func templatesPath(path string) (string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) > 0 && isVersion(segs[0]) {
		segs = segs[1:]
	}
	if len(segs) == 2 && segs[0] != "" && segs[1] == "message_templates" {
		return segs[0], true
	}
	return "", false
}

// serveTemplates answers a catalogue listing, one page at a time: "after"
// is an opaque cursor, "limit" the page size (Graph's default 25), and
// paging.next appears only when there is a next page, as on Graph.
func (s *Server) serveTemplates(w http.ResponseWriter, r *http.Request, waba string, req *Request) {
	if s.token != "" && req.Token != s.token {
		s.refuse(w, req, badToken(req.Token == ""))
		return
	}
	if r.Method != http.MethodGet || waba != s.waba {
		s.refuse(w, req, unknownObject(r.Method, waba))
		return
	}
	q := r.URL.Query()
	limit := defaultTemplatePage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			s.refuse(w, req, withDetails(graph.ErrInvalidParameter, "(#100) Param limit must be a positive integer", ""))
			return
		}
		limit = min(n, 1000)
	}
	start := 0
	if v := q.Get("after"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || n < 0 {
			s.refuse(w, req, withDetails(graph.ErrInvalidParameter, "(#100) Invalid cursor: after", ""))
			return
		}
		start = n
	}
	s.mu.Lock()
	all := append([]Template(nil), s.catalog...)
	s.listings++
	req.Status = http.StatusOK
	s.mu.Unlock()
	start = min(start, len(all))
	end := min(start+limit, len(all))
	page := all[start:end]
	if page == nil {
		page = []Template{}
	}
	cursor := func(n int) string { return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(n))) }
	paging := map[string]any{"cursors": map[string]string{"before": cursor(start), "after": cursor(end)}}
	if end < len(all) {
		next := *r.URL
		nq := next.Query()
		nq.Set("after", cursor(end))
		nq.Del("access_token")
		next.RawQuery = nq.Encode()
		paging["next"] = "https://graph.facebook.com" + next.Path + "?" + next.RawQuery
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": page, "paging": paging})
}

var fakePlaceholder = regexp.MustCompile(`\{\{\s*[A-Za-z0-9_]+\s*\}\}`)

// catalogRefusal is Graph's answer to a template send the catalogue does
// not allow, or nil. Called with s.mu held.
func (s *Server) catalogRefusal(body []byte, name, language string) *ErrorResponse {
	if len(s.catalog) == 0 {
		return nil
	}
	var t *Template
	for i := range s.catalog {
		if s.catalog[i].Name == name && s.catalog[i].Language == language {
			t = &s.catalog[i]
		}
	}
	if t == nil {
		return withDetails(graph.ErrTemplateMissing, "", "template name ("+name+") does not exist in "+language)
	}
	switch t.Status {
	case "APPROVED", "FLAGGED":
	case "PAUSED":
		return ErrorFor(graph.ErrTemplatePaused)
	case "DISABLED":
		return ErrorFor(graph.ErrTemplateDisabled)
	default:
		return withDetails(graph.ErrTemplateMissing, "", "template name ("+name+") is not approved in "+language)
	}
	var tcomps []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(t.Components, &tcomps)
	want := map[string]int{}
	seen := map[string]map[string]bool{}
	for _, c := range tcomps {
		typ := strings.ToLower(c.Type)
		if typ != "body" && typ != "header" {
			continue
		}
		if seen[typ] == nil {
			seen[typ] = map[string]bool{}
		}
		for _, m := range fakePlaceholder.FindAllString(c.Text, -1) {
			if !seen[typ][m] {
				seen[typ][m] = true
				want[typ]++
			}
		}
	}
	var sent struct {
		Template struct {
			Components []struct {
				Type       string            `json:"type"`
				Parameters []json.RawMessage `json:"parameters"`
			} `json:"components"`
		} `json:"template"`
	}
	_ = json.Unmarshal(body, &sent)
	got := map[string]int{}
	for _, c := range sent.Template.Components {
		got[strings.ToLower(c.Type)] += len(c.Parameters)
	}
	if got["body"] != want["body"] {
		return withDetails(graph.ErrTemplateParamCount, "",
			"body: number of localizable_params ("+strconv.Itoa(got["body"])+") does not match the expected number of params ("+strconv.Itoa(want["body"])+")")
	}
	return nil
}
