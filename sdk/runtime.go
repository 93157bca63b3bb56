package sdk

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"sync"
	"time"
)

// Instance is a configured connector: what a Factory builds from one
// configuration. It needs only Deliver; it may also implement HookHandler,
// Syncer, HealthChecker, SyncIntervaler and io.Closer, which the Runtime
// notices by itself.
//
// An Instance never sees its configuration change: a new configuration
// builds a new Instance, so it needs no atomic settings or "configured
// yet?" checks. Its methods may still run concurrently with each other (a
// hook during a delivery).
type Instance interface {
	Deliver(ctx context.Context, events []Event) []Result
}

// Factory builds an Instance from a configuration. It must refuse a bad
// configuration with an error that names the key and says what to fix.
// With cfg.CheckOnly it must only validate: no connections, no state, and
// host is nil; what it returns then is closed and dropped.
type Factory[I Instance] func(ctx context.Context, cfg Config, host Host) (I, error)

// ErrNotConfigured answers every call that comes before the first
// successful Configure. Deliveries answered with it are retried.
var ErrNotConfigured = errors.New("connector not configured yet")

// Runtime is a Connector made of a name and a Factory, in the manner of
// grafana-plugin-sdk-go's instance manager: it holds the current Instance,
// answers "not configured" until there is one, builds a new one on every
// Configure and closes the old one once the calls it is serving return.
//
// Connectors that keep state across configurations (a clock tests fix, a
// cache) embed *Runtime in their own type; others use NewConnector.
type Runtime[I Instance] struct {
	info    Info
	factory Factory[I]
	caps    []string

	mu  sync.Mutex
	cur *slot[I]
}

// slot is one Instance and the calls in flight on it.
type slot[I Instance] struct {
	inst  I
	calls sync.WaitGroup
}

// NewRuntime returns a Runtime that builds its instances with factory.
func NewRuntime[I Instance](info Info, factory Factory[I]) *Runtime[I] {
	return &Runtime[I]{info: info, factory: factory, caps: instanceCapabilities[I]()}
}

// NewConnector is NewRuntime for connectors that need nothing beyond it.
func NewConnector[I Instance](info Info, factory Factory[I]) Connector {
	return NewRuntime(info, factory)
}

// instanceCapabilities reads the optional interfaces off the type I, not a
// value: Describe runs before any Instance exists.
func instanceCapabilities[I Instance]() []string {
	var zero I
	var caps []string
	if _, ok := any(zero).(HookHandler); ok {
		caps = append(caps, CapabilityHooks)
	}
	if _, ok := any(zero).(Syncer); ok {
		caps = append(caps, CapabilitySync)
	}
	if _, ok := any(zero).(HealthChecker); ok {
		caps = append(caps, CapabilityHealth)
	}
	return caps
}

// Describe names the connector.
func (r *Runtime[I]) Describe() Info { return r.info }

// capabilities is what Capabilities reports for a Runtime: those of its
// Instance type, although the Runtime itself has every method.
func (r *Runtime[I]) capabilities() []string { return r.caps }

// Configure builds an Instance from cfg and makes it current; the one it
// replaces is closed after the calls it is serving have returned. A
// refused configuration leaves the current Instance in place.
func (r *Runtime[I]) Configure(ctx context.Context, cfg Config, host Host) error {
	inst, err := r.factory(ctx, cfg, host)
	if err != nil {
		return err
	}
	if cfg.CheckOnly {
		closeInstance(inst)
		return nil
	}
	r.mu.Lock()
	old := r.cur
	r.cur = &slot[I]{inst: inst}
	r.mu.Unlock()
	if old != nil {
		old.calls.Wait()
		closeInstance(old.inst)
	}
	return nil
}

// Close closes the current Instance; the Runtime answers "not configured"
// afterwards. Serve calls it when the plugin ends.
func (r *Runtime[I]) Close() error {
	r.mu.Lock()
	old := r.cur
	r.cur = nil
	r.mu.Unlock()
	if old == nil {
		return nil
	}
	old.calls.Wait()
	return closeInstance(old.inst)
}

// closeInstance closes inst if it is an io.Closer; a check-only factory
// may return a nil one.
func closeInstance[I Instance](inst I) error {
	c, ok := any(inst).(io.Closer)
	if !ok {
		return nil
	}
	if v := reflect.ValueOf(inst); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return c.Close()
}

// acquire returns the current Instance and the function that ends the call
// on it, or ok false before the first Configure.
func (r *Runtime[I]) acquire() (inst I, release func(), ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return inst, nil, false
	}
	s := r.cur
	s.calls.Add(1)
	return s.inst, s.calls.Done, true
}

// Deliver hands the batch to the current Instance; before there is one,
// every event is answered Retry with ErrNotConfigured.
func (r *Runtime[I]) Deliver(ctx context.Context, events []Event) []Result {
	inst, release, ok := r.acquire()
	if !ok {
		out := make([]Result, len(events))
		for i, ev := range events {
			out[i] = RetryResult(ev.ID, 0, ErrNotConfigured)
		}
		return out
	}
	defer release()
	return inst.Deliver(ctx, events)
}

// HandleHook hands the request to the current Instance; before there is
// one it answers 503, which makes the caller (Slack, Zendesk) try again.
func (r *Runtime[I]) HandleHook(ctx context.Context, req *HookRequest) (*HookResponse, error) {
	inst, release, ok := r.acquire()
	if !ok {
		return &HookResponse{Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"5"}}, Body: []byte(ErrNotConfigured.Error())}, nil
	}
	defer release()
	h, ok := any(inst).(HookHandler)
	if !ok {
		return nil, ErrUnsupported
	}
	return h.HandleHook(ctx, req)
}

// Sync asks the current Instance for changes.
func (r *Runtime[I]) Sync(ctx context.Context, cursor string) (SyncResult, error) {
	inst, release, ok := r.acquire()
	if !ok {
		return SyncResult{}, ErrNotConfigured
	}
	defer release()
	s, ok := any(inst).(Syncer)
	if !ok {
		return SyncResult{}, ErrUnsupported
	}
	return s.Sync(ctx, cursor)
}

// Health asks the current Instance whether its system is reachable.
func (r *Runtime[I]) Health(ctx context.Context) error {
	inst, release, ok := r.acquire()
	if !ok {
		return ErrNotConfigured
	}
	defer release()
	h, ok := any(inst).(HealthChecker)
	if !ok {
		return nil
	}
	return h.Health(ctx)
}

// SyncInterval reports the current Instance's sync interval: its own, or
// DefaultSyncInterval for a Syncer that has no opinion; 0 when it does
// not sync or is not configured yet.
func (r *Runtime[I]) SyncInterval() time.Duration {
	inst, release, ok := r.acquire()
	if !ok {
		return 0
	}
	defer release()
	return syncInterval(inst)
}

// With calls fn with the current Instance, for tests and for connector
// code outside the Connector methods; it reports false before Configure.
func (r *Runtime[I]) With(fn func(I)) bool {
	inst, release, ok := r.acquire()
	if !ok {
		return false
	}
	defer release()
	fn(inst)
	return true
}
