package bitrix24test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Files on timeline comments, as crm.timeline.comment.add takes them:
// fields.FILES is a list of [name, base64 content] pairs (a field of type
// attached_diskfile; the portal stores each file on its Drive and shows
// it on the comment). The content must be valid standard base64, the
// name non-empty; otherwise the call fails with INVALID_ARG_VALUE [U: the
// exact wording]. A request body larger than the portal's limit
// (SetMaxRequest) is refused by its web server with 413 and an HTML page,
// as nginx does.

// DefaultMaxRequest is the largest request body the fake takes unless
// SetMaxRequest says otherwise [U: a cloud portal's limit is not
// documented; files are limited by the plan's Drive quota].
const DefaultMaxRequest = 256 << 20

// CommentFile is a file attached to a timeline comment, its bytes
// decoded, so that a test can compare them with what the customer sent.
type CommentFile struct {
	// DriveID is the id of the file on the portal's Drive.
	DriveID int    `json:"drive_id"`
	Name    string `json:"name"`
	Size    int    `json:"size"`
	SHA256  string `json:"sha256"`
	Data    []byte `json:"-"`
}

// SetMaxRequest sets the largest request body the portal takes.
func (s *Server) SetMaxRequest(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxRequest = n
}

func (s *Server) requestLimit() int64 {
	if s.maxRequest > 0 {
		return s.maxRequest
	}
	return DefaultMaxRequest
}

// errBodyTooLarge is a request body above the limit.
var errBodyTooLarge = errors.New("request entity too large")

// readBody reads a request body up to the portal's limit.
func (s *Server) readBody(r io.Reader) ([]byte, error) {
	limit := s.requestLimit()
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, errBodyTooLarge
	}
	return body, nil
}

// commentFiles decodes fields.FILES: from JSON a list of lists, from a
// query string an array with numeric keys.
func (s *Server) commentFiles(f *object) ([]CommentFile, *apiError) {
	v, ok := f.get("FILES")
	if !ok || v == nil {
		return nil, nil
	}
	invalid := func(msg string) *apiError {
		return methodError("INVALID_ARG_VALUE", "Invalid value of parameter: FILES. "+msg)
	}
	entries, ok := pairs(v)
	if !ok {
		return nil, invalid("It must be a list of [name, content] pairs.")
	}
	var out []CommentFile
	for i, e := range entries {
		pair, ok := pairs(e)
		if !ok || len(pair) < 2 {
			return nil, invalid(fmt.Sprintf("File %d is not a [name, content] pair.", i))
		}
		name, content := strings.TrimSpace(str(pair[0])), str(pair[1])
		if name == "" {
			return nil, invalid(fmt.Sprintf("File %d has no name.", i))
		}
		data, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			return nil, invalid(fmt.Sprintf("The content of %s is not base64: %v.", name, err))
		}
		sum := sha256.Sum256(data)
		out = append(out, CommentFile{DriveID: s.newID(), Name: name, Size: len(data), SHA256: hex.EncodeToString(sum[:]), Data: data})
	}
	return out, nil
}

// pairs reads a JSON array, or a PHP array with keys 0..n-1.
func pairs(v any) ([]any, bool) {
	switch t := v.(type) {
	case []any:
		return t, true
	case *object:
		for _, k := range t.keys {
			if _, err := strconv.Atoi(k); err != nil {
				return nil, false
			}
		}
		return list(t), true
	}
	return nil, false
}

// Files returns every file attached to a comment, oldest first.
func (s *Server) Files() []CommentFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CommentFile
	for _, c := range s.comments {
		out = append(out, c.Files...)
	}
	return out
}
