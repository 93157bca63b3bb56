package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
	"time"
)

// MediaFile is a file to upload for a media message.
type MediaFile struct {
	// MimeType is the file's type as WhatsApp names it ("image/jpeg",
	// "audio/ogg"), sent as the upload's "type".
	MimeType string
	// Filename is what the multipart part calls the file; Meta keeps it
	// for documents sent without a filename of their own.
	Filename string
	// Size is the file's length in bytes; Body must hold exactly that
	// many. 0 or less: unknown (the request is then sent chunked).
	Size int64
	Body io.Reader
}

// Upload streams a file to POST /{phone-number-id}/media (multipart:
// messaging_product, type, file) and returns the media id to send it with.
// The file is never held in memory: the multipart framing is written
// around Body as it is read, and with Size known the request carries an
// exact Content-Length (Graph and proxies in front of it need not accept
// chunked uploads of 100 MB). Uploads are not messages: one that fails or
// whose answer is lost can be made again, and the abandoned one expires
// at Meta after 30 days.
func (c *Client) Upload(ctx context.Context, phoneNumberID string, f MediaFile) (string, error) {
	if phoneNumberID == "" {
		return "", &ValidationError{"no phone number id"}
	}
	if f.MimeType == "" || f.Body == nil {
		return "", &ValidationError{"upload needs a MIME type and the file"}
	}
	name := f.Filename
	if name == "" {
		name = "file"
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if err := mw.WriteField("messaging_product", "whatsapp"); err != nil {
		return "", err
	}
	if err := mw.WriteField("type", f.MimeType); err != nil {
		return "", err
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename="%s"`, quoteEscaper.Replace(name)))
	h.Set("Content-Type", f.MimeType)
	if _, err := mw.CreatePart(h); err != nil {
		return "", err
	}
	prefix := bytes.Clone(head.Bytes())
	head.Reset()
	if err := mw.Close(); err != nil { // writes only the closing boundary
		return "", err
	}
	suffix := head.Bytes()
	body := io.MultiReader(bytes.NewReader(prefix), f.Body, bytes.NewReader(suffix))
	length := int64(-1)
	if f.Size > 0 {
		length = int64(len(prefix)) + f.Size + int64(len(suffix))
	}
	// However slow the link, a stalled upload must end: a minute plus
	// the file at 256 KiB/s (100 MB: under 8 minutes).
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(max(f.Size, 0)/(256<<10))*time.Second)
	defer cancel()
	resp, err := c.do(ctx, c.upload, "upload", phoneNumberID, "media", mw.FormDataContentType(), body, length)
	if err != nil {
		return "", err
	}
	var w struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(resp, &w); err != nil || w.ID == "" {
		return "", &TransportError{Op: "upload", Err: fmt.Errorf("%w: %s", errBadResponse, snippet(resp))}
	}
	return w.ID, nil
}

// quoteEscaper is mime/multipart's escaping of a quoted header value.
var quoteEscaper = strings.NewReplacer("\\", "\\\\", `"`, "\\\"", "\r", "", "\n", "")
