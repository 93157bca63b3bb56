package console

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

const (
	adminTok  = "admin-token-0123456789"
	viewerTok = "viewer-token-0123456789"
)

// fakeOps records what the console asked of the hub.
type fakeOps struct {
	mu     sync.Mutex
	calls  []string
	paused bool
}

func (o *fakeOps) Cluster(context.Context) ([]store.Node, error) { return nil, nil }

func (o *fakeOps) record(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, s)
}

func (o *fakeOps) Calls() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...)
}

func (o *fakeOps) Connectors(context.Context) ([]admin.ConnectorStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return []admin.ConnectorStatus{{Name: "hook", Plugin: "webhook", State: "running", PID: 42, Paused: o.paused}}, nil
}
func (o *fakeOps) Pause(_ context.Context, name string) error {
	if name != "hook" {
		return admin.ErrUnknownConnector
	}
	o.record("pause " + name)
	o.mu.Lock()
	o.paused = true
	o.mu.Unlock()
	return nil
}
func (o *fakeOps) Resume(_ context.Context, name string) error {
	o.record("resume " + name)
	return nil
}
func (o *fakeOps) Replay(_ context.Context, c string, ids []string) (int, error) {
	o.record("replay " + c + " " + strings.Join(ids, ","))
	return len(ids), nil
}
func (o *fakeOps) UpdateContact(context.Context, string, admin.ContactPatch) error { return nil }
func (o *fakeOps) RefreshTemplates(context.Context) (templates.Result, error) {
	return templates.Result{}, nil
}
func (o *fakeOps) SendMessage(_ context.Context, m sdk.OutboundMessage) (store.OutboundRecord, bool, error) {
	o.record("send " + m.To + " " + m.Text)
	if m.To == "53123" {
		return store.OutboundRecord{}, false, &sdk.RefusedError{Code: "blocked_country", Message: "country calling code +53 is blocked"}
	}
	return store.OutboundRecord{ID: "msg_1", State: "queued"}, true, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	srv   *httptest.Server
	ops   *fakeOps
	clock *clock
	st    *store.Store
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	st, err := store.Open(filepath.Join(t.TempDir(), "wahub.db"), store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, ops: &fakeOps{}, clock: clk, st: st}
	opt := Options{AdminToken: adminTok, ViewerToken: viewerTok, Store: st, Ops: e.ops, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&opt)
	}
	c, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(c)
	t.Cleanup(e.srv.Close)
	return e
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// client is a browser without JavaScript: it keeps the session cookie.
type client struct {
	e      *env
	cookie *http.Cookie
	csrf   string
}

func (e *env) signIn(token string) (*client, *http.Response) {
	e.t.Helper()
	hc := &http.Client{CheckRedirect: noRedirect}
	resp, err := hc.PostForm(e.srv.URL+"/console/login", url.Values{"token": {token}, "next": {"/console/connectors"}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	c := &client{e: e}
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			c.cookie = ck
		}
	}
	if c.cookie != nil {
		_, page := c.get("/console/connectors")
		if m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page); m != nil {
			c.csrf = m[1]
		}
	}
	return c, resp
}

func (c *client) do(req *http.Request) (*http.Response, string) {
	c.e.t.Helper()
	if c.cookie != nil {
		req.AddCookie(&http.Cookie{Name: c.cookie.Name, Value: c.cookie.Value})
	}
	resp, err := (&http.Client{CheckRedirect: noRedirect}).Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	return c.do(req)
}

func (c *client) post(path string, form url.Values, header http.Header) (*http.Response, string) {
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return c.do(req)
}

func TestNothingAnswersWithoutASession(t *testing.T) {
	e := newEnv(t, nil)
	anon := &client{e: e}
	for _, path := range []string{"/console/", "/console/conversations", "/console/conversations/conv_x", "/console/events/evt_x",
		"/console/connectors", "/console/deadletters", "/console/outbox", "/console/outbox/msg_x", "/console/cluster", "/console/sandbox", "/console/unknown"} {
		resp, body := anon.get(path)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login?next="+url.QueryEscape(path) {
			t.Errorf("GET %s: %d %s, want 303 to the sign-in page", path, resp.StatusCode, resp.Header.Get("Location"))
		}
		if strings.Contains(body, "hook") {
			t.Errorf("GET %s leaks content without a session", path)
		}
	}
	if resp, _ := anon.get("/console/live"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("live stream without a session: %d, want 401", resp.StatusCode)
	}
	for _, path := range []string{"/console/connectors/hook/pause", "/console/deadletters/replay", "/console/outbox/send", "/console/logout", "/console/sandbox/customer"} {
		if resp, _ := anon.post(path, url.Values{"csrf_token": {"x"}}, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d, want 401", path, resp.StatusCode)
		}
	}
	if got := e.ops.Calls(); len(got) != 0 {
		t.Fatalf("operations ran without a session: %v", got)
	}
	if resp, _ := anon.get("/console/static/console.css"); resp.StatusCode != 200 {
		t.Errorf("the stylesheet (no data in it) answers %d without a session; the sign-in page needs it", resp.StatusCode)
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, token string
		status      int
		role        string
	}{
		{"admin token", adminTok, http.StatusSeeOther, "admin"},
		{"viewer token", viewerTok, http.StatusSeeOther, "viewer"},
		{"wrong token", "guess", http.StatusUnauthorized, ""},
		{"empty token", "", http.StatusUnauthorized, ""},
		{"admin token with a suffix", adminTok + "x", http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp := e.signIn(tt.token)
			if resp.StatusCode != tt.status {
				t.Fatalf("sign-in: %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.role == "" {
				if c.cookie != nil {
					t.Fatal("a wrong token got a session cookie")
				}
				return
			}
			ck := c.cookie
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console" || ck.Secure {
				t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/console, not Secure over plain HTTP", ck)
			}
			if loc := resp.Header.Get("Location"); loc != "/console/connectors" {
				t.Errorf("redirect to %q, want the page asked for", loc)
			}
			if _, page := c.get("/console/"); !strings.Contains(page, `<span class="role" title="signed in as">`+tt.role+`</span>`) {
				t.Errorf("overview does not show the %s role", tt.role)
			}
		})
	}
}

func TestSecureCookieUnderTLS(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secure bool
		tls    bool
		proxy  bool
	}{{"Options.Secure", true, false, false}, {"TLS served by the hub", false, true, false}, {"behind a TLS proxy", false, false, true}} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options{AdminToken: adminTok, Secure: tt.secure, Ops: &fakeOps{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("POST", "/console/login", strings.NewReader("token="+adminTok))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			if tt.proxy {
				req.Header.Set("X-Forwarded-Proto", "https")
			}
			w := httptest.NewRecorder()
			c.ServeHTTP(w, req)
			cks := w.Result().Cookies()
			if len(cks) != 1 || !cks[0].Secure {
				t.Fatalf("cookies %+v: want one Secure session cookie", cks)
			}
		})
	}
}

func TestActionsNeedAdminSessionCSRFAndSameOrigin(t *testing.T) {
	e := newEnv(t, nil)
	adm, _ := e.signIn(adminTok)
	view, _ := e.signIn(viewerTok)
	if adm.csrf == "" || view.csrf == "" || adm.csrf == view.csrf {
		t.Fatal("each session needs its own CSRF token in its pages")
	}
	tests := []struct {
		name   string
		c      *client
		form   url.Values
		header http.Header
		status int
	}{
		{"admin without a CSRF token", adm, url.Values{}, nil, http.StatusForbidden},
		{"admin with a wrong CSRF token", adm, url.Values{"csrf_token": {"forged"}}, nil, http.StatusForbidden},
		{"admin with another session's token", adm, url.Values{"csrf_token": {view.csrf}}, nil, http.StatusForbidden},
		{"admin from another origin", adm, url.Values{"csrf_token": {adm.csrf}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"viewer with its own valid token", view, url.Values{"csrf_token": {view.csrf}}, nil, http.StatusForbidden},
		{"viewer with the token in a header", view, url.Values{}, http.Header{"X-Csrf-Token": {view.csrf}}, http.StatusForbidden},
	}
	for _, tt := range tests {
		for _, path := range []string{"/console/connectors/hook/pause", "/console/deadletters/replay"} {
			form := url.Values{"id": {"hook|evt_1"}}
			for k, v := range tt.form {
				form[k] = v
			}
			if resp, _ := tt.c.post(path, form, tt.header); resp.StatusCode != tt.status {
				t.Errorf("%s: POST %s: %d, want %d", tt.name, path, resp.StatusCode, tt.status)
			}
		}
	}
	if got := e.ops.Calls(); len(got) != 0 {
		t.Fatalf("refused requests ran %v", got)
	}
	resp, _ := adm.post("/console/connectors/hook/pause", url.Values{"csrf_token": {adm.csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/connectors?paused=hook" {
		t.Fatalf("admin pause: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = adm.post("/console/deadletters/replay", url.Values{"csrf_token": {adm.csrf}, "id": {"hook|evt_1", "hook|evt_2", "bad"}}, http.Header{"X-Csrf-Token": {adm.csrf}})
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "replayed=hook%7Cevt_1") {
		t.Fatalf("admin replay: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := strings.Join(e.ops.Calls(), "; "); got != "pause hook; replay hook evt_1,evt_2" {
		t.Fatalf("operations %q", got)
	}
	// A viewer's pages offer no action.
	_, page := view.get("/console/connectors")
	if strings.Contains(page, "/pause") || !strings.Contains(page, "paused") {
		t.Errorf("viewer's connectors page offers pause or hides the state:\n%s", page)
	}
}

func TestSendUsesTheAPIsChecks(t *testing.T) {
	e := newEnv(t, nil)
	adm, _ := e.signIn(adminTok)
	resp, page := adm.post("/console/outbox/send", url.Values{"csrf_token": {adm.csrf}, "to": {"53123"}, "kind": {"text"}, "text": {"hola"}, "nonce": {"n1"}}, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "Refused (blocked_country)") || !strings.Contains(page, `value="53123"`) {
		t.Fatalf("refused send: %d, want 422 naming the rule and keeping the form:\n%s", resp.StatusCode, page)
	}
	resp, _ = adm.post("/console/outbox/send", url.Values{"csrf_token": {adm.csrf}, "to": {"5511"}, "kind": {"text"}, "text": {"oi"},
		"nonce": {"n2"}, "return": {"/console/conversations/conv_x"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/conversations/conv_x?sent=msg_1" {
		t.Fatalf("send: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = adm.post("/console/outbox/send", url.Values{"csrf_token": {adm.csrf}, "to": {"5511"}, "kind": {"text"}, "text": {"oi"},
		"return": {"https://evil.example/"}}, nil)
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/console/outbox/msg_1") {
		t.Fatalf("send with a foreign return address went to %q", loc)
	}
	if resp, _ := adm.post("/console/outbox/send", url.Values{"csrf_token": {adm.csrf}, "to": {"5511"}, "kind": {"text"}, "text": {"  "}}, nil); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("empty text: %d, want 422", resp.StatusCode)
	}
	if got := strings.Join(e.ops.Calls(), "; "); got != "send 53123 hola; send 5511 oi; send 5511 oi" {
		t.Fatalf("sends %q", got)
	}
}

func TestSessionsExpire(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.signIn(adminTok)
	if resp, _ := c.get("/console/connectors"); resp.StatusCode != 200 {
		t.Fatalf("fresh session: %d", resp.StatusCode)
	}
	e.clock.Add(idleTimeout - time.Minute)
	if resp, _ := c.get("/console/connectors"); resp.StatusCode != 200 {
		t.Fatalf("session used within the idle timeout: %d", resp.StatusCode)
	}
	e.clock.Add(idleTimeout + time.Second)
	if resp, _ := c.get("/console/connectors"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("idle session: %d, want 303 to sign in again", resp.StatusCode)
	}
	c, _ = e.signIn(adminTok)
	for i := 0; i < 15; i++ { // used every 11h: never idle, yet it ends after 7 days
		e.clock.Add(11 * time.Hour)
		resp, _ := c.get("/console/connectors")
		if want := 11*time.Hour*time.Duration(i+1) <= maxLifetime; (resp.StatusCode == 200) != want {
			t.Fatalf("after %s: %d", 11*time.Hour*time.Duration(i+1), resp.StatusCode)
		}
	}
	// Sign-out ends the session at once.
	c, _ = e.signIn(adminTok)
	if resp, _ := c.post("/console/logout", url.Values{"csrf_token": {c.csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := c.get("/console/connectors"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out: %d, want 303", resp.StatusCode)
	}
}

func TestWrongTokensAreThrottled(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < loginFailures; i++ {
		if _, resp := e.signIn("guess"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, resp.StatusCode)
		}
	}
	if _, resp := e.signIn(adminTok); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after %d wrong tokens even the right one: %d, want 429", loginFailures, resp.StatusCode)
	}
	e.clock.Add(loginWindow + time.Second)
	if c, resp := e.signIn(adminTok); resp.StatusCode != http.StatusSeeOther || c.cookie == nil {
		t.Fatalf("a minute later: %d, want a session", resp.StatusCode)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/events/evt_1":         "/console/events/evt_1",
		"/console/?range=7d":            "/console/?range=7d",
		"":                              "/console/",
		"https://evil.example/":         "/console/",
		"//evil.example/":               "/console/",
		"/console/\\evil":               "/console/",
		"/api/v1/events":                "/console/",
		"/console/x\r\nSet-Cookie: a=b": "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNoTokenConfigured(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.AdminToken, o.ViewerToken = "", "" })
	_, page := (&client{e: e}).get("/console/login")
	if !strings.Contains(page, "server.admin_token") || strings.Contains(page, `name="token"`) {
		t.Fatalf("without tokens the sign-in page must say how to set one and offer no form:\n%s", page)
	}
	if _, resp := e.signIn(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign-in with nothing configured: %d", resp.StatusCode)
	}
}

// The live stream says "change" after a commit to the store.
func TestLiveStreamFollowsCommits(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Keepalive = time.Hour })
	c, _ := e.signIn(viewerTok)
	req, _ := http.NewRequest("GET", e.srv.URL+"/console/live", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: c.cookie.Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("live: %d %s", resp.StatusCode, ct)
	}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() && lines.Text() != ": connected" {
	}
	if _, err := e.st.Append(context.Background(), []sdk.Event{{ID: "evt_live", Type: "message.received", OccurredAt: e.clock.Now(), ReceivedAt: e.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		if lines.Text() == "event: change" {
			return
		}
	}
	t.Fatalf("the stream ended without a change: %v", lines.Err())
}

// The charts' cache of ended buckets gives what counting everything
// again would, as time moves on and events keep coming.
func TestSeriesCacheMatchesTheStore(t *testing.T) {
	e := newEnv(t, nil)
	c, err := New(Options{AdminToken: adminTok, Store: e.st, Ops: e.ops, Now: e.clock.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := time.Minute
	seq := 0
	post := func(n int) {
		for i := 0; i < n; i++ {
			seq++
			now := e.clock.Now()
			typ := sdk.TypeMessageReceived
			if seq%3 == 0 {
				typ = sdk.TypeMessageSent
			}
			if _, err := e.st.Append(ctx, []sdk.Event{{ID: fmt.Sprintf("evt_%d", seq), Type: typ, OccurredAt: now, ReceivedAt: now}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := 0; round < 12; round++ {
		post(round % 4)
		e.clock.Add(20 * time.Second) // three refreshes a bucket
		now := e.clock.Now()
		since := now.Add(-10 * time.Minute).Truncate(step).Add(step)
		got, err := c.series(ctx, since, step)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.st.Series(ctx, since, step)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got.Inbound, got.Outbound) != fmt.Sprint(want.Inbound, want.Outbound) {
			t.Fatalf("round %d: cached %v %v, counted %v %v", round, got.Inbound, got.Outbound, want.Inbound, want.Outbound)
		}
	}
}
