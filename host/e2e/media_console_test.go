package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/sandbox"
)

// In a real browser, under the console's Content-Security-Policy, a
// conversation shows the customer's photo as the hub's thumbnail, loads
// the voice note in a player and links the PDF.
func TestMediaConsoleShowsFiles(t *testing.T) {
	ctx := browser(t)
	rcv := newReceiver(t)
	fake, graphURL := newGraph(t)
	h := newHub(t, consoleConfig(rcv.URL(), graphURL))
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	kinds := []string{"image", "audio", "document"}
	for i, smp := range sandbox.Samples {
		f := fake.AddMedia("", smp.MimeType, smp.Filename, smp.Bytes())
		block := map[string]any{"id": f.ID, "mime_type": smp.MimeType, "sha256": f.SHA256Base64}
		if smp.Filename != "" {
			block["filename"] = smp.Filename
		}
		h.postRaw(mediaWebhook(kinds[i], "wamid.console.media."+kinds[i], block))
	}
	evs := waitDelivered(t, rcv, 3, "the three files")
	signIn(t, ctx, h, adminToken)
	run(t, ctx, "open the conversation", chromedp.Navigate(h.url("/console/conversations/"+evs[0].ConversationID)),
		chromedp.WaitVisible(chromedp.CSS("ol.thread")))
	until(t, ctx, "the photo's thumbnail", `(() => { const i = document.querySelector(".media img"); return !!i && i.complete && i.naturalWidth === 320 && i.src.endsWith("?thumb=1") })()`)
	until(t, ctx, "the voice note loads", `(() => { const a = document.querySelector(".media audio"); if (!a) return false; if (a.preload !== "auto") { a.preload = "auto"; a.load() } return a.readyState >= 1 && a.duration > 2 })()`)
	until(t, ctx, "the PDF link", `!!document.querySelector('.media a.file[href^="/console/media/"]') && document.querySelector('.media a.file').textContent === "comprovante_pix_novembro.pdf"`)
	shot(t, ctx, "media-conversation")
}
