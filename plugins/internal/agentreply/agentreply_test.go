package agentreply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

type memRecords struct {
	mu   sync.Mutex
	m    map[string]Record
	fail string // a key whose Put fails once
}

func (r *memRecords) Get(_ context.Context, key string) (Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[key], nil
}

func (r *memRecords) Put(_ context.Context, key string, rec Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if key == r.fail {
		r.fail = ""
		return errors.New("kv down")
	}
	r.m[key] = rec
	return nil
}

// file is an attachment whose Store answers what the test scripts, and
// counts how often it was asked.
type file struct {
	name  string
	errs  []error // answered in turn; then success
	calls int
}

func (f *file) part(key string) Part {
	return Part{Record: key, IdempotencyKey: "k/" + key, File: &File{Name: f.name, Store: func(context.Context) (sdk.MediaInfo, error) {
		f.calls++
		if len(f.errs) > 0 {
			err := f.errs[0]
			f.errs = f.errs[1:]
			return sdk.MediaInfo{}, err
		}
		return sdk.MediaInfo{ID: "med_" + f.name}, nil
	}}}
}

func TestSend(t *testing.T) {
	window := &sdk.RefusedError{Code: "outside_window", Message: "the 24-hour window is closed"}
	tooLarge := &sdk.RefusedError{Code: "media_too_large", Message: "6 MB image"}
	to := sdk.OutboundMessage{To: "+15550001", PhoneNumberID: "PN1"}
	type try struct {
		wantErr     string // "" for none
		wantSent    []string
		wantRefused []string // What: Code
	}
	tests := []struct {
		name string
		// send answers SendMessage by the message's idempotency key.
		send      map[string][]error
		files     []*file
		failPut   string
		tries     []try
		wantHost  []string // idempotency keys the host took, in order
		wantStore []int    // Store calls per file
	}{
		{
			name:     "text and two files in order",
			files:    []*file{{name: "a.pdf"}, {name: "b.jpg"}},
			tries:    []try{{wantSent: []string{"msg_k/text", "msg_k/f0", "msg_k/f1"}}},
			wantHost: []string{"k/text", "k/f0", "k/f1"}, wantStore: []int{1, 1},
		},
		{
			name:  "a failed store is retried alone; the text is not sent again",
			files: []*file{{name: "a.pdf", errs: []error{errors.New("helpdesk 503")}}},
			tries: []try{
				{wantErr: "could not store the attachment a.pdf: helpdesk 503"},
				{wantSent: []string{"msg_k/text", "msg_k/f0"}},
			},
			wantHost: []string{"k/text", "k/f0"}, wantStore: []int{2},
		},
		{
			name:  "a file refused costs only that file",
			files: []*file{{name: "big.jpg", errs: []error{tooLarge}}, {name: "b.pdf"}},
			tries: []try{
				{wantSent: []string{"msg_k/text", "msg_k/f1"}, wantRefused: []string{"the attachment big.jpg: media_too_large"}},
				// A retry of the webhook asks nothing again.
				{wantSent: []string{"msg_k/text", "msg_k/f1"}, wantRefused: []string{"the attachment big.jpg: media_too_large"}},
			},
			wantHost: []string{"k/text", "k/f1"}, wantStore: []int{1, 1},
		},
		{
			name:      "a refusal of the customer is met by every later part, unasked",
			send:      map[string][]error{"k/text": {window}},
			files:     []*file{{name: "a.pdf"}},
			tries:     []try{{wantRefused: []string{"the text: outside_window", "the attachment a.pdf: outside_window"}}},
			wantStore: []int{0},
		},
		{
			name:  "the hub failing to queue is a retry, and the part goes once",
			send:  map[string][]error{"k/f0": {errors.New("hub busy")}},
			files: []*file{{name: "a.pdf"}},
			tries: []try{
				{wantErr: "the hub could not queue the message: hub busy"},
				{wantSent: []string{"msg_k/text", "msg_k/f0"}},
			},
			// The file stored on the first try is not fetched again.
			wantHost: []string{"k/text", "k/f0"}, wantStore: []int{1},
		},
		{
			name:    "a record that cannot be written stops the reply as a state error",
			files:   []*file{{name: "a.pdf"}},
			failPut: "f0",
			tries: []try{
				{wantErr: "the hub's state is unavailable: kv down"},
				{wantSent: []string{"msg_k/text", "msg_k/f0"}},
			},
			wantHost: []string{"k/text", "k/f0"}, wantStore: []int{2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := sdktest.NewFakeHost()
			var mu sync.Mutex
			host.Send = func(m sdk.OutboundMessage) (sdk.SendResult, error) {
				mu.Lock()
				defer mu.Unlock()
				if errs := tc.send[m.IdempotencyKey]; len(errs) > 0 {
					tc.send[m.IdempotencyKey] = errs[1:]
					return sdk.SendResult{}, errs[0]
				}
				return sdk.SendResult{ID: "msg_" + m.IdempotencyKey, State: "queued"}, nil
			}
			recs := &memRecords{m: map[string]Record{}, fail: tc.failPut}
			parts := []Part{{Record: "text", IdempotencyKey: "k/text", Text: "Here is the invoice"}}
			for i, f := range tc.files {
				parts = append(parts, f.part(fmt.Sprintf("f%d", i)))
			}
			for i, want := range tc.tries {
				res, err := Send(context.Background(), host, to, parts, recs, slog.New(slog.DiscardHandler))
				if got := fmt.Sprint(err); (want.wantErr == "" && err != nil) || (want.wantErr != "" && !strings.Contains(got, want.wantErr)) {
					t.Fatalf("try %d: err %v, want %q", i, err, want.wantErr)
				}
				if want.wantErr != "" {
					continue
				}
				var refused []string
				for _, r := range res.Refused {
					refused = append(refused, r.What+": "+r.Err.Code)
				}
				if !reflect.DeepEqual(res.Sent, want.wantSent) || !reflect.DeepEqual(refused, want.wantRefused) {
					t.Fatalf("try %d: sent %v refused %v, want %v and %v", i, res.Sent, refused, want.wantSent, want.wantRefused)
				}
			}
			var keys []string
			for _, m := range host.Sent() {
				keys = append(keys, m.IdempotencyKey)
				if m.To != to.To || m.PhoneNumberID != to.PhoneNumberID {
					t.Errorf("message %s to %s/%s", m.IdempotencyKey, m.To, m.PhoneNumberID)
				}
				if (m.Media != nil) == (m.Text != "") {
					t.Errorf("message %s: text %q media %v", m.IdempotencyKey, m.Text, m.Media)
				}
			}
			if !reflect.DeepEqual(keys, tc.wantHost) {
				t.Errorf("host took %v, want %v", keys, tc.wantHost)
			}
			for i, f := range tc.files {
				if f.calls != tc.wantStore[i] {
					t.Errorf("file %s stored %d times, want %d", f.name, f.calls, tc.wantStore[i])
				}
			}
		})
	}
}

func TestFileRefusal(t *testing.T) {
	for code, want := range map[string]bool{"media_too_large": true, "media_type": true, "media_unavailable": true, "outside_window": false, "opted_out": false, "media_": false, "": false} {
		if FileRefusal(code) != want {
			t.Errorf("FileRefusal(%q) = %v", code, !want)
		}
	}
}
