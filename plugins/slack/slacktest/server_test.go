package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk/sdktest"
)

var fixedNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func start(t *testing.T, opts ...slacktest.Option) (*slacktest.Server, *slackapi.Client) {
	t.Helper()
	fake := slacktest.NewServer(append([]slacktest.Option{slacktest.WithClock(func() time.Time { return fixedNow })}, opts...)...)
	srv := sdktest.Serve(t, fake)
	return fake, slackapi.New(slacktest.DefaultToken, slackapi.OptionAPIURL(srv.URL+"/"))
}

func TestUniqueIncreasingTS(t *testing.T) {
	fake, api := start(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, _, err := api.PostMessage("C1", slackapi.MsgOptionText("x", false)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	msgs := fake.Messages()
	if len(msgs) != 20 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].TS <= msgs[i-1].TS { // same width: string order is time order
			t.Errorf("ts %s after %s", msgs[i].TS, msgs[i-1].TS)
		}
	}
	if msgs[0].TS != "1795521600.000000" {
		t.Errorf("first ts %s, want the clock's time as seconds.micros", msgs[0].TS)
	}
}

func TestPostAndThread(t *testing.T) {
	fake, api := start(t)
	blocks := slackapi.MsgOptionBlocks(slackapi.NewSectionBlock(slackapi.NewTextBlockObject("mrkdwn", "*oi*", false, false), nil, nil))
	ch, root, err := api.PostMessage("C1", slackapi.MsgOptionText("oi", false), blocks)
	if err != nil || ch != "C1" || root == "" {
		t.Fatalf("%s %s %v", ch, root, err)
	}
	if _, _, err := api.PostMessage("C1", slackapi.MsgOptionText("reply", false), slackapi.MsgOptionTS(root)); err != nil {
		t.Fatal(err)
	}
	human := fake.PostAsUser("C1", root, "U1", "from a person")
	if got := fake.Replies("C1", root); len(got) != 2 || got[0].Text != "reply" || got[1].User != "U1" {
		t.Errorf("replies %+v", got)
	}
	if got := fake.Roots("C1"); len(got) != 1 || got[0].BotID != slacktest.BotID || !strings.Contains(string(got[0].Blocks), "*oi*") {
		t.Errorf("roots %+v", got)
	}
	if err := api.AddReaction("eyes", slackapi.ItemRef{Channel: "C1", Timestamp: human.TS}); err != nil {
		t.Fatal(err)
	}
	if err := api.AddReaction("eyes", slackapi.ItemRef{Channel: "C1", Timestamp: human.TS}); slackCode(err) != "already_reacted" {
		t.Errorf("second reaction: %v", err)
	}
	if err := api.AddReaction("eyes", slackapi.ItemRef{Channel: "C1", Timestamp: "1.000001"}); slackCode(err) != "message_not_found" {
		t.Errorf("reaction on nothing: %v", err)
	}
	if m, _ := fake.Message("C1", human.TS); strings.Join(m.Reactions, ",") != "eyes" {
		t.Errorf("reactions %v", m.Reactions)
	}
	if _, err := api.PostEphemeral("C1", "U1", slackapi.MsgOptionText("psst", false)); err != nil || len(fake.Ephemerals()) != 1 {
		t.Errorf("ephemeral: %v %+v", err, fake.Ephemerals())
	}
	if _, _, _, err := api.UpdateMessage("C1", root, slackapi.MsgOptionText("edited", false)); err != nil {
		t.Fatal(err)
	}
	if m, _ := fake.Message("C1", root); m.Text != "edited" || !m.Edited {
		t.Errorf("after update: %+v", m)
	}
	// Snapshot nests replies under their root and is JSON.
	raw, err := json.Marshal(fake.Snapshot())
	if err != nil || !strings.Contains(string(raw), `"replies":[{"channel":"C1"`) || strings.Contains(string(raw), slacktest.DefaultToken) {
		t.Errorf("snapshot %s %v", raw, err)
	}
}

func slackCode(err error) string {
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return ""
}

// The fake answers errors the way slack-go turns them into the error types
// the connector maps.
func TestErrorShapes(t *testing.T) {
	post := func(api *slackapi.Client, ch string) error {
		_, _, err := api.PostMessage(ch, slackapi.MsgOptionText("x", false))
		return err
	}
	t.Run("rate limit with Retry-After", func(t *testing.T) {
		fake, api := start(t)
		fake.RateLimitNext("chat.postMessage", 1, 3*time.Second)
		var rl *slackapi.RateLimitedError
		if err := post(api, "C1"); !errors.As(err, &rl) || rl.RetryAfter != 3*time.Second {
			t.Errorf("%v (%T), want RateLimitedError of 3s", err, err)
		}
		if err := post(api, "C1"); err != nil {
			t.Errorf("after the scripted 429: %v", err)
		}
	})
	t.Run("429 without Retry-After", func(t *testing.T) {
		fake, api := start(t)
		fake.RateLimitNext("chat.postMessage", 1, 0)
		var sc slackapi.StatusCodeError
		if err := post(api, "C1"); !errors.As(err, &sc) || sc.Code != 429 {
			t.Errorf("%v (%T), want StatusCodeError 429", err, err)
		}
	})
	t.Run("5xx", func(t *testing.T) {
		fake, api := start(t)
		fake.FailNext(1, 502)
		var sc slackapi.StatusCodeError
		if err := post(api, "C1"); !errors.As(err, &sc) || sc.Code != 502 {
			t.Errorf("%v (%T)", err, err)
		}
	})
	t.Run("channel errors", func(t *testing.T) {
		fake, api := start(t)
		fake.SetChannelError("C404", "channel_not_found")
		fake.SetChannelError("COUT", "not_in_channel")
		for ch, want := range map[string]string{"C404": "channel_not_found", "COUT": "not_in_channel", "": "channel_not_found"} {
			if err := post(api, ch); slackCode(err) != want {
				t.Errorf("%q: %v, want %s", ch, err, want)
			}
		}
	})
	t.Run("auth", func(t *testing.T) {
		fake, api := start(t)
		fake.SetToken("xoxb-other")
		if err := post(api, "C1"); slackCode(err) != "invalid_auth" {
			t.Errorf("wrong token in the form: %v", err)
		}
		if _, err := api.AuthTest(); slackCode(err) != "invalid_auth" {
			t.Errorf("auth.test: %v", err)
		}
		req := httptest.NewRequest(http.MethodPost, "/auth.test", nil)
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"not_authed"`) {
			t.Errorf("no token: %s", rec.Body)
		}
		req = httptest.NewRequest(http.MethodPost, "/auth.test", nil)
		req.Header.Set("Authorization", "Bearer xoxb-other")
		rec = httptest.NewRecorder()
		fake.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"ok":true`) {
			t.Errorf("bearer token: %s", rec.Body)
		}
	})
	t.Run("missing_scope", func(t *testing.T) {
		fake, api := start(t)
		fake.SetMethodError("reactions.add", "missing_scope")
		err := api.AddReaction("eyes", slackapi.ItemRef{Channel: "C1", Timestamp: "1.1"})
		var se slackapi.SlackErrorResponse
		if !errors.As(err, &se) || se.Err != "missing_scope" || se.Needed != "reactions:write" {
			t.Errorf("%+v", err)
		}
	})
	t.Run("invalid blocks, no text, unknown method", func(t *testing.T) {
		_, api := start(t)
		big := slackapi.NewSectionBlock(slackapi.NewTextBlockObject("mrkdwn", strings.Repeat("x", 3001), false, false), nil, nil)
		if _, _, err := api.PostMessage("C1", slackapi.MsgOptionBlocks(big)); slackCode(err) != "invalid_blocks" {
			t.Errorf("3001-character section: %v", err)
		}
		if _, _, err := api.PostMessage("C1"); slackCode(err) != "no_text" {
			t.Errorf("nothing to post: %v", err)
		}
		var sc slackapi.StatusCodeError
		if _, err := api.GetConversationInfo(&slackapi.GetConversationInfoInput{ChannelID: "C1"}); !errors.As(err, &sc) || sc.Code != 404 {
			t.Errorf("unknown method: %v", err)
		}
	})
}

func TestEnforcedRateLimit(t *testing.T) {
	now := fixedNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	fake := slacktest.NewServer(slacktest.WithClock(clock))
	srv := httptest.NewServer(fake)
	defer srv.Close()
	api := slackapi.New(slacktest.DefaultToken, slackapi.OptionAPIURL(srv.URL+"/"))
	fake.SetRateLimit(1, 2)
	post := func(ch string) error {
		_, _, err := api.PostMessage(ch, slackapi.MsgOptionText("x", false))
		return err
	}
	if post("C1") != nil || post("C1") != nil {
		t.Fatal("burst of 2 refused")
	}
	var rl *slackapi.RateLimitedError
	if err := post("C1"); !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("third post: %v, want a 1s rate limit", err)
	}
	if err := post("C2"); err != nil {
		t.Errorf("another channel is limited separately: %v", err)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if err := post("C1"); err != nil {
		t.Errorf("after a second: %v", err)
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	fake := slacktest.NewServer()
	api := slackapi.New(slacktest.DefaultToken, slackapi.OptionAPIURL(sdktest.ServeUnder(t, "/sandbox/slack", fake)+"/api/"))
	if _, _, err := api.PostMessage("C1", slackapi.MsgOptionText("x", false)); err != nil {
		t.Fatal(err)
	}
	if len(fake.Messages()) != 1 {
		t.Error("not recorded")
	}
}

func TestSignedEventsVerifyWithSlackGo(t *testing.T) {
	fake, _ := start(t)
	now := time.Now() // slack-go's verifier reads the real clock
	_, body := fake.HumanReply("Ev1", "C1", "1795521600.000000", "U1", "olá & <tchau>")
	h := slacktest.SignedEvent("s3cret", now, body)
	sv, err := slackapi.NewSecretsVerifier(h, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Fatalf("slack-go refuses our signature: %v", err)
	}
	ev, err := slackevents.ParseEvent(body, slackevents.OptionNoVerifyToken())
	if err != nil {
		t.Fatal(err)
	}
	cb := ev.Data.(*slackevents.EventsAPICallbackEvent)
	m, ok := ev.InnerEvent.Data.(*slackevents.MessageEvent)
	if cb.EventID != "Ev1" || !ok || m.ThreadTimeStamp != "1795521600.000000" || m.User != "U1" || m.Text != "olá & <tchau>" || m.BotID != "" {
		t.Errorf("parsed %+v / %+v", cb, m)
	}
	req, err := slacktest.NewEventRequest(context.Background(), "http://127.0.0.1/hooks/slack", "s3cret", now, body, 2)
	if err != nil || req.Header.Get(slacktest.HeaderRetryNum) != "2" || req.Header.Get(slacktest.HeaderSignature) != h.Get(slacktest.HeaderSignature) {
		t.Errorf("request %v %v", req.Header, err)
	}
	var uv map[string]string
	_ = json.Unmarshal(slacktest.URLVerification("c"), &uv)
	if uv["type"] != "url_verification" || uv["challenge"] != "c" {
		t.Errorf("url_verification %v", uv)
	}
}

func TestSocketModeOpen(t *testing.T) {
	fake := slacktest.NewServer()
	under := sdktest.ServeUnder(t, "/sandbox/slack", fake)
	base := under + "/api/"
	open := func(appToken string) (string, error) {
		api := slackapi.New(slacktest.DefaultToken, slackapi.OptionAPIURL(base), slackapi.OptionAppLevelToken(appToken))
		_, u, err := api.StartSocketModeContext(context.Background())
		return u, err
	}
	u, err := open(slacktest.DefaultAppToken)
	want := "ws://" + strings.TrimPrefix(under, "http://") + "/api/socket-mode?"
	if err != nil || !strings.HasPrefix(u, want) {
		t.Errorf("url %q (%v), want it to start with %q", u, err, want)
	}
	if _, err := open(slacktest.DefaultToken); slackCode(err) != "not_allowed_token_type" {
		t.Errorf("with the bot token: %v", err)
	}
	if _, err := open("xapp-wrong"); slackCode(err) != "invalid_auth" {
		t.Errorf("with a wrong app token: %v", err)
	}
	if _, err := fake.SendEvent([]byte(`{}`), 0); err == nil {
		t.Error("SendEvent with no client connected: no error")
	}
}
