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
	"github.com/wahub/wahub/plugins/slack/slacktest"
)

// Media through the Slack connector end to end (issue 18): the real
// binary fetches a customer's file from the Graph fake, and the slack
// plugin uploads it into the conversation's thread of the Slack fake,
// byte for byte.

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
