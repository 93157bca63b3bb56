package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/eventid"
	"github.com/wahub/wahub/host/graph/graphtest"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
)

// The operator console driven in headless Chromium (Debian's chromium
// package; no browser is downloaded). Outside CI a machine without a
// chromium binary skips these tests, saying so; in CI (CI=true) they
// must run.

const viewerToken = "test-viewer-token-0123456789"

// chromium finds the browser: $WAHUB_CHROMIUM, else chromium on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WAHUB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium binary in CI: .ci/run installs Debian's chromium (apt-get install chromium)")
	}
	t.Skip("SKIPPED: browser test needs a chromium binary (apt-get install chromium, or set WAHUB_CHROMIUM)")
	return ""
}

// browser starts a headless Chromium for one test. The deadline only
// guards against a hang; no assertion depends on speed.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // root in CI; the pages are the hub's own
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("lang", "en-US"),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshots is where the tests leave a PNG of each view for a reviewer:
// $WAHUB_SCREENSHOTS, else a directory under the system's temp dir.
func screenshots(t *testing.T) string {
	dir := os.Getenv("WAHUB_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "wahub-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 is PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(screenshots(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// eval evaluates JavaScript in the page (awaiting a promise) into a T.
func eval[T any](t *testing.T, ctx context.Context, what, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// until waits for a JavaScript condition to hold in the page: each
// refresh of the page's live regions re-evaluates it.
func until(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	// Polled from here rather than with chromedp.Poll inside the page: a
	// form's POST and redirect, or the live stream's reconnect, may swap
	// the document under a page-side poll, which then fails with the
	// protocol's "navigated or closed" (-32000). Each evaluation here
	// runs in whatever document is current.
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+js+")"))
		if err == nil && ok {
			return
		}
		if err != nil && !strings.Contains(err.Error(), "(-32000)") && !strings.Contains(err.Error(), "(-32602)") {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("waiting for %s: not true within 2m (last error: %v)\npage text:\n%s", what, last, body)
}

// retryStale runs actions again when the live refresh replaced the node
// they were about to type into (the page's regions are swapped as the
// fakes' statuses arrive; a replaced input held nothing yet).
func retryStale(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	for i := 0; ; i++ {
		err := chromedp.Do(ctx, actions...)
		if err == nil {
			return
		}
		if i == 10 || !strings.Contains(err.Error(), "(-32000)") {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// darkMode makes the page match prefers-color-scheme: dark.
func darkMode(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
	_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
	return chromedp.Void{}, err
}

func signIn(t *testing.T, ctx context.Context, h *hubProc, token string) {
	t.Helper()
	run(t, ctx, "sign in",
		chromedp.Navigate(h.url("/console/")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(`nav[aria-label="Console"]`)),
	)
}

func consoleConfig(hookURL, graphURL string) string {
	return `
server:
  listen: 127.0.0.1:0
  admin_token: test-admin-token
  viewer_token: ` + viewerToken + `
store: {path: "{{DIR}}/wahub.db"}
log: {level: debug, format: json}
whatsapp:
  app_secret: test-app-secret
  verify_token: test-verify-token
  access_token: graph-token
  api_url: ` + graphURL + `
teams:
  support: {connectors: [hook]}
  billing: {connectors: [hook]}
routes:
  - {name: billing, when: {keywords: [fatura]}, team: billing}
  - {name: default, team: support}
connectors:
  hook:
    plugin: webhook
    config: {url: "` + hookURL + `", secret: ` + receiverSecret + `, timeout: 5s}
    retry: {max_attempts: 3, initial_interval: 50ms, max_interval: 100ms}
`
}

// consoleHub is a hub with one webhook connector whose receiver refuses
// "quebrado" until fixed, and answers 503 to the first try of "instável".
func consoleHub(t *testing.T) (*hubProc, *webhooktest.Receiver, *atomic.Bool) {
	rcv := newReceiver(t)
	var fixed atomic.Bool
	var flaky atomic.Int32
	rcv.SetHandler(func(_ *http.Request, body []byte) webhooktest.Response {
		switch {
		case strings.Contains(string(body), "quebrado") && !fixed.Load():
			return webhooktest.Response{Status: 400, Body: `{"error":"order id missing"}`}
		case strings.Contains(string(body), "inst\\u00e1vel") || strings.Contains(string(body), "instável"):
			if flaky.Add(1) == 1 {
				return webhooktest.Response{Status: 503, Body: "busy"}
			}
		}
		return webhooktest.Response{Status: 200}
	})
	// The fake Graph API posts sent/delivered/read back to the hub, whose
	// address is known only once it runs: through a forwarder.
	var hubAddr atomic.Value
	fwd := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = "http", hubAddr.Load().(string)
	}})
	t.Cleanup(fwd.Close)
	_, graphURL := newGraph(t, graphtest.WithAutoStatuses(20*time.Millisecond, "sent", "delivered", "read"),
		graphtest.WithStatusWebhook(graphtest.StatusWebhook{URL: fwd.URL + "/webhooks/whatsapp", AppSecret: "test-app-secret"}))
	h := newHub(t, consoleConfig(rcv.URL(), graphURL))
	hubAddr.Store(h.addr)
	h.waitConnector("hook", "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	return h, rcv, &fixed
}

func TestConsoleOperatorFlow(t *testing.T) {
	ctx := browser(t)
	h, rcv, fixed := consoleHub(t)
	const customer = "5511987650001"
	now := time.Now()

	// Sign in with the admin token.
	run(t, ctx, "login page", chromedp.Navigate(h.url("/console/")), chromedp.WaitVisible(chromedp.CSS("#token")))
	shot(t, ctx, "01-login")
	signIn(t, ctx, h, adminToken)
	until(t, ctx, "overview", `document.querySelector("h1").textContent === "Overview"`)

	// A first message opens the conversation; a second one appears in it
	// live, with its route (the conversation stays with its team: the
	// affinity rule, though it names a billing keyword) and the
	// connector's delivery state.
	h.postText(customer, "wamid.console.1", "Olá, preciso de ajuda", now)
	h.waitConnector("hook", "first delivered", func(c admin.ConnectorStatus) bool { return c.Delivered == 1 })
	run(t, ctx, "conversations", chromedp.Navigate(h.url("/console/conversations")), chromedp.WaitVisible(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)))
	shot(t, ctx, "02-conversations")
	run(t, ctx, "open conversation", chromedp.Click(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)),
		chromedp.WaitVisible(chromedp.CSS("ol.thread")))
	until(t, ctx, "live stream", `document.getElementById("live-status").textContent === "Live"`)
	eval[bool](t, ctx, "mark page", `window.__sameDocument = true`)
	h.postText(customer, "wamid.console.2", "Minha fatura veio errada", now.Add(time.Second))
	until(t, ctx, "the new message with its route and delivery", `[...document.querySelectorAll("li.bubble.in")].some(b =>
		b.textContent.includes("Minha fatura veio errada") && b.querySelector(".decision") &&
		/rule affinity → team support/.test(b.querySelector(".decision").textContent) &&
		[...b.querySelectorAll(".deliveries li")].some(d => d.textContent.trim() === "hook: delivered"))`)
	if !eval[bool](t, ctx, "no reload", `window.__sameDocument === true`) {
		t.Fatal("the conversation reloaded instead of updating live")
	}

	// A reply from the console: the policy allows it (the window is
	// open), it shows in the thread and reaches "read" on the fake.
	run(t, ctx, "reply", chromedp.SendKeys(chromedp.CSS("#reply"), "Já estamos vendo, Ana."), chromedp.Submit(chromedp.CSS("#reply")),
		chromedp.WaitVisible(chromedp.CSS(".flash.notice")))
	until(t, ctx, "sent reply with ticks", `[...document.querySelectorAll("li.bubble.out")].some(b =>
		b.textContent.includes("Já estamos vendo") && b.querySelector(".ticks.read"))`)
	shot(t, ctx, "03-conversation")

	// An event page shows every attempt with its duration and error.
	h.postText(customer, "wamid.console.3", "conexão instável aqui", now.Add(2*time.Second))
	h.waitConnector("hook", "flaky delivered", func(c admin.ConnectorStatus) bool { return c.Delivered >= 3 })
	run(t, ctx, "event page", chromedp.Navigate(h.url("/console/events/"+eventid.Message("wamid.console.3"))),
		chromedp.WaitVisible(chromedp.CSS("table.attempts")))
	until(t, ctx, "two attempts", `(() => { const rows = [...document.querySelectorAll("table.attempts tbody tr")];
		return rows.length === 2 && rows[0].textContent.includes("retry") && rows[0].textContent.includes("503") &&
			rows[1].textContent.includes("delivered") && rows.every(r => / ms/.test(r.textContent)); })()`)
	until(t, ctx, "explanation", `document.querySelector("ol.trace") && document.querySelector("ol.trace").textContent.includes("default")`)
	shot(t, ctx, "04-event")

	// A dead letter replayed from the page reaches the receiver.
	h.postText(customer, "wamid.console.4", "pedido quebrado", now.Add(3*time.Second))
	h.waitConnector("hook", "dead letter", func(c admin.ConnectorStatus) bool { return c.Dead == 1 })
	deadID := eventid.Message("wamid.console.4")
	run(t, ctx, "dead letters", chromedp.Navigate(h.url("/console/deadletters")), chromedp.WaitVisible(chromedp.CSS(`input[name="id"]`)))
	shot(t, ctx, "05-deadletters")
	fixed.Store(true)
	run(t, ctx, "select and replay",
		chromedp.Click(chromedp.CSS(`input[value="hook|`+deadID+`"]`)),
		chromedp.Click(chromedp.CSS("#replay")),
		chromedp.WaitVisible(chromedp.CSS("#replay-live")))
	until(t, ctx, "replay outcome delivered", `document.querySelector('[data-testid="outcome"]').textContent === "delivered"`)
	shot(t, ctx, "06-deadletters-replayed")
	got := false
	for _, ev := range rcv.Delivered() {
		got = got || ev.ID == deadID
	}
	if !got {
		t.Fatalf("the receiver did not get the replayed event %s", deadID)
	}

	// Pause and resume change the connector's state.
	run(t, ctx, "connectors", chromedp.Navigate(h.url("/console/connectors")), chromedp.WaitVisible(chromedp.CSS("#toggle-hook")))
	run(t, ctx, "pause", chromedp.Click(chromedp.CSS("#toggle-hook")), chromedp.WaitVisible(chromedp.CSS(`[data-testid="paused-hook"]`)))
	if c := h.connectors()["hook"]; !c.Paused {
		t.Fatalf("after Pause the API says %+v", c)
	}
	shot(t, ctx, "07-connectors-paused")
	run(t, ctx, "resume", chromedp.Click(chromedp.CSS("#toggle-hook")), chromedp.WaitNotPresent(chromedp.CSS(`[data-testid="paused-hook"]`)))
	if c := h.connectors()["hook"]; c.Paused {
		t.Fatalf("after Resume the API says %+v", c)
	}
	shot(t, ctx, "08-connectors")

	// The outbox: a text to someone who never wrote is refused by the same
	// policy as the API, and the refusal is listed.
	run(t, ctx, "outbox", chromedp.Navigate(h.url("/console/outbox")), chromedp.WaitVisible(chromedp.CSS("#to")),
		chromedp.SendKeys(chromedp.CSS("#to"), "5511900009999"),
		chromedp.SendKeys(chromedp.CSS("#pn"), businessNumber),
		chromedp.SendKeys(chromedp.CSS("#text"), "oi"),
		chromedp.Submit(chromedp.CSS("#text")),
		chromedp.WaitVisible(chromedp.CSS(".flash.error")))
	until(t, ctx, "refusal", `document.querySelector(".flash.error") && document.querySelector(".flash.error").textContent.includes("outside_window") &&
		document.body.textContent.includes("Recent policy refusals")`)
	shot(t, ctx, "09-outbox")
	run(t, ctx, "cluster", chromedp.Navigate(h.url("/console/cluster")), chromedp.WaitVisible(chromedp.CSS("table")))
	until(t, ctx, "single hub", `document.body.textContent.includes("Single hub (SQLite")`)
	shot(t, ctx, "10-cluster")
	run(t, ctx, "overview", chromedp.Navigate(h.url("/console/?range=1h")), chromedp.WaitVisible(chromedp.CSS("figure.chart svg")))
	shot(t, ctx, "11-overview")
	run(t, ctx, "dark", darkMode)
	shot(t, ctx, "12-overview-dark")
	run(t, ctx, "conversation dark", chromedp.Navigate(h.url("/console/conversations?q=Ana")), chromedp.WaitVisible(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)),
		chromedp.Click(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)), chromedp.WaitVisible(chromedp.CSS("ol.thread")))
	shot(t, ctx, "13-conversation-dark")

	// Sign out ends the session.
	run(t, ctx, "sign out", chromedp.Click(chromedp.CSS(".signout button")), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Navigate(h.url("/console/connectors")), chromedp.WaitVisible(chromedp.CSS("#token")))
}

// A viewer sees everything and changes nothing; a request without a
// session, with a wrong CSRF token or from another origin is refused.
func TestConsoleViewerSessionsAndCSRF(t *testing.T) {
	ctx := browser(t)
	h, _, _ := consoleHub(t)
	rcvDead := func() int64 { return h.connectors()["hook"].Dead }
	h.postText("5511987650001", "wamid.viewer.1", "pedido quebrado", time.Now())
	h.waitConnector("hook", "dead letter", func(c admin.ConnectorStatus) bool { return c.Dead == 1 })

	signIn(t, ctx, h, viewerToken)
	run(t, ctx, "connectors", chromedp.Navigate(h.url("/console/connectors")), chromedp.WaitVisible(chromedp.CSS(`[data-testid="state-hook"]`)))
	if n := eval[int](t, ctx, "no pause button", `document.querySelectorAll("#toggle-hook").length`); n != 0 {
		t.Error("a viewer is offered Pause")
	}
	run(t, ctx, "dead letters", chromedp.Navigate(h.url("/console/deadletters")), chromedp.WaitVisible(chromedp.CSS(`input[name="id"]`)))
	if n := eval[int](t, ctx, "no replay button", `document.querySelectorAll("#replay").length`); n != 0 {
		t.Error("a viewer is offered Replay")
	}
	// Forged from the viewer's page, with the viewer's own valid CSRF
	// token: still refused.
	statuses := eval[[]int](t, ctx, "forged actions", `(async () => {
		const csrf = document.querySelector('meta[name="csrf-token"]').content;
		const post = (path, body) => fetch(path, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": csrf}, body}).then(r => r.status);
		const id = document.querySelector('input[name="id"]').value;
		return [await post("/console/connectors/hook/pause", ""), await post("/console/deadletters/replay", "id=" + encodeURIComponent(id))];
	})()`)
	if fmt.Sprint(statuses) != "[403 403]" {
		t.Errorf("viewer's pause and replay answered %v, want [403 403]", statuses)
	}
	if c := h.connectors()["hook"]; c.Paused || c.Dead != 1 {
		t.Errorf("after a viewer's attempts: %+v, want not paused and the dead letter still dead", c)
	}
	shot(t, ctx, "20-viewer-deadletters")

	// Without a browser: no session, a wrong CSRF token, another origin.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/console/", "/console/connectors", "/console/events/x", "/console/nosuch"} {
		resp, err := plain.Get(h.url(path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
			t.Errorf("GET %s without a session: %d %s, want 303 to the sign-in page", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, path := range []string{"/console/connectors/hook/pause", "/console/deadletters/replay", "/console/live"} {
		method := "POST"
		if path == "/console/live" {
			method = "GET"
		}
		req, _ := http.NewRequest(method, h.url(path), strings.NewReader("id=hook%7Cx"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a session: %d, want 401", method, path, resp.StatusCode)
		}
	}
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar}
	resp, err := web.PostForm(h.url("/console/login"), url.Values{"token": {adminToken}, "next": {"/console/connectors"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || csrf == nil {
		t.Fatalf("admin sign-in over HTTP: %d, no CSRF token in the page", resp.StatusCode)
	}
	cookies := jar.Cookies(resp.Request.URL)
	var ck *http.Cookie
	for _, c := range resp.Request.Response.Cookies() {
		if c.Name == "wahub_console" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console" {
		t.Errorf("session cookie %+v (jar %v): want HttpOnly, SameSite=Strict, Path=/console", ck, cookies)
	}
	tests := []struct {
		name   string
		form   url.Values
		header http.Header
		want   int
	}{
		{"no CSRF token", url.Values{}, nil, 403},
		{"wrong CSRF token", url.Values{"csrf_token": {"forged"}}, nil, 403},
		{"right token, other origin", url.Values{"csrf_token": {string(csrf[1])}}, http.Header{"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"}}, 403},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("POST", h.url("/console/connectors/hook/pause"), strings.NewReader(tt.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range tt.header {
			req.Header[k] = v
		}
		resp, err := web.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
	if c := h.connectors()["hook"]; c.Paused {
		t.Fatal("a refused request paused the connector")
	}
	// The same request with the session's token goes through: the
	// refusals above were for the token, not for the request.
	resp, err = web.PostForm(h.url("/console/connectors/hook/pause"), url.Values{"csrf_token": {string(csrf[1])}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c := h.connectors()["hook"]; resp.StatusCode != 200 || !c.Paused {
		t.Fatalf("pause with the right token: %d, %+v", resp.StatusCode, c)
	}
	if rcvDead() != 1 {
		t.Fatal("the dead letter moved")
	}
}

// The sandbox view: what the fakes received, as a person reads it, and
// the other side's moves — a customer writes, an agent answers in Slack
// and in Zendesk, and the answers reach the customer's WhatsApp.
func TestConsoleSandboxView(t *testing.T) {
	ctx := browser(t)
	shipped, err := os.ReadFile(filepath.Join(repoRoot, "connectors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(shipped), "listen: 127.0.0.1:8080", "listen: 127.0.0.1:0", 1)
	cfg = strings.Replace(cfg, "path: data/wahub.db", "path: {{DIR}}/wahub.db", 1)
	cfg = strings.Replace(cfg, "${WAHUB_ADMIN_TOKEN:-}", adminToken, 1)
	h := newHub(t, cfg)
	for _, name := range []string{"slack", "zendesk"} {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	signIn(t, ctx, h, adminToken)
	run(t, ctx, "sandbox page", chromedp.Navigate(h.url("/console/sandbox")), chromedp.WaitVisible(chromedp.CSS("#sample")))
	run(t, ctx, "a customer writes",
		chromedp.SendKeys(chromedp.CSS("#ctext"), "Olá, meu pedido não chegou"),
		chromedp.Submit(chromedp.CSS("#ctext")),
		chromedp.WaitVisible(chromedp.CSS(".flash.notice")))
	until(t, ctx, "the Slack thread and the ticket", `document.querySelector(".slack-thread") && document.querySelector(".slack-thread").textContent.includes("meu pedido não chegou") &&
		document.querySelector(".ticket") && document.querySelector(".ticket").textContent.includes("meu pedido não chegou")`)
	retryStale(t, ctx, "an agent answers in Slack",
		chromedp.SendKeys(chromedp.CSS(".slack-thread input[name=text]"), "Vou verificar, um momento"),
		chromedp.Submit(chromedp.CSS(".slack-thread input[name=text]")))
	until(t, ctx, "the Slack answer on WhatsApp", `[...document.querySelectorAll("#sandbox-live li.bubble.out")].some(b => b.textContent.includes("Vou verificar"))`)
	retryStale(t, ctx, "an agent comments in Zendesk",
		chromedp.SendKeys(chromedp.CSS(".ticket input[name=text]"), "Seu pedido sai hoje"),
		chromedp.Submit(chromedp.CSS(".ticket input[name=text]")))
	until(t, ctx, "the Zendesk answer on WhatsApp", `[...document.querySelectorAll("#sandbox-live li.bubble.out")].some(b => b.textContent.includes("Seu pedido sai hoje"))`)
	shot(t, ctx, "30-sandbox")
	run(t, ctx, "conversation", chromedp.Navigate(h.url("/console/conversations")), chromedp.Click(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)),
		chromedp.WaitVisible(chromedp.CSS("ol.thread")))
	until(t, ctx, "both answers in the thread", `document.querySelector("ol.thread").textContent.includes("Vou verificar") && document.querySelector("ol.thread").textContent.includes("Seu pedido sai hoje")`)
	shot(t, ctx, "31-sandbox-conversation")
}

// A conversation with the sandbox's photo and voice note: the <img>
// loads (the browser decoded the file), and the voice note's <audio>
// src answers audio/ogg under the session cookie and nothing without it.
func TestConsoleShowsMedia(t *testing.T) {
	ctx := browser(t)
	h := newHub(t, shippedTemplate(t))
	for _, name := range shippedConnectors {
		h.waitConnector(name, "running", func(c admin.ConnectorStatus) bool { return c.State == "running" })
	}
	if out, errOut, code := h.wahub("simulate", "--now", "--url", h.url(""), fixture("image.json"), fixture("audio_voice.json")); code != 0 {
		t.Fatalf("simulate: %s%s", out, errOut)
	}
	// Delivered means fetched (delivery waits for the file): the audit
	// receiver's media blocks say available.
	for deadline := time.Now().Add(2 * time.Minute); ; {
		s := h.tourSnapshot()
		n := 0
		for _, r := range s.Webhook.Received {
			if r.Message != nil && r.Message.Media != nil && r.Message.Media.State == "available" {
				n++
			}
		}
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the 2 files delivered available within 2m", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	signIn(t, ctx, h, adminToken)
	open := func(who string) {
		t.Helper()
		run(t, ctx, who+"'s conversation", chromedp.Navigate(h.url("/console/conversations?q="+who)),
			chromedp.WaitVisible(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)),
			chromedp.Click(chromedp.CSS(`a[href^="/console/conversations/conv_"]`)),
			chromedp.WaitVisible(chromedp.CSS("ol.thread")))
	}
	open("5511987650001") // Ana; a name search for "Ana" also finds Mariana
	until(t, ctx, "the photo decoded", `(() => { const i = document.querySelector(".media.image img"); return i && i.complete && i.naturalWidth > 0 })()`)
	shot(t, ctx, "40-conversation-photo")
	open("5531991230004") // Mariana
	until(t, ctx, "the voice note's player", `document.querySelector(".media.audio audio[src]")`)
	src := eval[string](t, ctx, "audio src", `document.querySelector(".media.audio audio").src`)
	got := eval[string](t, ctx, "fetch the audio", `fetch(document.querySelector(".media.audio audio").src).then(r => r.status + " " + r.headers.get("content-type"))`)
	if !strings.HasPrefix(got, "200 audio/ogg") {
		t.Errorf("the voice note's src %s under the session: %s, want 200 audio/ogg", src, got)
	}
	shot(t, ctx, "41-conversation-voice-note")
	if !strings.HasPrefix(src, h.url("/console/media/")) {
		t.Fatalf("the voice note's src %s is not the console's media route", src)
	}
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := anon.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode/100 != 3) || strings.HasPrefix(resp.Header.Get("Content-Type"), "audio/") || strings.Contains(string(body), "OggS") {
		t.Errorf("the voice note without a session: %d %s, want 401 or a redirect to sign-in", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
