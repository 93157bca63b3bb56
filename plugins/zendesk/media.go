package zendesk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
// A customer's file is streamed from the hub (Host.OpenMedia) into
// POST /api/v2/uploads and attached to the message's comment with the
// upload's token; a file Zendesk cannot take (over 50 MB) or the hub could
// not get is named in the comment with the reason instead, and the event
// is delivered all the same. up:<event id> remembers the token, so that a
// redelivery attaches the same upload rather than uploading again (while
// the token lives, an hour).
//
// An agent's public reply with attachments becomes one WhatsApp message
// per attachment (after the text, if any): each content_url is
// downloaded with the API credentials, which go to the account's own
// host only (Zendesk redirects to a signed URL on its file host, which
// gets none), stored in the hub (Host.PutMedia) and sent. cmt:<comment
// id>:<part> remembers each part's outcome, so a webhook delivered again
// neither stores nor sends a file twice.

// maxUploadBytes is the largest file Zendesk takes as an attachment.
const maxUploadBytes = 50 << 20

// uploadReuse is how long an upload token is reused by a retry: Zendesk
// keeps an unattached upload for 60 minutes.
const uploadReuse = 50 * time.Minute

// transferTimeout bounds moving one file (up to 50 MB) to or from Zendesk;
// config.timeout is for API calls, far shorter.
const transferTimeout = 10 * time.Minute

// maxRedirects bounds a content_url's redirects (one, to the signed URL,
// in practice).
const maxRedirects = 5

// uploadRecord is up:<event id>: the upload of the event's file, or the
// note written instead of it.
type uploadRecord struct {
	Token     string `json:"token,omitempty"`
	ExpiresAt int64  `json:"expires_at,omitempty"` // Unix seconds: reuse Token until then
	Note      string `json:"note,omitempty"`
}

// partRecord is cmt:<comment id>:<part>: what became of one part of an
// agent's reply (its text, or one attachment).
type partRecord struct {
	// State is "stored" (the file is in the hub as Media), "sent" or
	// "refused".
	State   string `json:"state"`
	Media   string `json:"media_id,omitempty"`
	Message string `json:"message_id,omitempty"`
	Code    string `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

func uploadKey(eventID string) string { return "up:" + eventID }
func partKey(comment int64, part string) string {
	return commentKey(comment) + ":" + part
}

// mediaUpload uploads the event's file, once: it returns the upload's
// token, or the note the comment carries in place of a file it cannot
// have ("" when the file is attached). An error is worth a retry, or says
// what to fix.
func (c *connector) mediaUpload(ctx context.Context, s *settings, ev *sdk.Event) (token, note string, err error) {
	m := ev.Message
	if m == nil || m.Media == nil || m.Media.ID == "" {
		return "", "", nil
	}
	kv := s.host.KV()
	var rec uploadRecord
	if _, err := getJSON(ctx, kv, uploadKey(ev.ID), &rec); err != nil {
		return "", "", err
	}
	if rec.Note != "" {
		return "", rec.Note, nil
	}
	if rec.Token != "" && c.now().Unix() < rec.ExpiresAt {
		return rec.Token, "", nil
	}
	kind := mediafile.Noun(m)
	rec = uploadRecord{}
	if m.Media.State == sdk.MediaUnavailable {
		rec.Note = unavailableNote(kind, m.Media.Reason)
	} else {
		rec.Token, rec.Note, err = c.uploadMedia(ctx, s, ev, kind)
		if err != nil {
			return "", "", err
		}
		rec.ExpiresAt = c.now().Add(uploadReuse).Unix()
	}
	if err := putJSON(ctx, kv, uploadKey(ev.ID), rec); err != nil {
		return "", "", err
	}
	return rec.Token, rec.Note, nil
}

func unavailableNote(kind, reason string) string {
	return "(" + capitalize(mediafile.Unavailable(kind, strings.TrimSuffix(reason, "."))) + ".)"
}

// capitalize starts a sentence.
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// uploadMedia streams the message's file from the hub into Zendesk's
// uploads. A file the hub cannot have or Zendesk will not take is a note,
// not an error; an error is worth retrying (or says what to fix).
func (c *connector) uploadMedia(ctx context.Context, s *settings, ev *sdk.Event, kind string) (token, note string, err error) {
	m := ev.Message
	info, r, err := s.host.OpenMedia(ctx, m.Media.ID)
	if errors.Is(err, sdk.ErrMediaUnavailable) {
		return "", unavailableNote(kind, mediafile.Reason(err)), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read the customer's %s from the hub: %w", kind, err)
	}
	defer r.Close()
	if info.Size > maxUploadBytes {
		return "", tooLargeNote(kind, info), nil
	}
	mt := info.MimeType
	if mt == "" {
		mt = m.Media.MimeType
	}
	name := mediafile.Name(ev, info)
	token, err = s.uploadFile(ctx, name, mt, info.Size, r)
	var ae *apiError
	switch {
	case isStatus(err, http.StatusRequestEntityTooLarge):
		return "", tooLargeNote(kind, info), nil
	case errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusUnprocessableEntity):
		// The account does not take this file (Admin Center > Tickets >
		// allowed file types, or attachments turned off): the message
		// goes without it.
		why := strings.TrimPrefix(strings.TrimPrefix(ae.msg, "POST /api/v2/uploads: "), "Zendesk refused the data: ")
		return "", fmt.Sprintf("(Zendesk did not take the %s: %s; an admin can download it from wahub: GET /api/v1/media/%s.)", kind, why, info.ID), nil
	case err != nil:
		return "", "", err
	}
	return token, "", nil
}

func tooLargeNote(kind string, info sdk.MediaInfo) string {
	return fmt.Sprintf("(The %s is %s, larger than the %s Zendesk takes; an admin can download it from wahub: GET /api/v1/media/%s.)",
		kind, mediafile.Size(info.Size), mediafile.Size(maxUploadBytes), info.ID)
}

// uploadFile is POST /api/v2/uploads.json?filename=: the body is the file
// itself, streamed, and the answer's upload.token attaches it.
func (s *settings) uploadFile(ctx context.Context, name, mimeType string, size int64, r io.Reader) (string, error) {
	what := "POST /api/v2/uploads"
	rctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	target := s.base + "/api/v2/uploads.json?" + url.Values{"filename": {name}}.Encode()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, target, r)
	if err != nil {
		return "", &apiError{msg: fmt.Sprintf("%s: %v", what, err)}
	}
	if size > 0 {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", s.auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "wahub-zendesk/"+Version)
	if mimeType == "" {
		mimeType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", mimeType)
	resp, err := s.client.Do(req)
	if err != nil {
		return "", &apiError{Transient: true, msg: sdkhttp.DoError(ctx, what, transferTimeout, err).Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return "", s.classify(what, resp, sdkhttp.Snippet(resp.Body, errorBodyBytes))
	}
	var out struct {
		Upload struct {
			Token string `json:"token"`
		} `json:"upload"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || out.Upload.Token == "" {
		return "", &apiError{Status: resp.StatusCode, Transient: true, msg: fmt.Sprintf("%s: the answer carries no upload token: check config.api_url", what)}
	}
	return out.Upload.Token, nil
}

// errDownload is a file Zendesk will not give: deleted, or not found.
type errDownload struct{ msg string }

func (e *errDownload) Error() string { return e.msg }

// download opens an attachment's bytes.
func (s *settings) download(ctx context.Context, raw string) (*http.Response, context.CancelFunc, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, nil, &errDownload{msg: fmt.Sprintf("content_url %q is not an http(s) URL", raw)}
	}
	what := "GET " + sdkhttp.Redacted(u)
	rctx, cancel := context.WithTimeout(ctx, transferTimeout)
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, nil, &errDownload{msg: fmt.Sprintf("%s: %v", what, err)}
	}
	if sdkhttp.SameOrigin(u, s.base) {
		req.Header.Set("Authorization", s.auth)
	}
	req.Header.Set("User-Agent", "wahub-zendesk/"+Version)
	resp, err := s.files.Do(req)
	if err != nil {
		cancel()
		return nil, nil, &apiError{Transient: true, msg: sdkhttp.DoError(ctx, what, transferTimeout, err).Error()}
	}
	if resp.StatusCode != http.StatusOK {
		snippet := sdkhttp.Snippet(resp.Body, errorBodyBytes)
		resp.Body.Close()
		cancel()
		if sdkhttp.Transient(resp.StatusCode) {
			return nil, nil, &apiError{Status: resp.StatusCode, Transient: true, RetryAfter: sdk.ParseRetryAfter(resp.Header.Get("Retry-After"), s.now(), maxRetryAfter),
				msg: fmt.Sprintf("%s: Zendesk answered %s", what, resp.Status)}
		}
		_, text := describe(snippet)
		msg := fmt.Sprintf("Zendesk answered %s for the file", resp.Status)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += " (the API user may not read it, or its download link expired)"
		}
		if text != "" && resp.StatusCode != http.StatusForbidden {
			msg += ": " + text
		}
		return nil, nil, &errDownload{msg: msg}
	}
	return resp, cancel, nil
}

// storeAttachment downloads an agent's attachment into the hub. A file
// that cannot be had or that the hub refuses is a *sdk.RefusedError for
// the agent's note; other errors are worth a retry.
func (c *connector) storeAttachment(ctx context.Context, s *settings, a zAttachment) (sdk.MediaInfo, error) {
	resp, cancel, err := s.download(ctx, a.ContentURL)
	var de *errDownload
	if errors.As(err, &de) {
		return sdk.MediaInfo{}, &sdk.RefusedError{Code: "media_unavailable", Message: "the file could not be downloaded from Zendesk: " + de.msg}
	}
	if err != nil {
		return sdk.MediaInfo{}, err
	}
	defer cancel()
	defer resp.Body.Close()
	mt := a.ContentType
	if mt == "" || mt == "application/binary" {
		mt = resp.Header.Get("Content-Type")
	}
	size := a.Size
	if size <= 0 && resp.ContentLength > 0 {
		size = resp.ContentLength
	}
	info, err := s.host.PutMedia(ctx, sdk.MediaUpload{MimeType: mt, Filename: a.FileName, Size: size}, resp.Body)
	if err != nil {
		return sdk.MediaInfo{}, fmt.Errorf("store %s in the hub: %w", a.FileName, err)
	}
	return info, nil
}

// sendReply sends an agent's comment part by part (agentreply): the
// text, then each attachment. A part the hub refuses is told to the agent
// in one internal note; a failure worth retrying answers 503, and the
// parts already done are not done again.
func (c *connector) sendReply(ctx context.Context, s *settings, tr ticketRecord, ticketID int64, cm *zComment) *sdk.HookResponse {
	// Zendesk waits 12 seconds for a webhook's answer, less than a large
	// file may take: the work goes on when it stops waiting, and its
	// retry finds the parts done (or, for one still in flight, the hub's
	// idempotency key sends it once).
	ctx = context.WithoutCancel(ctx)
	comment := strconv.FormatInt(cm.ID, 10)
	var parts []agentreply.Part
	if t := strings.TrimSpace(cm.text()); t != "" {
		parts = append(parts, agentreply.Part{Record: partKey(cm.ID, "text"), IdempotencyKey: comment, Text: t})
	}
	for i := range cm.Attachments {
		a := cm.Attachments[i]
		if a.Deleted || a.ContentURL == "" {
			continue
		}
		k := "att:" + strconv.FormatInt(a.ID, 10)
		parts = append(parts, agentreply.Part{Record: partKey(cm.ID, k), IdempotencyKey: comment + "/" + k, File: &agentreply.File{
			Name:  a.FileName,
			Store: func(ctx context.Context) (sdk.MediaInfo, error) { return c.storeAttachment(ctx, s, a) },
		}})
	}
	if len(parts) == 0 {
		return ignored("an empty comment")
	}
	log := c.log.With("ticket_id", ticketID, "comment_id", cm.ID)
	res, err := agentreply.Send(ctx, s.host, sdk.OutboundMessage{To: tr.To, PhoneNumberID: tr.PhoneNumberID}, parts, partRecords{s.host.KV()}, log)
	if err != nil {
		// Zendesk retries a 503; the idempotency keys make that safe.
		return retryLater(err.Error())
	}
	if len(res.Refused) > 0 {
		return c.noteParts(ctx, s, ticketID, cm.ID, res.Refused, len(res.Sent))
	}
	if err := putJSON(ctx, s.host.KV(), commentKey(cm.ID), commentRecord{State: "sent", Message: strings.Join(res.Sent, ",")}); err != nil {
		log.Warn("zendesk: sent reply not recorded", "err", err)
	}
	out := map[string]any{"ok": true, "id": res.Sent[0], "state": "queued"}
	if len(res.Sent) > 1 {
		out["ids"] = res.Sent
	}
	return reply(http.StatusOK, out)
}

// partRecords keeps each part's record as a partRecord under its key.
type partRecords struct{ kv sdk.KV }

func (p partRecords) Get(ctx context.Context, key string) (agentreply.Record, error) {
	var rec partRecord
	_, err := getJSON(ctx, p.kv, key, &rec)
	return agentreply.Record{State: agentreply.State(rec.State), Media: rec.Media, Message: rec.Message, Code: rec.Code, Reason: rec.Reason}, err
}

func (p partRecords) Put(ctx context.Context, key string, r agentreply.Record) error {
	return putJSON(ctx, p.kv, key, partRecord{State: string(r.State), Media: r.Media, Message: r.Message, Code: r.Code, Reason: r.Reason})
}

const mediaAdvice = "WhatsApp takes images (JPEG, PNG) up to 5 MB, audio and video up to 16 MB and documents up to 100 MB. " +
	"Send a smaller file, another format, or a link, as a new public comment."

// noteParts adds the internal note for the parts of a reply the hub did
// not send.
func (c *connector) noteParts(ctx context.Context, s *settings, ticketID, commentID int64, refused []agentreply.Refusal, sent int) *sdk.HookResponse {
	text := ""
	if len(refused) == 1 && sent == 0 && refused[0].What == "the text" {
		text = refusalNote(refused[0].Err)
	} else {
		text = partsNote(refused, sent)
	}
	err := s.comment(ctx, ticketID, text, false, 0, "", nil)
	switch {
	case isClosedRefusal(err) || isStatus(err, 404):
	case err != nil:
		c.log.Warn("zendesk: could not add the refusal note", "ticket_id", ticketID, "err", err)
		return retryLater("part of the reply was refused (" + refused[0].Err.Code + ") and the note for the agent could not be added: " + err.Error())
	}
	first := refused[0].Err
	if err := putJSON(ctx, s.host.KV(), commentKey(commentID), commentRecord{State: "noted", Code: first.Code, Reason: first.Message}); err != nil {
		c.log.Warn("zendesk: refusal note not recorded", "comment_id", commentID, "err", err)
	}
	codes := make([]string, len(refused))
	for i, r := range refused {
		codes[i] = r.Err.Code
	}
	return reply(http.StatusOK, map[string]any{"ok": true, "delivered": sent > 0, "refused": strings.Join(codes, ",")})
}

// partsNote lists what of a reply was not sent, and why.
func partsNote(refused []agentreply.Refusal, sent int) string {
	var b strings.Builder
	if sent > 0 {
		b.WriteString("wahub sent only part of this reply on WhatsApp. Not sent:\n")
	} else {
		b.WriteString("wahub did not send this reply on WhatsApp:\n")
	}
	advice := map[string]bool{}
	for _, r := range refused {
		fmt.Fprintf(&b, "- %s: %s (%s)\n", r.What, strings.TrimSuffix(r.Err.Message, "."), r.Err.Code)
		advice[r.Err.Code] = true
	}
	switch {
	case advice["outside_window"]:
		b.WriteString("\n" + windowAdvice)
	case advice["opted_out"]:
		b.WriteString("\nThe customer opted out of WhatsApp messages. Reach them another way; if they write again on WhatsApp, you can reply here.")
	case advice["media_too_large"] || advice["media_type"]:
		b.WriteString("\n" + mediaAdvice)
	case advice["media_unavailable"]:
		b.WriteString("\nAttach the file again in a new public comment.")
	}
	return strings.TrimRight(b.String(), "\n")
}
