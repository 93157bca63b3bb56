package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/webhook"
	"github.com/wahub/wahub/plugins/webhook/webhooktest"
	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

var (
	secret   = []byte("test-secret-0123456789abcdef")
	fixedNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
)

func clock() time.Time { return fixedNow }

// configJSON is a connector configuration; extra keys are merged in.
func configJSON(t testing.TB, url, secret string, extra map[string]any) json.RawMessage {
	t.Helper()
	cfg := map[string]any{"url": url, "secret": secret}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// start runs a webhook connector over gRPC, the way the hub does, with the
// clock fixed. The connector itself is returned too, for calls the gRPC
// path cannot make (a Deliver whose context dies mid-batch).
func start(t *testing.T, cfg json.RawMessage) (*sdk.Remote, sdk.Connector) {
	t.Helper()
	c := webhook.New()
	webhook.SetClock(c, clock)
	r, _ := sdktest.Start(t, c, "hook", cfg)
	return r, c
}

// receiver starts a fake endpoint on the fixed clock.
func receiver(t *testing.T) *webhooktest.Receiver {
	t.Helper()
	rcv := webhooktest.NewReceiver(secret)
	rcv.SetClock(clock)
	t.Cleanup(rcv.Close)
	return rcv
}

func deliver(t *testing.T, r *sdk.Remote, events ...sdk.Event) map[string]sdk.Result {
	t.Helper()
	results, err := r.Deliver(context.Background(), events)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if len(results) != len(events) {
		t.Fatalf("%d results for %d events", len(results), len(events))
	}
	byID := map[string]sdk.Result{}
	for _, res := range results {
		byID[res.EventID] = res
	}
	return byID
}

func event(id, conv string) sdk.Event {
	return sdk.Event{
		ID: id, Seq: 1, Type: sdk.TypeMessageReceived,
		OccurredAt: fixedNow, ReceivedAt: fixedNow,
		Contact:        &sdk.Contact{WAID: "5511987650001", Name: "Ana"},
		ConversationID: conv,
		Message:        &sdk.Message{ID: "wamid." + id, Type: "text", Text: "olá"},
		Route:          &sdk.Route{Rule: "default", Team: "support", Connectors: []string{"hook"}},
		Raw:            json.RawMessage(`{"id":"wamid.` + id + `"}`),
	}
}

func TestConformance(t *testing.T) {
	var rcv *webhooktest.Receiver // the endpoint of the latest New
	sdktest.Suite{
		Name:         "webhook",
		RequiredKeys: []string{"url"},
		New: func(t *testing.T) (sdk.Connector, json.RawMessage) {
			rcv = webhooktest.NewReceiver(secret)
			t.Cleanup(rcv.Close)
			return webhook.New(), configJSON(t, rcv.URL(), string(secret), nil)
		},
		BadConfig: json.RawMessage(`{"url": "ftp://example.com/in", "secret": "s"}`),
		// A webhook cannot know whether a redelivered event was processed:
		// it POSTs again, with the same webhook-id, and the receiver drops
		// the duplicate; that is the Standard Webhooks contract. So each
		// event arrives exactly twice, both times under its own id and
		// validly signed, and a deduplicating receiver processes it once.
		AfterRedelivery: func(t *testing.T) {
			events := sdktest.Events()
			for _, ev := range events {
				want, _ := json.Marshal(ev)
				var n int
				for _, d := range rcv.Received() {
					if d.Event.ID != ev.ID {
						continue
					}
					n++
					if d.ID != ev.ID || !d.Valid {
						t.Errorf("event %s: webhook-id %q, valid signature %v (%s)", ev.ID, d.ID, d.Valid, d.Error)
					}
					if !bytes.Equal(d.Body, want) {
						t.Errorf("event %s: body\n%s\nwant json.Marshal(event)\n%s", ev.ID, d.Body, want)
					}
				}
				if n != 2 || rcv.Attempts(ev.ID) != 2 {
					t.Errorf("event %s received %d times (attempts %d), want 2: once per delivery", ev.ID, n, rcv.Attempts(ev.ID))
				}
			}
			if got := len(rcv.Delivered()); got != len(events) {
				t.Errorf("receiver deduplicating by webhook-id processed %d events, want %d", got, len(events))
			}
		},
	}.Run(t)
}

func TestSignatureKnownAnswer(t *testing.T) {
	// The Standard Webhooks test vector, published with the reference
	// libraries and checked with `openssl dgst -sha256 -mac HMAC`: a
	// receiver using any of those libraries accepts what we send.
	const (
		vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		vecTS     = 1614265330
		vecBody   = `{"test": 2432232314}`
		vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	key, err := webhook.DecodeSecret(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := webhook.Sign(key, vecID, time.Unix(vecTS, 0), []byte(vecBody)); got != vecSig {
		t.Errorf("Sign = %s, want %s", got, vecSig)
	}
	h := http.Header{}
	h.Set("webhook-id", vecID)
	h.Set("webhook-timestamp", strconv.Itoa(vecTS))
	h.Set("webhook-signature", vecSig)
	if err := webhook.Verify(key, h, []byte(vecBody), time.Unix(vecTS+10, 0), 0); err != nil {
		t.Errorf("Verify(test vector) = %v", err)
	}

	// What the connector sends, checked with crypto/hmac here rather
	// than with the package's own Sign.
	rcv := receiver(t)
	r, _ := start(t, configJSON(t, rcv.URL(), string(secret), nil))
	ev := event("evt_kat", "conv_kat")
	if res := deliver(t, r, ev)["evt_kat"]; res.Outcome != sdk.Delivered {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Error)
	}
	got := rcv.Received()
	if len(got) != 1 {
		t.Fatalf("received %d requests, want 1", len(got))
	}
	d := got[0]
	wantBody, _ := json.Marshal(ev)
	if !bytes.Equal(d.Body, wantBody) {
		t.Errorf("body\n%s\nwant\n%s", d.Body, wantBody)
	}
	ts := strconv.FormatInt(fixedNow.Unix(), 10)
	if d.Header.Get("webhook-timestamp") != ts {
		t.Errorf("webhook-timestamp = %q, want %q", d.Header.Get("webhook-timestamp"), ts)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("evt_kat." + ts + "."))
	mac.Write(wantBody)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if s := d.Header.Get("webhook-signature"); s != want {
		t.Errorf("webhook-signature = %s, want %s", s, want)
	}
	if !d.Valid {
		t.Errorf("receiver refused the signature: %s", d.Error)
	}
}

func TestRequest(t *testing.T) {
	rcv := receiver(t)
	r, _ := start(t, configJSON(t, rcv.URL()+"/in/wahub?tenant=acme", string(secret), map[string]any{
		"headers": map[string]string{"Authorization": "Bearer t0ken", "x-tenant": "acme"},
	}))
	if res := deliver(t, r, event("evt_1", "c1"))["evt_1"]; res.Outcome != sdk.Delivered {
		t.Fatalf("outcome %s: %s", res.Outcome, res.Error)
	}
	d := rcv.Received()[0]
	if d.Method != http.MethodPost || d.Path != "/in/wahub?tenant=acme" {
		t.Errorf("request %s %s, want POST /in/wahub?tenant=acme", d.Method, d.Path)
	}
	for name, want := range map[string]string{
		"Content-Type":  "application/json",
		"User-Agent":    "wahub-webhook/" + webhook.Version,
		"Webhook-Id":    "evt_1",
		"Authorization": "Bearer t0ken",
		"X-Tenant":      "acme",
	} {
		if got := d.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestOutcomes(t *testing.T) {
	long := strings.Repeat("a", 200) + "TAIL"
	cases := []struct {
		name    string
		resp    webhooktest.Response
		timeout string
		refused bool // no server at all
		want    sdk.Outcome
		after   time.Duration
		errHas  []string
		errNot  []string
	}{
		{name: "200", resp: webhooktest.Response{Status: 200}, want: sdk.Delivered},
		{name: "201", resp: webhooktest.Response{Status: 201}, want: sdk.Delivered},
		{name: "204", resp: webhooktest.Response{Status: 204}, want: sdk.Delivered},
		{name: "301 not followed", resp: webhooktest.Response{Status: 301, Header: http.Header{"Location": {"/elsewhere?token=s3cret"}}, Body: "moved"},
			want: sdk.Failed, errHas: []string{"301 Moved Permanently", "redirects are not followed", "/elsewhere", "moved"}, errNot: []string{"s3cret"}},
		{name: "400", resp: webhooktest.Response{Status: 400, Body: "missing field foo"}, want: sdk.Failed,
			errHas: []string{"400 Bad Request", "missing field foo"}},
		{name: "400 long body cut at 200 bytes", resp: webhooktest.Response{Status: 400, Body: long}, want: sdk.Failed,
			errHas: []string{strings.Repeat("a", 200)}, errNot: []string{"TAIL"}},
		{name: "401", resp: webhooktest.Response{Status: 401}, want: sdk.Failed, errHas: []string{"401"}},
		{name: "404", resp: webhooktest.Response{Status: 404}, want: sdk.Failed, errHas: []string{"404 Not Found"}},
		{name: "408", resp: webhooktest.Response{Status: 408}, want: sdk.Retry, errHas: []string{"408"}},
		{name: "409", resp: webhooktest.Response{Status: 409}, want: sdk.Failed, errHas: []string{"409 Conflict"}},
		{name: "429 Retry-After seconds", resp: webhooktest.Response{Status: 429, RetryAfter: "120"}, want: sdk.Retry, after: 2 * time.Minute,
			errHas: []string{"429 Too Many Requests"}},
		{name: "429 Retry-After HTTP-date", resp: webhooktest.Response{Status: 429, RetryAfter: fixedNow.Add(90 * time.Second).Format(http.TimeFormat)},
			want: sdk.Retry, after: 90 * time.Second},
		{name: "429 Retry-After date in the past", resp: webhooktest.Response{Status: 429, RetryAfter: fixedNow.Add(-time.Hour).Format(http.TimeFormat)},
			want: sdk.Retry},
		{name: "429 Retry-After capped at 1h", resp: webhooktest.Response{Status: 429, RetryAfter: "86400"}, want: sdk.Retry, after: time.Hour},
		{name: "429 Retry-After garbage", resp: webhooktest.Response{Status: 429, RetryAfter: "soon"}, want: sdk.Retry},
		{name: "500", resp: webhooktest.Response{Status: 500, Body: "boom"}, want: sdk.Retry, errHas: []string{"500 Internal Server Error", "boom"}},
		{name: "502", resp: webhooktest.Response{Status: 502}, want: sdk.Retry, errHas: []string{"502"}},
		{name: "503 without Retry-After", resp: webhooktest.Response{Status: 503}, want: sdk.Retry, errHas: []string{"503"}},
		{name: "503 with Retry-After", resp: webhooktest.Response{Status: 503, RetryAfter: "5"}, want: sdk.Retry, after: 5 * time.Second},
		{name: "timeout", resp: webhooktest.Response{Hang: true}, timeout: "50ms", want: sdk.Retry, errHas: []string{"no answer within 50ms"}},
		{name: "connection refused", refused: true, want: sdk.Retry, errHas: []string{"connection refused"}, errNot: []string{"s3cret"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcv := receiver(t)
			rcv.Script(tc.resp)
			url := rcv.URL()
			if tc.refused {
				url = "http://" + sdktest.ClosedAddr(t) + "/in?token=s3cret"
			}
			extra := map[string]any{}
			if tc.timeout != "" {
				extra["timeout"] = tc.timeout
			}
			r, _ := start(t, configJSON(t, url, string(secret), extra))
			res := deliver(t, r, event("evt_1", "c1"))["evt_1"]
			sdktest.WantResult(t, res, tc.want, tc.after, tc.errHas, tc.errNot)
			if !tc.refused && rcv.Attempts("evt_1") != 1 {
				t.Errorf("endpoint got %d requests, want 1", rcv.Attempts("evt_1"))
			}
		})
	}
}

func TestOrderWithinConversation(t *testing.T) {
	cases := []struct {
		name      string
		second    webhooktest.Response
		want2     sdk.Outcome
		heldAfter time.Duration // RetryAfter of the held third event
	}{
		{name: "503 retries", second: webhooktest.Response{Status: 503, RetryAfter: "30"}, want2: sdk.Retry, heldAfter: 30 * time.Second},
		{name: "404 fails", second: webhooktest.Response{Status: 404}, want2: sdk.Failed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcv := receiver(t)
			rcv.Script(webhooktest.Response{Status: 200}, tc.second)
			r, _ := start(t, configJSON(t, rcv.URL(), string(secret), nil))
			e1, e2, e3 := event("evt_1", "conv"), event("evt_2", "conv"), event("evt_3", "conv")
			res := deliver(t, r, e1, e2, e3)
			if res["evt_1"].Outcome != sdk.Delivered || res["evt_2"].Outcome != tc.want2 {
				t.Fatalf("results %+v", res)
			}
			held := res["evt_3"]
			if held.Outcome != sdk.Retry || held.RetryAfter != tc.heldAfter || !strings.Contains(held.Error, "evt_2") {
				t.Errorf("third event: %+v, want Retry after %s naming evt_2", held, tc.heldAfter)
			}
			if n := rcv.Attempts("evt_3"); n != 0 {
				t.Errorf("third event sent %d times while the second was not delivered", n)
			}
			// The hub redelivers what is pending; the endpoint still sees
			// the conversation in order.
			rest := []sdk.Event{e3}
			if tc.want2 == sdk.Retry {
				rest = []sdk.Event{e2, e3}
			}
			for id, res := range deliver(t, r, rest...) {
				if res.Outcome != sdk.Delivered {
					t.Errorf("redelivery of %s: %s %s", id, res.Outcome, res.Error)
				}
			}
			var order []string
			for _, d := range rcv.Received() {
				order = append(order, d.ID)
			}
			want := "evt_1 evt_2 evt_3"
			if tc.want2 == sdk.Retry {
				want = "evt_1 evt_2 evt_2 evt_3"
			}
			if got := strings.Join(order, " "); got != want {
				t.Errorf("endpoint saw %s, want %s", got, want)
			}
		})
	}
}

func TestConversationsAreIndependent(t *testing.T) {
	rcv := receiver(t)
	rcv.SetHandler(func(_ *http.Request, body []byte) webhooktest.Response {
		var ev sdk.Event
		_ = json.Unmarshal(body, &ev)
		if ev.ConversationID == "conv_bad" {
			return webhooktest.Response{Status: 500, Body: "bad conversation"}
		}
		return webhooktest.Response{Status: 200}
	})
	r, _ := start(t, configJSON(t, rcv.URL(), string(secret), nil))
	var batch []sdk.Event
	for i := 1; i <= 3; i++ {
		batch = append(batch, event(fmt.Sprintf("bad_%d", i), "conv_bad"), event(fmt.Sprintf("good_%d", i), "conv_good"))
	}
	res := deliver(t, r, batch...)
	for i := 1; i <= 3; i++ {
		if o := res[fmt.Sprintf("good_%d", i)].Outcome; o != sdk.Delivered {
			t.Errorf("good_%d: %s, want delivered despite the other conversation failing", i, o)
		}
		if o := res[fmt.Sprintf("bad_%d", i)].Outcome; o != sdk.Retry {
			t.Errorf("bad_%d: %s, want retry", i, o)
		}
	}
	var good []string
	for _, d := range rcv.Received() {
		if strings.HasPrefix(d.ID, "good_") {
			good = append(good, d.ID)
		}
	}
	if got := strings.Join(good, " "); got != "good_1 good_2 good_3" {
		t.Errorf("good conversation arrived as %s", got)
	}
	if n := rcv.Attempts("bad_1"); n != 1 {
		t.Errorf("bad_1 sent %d times, want 1", n)
	}
	if n := rcv.Attempts("bad_2") + rcv.Attempts("bad_3"); n != 0 {
		t.Errorf("later events of the failing conversation sent %d times, want 0", n)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	n := webhook.MaxConcurrent
	rcv := receiver(t)
	var (
		mu             sync.Mutex
		inFlight, peak int
		arrived        = make(chan struct{}, 3*n)
		release        = make(chan struct{})
	)
	rcv.SetHandler(func(req *http.Request, _ []byte) webhooktest.Response {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-release:
		case <-req.Context().Done(): // the test failed and is closing
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		return webhooktest.Response{Status: 204}
	})
	r, _ := start(t, configJSON(t, rcv.URL(), string(secret), nil))
	var batch []sdk.Event
	for i := range 3 * n {
		batch = append(batch, event(fmt.Sprintf("evt_%02d", i), fmt.Sprintf("conv_%02d", i)))
	}
	type answer struct {
		results []sdk.Result
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		results, err := r.Deliver(context.Background(), batch)
		done <- answer{results, err}
	}()
	// Held until n conversations are in flight at once: proof that they
	// go concurrently; the peak then shows no more than n ever did.
	for range n {
		<-arrived
	}
	close(release)
	a := <-done
	if a.err != nil || len(a.results) != len(batch) {
		t.Fatalf("Deliver: %d results, %v", len(a.results), a.err)
	}
	for _, res := range a.results {
		if res.Outcome != sdk.Delivered {
			t.Errorf("%s: %s %s", res.EventID, res.Outcome, res.Error)
		}
	}
	if peak != n {
		t.Errorf("peak concurrency %d, want %d", peak, n)
	}
}

func TestCancelledMidBatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rcv := receiver(t)
	rcv.SetHandler(func(*http.Request, []byte) webhooktest.Response {
		cancel() // the hub gives up while the endpoint is still thinking
		return webhooktest.Response{Hang: true}
	})
	_, c := start(t, configJSON(t, rcv.URL(), string(secret), nil))
	results := c.Deliver(ctx, []sdk.Event{event("evt_1", "conv"), event("evt_2", "conv")})
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	for _, res := range results {
		if res.Outcome != sdk.Retry {
			t.Errorf("%s: %s (%s), want retry", res.EventID, res.Outcome, res.Error)
		}
	}
	if rcv.Attempts("evt_2") != 0 {
		t.Error("evt_2 sent after the context ended")
	}
}

func TestWhsecSecret(t *testing.T) {
	key := []byte("\x00\x01binary key bytes\xff\xfe")
	configured := "whsec_" + base64.StdEncoding.EncodeToString(key)
	cases := []struct {
		name     string
		receiver []byte // what the endpoint verifies with
		want     sdk.Outcome
	}{
		{"receiver uses the decoded key", key, sdk.Delivered},
		// Proof that the prefix is decoded rather than used as text.
		{"receiver uses the string as text", []byte(configured), sdk.Failed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcv := webhooktest.NewReceiver(tc.receiver)
			rcv.SetClock(clock)
			t.Cleanup(rcv.Close)
			r, _ := start(t, configJSON(t, rcv.URL(), configured, nil))
			if res := deliver(t, r, event("evt_1", "c"))["evt_1"]; res.Outcome != tc.want {
				t.Errorf("got %s (%s), want %s", res.Outcome, res.Error, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	const sec = "sup3r-s3cret"
	cases := []sdktest.ConfigCase{
		{"valid", `{"url": "https://example.com/in", "secret": "` + sec + `"}`, ""},
		{"valid with everything", `{"url": "http://127.0.0.1:1/in", "secret": "whsec_c2VjcmV0", "timeout": "2s", "headers": {"Authorization": "Bearer x"}}`, ""},
		{"empty", `{}`, "connectors.hook.config.url: required (the endpoint that receives events)"},
		{"relative url", `{"url": "/in", "secret": "` + sec + `"}`, "connectors.hook.config.url: must be an absolute http:// or https:// URL"},
		{"ftp url", `{"url": "ftp://example.com/in", "secret": "` + sec + `"}`, "connectors.hook.config.url: must be an absolute"},
		{"url without host", `{"url": "https:///in", "secret": "` + sec + `"}`, "connectors.hook.config.url: must be an absolute"},
		{"unparseable url", `{"url": "http://[::1", "secret": "` + sec + `"}`, "connectors.hook.config.url: not a valid URL"},
		{"no secret", `{"url": "https://example.com/in"}`, "connectors.hook.config.secret: required"},
		{"whsec not base64", `{"url": "https://example.com/in", "secret": "whsec_!!` + sec + `"}`, "connectors.hook.config.secret: starts with \"whsec_\" but the rest is not valid"},
		{"whsec empty", `{"url": "https://example.com/in", "secret": "whsec_"}`, "connectors.hook.config.secret: starts with \"whsec_\" but has no key"},
		{"bad timeout", `{"url": "https://example.com/in", "secret": "` + sec + `", "timeout": "soon"}`, "connectors.hook.config.timeout: \"soon\" is not a duration such as 10s"},
		{"zero timeout", `{"url": "https://example.com/in", "secret": "` + sec + `", "timeout": "0s"}`, "connectors.hook.config.timeout"},
		{"numeric timeout", `{"url": "https://example.com/in", "secret": "` + sec + `", "timeout": 10}`, "connectors.hook.config.timeout: expected a duration"},
		{"reserved header", `{"url": "https://example.com/in", "secret": "` + sec + `", "headers": {"webhook-signature": "x"}}`, "connectors.hook.config.headers.webhook-signature: webhook-signature is set by the connector"},
		{"bad header name", `{"url": "https://example.com/in", "secret": "` + sec + `", "headers": {"X Token": "x"}}`, "connectors.hook.config.headers: \"X Token\" is not a valid HTTP header name"},
		{"header value with newline", `{"url": "https://example.com/in", "secret": "` + sec + `", "headers": {"X-Token": "a\r\nb"}}`, "connectors.hook.config.headers.X-Token: the value contains a line break"},
		{"unknown key", `{"url": "https://example.com/in", "secret": "` + sec + `", "retries": 3}`, `connectors.hook.config.retries: unknown key`},
	}
	sdktest.CheckConfigs(t, webhook.New, "hook", cases, sec)
}

func TestDescribe(t *testing.T) {
	info := webhook.New().Describe()
	if info.Name != "webhook" || info.Version != webhook.Version {
		t.Errorf("Describe = %+v", info)
	}
}
