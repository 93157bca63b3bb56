package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// TemplateInfo is one message template as GET /{waba-id}/message_templates
// lists it.
type TemplateInfo struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Language        string          `json:"language"`
	Status          string          `json:"status"`
	Category        string          `json:"category"`
	ParameterFormat string          `json:"parameter_format,omitempty"`
	Components      json.RawMessage `json:"components,omitempty"`
	QualityScore    *struct {
		Score string `json:"score"`
	} `json:"quality_score,omitempty"`
}

// templateFields are the fields asked for: the defaults plus quality.
const templateFields = "id,name,language,status,category,parameter_format,components,quality_score"

// maxTemplatePages bounds a listing: 250 templates per WABA per language
// is Meta's limit, so a listing that goes on for this many pages is a
// paging loop, not a catalogue.
const maxTemplatePages = 1000

// Templates lists every template of the WhatsApp Business Account wabaID,
// following the paging cursors (pageSize per request; 0 means 100).
func (c *Client) Templates(ctx context.Context, wabaID string, pageSize int) ([]TemplateInfo, error) {
	if wabaID == "" {
		return nil, &ValidationError{"listing templates needs whatsapp.business_account_id"}
	}
	if pageSize <= 0 {
		pageSize = 100
	}
	var out []TemplateInfo
	after := ""
	for page := 0; ; page++ {
		if page == maxTemplatePages {
			return nil, &TransportError{Op: "templates", Err: fmt.Errorf("%w: more than %d pages; the paging cursor does not advance", errBadResponse, maxTemplatePages)}
		}
		q := url.Values{}
		q.Set("fields", templateFields)
		q.Set("limit", strconv.Itoa(pageSize))
		if after != "" {
			q.Set("after", after)
		}
		raw, err := c.get(ctx, "templates", c.base+"/"+url.PathEscape(wabaID)+"/message_templates?"+q.Encode())
		if err != nil {
			return nil, err
		}
		var w struct {
			Data   []TemplateInfo `json:"data"`
			Paging *struct {
				Cursors struct {
					After string `json:"after"`
				} `json:"cursors"`
				Next string `json:"next"`
			} `json:"paging"`
		}
		if err := json.Unmarshal(raw, &w); err != nil || w.Data == nil {
			return nil, &TransportError{Op: "templates", Err: fmt.Errorf("%w: %s", errBadResponse, snippet(raw))}
		}
		out = append(out, w.Data...)
		// Graph leaves "next" out on the last page; the cursor alone is
		// not enough, it is there on every page.
		if w.Paging == nil || w.Paging.Next == "" || w.Paging.Cursors.After == "" || len(w.Data) == 0 {
			return out, nil
		}
		if w.Paging.Cursors.After == after {
			return nil, &TransportError{Op: "templates", Err: fmt.Errorf("%w: the paging cursor did not advance", errBadResponse)}
		}
		after = w.Paging.Cursors.After
	}
}

// get sends a GET and returns a 2xx response's body, or an *Error or a
// *TransportError.
func (c *Client) get(ctx context.Context, op, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &ValidationError{c.scrub(err.Error())}
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &TransportError{Op: op, Err: c.scrubErr(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16*maxResponse))
	if resp.StatusCode/100 != 2 {
		return nil, c.apiError(resp, raw)
	}
	if err != nil {
		return nil, &TransportError{Op: op, Err: c.scrubErr(err)}
	}
	return raw, nil
}
