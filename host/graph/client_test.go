package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/graph/graphtest"
)

const (
	token = "EAAGtestSECRETtoken0123456789"
	pnid  = "106540352242922"
)

func setup(t *testing.T, opts ...graphtest.Option) (*graphtest.Server, *graph.Client) {
	t.Helper()
	fake := graphtest.NewServer(append([]graphtest.Option{
		graphtest.WithAccessToken(token), graphtest.WithPhoneNumbers(pnid),
	}, opts...)...)
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	t.Cleanup(fake.Close) // runs first: releases held requests
	return fake, graph.New(ts.URL+"/v23.0/", token, ts.Client())
}

func TestSendBodies(t *testing.T) {
	buttons := `{"type":"button","body":{"text":"Reschedule?"},"action":{"buttons":[` +
		`{"type":"reply","reply":{"id":"change-button","title":"Change"}},` +
		`{"type":"reply","reply":{"id":"cancel-button","title":"Cancel"}}]}}`
	list := `{"type":"list","body":{"text":"Which shipping option do you prefer?"},"action":{"button":"Shipping Options",` +
		`"sections":[{"title":"I want it ASAP!","rows":[{"id":"priority_express","title":"Priority Mail Express","description":"Next Day to 2 Days"}]}]}}`
	tests := []struct {
		name string
		msg  graph.Message
		want string
	}{
		{"text", graph.Message{To: "+16505551234", Text: "hello <b> & you"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"text","text":{"body":"hello <b> & you"}}`},
		{"text with preview", graph.Message{To: "+16505551234", Text: "see https://example.com", PreviewURL: true},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"text","text":{"preview_url":true,"body":"see https://example.com"}}`},
		{"reply context", graph.Message{To: "+16505551234", Text: "yes", ReplyTo: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","context":{"message_id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="},"type":"text","text":{"body":"yes"}}`},
		{"bsuid recipient", graph.Message{UserID: "US.13491208655302741918", Text: "hi"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"US.13491208655302741918","type":"text","text":{"body":"hi"}}`},
		{"bsuid given as To", graph.Message{To: "BR.13491208655302741918", Text: "hi"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","recipient":"BR.13491208655302741918","type":"text","text":{"body":"hi"}}`},
		{"callback data", graph.Message{To: "+16505551234", Text: "hi", CallbackData: "out_42"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","biz_opaque_callback_data":"out_42","type":"text","text":{"body":"hi"}}`},
		{"template", graph.Message{To: "+16505551234", Template: &graph.Template{Name: "order_update", Language: "en_US", Components: []json.RawMessage{
			json.RawMessage(`{"type": "body", "parameters": [{"type": "text", "text": "Pablo"}]}`),
			json.RawMessage(`{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"order:42:cancel"}]}`),
		}}},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"template","template":{"name":"order_update","language":{"code":"en_US"},` +
				`"components":[{"type":"body","parameters":[{"type":"text","text":"Pablo"}]},{"type":"button","sub_type":"quick_reply","index":"0","parameters":[{"type":"payload","payload":"order:42:cancel"}]}]}}`},
		{"template without components", graph.Message{To: "+16505551234", Template: &graph.Template{Name: "hello_world", Language: "en_US"}},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"template","template":{"name":"hello_world","language":{"code":"en_US"}}}`},
		{"buttons", graph.Message{To: "+16505551234", Interactive: json.RawMessage(buttons)},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"interactive","interactive":` + buttons + `}`},
		{"list replying", graph.Message{To: "+16505551234", Interactive: json.RawMessage(list), ReplyTo: "wamid.X"},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","context":{"message_id":"wamid.X"},"type":"interactive","interactive":` + list + `}`},
		{"reaction", graph.Message{To: "+16505551234", Reaction: &graph.Reaction{MessageID: "wamid.X", Emoji: "👍"}},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"reaction","reaction":{"message_id":"wamid.X","emoji":"👍"}}`},
		{"reaction removed", graph.Message{To: "+16505551234", Reaction: &graph.Reaction{MessageID: "wamid.X"}},
			`{"messaging_product":"whatsapp","recipient_type":"individual","to":"+16505551234","type":"reaction","reaction":{"message_id":"wamid.X","emoji":""}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, c := setup(t)
			acc, err := c.Send(context.Background(), pnid, tt.msg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := fake.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if got := string(r.Body); got != tt.want {
				t.Errorf("body\n got %s\nwant %s", got, tt.want)
			}
			if r.Method != http.MethodPost || r.Path != "/v23.0/"+pnid+"/messages" {
				t.Errorf("request %s %s", r.Method, r.Path)
			}
			if r.Header.Get("Authorization") != "Bearer "+token || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("headers %v", r.Header)
			}
			sent := fake.Sent()
			if len(sent) != 1 || sent[0].WAMID != acc.WAMID || !strings.HasPrefix(acc.WAMID, "wamid.") {
				t.Fatalf("accepted %+v, fake sent %+v", acc, sent)
			}
			if sent[0].Kind != tt.msg.Kind() {
				t.Errorf("kind %q, want %q", sent[0].Kind, tt.msg.Kind())
			}
		})
	}
}

func TestSendAccepted(t *testing.T) {
	_, c := setup(t)
	ctx := context.Background()

	a, err := c.Send(ctx, pnid, graph.Message{To: "+1 650-555-1234", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Input != "+1 650-555-1234" || a.WAID != "16505551234" || a.UserID != "" || a.MessageStatus != "" {
		t.Errorf("phone: %+v", a)
	}

	b, err := c.Send(ctx, pnid, graph.Message{UserID: "US.1349", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Input != "US.1349" || b.UserID != "US.1349" || b.WAID != "" {
		t.Errorf("bsuid: %+v", b)
	}

	tpl, err := c.Send(ctx, pnid, graph.Message{To: "+16505551234", Template: &graph.Template{Name: "hello_world", Language: "en_US"}})
	if err != nil {
		t.Fatal(err)
	}
	if tpl.MessageStatus != "accepted" {
		t.Errorf("template: %+v", tpl)
	}
	if a.WAMID == b.WAMID || b.WAMID == tpl.WAMID {
		t.Errorf("wamids repeat: %s %s %s", a.WAMID, b.WAMID, tpl.WAMID)
	}
}

func TestSendValidation(t *testing.T) {
	tests := []struct {
		name string
		pnid string
		msg  graph.Message
	}{
		{"no phone number id", "", graph.Message{To: "+1", Text: "x"}},
		{"no recipient", pnid, graph.Message{Text: "x"}},
		{"no content", pnid, graph.Message{To: "+1"}},
		{"two contents", pnid, graph.Message{To: "+1", Text: "x", Reaction: &graph.Reaction{MessageID: "w"}}},
		{"template without language", pnid, graph.Message{To: "+1", Template: &graph.Template{Name: "t"}}},
		{"template component not object", pnid, graph.Message{To: "+1", Template: &graph.Template{Name: "t", Language: "en", Components: []json.RawMessage{json.RawMessage(`[1]`)}}}},
		{"interactive not object", pnid, graph.Message{To: "+1", Interactive: json.RawMessage(`"button"`)}},
		{"interactive invalid json", pnid, graph.Message{To: "+1", Interactive: json.RawMessage(`{"type":`)}},
		{"reaction without message", pnid, graph.Message{To: "+1", Reaction: &graph.Reaction{Emoji: "x"}}},
		{"reaction with context", pnid, graph.Message{To: "+1", Reaction: &graph.Reaction{MessageID: "w"}, ReplyTo: "w"}},
	}
	fake, c := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Send(context.Background(), tt.pnid, tt.msg)
			var ve *graph.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want ValidationError", err)
			}
			if retry, code := graph.Classify(err); retry || code != graph.CodeInvalidMessage {
				t.Errorf("Classify = %v %q", retry, code)
			}
		})
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests reached the API", n)
	}
}

func TestClassifyCodes(t *testing.T) {
	tests := []struct {
		code   int
		retry  bool
		status int
	}{
		{graph.ErrThroughput, true, 400},
		{graph.ErrPairRateLimit, true, 400},
		{graph.ErrSomethingWentWrong, true, 500},
		{graph.ErrServiceUnavailable, true, 503},
		{graph.ErrMaintenance, true, 503},
		{graph.ErrAPIUnknown, true, 500},
		{graph.ErrAPIService, true, 503},
		{graph.ErrAPITooManyCalls, true, 400},
		{graph.ErrWABARateLimit, true, 400},
		{graph.ErrUndeliverable, false, 400},
		{graph.ErrReengagement, false, 400},
		{graph.ErrUnsupportedType, false, 400},
		{graph.ErrMarketingOptOut, false, 400},
		{graph.ErrEcosystemEngagement, false, 400},
		{graph.ErrSpamRateLimit, false, 400},
		{graph.ErrCountryRestricted, false, 400},
		{graph.ErrTemplateParamCount, false, 400},
		{graph.ErrTemplateMissing, false, 400},
		{graph.ErrTemplatePaused, false, 400},
		{graph.ErrTemplateDisabled, false, 400},
		{132999, false, 400}, // any template error
		{graph.ErrInvalidParameter, false, 400},
		{graph.ErrMissingParameter, false, 400},
		{graph.ErrInvalidValue, false, 400},
		{graph.ErrAccessToken, false, 401},
		{graph.ErrAuth, false, 401},
		{graph.ErrPermissionDenied, false, 403},
		{graph.ErrAPIPermission, false, 403},
		{299, false, 400},
		{graph.ErrPolicyBlocked, false, 403},
		{graph.ErrAccountLocked, false, 403},
		{graph.ErrNotRegistered, false, 400},
		{graph.ErrRecipientIsSender, false, 400},
		{999999, false, 400}, // unknown 4xx code: do not hammer
	}
	fake, c := setup(t)
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			fake.FailNext(1, tt.code)
			_, err := c.Send(context.Background(), pnid, graph.Message{To: "+16505551234", Text: "hi"})
			var ge *graph.Error
			if !errors.As(err, &ge) {
				t.Fatalf("err %v, want *graph.Error", err)
			}
			if ge.Code != tt.code || ge.HTTPStatus != tt.status || !ge.HasEnvelope() || ge.FBTraceID == "" {
				t.Errorf("parsed %+v", ge)
			}
			retry, code := graph.Classify(err)
			if retry != tt.retry || code != fmt.Sprint(tt.code) || ge.Temporary() != tt.retry {
				t.Errorf("Classify = %v %q, Temporary = %v; want %v", retry, code, ge.Temporary(), tt.retry)
			}
			if graph.MaybeSent(err) {
				t.Error("a Graph refusal is not MaybeSent")
			}
		})
	}
	if n := fake.SentCount(); n != 0 {
		t.Errorf("%d sent", n)
	}
}

func TestClassifyUnknownCodeUsesStatusAndTransient(t *testing.T) {
	fake, c := setup(t)
	for _, tt := range []struct {
		resp  *graphtest.ErrorResponse
		retry bool
	}{
		{&graphtest.ErrorResponse{HTTPStatus: 500, Code: 424242, Message: "boom"}, true},
		{&graphtest.ErrorResponse{HTTPStatus: 400, Code: 424242, Message: "boom", Transient: true}, true},
		{&graphtest.ErrorResponse{HTTPStatus: 400, Code: 424242, Message: "boom"}, false},
		// Known codes win over HTTP status.
		{&graphtest.ErrorResponse{HTTPStatus: 500, Code: graph.ErrUndeliverable}, false},
		{&graphtest.ErrorResponse{HTTPStatus: 400, Code: graph.ErrSomethingWentWrong}, true},
	} {
		fake.FailNextWith(tt.resp)
		_, err := c.Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
		if retry, _ := graph.Classify(err); retry != tt.retry {
			t.Errorf("%+v: retry %v, want %v (%v)", tt.resp, retry, tt.retry, err)
		}
	}
}

func TestNonEnvelopeBodies(t *testing.T) {
	fake, c := setup(t)
	for _, tt := range []struct {
		resp  *graphtest.ErrorResponse
		retry bool
		code  string
	}{
		{graphtest.ErrorFor(502), true, "http_502"},
		{graphtest.ErrorFor(503), true, "http_503"},
		{graphtest.PlainHTTP(504), true, "http_504"},
		{graphtest.PlainHTTP(429), true, "http_429"},
		{graphtest.PlainHTTP(404), false, "http_404"},
		{&graphtest.ErrorResponse{HTTPStatus: 400, Raw: []byte(`{"error":"nope"}`)}, false, "http_400"},
		{&graphtest.ErrorResponse{HTTPStatus: 500, Raw: []byte{}}, true, "http_500"},
	} {
		fake.FailNextWith(tt.resp)
		_, err := c.Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
		var ge *graph.Error
		if !errors.As(err, &ge) || ge.HasEnvelope() {
			t.Fatalf("err %v", err)
		}
		if retry, code := graph.Classify(err); retry != tt.retry || code != tt.code {
			t.Errorf("%d: Classify = %v %q, want %v %q (%v)", tt.resp.HTTPStatus, retry, code, tt.retry, tt.code, err)
		}
	}
}

func TestErrorFieldsAndText(t *testing.T) {
	fake, c := setup(t)
	fake.FailNextWith(&graphtest.ErrorResponse{
		HTTPStatus: 400, Code: 130429, Subcode: 2494055, Type: "OAuthException",
		Message: "(#130429) Rate limit hit", Title: "Too fast", UserMsg: "Slow down",
		Details: "Cloud API message throughput has been reached.",
	})
	_, err := c.Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
	var ge *graph.Error
	if !errors.As(err, &ge) {
		t.Fatal(err)
	}
	if ge.Subcode != 2494055 || ge.Type != "OAuthException" || ge.Title != "Too fast" || ge.UserMsg != "Slow down" ||
		ge.Details != "Cloud API message throughput has been reached." || ge.Message != "(#130429) Rate limit hit" {
		t.Errorf("%+v", ge)
	}
	want := "whatsapp graph api: code 130429/2494055 Rate limit hit: Cloud API message throughput has been reached. (HTTP 400, fbtrace_id " + ge.FBTraceID + ")"
	if err.Error() != want {
		t.Errorf("Error()\n got %s\nwant %s", err, want)
	}
}

func TestRetryAfter(t *testing.T) {
	fake, c := setup(t)
	send := func() error {
		_, err := c.Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
		return err
	}
	e := graphtest.ErrorFor(graph.ErrThroughput)
	e.RetryAfter = 7 * time.Second
	fake.FailNextWith(e)
	if d := graph.RetryAfter(send()); d != 7*time.Second {
		t.Errorf("Retry-After: %v", d)
	}

	e = graphtest.ErrorFor(graph.ErrAPITooManyCalls)
	e.Header = http.Header{"X-Business-Use-Case-Usage": {`{"102290129340398":[{"type":"whatsapp_business_management","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":3}]}`}}
	fake.FailNextWith(e)
	if d := graph.RetryAfter(send()); d != 3*time.Minute {
		t.Errorf("business use case usage: %v", d)
	}

	fake.FailNext(1, graph.ErrThroughput)
	if d := graph.RetryAfter(send()); d != 0 {
		t.Errorf("no header: %v", d)
	}
	if graph.RetryAfter(errors.New("x")) != 0 {
		t.Error("non-Graph error has a retry-after")
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	fake, c := setup(t)
	msg := graph.Message{To: "+1", Text: "x"}
	var errs []error
	collect := func(err error) {
		t.Helper()
		if err == nil {
			t.Fatal("expected an error")
		}
		errs = append(errs, err)
	}

	// Graph (or something in front of it) echoing the token back.
	fake.FailNextWith(&graphtest.ErrorResponse{HTTPStatus: 400, Code: 100, Message: "bad token " + token,
		Details: "token=" + token, Title: token, UserMsg: token})
	_, err := c.Send(context.Background(), pnid, msg)
	collect(err)
	fake.FailNextWith(&graphtest.ErrorResponse{HTTPStatus: 502, Raw: []byte("<html>upstream said " + token + "</html>")})
	_, err = c.Send(context.Background(), pnid, msg)
	collect(err)

	// A wrong token: the fake refuses with 190.
	ts := httptest.NewServer(fake)
	defer ts.Close()
	_, err = graph.New(ts.URL+"/v23.0", token+"x", ts.Client()).Send(context.Background(), pnid, msg)
	var ge *graph.Error
	if !errors.As(err, &ge) || ge.Code != graph.ErrAccessToken || ge.HTTPStatus != 401 {
		t.Errorf("wrong token: %v", err)
	}
	collect(err)

	// Network failure with the token in the URL's path.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err = graph.New("http://"+addr+"/"+token, token, nil).Send(context.Background(), pnid, msg)
	collect(err)
	collect(graph.New("http://"+addr, token, nil).MarkRead(context.Background(), pnid, "wamid.X"))

	for _, err := range errs {
		for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", errors.Unwrap(err))} {
			if strings.Contains(s, token) {
				t.Errorf("token leaked: %s", s)
			}
		}
	}
}

// holdingHandler tells the test when a request has reached the fake.
func holdingHandler(fake http.Handler, arrived chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		fake.ServeHTTP(w, r)
	})
}

// stopCtx is a context whose deadline the test fires by hand, so timeouts
// are tested without waiting for a clock.
type stopCtx struct {
	context.Context
	done chan struct{}
}

func (c *stopCtx) Done() <-chan struct{} { return c.done }
func (c *stopCtx) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	fake := graphtest.NewServer()
	defer fake.Close()
	arrived := make(chan struct{}, 4)
	ts := httptest.NewServer(holdingHandler(fake, arrived))
	defer ts.Close()
	c := graph.New(ts.URL, token, ts.Client())
	fake.Hang(-1)

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := c.Send(ctx, pnid, graph.Message{To: "+1", Text: "x"})
		if retry, code := graph.Classify(err); !retry || code != graph.CodeCanceled {
			t.Errorf("Classify = %v %q (%v)", retry, code, err)
		}
		if !graph.MaybeSent(err) {
			t.Error("the request was written: the outcome is unknown")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx := &stopCtx{Context: context.Background(), done: make(chan struct{})}
		go func() { <-arrived; close(ctx.done) }()
		err := c.MarkRead(ctx, pnid, "wamid.X")
		if retry, code := graph.Classify(err); !retry || code != graph.CodeTimeout {
			t.Errorf("Classify = %v %q (%v)", retry, code, err)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		hc := ts.Client()
		hc.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
			return nil, timeoutErr{}
		})
		_, err := graph.New(ts.URL, token, hc).Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
		if retry, code := graph.Classify(err); !retry || code != graph.CodeTimeout {
			t.Errorf("Classify = %v %q (%v)", retry, code, err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		_, err := graph.New("http://"+addr, token, nil).Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
		if retry, code := graph.Classify(err); !retry || code != graph.CodeNetwork {
			t.Errorf("Classify = %v %q (%v)", retry, code, err)
		}
		if graph.MaybeSent(err) {
			t.Error("nothing was written")
		}
	})
	if n := fake.SentCount(); n != 0 {
		t.Errorf("held requests were accepted: %d", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestAcceptedButAnswerLost(t *testing.T) {
	// The "sent" status webhook proves the fake accepted the message while
	// its answer is still held.
	accepted := make(chan struct{}, 1)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accepted <- struct{}{}
	}))
	defer hub.Close()
	fake := graphtest.NewServer(
		graphtest.WithStatusWebhook(graphtest.StatusWebhook{URL: hub.URL, AppSecret: "s", Client: hub.Client()}),
		graphtest.WithAutoStatuses(0, "sent"))
	defer fake.Close()
	ts := httptest.NewServer(fake)
	defer ts.Close()
	fake.HangAccepted(-1)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-accepted; cancel() }()
	_, err := graph.New(ts.URL, token, ts.Client()).Send(ctx, pnid, graph.Message{To: "+1", Text: "x"})
	if !graph.MaybeSent(err) || fake.SentCount() != 1 {
		t.Errorf("err %v, MaybeSent %v, sent %d", err, graph.MaybeSent(err), fake.SentCount())
	}
	if retry, code := graph.Classify(err); !retry || code != graph.CodeCanceled {
		t.Errorf("Classify = %v %q", retry, code)
	}
}

func TestBadSuccessBody(t *testing.T) {
	for _, body := range []string{`{}`, `not json`, `{"messages":[]}`} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(body))
		}))
		c := graph.New(ts.URL, token, ts.Client())
		_, err := c.Send(context.Background(), pnid, graph.Message{To: "+1", Text: "x"})
		if retry, code := graph.Classify(err); !retry || code != graph.CodeBadResponse || !graph.MaybeSent(err) {
			t.Errorf("%s: Classify = %v %q, MaybeSent %v", body, retry, code, graph.MaybeSent(err))
		}
		if err := c.MarkRead(context.Background(), pnid, "wamid.X"); !graph.MaybeSent(err) {
			t.Errorf("%s: mark read: %v", body, err)
		}
		ts.Close()
	}
}

func TestMarkRead(t *testing.T) {
	fake, c := setup(t)
	if err := c.MarkRead(context.Background(), pnid, "wamid.IN1"); err != nil {
		t.Fatal(err)
	}
	r := fake.Requests()[0]
	if want := `{"messaging_product":"whatsapp","status":"read","message_id":"wamid.IN1"}`; string(r.Body) != want {
		t.Errorf("body %s", r.Body)
	}
	if m := fake.MarkedRead(); len(m) != 1 || m[0].MessageID != "wamid.IN1" || m[0].PhoneNumberID != pnid {
		t.Errorf("marked %+v", m)
	}
	// FailNext is for sends: a mark-as-read in between does not use it up.
	fake.FailNext(1, graph.ErrThroughput)
	if err := c.MarkRead(context.Background(), pnid, "wamid.IN2"); err != nil {
		t.Fatal(err)
	}
	if err := c.MarkRead(context.Background(), "", "wamid.IN2"); err == nil {
		t.Error("no phone number id accepted")
	}
}

func TestUnknownPhoneNumber(t *testing.T) {
	_, c := setup(t)
	_, err := c.Send(context.Background(), "999", graph.Message{To: "+1", Text: "x"})
	var ge *graph.Error
	if !errors.As(err, &ge) || ge.Code != 100 || ge.Subcode != 33 || ge.Type != "GraphMethodException" || ge.Temporary() {
		t.Errorf("%v", err)
	}
}

func TestIsBSUID(t *testing.T) {
	for s, want := range map[string]bool{
		"US.13491208655302741918":        true,
		"IN.1410018717833190":            true,
		"BR.abcDEF123":                   true,
		"+16505551234":                   false,
		"16505551234":                    false,
		"US.":                            false,
		"us.123":                         false,
		"US.12-3":                        false,
		"U.123":                          false,
		"USAA.123":                       false,
		"US." + strings.Repeat("1", 129): false,
	} {
		if got := graph.IsBSUID(s); got != want {
			t.Errorf("IsBSUID(%q) = %v", s, got)
		}
	}
}

func TestClassifyOther(t *testing.T) {
	if retry, code := graph.Classify(nil); retry || code != "" {
		t.Errorf("nil: %v %q", retry, code)
	}
	if retry, code := graph.Classify(errors.New("x")); retry || code != graph.CodeUnknown {
		t.Errorf("plain: %v %q", retry, code)
	}
	if retry, code := graph.Classify(fmt.Errorf("wrapped: %w", context.DeadlineExceeded)); !retry || code != graph.CodeTimeout {
		t.Errorf("deadline: %v %q", retry, code)
	}
	wrapped := fmt.Errorf("outbox: %w", &graph.Error{HTTPStatus: 503})
	if retry, code := graph.Classify(wrapped); !retry || code != "http_503" {
		t.Errorf("wrapped: %v %q", retry, code)
	}
	if tmp, known := graph.IsTemporaryCode(graph.ErrPairRateLimit); !tmp || !known {
		t.Error("131056")
	}
	if _, known := graph.IsTemporaryCode(123456); known {
		t.Error("unknown code known")
	}
}

// BenchmarkSend measures client and fake together over loopback, the
// ceiling for a sender benchmark against the fake.
func BenchmarkSend(b *testing.B) {
	fake := graphtest.NewServer(graphtest.WithAccessToken(token))
	ts := httptest.NewServer(fake)
	defer ts.Close()
	hc := ts.Client()
	hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	c := graph.New(ts.URL+"/v23.0", token, hc)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(context.Background(), pnid, graph.Message{To: "+16505551234", Text: "hello"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
