package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/plugins/slack/slacktest"
)

// Media through the Slack connector end to end (issue 18): the real
// binary fetches a customer's file from the Graph fake, and the slack
// plugin uploads it into the conversation's thread of the Slack fake,
// byte for byte; an agent's file in the thread reaches the Graph fake as
// an upload plus a media message with the same bytes, and one too large
// for WhatsApp is explained in the thread and not sent.

const slackMediaKeys = `
media:
  delivery_wait: 60s
  fetch: {max_attempts: 3, initial_interval: 100ms, max_interval: 300ms}
`

func slackMediaBytes(magic string, size int, seed uint64) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, ^seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	copy(b, magic)
	return b
}

func slackMediaSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// slackMediaWebhook is a message of customer A with a file.
func slackMediaWebhook(kind, wamid string, media map[string]any) []byte {
	block, _ := json.Marshal(media)
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana Souza"},"wa_id":%q}],"messages":[{"from":%q,"id":%q,"timestamp":"%d","type":%q,%q:%s}]}}]}]}`,
		slackCustomerA, slackCustomerA, wamid, time.Now().Unix(), kind, kind, block))
}

func TestMediaSlackInbound(t *testing.T) {
	graph, graphURL := newGraph(t)
	slack, slackURL := slackNewFake(t)
	h := newHub(t, slackConfig(graphURL, slackURL)+slackMediaKeys)
	h.waitConnector(slackConnector, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	h.postText(slackCustomerA, "wamid.ms-0", "Oi, vou mandar umas fotos", time.Now())
	root, _ := slackWaitThread(t, slack, 1, "Oi, vou mandar umas fotos", 0)

	cases := []struct {
		kind, mime, filename string
		data                 []byte
		extra                map[string]any
		comment              string
	}{
		{"image", "image/jpeg", "", slackMediaBytes("\xff\xd8\xff\xe0", 400<<10, 1), map[string]any{"caption": "A caixa chegou amassada"}, "A caixa chegou amassada"},
		{"audio", "audio/ogg; codecs=opus", "", slackMediaBytes("OggS", 60<<10, 2), map[string]any{"voice": true}, "sent a voice note"},
		{"document", "application/pdf", "fatura-novembro.pdf", slackMediaBytes("%PDF-1.7\n", 900<<10, 3), map[string]any{"filename": "fatura-novembro.pdf"}, "fatura-novembro.pdf"},
	}
	for i, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			f := graph.AddMedia("", tc.mime, tc.filename, tc.data)
			block := map[string]any{"id": f.ID, "mime_type": tc.mime, "sha256": f.SHA256Base64}
			for k, v := range tc.extra {
				block[k] = v
			}
			h.postRaw(slackMediaWebhook(tc.kind, fmt.Sprintf("wamid.ms-%d", i+1), block))
			var got slacktest.File
			slackWait(t, slack, 60*time.Second, "the "+tc.kind+" shared in the thread", func() bool {
				for _, sf := range slack.Files() {
					if sf.SHA256 == slackMediaSum(tc.data) && len(sf.Shares[slackChannel]) > 0 {
						got = sf
						return true
					}
				}
				return false
			})
			if got.Size != int64(len(tc.data)) || len(got.Shares[slackChannel]) != 1 {
				t.Errorf("file %+v: want %d bytes shared once", got, len(tc.data))
			}
			share, ok := slack.Message(slackChannel, got.Shares[slackChannel][0])
			if !ok || share.ThreadTS != root.TS || !strings.Contains(share.Text, tc.comment) {
				t.Errorf("share %+v: want a reply in thread %s saying %q", share, root.TS, tc.comment)
			}
		})
	}

	t.Run("gone at Meta", func(t *testing.T) {
		h.postRaw(slackMediaWebhook("image", "wamid.ms-gone", map[string]any{"id": "9990001112223334", "mime_type": "image/jpeg", "sha256": "bm9uZQ=="}))
		slackWait(t, slack, 60*time.Second, "a note that the image could not be retrieved", func() bool {
			for _, m := range slackBotReplies(slack, root.TS) {
				if strings.Contains(string(m.Blocks), "could not be retrieved") {
					return true
				}
			}
			return false
		})
	})
	// Each file was uploaded once, whatever the deliveries.
	if n := slack.CallCount("files.completeUploadExternal"); n != len(cases) {
		t.Errorf("completeUploadExternal called %d times, want %d", n, len(cases))
	}
}

// slackPluginGone waits until the plugin process pid has exited: a
// plugin whose hub died ends by itself, and what it was doing with it.
func slackPluginGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d still runs 30s after its hub was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Killed mid-upload to Slack, or right after Slack shared the file but
// before the plugin recorded it: after the restart the file is in the
// thread exactly once, with the customer's bytes.
func TestMediaSlackKill(t *testing.T) {
	cases := []struct {
		name       string
		hold       func(*slacktest.Server) *slacktest.Hold
		wantUpURLs int // files.getUploadURLExternal calls in all
		wantShares int // files.completeUploadExternal calls in all
	}{
		{"mid-upload", (*slacktest.Server).HoldUpload, 2, 1},
		{"after the share before it was recorded", func(s *slacktest.Server) *slacktest.Hold {
			return s.HoldAnswer("files.completeUploadExternal")
		}, 1, 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			graph, graphURL := newGraph(t)
			slack, slackURL := slackNewFake(t)
			h := newHub(t, slackConfig(graphURL, slackURL)+slackMediaKeys)
			st := h.waitConnector(slackConnector, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" && c.PID != 0 })
			data := slackMediaBytes("%PDF-1.7\n", 800<<10, uint64(10+i))
			f := graph.AddMedia("", "application/pdf", "contrato.pdf", data)
			hold := tc.hold(slack)
			h.postRaw(slackMediaWebhook("document", "wamid.kill-slack", map[string]any{"id": f.ID, "mime_type": "application/pdf", "sha256": f.SHA256Base64, "filename": "contrato.pdf"}))
			select {
			case <-hold.Reached():
			case <-time.After(60 * time.Second):
				t.Fatalf("the plugin never reached the hold; the Slack fake holds:%s", slackDump(slack))
			}
			h.kill()
			slackPluginGone(t, st.PID)
			hold.Release()
			h.start()
			h.waitConnector(slackConnector, "settled", func(c admin.ConnectorStatus) bool {
				return c.State == "running" && c.Pending == 0 && c.Retrying == 0 && slack.CallCount("files.completeUploadExternal") > 0
			})
			shares := 0
			for _, sf := range slack.Files() {
				shares += len(sf.Shares[slackChannel])
				if len(sf.Shares) > 0 && (sf.SHA256 != slackMediaSum(data) || sf.Name != "contrato.pdf") {
					t.Errorf("shared file %+v differs from the customer's", sf)
				}
			}
			if shares != 1 {
				t.Errorf("the file is shared %d times, want once; the Slack fake holds:%s", shares, slackDump(slack))
			}
			if n := slack.CallCount("files.getUploadURLExternal"); n != tc.wantUpURLs {
				t.Errorf("%d upload URLs asked for, want %d", n, tc.wantUpURLs)
			}
			if n := slack.CallCount("files.completeUploadExternal"); n != tc.wantShares {
				t.Errorf("completeUploadExternal called %d times, want %d", n, tc.wantShares)
			}
		})
	}
}

func TestMediaSlackOutbound(t *testing.T) {
	graph, graphURL := newGraph(t)
	slack, slackURL := slackNewFake(t)
	h := newHub(t, slackConfig(graphURL, slackURL)+slackMediaKeys)
	h.waitConnector(slackConnector, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	h.postText(slackCustomerA, "wamid.mo-0", "Pode me mandar a segunda via?", time.Now())
	root, _ := slackWaitThread(t, slack, 1, "Pode me mandar a segunda via?", 0)

	pdf := slackMediaBytes("%PDF-1.7\n", 700<<10, 4)
	f := slack.AddFile("segunda-via.pdf", "application/pdf", slackAgent, pdf)
	body := slacktest.EventCallback("EvMO1", time.Now(), slacktest.MessageEvent{
		User: slackAgent, SubType: "file_share", Text: "Segue a segunda via", TS: fmt.Sprintf("%d.000100", time.Now().Unix()),
		ThreadTS: root.TS, Channel: slackChannel, Files: []json.RawMessage{slack.FileObject(slackURL, f.ID, false)},
	})
	// Slack's retry of the same event sends nothing twice.
	for retry := range 2 {
		if status, resp := slackHook(t, h, slackSecret, body, retry); status != 200 {
			t.Fatalf("hook: %d %s", status, resp)
		}
	}
	var sent graphtest.Sent
	slackWait(t, slack, 60*time.Second, "the agent's PDF sent to the customer", func() bool {
		for _, s := range slackSentTo(graph, slackCustomerA) {
			if s.MediaID != "" {
				sent = s
				return true
			}
		}
		return false
	})
	var up graphtest.Upload
	for _, u := range graph.Uploads() {
		if u.ID == sent.MediaID {
			up = u
		}
	}
	if up.SHA256 != slackMediaSum(pdf) || up.Size != int64(len(pdf)) {
		t.Errorf("Graph got upload %+v, want the agent's %d bytes (sha256 %s)", up, len(pdf), slackMediaSum(pdf))
	}
	if sent.Kind != "document" || sent.Caption != "Segue a segunda via" || sent.Filename != "segunda-via.pdf" {
		t.Errorf("media message %+v", sent)
	}
	if n := graph.UploadCount(); n != 1 {
		t.Errorf("%d uploads to Graph, want 1", n)
	}

	// Too large for WhatsApp's image limit (5 MB): a note, nothing sent.
	big := slackMediaBytes("\x89PNG\r\n\x1a\n", 6<<20, 5)
	g := slack.AddFile("foto-grande.png", "image/png", slackAgent, big)
	before := len(slackSentTo(graph, slackCustomerA))
	body = slacktest.EventCallback("EvMO2", time.Now(), slacktest.MessageEvent{
		User: slackAgent, SubType: "file_share", TS: fmt.Sprintf("%d.000200", time.Now().Unix()),
		ThreadTS: root.TS, Channel: slackChannel, Files: []json.RawMessage{slack.FileObject(slackURL, g.ID, false)},
	})
	if status, resp := slackHook(t, h, slackSecret, body, 0); status != 200 {
		t.Fatalf("hook: %d %s", status, resp)
	}
	slackWait(t, slack, 60*time.Second, "a note that the large image was not sent", func() bool {
		for _, m := range slackBotReplies(slack, root.TS) {
			if strings.Contains(m.Text, "Not sent to WhatsApp") && strings.Contains(m.Text, "foto-grande.png") {
				return true
			}
		}
		return false
	})
	if after := len(slackSentTo(graph, slackCustomerA)); after != before {
		t.Errorf("%d messages sent for a file that was refused", after-before)
	}
}

// Killed while the plugin reads an agent's file from Slack: the reply was
// recorded before Slack was answered, so after the restart the file
// reaches the customer, once.
func TestMediaSlackKillMidDownload(t *testing.T) {
	graph, graphURL := newGraph(t)
	slack, slackURL := slackNewFake(t)
	h := newHub(t, slackConfig(graphURL, slackURL)+slackMediaKeys)
	st := h.waitConnector(slackConnector, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" && c.PID != 0 })
	h.postText(slackCustomerA, "wamid.mk-0", "Manda o contrato?", time.Now())
	root, _ := slackWaitThread(t, slack, 1, "Manda o contrato?", 0)

	pdf := slackMediaBytes("%PDF-1.7\n", 900<<10, 6)
	f := slack.AddFile("contrato.pdf", "application/pdf", slackAgent, pdf)
	hold := slack.HoldDownload()
	body := slacktest.EventCallback("EvMK1", time.Now(), slacktest.MessageEvent{
		User: slackAgent, SubType: "file_share", Text: "Segue o contrato", TS: fmt.Sprintf("%d.000300", time.Now().Unix()),
		ThreadTS: root.TS, Channel: slackChannel, Files: []json.RawMessage{slack.FileObject(slackURL, f.ID, false)},
	})
	if status, resp := slackHook(t, h, slackSecret, body, 0); status != 200 {
		t.Fatalf("hook: %d %s", status, resp)
	}
	select {
	case <-hold.Reached():
	case <-time.After(60 * time.Second):
		t.Fatalf("the plugin never started the download; the Slack fake holds:%s", slackDump(slack))
	}
	h.kill()
	slackPluginGone(t, st.PID)
	hold.Release()
	h.start()
	slackWait(t, slack, 60*time.Second, "the agent's PDF sent after the restart", func() bool {
		for _, s := range slackSentTo(graph, slackCustomerA) {
			if s.MediaID != "" {
				return true
			}
		}
		return false
	})
	var media []graphtest.Sent
	for _, s := range slackSentTo(graph, slackCustomerA) {
		if s.MediaID != "" {
			media = append(media, s)
		}
	}
	if len(media) != 1 || media[0].Caption != "Segue o contrato" {
		t.Fatalf("media messages %+v, want one with the agent's text", media)
	}
	if ups := graph.Uploads(); len(ups) != 1 || ups[0].SHA256 != slackMediaSum(pdf) {
		t.Errorf("Graph uploads %+v, want the agent's file once", ups)
	}
}
