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

// replyPart is one WhatsApp message of an agent's reply.
type replyPart struct {
	key  string // its idempotency key and reply:<key> record
	text string
	att  *fdAttachment
}

func (p replyPart) what() string {
	if p.att != nil {
		return "the attachment " + p.att.Name
	}
	return "the text"
}

type refusedPart struct {
	what string
	err  *sdk.RefusedError
}

// fileRefusal tells a refusal of one file from one of the customer (the
// window, consent), which every later part would meet too.
func fileRefusal(code string) bool { return strings.HasPrefix(code, "media_") }

// sendReply sends an agent's reply part by part: the text, then each
// attachment. Refused parts are told in one private note; a failure worth
// retrying answers 503, and the parts already done are not done again.
func (c *connector) sendReply(ctx context.Context, s *settings, st *stored, ticketID int64, key, text string, atts []fdAttachment) *sdk.HookResponse {
	// The work goes on if Freshdesk stops waiting for the answer (a large
	// file takes a while): its retry finds the parts done, or, for one
	// still in flight, the hub's idempotency key sends it once.
	ctx = context.WithoutCancel(ctx)
	kv := s.host.KV()
	log := c.log.With("ticket_id", ticketID, "reply", key)
	var parts []replyPart
	if text != "" {
		parts = append(parts, replyPart{key: key, text: text})
	}
	for i := range atts {
		if atts[i].AttachmentURL == "" {
			continue
		}
		parts = append(parts, replyPart{key: key + "/att:" + strconv.FormatInt(atts[i].ID, 10), att: &atts[i]})
	}
	if len(parts) == 0 {
		return ignored("an empty reply")
	}
	var (
		refused []refusedPart
		policy  *sdk.RefusedError
		sent    []string
	)
	put := func(k string, v replyState) error {
		raw, _ := json.Marshal(v)
		return kv.Put(ctx, replyKey(k), raw)
	}
	for _, p := range parts {
		var rec replyState
		// The text's record is the reply's own: it says "sent" only once
		// every part is; the text itself is recorded as "text-sent".
		recKey := p.key
		if p.att == nil {
			recKey = p.key + "/text"
		}
		if raw, found, err := kv.Get(ctx, replyKey(recKey)); err != nil {
			return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry")
		} else if found {
			_ = json.Unmarshal(raw, &rec)
		}
		switch rec.State {
		case "sent":
			sent = append(sent, rec.ID)
			continue
		case "refused":
			r := &sdk.RefusedError{Code: rec.Code, Message: rec.Message}
			refused = append(refused, refusedPart{p.what(), r})
			if !fileRefusal(r.Code) {
				policy = r
			}
			continue
		}
		refuse := func(r *sdk.RefusedError) *sdk.HookResponse {
			if err := put(recKey, replyState{State: "refused", Code: r.Code, Message: r.Message}); err != nil {
				return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry")
			}
			refused = append(refused, refusedPart{p.what(), r})
			if !fileRefusal(r.Code) {
				policy = r
			}
			return nil
		}
		if policy != nil {
			if resp := refuse(policy); resp != nil {
				return resp
			}
			continue
		}
		msg := sdk.OutboundMessage{To: st.To, PhoneNumberID: st.PhoneNumberID, IdempotencyKey: p.key}
		if p.att == nil {
			msg.Text = p.text
		} else {
			if rec.Media == "" {
				info, err := c.storeAttachment(ctx, s, *p.att)
				var r *sdk.RefusedError
				switch {
				case errors.As(err, &r):
					if resp := refuse(r); resp != nil {
						return resp
					}
					continue
				case err != nil:
					log.Warn("hook: an agent's attachment could not be stored in the hub", "file", p.att.Name, "err", err)
					return retryLater(fmt.Errorf("could not store the attachment %s: %w", p.att.Name, err))
				}
				rec = replyState{State: "stored", Media: info.ID}
				if err := put(recKey, rec); err != nil {
					return reply(http.StatusServiceUnavailable, "the hub's state is unavailable; retry")
				}
			}
			msg.Media = &sdk.OutboundMedia{ID: rec.Media, Filename: p.att.Name}
		}
		res, err := s.host.SendMessage(ctx, msg)
		var r *sdk.RefusedError
		switch {
		case errors.As(err, &r):
			log.Info("hook: the hub refused part of the agent's reply", "part", p.key, "code", r.Code)
			if resp := refuse(r); resp != nil {
				return resp
			}
			continue
		case err != nil:
			log.Warn("hook: SendMessage failed", "part", p.key, "err", err)
			return retryLater(errors.New("the hub could not queue the message"))
		}
		if err := put(recKey, replyState{State: "sent", ID: res.ID, Media: rec.Media}); err != nil {
			log.Warn("hook: part of a reply sent but not recorded", "part", p.key, "err", err)
		}
		sent = append(sent, res.ID)
	}
	if len(refused) > 0 {
		if len(refused) == 1 && len(sent) == 0 && refused[0].what == "the text" {
			r := refused[0].err
			return c.noteRefusal(ctx, s, ticketID, key, replyState{State: "refused", Code: r.Code, Message: r.Message})
		}
		return c.noteParts(ctx, s, ticketID, key, refused, len(sent))
	}
	if raw, err := json.Marshal(replyState{State: "sent", ID: strings.Join(sent, ",")}); err == nil {
		if err := kv.Put(ctx, replyKey(key), raw); err != nil {
			// The hub's idempotency keys still guard a repeat.
			log.Warn("hook: reply sent but not recorded", "err", err)
		}
	}
	out := map[string]any{"ok": true, "id": sent[0], "state": "queued"}
	if len(sent) > 1 {
		out["ids"] = sent
	}
	return replyJSON(http.StatusOK, out)
}

// noteParts tells the agents, in a private note, which parts of their
// reply did not reach the customer, and why.
func (c *connector) noteParts(ctx context.Context, s *settings, ticketID int64, key string, refused []refusedPart, sent int) *sdk.HookResponse {
	var b strings.Builder
	if sent > 0 {
		b.WriteString("<p><strong>Only part of this reply was delivered on WhatsApp.</strong> Not sent:</p><ul>")
	} else {
		b.WriteString("<p><strong>This reply was not delivered on WhatsApp:</strong></p><ul>")
	}
	codes := map[string]bool{}
	for _, r := range refused {
		b.WriteString("<li>" + esc(r.what) + ": " + esc(strings.TrimSuffix(r.err.Message, ".")) + " (" + esc(r.err.Code) + ")</li>")
		codes[r.err.Code] = true
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
	first := refused[0].err
	if raw, err := json.Marshal(replyState{State: "noted", Code: first.Code, Message: first.Message}); err == nil {
		if err := s.host.KV().Put(ctx, replyKey(key), raw); err != nil {
			c.log.Warn("hook: refusal note not recorded; a repeated webhook would add it again", "err", err)
		}
	}
	list := make([]map[string]string, len(refused))
	for i, r := range refused {
		list[i] = map[string]string{"part": r.what, "code": r.err.Code, "message": r.err.Message}
	}
	return replyJSON(http.StatusOK, map[string]any{"ok": true, "delivered": sent > 0, "refused": list})
}

const mediaAdvice = "WhatsApp takes images (JPEG, PNG) up to 5 MB, audio and video up to 16 MB and documents up to 100 MB. " +
	"Send a smaller file, another format, or a link, in a new reply."
