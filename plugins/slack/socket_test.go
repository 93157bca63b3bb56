package slack

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahub/wahub/plugins/slack/slacktest"
	"github.com/wahub/wahub/sdk"
)

func TestSocketMode(t *testing.T) {
	e := newEnv(t, map[string]any{"socket_mode": true, "app_token": slacktest.DefaultAppToken, "signing_secret": nil})
	t.Cleanup(func() { e.c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.fake.WaitConnected(ctx); err != nil {
		t.Fatalf("the connector did not connect: %v", err)
	}
	e.deliver(inbound("a1", ana, "support", "Olá"))
	root := e.fake.Roots(defaultChan)[0]

	// A reply, redelivered by Slack: acknowledged each time, sent once.
	_, body := e.fake.HumanReply("EvS1", defaultChan, root.TS, "U0AGENT", "Oi Ana")
	for retry := range 3 {
		id, err := e.fake.SendEvent(body, retry)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.fake.WaitAck(ctx, id); err != nil {
			t.Fatalf("envelope %s not acknowledged: %v", id, err)
		}
	}
	// An internal note: acknowledged, not sent.
	_, note := e.fake.HumanReply("EvS2", defaultChan, root.TS, "U0AGENT", "note: só pra equipe")
	id, _ := e.fake.SendEvent(note, 0)
	if err := e.fake.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	if sent := e.host.Sent(); len(sent) != 1 || sent[0].Text != "Oi Ana" || sent[0].IdempotencyKey != "EvS1" {
		t.Errorf("sent %+v, want the reply once", sent)
	}

	// Without a signing secret, POST /hooks is off and says why.
	resp := e.hook(body, 0)
	if resp.Status != http.StatusForbidden || !strings.Contains(string(resp.Body), "Socket Mode") {
		t.Errorf("hook: %d %s", resp.Status, resp.Body)
	}
}

func TestSocketModeLeavesTransientFailuresUnacknowledged(t *testing.T) {
	e := newEnv(t, map[string]any{"socket_mode": true, "app_token": slacktest.DefaultAppToken})
	t.Cleanup(func() { e.c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.fake.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	e.deliver(inbound("a1", ana, "support", "Olá"))
	root := e.fake.Roots(defaultChan)[0]
	busy := make(chan struct{}, 1)
	e.host.Send = func(sdk.OutboundMessage) (sdk.SendResult, error) {
		select {
		case busy <- struct{}{}:
			return sdk.SendResult{}, context.DeadlineExceeded
		default:
			return sdk.SendResult{ID: "msg_1", State: "queued"}, nil
		}
	}
	_, body := e.fake.HumanReply("EvS3", defaultChan, root.TS, "U0AGENT", "resposta")
	first, _ := e.fake.SendEvent(body, 0)
	// Slack's redelivery of the unacknowledged envelope.
	second, _ := e.fake.SendEvent(body, 1)
	if err := e.fake.WaitAck(ctx, second); err != nil {
		t.Fatal(err)
	}
	for _, env := range e.fake.Envelopes() {
		if env.ID == first && env.Acked {
			t.Error("an event the hub could not take was acknowledged")
		}
	}
	if len(e.host.Sent()) != 1 {
		t.Errorf("sent %d", len(e.host.Sent()))
	}
}
