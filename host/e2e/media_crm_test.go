package e2e

// End-to-end tests of media in the CRM connectors (issue 18): the real
// binary fetches a customer's photo, voice note and PDF from the Graph
// fake and its hubspot and bitrix24 plugins put them on the CRM records,
// byte for byte; a gone media id leaves the message logged with a note.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/sandbox"
	"github.com/wahub/wahub/plugins/bitrix24/bitrix24test"
	"github.com/wahub/wahub/plugins/hubspot/hubspottest"
)

// mediaCRMConfig is a hub that fetches media from graphURL and logs every
// message.received to HubSpot (connector "hs") and Bitrix24 ("b24").
func mediaCRMConfig(t *testing.T, graphURL, hubspotURL, bitrixWebhook string) string {
	t.Helper()
	hs, _ := json.Marshal(crmHubSpotConfig(hubspotURL, nil))
	b24, _ := json.Marshal(map[string]any{"webhook_url": bitrixWebhook})
	return `
server: {listen: 127.0.0.1:0, admin_token: ` + adminToken + `}
store: {path: {{DIR}}/wahub.db}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: ` + graphURL + `
media:
  delivery_wait: 60s
  fetch: {max_attempts: 3, initial_interval: 100ms, max_interval: 300ms}
teams: {support: {connectors: []}}
routes: [{name: default, team: support}]
subscriptions:
  - {connector: hs, events: [message.received]}
  - {connector: b24, events: [message.received]}
connectors:
  hs:
    plugin: hubspot
    config: ` + string(hs) + `
    retry: ` + crmRetry + `
  b24:
    plugin: bitrix24
    config: ` + string(b24) + `
    retry: ` + crmRetry + `
`
}

// mediaCRMCase is one customer message with a file.
type mediaCRMCase struct {
	kind   string // WhatsApp message type
	sample sandbox.Sample
	extra  map[string]any
	gone   bool // the media id is gone at Meta
	// noun and label are how the CRMs name it: "image", "[image] …".
	noun, label string
}

func TestMediaCRMByteIdenticalAndGoneNoted(t *testing.T) {
	t.Parallel()
	graph, graphURL := newGraph(t)
	hsFake := hubspottest.NewServer(hubspottest.WithSearchLag(300 * time.Millisecond))
	hsGate, hsURL := crmServe(t, hsFake)
	b24Fake := bitrix24test.NewServer()
	_, b24URL := crmServe(t, b24Fake)
	h := newHub(t, mediaCRMConfig(t, graphURL, hsURL, b24URL+b24Fake.WebhookPath()))
	for _, name := range []string{"hs", "b24"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}

	cases := []mediaCRMCase{
		{kind: "image", sample: sandbox.Samples[0], extra: map[string]any{"caption": "chegou quebrado"}, noun: "image", label: "[image] chegou quebrado"},
		{kind: "audio", sample: sandbox.Samples[1], extra: map[string]any{"voice": true}, noun: "voice note", label: "[audio]"},
		{kind: "document", sample: sandbox.Samples[2], extra: map[string]any{"filename": sandbox.Samples[2].Filename}, noun: "document", label: "[document: " + sandbox.Samples[2].Filename + "]"},
		{kind: "image", sample: sandbox.Samples[0], extra: map[string]any{"caption": "outra foto"}, gone: true, noun: "image", label: "[image] outra foto"},
	}
	const waID = "5511987650001"
	for i, c := range cases {
		f := graph.AddMedia("", c.sample.MimeType, c.sample.Filename, c.sample.Bytes())
		if c.gone {
			graph.RemoveMedia(f.ID)
		}
		block := map[string]any{"id": f.ID, "mime_type": c.sample.MimeType, "sha256": f.SHA256Base64}
		for k, v := range c.extra {
			block[k] = v
		}
		h.postRaw(mediaWebhook(c.kind, fmt.Sprintf("wamid.crm.media.%d", i), block))
	}

	// HubSpot: one communication per message, the file attached.
	crmWait(t, 90*time.Second, "HubSpot logs the four messages", func() (bool, string) {
		n := len(hsFake.Communications())
		return n == len(cases), fmt.Sprintf("%d communications, %d files", n, len(hsFake.Files()))
	})
	// Bitrix24: one comment per message, the file on it.
	crmWait(t, 90*time.Second, "Bitrix24 comments the four messages", func() (bool, string) {
		n := len(b24Fake.Comments())
		return n == len(cases), fmt.Sprintf("%d comments, %d files", n, len(b24Fake.Files()))
	})

	comms, comments := hsFake.Communications(), b24Fake.Comments()
	for _, c := range cases {
		want := hexSum(c.sample.Bytes())
		var comm *hubspottest.Record
		for i := range comms {
			if strings.Contains(comms[i].Properties["hs_communication_body"], c.label) {
				comm = &comms[i]
			}
		}
		var comment *bitrix24test.Comment
		for i := range comments {
			if strings.Contains(comments[i].Text, c.label) {
				comment = &comments[i]
			}
		}
		if comm == nil || comment == nil {
			t.Fatalf("%s: communication %v, comment %v: not logged", c.label, comm != nil, comment != nil)
		}
		body := comm.Properties["hs_communication_body"]
		ids := comm.Properties["hs_attachment_ids"]
		if c.gone {
			note := "(the " + c.noun + " could not be retrieved: "
			if ids != "" || !strings.Contains(body, note) {
				t.Errorf("HubSpot, gone %s: attachments %q, body %q; want none and the note", c.noun, ids, body)
			}
			if len(comment.Files) != 0 || !strings.Contains(comment.Text, note) {
				t.Errorf("Bitrix24, gone %s: %d files, comment %q; want none and the note", c.noun, len(comment.Files), comment.Text)
			}
			continue
		}
		f, ok := hsFake.File(ids)
		if !ok || f.SHA256 != want || f.Access != "PRIVATE" {
			t.Errorf("HubSpot %s: attachment %q → %+v, want a private file with sha256 %s", c.noun, ids, f, want)
		}
		if len(comment.Files) != 1 || comment.Files[0].SHA256 != want {
			t.Errorf("Bitrix24 %s: files %+v, want one with sha256 %s", c.noun, comment.Files, want)
		}
		if strings.Contains(body, "could not") || strings.Contains(comment.Text, "could not") {
			t.Errorf("%s: a note of failure on a file that arrived: %q / %q", c.noun, body, comment.Text)
		}
	}
	if n := len(hsFake.Files()); n != 3 {
		t.Errorf("HubSpot holds %d files, want 3 (one upload each)", n)
	}
	uploads := 0
	for _, r := range hsGate.requests() {
		if r.Method == http.MethodPost && r.Path == hubspottest.PathFiles {
			uploads++
		}
	}
	if uploads != 3 {
		t.Errorf("%d uploads to HubSpot, want 3", uploads)
	}
}

// The HubSpot plugin is killed after the file is uploaded, while it logs
// the communication: the redelivered event attaches the uploaded file,
// and no file goes up twice.
func TestMediaCRMHubSpotKilledAfterUpload(t *testing.T) {
	t.Parallel()
	graph, graphURL := newGraph(t)
	hsFake := hubspottest.NewServer(hubspottest.WithSearchLag(300 * time.Millisecond))
	gate, hsURL := crmServe(t, hsFake)
	b24Fake := bitrix24test.NewServer()
	_, b24URL := crmServe(t, b24Fake)
	h := newHub(t, mediaCRMConfig(t, graphURL, hsURL, b24URL+b24Fake.WebhookPath()))
	h.waitConnector("hs", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })

	s := sandbox.Samples[2]
	f := graph.AddMedia("", s.MimeType, s.Filename, s.Bytes())
	caught := gate.arm(false, func(method, path string, _ []byte) bool {
		return method == http.MethodPost && path == hubspottest.PathCommunications
	})
	h.postRaw(mediaWebhook("document", "wamid.crm.media.kill", map[string]any{"id": f.ID, "mime_type": s.MimeType, "sha256": f.SHA256Base64, "filename": s.Filename}))
	crmCaught(t, caught, "the communication after the upload")
	if n := len(hsFake.Files()); n != 1 {
		t.Fatalf("%d files before the kill, want 1", n)
	}
	h.crmKillPlugin("hs")
	crmWait(t, 90*time.Second, "the redelivered event is logged", func() (bool, string) {
		n := len(hsFake.Communications())
		return n == 1, fmt.Sprintf("%d communications", n)
	})
	files, comm := hsFake.Files(), hsFake.Communications()[0]
	if len(files) != 1 || comm.Properties["hs_attachment_ids"] != files[0].ID || files[0].SHA256 != hexSum(s.Bytes()) {
		t.Fatalf("files %+v, communication attachments %q: want the one upload attached", files, comm.Properties["hs_attachment_ids"])
	}
}
