package stream

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
)

func topicRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func TestTemplate(t *testing.T) {
	ev := &sdk.Event{Type: "whatsapp.message template*status", Business: &sdk.Business{PhoneNumberID: "1065"}}
	for _, tc := range []struct {
		tmpl, want, err string
		static          bool
	}{
		{tmpl: "wahub.events", want: "wahub.events", static: true},
		{tmpl: "wahub.{type}", want: "wahub.whatsapp.message_template_status"},
		{tmpl: "{phone_number_id}-{type}", want: "1065-whatsapp.message_template_status"},
		{tmpl: "wahub.{kind}", err: "unknown placeholder {kind}"},
		{tmpl: "wahub.{type", err: "unclosed {"},
		{tmpl: "wahub events", err: "not allowed"},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			tp, err := ParseTemplate(tc.tmpl, topicRune)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tp.Expand(ev); got != tc.want || tp.Static() != tc.static {
				t.Fatalf("Expand = %q static %v, want %q %v", got, tp.Static(), tc.want, tc.static)
			}
		})
	}
	tp, _ := ParseTemplate("w.{type}", topicRune)
	if names := tp.Names(); len(names) != len(KnownTypes) || names[0] != "w.message.received" {
		t.Fatalf("Names = %v", names)
	}
	tp, _ = ParseTemplate("w.{phone_number_id}", topicRune)
	if tp.Names() != nil {
		t.Fatal("a template on the business number has no fixed set of names")
	}
	if got := tp.Expand(&sdk.Event{Type: "whatsapp.account_update"}); got != "w.none" {
		t.Fatalf("account-level event: %q", got)
	}
}

func TestResultsKeepConversationOrder(t *testing.T) {
	evs := []sdk.Event{
		{ID: "a1", ConversationID: "a"}, {ID: "b1", ConversationID: "b"}, {ID: "a2", ConversationID: "a"},
		{ID: "a3", ConversationID: "a"}, {ID: "b2", ConversationID: "b"}, {ID: "x", ConversationID: ""},
		{ID: "c1", ConversationID: "c"}, {ID: "c2", ConversationID: "c"},
	}
	boom, fatal := errors.New("timeout"), errors.New("fatal")
	out := []Outcome{{}, {}, {Err: boom}, {Err: boom}, {}, {Pending: true}, {Err: fatal}, {}}
	res := Results(evs, out, func(ev *sdk.Event, err error) sdk.Result {
		if errors.Is(err, fatal) {
			return sdk.FailedResult(ev.ID, err)
		}
		return sdk.RetryResult(ev.ID, 0, err)
	})
	type got struct {
		o    sdk.Outcome
		held bool
	}
	var g []got
	for _, r := range res {
		g = append(g, got{r.Outcome, r.NotAttempted})
	}
	want := []got{
		{sdk.Delivered, false}, {sdk.Delivered, false}, {sdk.Retry, false}, {sdk.Retry, true},
		{sdk.Delivered, false}, {sdk.Retry, false}, {sdk.Failed, false}, {sdk.Delivered, false},
	}
	if !reflect.DeepEqual(g, want) {
		t.Fatalf("got %v\nwant %v", g, want)
	}
}

func TestEncode(t *testing.T) {
	ev := &sdk.Event{ID: "evt_1", Type: "message.received", ConversationID: "c"}
	for _, tc := range []struct {
		enc  Encoder
		want map[string]string
	}{
		{Encoder{Format: FormatWahub}, map[string]string{"wahub-event-id": "evt_1", "wahub-event-type": "message.received", "wahub-conversation-id": "c", "content-type": "application/json"}},
		{Encoder{Format: FormatCloudEvents, CEPrefix: "ce_"}, map[string]string{"ce_specversion": "1.0", "ce_id": "evt_1", "ce_type": "message.received", "ce_source": "/wahub", "ce_subject": "c", "content-type": "application/json"}},
	} {
		body, hs, err := tc.enc.Encode(ev)
		if err != nil || !strings.Contains(string(body), `"id":"evt_1"`) {
			t.Fatalf("%v %s", err, body)
		}
		got := map[string]string{}
		for _, h := range hs {
			got[h.Key] = h.Value
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: headers %v, want %v", tc.enc.Format, got, tc.want)
		}
	}
	if _, err := ParseFormat("avro"); err == nil {
		t.Fatal("avro accepted")
	}
}
