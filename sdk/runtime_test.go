package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
	"github.com/wahub/wahub/sdk/sdktest"
)

// counter is an Instance with a hook and a sync interval that records its
// life.
type counter struct {
	gen    int
	every  time.Duration
	closed *[]int
	mu     *sync.Mutex
	// block, when set, holds Deliver until it is closed.
	block chan struct{}
	began chan struct{}
}

func (c *counter) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	if c.block != nil {
		close(c.began)
		<-c.block
	}
	out := make([]sdk.Result, len(events))
	for i, ev := range events {
		out[i] = sdk.SkippedResult(ev.ID, "generation "+string(rune('0'+c.gen)))
	}
	return out
}

func (c *counter) HandleHook(ctx context.Context, req *sdk.HookRequest) (*sdk.HookResponse, error) {
	return &sdk.HookResponse{Status: http.StatusAccepted, Body: []byte{byte('0' + c.gen)}}, nil
}

func (c *counter) Sync(ctx context.Context, cursor string) (sdk.SyncResult, error) {
	return sdk.SyncResult{NextCursor: cursor + "+"}, nil
}

func (c *counter) SyncInterval() time.Duration { return c.every }

func (c *counter) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.closed = append(*c.closed, c.gen)
	return nil
}

type factoryState struct {
	mu     sync.Mutex
	gens   int
	closed []int
	block  chan struct{}
	began  chan struct{}
}

func (f *factoryState) new(ctx context.Context, cfg sdk.Config, host sdk.Host) (*counter, error) {
	var c struct {
		Every sdk.Duration `json:"every"`
		Fail  bool         `json:"fail"`
	}
	if err := cfg.Decode(&c); err != nil {
		return nil, err
	}
	if c.Fail {
		return nil, errors.New("connectors." + cfg.Name + ".config.fail: refused")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gens++
	return &counter{gen: f.gens, every: c.Every.D(), closed: &f.closed, mu: &f.mu, block: f.block, began: f.began}, nil
}

func (f *factoryState) closedGens() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.closed)
}

func TestRuntimeLifecycle(t *testing.T) {
	f := &factoryState{}
	c := sdk.NewConnector(sdk.Info{Name: "counter", Version: "1"}, f.new)
	r := sdktest.Dial(t, c)
	ctx := context.Background()

	desc, err := r.Describe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(desc.Capabilities, []string{sdk.CapabilityHooks, sdk.CapabilitySync}) {
		t.Errorf("capabilities %v: want the instance type's hooks and sync, not health", desc.Capabilities)
	}
	if desc.Protocol != sdk.ProtocolVersion || desc.SyncInterval != 0 {
		t.Errorf("before configure: protocol %d, sync interval %v", desc.Protocol, desc.SyncInterval)
	}

	// Not configured: deliveries are retried, hooks answered 503, sync
	// refused.
	res, err := r.Deliver(ctx, []sdk.Event{{ID: "e1"}})
	if err != nil || len(res) != 1 || res[0].Outcome != sdk.Retry || res[0].Error != sdk.ErrNotConfigured.Error() {
		t.Fatalf("deliver before configure: %+v, %v", res, err)
	}
	hr, err := r.HandleHook(ctx, &sdk.HookRequest{Method: "POST"})
	if err != nil || hr.Status != http.StatusServiceUnavailable {
		t.Fatalf("hook before configure: %+v, %v", hr, err)
	}
	if _, err := r.Sync(ctx, ""); err == nil {
		t.Fatal("sync before configure succeeded")
	}

	configure := func(raw string, checkOnly bool) error {
		return r.Configure(ctx, sdk.Config{Name: "counter", Raw: json.RawMessage(raw), CheckOnly: checkOnly}, sdktest.NewFakeHost())
	}
	if err := configure(`{"every":"2m"}`, false); err != nil {
		t.Fatal(err)
	}
	if desc, _ := r.Describe(ctx); desc.SyncInterval != 2*time.Minute {
		t.Errorf("sync interval %v after configure, want 2m", desc.SyncInterval)
	}
	if hr, _ := r.HandleHook(ctx, &sdk.HookRequest{}); hr.Status != http.StatusAccepted || string(hr.Body) != "1" {
		t.Errorf("hook: %+v, want generation 1", hr)
	}
	if err := r.Health(ctx); err != nil {
		t.Errorf("health of an instance without a health check: %v", err)
	}

	// A refused and a check-only configuration leave generation 1 serving.
	if err := configure(`{"fail":true}`, false); err == nil {
		t.Fatal("a refused configuration was accepted")
	}
	if err := configure(`{"every":"1d"}`, true); err != nil {
		t.Fatal(err)
	}
	if hr, _ := r.HandleHook(ctx, &sdk.HookRequest{}); string(hr.Body) != "1" {
		t.Errorf("after a refused and a check-only configure, generation %s serves, want 1", hr.Body)
	}
	if got := f.closedGens(); !slices.Equal(got, []int{2}) {
		t.Errorf("closed %v: want only the check-only instance (2)", got)
	}

	// Reconfiguring builds generation 3 and closes 1.
	if err := configure(`{}`, false); err != nil {
		t.Fatal(err)
	}
	if hr, _ := r.HandleHook(ctx, &sdk.HookRequest{}); string(hr.Body) != "3" {
		t.Errorf("after reconfigure generation %s serves, want 3", hr.Body)
	}
	if got := f.closedGens(); !slices.Equal(got, []int{2, 1}) {
		t.Errorf("closed %v, want [2 1]", got)
	}
	if desc, _ := r.Describe(ctx); desc.SyncInterval != 0 {
		t.Errorf("sync interval %v, want 0 (sync off)", desc.SyncInterval)
	}
}

// The old instance is closed only after the delivery it serves returns.
func TestRuntimeClosesAfterCallsReturn(t *testing.T) {
	f := &factoryState{block: make(chan struct{}), began: make(chan struct{})}
	rt := sdk.NewRuntime(sdk.Info{Name: "counter"}, f.new)
	ctx := context.Background()
	if err := rt.Configure(ctx, sdk.Config{Name: "counter"}, nil); err != nil {
		t.Fatal(err)
	}
	delivered := make(chan []sdk.Result)
	go func() { delivered <- rt.Deliver(ctx, []sdk.Event{{ID: "e1"}}) }()
	<-f.began
	f.mu.Lock()
	block := f.block
	f.block, f.began = nil, nil // generation 2 does not block
	f.mu.Unlock()
	reconfigured := make(chan error)
	go func() { reconfigured <- rt.Configure(ctx, sdk.Config{Name: "counter"}, nil) }()
	// Generation 2 serves while 1 is still busy, and 1 is not closed.
	for gen := 0; gen != 2; runtime.Gosched() {
		rt.With(func(c *counter) { gen = c.gen })
	}
	select {
	case err := <-reconfigured:
		t.Fatalf("Configure returned (%v) while the old instance still served a delivery", err)
	default:
	}
	if got := f.closedGens(); len(got) != 0 {
		t.Fatalf("closed %v while its delivery runs", got)
	}
	close(block)
	if res := <-delivered; res[0].Outcome != sdk.Skipped {
		t.Errorf("delivery %+v", res)
	}
	if err := <-reconfigured; err != nil {
		t.Fatal(err)
	}
	if got := f.closedGens(); !slices.Equal(got, []int{1}) {
		t.Errorf("closed %v, want [1]", got)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.closedGens(); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("closed %v after Close, want [1 2]", got)
	}
}
