package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/plugins/internal/mediafile"
	"github.com/wahub/wahub/sdk"
)

// fileTimeout bounds moving one file to or from Slack: long enough for
// a 100 MB video on a slow link, short enough that a stalled transfer
// ends and is retried.
const fileTimeout = 15 * time.Minute

// newFilesClient is the Slack client for file transfers: the same API,
// but no whole-request timeout (config timeout bounds waiting for
// Slack's answer instead), since a large file takes longer than any
// API call should.
func newFilesClient(s *settings) *slackapi.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = s.timeout
	return slackapi.New(s.token,
		slackapi.OptionAPIURL(s.apiURL),
		slackapi.OptionHTTPClient(&http.Client{Transport: tr}),
	)
}

// fileState is the value of file:<event id>: how far sharing an event's
// file in Slack got. Slack shows a file only once
// files.completeUploadExternal shares it, so a crash before that leaves
// an unshared file nobody sees, and the next attempt starts over; a
// crash after the bytes arrived asks files.info whether the share
// happened before completing, so that the file never shows twice.
type fileState struct {
	FileID   string `json:"file_id"`
	Uploaded bool   `json:"uploaded,omitempty"`
	Channel  string `json:"channel"`
	ThreadTS string `json:"thread_ts"`
	// Comment is the initial_comment chosen on the first attempt, so that
	// a retry shares the file with the same words.
	Comment string `json:"comment,omitempty"`
}

func fileKey(eventID string) string { return "file:" + eventID }

// errUnavailable: the hub cannot have the event's file.
type errUnavailable struct{ reason string }

func (e *errUnavailable) Error() string { return "media unavailable: " + e.reason }

// hasFile reports whether ev carries a file the hub may hold.
func hasFile(ev *sdk.Event) bool {
	m := ev.Message
	return m != nil && m.Media != nil && m.Media.ID != "" && m.Media.State != sdk.MediaUnavailable
}

// shareFile uploads ev's file into the thread threadTS of channel and
// returns the ts of the message that shows it ("" when Slack does not say
// which). inRoot: the thread's root already shows the message itself,
// caption included.
func (r *run) shareFile(ctx context.Context, ev *sdk.Event, channel, threadTS string, inRoot bool) (string, error) {
	key := fileKey(ev.ID)
	var st fileState
	if _, err := r.getJSON(ctx, key, &st); err != nil {
		return "", err
	}
	if st.Comment == "" {
		st.Comment = r.s.fileComment(ev, inRoot)
	}
	ctx, cancel := context.WithTimeout(ctx, fileTimeout)
	defer cancel()

	if st.FileID != "" && st.Uploaded && st.Channel == channel {
		// The bytes are at Slack; was the file shared before we stopped?
		ts, shared, err := r.sharedIn(ctx, st.FileID, channel)
		switch {
		case err != nil:
			return "", err
		case shared:
			return ts, nil
		}
		ts, err = r.complete(ctx, ev, key, st)
		if !errors.Is(err, errFileLost) {
			return ts, err
		}
		// Slack no longer has the upload (it discards one never
		// completed): start over.
	}

	m := ev.Message.Media
	info, rc, err := r.s.host.OpenMedia(ctx, m.ID)
	if errors.Is(err, sdk.ErrMediaUnavailable) {
		return "", &errUnavailable{reason: strings.TrimPrefix(err.Error(), sdk.ErrMediaUnavailable.Error()+": ")}
	}
	if err != nil {
		return "", fmt.Errorf("open the customer's file %s at the hub: %w", m.ID, err)
	}
	defer rc.Close()
	body, size := io.Reader(rc), info.Size
	if size <= 0 {
		// Slack wants the length before the bytes: learn it on disk,
		// never in memory.
		tmp, n, err := spool(rc)
		if err != nil {
			return "", fmt.Errorf("spool the customer's file %s: %w", m.ID, err)
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		body, size = tmp, n
	}
	if size == 0 {
		return "", &errUnavailable{reason: "the file is empty"}
	}
	if info.MimeType == "" {
		info.MimeType = m.MimeType
	}
	name := fileName(ev, info)

	up, err := r.s.files.GetUploadURLExternalContext(ctx, slackapi.GetUploadURLExternalParameters{FileName: name, FileSize: int(size)})
	if err != nil {
		return "", r.fail(ctx, err, "files.getUploadURLExternal", channel, "")
	}
	st = fileState{FileID: up.FileID, Channel: channel, ThreadTS: threadTS, Comment: st.Comment}
	r.remember(ctx, key, st)
	if err := r.s.files.UploadToURL(ctx, slackapi.UploadToURLParameters{UploadURL: up.UploadURL, Reader: body, Filename: name}); err != nil {
		return "", r.fail(ctx, err, "files upload (the upload_url of files.getUploadURLExternal)", channel, "")
	}
	st.Uploaded = true
	r.remember(ctx, key, st)
	return r.complete(ctx, ev, key, st)
}

// errFileLost: Slack has no file under the id an earlier attempt got.
var errFileLost = errors.New("slack no longer has the uploaded file")

// complete shares an uploaded file in its thread.
func (r *run) complete(ctx context.Context, ev *sdk.Event, key string, st fileState) (string, error) {
	_, err := r.s.files.CompleteUploadExternalContext(ctx, slackapi.CompleteUploadExternalParameters{
		Files:           []slackapi.FileSummary{{ID: st.FileID, Title: fileTitle(ev)}},
		Channel:         st.Channel,
		ThreadTimestamp: st.ThreadTS,
		InitialComment:  st.Comment,
	})
	if slackCode(err) == "file_not_found" {
		_ = r.kv.Delete(ctx, key)
		return "", errFileLost
	}
	if err != nil {
		return "", r.fail(ctx, err, "files.completeUploadExternal", st.Channel, "")
	}
	// Which message shows the file: for reactions of the customer to it.
	ts, _, err := r.sharedIn(ctx, st.FileID, st.Channel)
	if err != nil {
		r.c.log.Warn("slack: file shared, but files.info did not say where; reactions to it land on the thread", "file", st.FileID, "err", err)
	}
	return ts, nil
}

// sharedIn reports whether file is shared in channel, and the ts of the
// message that shares it.
func (r *run) sharedIn(ctx context.Context, fileID, channel string) (string, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, r.s.timeout)
	defer cancel()
	f, _, _, err := r.s.api.GetFileInfoContext(cctx, fileID, 0, 0)
	switch slackCode(err) {
	case "":
	case "file_not_found", "file_deleted":
		return "", false, nil
	}
	if err != nil {
		return "", false, r.fail(ctx, err, "files.info", channel, "")
	}
	for _, shares := range []map[string][]slackapi.ShareFileInfo{f.Shares.Public, f.Shares.Private} {
		if list := shares[channel]; len(list) > 0 {
			return list[len(list)-1].Ts, true, nil
		}
	}
	for _, ch := range append(append([]string(nil), f.Channels...), f.Groups...) {
		if ch == channel {
			return "", true, nil
		}
	}
	return "", false, nil
}

// spool copies r to a temporary file and rewinds it.
func spool(r io.Reader) (*os.File, int64, error) {
	f, err := os.CreateTemp("", "wahub-slack-media-*")
	if err != nil {
		return nil, 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, err
	}
	return f, n, nil
}

// fileComment is the text that shares a customer's file in the thread:
// who sent what, and the caption (unless the root shows it already).
func (s *settings) fileComment(ev *sdk.Event, inRoot bool) string {
	m := ev.Message
	name, _ := s.customer(ev.Contact)
	if name == "" {
		name = "The customer"
	}
	what := strings.ToLower(kindOf(m))
	comment := "*" + esc(name) + "* sent " + article(what) + " " + what
	if m.Media.Filename != "" && m.Type == sdk.MediaDocument {
		comment += " `" + esc(m.Media.Filename) + "`"
	}
	if caption := captionOf(m); caption != "" && !inRoot {
		comment += ":\n" + esc(caption)
	}
	return comment
}

// kindOf names a message's media for people: "voice note", "image", ….
func kindOf(m *sdk.Message) string {
	switch {
	case m.Type == sdk.MediaAudio && m.Media != nil && m.Media.Voice:
		return "voice note"
	case m.Type == sdk.MediaSticker && m.Media != nil && m.Media.Animated:
		return "animated sticker"
	case m.Type == sdk.MediaImage, m.Type == sdk.MediaVideo, m.Type == sdk.MediaAudio, m.Type == sdk.MediaDocument, m.Type == sdk.MediaSticker:
		return m.Type
	}
	return "file"
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

func captionOf(m *sdk.Message) string {
	if m.Media != nil && m.Media.Caption != "" {
		return m.Media.Caption
	}
	return m.Text
}

// fileTitle is the title Slack shows above the file.
func fileTitle(ev *sdk.Event) string {
	m := ev.Message
	if m.Media.Filename != "" {
		return m.Media.Filename
	}
	k := kindOf(m)
	return strings.ToUpper(k[:1]) + k[1:] + " from WhatsApp"
}

// fileName is the name the file gets in Slack: the customer's own for a
// document, else one made of its kind, time and MIME type (Slack picks
// its player and preview by the extension).
func fileName(ev *sdk.Event, info sdk.MediaInfo) string {
	m := ev.Message
	if m.Media.Filename != "" {
		return m.Media.Filename
	}
	if info.Filename != "" {
		return info.Filename
	}
	at := ev.OccurredAt
	if at.IsZero() {
		at = time.Now()
	}
	return strings.ReplaceAll(kindOf(m), " ", "-") + "-" + at.UTC().Format("20060102-150405") + mediafile.Extension(info.MimeType)
}

// unavailableNote tells the agents that the customer's file could not
// be had, and why.
func (s *settings) unavailableNote(ev *sdk.Event, reason string) post {
	m := ev.Message
	what := kindOf(m)
	name, _ := s.customer(ev.Contact)
	if name == "" {
		name = "The customer"
	}
	text := name + " sent " + article(what) + " " + what + " that could not be retrieved"
	if reason != "" {
		text += " (" + reason + ")"
	}
	text += "."
	return notePost(":warning: "+esc(text), text)
}
