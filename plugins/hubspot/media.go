package hubspot

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
)

const (
	pathFiles = "/files/v3/files"
	// scopeFiles is the private-app scope the Files API needs.
	scopeFiles = "files"
	// kvFile + "<event id>:<media id>" is the HubSpot file uploaded for an
	// event's media, so that a redelivery attaches it without uploading
	// it again.
	kvFile = "file:"
	// defaultFilesFolder is where uploaded files go in HubSpot's file
	// manager (folderPath; HubSpot creates it on the first upload).
	defaultFilesFolder = "/WhatsApp"
	// uploadRate is the slowest upload the timeout allows for: each
	// full uploadRate bytes of a file add a second to config.timeout.
	uploadRate = 512 << 10
)

var opUpload = op{what: "upload a WhatsApp file to the file manager", scope: scopeFiles}

// kvComm + "<event id>" is the communication logged for an event whose
// file went on a note beside it, so that a retry after the note failed
// does not log the message twice.
const kvComm = "comm:"

// attachmentRefused reports whether HubSpot refused a communication for
// its hs_attachment_ids, a property HubSpot documents for notes, emails,
// calls, meetings and tasks but not for communications.
func attachmentRefused(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.status == http.StatusBadRequest && strings.Contains(ae.message, "hs_attachment_ids")
}

// logWithNote logs the message as a communication that says where its
// file is, and the file on a note at the same time on the contact's
// timeline. It returns the communication's id.
func (c *connector) logWithNote(ctx context.Context, s *settings, k kind, ev *sdk.Event, contactID string, att attachment) (string, error) {
	what := mediafile.Noun(ev.Message)
	kv := s.host.KV()
	key := kvComm + ev.ID
	commID := ""
	if v, found, err := kv.Get(ctx, key); err != nil {
		return "", fmt.Errorf("hub KV: reading %s: %w", key, err)
	} else if found {
		commID = string(v)
	}
	if commID == "" {
		id, err := c.logCommunication(ctx, s, k, ev, contactID, att, "the "+what+" is attached to the note beside this message")
		if err != nil {
			return "", err
		}
		commID = id
		if err := kv.Put(ctx, key, []byte(id)); err != nil {
			c.log.Warn("hubspot: communication logged but not recorded; a retry would log it again", "event_id", ev.ID, "communication_id", id, "err", err)
		}
	}
	_, err := c.create(ctx, s, opNote, pathNotes, createRequest{
		Properties: map[string]string{
			"hs_note_body":      truncate(fileNoteBody(k, ev, what)),
			"hs_timestamp":      c.eventTime(ev),
			"hs_attachment_ids": att.fileID,
		},
		Associations: toContact(contactID, assocNoteToContact),
	})
	if err != nil {
		return "", err
	}
	return commID, nil
}

// fileNoteBody is the text of the note that carries a message's file.
func fileNoteBody(k kind, ev *sdk.Event, what string) string {
	from := "from " + customerName(ev.Contact)
	if k == kindOutbound {
		from = "sent to " + customerName(ev.Contact)
	}
	b := "WhatsApp " + what + " " + from
	if m := ev.Message.Media; m.Filename != "" {
		b += ": " + m.Filename
	}
	if caption := strings.TrimSpace(ev.Message.Media.Caption); caption != "" {
		b += "\n" + caption
	}
	return b
}

// fileObject is the Files API's answer to an upload (the fields used).
type fileObject struct {
	ID   flexString `json:"id"`
	Name string     `json:"name"`
	Size int64      `json:"size"`
}

// attachment is what became of an event's media: a HubSpot file to
// attach, or a note saying why there is none.
type attachment struct {
	fileID string
	note   string
}

// attach uploads the file of a message's media to HubSpot's file manager
// and returns its id, once per event and media id. A file the hub cannot
// provide, or HubSpot refuses, becomes a note in the logged message: the
// event is delivered without it, since a lost file must never hold up the
// conversation. The error is for what may work on a retry (HubSpot's
// limits, 5xx, the hub's KV) or needs the user (a token without the
// files scope).
func (c *connector) attach(ctx context.Context, s *settings, k kind, ev *sdk.Event) (attachment, error) {
	m := ev.Message
	if (k != kindInbound && k != kindOutbound) || m == nil || m.Media == nil || m.Media.ID == "" {
		return attachment{}, nil
	}
	what := mediafile.Noun(m)
	if m.Media.State == sdk.MediaUnavailable {
		return attachment{note: mediafile.Unavailable(what, m.Media.Reason)}, nil
	}
	if !s.attachMedia {
		return attachment{}, nil
	}
	key := kvFile + ev.ID + ":" + m.Media.ID
	kv := s.host.KV()
	if id, found, err := kv.Get(ctx, key); err != nil {
		return attachment{}, fmt.Errorf("hub KV: reading %s: %w", key, err)
	} else if found && len(id) > 0 {
		return attachment{fileID: string(id)}, nil
	}
	info, rc, err := s.host.OpenMedia(ctx, m.Media.ID)
	if errors.Is(err, sdk.ErrMediaUnavailable) {
		return attachment{note: mediafile.Unavailable(what, mediafile.Reason(err))}, nil
	}
	if err != nil {
		return attachment{}, fmt.Errorf("reading the %s from the hub: %w", what, err)
	}
	defer rc.Close()
	f, err := c.upload(ctx, s, info, mediafile.Name(ev, info), rc)
	var ae *apiError
	if errors.As(err, &ae) && refusedFile(ae.status) {
		c.log.Warn("hubspot: the file manager refused a WhatsApp file; logging the message without it", "event_id", ev.ID, "media_id", m.Media.ID, "err", err)
		return attachment{note: fmt.Sprintf("the %s could not be attached: HubSpot refused the file (%s)", what, ae.message)}, nil
	}
	if err != nil {
		return attachment{}, err
	}
	id := string(f.ID)
	if id == "" {
		return attachment{}, errors.New("HubSpot stored the file but its answer has no id")
	}
	if err := kv.Put(ctx, key, []byte(id)); err != nil {
		// A redelivery would upload the file once more; attaching it now
		// is still right.
		c.log.Warn("hubspot: file uploaded but not recorded; a redelivery would upload it again", "event_id", ev.ID, "file_id", id, "err", err)
	}
	return attachment{fileID: id}, nil
}

// refusedFile reports whether an upload's status means HubSpot will not
// take this file as it is (too large, a type it refuses, invalid), as
// opposed to the token, the limits or an outage.
func refusedFile(status int) bool {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// upload streams one file into POST /files/v3/files as multipart form
// data: the small fields first, then the file, never held in memory.
func (c *connector) upload(ctx context.Context, s *settings, info sdk.MediaInfo, name string, r io.Reader) (*fileObject, error) {
	if err := c.pace(ctx, s, opUpload); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	// Each pipe write waits for the transport to take it: gathered into
	// larger ones.
	bw := bufio.NewWriterSize(pw, 64<<10)
	mw := multipart.NewWriter(bw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := writeUpload(mw, s.filesFolder, name, info.MimeType, r)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	// Closing pr ends the writer if the request failed half-way; waiting
	// for it means r is no longer read once upload returns.
	defer func() { pr.Close(); <-done }()
	timeout := s.timeout + time.Duration(info.Size/uploadRate)*time.Second
	var f fileObject
	if err := c.send(ctx, s, opUpload, http.MethodPost, pathFiles, pr, mw.FormDataContentType(), timeout, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

func writeUpload(mw *multipart.Writer, folder, name, mimeType string, r io.Reader) error {
	options, _ := json.Marshal(map[string]string{"access": "PRIVATE"})
	for _, f := range [][2]string{{"folderPath", folder}, {"fileName", name}, {"options", string(options)}} {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			return err
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", mime.FormatMediaType("form-data", map[string]string{"name": "file", "filename": name}))
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	h.Set("Content-Type", mimeType)
	part, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return fmt.Errorf("reading the file from the hub: %w", err)
	}
	return mw.Close()
}
