package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
)

// sample is deterministic bytes that start like a real file of its kind,
// large enough to cross several chunks of the host's media stream.
func sample(magic string, size int, seed uint64) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	copy(b, magic)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var (
	jpeg  = sample("\xff\xd8\xff\xe0\x00\x10JFIF", 300<<10, 1)
	voice = sample("OggS\x00\x02", 40<<10, 2)
	pdf   = sample("%PDF-1.7\n", 700<<10, 3)
)

// mediaEvent is a message.received of ana with a file the host holds
// (unless state says otherwise).
func mediaEvent(id, typ string, m sdk.Media, caption string) sdk.Event {
	ev := inbound(id, ana, "support", caption)
	ev.Message.Type = typ
	m.Caption = caption
	ev.Message.Media = &m
	return ev
}

// shareOf is the message of the fake that shares file id.
func shareOf(t *testing.T, e *testEnv, id string) slacktest.Message {
	t.Helper()
	var found []slacktest.Message
	for _, m := range e.fake.Messages() {
		for _, f := range m.Files {
			if f == id {
				found = append(found, m)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("file %s is shared by %d messages, want 1: %+v", id, len(found), found)
	}
	return found[0]
}

func TestInboundMediaInThread(t *testing.T) {
	cases := []struct {
		name     string
		typ      string
		media    sdk.Media
		data     []byte
		caption  string
		fileName string   // the name Slack gets
		comment  []string // substrings of initial_comment
	}{
		{"image with caption", sdk.MediaImage, sdk.Media{ID: "m-img", MimeType: "image/jpeg"}, jpeg, "A caixa chegou amassada",
			"image-20261124-120000.jpg", []string{"*Ana Souza* sent an image", "A caixa chegou amassada"}},
		{"voice note", sdk.MediaAudio, sdk.Media{ID: "m-voice", MimeType: "audio/ogg; codecs=opus", Voice: true}, voice, "",
			"voice-note-20261124-120000.ogg", []string{"*Ana Souza* sent a voice note"}},
		{"pdf", sdk.MediaDocument, sdk.Media{ID: "m-pdf", MimeType: "application/pdf", Filename: "fatura 11/2026.pdf"}, pdf, "Segue a fatura",
			"fatura 11/2026.pdf", []string{"sent a document `fatura 11/2026.pdf`", "Segue a fatura"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, root := threadEnv(t)
			e.host.AddMedia(sdk.MediaInfo{ID: tc.media.ID, MimeType: tc.media.MimeType}, tc.data)
			ev := mediaEvent("ev-"+tc.media.ID, tc.typ, tc.media, tc.caption)
			e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)

			files := e.fake.Files()
			if len(files) != 1 {
				t.Fatalf("%d files at Slack, want 1: %+v", len(files), files)
			}
			f := files[0]
			if f.SHA256 != sum(tc.data) || f.Size != int64(len(tc.data)) || f.Length != f.Size {
				t.Errorf("Slack got %d bytes (sha256 %s, length %d), want %d (%s)", f.Size, f.SHA256, f.Length, len(tc.data), sum(tc.data))
			}
			if f.Name != tc.fileName {
				t.Errorf("file name %q, want %q", f.Name, tc.fileName)
			}
			share := shareOf(t, e, f.ID)
			if share.Channel != defaultChan || share.ThreadTS != root.TS {
				t.Errorf("shared in %s thread %q, want %s thread %s", share.Channel, share.ThreadTS, defaultChan, root.TS)
			}
			for _, w := range tc.comment {
				if !strings.Contains(share.Text, w) {
					t.Errorf("initial_comment %q lacks %q", share.Text, w)
				}
			}
			// The file share is the reply: no second message for it.
			if n := len(e.fake.Replies(defaultChan, root.TS)); n != 1 {
				t.Errorf("%d replies in the thread, want the file share only", n)
			}
			// A reaction of the customer to it lands on the share.
			var ref msgRef
			if ok, _ := (&run{kv: e.host.KV()}).getJSON(context.Background(), wamidKey(ev.Message.ID), &ref); !ok || ref.TS != share.TS {
				t.Errorf("wamid maps to %+v, want the share %s", ref, share.TS)
			}
		})
	}
}

func TestInboundMediaFirstMessage(t *testing.T) {
	e := newEnv(t, nil)
	e.host.AddMedia(sdk.MediaInfo{ID: "m1", MimeType: "image/jpeg"}, jpeg)
	ev := mediaEvent("ev1", sdk.MediaImage, sdk.Media{ID: "m1", MimeType: "image/jpeg"}, "Olha isso")
	e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
	roots := e.fake.Roots(defaultChan)
	if len(roots) != 1 {
		t.Fatalf("%d roots", len(roots))
	}
	text := blocksText(t, roots[0])
	for _, w := range []string{"*Image*", "Olha isso", "the image is in the thread"} {
		if !strings.Contains(text, w) {
			t.Errorf("root lacks %q:\n%s", w, text)
		}
	}
	files := e.fake.Files()
	if len(files) != 1 || files[0].SHA256 != sum(jpeg) {
		t.Fatalf("files %+v", files)
	}
	share := shareOf(t, e, files[0].ID)
	if share.ThreadTS != roots[0].TS || strings.Contains(share.Text, "Olha isso") {
		t.Errorf("share %+v: want it in the root's thread, without the caption the root shows", share)
	}
}

func TestInboundMediaUnavailable(t *testing.T) {
	cases := []struct {
		name   string
		media  sdk.Media
		want   []string
		reason string
	}{
		{"marked unavailable by the hub", sdk.Media{ID: "m-gone", MimeType: "image/jpeg", State: sdk.MediaUnavailable, Reason: "Meta no longer has it (131052)"},
			[]string{"The image could not be retrieved: Meta no longer has it (131052)"}, ""},
		{"lost when opened", sdk.Media{ID: "m-lost", MimeType: "image/jpeg", State: sdk.MediaAvailable},
			[]string{"The image could not be retrieved", `no media \"m-lost\"`}, ""},
		{"no media id", sdk.Media{MimeType: "image/jpeg"}, []string{"The image could not be retrieved"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, root := threadEnv(t)
			ev := mediaEvent("ev-x", sdk.MediaImage, tc.media, "foto")
			e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
			replies := e.fake.Replies(defaultChan, root.TS)
			if len(replies) != 1 {
				t.Fatalf("%d replies, want 1", len(replies))
			}
			text := blocksText(t, replies[0])
			for _, w := range append(tc.want, "foto") {
				if !strings.Contains(text, strings.ReplaceAll(w, `\"`, `"`)) {
					t.Errorf("reply lacks %q:\n%s", w, text)
				}
			}
			if n := e.fake.CallCount("files.getUploadURLExternal"); n != 0 || len(e.fake.Files()) != 0 {
				t.Errorf("%d uploads started for a file the hub does not have", n)
			}
		})
	}

	t.Run("first message, lost when opened", func(t *testing.T) {
		e := newEnv(t, nil)
		ev := mediaEvent("ev-r", sdk.MediaAudio, sdk.Media{ID: "m-lost", MimeType: "audio/ogg", Voice: true}, "")
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		root := e.fake.Roots(defaultChan)[0]
		replies := e.fake.Replies(defaultChan, root.TS)
		if len(replies) != 1 || !strings.Contains(replies[0].Text, "Ana Souza sent a voice note that could not be retrieved") {
			t.Errorf("replies %+v", replies)
		}
	})
}

func TestInboundMediaRedelivery(t *testing.T) {
	newMedia := func(t *testing.T) (*testEnv, slacktest.Message, sdk.Event) {
		e, root := threadEnv(t)
		e.host.AddMedia(sdk.MediaInfo{ID: "m-pdf", MimeType: "application/pdf"}, pdf)
		return e, root, mediaEvent("ev-pdf", sdk.MediaDocument, sdk.Media{ID: "m-pdf", MimeType: "application/pdf", Filename: "nota.pdf"}, "")
	}
	wantOneShare := func(t *testing.T, e *testEnv) {
		t.Helper()
		shared := 0
		for _, f := range e.fake.Files() {
			for _, ts := range f.Shares {
				shared += len(ts)
			}
			if len(f.Shares) > 0 && f.SHA256 != sum(pdf) {
				t.Errorf("shared file %s has sha256 %s, want %s", f.ID, f.SHA256, sum(pdf))
			}
		}
		if shared != 1 {
			t.Errorf("the file is shared %d times, want once", shared)
		}
	}

	t.Run("delivered twice", func(t *testing.T) {
		e, _, ev := newMedia(t)
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		wantOneShare(t, e)
		if n := e.fake.CallCount("files.getUploadURLExternal"); n != 1 {
			t.Errorf("%d uploads, want 1", n)
		}
	})

	t.Run("completion failed after the upload", func(t *testing.T) {
		e, _, ev := newMedia(t)
		e.fake.SetMethodError("files.completeUploadExternal", "internal_error")
		e.wantOutcome(e.deliver(ev), sdk.Retry, ev.ID)
		e.fake.SetMethodError("files.completeUploadExternal", "")
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		wantOneShare(t, e)
		if n := e.fake.CallCount("files.getUploadURLExternal"); n != 1 {
			t.Errorf("%d uploads, want the first one completed", n)
		}
	})

	t.Run("crash after the share, before it was recorded", func(t *testing.T) {
		e, root, ev := newMedia(t)
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		f := e.fake.Files()[0]
		// What a crash right after completeUploadExternal leaves.
		ctx := context.Background()
		_ = e.host.KV().Delete(ctx, evtKey(ev.ID))
		raw, _ := json.Marshal(fileState{FileID: f.ID, Uploaded: true, Channel: defaultChan, ThreadTS: root.TS, Comment: "x"})
		_ = e.host.KV().Put(ctx, fileKey(ev.ID), raw)
		e.c = e.start()
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		wantOneShare(t, e)
		if n := e.fake.CallCount("files.completeUploadExternal"); n != 1 {
			t.Errorf("completeUploadExternal called %d times, want 1", n)
		}
	})

	t.Run("crash before the bytes arrived", func(t *testing.T) {
		e, root, ev := newMedia(t)
		// An upload ticket was had, then the process died.
		raw, _ := json.Marshal(fileState{FileID: "F0STALE", Channel: defaultChan, ThreadTS: root.TS})
		_ = e.host.KV().Put(context.Background(), fileKey(ev.ID), raw)
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		wantOneShare(t, e)
	})

	t.Run("upload URL answers 5xx", func(t *testing.T) {
		e, _, ev := newMedia(t)
		e.fake.SetUploadFailures(1, 503)
		e.wantOutcome(e.deliver(ev), sdk.Retry, ev.ID)
		e.wantOutcome(e.deliver(ev), sdk.Delivered, ev.ID)
		wantOneShare(t, e)
	})

	t.Run("missing files:write", func(t *testing.T) {
		e, _, ev := newMedia(t)
		e.fake.SetMethodError("files.getUploadURLExternal", "missing_scope")
		res := e.deliver(ev)[ev.ID]
		if res.Outcome != sdk.Failed || !strings.Contains(res.Error, "files:write") {
			t.Errorf("result %s %q, want failed naming files:write", res.Outcome, res.Error)
		}
	})
}

// --- agents' files → WhatsApp

// fileReply is an agent's reply with files in the conversation's thread,
// as Slack sends it (subtype file_share).
func (e *testEnv) fileReply(eventID, threadTS, text string, files ...json.RawMessage) []byte {
	return slacktest.EventCallback(eventID, fixedNow, slacktest.MessageEvent{
		User: "U0AGENT", SubType: "file_share", Text: text, TS: "1795521601.00000" + eventID[len(eventID)-1:],
		ThreadTS: threadTS, Channel: defaultChan, ParentUser: slacktest.BotUserID, Files: files,
	})
}

func (e *testEnv) waitJobs() {
	e.t.Helper()
	e.c.settings().jobs.wg.Wait()
}

func (e *testEnv) apiBase() string { return e.srv.URL + "/api/" }

func TestOutboundFiles(t *testing.T) {
	cases := []struct {
		name     string
		file     string
		mime     string
		data     []byte
		text     string
		stub     bool // the event carries file_access: check_file_info
		wantSent []sdk.OutboundMessage
	}{
		{"image with text as caption", "foto.jpg", "image/jpeg", jpeg, "Veja a *etiqueta*", false,
			[]sdk.OutboundMessage{{Media: &sdk.OutboundMedia{Caption: "Veja a *etiqueta*"}}}},
		{"pdf with its filename", "segunda via.pdf", "application/pdf", pdf, "", false,
			[]sdk.OutboundMessage{{Media: &sdk.OutboundMedia{Filename: "segunda via.pdf"}}}},
		{"audio: the text goes first on its own", "explicacao.ogg", "audio/ogg", voice, "Ouça", false,
			[]sdk.OutboundMessage{{Text: "Ouça"}, {Media: &sdk.OutboundMedia{}}}},
		{"file not ready when the event came", "foto.jpg", "image/jpeg", jpeg, "", true,
			[]sdk.OutboundMessage{{Media: &sdk.OutboundMedia{}}}},
		{"audio not ready: its type is asked before the caption is placed", "explicacao.ogg", "audio/ogg", voice, "Ouça", true,
			[]sdk.OutboundMessage{{Text: "Ouça"}, {Media: &sdk.OutboundMedia{}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, root := threadEnv(t)
			f := e.fake.AddFile(tc.file, tc.mime, "U0AGENT", tc.data)
			body := e.fileReply("EvF1", root.TS, tc.text, e.fake.FileObject(e.apiBase(), f.ID, tc.stub))
			if resp := e.hook(body, 0); resp.Status != 200 {
				t.Fatalf("hook: %d %s", resp.Status, resp.Body)
			}
			e.waitJobs()

			ups := e.host.Uploads()
			if len(ups) != 1 {
				t.Fatalf("%d files stored in the hub, want 1", len(ups))
			}
			if ups[0].SHA256 != sum(tc.data) || ups[0].MimeType != tc.mime || ups[0].Filename != tc.file {
				t.Errorf("hub stored %+v, want %s %s sha256 %s", ups[0], tc.file, tc.mime, sum(tc.data))
			}
			sent := e.host.Sent()
			if len(sent) != len(tc.wantSent) {
				t.Fatalf("sent %d messages, want %d: %+v", len(sent), len(tc.wantSent), sent)
			}
			for i, want := range tc.wantSent {
				got := sent[i]
				if got.To != ana.WAID || got.PhoneNumberID != phoneID {
					t.Errorf("message %d to %s via %s", i, got.To, got.PhoneNumberID)
				}
				if want.Media == nil {
					if got.Text != want.Text || got.Media != nil || got.IdempotencyKey != "EvF1" {
						t.Errorf("message %d: %+v, want the text %q keyed EvF1", i, got, want.Text)
					}
					continue
				}
				if got.Media == nil {
					t.Fatalf("message %d has no media: %+v", i, got)
				}
				want.Media.ID = ups[0].ID
				if *got.Media != *want.Media || got.IdempotencyKey != "EvF1:"+f.ID || got.Text != "" {
					t.Errorf("message %d: %+v media %+v, want media %+v keyed EvF1:%s", i, got, *got.Media, *want.Media, f.ID)
				}
			}
			if tc.stub && e.fake.CallCount("files.info") == 0 {
				t.Error("the stub was not resolved with files.info")
			}
			if d := e.fake.Files()[0].Downloads; d != 1 {
				t.Errorf("downloaded %d times", d)
			}
			if n := len(e.fake.Replies(defaultChan, root.TS)); n != 0 {
				t.Errorf("%d notes in the thread for files that were sent", n)
			}
			// Statuses find the agent's message.
			var ref msgRef
			if ok, _ := (&run{kv: e.host.KV()}).getJSON(context.Background(), outKey("msg_EvF1:"+f.ID), &ref); !ok || ref.ThreadTS != root.TS {
				t.Errorf("out: record %+v", ref)
			}
		})
	}
}

func TestOutboundFileRefused(t *testing.T) {
	cases := []struct {
		name     string
		maxMedia int64
		refuse   *sdk.RefusedError // SendMessage's answer to the media message
		text     string
		note     []string
		wantText bool // the text still goes, alone
	}{
		{"too large for the hub", 100 << 10, nil, "", []string{"Not sent to WhatsApp: `segunda via.pdf`", "the hub takes at most 102400", "media_too_large", "Nothing of this file reached the customer"}, false},
		{"too large, with text", 100 << 10, nil, "Segue", []string{"media_too_large", "nor your text", "Your text was sent to the customer without"}, true},
		{"too large for WhatsApp", 0, &sdk.RefusedError{Code: "media_too_large", Message: "documents are at most 100 MB on WhatsApp"}, "", []string{"documents are at most 100 MB on WhatsApp"}, false},
		{"type WhatsApp refuses", 0, &sdk.RefusedError{Code: "media_type", Message: "WhatsApp does not send application/x-msdownload"}, "", []string{"WhatsApp does not send application/x-msdownload", "media_type"}, false},
		{"window closed", 0, &sdk.RefusedError{Code: "window_closed", Message: "the 24-hour window is closed; send a template"}, "Segue", []string{"the 24-hour window is closed", "window_closed", "nor your text"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, root := threadEnv(t)
			e.host.MaxMedia = tc.maxMedia
			e.host.Send = func(m sdk.OutboundMessage) (sdk.SendResult, error) {
				if m.Media != nil && tc.refuse != nil {
					return sdk.SendResult{}, tc.refuse
				}
				return sdk.SendResult{ID: "msg_" + m.IdempotencyKey, State: "queued"}, nil
			}
			f := e.fake.AddFile("segunda via.pdf", "application/pdf", "U0AGENT", pdf)
			e.hook(e.fileReply("EvF1", root.TS, tc.text, e.fake.FileObject(e.apiBase(), f.ID, false)), 0)
			e.waitJobs()

			sent := e.host.Sent()
			switch {
			case tc.wantText && (len(sent) != 1 || sent[0].Text != tc.text || sent[0].Media != nil):
				t.Errorf("sent %+v, want the text alone", sent)
			case !tc.wantText && len(sent) != 0:
				t.Errorf("sent %+v, want nothing", sent)
			}
			var notes strings.Builder
			for _, m := range e.fake.Replies(defaultChan, root.TS) {
				notes.WriteString(m.Text + "\n")
			}
			for _, w := range tc.note {
				if !strings.Contains(notes.String(), w) {
					t.Errorf("thread notes lack %q:\n%s", w, notes.String())
				}
			}
		})
	}
}

func TestOutboundFileDeletedOrUnreadable(t *testing.T) {
	t.Run("deleted before it was read", func(t *testing.T) {
		e, root := threadEnv(t)
		f := e.fake.AddFile("foto.jpg", "image/jpeg", "U0AGENT", jpeg)
		obj := e.fake.FileObject(e.apiBase(), f.ID, true)
		e.fake.DeleteFile(f.ID)
		e.hook(e.fileReply("EvF1", root.TS, "", obj), 0)
		e.waitJobs()
		if len(e.host.Sent()) != 0 || len(e.host.Uploads()) != 0 {
			t.Errorf("sent %+v", e.host.Sent())
		}
		if r := e.fake.Replies(defaultChan, root.TS); len(r) != 1 || !strings.Contains(r[0].Text, "the file was deleted in Slack") {
			t.Errorf("notes %+v", r)
		}
	})
	t.Run("the token may not read it", func(t *testing.T) {
		e, root := threadEnv(t)
		f := e.fake.AddFile("foto.jpg", "image/jpeg", "U0AGENT", jpeg)
		obj := e.fake.FileObject(e.apiBase(), f.ID, false)
		// A download without the bot's token is sent to sign in, as
		// files.slack.com does: the fake's token changes after the event.
		e.fake.SetToken("xoxb-other")
		e.hook(e.fileReply("EvF1", root.TS, "", obj), 0)
		e.waitJobs()
		e.fake.SetToken(slacktest.DefaultToken)
		if len(e.host.Sent()) != 0 {
			t.Errorf("sent %+v", e.host.Sent())
		}
		if e.fake.Files()[0].Downloads != 0 {
			t.Error("the fake served the file without the bot token")
		}
	})
	t.Run("a passing download failure is retried", func(t *testing.T) {
		e, root := threadEnv(t)
		e.c.settings().jobs.retryBase = time.Millisecond
		f := e.fake.AddFile("foto.jpg", "image/jpeg", "U0AGENT", jpeg)
		e.fake.FailNext(1, 503)
		e.hook(e.fileReply("EvF1", root.TS, "", e.fake.FileObject(e.apiBase(), f.ID, false)), 0)
		e.waitJobs()
		if sent := e.host.Sent(); len(sent) != 1 || sent[0].Media == nil {
			t.Errorf("sent %+v", sent)
		}
	})
}

func TestOutboundFileOnce(t *testing.T) {
	t.Run("Slack retries the event", func(t *testing.T) {
		e, root := threadEnv(t)
		f := e.fake.AddFile("foto.jpg", "image/jpeg", "U0AGENT", jpeg)
		body := e.fileReply("EvF1", root.TS, "oi", e.fake.FileObject(e.apiBase(), f.ID, false))
		for retry := range 3 {
			e.hook(body, retry)
		}
		e.waitJobs()
		e.hook(body, 3)
		e.waitJobs()
		if sent := e.host.Sent(); len(sent) != 1 {
			t.Errorf("sent %d messages, want 1: %+v", len(sent), sent)
		}
		if d := e.fake.Files()[0].Downloads; d != 1 {
			t.Errorf("downloaded %d times", d)
		}
	})
	t.Run("a job a crash left is taken up at the next start", func(t *testing.T) {
		e, root := threadEnv(t)
		f := e.fake.AddFile("foto.jpg", "image/jpeg", "U0AGENT", jpeg)
		obj := e.fake.FileObject(e.apiBase(), f.ID, false)
		var sf slackFile
		_ = json.Unmarshal(obj, &sf)
		jb := job{EventID: "EvF9", Channel: defaultChan, ThreadTS: root.TS, TS: "1795521609.000001", User: "U0AGENT", Text: "oi",
			To: ana.WAID, PhoneNumberID: phoneID, Files: []jobFile{{ID: f.ID, Name: sf.Name, Mimetype: sf.Mimetype, Size: sf.Size, URL: sf.URLPrivateDownload}}}
		raw, _ := json.Marshal(jb)
		_ = e.host.KV().Put(context.Background(), jobKey("EvF9"), raw)
		e.c = e.start()
		e.waitJobs()
		sent := e.host.Sent()
		if len(sent) != 1 || sent[0].Media == nil || sent[0].Media.Caption != "oi" || sent[0].IdempotencyKey != "EvF9:"+f.ID {
			t.Errorf("sent %+v", sent)
		}
		if _, found, _ := e.host.KV().Get(context.Background(), jobKey("EvF9")); found {
			t.Error("the job is still recorded")
		}
	})
}

// The bot's own file share (a customer's file, posted by the bot's user)
// is not an agent's reply.
func TestOwnFileShareIsNotSent(t *testing.T) {
	e, root := threadEnv(t)
	f := e.fake.AddFile("image.jpg", "image/jpeg", slacktest.BotUserID, jpeg)
	body := slacktest.EventCallback("EvOwn", fixedNow, slacktest.MessageEvent{
		User: slacktest.BotUserID, SubType: "file_share", TS: "1795521601.000009", ThreadTS: root.TS, Channel: defaultChan,
		Files: []json.RawMessage{e.fake.FileObject(e.apiBase(), f.ID, false)},
	})
	e.hook(body, 0)
	e.waitJobs()
	if len(e.host.Sent()) != 0 || len(e.host.Uploads()) != 0 {
		t.Errorf("the bot's own share was sent back: %+v", e.host.Sent())
	}
}

func TestOutboundSeveralFiles(t *testing.T) {
	e, root := threadEnv(t)
	img := e.fake.AddFile("foto.png", "image/png", "U0AGENT", jpeg)
	doc := e.fake.AddFile("nota.pdf", "application/pdf", "U0AGENT", pdf)
	e.hook(e.fileReply("EvF1", root.TS, "Seguem", e.fake.FileObject(e.apiBase(), img.ID, false), e.fake.FileObject(e.apiBase(), doc.ID, false)), 0)
	e.waitJobs()
	sent, ups := e.host.Sent(), e.host.Uploads()
	if len(sent) != 2 || len(ups) != 2 {
		t.Fatalf("sent %+v, stored %+v", sent, ups)
	}
	want := []sdk.OutboundMedia{{ID: ups[0].ID, Caption: "Seguem"}, {ID: ups[1].ID, Filename: "nota.pdf"}}
	for i, m := range sent {
		if m.Media == nil || *m.Media != want[i] || m.IdempotencyKey != "EvF1:"+[]string{img.ID, doc.ID}[i] {
			t.Errorf("message %d: %+v (media %+v), want %+v", i, m, m.Media, want[i])
		}
	}
	if ups[0].SHA256 != sum(jpeg) || ups[1].SHA256 != sum(pdf) {
		t.Error("stored bytes differ from the agent's files")
	}
}
