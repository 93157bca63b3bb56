package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/wahub/wahub/sdk"
)

// Agents' attachments. Moving a file takes longer than the 3 seconds
// Slack waits for an Events API answer, so a reply with files is
// recorded as a job (job:<event_id> in the KV) before Slack is answered,
// and sent from there in the background; a job a crash interrupted is
// taken up again when the connector next starts. Every file is sent
// with the idempotency key <event_id>:<file id> and stored in the hub
// by content, so a job that runs twice sends nothing twice.

// job is the value of job:<slack event_id>.
type job struct {
	EventID  string `json:"event_id"`
	Channel  string `json:"channel"`
	ThreadTS string `json:"thread_ts"`
	TS       string `json:"ts"`
	User     string `json:"user"`
	// Text is the agent's text, as WhatsApp shows it; TextDone once it
	// was sent (or refused) on its own.
	Text          string    `json:"text,omitempty"`
	TextDone      bool      `json:"text_done,omitempty"`
	To            string    `json:"to"`
	PhoneNumberID string    `json:"phone_number_id,omitempty"`
	Files         []jobFile `json:"files"`
	At            int64     `json:"at"`
}

// jobFile is one file of a job, as the event described it.
type jobFile struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Mimetype string `json:"mimetype,omitempty"`
	Size     int64  `json:"size,omitempty"`
	URL      string `json:"url,omitempty"` // url_private_download
	// Access is the event's file_access or mode when it is not a file
	// ready to download (check_file_info, tombstone, hidden_by_limit).
	Access string `json:"access,omitempty"`
	Done   bool   `json:"done,omitempty"`
}

// slackFile is a files[] entry of a message event.
type slackFile struct {
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Title              string `json:"title"`
	Mimetype           string `json:"mimetype"`
	Size               int64  `json:"size"`
	Mode               string `json:"mode"`
	FileAccess         string `json:"file_access"`
	URLPrivateDownload string `json:"url_private_download"`
}

func jobKey(eventID string) string { return "job:" + eventID }

// jobRetries is how often a file that failed for a passing reason (Slack
// or the hub unreachable) is tried before the agent is told.
const jobRetries = 6

// jobs runs the jobs of one configuration; Close stops them (a new
// configuration takes them up from the KV).
type jobs struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	active map[string]bool
	// retryBase is the first pause after a passing failure; tests shorten it.
	retryBase time.Duration
}

func newJobs() *jobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &jobs{ctx: ctx, cancel: cancel, active: map[string]bool{}, retryBase: 2 * time.Second}
}

func (j *jobs) stop() { j.cancel(); j.wg.Wait() }

// start runs the job under key unless it already runs.
func (j *jobs) start(r *run, eventID string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.active[eventID] || j.ctx.Err() != nil {
		return
	}
	j.active[eventID] = true
	j.wg.Go(func() {
		defer func() {
			j.mu.Lock()
			delete(j.active, eventID)
			j.mu.Unlock()
		}()
		r.runJob(j.ctx, eventID)
	})
}

// resume takes up the jobs an earlier process left unfinished.
func (j *jobs) resume(r *run) {
	pairs, err := r.kv.List(j.ctx, "job:")
	if err != nil {
		r.c.log.Warn("slack: cannot list unfinished attachments in the hub's KV; they are taken up at the next start", "err", err)
		return
	}
	for _, p := range pairs {
		j.start(r, strings.TrimPrefix(p.Key, "job:"))
	}
}

// queueFiles records an agent's reply with files as a job and starts it.
// It reports false when the job could not be recorded (Slack should
// retry).
func (c *connector) queueFiles(ctx context.Context, r *run, env *envelope, info convInfo) bool {
	m := env.Event
	jb := job{
		EventID: env.EventID, Channel: m.Channel, ThreadTS: m.ThreadTS, TS: m.TS, User: m.User,
		Text: toWhatsApp(m.Text), To: info.To, PhoneNumberID: info.PhoneNumberID, At: c.now().Unix(),
	}
	for _, raw := range m.Files {
		var f slackFile
		if err := json.Unmarshal(raw, &f); err != nil || f.ID == "" {
			continue
		}
		jf := jobFile{ID: f.ID, Name: f.Name, Mimetype: f.Mimetype, Size: f.Size, URL: f.URLPrivateDownload}
		if f.FileAccess != "" && f.FileAccess != "visible" {
			jf.Access = f.FileAccess
		} else if f.Mode == "tombstone" || f.Mode == "hidden_by_limit" || f.Mode == "external" {
			jf.Access = f.Mode
		}
		jb.Files = append(jb.Files, jf)
	}
	raw, _ := json.Marshal(jb)
	if ok, err := r.kv.CompareAndSwap(ctx, jobKey(env.EventID), nil, raw); err != nil {
		c.log.Warn("slack hook: cannot record an agent's attachments in the hub's KV; Slack will retry", "event_id", env.EventID, "err", err)
		return false
	} else if ok {
		r.s.jobs.start(r, env.EventID)
	}
	return true
}

// runJob sends a job's text and files, then forgets it.
func (r *run) runJob(ctx context.Context, eventID string) {
	key := jobKey(eventID)
	var jb job
	if found, err := r.getJSON(ctx, key, &jb); err != nil || !found {
		return
	}
	save := func() {
		raw, _ := json.Marshal(jb)
		if err := r.kv.Put(ctx, key, raw); err != nil {
			r.c.log.Warn("slack: could not record an attachment's progress; a restart may tell the agent twice", "event_id", eventID, "err", err)
		}
	}
	thread := msgRef{Channel: jb.Channel, ThreadTS: jb.ThreadTS}
	// The text rides as the first file's caption where WhatsApp shows
	// one (image, video, document); otherwise it goes first, on its own.
	captioned := -1
	if len(jb.Files) > 0 {
		// A stub says nothing of its type, which decides the caption; a
		// failure here is met again, and told, by sendFile.
		f0 := &jb.Files[0]
		if !f0.Done && (f0.URL == "" || f0.Access != "") && r.resolveFile(ctx, f0) == nil {
			save()
		}
	}
	if jb.Text != "" && !jb.TextDone {
		if len(jb.Files) > 0 && !jb.Files[0].Done && takesCaption(sdk.MediaTypeFor(jb.Files[0].Mimetype)) {
			captioned = 0
		} else {
			if !r.sendText(ctx, &jb, thread) {
				return // stopped; taken up at the next start
			}
			jb.TextDone = true
			save()
		}
	}
	for i := range jb.Files {
		if jb.Files[i].Done {
			continue
		}
		caption := ""
		if i == captioned {
			caption = jb.Text
		}
		if !r.sendFile(ctx, &jb, i, caption, thread) {
			return
		}
		jb.Files[i].Done = true
		if i == captioned {
			jb.TextDone = true
		}
		save()
	}
	// Done first: a Slack retry arriving between the two finds the event
	// handled rather than a claim free to take.
	done, _ := json.Marshal(hookState{Done: true, At: r.c.now().Unix()})
	_ = r.kv.Put(ctx, hookKey(eventID), done)
	_ = r.kv.Delete(ctx, key)
}

// takesCaption: WhatsApp shows a caption under images, videos and
// documents, not under audio or stickers.
func takesCaption(mediaType string) bool {
	return mediaType == sdk.MediaImage || mediaType == sdk.MediaVideo || mediaType == sdk.MediaDocument
}

// sendText sends the job's text alone; false means the job stopped.
func (r *run) sendText(ctx context.Context, jb *job, thread msgRef) bool {
	return r.retrying(ctx, func() (bool, error) {
		res, err := r.s.host.SendMessage(ctx, sdk.OutboundMessage{To: jb.To, PhoneNumberID: jb.PhoneNumberID, Text: jb.Text, IdempotencyKey: jb.EventID})
		var refused *sdk.RefusedError
		if errors.As(err, &refused) {
			r.postBack(ctx, thread, ":warning: Not delivered: "+esc(refusalText(refused))+". _("+esc(refused.Code)+")_")
			return true, nil
		}
		if err != nil {
			return false, err
		}
		r.remember(ctx, outKey(res.ID), msgRef{Channel: jb.Channel, ThreadTS: jb.ThreadTS, TS: jb.TS})
		return true, nil
	}, func(err error) {
		r.postBack(ctx, thread, ":warning: Not delivered: the hub could not take the message ("+esc(err.Error())+").")
	})
}

// sendFile moves file i of jb to the hub and sends it; false means the
// job stopped.
func (r *run) sendFile(ctx context.Context, jb *job, i int, caption string, thread msgRef) bool {
	f := &jb.Files[i]
	name := f.Name
	if name == "" {
		name = f.ID
	}
	tell := func(why string) {
		msg := ":warning: Not sent to WhatsApp: `" + esc(name) + "`: " + why + ". Nothing of this file reached the customer"
		if caption != "" {
			msg += ", nor your text"
		}
		r.postBack(ctx, thread, msg+".")
	}
	// When the file is refused for what it is, the text still goes.
	textAlone := func() {
		if caption == "" {
			return
		}
		if r.sendText(ctx, jb, thread) {
			r.postBack(ctx, thread, ":information_source: Your text was sent to the customer without `"+esc(name)+"`.")
		}
	}
	return r.retrying(ctx, func() (bool, error) {
		if f.URL == "" || f.Access != "" {
			if err := r.resolveFile(ctx, f); err != nil {
				var perm *permanentErr
				if errors.As(err, &perm) {
					tell(esc(perm.why))
					return true, nil
				}
				return false, err
			}
			name = f.Name
		}
		media, err := r.download(ctx, f)
		var refused *sdk.RefusedError
		var perm *permanentErr
		switch {
		case errors.As(err, &refused):
			tell(esc(refusalText(refused)) + " _(" + esc(refused.Code) + ")_")
			textAlone()
			return true, nil
		case errors.As(err, &perm):
			tell(esc(perm.why))
			return true, nil
		case err != nil:
			return false, err
		}
		out := &sdk.OutboundMedia{ID: media.ID, Caption: caption}
		if sdk.MediaTypeFor(f.Mimetype) == sdk.MediaDocument {
			out.Filename = name
		}
		res, err := r.s.host.SendMessage(ctx, sdk.OutboundMessage{
			To: jb.To, PhoneNumberID: jb.PhoneNumberID, Media: out,
			IdempotencyKey: jb.EventID + ":" + f.ID,
		})
		switch {
		case errors.As(err, &refused):
			tell(esc(refusalText(refused)) + " _(" + esc(refused.Code) + ")_")
			if refused.Code == "media_too_large" || refused.Code == "media_type" {
				textAlone()
			}
			return true, nil
		case err != nil:
			return false, err
		}
		r.remember(ctx, outKey(res.ID), msgRef{Channel: jb.Channel, ThreadTS: jb.ThreadTS, TS: jb.TS})
		return true, nil
	}, func(err error) {
		tell("it could not be moved (" + esc(err.Error()) + ")")
	})
}

// retrying runs step until it is done, pausing after passing failures;
// after jobRetries of them giveUp tells the agent and the step counts as
// done. It reports false when the job was stopped.
func (r *run) retrying(ctx context.Context, step func() (done bool, err error), giveUp func(error)) bool {
	wait := r.s.jobs.retryBase
	for attempt := 1; ; attempt++ {
		done, err := step()
		if done {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt >= jobRetries {
			r.c.log.Warn("slack: an agent's attachment could not be sent; the agent is told", "err", err)
			giveUp(err)
			return true
		}
		r.c.log.Info("slack: an agent's attachment failed for now; trying again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

// permanentErr: a file that will not be had however often it is tried.
type permanentErr struct{ why string }

func (e *permanentErr) Error() string { return e.why }

// resolveFile asks files.info for what the event did not carry: Slack
// sends a stub (file_access: check_file_info) for a file it is still
// processing and in Slack Connect channels.
func (r *run) resolveFile(ctx context.Context, f *jobFile) error {
	cctx, cancel := context.WithTimeout(ctx, r.s.timeout)
	defer cancel()
	info, _, _, err := r.s.api.GetFileInfoContext(cctx, f.ID, 0, 0)
	switch code := slackCode(err); code {
	case "":
	case "file_not_found", "file_deleted":
		return &permanentErr{why: "the file was deleted in Slack"}
	case "missing_scope":
		return &permanentErr{why: "the Slack app lacks the files:read scope (add it under OAuth & Permissions and reinstall the app)"}
	default:
		if ae := r.s.describe(err, "files.info", "", ""); ae.permanent {
			return &permanentErr{why: ae.msg}
		}
		return err
	}
	if err != nil {
		return err
	}
	switch {
	case info.Mode == "tombstone":
		return &permanentErr{why: "the file was deleted in Slack"}
	case info.Mode == "hidden_by_limit":
		return &permanentErr{why: "the workspace's plan hides this file (over its storage limit)"}
	case info.IsExternal || info.Mode == "external":
		return &permanentErr{why: "the file is a link to another service (" + info.ExternalType + "), not a file in Slack; upload the file itself"}
	case info.URLPrivateDownload == "":
		return fmt.Errorf("files.info gave no url_private_download for %s yet", f.ID)
	}
	f.URL, f.Access = info.URLPrivateDownload, ""
	if info.Name != "" {
		f.Name = info.Name
	}
	if info.Mimetype != "" {
		f.Mimetype = info.Mimetype
	}
	if info.Size > 0 {
		f.Size = int64(info.Size)
	}
	return nil
}

// download streams the file from Slack (with the bot token) into the
// hub's media store.
func (r *run) download(ctx context.Context, f *jobFile) (sdk.MediaInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, fileTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	go func() {
		err := r.s.files.GetFileContext(ctx, f.URL, pw)
		pw.CloseWithError(err)
		fetched <- err
	}()
	info, err := r.s.host.PutMedia(ctx, sdk.MediaUpload{MimeType: f.Mimetype, Filename: f.Name, Size: f.Size}, pr)
	// Unblocks the download when PutMedia gave up early.
	stopped := errors.New("the hub stopped reading")
	pr.CloseWithError(stopped)
	ferr := <-fetched
	var refused *sdk.RefusedError
	if errors.As(err, &refused) {
		return info, err
	}
	if ferr != nil && !errors.Is(ferr, stopped) {
		var sc slackapi.StatusCodeError
		switch {
		case errors.As(ferr, &sc) && (sc.Code == 404 || sc.Code == 410):
			return info, &permanentErr{why: "Slack no longer has the file"}
		case strings.Contains(ferr.Error(), "sign-in page"):
			return info, &permanentErr{why: "Slack did not let the bot read the file (is config.token the app's bot token, with files:read?)"}
		case strings.Contains(ferr.Error(), "refusing to send the token"):
			return info, &permanentErr{why: "the file is not at a Slack address the bot token may be sent to"}
		}
		return info, fmt.Errorf("download %s from Slack: %w", f.ID, ferr)
	}
	if err != nil {
		return info, fmt.Errorf("store %s in the hub: %w", f.ID, err)
	}
	if f.Size > 0 && info.Size > 0 && info.Size != f.Size {
		return info, fmt.Errorf("download %s from Slack: got %d bytes of %d", f.ID, info.Size, f.Size)
	}
	return info, nil
}

func refusalText(refused *sdk.RefusedError) string {
	msg := strings.TrimSuffix(refused.Message, ".")
	if msg == "" {
		msg = refused.Code
	}
	return msg
}
