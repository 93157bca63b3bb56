package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// MediaURL is Graph's answer to GET /{media-id}: where the file can be
// downloaded (for about five minutes, with the access token) and what it
// is.
type MediaURL struct {
	ID       string
	URL      string
	MimeType string
	// SHA256 is the digest as Graph gives it (hex, though base64 has been
	// seen); compare with DigestEqual.
	SHA256 string
	// Size is file_size; -1 when Graph did not say.
	Size int64
}

type wireMediaURL struct {
	ID       string          `json:"id"`
	URL      string          `json:"url"`
	MimeType string          `json:"mime_type"`
	SHA256   string          `json:"sha256"`
	FileSize json.RawMessage `json:"file_size"` // a number, or a string of one
}

// ResolveMedia asks Graph where a media id's file is. A media id Meta no
// longer keeps answers *Error with Code 100 (IsMediaGone).
func (c *Client) ResolveMedia(ctx context.Context, mediaID string) (MediaURL, error) {
	if mediaID == "" {
		return MediaURL{}, &ValidationError{"no media id"}
	}
	u := c.base + "/" + url.PathEscape(mediaID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return MediaURL{}, &ValidationError{c.scrub(err.Error())}
	}
	req.Header.Set("Accept", "application/json")
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return MediaURL{}, &TransportError{Op: "media", Err: c.scrubErr(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode/100 != 2 {
		return MediaURL{}, c.apiError(resp, raw)
	}
	if err != nil {
		return MediaURL{}, &TransportError{Op: "media", Err: c.scrubErr(err)}
	}
	var w wireMediaURL
	if err := json.Unmarshal(raw, &w); err != nil || w.URL == "" {
		return MediaURL{}, &TransportError{Op: "media", Err: fmt.Errorf("%w: %s", errBadResponse, c.scrub(snippet(raw)))}
	}
	m := MediaURL{ID: w.ID, URL: w.URL, MimeType: w.MimeType, SHA256: w.SHA256, Size: -1}
	if s := strings.Trim(string(w.FileSize), `"`); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			m.Size = n
		}
	}
	return m, nil
}

// DownloadMedia starts the download of a URL ResolveMedia returned, with
// the access token (Meta's media URLs refuse requests without it). The
// caller reads and closes the body. An expired URL answers *Error with
// HTTPStatus 404 or 403 (IsURLExpired): resolve the media id again.
//
// The client's overall timeout does not apply: a large file may take
// longer than any one request should; ctx bounds it.
func (c *Client) DownloadMedia(ctx context.Context, mediaURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mediaURL, nil)
	if err != nil {
		return nil, &ValidationError{c.scrub(err.Error())}
	}
	// The token goes over TLS, or in the clear only to the API's own host
	// (a local fake): never to a host a response named over plain HTTP.
	if base, err := url.Parse(c.base); req.URL.Scheme != "https" && (err != nil || req.URL.Host != base.Host) {
		return nil, &ValidationError{"refusing to send the access token to " + req.URL.Scheme + "://" + req.URL.Host + ": a media URL must be https (or on the API's own host)"}
	}
	c.authorize(req)
	// Without the client's Timeout, but with its transport.
	hc := &http.Client{Transport: c.http.Transport, CheckRedirect: c.http.CheckRedirect, Jar: c.http.Jar}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, &TransportError{Op: "media download", Err: c.scrubErr(err)}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		return nil, c.apiError(resp, raw)
	}
	return resp, nil
}

func (c *Client) authorize(req *http.Request) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
}

// IsMediaGone reports whether Graph answered that a media id does not
// exist (any more): Meta keeps inbound media for 30 days, and a file
// deleted by the sender is gone at once. Retrying cannot help.
func IsMediaGone(err error) bool {
	e, ok := err.(*Error)
	if !ok {
		return false
	}
	if e.envelope {
		return e.Code == 100 || e.Code == 131052 || e.HTTPStatus == http.StatusNotFound
	}
	return e.HTTPStatus == http.StatusNotFound || e.HTTPStatus == http.StatusGone
}

// IsURLExpired reports whether a download was refused the way Meta
// refuses an expired (or foreign) media URL: a 4xx other than throttling.
func IsURLExpired(err error) bool {
	e, ok := err.(*Error)
	if !ok {
		return false
	}
	return e.HTTPStatus == http.StatusNotFound || e.HTTPStatus == http.StatusForbidden ||
		e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusGone
}
