package hubspottest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Files API (v3), as the connector uses it:
//
//   - POST /files/v3/files, multipart/form-data with the fields file
//     (required), fileName, folderId or folderPath (exactly one), options
//     (a JSON object whose access is required and one of HubSpot's access
//     levels; ttl optional) and charsetHunch; 201 with the file object
//     (id, name, extension, path, parentFolderId, size, type, access,
//     url, createdAt, updatedAt, archived, ...). A folderPath that does
//     not exist is created, as HubSpot does. 400 VALIDATION_ERROR names
//     what is wrong; a file above the limit (SetMaxFileSize) is refused
//     with 413 [U: HubSpot documents a limit per file type in its
//     Knowledge Base but not the status it answers past it];
//   - GET /files/v3/files/{fileId}: the file object (404 when unknown).
//
// The scope is "files". Engagements take uploaded files in
// hs_attachment_ids (semicolon-separated ids); an id that is no file is
// refused with 400 [U: the exact wording].
const (
	PathFiles  = "/files/v3/files"
	ScopeFiles = "files"
)

// DefaultMaxFileSize is the fake's default upload limit [U]: HubSpot's
// file manager takes files up to a few hundred MB depending on type.
const DefaultMaxFileSize = 300 << 20

// accessLevels are the values options.access takes.
var accessLevels = []string{"PUBLIC_INDEXABLE", "PUBLIC_NOT_INDEXABLE", "HIDDEN_INDEXABLE", "HIDDEN_NOT_INDEXABLE",
	"HIDDEN_PRIVATE", "PRIVATE", "HIDDEN_SENSITIVE", "SENSITIVE"}

// File is an uploaded file as the fake keeps it, bytes included, so
// that a test can compare what arrived with what the customer sent.
type File struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Extension      string `json:"extension"`
	Path           string `json:"path"`
	ParentFolderID string `json:"parent_folder_id"`
	Access         string `json:"access"`
	Size           int64  `json:"size"`
	Type           string `json:"type"`
	// ContentType is the file part's Content-Type as the client sent it.
	ContentType string    `json:"content_type"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
	Data        []byte    `json:"-"`
}

// fileStore holds the file manager: files and folders by path.
type fileStore struct {
	mu sync.Mutex
	// noCommAttachments makes communications refuse hs_attachment_ids
	// as a property that does not exist.
	noCommAttachments bool
	files             []*File
	byID              map[string]*File
	folders           map[string]string // path → id
	nextID            int64
	max               int64 // 0: DefaultMaxFileSize
}

// WithoutCommunicationAttachments makes the fake refuse hs_attachment_ids
// on communications (400 PROPERTY_DOESNT_EXIST) while notes take it [U:
// HubSpot documents the property for notes, emails, calls, meetings and
// tasks, not for communications]: a client must still get the file onto
// the timeline.
func WithoutCommunicationAttachments() Option {
	return func(s *Server) { s.files.noCommAttachments = true }
}

func (fs *fileStore) communicationProps() map[string]bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !fs.noCommAttachments {
		return communicationProps
	}
	out := map[string]bool{}
	for k, v := range communicationProps {
		if k != "hs_attachment_ids" {
			out[k] = v
		}
	}
	return out
}

// SetMaxFileSize sets the largest file an upload may carry.
func (s *Server) SetMaxFileSize(n int64) {
	s.files.mu.Lock()
	defer s.files.mu.Unlock()
	s.files.max = n
}

// Files returns the uploaded files, oldest first.
func (s *Server) Files() []File {
	s.files.mu.Lock()
	defer s.files.mu.Unlock()
	out := make([]File, len(s.files.files))
	for i, f := range s.files.files {
		out[i] = *f
	}
	return out
}

// File returns one uploaded file.
func (s *Server) File(id string) (File, bool) {
	s.files.mu.Lock()
	defer s.files.mu.Unlock()
	f, ok := s.files.byID[id]
	if !ok {
		return File{}, false
	}
	return *f, true
}

func (fs *fileStore) has(id string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.byID[id]
	return ok
}

// checkAttachments validates hs_attachment_ids of an engagement.
func (s *Server) checkAttachments(p map[string]string) []map[string]any {
	v, ok := p["hs_attachment_ids"]
	if !ok || v == "" {
		return nil
	}
	for _, id := range strings.Split(v, ";") {
		if id = strings.TrimSpace(id); !s.files.has(id) {
			return []map[string]any{{"isValid": false, "message": fmt.Sprintf("%q is not the id of a file in the file manager", id), "error": "INVALID_OPTION", "name": "hs_attachment_ids"}}
		}
	}
	return nil
}

// errTooLarge is a file part larger than the limit.
var errTooLarge = errors.New("too large")

// uploadFile reads the multipart form as a stream: the file part is
// hashed and kept without holding the whole request twice.
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request, _ []byte, _ string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	mr, err := r.MultipartReader()
	if err != nil {
		validationError(w, corr, "Unable to parse multipart request: "+err.Error())
		return
	}
	s.files.mu.Lock()
	limit := s.files.max
	s.files.mu.Unlock()
	if limit <= 0 {
		limit = DefaultMaxFileSize
	}
	fields := map[string]string{}
	var (
		data        []byte
		gotFile     bool
		partName    string
		contentType string
	)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			validationError(w, corr, "Unable to parse multipart request: "+err.Error())
			return
		}
		name := part.FormName()
		if name == "file" {
			if gotFile {
				validationError(w, corr, "Only one file may be uploaded per request")
				return
			}
			gotFile, partName, contentType = true, part.FileName(), part.Header.Get("Content-Type")
			data, err = io.ReadAll(io.LimitReader(part, limit+1))
			if err == nil && int64(len(data)) > limit {
				err = errTooLarge
			}
			if errors.Is(err, errTooLarge) {
				writeJSON(w, http.StatusRequestEntityTooLarge, errorBody(corr, fmt.Sprintf("File exceeds the maximum upload size of %d bytes", limit), "VALIDATION_ERROR"))
				return
			}
			if err != nil {
				validationError(w, corr, "Unable to read the file: "+err.Error())
				return
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 64<<10))
		if err != nil {
			validationError(w, corr, "Unable to parse multipart request: "+err.Error())
			return
		}
		fields[name] = string(v)
	}
	if !gotFile {
		validationError(w, corr, "file is required")
		return
	}
	var opts struct {
		Access string `json:"access"`
		TTL    string `json:"ttl"`
	}
	switch raw, ok := fields["options"]; {
	case !ok:
		validationError(w, corr, "options is required: a JSON object with access, e.g. {\"access\":\"PRIVATE\"}")
		return
	case json.Unmarshal([]byte(raw), &opts) != nil:
		validationError(w, corr, "options is not valid JSON: "+raw)
		return
	case opts.Access == "":
		validationError(w, corr, "options.access is required")
		return
	case !contains(accessLevels, opts.Access):
		validationError(w, corr, fmt.Sprintf("options.access %s was not one of the allowed options: [%s]", opts.Access, strings.Join(accessLevels, ", ")))
		return
	}
	folderID, hasID := fields["folderId"]
	folderPath, hasPath := fields["folderPath"]
	switch {
	case hasID && hasPath:
		validationError(w, corr, "Only one of folderId or folderPath may be provided")
		return
	case !hasID && !hasPath:
		validationError(w, corr, "Either folderId or folderPath must be provided")
		return
	case hasPath && (!strings.HasPrefix(folderPath, "/") || path.Clean(folderPath) != folderPath):
		validationError(w, corr, fmt.Sprintf("folderPath %q is not a valid folder path", folderPath))
		return
	}
	name := fields["fileName"]
	if name == "" {
		name = partName
	}
	if name == "" {
		validationError(w, corr, "fileName is required when the file part has no filename")
		return
	}

	// s.mu before fs.mu, never inside it: Snapshot takes them in that
	// order.
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	fs := &s.files
	fs.mu.Lock()
	if fs.byID == nil {
		fs.byID, fs.folders, fs.nextID = map[string]*File{}, map[string]string{}, 190000000000
	}
	if hasID {
		found := ""
		for p, id := range fs.folders {
			if id == folderID {
				found = p
			}
		}
		if found == "" {
			fs.mu.Unlock()
			writeJSON(w, http.StatusNotFound, errorBody(corr, fmt.Sprintf("Folder %s does not exist", folderID), "OBJECT_NOT_FOUND"))
			return
		}
		folderPath = found
	} else if _, ok := fs.folders[folderPath]; !ok {
		fs.nextID++
		fs.folders[folderPath] = strconv.FormatInt(fs.nextID, 10)
	}
	fs.nextID++
	sum := sha256.Sum256(data)
	base, ext := strings.TrimSuffix(name, path.Ext(name)), strings.TrimPrefix(path.Ext(name), ".")
	f := &File{
		ID: strconv.FormatInt(fs.nextID, 10), Name: base, Extension: ext,
		Path: strings.TrimSuffix(folderPath, "/") + "/" + name, ParentFolderID: fs.folders[folderPath],
		Access: opts.Access, Size: int64(len(data)), Type: fileType(ext, contentType), ContentType: contentType,
		SHA256: hex.EncodeToString(sum[:]), CreatedAt: now, Data: data,
	}
	fs.files = append(fs.files, f)
	fs.byID[f.ID] = f
	fs.mu.Unlock()
	writeJSON(w, http.StatusCreated, fileJSON(f))
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, _ []byte, id string) {
	corr := w.Header().Get("X-HubSpot-Correlation-Id")
	f, ok := s.File(id)
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody(corr, fmt.Sprintf("File %s does not exist", id), "OBJECT_NOT_FOUND"))
		return
	}
	writeJSON(w, http.StatusOK, fileJSON(&f))
}

// fileJSON is the file object HubSpot answers.
func fileJSON(f *File) map[string]any {
	at := formatTime(f.CreatedAt)
	return map[string]any{
		"id": f.ID, "name": f.Name, "extension": f.Extension, "path": f.Path, "parentFolderId": f.ParentFolderID,
		"size": f.Size, "type": f.Type, "access": f.Access, "archived": false, "isUsableInContent": false,
		"url":       "https://api-na1.hubapi.com/filemanager/api/v2/files/" + f.ID + "/signed-url-redirect",
		"createdAt": at, "updatedAt": at, "encoding": strings.ToLower(f.Extension), "sourceGroup": "CONTENT",
		"fileMd5": "",
	}
}

// fileType is HubSpot's category of a file.
func fileType(ext, contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch {
	case strings.HasPrefix(mt, "image/"):
		return "IMG"
	case strings.HasPrefix(mt, "audio/"):
		return "AUDIO"
	case strings.HasPrefix(mt, "video/"):
		return "MOVIE"
	}
	switch strings.ToLower(ext) {
	case "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv":
		return "DOCUMENT"
	}
	return "OTHER"
}

// filesRoute is the route of a Files API path, if it is one.
func filesRoute(method, p string) (*route, string) {
	switch {
	case p == PathFiles && method == http.MethodPost:
		return &route{scope: ScopeFiles, handle: (*Server).uploadFile}, ""
	case strings.HasPrefix(p, PathFiles+"/") && method == http.MethodGet && !strings.Contains(p[len(PathFiles)+1:], "/"):
		return &route{scope: ScopeFiles, handle: (*Server).getFile}, p[len(PathFiles)+1:]
	}
	return nil, ""
}

// fileSnapshot is what /sandbox shows of a file (no bytes).
func (s *Server) fileSnapshot() []File {
	files := s.Files()
	for i := range files {
		files[i].Data = nil
	}
	sort.SliceStable(files, func(i, j int) bool { return files[i].CreatedAt.Before(files[j].CreatedAt) })
	return files
}
