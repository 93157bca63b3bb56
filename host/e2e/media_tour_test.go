package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/sandbox"
	"github.com/wahub/wahub/sdk"
)

// tourSnapshot is what /sandbox?format=json shows of the fakes' files.
type tourSnapshot struct {
	WhatsApp struct {
		Sent []struct {
			WAID     string `json:"wa_id"`
			Kind     string `json:"kind"`
			MediaID  string `json:"media_id"`
			Caption  string `json:"caption"`
			Filename string `json:"filename"`
		} `json:"sent"`
		Uploads []struct {
			ID       string `json:"id"`
			MimeType string `json:"mime_type"`
			Filename string `json:"filename"`
			SHA256   string `json:"sha256"`
		} `json:"uploads"`
	} `json:"whatsapp"`
	Slack struct {
		Channels map[string][]struct {
			TS      string `json:"ts"`
			Text    string `json:"text"`
			Replies []struct {
				TS    string   `json:"ts"`
				Files []string `json:"files"`
			} `json:"replies"`
		} `json:"channels"`
		Files []struct {
			ID     string `json:"id"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	} `json:"slack"`
	Zendesk struct {
		Tickets []struct {
			Requester string `json:"requester"`
			Comments  []struct {
				Attachments []struct {
					SHA256 string `json:"sha256"`
				} `json:"attachments"`
			} `json:"comments"`
		} `json:"tickets"`
	} `json:"zendesk"`
	Freshdesk struct {
		Tickets []struct {
			RequesterID   int64              `json:"requester_id"`
			Attachments   []tourFreshdeskAtt `json:"attachments"`
			Conversations []struct {
				Attachments []tourFreshdeskAtt `json:"attachments"`
			} `json:"conversations"`
		} `json:"tickets"`
		Contacts []struct {
			ID    int64  `json:"id"`
			Phone string `json:"phone"`
		} `json:"contacts"`
	} `json:"freshdesk"`
	HubSpot struct {
		Files []struct {
			ID     string `json:"id"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
		Communications []tourHubSpotRecord `json:"communications"`
		Notes          []tourHubSpotRecord `json:"notes"`
	} `json:"hubspot"`
	Bitrix24 struct {
		Comments []struct {
			Files []struct {
				SHA256 string `json:"sha256"`
			} `json:"files"`
		} `json:"comments"`
	} `json:"bitrix24"`
	Webhook struct {
		Received []struct {
			Message *struct {
				ID    string     `json:"id"`
				Media *sdk.Media `json:"media"`
			} `json:"message"`
		} `json:"received"`
	} `json:"webhook"`
}

type tourFreshdeskAtt struct {
	Name          string `json:"name"`
	AttachmentURL string `json:"attachment_url"`
}

type tourHubSpotRecord struct {
	Properties map[string]string `json:"properties"`
}

func (h *hubProc) tourSnapshot() (s tourSnapshot) {
	h.t.Helper()
	resp, err := http.Get(h.url("/sandbox?format=json"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

// tourArrivals says, for the file with hex digest sum that customer
// (wa_id, name) sent, which fakes hold it byte-identical where the
// customer's record is: the Slack thread, the Zendesk ticket, the
// Freshdesk ticket (its attachment downloaded and hashed), the HubSpot
// file attached to a communication or note, the Bitrix24 timeline entry,
// and the audit webhook's media block (state available) for wamid.
func tourArrivals(t *testing.T, s tourSnapshot, waID, name, wamid, sum string) map[string]bool {
	got := map[string]bool{}
	slackSums := map[string]string{}
	for _, f := range s.Slack.Files {
		slackSums[f.ID] = f.SHA256
	}
	for _, threads := range s.Slack.Channels {
		for _, th := range threads {
			if !strings.Contains(th.Text, "(+"+waID+")") {
				continue
			}
			for _, r := range th.Replies {
				for _, id := range r.Files {
					got["slack"] = got["slack"] || slackSums[id] == sum
				}
			}
		}
	}
	for _, tk := range s.Zendesk.Tickets {
		for _, c := range tk.Comments {
			for _, a := range c.Attachments {
				got["zendesk"] = got["zendesk"] || (tk.Requester == name && a.SHA256 == sum)
			}
		}
	}
	var fdContact int64
	for _, c := range s.Freshdesk.Contacts {
		if strings.TrimPrefix(c.Phone, "+") == waID {
			fdContact = c.ID
		}
	}
	for _, tk := range s.Freshdesk.Tickets {
		if tk.RequesterID != fdContact || got["freshdesk"] {
			continue
		}
		atts := tk.Attachments
		for _, c := range tk.Conversations {
			atts = append(atts, c.Attachments...)
		}
		for _, a := range atts {
			// The fake's pre-signed link, as a Freshdesk agent's browser
			// follows it.
			resp, err := http.Get(a.AttachmentURL)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got["freshdesk"] = got["freshdesk"] || (resp.StatusCode == http.StatusOK && hexSum(b) == sum)
		}
	}
	attached := map[string]bool{}
	for _, r := range append(slices.Clone(s.HubSpot.Communications), s.HubSpot.Notes...) {
		for _, id := range strings.Split(r.Properties["hs_attachment_ids"], ";") {
			attached[id] = true
		}
	}
	for _, f := range s.HubSpot.Files {
		got["hubspot"] = got["hubspot"] || (f.SHA256 == sum && attached[f.ID])
	}
	for _, c := range s.Bitrix24.Comments {
		for _, f := range c.Files {
			got["bitrix24"] = got["bitrix24"] || f.SHA256 == sum
		}
	}
	for _, r := range s.Webhook.Received {
		if r.Message != nil && r.Message.ID == wamid && r.Message.Media != nil {
			got["audit"] = got["audit"] || r.Message.Media.State == sdk.MediaAvailable
		}
	}
	return got
}

// The README's tour on the shipped configuration, for its media: the
// sample photo, voice note and PDF reach every connector the stored
// route names, byte-identical, and the signed webhook receiver gets the
// media block with the file available; an agent's file attached in the
// Slack thread reaches the Graph fake as one upload plus one media
// message with the same bytes. The routes are asked of the hub, so the
// test holds at any hour (office hours or billing-queue).
func TestMediaTourOnTheShippedConfiguration(t *testing.T) {
	h := newHub(t, shippedTemplate(t))
	for _, name := range shippedConnectors {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	files, _ := filepath.Glob(fixture("*.json"))
	if out, errOut, code := h.wahub(append([]string{"simulate", "--now", "--url", h.url("")}, files...)...); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	// The tour's samples reach no billing conversation, so Freshdesk
	// would see none of them: Fernanda (billing, after her boleto
	// message) also sends the PDF, the way the README suggests trying.
	raw, err := os.ReadFile(fixture("document.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The README's sed, as written there.
	fern := strings.NewReplacer("5541988770005", "5511976540007", "Pedro Oliveira", "Fernanda Alves", "doc.0001", "doc.0007").Replace(string(raw))
	fernPath := filepath.Join(h.dir, "document_fernanda.json")
	if err := os.WriteFile(fernPath, []byte(fern), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := h.wahub("simulate", "--now", "--url", h.url(""), fernPath); code != 0 {
		t.Fatalf("simulate %s: %s%s", fernPath, out, errOut)
	}

	type want struct {
		sample            sandbox.Sample
		waID, name, wamid string
		connectors        []string // what the stored route sends it to, of the fakes that keep files
		sum               string
	}
	samples := map[string]sandbox.Sample{}
	for _, s := range sandbox.Samples {
		samples[s.MediaID] = s
	}
	keep := []string{"slack", "zendesk", "freshdesk", "hubspot", "bitrix24", "audit"}
	// The hub routes an event after its webhook's 200: wait for the
	// four routes (the photo, the voice note, Pedro's and Fernanda's PDF).
	var wants []*want
	for deadline := time.Now().Add(time.Minute); ; {
		wants = nil
		for _, ev := range h.allEvents() {
			if ev.Type != sdk.TypeMessageReceived || ev.Message == nil || ev.Message.Media == nil || ev.Route == nil {
				continue
			}
			s, ok := samples[ev.Message.Media.ID]
			if !ok {
				continue // the other media samples' ids are gone at the fake Graph: unavailable (TestMediaGoneIsDeliveredUnavailable)
			}
			w := &want{sample: s, waID: ev.Contact.WAID, name: ev.Contact.Name, wamid: ev.Message.ID, sum: hexSum(s.Bytes())}
			for _, c := range ev.Route.Connectors {
				if slices.Contains(keep, c) {
					w.connectors = append(w.connectors, c)
				}
			}
			sort.Strings(w.connectors)
			wants = append(wants, w)
		}
		if len(wants) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d routed events carry a sample's media id after 1m, want 4 (photo, voice note, Pedro's and Fernanda's PDF)", len(wants))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Every file-keeping fake is named by some route: none is skipped.
	covered := map[string]bool{}
	for _, w := range wants {
		for _, c := range w.connectors {
			covered[c] = true
		}
	}
	for _, c := range keep {
		if !covered[c] {
			t.Errorf("no sample's stored route names %s: the test would not check it (routes: %+v)", c, wants)
		}
	}

	// Slack posts are paced (about one a second) and the after-hours
	// templates queue behind the per-recipient limit: minutes on a loaded
	// machine, so the deadline is generous and the wait ends as soon as
	// every file is where it belongs.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		s := h.tourSnapshot()
		var missing []string
		for _, w := range wants {
			got := tourArrivals(t, s, w.waID, w.name, w.wamid, w.sum)
			for _, c := range w.connectors {
				if !got[c] {
					missing = append(missing, fmt.Sprintf("%s's %s in %s", w.name, w.sample.File, c))
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not arrived byte-identical within 4m: %s", strings.Join(missing, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The hub serves each file to an admin as it came.
	for _, w := range wants {
		resp, body := h.download(w.sample.MediaID)
		if resp.StatusCode != http.StatusOK || hexSum(body) != w.sum || !strings.HasPrefix(resp.Header.Get("Content-Type"), strings.Split(w.sample.MimeType, ";")[0]) {
			t.Errorf("GET /api/v1/media/%s: %d %s, sha256 %s, want %s", w.sample.MediaID, resp.StatusCode, resp.Header.Get("Content-Type"), hexSum(body), w.sum)
		}
	}

	// The agent answers Pedro's PDF with a file of their own.
	reply := slices.Concat(samples["1130471592211848"].Bytes(), []byte("\n% reembolso\n")) // another file than the customer's
	replyPath := filepath.Join(h.dir, "recibo_reembolso.pdf")
	if err := os.WriteFile(replyPath, reply, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := h.wahub("sandbox", "slack-reply", "--url", h.url(""), "--to", "5541988770005",
		"--text", "Segue o recibo do reembolso.", "--file", replyPath, "--wait", "3m") // generous: a loaded machine, the per-recipient limit
	if code != 0 || !regexp.MustCompile(`WhatsApp message msg_\S+ to 5541988770005: .*read\n`).MatchString(out) {
		t.Fatalf("slack-reply --file to Pedro: exit %d\n%s%s", code, out, errOut)
	}
	s := h.tourSnapshot()
	var uploads, sends int
	for _, u := range s.WhatsApp.Uploads {
		if u.SHA256 != hexSum(reply) {
			continue
		}
		uploads++
		if u.MimeType != "application/pdf" {
			t.Errorf("the agent's file reached Graph as %s, want application/pdf", u.MimeType)
		}
		for _, m := range s.WhatsApp.Sent {
			if m.WAID == "5541988770005" && m.MediaID == u.ID {
				sends++
				if m.Kind != "document" || m.Filename != "recibo_reembolso.pdf" || m.Caption != "Segue o recibo do reembolso." {
					t.Errorf("the agent's file went out as %+v, want a document recibo_reembolso.pdf with the text as caption", m)
				}
			}
		}
	}
	if uploads != 1 || sends != 1 {
		t.Errorf("the agent's file: %d uploads with its sha256 and %d media messages to Pedro, want 1 and 1 (uploads %+v)", uploads, sends, s.WhatsApp.Uploads)
	}

	// A photo over WhatsApp's 5 MB image limit is told in the thread
	// and not sent: the command prints the note and exits 1.
	big := slices.Concat([]byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), bytes.Repeat([]byte{0x5a}, 6<<20))
	bigPath := filepath.Join(h.dir, "foto_grande.jpg")
	if err := os.WriteFile(bigPath, big, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = h.wahub("sandbox", "slack-reply", "--url", h.url(""), "--to", "5541988770005", "--file", bigPath, "--wait", "3m")
	if code != 1 || !strings.Contains(out, "not sent to WhatsApp") || !strings.Contains(out, "WhatsApp sends images up to 5 MB") {
		t.Errorf("slack-reply --file with a 6 MB photo: exit %d\n%s%s", code, out, errOut)
	}
	for _, u := range h.tourSnapshot().WhatsApp.Uploads {
		if u.SHA256 == hexSum(big) {
			t.Errorf("the 6 MB photo was uploaded to Graph: %+v", u)
		}
	}

	// An operator sends a file from the API: POST /api/v1/media, then
	// wahub send --media with the id it answered.
	photo := slices.Concat(samples["1003383421387256"].Bytes(), []byte("resposta")) // still a JPEG, another file
	id := h.putMedia("image/jpeg", "troca_aprovada.jpg", photo)
	out, errOut, code = h.wahub("send", "--url", h.url(""), "--to", "5541988770005", "--media", id, "--caption", "Troca aprovada")
	msgID, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if code != 0 || !strings.HasPrefix(msgID, "msg_") {
		t.Fatalf("wahub send --media %s: exit %d\n%s%s", id, code, out, errOut)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		s := h.tourSnapshot()
		sent := ""
		for _, u := range s.WhatsApp.Uploads {
			if u.SHA256 != hexSum(photo) {
				continue
			}
			for _, m := range s.WhatsApp.Sent {
				if m.WAID == "5541988770005" && m.MediaID == u.ID && m.Kind == "image" && m.Caption == "Troca aprovada" {
					sent = u.ID
				}
			}
		}
		if sent != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wahub send --media: no upload of the photo plus image message to Pedro at the Graph fake within 1m (uploads %+v)", s.WhatsApp.Uploads)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
