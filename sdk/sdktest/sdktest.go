// Package sdktest runs a connector the way the hub does, over real gRPC
// inside the test process, with a recording fake of the hub's host
// callbacks; and holds the conformance suite every connector must pass.
package sdktest

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/wahub/wahub/sdk"
)

// Start serves c over an in-process gRPC connection, configures it with cfg
// and returns the host-side handle and the fake host it calls back.
func Start(t testing.TB, c sdk.Connector, name string, cfg json.RawMessage) (*sdk.Remote, *FakeHost) {
	t.Helper()
	r := Dial(t, c)
	host := NewFakeHost()
	if err := r.Configure(context.Background(), sdk.Config{Name: name, Raw: cfg}, host); err != nil {
		t.Fatalf("configure %s: %v", name, err)
	}
	return r, host
}

// Dial serves c over an in-process gRPC connection without configuring it.
func Dial(t testing.TB, c sdk.Connector) *sdk.Remote {
	t.Helper()
	client, _ := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(c))
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatalf("dispense connector: %v", err)
	}
	return raw.(*sdk.Remote)
}

// FakeHost is an in-memory sdk.Host that records what a connector asks of
// the hub. Set Send to script SendMessage's answers.
type FakeHost struct {
	mu       sync.Mutex
	sent     []sdk.OutboundMessage
	keys     map[string]bool // idempotency keys already sent
	kv       map[string][]byte
	contacts []sdk.ContactUpdate
	media    map[string]fakeMedia
	uploads  []sdk.MediaInfo

	// MaxMedia, if > 0, is the largest file PutMedia takes.
	MaxMedia int64

	// Send, if set, answers SendMessage (after recording it).
	Send func(sdk.OutboundMessage) (sdk.SendResult, error)
}

// NewFakeHost returns an empty fake host.
func NewFakeHost() *FakeHost {
	return &FakeHost{keys: map[string]bool{}, kv: map[string][]byte{}}
}

// SendMessage records msg; like the hub, a repeated idempotency key sends
// nothing new.
func (h *FakeHost) SendMessage(ctx context.Context, msg sdk.OutboundMessage) (sdk.SendResult, error) {
	h.mu.Lock()
	if msg.IdempotencyKey != "" && h.keys[msg.IdempotencyKey] {
		h.mu.Unlock()
		return sdk.SendResult{ID: "msg_" + msg.IdempotencyKey, State: "queued"}, nil
	}
	send := h.Send
	h.mu.Unlock()
	res := sdk.SendResult{ID: "msg_" + msg.IdempotencyKey, State: "queued"}
	var err error
	if send != nil {
		res, err = send(msg)
	}
	// Like the hub, a key is used up once the message was taken (or
	// refused for good), not by a transient failure the caller retries.
	var refused *sdk.RefusedError
	if err == nil || errors.As(err, &refused) {
		h.mu.Lock()
		if msg.IdempotencyKey != "" {
			h.keys[msg.IdempotencyKey] = true
		}
		if err == nil {
			h.sent = append(h.sent, msg)
		}
		h.mu.Unlock()
	}
	return res, err
}

// Sent returns the messages the host accepted so far (not those it
// refused or failed to take).
func (h *FakeHost) Sent() []sdk.OutboundMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.OutboundMessage(nil), h.sent...)
}

// Contacts returns the contact updates received so far.
func (h *FakeHost) Contacts() []sdk.ContactUpdate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]sdk.ContactUpdate(nil), h.contacts...)
}

// UpsertContact records c.
func (h *FakeHost) UpsertContact(ctx context.Context, c sdk.ContactUpdate) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.contacts = append(h.contacts, c)
	return nil
}

// KV returns the fake's key-value store.
func (h *FakeHost) KV() sdk.KV { return (*fakeKV)(h) }

type fakeKV FakeHost

func (k *fakeKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.kv[key]
	return append([]byte(nil), v...), ok, nil
}

func (k *fakeKV) Put(ctx context.Context, key string, value []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kv[key] = append([]byte{}, value...)
	return nil
}

func (k *fakeKV) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cur, ok := k.kv[key]
	if old == nil {
		if ok {
			return false, nil
		}
	} else if !ok || string(cur) != string(old) {
		return false, nil
	}
	k.kv[key] = append([]byte{}, new...)
	return true, nil
}

func (k *fakeKV) Delete(ctx context.Context, key string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.kv, key)
	return nil
}

func (k *fakeKV) List(ctx context.Context, prefix string) ([]sdk.KVPair, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []sdk.KVPair
	for key, v := range k.kv {
		if strings.HasPrefix(key, prefix) {
			out = append(out, sdk.KVPair{Key: key, Value: append([]byte(nil), v...)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
