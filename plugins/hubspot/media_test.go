package hubspot_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
	"github.com/wahub/wahub/sdk"
)

// sample is a customer's file: deterministic bytes behind a real header,
// so that a test can tell any change of a byte.
type sample struct {
	name     string
	msgType  string
	mimeType string
	filename string
	voice    bool
	caption  string
	data     []byte
	// wantBody is in the communication's body; wantName is the file's
	// name in the file manager.
	wantBody, wantName string
}

func sampleBytes(header string, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	copy(b, header)
	return b
}

var samples = []sample{
	{name: "image", msgType: "image", mimeType: "image/jpeg", caption: "a caixa chegou amassada",
		data: sampleBytes("\xff\xd8\xff\xe0\x00\x10JFIF", 180<<10, 1), wantBody: "[image] a caixa chegou amassada", wantName: "whatsapp-image-20261124-120001.jpg"},
	{name: "voice note", msgType: "audio", mimeType: "audio/ogg; codecs=opus", voice: true,
		data: sampleBytes("OggS\x00\x02", 37<<10, 2), wantBody: "[audio]", wantName: "whatsapp-voice-note-20261124-120001.ogg"},
	{name: "pdf", msgType: "document", mimeType: "application/pdf", filename: "Fatura 2026-11.pdf",
		data: sampleBytes("%PDF-1.7\n", 1<<20+3, 3), wantBody: "[document: Fatura 2026-11.pdf]", wantName: "Fatura 2026-11.pdf"},
}

// mediaEvent is an inbound message carrying s's file under mediaID.
func mediaEvent(id string, ct *sdk.Contact, s sample, mediaID string) sdk.Event {
	ev := inbound(id, ct, 1, "")
	ev.Message.Type = s.msgType
	ev.Message.Media = &sdk.Media{ID: mediaID, MimeType: s.mimeType, Filename: s.filename, Caption: s.caption, Voice: s.voice,
		Size: int64(len(s.data)), State: sdk.MediaAvailable}
	return ev
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// An image, a voice note and a PDF each land in HubSpot's file manager
// byte for byte, private, in the configured folder, and are attached to
// the communication logged for the message.
func TestMediaAttached(t *testing.T) {
	for i, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.connector(map[string]any{"files_folder": "/WhatsApp/inbox"})
			mediaID := fmt.Sprintf("1%015d", i)
			e.host.AddMedia(sdk.MediaInfo{ID: mediaID, MimeType: s.mimeType, Filename: s.filename}, s.data)

			wantOutcome(t, deliver(t, c, mediaEvent("evt_m", ana, s, mediaID))["evt_m"], sdk.Delivered)
			files := e.fake.Files()
			if len(files) != 1 {
				t.Fatalf("%d files uploaded, want 1", len(files))
			}
			f := files[0]
			if f.SHA256 != hexSum(s.data) || f.Size != int64(len(s.data)) {
				t.Errorf("file %s: sha256 %s size %d, want %s %d (the bytes the customer sent)", f.ID, f.SHA256, f.Size, hexSum(s.data), len(s.data))
			}
			if f.Access != "PRIVATE" || f.Path != "/WhatsApp/inbox/"+s.wantName || f.ContentType != s.mimeType {
				t.Errorf("file access %s path %s content type %s, want PRIVATE /WhatsApp/inbox/%s %s", f.Access, f.Path, f.ContentType, s.wantName, s.mimeType)
			}
			comms := e.fake.Communications()
			if len(comms) != 1 {
				t.Fatalf("%d communications, want 1", len(comms))
			}
			if got := comms[0].Properties["hs_attachment_ids"]; got != f.ID {
				t.Errorf("hs_attachment_ids = %q, want the file %s", got, f.ID)
			}
			containsAll(t, "body", comms[0].Properties["hs_communication_body"], "Received from Ana Souza: "+s.wantBody)
			if strings.Contains(comms[0].Properties["hs_communication_body"], "could not") {
				t.Errorf("body %q speaks of a failure", comms[0].Properties["hs_communication_body"])
			}
			if got := e.kv("file:evt_m:" + mediaID); got != f.ID {
				t.Errorf("KV file:evt_m:%s = %q, want %s", mediaID, got, f.ID)
			}
		})
	}
}

// A message the hub sent with a file (an agent's attachment) is logged
// with that file too.
func TestOutboundMediaAttached(t *testing.T) {
	e := newEnv(t)
	c := e.connector(nil)
	data := sampleBytes("%PDF-1.4\n", 4000, 9)
	info, err := e.host.PutMedia(context.Background(), sdk.MediaUpload{MimeType: "application/pdf", Filename: "proposta.pdf"}, strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	ev := outbound("evt_out", ana, 2, "")
	ev.Message.Type = "document"
	ev.Message.Media = &sdk.Media{ID: info.ID, MimeType: "application/pdf", Filename: "proposta.pdf", State: sdk.MediaAvailable}
	wantOutcome(t, deliver(t, c, ev)["evt_out"], sdk.Delivered)
	files := e.fake.Files()
	if len(files) != 1 || files[0].SHA256 != hexSum(data) || files[0].Path != "/WhatsApp/proposta.pdf" {
		t.Fatalf("files %+v, want proposta.pdf with the agent's bytes in /WhatsApp", files)
	}
	comms := e.fake.Communications()
	if len(comms) != 1 || comms[0].Properties["hs_attachment_ids"] != files[0].ID {
		t.Fatalf("communications %+v, want one with the file attached", comms)
	}
	containsAll(t, "body", comms[0].Properties["hs_communication_body"], "Sent to Ana Souza (connector:slack): [document: proposta.pdf]")
}

// A file the hub cannot provide leaves the message logged with a note
// saying so, and the event delivered: a lost file never blocks the
// conversation.
func TestMediaUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		state    sdk.MediaState
		reason   string
		wantNote string
	}{
		{"marked unavailable in the event", sdk.MediaUnavailable, "the media id is gone at Meta", "(the image could not be retrieved: the media id is gone at Meta)"},
		{"unavailable when opened", sdk.MediaAvailable, "", "(the image could not be retrieved: no media \"1999\")"},
		{"pending and lost", sdk.MediaPending, "", "(the image could not be retrieved: no media \"1999\")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			c := e.connector(nil)
			ev := mediaEvent("evt_u", ana, samples[0], "1999")
			ev.Message.Media.State, ev.Message.Media.Reason = tc.state, tc.reason
			wantOutcome(t, deliver(t, c, ev)["evt_u"], sdk.Delivered)
			if n := len(e.fake.Files()); n != 0 {
				t.Errorf("%d files uploaded, want none", n)
			}
			comms := e.fake.Communications()
			if len(comms) != 1 {
				t.Fatalf("%d communications, want 1", len(comms))
			}
			if _, ok := comms[0].Properties["hs_attachment_ids"]; ok {
				t.Errorf("hs_attachment_ids set on a message whose file is lost")
			}
			containsAll(t, "body", comms[0].Properties["hs_communication_body"], "[image] a caixa chegou amassada", tc.wantNote)
		})
	}
}

// A redelivery never uploads the file twice: not after the
// communication failed behind a successful upload, not in a new plugin
// process, not after everything was logged.
func TestMediaRedeliveryUploadsOnce(t *testing.T) {
	e := newEnv(t)
	s := samples[2]
	e.host.AddMedia(sdk.MediaInfo{ID: "1777", MimeType: s.mimeType}, s.data)
	ev := mediaEvent("evt_r", ana, s, "1777")

	e.fake.Script(hubspottest.Fault{Status: http.StatusInternalServerError, Method: http.MethodPost, Path: hubspottest.PathCommunications})
	wantOutcome(t, deliver(t, e.connector(nil), ev)["evt_r"], sdk.Retry)
	if n := len(e.fake.Files()); n != 1 {
		t.Fatalf("%d files after the first attempt, want 1", n)
	}
	// The plugin restarted; the hub redelivers.
	wantOutcome(t, deliver(t, e.connector(nil), ev)["evt_r"], sdk.Delivered)
	wantOutcome(t, deliver(t, e.connector(nil), ev)["evt_r"], sdk.Delivered)
	files := e.fake.Files()
	if len(files) != 1 {
		t.Fatalf("%d files after redeliveries, want 1", len(files))
	}
	comms := e.fake.Communications()
	if len(comms) != 1 || comms[0].Properties["hs_attachment_ids"] != files[0].ID {
		t.Fatalf("communications %+v, want one with file %s", comms, files[0].ID)
	}
	if n := e.fake.Calls(http.MethodPost, hubspottest.PathFiles); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
}

// The Files API's errors are classified like the connector's others:
// limits and outages retry, a missing scope fails with what to fix, a
// file HubSpot refuses is noted on a delivered message.
func TestMediaUploadErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    *hubspottest.Fault
		maxSize  int64
		scopes   []string
		want     sdk.Outcome
		wantErr  string
		wantNote string
	}{
		{name: "5xx", fault: &hubspottest.Fault{Status: http.StatusBadGateway}, want: sdk.Retry, wantErr: "HubSpot failed to upload a WhatsApp file"},
		{name: "429", fault: &hubspottest.Fault{Status: http.StatusTooManyRequests}, want: sdk.Retry, wantErr: "ten-secondly limit"},
		{name: "lost answer", fault: &hubspottest.Fault{Status: http.StatusGatewayTimeout, AfterProcessing: true}, want: sdk.Retry},
		{name: "no files scope", scopes: []string{hubspottest.ScopeContactsRead, hubspottest.ScopeContactsWrite}, want: sdk.Failed,
			wantErr: "lacks the scope files needed to upload a WhatsApp file"},
		{name: "invalid", fault: &hubspottest.Fault{Status: http.StatusBadRequest}, want: sdk.Delivered, wantNote: "(the document could not be attached: HubSpot refused the file"},
		{name: "too large", maxSize: 1 << 20, want: sdk.Delivered, wantNote: "(the document could not be attached: HubSpot refused the file (File exceeds the maximum upload size of 1048576 bytes))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.fault != nil {
				f := *tc.fault
				f.Method, f.Path = http.MethodPost, hubspottest.PathFiles
				e.fake.Script(f)
			}
			if tc.maxSize > 0 {
				e.fake.SetMaxFileSize(tc.maxSize)
			}
			if tc.scopes != nil {
				e.fake.SetScopes(tc.scopes...)
			}
			s := samples[2]
			e.host.AddMedia(sdk.MediaInfo{ID: "1555", MimeType: s.mimeType}, s.data)
			res := deliver(t, e.connector(nil), mediaEvent("evt_e", ana, s, "1555"))["evt_e"]
			wantOutcome(t, res, tc.want)
			if tc.wantErr != "" && !strings.Contains(res.Error, tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", res.Error, tc.wantErr)
			}
			comms := e.fake.Communications()
			if tc.want != sdk.Delivered {
				if len(comms) != 0 {
					t.Errorf("%d communications logged for an event to retry or fail, want 0", len(comms))
				}
				return
			}
			if len(comms) != 1 {
				t.Fatalf("%d communications, want 1", len(comms))
			}
			containsAll(t, "body", comms[0].Properties["hs_communication_body"], "[document: Fatura 2026-11.pdf]", tc.wantNote)
		})
	}
}

// attach_media: false logs the message as before, with no upload.
func TestAttachMediaOff(t *testing.T) {
	e := newEnv(t)
	s := samples[0]
	e.host.AddMedia(sdk.MediaInfo{ID: "1888", MimeType: s.mimeType}, s.data)
	wantOutcome(t, deliver(t, e.connector(map[string]any{"attach_media": false}), mediaEvent("evt_o", ana, s, "1888"))["evt_o"], sdk.Delivered)
	if n := e.fake.Calls(http.MethodPost, hubspottest.PathFiles); n != 0 {
		t.Errorf("%d uploads with attach_media false, want 0", n)
	}
	if comms := e.fake.Communications(); len(comms) != 1 || comms[0].Properties["hs_attachment_ids"] != "" {
		t.Errorf("communications %+v, want one without attachment", comms)
	}
}

// In an account whose communications refuse hs_attachment_ids, the file
// goes on a note beside the communication, found out once: later files
// go there directly; a note that fails is retried without logging the
// message twice.
func TestMediaOnNoteWhenCommunicationsRefuseAttachments(t *testing.T) {
	e := newEnv(t, hubspottest.WithoutCommunicationAttachments())
	c := e.connector(nil)
	img, pdf := samples[0], samples[2]
	e.host.AddMedia(sdk.MediaInfo{ID: "1301", MimeType: img.mimeType}, img.data)
	e.host.AddMedia(sdk.MediaInfo{ID: "1302", MimeType: pdf.mimeType}, pdf.data)

	wantOutcome(t, deliver(t, c, mediaEvent("evt_n1", ana, img, "1301"))["evt_n1"], sdk.Delivered)
	e.fake.Script(hubspottest.Fault{Status: http.StatusBadGateway, Method: http.MethodPost, Path: hubspottest.PathNotes})
	ev2 := mediaEvent("evt_n2", ana, pdf, "1302")
	wantOutcome(t, deliver(t, c, ev2)["evt_n2"], sdk.Retry)
	wantOutcome(t, deliver(t, c, ev2)["evt_n2"], sdk.Delivered)

	comms, notes, files := e.fake.Communications(), e.fake.Notes(), e.fake.Files()
	if len(comms) != 2 || len(notes) != 2 || len(files) != 2 {
		t.Fatalf("%d communications, %d notes, %d files; want 2 of each", len(comms), len(notes), len(files))
	}
	for i, s := range []sample{img, pdf} {
		if comms[i].Properties["hs_attachment_ids"] != "" {
			t.Errorf("communication %d has attachments in an account that refuses them", i)
		}
		containsAll(t, "communication", comms[i].Properties["hs_communication_body"], s.wantBody, "(the "+map[int]string{0: "image", 1: "document"}[i]+" is attached to the note beside this message)")
		if notes[i].Properties["hs_attachment_ids"] != files[i].ID || files[i].SHA256 != hexSum(s.data) {
			t.Errorf("note %d attachments %q, want file %s with the customer's bytes", i, notes[i].Properties["hs_attachment_ids"], files[i].ID)
		}
		if notes[i].Properties["hs_timestamp"] != comms[i].Properties["hs_timestamp"] || len(notes[i].Associations) != 1 || notes[i].Associations[0].TypeID != 202 {
			t.Errorf("note %d: %+v, want it beside the communication on the contact", i, notes[i])
		}
	}
	containsAll(t, "note", notes[0].Properties["hs_note_body"], "WhatsApp image from Ana Souza", "a caixa chegou amassada")
	containsAll(t, "note", notes[1].Properties["hs_note_body"], "WhatsApp document from Ana Souza: Fatura 2026-11.pdf")
	// One refused communication to find out, then none.
	refused := 0
	for _, r := range e.fake.Requests() {
		if r.Path == hubspottest.PathCommunications && r.Status == http.StatusBadRequest {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("%d communications refused, want 1 (the first, to find out)", refused)
	}
}
