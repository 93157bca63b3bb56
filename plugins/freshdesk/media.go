package freshdesk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wahub/wahub/plugins/internal/agentreply"
	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdkhttp"
)

// Media both ways.
//
// A customer's file is attached to the ticket or note that carries the
// message: the request is multipart/form-data, written part by part into
// an io.Pipe as the file streams from the hub (Host.OpenMedia), never
// held whole. Freshdesk takes 20 MB per ticket or note: a larger file, one
// the hub could not get or one Freshdesk refuses is named in the ticket
// or note with the reason instead, and the event is delivered all the
// same.
//
// An agent's reply with attachments becomes one WhatsApp message per
// file, after the text: each attachment_url (a pre-signed link on
// Freshdesk's file store, which gets no API key) is downloaded, stored in
// the hub (Host.PutMedia) and sent. reply:<key>/att:<id> remembers each
// file's outcome, so a webhook delivered again neither stores nor sends a
// file twice; what the hub refuses is told to the agents in one private
// note.

// maxAttachmentBytes is the most Freshdesk takes per ticket or note.
const maxAttachmentBytes = 20 << 20

// transferTimeout bounds moving one file to or from Freshdesk;
// config.timeout is for API calls, far shorter.
const transferTimeout = 10 * time.Minute

// maxRedirects bounds an attachment_url's redirects.
const maxRedirects = 5

// inboundFile is a customer's file on its way into a ticket or note.
type inboundFile struct {
	host sdk.Host
	id   string
	info sdk.MediaInfo
	name string
	mime string
	r    io.ReadCloser // opened when the file was examined; nil once used
}

// open returns the file's bytes: the stream opened to examine it, then,
// for a second request, a new one.
func (f *inboundFile) open(ctx context.Context) (io.ReadCloser, error) {
	if r := f.r; r != nil {
		f.r = nil
		return r, nil
	}
	_, r, err := f.host.OpenMedia(ctx, f.id)
	return r, err
}

func (f *inboundFile) close() {
	if f != nil && f.r != nil {
		f.r.Close()
		f.r = nil
	}
}

// inboundMedia examines the event's file: what to attach, or the note
// (HTML) to write instead. An error is worth a retry.
func (c *connector) inboundMedia(ctx context.Context, s *settings, ev *sdk.Event) (*inboundFile, string, error) {
	m := ev.Message
	if m == nil || m.Media == nil || m.Media.ID == "" {
		return nil, "", nil
	}
	kind := mediafile.Noun(m)
	if m.Media.State == sdk.MediaUnavailable {
		return nil, unavailableNote(kind, m.Media.Reason), nil
	}
	info, r, err := s.host.OpenMedia(ctx, m.Media.ID)
	if errors.Is(err, sdk.ErrMediaUnavailable) {
		return nil, unavailableNote(kind, mediafile.Reason(err)), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the customer's %s from the hub: %w", kind, err)
	}
	if info.Size > maxAttachmentBytes {
		r.Close()
		return nil, tooLargeNote(kind, info.Size, m.Media.ID), nil
	}
	mt := info.MimeType
	if mt == "" {
		mt = m.Media.MimeType
	}
	if mt == "" {
		mt = "application/octet-stream"
	}
	return &inboundFile{host: s.host, id: m.Media.ID, info: info, name: mediafile.Name(ev, info), mime: mt, r: r}, "", nil
}

func unavailableNote(kind, reason string) string {
	return para(em(esc(capitalize(mediafile.Unavailable(kind, strings.TrimSuffix(reason, "."))) + ".")))
}

// capitalize starts a sentence.
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

func tooLargeNote(kind string, size int64, id string) string {
	return para(em(esc(fmt.Sprintf("The %s is %s, larger than the %s Freshdesk takes per ticket or note; an admin can download it from wahub: GET /api/v1/media/%s.",
		kind, mediafile.Size(size), mediafile.Size(maxAttachmentBytes), id))))
}

func refusedNote(kind string, err error, id string) string {
	msg := err.Error()
	if ae, ok := asAPIError(err); ok {
		if f := ae.field("attachments"); f != nil {
			msg = f.Message
		}
	}
	return para(em(esc(fmt.Sprintf("Freshdesk did not take the %s (%s); an admin can download it from wahub: GET /api/v1/media/%s.", kind, msg, id))))
}

// fileRefused reports whether Freshdesk refused a request for its file:
// then the message goes without it.
func fileRefused(err error) bool {
	ae, ok := asAPIError(err)
	return ok && (ae.status == http.StatusRequestEntityTooLarge || (ae.status == http.StatusBadRequest && ae.field("attachments") != nil))
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// callMultipart POSTs fields and the file as multipart/form-data, written
// into a pipe while the request reads it: the file is never held whole.
func (c *connector) callMultipart(ctx context.Context, s *settings, path string, fields map[string]any, file *inboundFile, out any) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeForm(ctx, mw, fields, file))
	}()
	err := c.send(ctx, s, http.MethodPost, path, nil, pr, mw.FormDataContentType(), formLength(mw.Boundary(), fields, file), transferTimeout, out)
	// Unblocks the writer when the request ended before reading it all.
	pr.CloseWithError(errors.New("the request ended"))
	<-done
	return err
}

// formLength is the length of the body writeForm writes, so that the
// request says it (Content-Length) instead of being chunked: the fields
// and the file's part header written once more to count them, the file's
// size, and the closing boundary. -1 when the file's size is unknown.
func formLength(boundary string, fields map[string]any, file *inboundFile) int64 {
	if file.info.Size <= 0 {
		return -1
	}
	var head bytes.Buffer
	mw := multipart.NewWriter(&head)
	if mw.SetBoundary(boundary) != nil || writeFields(mw, fields) != nil {
		return -1
	}
	if _, err := mw.CreatePart(fileHeader(file)); err != nil {
		return -1
	}
	return int64(head.Len()) + file.info.Size + int64(len("\r\n--"+boundary+"--\r\n"))
}

func fileHeader(file *inboundFile) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="attachments[]"; filename="`+quoteEscaper.Replace(file.name)+`"`)
	h.Set("Content-Type", file.mime)
	return h
}

// writeForm writes the form: each field a part ("name[]" repeated for a
// list), then the file as "attachments[]".
func writeForm(ctx context.Context, mw *multipart.Writer, fields map[string]any, file *inboundFile) error {
	if err := writeFields(mw, fields); err != nil {
		return err
	}
	r, err := file.open(ctx)
	if err != nil {
		return fmt.Errorf("read the customer's file from the hub: %w", err)
	}
	defer r.Close()
	part, err := mw.CreatePart(fileHeader(file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, r); err != nil {
		return fmt.Errorf("stream the customer's file: %w", err)
	}
	return mw.Close()
}

// writeFields writes the form's fields in key order.
func writeFields(mw *multipart.Writer, fields map[string]any) error {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var err error
		switch v := fields[k].(type) {
		case string:
			err = mw.WriteField(k, v)
		case bool:
			err = mw.WriteField(k, strconv.FormatBool(v))
		case int:
			err = mw.WriteField(k, strconv.Itoa(v))
		case int64:
			err = mw.WriteField(k, strconv.FormatInt(v, 10))
		case []string:
			for _, e := range v {
				if err = mw.WriteField(k+"[]", e); err != nil {
					break
				}
			}
		default:
			b, jerr := json.Marshal(v)
			if jerr != nil {
				return jerr
			}
			err = mw.WriteField(k, string(b))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// storeAttachment downloads an agent's attachment into the hub. A file
// that cannot be had, or that the hub refuses, is a *sdk.RefusedError for
// the agents' note; other errors are worth a retry.
func (c *connector) storeAttachment(ctx context.Context, s *settings, a fdAttachment) (sdk.MediaInfo, error) {
	u, err := url.Parse(a.AttachmentURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_unavailable", Message: "the file's attachment_url is not an http(s) URL"}
	}
	what := "GET " + sdkhttp.Redacted(u)
	rctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_unavailable", Message: "the file could not be downloaded from Freshdesk: " + err.Error()}
	}
	if sdkhttp.SameOrigin(u, s.base) {
		req.SetBasicAuth(s.apiKey, "X")
	}
	req.Header.Set("User-Agent", "wahub-freshdesk/"+Version)
	resp, err := s.files.Do(req)
	if err != nil {
		return sdk.MediaInfo{}, sdkhttp.DoError(ctx, what, transferTimeout, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_ = sdkhttp.Snippet(resp.Body, 512)
		if sdkhttp.Transient(resp.StatusCode) {
			return sdk.MediaInfo{}, fmt.Errorf("%s: Freshdesk's file store answered %s", what, resp.Status)
		}
		msg := "the file could not be downloaded from Freshdesk: its file store answered " + resp.Status
		if resp.StatusCode == http.StatusForbidden {
			msg += " (the download link expired or is not valid)"
		}
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_unavailable", Message: msg}
	}
	mt := a.ContentType
	if mt == "" || mt == "application/octet-stream" {
		if h := resp.Header.Get("Content-Type"); h != "" {
			mt = h
		}
	}
	size := a.Size
	if size <= 0 && resp.ContentLength > 0 {
		size = resp.ContentLength
	}
	info, err := s.host.PutMedia(ctx, sdk.MediaUpload{MimeType: mt, Filename: a.Name, Size: size}, resp.Body)
	if err != nil {
		return sdk.MediaInfo{}, fmt.Errorf("store %s in the hub: %w", a.Name, err)
	}
	return info, nil
}

// sendReply sends an agent's reply part by part (agentreply): the text,
// then each attachment. Refused parts are told in one private note; a
// failure worth retrying answers 503, and the parts already done are not
// done again.
func (c *connector) sendReply(ctx context.Context, s *settings, st *stored, ticketID int64, key, text string, atts []fdAttachment) *sdk.HookResponse {
	// The work goes on if Freshdesk stops waiting for the answer (a large
	// file takes a while): its retry finds the parts done, or, for one
	// still in flight, the hub's idempotency key sends it once.
	ctx = context.WithoutCancel(ctx)
	var parts []agentreply.Part
	if text != "" {
		// The reply's own record says "sent" only once every part is;
		// the text's is its own.
		parts = append(parts, agentreply.Part{Record: key + "/text", IdempotencyKey: key, Text: text})
	}
	for i := range atts {
		a := atts[i]
		if a.AttachmentURL == "" {
			continue
		}
		k := key + "/att:" + strconv.FormatInt(a.ID, 10)
		parts = append(parts, agentreply.Part{Record: k, IdempotencyKey: k, File: &agentreply.File{
			Name:  a.Name,
			Store: func(ctx context.Context) (sdk.MediaInfo, error) { return c.storeAttachment(ctx, s, a) },
		}})
	}
	if len(parts) == 0 {
		return ignored("an empty reply")
	}
	log := c.log.With("ticket_id", ticketID, "reply", key)
	res, err := agentreply.Send(ctx, s.host, sdk.OutboundMessage{To: st.To, PhoneNumberID: st.PhoneNumberID}, parts, partRecords{s.host.KV()}, log)
	switch {
	case errors.Is(err, agentreply.ErrState):
		log.Warn("hook: the hub's state is unavailable", "err", err)
		return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry")
	case err != nil:
		return retryLater(err)
	}
	if len(res.Refused) > 0 {
		if len(res.Refused) == 1 && len(res.Sent) == 0 && res.Refused[0].What == "the text" {
			r := res.Refused[0].Err
			return c.noteRefusal(ctx, s, ticketID, key, replyState{State: "refused", Code: r.Code, Message: r.Message})
		}
		return c.noteParts(ctx, s, ticketID, key, res.Refused, len(res.Sent))
	}
	if raw, err := json.Marshal(replyState{State: "sent", ID: strings.Join(res.Sent, ",")}); err == nil {
		if err := s.host.KV().Put(ctx, replyKey(key), raw); err != nil {
			// The hub's idempotency keys still guard a repeat.
			log.Warn("hook: reply sent but not recorded", "err", err)
		}
	}
	out := map[string]any{"ok": true, "id": res.Sent[0], "state": "queued"}
	if len(res.Sent) > 1 {
		out["ids"] = res.Sent
	}
	return replyJSON(http.StatusOK, out)
}

// partRecords keeps each part's record as reply:<part key>, in the
// reply's own encoding.
type partRecords struct{ kv sdk.KV }

func (p partRecords) Get(ctx context.Context, key string) (agentreply.Record, error) {
	raw, found, err := p.kv.Get(ctx, replyKey(key))
	if err != nil || !found {
		return agentreply.Record{}, err
	}
	var st replyState
	_ = json.Unmarshal(raw, &st) // an unreadable record is a part never tried
	return agentreply.Record{State: agentreply.State(st.State), Media: st.Media, Message: st.ID, Code: st.Code, Reason: st.Message}, nil
}

func (p partRecords) Put(ctx context.Context, key string, r agentreply.Record) error {
	raw, _ := json.Marshal(replyState{State: string(r.State), ID: r.Message, Media: r.Media, Code: r.Code, Message: r.Reason})
	return p.kv.Put(ctx, replyKey(key), raw)
}

// noteParts tells the agents, in a private note, which parts of their
// reply did not reach the customer, and why.
func (c *connector) noteParts(ctx context.Context, s *settings, ticketID int64, key string, refused []agentreply.Refusal, sent int) *sdk.HookResponse {
	var b strings.Builder
	if sent > 0 {
		b.WriteString("<p><strong>Only part of this reply was delivered on WhatsApp.</strong> Not sent:</p><ul>")
	} else {
		b.WriteString("<p><strong>This reply was not delivered on WhatsApp:</strong></p><ul>")
	}
	codes := map[string]bool{}
	for _, r := range refused {
		b.WriteString("<li>" + esc(r.What) + ": " + esc(strings.TrimSuffix(r.Err.Message, ".")) + " (" + esc(r.Err.Code) + ")</li>")
		codes[r.Err.Code] = true
	}
	b.WriteString("</ul>")
	if id, ok := replyIDFromKey(key); ok {
		b.WriteString("<p>The reply: conversation " + strconv.FormatInt(id, 10) + " on this ticket.</p>")
	}
	switch {
	case codes["outside_window"]:
		b.WriteString("<p>WhatsApp lets a business write freely only within 24 hours of the customer's last message; until the customer writes again, only approved templates can be sent.</p>")
	case codes["media_too_large"] || codes["media_type"]:
		b.WriteString("<p>" + html.EscapeString(mediaAdvice) + "</p>")
	case codes["media_unavailable"]:
		b.WriteString("<p>Attach the file again in a new reply.</p>")
	}
	if _, err := c.addNote(ctx, s, ticketID, map[string]any{"body": b.String(), "private": true}, nil); err != nil && !isStatus(err, http.StatusNotFound) {
		c.log.Warn("hook: the refusal could not be noted on the ticket", "ticket_id", ticketID, "err", err)
		return retryLater(err)
	}
	first := refused[0].Err
	if raw, err := json.Marshal(replyState{State: "noted", Code: first.Code, Message: first.Message}); err == nil {
		if err := s.host.KV().Put(ctx, replyKey(key), raw); err != nil {
			c.log.Warn("hook: refusal note not recorded; a repeated webhook would add it again", "err", err)
		}
	}
	list := make([]map[string]string, len(refused))
	for i, r := range refused {
		list[i] = map[string]string{"part": r.What, "code": r.Err.Code, "message": r.Err.Message}
	}
	return replyJSON(http.StatusOK, map[string]any{"ok": true, "delivered": sent > 0, "refused": list})
}

const mediaAdvice = "WhatsApp takes images (JPEG, PNG) up to 5 MB, audio and video up to 16 MB and documents up to 100 MB. " +
	"Send a smaller file, another format, or a link, in a new reply."
