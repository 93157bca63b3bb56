package graphtest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
)

const (
	token = "EAAGfakeTOKEN"
	pnid  = "106540352242922"
)

// clock is a hand-stepped clock for limits and timestamps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type answer struct {
	status int
	header http.Header
	body   []byte
	err    struct {
		Error struct {
			Message   string `json:"message"`
			Type      string `json:"type"`
			Code      int    `json:"code"`
			Subcode   int    `json:"error_subcode"`
			FBTraceID string `json:"fbtrace_id"`
			Data      struct {
				MessagingProduct string `json:"messaging_product"`
				Details          string `json:"details"`
			} `json:"error_data"`
		} `json:"error"`
	}
}

// do sends a raw request to the fake through its handler.
func do(t *testing.T, h http.Handler, method, path, auth, body string) answer {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
	_ = json.Unmarshal(a.body, &a.err)
	return a
}

func send(t *testing.T, h http.Handler, body string) answer {
	t.Helper()
	return do(t, h, http.MethodPost, "/v23.0/"+pnid+"/messages", "Bearer "+token, body)
}

func text(to, body string) string {
	return fmt.Sprintf(`{"messaging_product":"whatsapp","recipient_type":"individual","to":%q,"type":"text","text":{"body":%q}}`, to, body)
}

func template(to, name string) string {
	return fmt.Sprintf(`{"messaging_product":"whatsapp","to":%q,"type":"template","template":{"name":%q,"language":{"code":"en_US"}}}`, to, name)
}

func TestAuth(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithAccessToken(token))
	path := "/v23.0/" + pnid + "/messages"
	for _, tt := range []struct {
		name, auth, path string
		status           int
	}{
		{"missing", "", path, 401},
		{"wrong", "Bearer nope", path, 401},
		{"other scheme", "Basic " + token, path, 401},
		{"bearer", "Bearer " + token, path, 200},
		{"oauth scheme", "OAuth " + token, path, 200},
		{"query parameter", "", path + "?access_token=" + token, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, fake, http.MethodPost, tt.path, tt.auth, text("+16505551234", "hi"))
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.status == 401 {
				e := a.err.Error
				if e.Code != 190 || e.Type != "OAuthException" || e.FBTraceID == "" || e.Message == "" {
					t.Errorf("envelope %s", a.body)
				}
				if !strings.Contains(a.header.Get("WWW-Authenticate"), "invalid_token") {
					t.Errorf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	// Without WithAccessToken anything goes.
	if a := do(t, graphtest.NewServer(), http.MethodPost, path, "", text("+1", "x")); a.status != 200 {
		t.Errorf("open fake: %d", a.status)
	}
	// Refused requests are recorded too.
	reqs := fake.Requests()
	if len(reqs) != 6 || reqs[0].Status != 401 || reqs[0].Code != 190 || reqs[3].Status != 200 || reqs[3].Token != token {
		t.Errorf("requests %+v", reqs)
	}
}

func TestPathsAndNumbers(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithPhoneNumber(pnid, "15550783881"))
	mux := http.NewServeMux()
	mux.Handle("/sandbox/whatsapp/", http.StripPrefix("/sandbox/whatsapp", fake))
	for _, tt := range []struct {
		method, path string
		status, code int
		subcode      int
	}{
		{"POST", "/sandbox/whatsapp/v23.0/" + pnid + "/messages", 200, 0, 0},
		{"POST", "/sandbox/whatsapp/v25.0/" + pnid + "/messages", 200, 0, 0},
		{"POST", "/sandbox/whatsapp/v9/" + pnid + "/messages/", 200, 0, 0},
		{"POST", "/sandbox/whatsapp/" + pnid + "/messages", 200, 0, 0},
		{"POST", "/sandbox/whatsapp/v23.0/42/messages", 400, 100, 33},
		{"GET", "/sandbox/whatsapp/v23.0/" + pnid + "/messages", 400, 100, 33},
		{"POST", "/sandbox/whatsapp/v23.0/" + pnid + "/photos", 400, 100, 33},
		{"POST", "/sandbox/whatsapp/", 400, 100, 33},
	} {
		a := do(t, mux, tt.method, tt.path, "", text("+16505551234", "hi"))
		if a.status != tt.status || a.err.Error.Code != tt.code || a.err.Error.Subcode != tt.subcode {
			t.Errorf("%s %s: %d %s", tt.method, tt.path, a.status, a.body)
		}
		if tt.code == 100 && (a.err.Error.Type != "GraphMethodException" || !strings.Contains(a.err.Error.Message, "does not exist")) {
			t.Errorf("%s %s: %s", tt.method, tt.path, a.body)
		}
	}
}

func TestSuccessBody(t *testing.T) {
	fake := graphtest.NewServer()
	a := send(t, fake, text("+16505551234", "hi"))
	var got struct {
		MessagingProduct string `json:"messaging_product"`
		Contacts         []map[string]string
		Messages         []map[string]string
	}
	if err := json.Unmarshal(a.body, &got); err != nil || a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	wamid := got.Messages[0]["id"]
	if got.MessagingProduct != "whatsapp" || got.Contacts[0]["input"] != "+16505551234" || got.Contacts[0]["wa_id"] != "16505551234" ||
		len(got.Messages[0]) != 1 {
		t.Errorf("%s", a.body)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(wamid, "wamid."))
	if !strings.HasPrefix(wamid, "wamid.HBg") || err != nil || !bytes.Contains(raw, []byte("16505551234")) {
		t.Errorf("wamid %q does not look like Meta's", wamid)
	}
	if !bytes.Contains(a.body, []byte(`"messages":[{"id":"wamid.`)) {
		t.Errorf("%s", a.body)
	}

	// Templates carry message_status; BSUIDs are answered with user_id.
	if a := send(t, fake, template("+16505551234", "hello_world")); !bytes.Contains(a.body, []byte(`"message_status":"accepted"`)) {
		t.Errorf("template: %s", a.body)
	}
	a = send(t, fake, `{"messaging_product":"whatsapp","recipient":"US.13491208655302741918","type":"text","text":{"body":"hi"}}`)
	if !bytes.Contains(a.body, []byte(`"contacts":[{"input":"US.13491208655302741918","user_id":"US.13491208655302741918"}]`)) {
		t.Errorf("bsuid: %s", a.body)
	}
	sent := fake.Sent()
	if len(sent) != 3 || sent[0].WAMID != wamid || sent[0].Text != "hi" || sent[1].Template != "hello_world" || sent[1].Language != "en_US" ||
		sent[2].UserID != "US.13491208655302741918" || sent[2].WAID != "" {
		t.Errorf("sent %+v", sent)
	}
}

func TestUniqueWAMIDsConcurrently(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithAccessToken(token))
	ts := httptest.NewServer(fake)
	defer ts.Close()
	c := graph.New(ts.URL+"/v23.0", token, ts.Client())
	const n = 200
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := c.Send(context.Background(), pnid, graph.Message{To: fmt.Sprintf("+1650555%04d", i), Text: "hi"})
			if err != nil {
				t.Error(err)
			}
			ids[i] = a.WAMID
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("duplicate wamid %s", id)
		}
		seen[id] = true
	}
	if fake.SentCount() != n || len(fake.Requests()) != n {
		t.Errorf("sent %d, requests %d", fake.SentCount(), len(fake.Requests()))
	}
}

func TestValidation(t *testing.T) {
	buttons := func(n int, title string) string {
		var bs []string
		for i := range n {
			bs = append(bs, fmt.Sprintf(`{"type":"reply","reply":{"id":"b%d","title":"%s%d"}}`, i, title, i))
		}
		return `{"messaging_product":"whatsapp","to":"+1","type":"interactive","interactive":{"type":"button","body":{"text":"?"},"action":{"buttons":[` + strings.Join(bs, ",") + `]}}}`
	}
	rows := func(n int) string {
		var rs []string
		for i := range n {
			rs = append(rs, fmt.Sprintf(`{"id":"r%d","title":"Row %d"}`, i, i))
		}
		return `{"messaging_product":"whatsapp","to":"+1","type":"interactive","interactive":{"type":"list","body":{"text":"?"},"action":{"button":"Pick","sections":[{"title":"S","rows":[` + strings.Join(rs, ",") + `]}]}}}`
	}
	for _, tt := range []struct {
		name, body string
		code       int
		details    string
	}{
		{"not json", `{`, 100, ""},
		{"no messaging_product", `{"to":"+1","text":{"body":"x"}}`, 100, ""},
		{"wrong messaging_product", `{"messaging_product":"sms","to":"+1","text":{"body":"x"}}`, 100, ""},
		{"missing to", `{"messaging_product":"whatsapp","type":"text","text":{"body":"x"}}`, 100, ""},
		{"bsuid in to", `{"messaging_product":"whatsapp","to":"US.1349","type":"text","text":{"body":"x"}}`, 100, ""},
		{"bad phone", `{"messaging_product":"whatsapp","to":"call me","type":"text","text":{"body":"x"}}`, 131009, "phone"},
		{"bad recipient", `{"messaging_product":"whatsapp","recipient":"12345","type":"text","text":{"body":"x"}}`, 131009, "recipient"},
		{"bad recipient_type", `{"messaging_product":"whatsapp","recipient_type":"broadcast","to":"+1","text":{"body":"x"}}`, 100, ""},
		{"unknown type", `{"messaging_product":"whatsapp","to":"+1","type":"poll","poll":{}}`, 131009, "poll"},
		{"text object missing", `{"messaging_product":"whatsapp","to":"+1","type":"text"}`, 131008, "text"},
		{"text without body", `{"messaging_product":"whatsapp","to":"+1","type":"text","text":{}}`, 131008, "body"},
		{"text too long", text("+1", strings.Repeat("a", 4097)), 131009, "4096"},
		{"template without name", `{"messaging_product":"whatsapp","to":"+1","type":"template","template":{"language":{"code":"en"}}}`, 131008, "name"},
		{"template without language", `{"messaging_product":"whatsapp","to":"+1","type":"template","template":{"name":"t"}}`, 131008, "language"},
		{"template components not array", `{"messaging_product":"whatsapp","to":"+1","type":"template","template":{"name":"t","language":{"code":"en"},"components":{}}}`, 100, ""},
		{"reaction without message", `{"messaging_product":"whatsapp","to":"+1","type":"reaction","reaction":{"emoji":"x"}}`, 131008, "message_id"},
		{"reaction with context", `{"messaging_product":"whatsapp","to":"+1","context":{"message_id":"w"},"type":"reaction","reaction":{"message_id":"w"}}`, 131009, "reaction"},
		{"context without id", `{"messaging_product":"whatsapp","to":"+1","context":{},"type":"text","text":{"body":"x"}}`, 131008, "context"},
		{"interactive unknown type", `{"messaging_product":"whatsapp","to":"+1","type":"interactive","interactive":{"type":"poll"}}`, 131009, "poll"},
		{"four buttons", buttons(4, "B"), 131009, "3"},
		{"long button title", buttons(1, strings.Repeat("t", 20)), 131009, "20"},
		{"no buttons", buttons(0, "B"), 131008, "buttons"},
		{"eleven rows", rows(11), 131009, "10"},
		{"image without id or link", `{"messaging_product":"whatsapp","to":"+1","type":"image","image":{}}`, 131008, "image"},
		{"mark read without id", `{"messaging_product":"whatsapp","status":"read"}`, 100, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := graphtest.NewServer()
			a := send(t, fake, tt.body)
			e := a.err.Error
			if a.status != 400 || e.Code != tt.code || e.FBTraceID == "" || !strings.Contains(e.Message, fmt.Sprintf("(#%d)", tt.code)) {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if tt.details != "" && (!strings.Contains(e.Data.Details, tt.details) || e.Data.MessagingProduct != "whatsapp") {
				t.Errorf("details %s", a.body)
			}
			if fake.SentCount() != 0 {
				t.Error("refused message recorded as sent")
			}
		})
	}
	// And the well-formed ones pass.
	fake := graphtest.NewServer()
	for _, body := range []string{
		buttons(3, "B"), rows(10),
		`{"messaging_product":"whatsapp","to":"+1","text":{"body":"type defaults to text"}}`,
		`{"messaging_product":"whatsapp","to":"+1","type":"image","image":{"link":"https://example.com/a.jpg"}}`,
		`{"messaging_product":"whatsapp","to":"+1","type":"location","location":{"latitude":1.5,"longitude":2}}`,
		`{"messaging_product":"whatsapp","to":"+1","type":"interactive","interactive":{"type":"cta_url","body":{"text":"x"},"action":{}}}`,
		`{"messaging_product":"whatsapp","status":"read","message_id":"wamid.X","typing_indicator":{"type":"text"}}`,
	} {
		if a := send(t, fake, body); a.status != 200 {
			t.Errorf("%s: %d %s", body, a.status, a.body)
		}
	}
}

func TestFailNextEnvelopes(t *testing.T) {
	fake := graphtest.NewServer()
	fake.FailNext(2, graph.ErrThroughput)
	fake.FailNext(1, 502)
	fake.FailNext(1, graph.ErrSomethingWentWrong)

	for i := range 2 {
		a := send(t, fake, text("+1", "x"))
		var env map[string]map[string]any
		_ = json.Unmarshal(a.body, &env)
		e := env["error"]
		data, _ := e["error_data"].(map[string]any)
		if a.status != 400 || e["code"] != float64(130429) || e["message"] != "(#130429) Rate limit hit" || e["type"] != "OAuthException" ||
			data["messaging_product"] != "whatsapp" || data["details"] != "Cloud API message throughput has been reached." || e["fbtrace_id"] == "" {
			t.Errorf("%d: %d %s", i, a.status, a.body)
		}
	}
	if a := send(t, fake, text("+1", "x")); a.status != 502 || json.Valid(a.body) || !strings.Contains(a.header.Get("Content-Type"), "text/html") {
		t.Errorf("5xx plain: %d %s", a.status, a.body)
	}
	if a := send(t, fake, text("+1", "x")); a.status != 500 || a.err.Error.Code != 131000 {
		t.Errorf("131000: %d %s", a.status, a.body)
	}
	if a := send(t, fake, text("+1", "x")); a.status != 200 {
		t.Errorf("after the failures: %d %s", a.status, a.body)
	}
	if n := fake.SentCount(); n != 1 {
		t.Errorf("sent %d", n)
	}
}

func TestScript(t *testing.T) {
	fake := graphtest.NewServer()
	var seen []graphtest.Request
	fake.Script(func(r graphtest.Request) *graphtest.ErrorResponse {
		seen = append(seen, r)
		_ = fake.SentCount() // the script may call the fake
		if r.To == "+2" {
			e := graphtest.ErrorFor(graph.ErrPairRateLimit)
			e.RetryAfter = 1500 * time.Millisecond
			return e
		}
		return nil
	})
	if a := send(t, fake, text("+1", "x")); a.status != 200 {
		t.Errorf("+1: %d", a.status)
	}
	a := send(t, fake, template("+2", "t"))
	if a.status != 400 || a.err.Error.Code != 131056 || a.header.Get("Retry-After") != "2" {
		t.Errorf("+2: %d %v %s", a.status, a.header, a.body)
	}
	if len(seen) != 2 || seen[0].Kind != "text" || seen[1].Kind != "template" || seen[1].PhoneNumberID != pnid {
		t.Errorf("seen %+v", seen)
	}
	fake.Script(nil)
	if a := send(t, fake, text("+2", "x")); a.status != 200 {
		t.Errorf("script removed: %d", a.status)
	}
}

func TestThroughputLimit(t *testing.T) {
	clk := newClock()
	fake := graphtest.NewServer(graphtest.WithClock(clk.Now), graphtest.WithThroughput(5))
	other := "200000000000001"
	for i := range 5 {
		if a := send(t, fake, text(fmt.Sprintf("+1%d", i), "x")); a.status != 200 {
			t.Fatalf("%d: %d", i, a.status)
		}
	}
	a := send(t, fake, text("+19", "x"))
	if a.status != 400 || a.err.Error.Code != 130429 {
		t.Fatalf("6th in the same instant: %d %s", a.status, a.body)
	}
	// Limits are per phone number id.
	if a := do(t, fake, "POST", "/v23.0/"+other+"/messages", "", text("+19", "x")); a.status != 200 {
		t.Errorf("other number: %d", a.status)
	}
	clk.Advance(200 * time.Millisecond) // one token back at 5/s
	if a := send(t, fake, text("+19", "x")); a.status != 200 {
		t.Errorf("after 200ms: %d", a.status)
	}
	if a := send(t, fake, text("+19", "x")); a.status != 400 {
		t.Errorf("second after 200ms: %d", a.status)
	}
	if got := fake.MaxRate(pnid); got != 6 {
		t.Errorf("max rate %d, want 6 (5 + 1 within a second)", got)
	}

	// A sender pacing at exactly the limit is never refused, and the rate
	// it reaches is recorded.
	clk.Advance(10 * time.Second)
	fake.Reset()
	for i := range 100 {
		if a := send(t, fake, text(fmt.Sprintf("+2%d", i), "x")); a.status != 200 {
			t.Fatalf("paced %d refused", i)
		}
		clk.Advance(200 * time.Millisecond)
	}
	if got := fake.MaxRate(pnid); got != 5 {
		t.Errorf("paced max rate %d", got)
	}
}

func TestPairLimit(t *testing.T) {
	clk := newClock()
	fake := graphtest.NewServer(graphtest.WithClock(clk.Now), graphtest.WithPairLimit(6*time.Second, 2))
	for i := range 2 {
		if a := send(t, fake, text("+16505551234", "x")); a.status != 200 {
			t.Fatalf("burst %d: %d", i, a.status)
		}
	}
	// Formatting differences are the same recipient.
	a := send(t, fake, text("1 650 555 1234", "x"))
	if a.status != 400 || a.err.Error.Code != 131056 {
		t.Fatalf("over the pair limit: %d %s", a.status, a.body)
	}
	if a := send(t, fake, text("+16505550000", "x")); a.status != 200 {
		t.Errorf("another recipient: %d", a.status)
	}
	clk.Advance(5 * time.Second)
	if a := send(t, fake, text("+16505551234", "x")); a.status != 400 {
		t.Errorf("after 5s: %d", a.status)
	}
	clk.Advance(time.Second)
	if a := send(t, fake, text("+16505551234", "x")); a.status != 200 {
		t.Errorf("after 6s: %d", a.status)
	}
}

func TestLimitsDoNotBurnEachOther(t *testing.T) {
	clk := newClock()
	fake := graphtest.NewServer(graphtest.WithClock(clk.Now), graphtest.WithThroughput(2), graphtest.WithPairLimit(time.Hour, 1))
	send(t, fake, text("+1", "x"))
	if a := send(t, fake, text("+1", "x")); a.err.Error.Code != 131056 {
		t.Fatalf("%s", a.body)
	}
	// The pair refusal did not use a throughput token.
	if a := send(t, fake, text("+2", "x")); a.status != 200 {
		t.Errorf("%s", a.body)
	}
}

func TestWindow(t *testing.T) {
	fake := graphtest.NewServer()
	fake.CloseWindow("+16505551234")
	a := send(t, fake, text("16505551234", "x"))
	if a.status != 400 || a.err.Error.Code != 131047 || !strings.Contains(a.err.Error.Data.Details, "24 hours") {
		t.Fatalf("free text outside the window: %d %s", a.status, a.body)
	}
	interactive := `{"messaging_product":"whatsapp","to":"+16505551234","type":"reaction","reaction":{"message_id":"w","emoji":"x"}}`
	if a := send(t, fake, interactive); a.err.Error.Code != 131047 {
		t.Errorf("reaction outside the window: %s", a.body)
	}
	if a := send(t, fake, template("+16505551234", "t")); a.status != 200 {
		t.Errorf("template outside the window: %d", a.status)
	}
	if a := send(t, fake, text("+16505550000", "x")); a.status != 200 {
		t.Errorf("other recipient: %d", a.status)
	}
	fake.OpenWindow("+1 650 555 1234")
	if a := send(t, fake, text("+16505551234", "x")); a.status != 200 {
		t.Errorf("reopened: %d", a.status)
	}
	fake.CloseWindow("US.1349")
	if a := send(t, fake, `{"messaging_product":"whatsapp","recipient":"US.1349","text":{"body":"x"}}`); a.err.Error.Code != 131047 {
		t.Errorf("bsuid window: %s", a.body)
	}
}

func TestUndeliverableAndTemplates(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithTemplates("order_update"))
	fake.MakeUndeliverable("+16505551234")
	if a := send(t, fake, template("+16505551234", "order_update")); a.err.Error.Code != 131026 {
		t.Errorf("undeliverable: %s", a.body)
	}
	a := send(t, fake, template("+16505550000", "nope"))
	if a.err.Error.Code != 132001 || !strings.Contains(a.err.Error.Data.Details, "nope") {
		t.Errorf("unknown template: %s", a.body)
	}
	if a := send(t, fake, template("+16505550000", "order_update")); a.status != 200 {
		t.Errorf("approved template: %s", a.body)
	}
}

func TestHang(t *testing.T) {
	fake := graphtest.NewServer()
	ts := httptest.NewServer(fake)
	defer ts.Close()
	fake.Hang(-1)
	got := make(chan int, 1)
	go func() {
		resp, err := http.Post(ts.URL+"/v23.0/"+pnid+"/messages", "application/json", strings.NewReader(text("+1", "x")))
		if err != nil {
			got <- -1
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case s := <-got:
		t.Fatalf("answered while hanging: %d", s)
	default:
	}
	fake.Close() // releases it
	if s := <-got; s != http.StatusServiceUnavailable {
		t.Errorf("released with %d", s)
	}
	if fake.SentCount() != 0 {
		t.Error("a held request was accepted")
	}
	fake.Hang(0)
	if a := send(t, fake, text("+1", "x")); a.status != 200 {
		t.Errorf("after Hang(0): %d", a.status)
	}
}

func TestHangAcceptedAnswersOnClose(t *testing.T) {
	fake := graphtest.NewServer()
	fake.HangAccepted(-1)
	done := make(chan answer, 1)
	go func() { done <- send(t, fake, text("+1", "x")) }()
	// Close answers what happened: the message was accepted.
	for fake.SentCount() == 0 {
		runtime.Gosched()
	}
	fake.Close()
	if a := <-done; a.status != 200 || !bytes.Contains(a.body, []byte("wamid.")) {
		t.Errorf("%d %s", a.status, a.body)
	}
}

func TestSnapshotAndReset(t *testing.T) {
	fake := graphtest.NewServer(graphtest.WithAccessToken(token))
	send(t, fake, text("+1", "x"))
	do(t, fake, "POST", "/v23.0/"+pnid+"/messages", "Bearer wrong", text("+1", "x"))
	fake.CloseWindow("+3")
	b, err := json.Marshal(fake.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		R      int      `json:"requests"`
		F      int      `json:"refused"`
		S      int      `json:"sent_total"`
		Sent   []any    `json:"sent"`
		Closed []string `json:"closed_windows"`
	}
	_ = json.Unmarshal(b, &snap)
	if snap.R != 2 || snap.F != 1 || snap.S != 1 || len(snap.Sent) != 1 || len(snap.Closed) != 1 || snap.Closed[0] != "3" {
		t.Errorf("%s", b)
	}
	if bytes.Contains(b, []byte(token)) || bytes.Contains(b, []byte("wrong")) {
		t.Errorf("snapshot shows tokens: %s", b)
	}
	fake.Reset()
	if len(fake.Requests()) != 0 || fake.SentCount() != 0 {
		t.Error("Reset kept records")
	}
}
