package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// A whole call failing stops the batch: the conversations in it get the
// error; the others are not tried, and fail too only when nothing can
// work (a rejected webhook), else wait without using up an attempt.
func TestWholeCallFailureStopsTheBatch(t *testing.T) {
	for _, tc := range []struct {
		status       int
		other        sdk.Outcome
		notAttempted bool
	}{
		{401, sdk.Failed, false},
		{500, sdk.Retry, true},
	} {
		e := newEnv(t)
		r, _ := e.start(e.config(nil))
		// Bruno is known; Ana is new and needs a lookup.
		wantOutcome(t, deliver(t, r, msg("evt_b0", "5521998760002", "Bruno", "oi")), "evt_b0", sdk.Delivered)
		e.fake.FailNext(1, tc.status)
		res := deliver(t, r, msg("evt_a1", "5511987650001", "Ana", "oi"), msg("evt_b1", "5521998760002", "Bruno", "oi"))
		a := res["evt_a1"]
		b := wantOutcome(t, res, "evt_b1", tc.other)
		if a.Outcome == sdk.Delivered || a.NotAttempted {
			t.Errorf("%d: the event in the failed call = %+v", tc.status, a)
		}
		if b.NotAttempted != tc.notAttempted || !strings.Contains(b.Error, "not tried") {
			t.Errorf("%d: the event not tried = %+v", tc.status, b)
		}
	}
}

// failingKV is a hub whose KV is down.
type failingKV struct{ sdk.KV }

func (failingKV) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errors.New("kv unavailable")
}

type kvDownHost struct{ *sdktest.FakeHost }

func (kvDownHost) KV() sdk.KV { return failingKV{} }

// Without the KV it is unknown whether an event is on the timeline
// already: nothing is sent, everything is retried.
func TestKVDown(t *testing.T) {
	e := newEnv(t)
	c := New().(*connector)
	c.clock = e.clock
	r := sdktest.Dial(t, c)
	if err := r.Configure(context.Background(), sdk.Config{Name: "crm", Raw: e.config(nil)}, kvDownHost{sdktest.NewFakeHost()}); err != nil {
		t.Fatal(err)
	}
	res := deliver(t, r, msgs("evt_a", "5511987650001", "Ana", 2)...)
	if a := wantOutcome(t, res, "evt_a01", sdk.Retry); !strings.Contains(a.Error, "kv unavailable") {
		t.Errorf("error = %q", a.Error)
	}
	if h := wantOutcome(t, res, "evt_a02", sdk.Retry); !h.NotAttempted {
		t.Errorf("evt_a02 = %+v, want held", h)
	}
	if n := len(e.fake.Calls()); n != 0 {
		t.Errorf("%d calls with the KV down", n)
	}
}

func TestValueString(t *testing.T) {
	for in, want := range map[string]string{
		`"gold"`: "gold", `" gold "`: "gold", `45`: "45", `null`: "", `false`: "", `""`: "", `[]`: "", `{}`: "",
		`true`: "Y", `["45","46"]`: "45,46", `[null]`: "", `{"a":1}`: `{"a":1}`, ``: "",
	} {
		if got := valueString(json.RawMessage(in)); got != want {
			t.Errorf("valueString(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestPHPQueryEncoding(t *testing.T) {
	o := obj{{"fields", obj{{"NAME", "Ana & Bia"}, {"PHONE", []any{obj{{"VALUE", "+55"}, {"VALUE_TYPE", "WORK"}}}}, {"OPENED", true}, {"N", 7.0}, {"M", map[string]any{"b": 1, "a": "x"}}}},
		{"values", []string{"+1"}}}
	want := "fields%5BNAME%5D=Ana+%26+Bia&fields%5BPHONE%5D%5B0%5D%5BVALUE%5D=%2B55&fields%5BPHONE%5D%5B0%5D%5BVALUE_TYPE%5D=WORK" +
		"&fields%5BOPENED%5D=Y&fields%5BN%5D=7&fields%5BM%5D%5Ba%5D=x&fields%5BM%5D%5Bb%5D=1&values%5B0%5D=%2B1"
	if got := o.phpQuery(); got != want {
		t.Errorf("phpQuery =\n%s\nwant\n%s", got, want)
	}
}
