package sdktest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahub/wahub/sdk"
)

// Clock is a settable clock for a connector and the fake of its external
// system to share (give Now to the fake's WithClock and the Clock to the
// connector), so that a test moves time for both at once.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep moves the clock forward by d at once instead of waiting, so that
// a test of pacing at 2 requests a second runs in microseconds; it fails
// only when ctx is done. A connector that sleeps through a clock
// interface takes it as is.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		c.Advance(d)
	}
	return nil
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// ConfigJSON is base with extra merged over it, as JSON: a test's
// configuration. An extra key set to nil removes the key.
func ConfigJSON(t testing.TB, base, extra map[string]any) json.RawMessage {
	t.Helper()
	cfg := make(map[string]any, len(base)+len(extra))
	for k, v := range base {
		cfg[k] = v
	}
	for k, v := range extra {
		if v == nil {
			delete(cfg, k)
			continue
		}
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// ByID checks that results answer events one to one and returns them by
// event id.
func ByID(t testing.TB, events []sdk.Event, results []sdk.Result) map[string]sdk.Result {
	t.Helper()
	if len(results) != len(events) {
		t.Fatalf("%d results for %d events", len(results), len(events))
	}
	out := make(map[string]sdk.Result, len(results))
	for _, r := range results {
		if _, dup := out[r.EventID]; dup {
			t.Fatalf("two results for %s", r.EventID)
		}
		out[r.EventID] = r
	}
	return out
}

// Deliver delivers events through r, as the hub does, and returns the
// results by event id.
func Deliver(t testing.TB, r *sdk.Remote, events ...sdk.Event) map[string]sdk.Result {
	t.Helper()
	results, err := r.Deliver(context.Background(), events)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return ByID(t, events, results)
}

// MustDeliver delivers events through r and fails the test unless every
// one is Delivered: the set-up step of a test about what comes next.
func MustDeliver(t testing.TB, r *sdk.Remote, events ...sdk.Event) {
	t.Helper()
	for id, res := range Deliver(t, r, events...) {
		if res.Outcome != sdk.Delivered {
			t.Fatalf("%s: %s: %s", id, res.Outcome, res.Error)
		}
	}
}

// ClosedAddr is a loopback host:port nothing listens on, for a test of a
// connection refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// ServeUnder serves h under prefix (such as "/sandbox/slack") on a
// loopback server, with the prefix stripped as the sandbox mounts a fake,
// and returns the server's URL with the prefix: a fake must answer there
// as at its root.
func ServeUnder(t testing.TB, prefix string, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, h))
	return Serve(t, mux).URL + prefix
}

// ConfigCase is one configuration a connector must accept or refuse:
// {name, the configuration's JSON, "" or what the error must contain}.
type ConfigCase [3]string

// CheckConfigs validates each case the way `wahub check` does — over gRPC,
// CheckOnly, no host — so the message checked is the one a user reads.
// No error may contain a string of secrets.
func CheckConfigs(t *testing.T, newConnector func() sdk.Connector, name string, cases []ConfigCase, secrets ...string) {
	t.Helper()
	for _, tc := range cases {
		raw, want := tc[1], tc[2]
		t.Run(tc[0], func(t *testing.T) {
			err := Dial(t, newConnector()).Configure(context.Background(),
				sdk.Config{Name: name, Raw: json.RawMessage(raw), CheckOnly: true}, nil)
			switch {
			case want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case want != "" && err == nil:
				t.Errorf("accepted, want %q", want)
			case want != "" && !strings.Contains(err.Error(), want):
				t.Errorf("error %q, want it to contain %q", err, want)
			}
			for _, s := range secrets {
				if err != nil && s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error %q leaks a secret", err)
				}
			}
		})
	}
}

// Serve serves h on a loopback server until the test ends: the fake of a
// connector's external system.
func Serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// WantResult checks a result's outcome and wait, and that its error says
// each of has and none of not.
func WantResult(t testing.TB, r sdk.Result, outcome sdk.Outcome, after time.Duration, has, not []string) {
	t.Helper()
	if r.Outcome != outcome || r.RetryAfter != after {
		t.Errorf("got %s after %s (%s), want %s after %s", r.Outcome, r.RetryAfter, r.Error, outcome, after)
	}
	for _, s := range has {
		if !strings.Contains(r.Error, s) {
			t.Errorf("error %q does not contain %q", r.Error, s)
		}
	}
	for _, s := range not {
		if strings.Contains(r.Error, s) {
			t.Errorf("error %q contains %q", r.Error, s)
		}
	}
}
