package bitrix24

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/sdk"
)

// sample is a customer's file: deterministic bytes behind a real header.
type sample struct {
	name, msgType, mimeType, filename, caption string
	voice                                      bool
	data                                       []byte
	wantText, wantName                         string
}

func sampleBytes(header string, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	copy(b, header)
	return b
}

// Sizes not multiples of 3, so that base64 padding is exercised.
var samples = []sample{
	{name: "image", msgType: "image", mimeType: "image/jpeg", caption: "a caixa chegou amassada",
		data: sampleBytes("\xff\xd8\xff\xe0\x00\x10JFIF", 180<<10+1, 1), wantText: "[image] a caixa chegou amassada", wantName: "whatsapp-image-20261124-120005.jpg"},
	{name: "voice note", msgType: "audio", mimeType: "audio/ogg; codecs=opus", voice: true,
		data: sampleBytes("OggS\x00\x02", 37<<10+2, 2), wantText: "[audio]", wantName: "whatsapp-voice-note-20261124-120005.ogg"},
	{name: "pdf", msgType: "document", mimeType: "application/pdf", filename: "Fatura 2026-11.pdf",
		data: sampleBytes("%PDF-1.7\n", 1<<20, 3), wantText: "[document: Fatura 2026-11.pdf]", wantName: "Fatura 2026-11.pdf"},
}

// mediaMsg is an inbound message of wa carrying s's file as mediaID.
func mediaMsg(id, wa string, s sample, mediaID string) sdk.Event {
	ev := msg(id, wa, "Ana", "")
	ev.Message.Type = s.msgType
	ev.Message.Media = &sdk.Media{ID: mediaID, MimeType: s.mimeType, Filename: s.filename, Caption: s.caption, Voice: s.voice,
		Size: int64(len(s.data)), State: sdk.MediaAvailable}
	return ev
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

const anaWA = "5511987650001"

// An image, a voice note and a PDF are attached to the message's
// timeline comment byte for byte, under the customer's file name or one
// made of the kind and time.
func TestMediaOnTimeline(t *testing.T) {
	for _, s := range samples {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t)
			r, _ := e.start(e.config(nil))
			e.host.AddMedia(sdk.MediaInfo{ID: "1001", MimeType: s.mimeType, Filename: s.filename}, s.data)
			wantOutcome(t, deliver(t, r, mediaMsg("evt_m", anaWA, s, "1001")), "evt_m", sdk.Delivered)
			cs := e.fake.Comments()
			if len(cs) != 1 {
				t.Fatalf("%d comments, want 1", len(cs))
			}
			if !strings.Contains(cs[0].Text, "WhatsApp message from Ana (+5511987650001)") || !strings.HasSuffix(cs[0].Text, ":\n"+s.wantText) {
				t.Errorf("comment %q, want the message ending in %q", cs[0].Text, s.wantText)
			}
			if len(cs[0].Files) != 1 {
				t.Fatalf("comment has %d files, want 1", len(cs[0].Files))
			}
			f := cs[0].Files[0]
			if f.SHA256 != hexSum(s.data) || f.Size != len(s.data) || f.Name != s.wantName {
				t.Errorf("file %s (%d bytes, %s), want %s (%d bytes, %s): not the customer's file", f.Name, f.Size, f.SHA256, s.wantName, len(s.data), hexSum(s.data))
			}
			if raw, ok, _ := e.host.KV().Get(t.Context(), eventKey("evt_m")); !ok || !strings.Contains(string(raw), `"comment"`) {
				t.Errorf("KV %s = %s, want the comment recorded", eventKey("evt_m"), raw)
			}
		})
	}
}

// Within a conversation the comment with the file keeps its place:
// the texts around it go before and after, in their own calls.
func TestMediaKeepsOrder(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	s := samples[0]
	e.host.AddMedia(sdk.MediaInfo{ID: "1002", MimeType: s.mimeType}, s.data)
	evs := msgs("evt_", anaWA, "Ana", 4)
	evs[2] = mediaMsg(evs[2].ID, anaWA, s, "1002")
	evs[2].OccurredAt = evs[1].OccurredAt.Add(1)
	res := deliver(t, r, evs...)
	for _, ev := range evs {
		wantOutcome(t, res, ev.ID, sdk.Delivered)
	}
	cs := e.fake.Comments()
	if len(cs) != 4 {
		t.Fatalf("%d comments, want 4", len(cs))
	}
	for i, want := range []string{"message 1", "message 2", "[image] a caixa chegou amassada", "message 4"} {
		if !strings.HasSuffix(cs[i].Text, want) {
			t.Errorf("comment %d = %q, want it to end in %q (order)", i, cs[i].Text, want)
		}
		if n := len(cs[i].Files); (i == 2) != (n == 1) {
			t.Errorf("comment %d has %d files", i, n)
		}
	}
	if got := strings.Join(methods(e.fake), " "); !strings.Contains(got, "batch(crm.timeline.comment.add,crm.timeline.comment.add) crm.timeline.comment.add crm.timeline.comment.add") {
		t.Errorf("calls %s: want the two texts in a batch, then the file alone, then the last text", got)
	}
}

// Another conversation's comments are not held up by a file: each
// round a file goes alone, the others follow.
func TestMediaTwoConversations(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	s := samples[1]
	e.host.AddMedia(sdk.MediaInfo{ID: "1003", MimeType: s.mimeType}, s.data)
	a := mediaMsg("evt_a", anaWA, s, "1003")
	b := msg("evt_b", "5521998760002", "Bruno", "bom dia")
	res := deliver(t, r, a, b)
	wantOutcome(t, res, "evt_a", sdk.Delivered)
	wantOutcome(t, res, "evt_b", sdk.Delivered)
	if f := e.fake.Files(); len(f) != 1 || f[0].SHA256 != hexSum(s.data) {
		t.Errorf("files %+v, want the voice note", f)
	}
	if n := len(e.fake.Comments()); n != 2 {
		t.Errorf("%d comments, want 2", n)
	}
}

// A file the hub cannot provide: the comment says so and the event is
// delivered.
func TestMediaUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		state    sdk.MediaState
		reason   string
		wantNote string
	}{
		{"marked unavailable", sdk.MediaUnavailable, "the media id is gone at Meta", "(the image could not be retrieved: the media id is gone at Meta)"},
		{"unavailable when opened", sdk.MediaAvailable, "", "(the image could not be retrieved: no media \"1999\")"},
		{"pending and lost", sdk.MediaPending, "", "(the image could not be retrieved: no media \"1999\")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, _ := e.start(e.config(nil))
			ev := mediaMsg("evt_u", anaWA, samples[0], "1999")
			ev.Message.Media.State, ev.Message.Media.Reason = tc.state, tc.reason
			wantOutcome(t, deliver(t, r, ev), "evt_u", sdk.Delivered)
			cs := e.fake.Comments()
			if len(cs) != 1 || len(cs[0].Files) != 0 {
				t.Fatalf("comments %+v, want one without files", cs)
			}
			if !strings.HasSuffix(cs[0].Text, "[image] a caixa chegou amassada\n"+tc.wantNote) {
				t.Errorf("comment %q, want it to end in the note %q", cs[0].Text, tc.wantNote)
			}
		})
	}
}

// A redelivered event never attaches its file twice, also after the
// first try failed and in a new plugin process.
func TestMediaRedelivery(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	s := samples[2]
	e.host.AddMedia(sdk.MediaInfo{ID: "1004", MimeType: s.mimeType}, s.data)
	ev := mediaMsg("evt_r", anaWA, s, "1004")
	e.fake.Script(bitrix24test.Fault{Method: "crm.timeline.comment.add", Status: 500})
	wantOutcome(t, deliver(t, r, ev), "evt_r", sdk.Retry)
	if n := len(e.fake.Comments()); n != 0 {
		t.Fatalf("%d comments after a failed call, want 0", n)
	}
	r2, _ := e.start(e.config(nil))
	wantOutcome(t, deliver(t, r2, ev), "evt_r", sdk.Delivered)
	wantOutcome(t, deliver(t, r2, ev), "evt_r", sdk.Delivered)
	files := e.fake.Files()
	if len(files) != 1 || files[0].SHA256 != hexSum(s.data) || len(e.fake.Comments()) != 1 {
		t.Fatalf("files %+v, %d comments: want one comment with the PDF", files, len(e.fake.Comments()))
	}
}

// The upload's errors are classified like every call's: the portal's
// bucket is waited out in place (the file streamed again, whole),
// outages retry, a rejected webhook fails, a body the portal refuses
// becomes a comment saying so.
func TestMediaErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     *bitrix24test.Fault
		maxReq    int64
		want      sdk.Outcome
		wantFile  bool
		wantNote  string
		wantError string
	}{
		{name: "query limit", fault: &bitrix24test.Fault{Method: "crm.timeline.comment.add", Status: 503, Error: "QUERY_LIMIT_EXCEEDED", Description: "Too many requests"}, want: sdk.Delivered, wantFile: true},
		{name: "time limit", fault: &bitrix24test.Fault{Method: "crm.timeline.comment.add", Status: 429}, want: sdk.Retry, wantError: "OPERATION_TIME_LIMIT"},
		{name: "5xx", fault: &bitrix24test.Fault{Method: "crm.timeline.comment.add", Status: 502}, want: sdk.Retry},
		{name: "webhook rejected", fault: &bitrix24test.Fault{Method: "crm.timeline.comment.add", Status: 401}, want: sdk.Failed, wantError: "NO_AUTH_FOUND"},
		{name: "refused file", fault: &bitrix24test.Fault{Method: "crm.timeline.comment.add", Status: 400, Error: "INVALID_ARG_VALUE", Description: "File is too big"}, want: sdk.Delivered,
			wantNote: "(the document could not be attached: the portal refused it (INVALID_ARG_VALUE: File is too big))"},
		{name: "body too large", maxReq: 1 << 20, want: sdk.Delivered, wantNote: "(the document could not be attached: the portal refused it (413"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r, _ := e.start(e.config(nil))
			s := samples[2]
			e.host.AddMedia(sdk.MediaInfo{ID: "1005", MimeType: s.mimeType}, s.data)
			if tc.fault != nil {
				e.fake.Script(*tc.fault)
			}
			if tc.maxReq > 0 {
				e.fake.SetMaxRequest(tc.maxReq)
			}
			res := wantOutcome(t, deliver(t, r, mediaMsg("evt_e", anaWA, s, "1005")), "evt_e", tc.want)
			if tc.wantError != "" && !strings.Contains(res.Error, tc.wantError) {
				t.Errorf("error %q, want %q in it", res.Error, tc.wantError)
			}
			cs := e.fake.Comments()
			if tc.want != sdk.Delivered {
				if len(cs) != 0 {
					t.Errorf("%d comments for an event not delivered", len(cs))
				}
				return
			}
			if len(cs) != 1 {
				t.Fatalf("%d comments, want 1", len(cs))
			}
			if tc.wantFile != (len(cs[0].Files) == 1) {
				t.Fatalf("comment files %d, want file: %v", len(cs[0].Files), tc.wantFile)
			}
			if tc.wantFile && cs[0].Files[0].SHA256 != hexSum(s.data) {
				t.Errorf("file after a retry is not the customer's")
			}
			if tc.wantNote != "" && !strings.Contains(cs[0].Text, tc.wantNote) {
				t.Errorf("comment %q, want the note %q", cs[0].Text, tc.wantNote)
			}
		})
	}
}

// A record a user deleted since the KV remembered it: the customer is
// looked up again and the file lands on the new record.
func TestMediaStaleRecord(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(nil))
	wantOutcome(t, deliver(t, r, msg("evt_1", anaWA, "Ana", "oi")), "evt_1", sdk.Delivered)
	old := e.fake.Contacts()[0].ID
	e.fake.DeleteContact(old)
	s := samples[0]
	e.host.AddMedia(sdk.MediaInfo{ID: "1006", MimeType: s.mimeType}, s.data)
	wantOutcome(t, deliver(t, r, mediaMsg("evt_2", anaWA, s, "1006")), "evt_2", sdk.Delivered)
	cts := e.fake.Contacts()
	if len(cts) != 1 || cts[0].ID == old {
		t.Fatalf("contacts %+v, want a new one", cts)
	}
	cs := commentsFor(e.fake, "contact", cts[0].ID)
	if len(cs) != 1 || len(cs[0].Files) != 1 || cs[0].Files[0].SHA256 != hexSum(s.data) {
		t.Fatalf("comments on the new contact %+v, want the image", cs)
	}
}

// attach_media: false comments as before, without the file.
func TestAttachMediaOff(t *testing.T) {
	e := newEnv(t)
	r, _ := e.start(e.config(map[string]any{"attach_media": false}))
	s := samples[0]
	e.host.AddMedia(sdk.MediaInfo{ID: "1007", MimeType: s.mimeType}, s.data)
	wantOutcome(t, deliver(t, r, mediaMsg("evt_o", anaWA, s, "1007")), "evt_o", sdk.Delivered)
	if f := e.fake.Files(); len(f) != 0 {
		t.Errorf("%d files with attach_media false", len(f))
	}
}
