package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/plugins/freshdesk/freshdesktest"
	"github.com/wahub/wahub/plugins/zendesk/zendesktest"
)

// Media through the helpdesks (issue 18), with the real binary: a
// customer's photo, voice note and PDF are fetched from the Graph fake by
// the hub and reach the Zendesk and Freshdesk fakes byte-identical; a
// media id that is gone still delivers its message, saying the file could
// not be retrieved; an agent's attachment on a Zendesk or Freshdesk reply
// is downloaded by the connector, stored in the hub byte-identical and
// reaches the Graph fake as an upload plus a media message with the same
// bytes; a file WhatsApp refuses is explained in a private note.

// hdMediaFile is a customer's file as the test sends it.
type hdMediaFile struct {
	typ, mime, filename, caption string
	voice                        bool
	data                         []byte
}

func hdSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// hdBytes is deterministic content of n bytes that differs per seed.
func hdBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed ^ byte(i*31) ^ byte(i>>9)
	}
	return b
}

// hdPostMedia posts a signed webhook with one media message, as Meta
// sends it: the media id and the base64 sha256, no bytes.
func hdPostMedia(h *hubProc, waID, wamid string, f hdMediaFile, mf graphtest.MediaFile, at time.Time) {
	h.t.Helper()
	media := map[string]any{"id": mf.ID, "mime_type": f.mime, "sha256": mf.SHA256Base64}
	if f.caption != "" {
		media["caption"] = f.caption
	}
	if f.filename != "" {
		media["filename"] = f.filename
	}
	if f.voice {
		media["voice"] = true
	}
	msg := map[string]any{"from": waID, "id": wamid, "timestamp": fmt.Sprint(at.Unix()), "type": f.typ, f.typ: media}
	body, _ := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": "102290129340398", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]any{"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
			"contacts":          []any{map[string]any{"profile": map[string]any{"name": "Ana Souza"}, "wa_id": waID}},
			"messages":          []any{msg},
		}}}}},
	})
	h.postRaw(body)
}

// hdFiles are the customer's three files.
func hdFiles() []hdMediaFile {
	return []hdMediaFile{
		{typ: "image", mime: "image/jpeg", caption: "Foto do produto quebrado", data: hdBytes(1, 180<<10)},
		{typ: "audio", mime: "audio/ogg", voice: true, data: hdBytes(2, 23<<10)},
		{typ: "document", mime: "application/pdf", filename: "comprovante.pdf", caption: "segue o comprovante", data: hdBytes(3, 1<<20+333)},
	}
}

// hdFake is what the test needs of either helpdesk's fake, on top of
// helpdeskFake.
type hdFake interface {
	helpdeskFake
	// files are the sha256 (hex) of the customer's files attached to
	// tickets, in order.
	files(t *testing.T) []string
	// agentReplyFiles adds an agent's public reply with files and returns
	// what identifies it for hookRequest.
	agentReplyFiles(t *testing.T, ticketID int64, text string, files ...hdMediaFile) int64
}

type hdZendesk struct{ *helpdeskZendesk }

func (z hdZendesk) files(t *testing.T) []string {
	var out []string
	for _, tk := range z.fake.Tickets() {
		for _, c := range tk.Comments {
			if c.AuthorID != tk.RequesterID {
				continue
			}
			for _, a := range c.Attachments {
				data, ok := z.fake.AttachmentBytes(a.ID)
				if !ok {
					t.Fatalf("zendesk attachment %d has no bytes", a.ID)
				}
				out = append(out, hdSHA(data))
			}
		}
	}
	return out
}

func (z hdZendesk) agentReplyFiles(t *testing.T, ticketID int64, text string, files ...hdMediaFile) int64 {
	t.Helper()
	var zf []zendesktest.File
	for _, f := range files {
		zf = append(zf, zendesktest.File{Name: f.filename, ContentType: f.mime, Data: f.data})
	}
	id, err := z.fake.AgentCommentFiles(ticketID, text, true, zf...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type hdFreshdesk struct{ *helpdeskFreshdesk }

func (f hdFreshdesk) files(t *testing.T) []string {
	var out []string
	add := func(list []any) {
		for _, v := range list {
			a, ok := v.(freshdesktest.Attachment)
			if !ok {
				t.Fatalf("freshdesk attachment %#v", v)
			}
			data, _ := f.fake.FileBytes(a.ID)
			out = append(out, hdSHA(data))
		}
	}
	for _, tk := range f.fake.Tickets() {
		add(tk.Attachments)
		for _, c := range tk.Conversations {
			if c.Incoming {
				add(c.Attachments)
			}
		}
	}
	return out
}

func (f hdFreshdesk) agentReplyFiles(t *testing.T, ticketID int64, text string, files ...hdMediaFile) int64 {
	t.Helper()
	var ff []freshdesktest.File
	for _, m := range files {
		ff = append(ff, freshdesktest.File{Name: m.filename, ContentType: m.mime, Data: m.data})
	}
	c, err := f.fake.AgentReplyFiles(ticketID, text, ff...)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func TestMediaHelpdesk(t *testing.T) {
	for _, tc := range []struct {
		plugin, connector string
		newFake           func(*testing.T) hdFake
	}{
		{"zendesk", "media-zendesk", func(t *testing.T) hdFake { return hdZendesk{helpdeskNewZendesk(t).(*helpdeskZendesk)} }},
		{"freshdesk", "media-freshdesk", func(t *testing.T) hdFake { return hdFreshdesk{helpdeskNewFreshdesk(t).(*helpdeskFreshdesk)} }},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			t.Parallel()
			hdMediaRun(t, tc.connector, tc.plugin, tc.newFake(t))
		})
	}
}

func hdMediaRun(t *testing.T, connector, plugin string, fake hdFake) {
	graph, graphURL := newGraph(t)
	h := newHub(t, helpdeskConfig(graphURL, connector, plugin, fake.config()))
	hookURL := h.url("/hooks/" + connector)

	// The customer's photo, voice note and PDF, then a file whose media
	// id is gone at Meta.
	files := hdFiles()
	var want []string
	now := time.Now()
	for i, f := range files {
		mf := graph.AddMedia("", f.mime, f.filename, f.data)
		hdPostMedia(h, helpdeskCustomerOpen, fmt.Sprintf("wamid.media-hd-%d", i), f, mf, now)
		want = append(want, hdSHA(f.data))
	}
	gone := graph.AddMedia("", "image/png", "", hdBytes(9, 4000))
	graph.RemoveMedia(gone.ID)
	hdPostMedia(h, helpdeskCustomerOpen, "wamid.media-hd-gone", hdMediaFile{typ: "image", mime: "image/png", caption: "outra foto"}, gone, now)

	tks := helpdeskWait(t, fake, "the three files and the lost one on the ticket", func(tks []helpdeskTicket) bool {
		return len(tks) == 1 && len(tks[0].customerEntries()) >= 4
	})
	helpdeskWaitIdle(h, connector)
	tks = fake.tickets()
	if len(tks) != 1 {
		t.Fatalf("%d tickets, want 1:%s", len(tks), helpdeskDump(fake))
	}
	entries := tks[0].customerEntries()
	if len(entries) != 4 {
		t.Fatalf("%d customer entries, want the four messages once each:%s", len(entries), helpdeskDump(fake))
	}
	if got := fake.files(t); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("files at the helpdesk (sha256) %q, want the customer's %q, byte-identical and in order", got, want)
	}
	for i, has := range []string{"Foto do produto quebrado", "Voice message", "comprovante.pdf", "could not be retrieved"} {
		if !strings.Contains(entries[i].Body, has) {
			t.Errorf("entry %d %q lacks %q", i, entries[i].Body, has)
		}
	}

	// An agent's reply with a PDF: the file reaches the hub's media store
	// byte-identical (Host.PutMedia), however often the webhook comes.
	const text = "Segue a segunda via."
	pdf := hdMediaFile{mime: "application/pdf", filename: "segunda_via.pdf", data: hdBytes(7, 300<<10)}
	replyID := fake.agentReplyFiles(t, tks[0].ID, text, pdf)
	for i := range 2 {
		if code, body := helpdeskDo(t, fake.hookRequest(t, hookURL, tks[0].ID, replyID, true)); code != 200 {
			t.Fatalf("webhook %d: %d %s", i+1, code, body)
		}
	}
	id := media.HubID(hdSHA(pdf.data))
	code, got := hdGetMedia(t, h, id)
	if code != 200 || hdSHA(got) != hdSHA(pdf.data) {
		t.Errorf("GET /api/v1/media/%s: %d, %d bytes (sha256 %s), want the agent's PDF (sha256 %s)", id, code, len(got), hdSHA(got), hdSHA(pdf.data))
	}
	hdAgentAttachmentSent(t, h, graph, fake, tks[0].ID, hookURL, pdf, text)
}

// hdAgentAttachmentSent follows the agent's PDF (already handed to the
// hub) to the Graph fake: one upload with the same bytes and one document
// message with it, and the reply's text once, although the webhook came
// twice. Then a file of a type WhatsApp does not send and an image over
// its 5 MB: no upload, no message, and a private note tells the agent
// why.
func hdAgentAttachmentSent(t *testing.T, h *hubProc, graph *graphtest.Server, fake hdFake, ticketID int64, hookURL string, pdf hdMediaFile, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(hdMediaSent(graph, helpdeskCustomerOpen)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no media message reached the Graph API within 30s; it holds:%s\nthe helpdesk:%s", helpdeskSentDump(graph), helpdeskDump(fake))
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitOutboxSettled()
	media := hdMediaSent(graph, helpdeskCustomerOpen)
	ups := graph.Uploads()
	if len(media) != 1 || len(ups) != 1 {
		t.Fatalf("%d media messages and %d uploads, want one each:%s", len(media), len(ups), helpdeskSentDump(graph))
	}
	if ups[0].SHA256 != hdSHA(pdf.data) || media[0].MediaID != ups[0].ID || media[0].Kind != "document" || media[0].Filename != pdf.filename {
		t.Errorf("upload %+v and message %+v, want the agent's PDF (sha256 %s) sent as a document", ups[0], media[0], hdSHA(pdf.data))
	}
	texts := 0
	for _, s := range helpdeskSentTo(graph, helpdeskCustomerOpen) {
		if s.Text == text {
			texts++
		}
	}
	if texts != 1 {
		t.Errorf("the reply's text was sent %d times, want once:%s", texts, helpdeskSentDump(graph))
	}

	for _, f := range []struct {
		file hdMediaFile
		code string
	}{
		{hdMediaFile{mime: "application/x-msdownload", filename: "setup.exe", data: hdBytes(8, 2000)}, "media_type"},
		{hdMediaFile{mime: "image/jpeg", filename: "foto_grande.jpg", data: hdBytes(9, 6<<20)}, "media_too_large"},
	} {
		replyID := fake.agentReplyFiles(t, ticketID, "", f.file)
		if code, body := helpdeskDo(t, fake.hookRequest(t, hookURL, ticketID, replyID, true)); code != 200 {
			t.Fatalf("webhook: %d %s", code, body)
		}
		helpdeskWait(t, fake, "a private note about "+f.file.filename+" ("+f.code+")", func(tks []helpdeskTicket) bool {
			for _, n := range tks[0].privateNotes() {
				if strings.Contains(n.Body, f.file.filename) && strings.Contains(n.Body, f.code) {
					return true
				}
			}
			return false
		})
	}
	h.waitOutboxSettled()
	if n := len(graph.Uploads()); n != 1 {
		t.Errorf("%d uploads after two refused files, want still 1", n)
	}
	if n := len(hdMediaSent(graph, helpdeskCustomerOpen)); n != 1 {
		t.Errorf("%d media messages after two refused files, want still 1", n)
	}
}

// hdMediaSent returns the media messages the Graph fake accepted for waID.
func hdMediaSent(graph *graphtest.Server, waID string) []graphtest.Sent {
	var out []graphtest.Sent
	for _, s := range helpdeskSentTo(graph, waID) {
		if s.MediaID != "" || s.Link != "" {
			out = append(out, s)
		}
	}
	return out
}

// hdGetMedia reads a file the hub keeps, as an admin.
func hdGetMedia(t *testing.T, h *hubProc, id string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", h.url("/api/v1/media/"+id), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestMediaHelpdeskKilledMidUpload kills the hub and its helpdesk plugin
// (SIGKILL, the whole process group) while the customer's file is half
// uploaded to Zendesk (POST /api/v2/uploads) or Freshdesk (the note's
// multipart body): after a restart the message is on the ticket once,
// with the file attached once and byte-identical.
func TestMediaHelpdeskKilledMidUpload(t *testing.T) {
	for _, tc := range []struct {
		plugin string
		// newFake returns the fake and a hold that stalls its uploads.
		newFake func(*testing.T) (hdFake, hdHold)
	}{
		{"zendesk", func(t *testing.T) (hdFake, hdHold) {
			z := helpdeskNewZendesk(t).(*helpdeskZendesk)
			return hdZendesk{z}, z.fake.HoldUploads(64 << 10)
		}},
		{"freshdesk", func(t *testing.T) (hdFake, hdHold) {
			f := helpdeskNewFreshdesk(t).(*helpdeskFreshdesk)
			return hdFreshdesk{f}, f.fake.HoldMultipart(64 << 10)
		}},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			t.Parallel()
			fake, hold := tc.newFake(t)
			hdKilledMidUpload(t, tc.plugin, fake, hold)
		})
	}
}

// hdHold is a fake's stall of uploads.
type hdHold interface {
	Started() <-chan struct{}
	Release()
}

func hdKilledMidUpload(t *testing.T, plugin string, fake hdFake, hold hdHold) {
	graph, graphURL := newGraph(t)
	connector := "crash-" + plugin
	t.Cleanup(hold.Release)
	h := newHubProc(t, helpdeskConfig(graphURL, connector, plugin, fake.config()), true)
	t.Cleanup(func() { _ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL) })

	// A first message opens the ticket, so that the file goes into a
	// note (Freshdesk) or comment of its own.
	h.postText(helpdeskCustomerOpen, "wamid.media-hd-crash-1", "vou mandar o contrato", time.Now())
	helpdeskWait(t, fake, "the ticket", func(tks []helpdeskTicket) bool { return len(tks) == 1 })
	f := hdMediaFile{typ: "document", mime: "application/pdf", filename: "contrato.pdf", caption: "o contrato", data: hdBytes(5, 2<<20)}
	mf := graph.AddMedia("", f.mime, f.filename, f.data)
	hdPostMedia(h, helpdeskCustomerOpen, "wamid.media-hd-crash-2", f, mf, time.Now())
	select {
	case <-hold.Started():
	case <-time.After(60 * time.Second):
		t.Fatalf("no upload reached the helpdesk within 60s:%s", helpdeskDump(fake))
	}
	if err := syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	hold.Release()

	h.start()
	helpdeskWait(t, fake, "the document on the ticket after the restart", func([]helpdeskTicket) bool { return len(fake.files(t)) > 0 })
	helpdeskWaitIdle(h, connector)
	tks := fake.tickets()
	if len(tks) != 1 || len(tks[0].customerEntries()) != 2 {
		t.Fatalf("want one ticket with the customer's two messages once each:%s", helpdeskDump(fake))
	}
	if got := fake.files(t); len(got) != 1 || got[0] != hdSHA(f.data) {
		t.Errorf("files at the helpdesk (sha256) %q, want the customer's document once (%s)", got, hdSHA(f.data))
	}
}
