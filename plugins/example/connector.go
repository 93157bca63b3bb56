package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/wahub/wahub/sdk"
)

// Version is what Describe reports; `wahub plugins` shows it. Bump it
// when you change behaviour, so that a user can tell builds apart.
const Version = "0.1.0"

// config is connectors.<name>.config in connectors.yaml. The JSON names
// are the keys users write.
type config struct {
	// Path is the file the events are appended to. A relative path is
	// relative to the directory wahub runs in (the plugin inherits it).
	Path string `json:"path"`
	// HookToken, when set, turns on POST /hooks/<name>: a caller must send
	// "Authorization: Bearer <hook_token>". The hub forwards hook requests
	// unauthenticated — checking them is the connector's job — and this
	// hook sends WhatsApp messages, so without a token it stays off.
	HookToken string `json:"hook_token"`
}

// New returns an unconfigured connector. The SDK's runtime does the
// plumbing every connector needs: it answers Describe (the hub calls it
// before anything else, also for `wahub plugins`), calls configure with
// each configuration the hub sends, holds the instance it builds, answers
// "not configured" before there is one, and closes the old one when a new
// configuration replaces it. The instance's optional methods (HandleHook,
// Health, Sync) are the capabilities the hub sees (see sdk.Capabilities).
func New() sdk.Connector {
	return sdk.NewConnector(sdk.Info{Name: "example", Version: Version}, configure)
}

// instance is the connector with one configuration. It never changes:
// a new configuration builds a new instance, so no locks guard its fields.
type instance struct {
	path      string
	hookToken string
	host      sdk.Host
	log       *slog.Logger

	// writeMu makes batches write one after the other, so that lines of
	// two batches never interleave and the file keeps the hub's order.
	writeMu sync.Mutex
}

// Compile-time checks that the instance has the methods the hub looks
// for; a typo in a signature would otherwise silently drop a capability.
var (
	_ sdk.HookHandler   = (*instance)(nil)
	_ sdk.HealthChecker = (*instance)(nil)
)

// configure builds an instance from the connector's config and the Host to
// call back. The SDK runs it once per process start, before any delivery,
// and again after the hub restarts a crashed plugin.
//
// It must refuse a bad configuration with an error that names the key and
// says how to fix it: `wahub check` and `wahub serve` print it as the
// reason. With cfg.CheckOnly (wahub check) it must only validate: touch
// nothing, connect nowhere; host is nil then, and what it returns is
// dropped.
func configure(ctx context.Context, cfg sdk.Config, host sdk.Host) (*instance, error) {
	var conf config
	// Decode refuses unknown keys, so a typo ("pth:") is an error and not
	// a setting silently ignored.
	if err := cfg.Decode(&conf); err != nil {
		return nil, err
	}
	if conf.Path == "" {
		return nil, fmt.Errorf("connectors.%s.config.path: required (the file events are appended to, e.g. data/events.jsonl)", cfg.Name)
	}
	if strings.HasSuffix(conf.Path, "/") {
		return nil, fmt.Errorf("connectors.%s.config.path: %q is a directory; name a file in it, e.g. %sevents.jsonl", cfg.Name, conf.Path, conf.Path)
	}
	if cfg.CheckOnly {
		return nil, nil
	}
	// Creating the directory now turns "no such directory" into an error
	// at start, where the user sees it, rather than into retries later.
	if err := os.MkdirAll(filepath.Dir(conf.Path), 0o750); err != nil {
		return nil, fmt.Errorf("connectors.%s.config.path: cannot create its directory: %w", cfg.Name, err)
	}
	return &instance{path: conf.Path, hookToken: conf.HookToken, host: host, log: sdk.Logger()}, nil
}

// Deliver appends each event to the file and returns exactly one Result
// per event (the hub treats a missing result as a failed attempt). The
// rules every connector follows:
//
//   - At least once: the hub may deliver an event again (it crashed, or
//     this process did before answering). So a connector remembers what
//     it has done, keyed by Event.ID, and does not do it twice. Here the
//     ids already written are kept in the hub's KV store, which survives
//     restarts (unlike a map in memory).
//   - Retry for what may work later (disk full, the hub's KV briefly
//     unavailable), Failed only for what never will: a Failed event is
//     not tried again until a user replays it.
//   - Order: events of one conversation arrive in log order. If one
//     cannot be written, writing later ones would put them ahead of it in
//     the file, so they are answered Retry too, to come again after it.
//   - ctx ends when the hub gives up on the batch (shutdown, timeout):
//     stop, and answer Retry for what was not done, never Failed.
//
// The file is one sequence, so this connector keeps the whole batch in
// order. Connectors whose external system keeps conversations apart (a
// ticket, a thread) deliver conversations in parallel with
// sdk.DeliverInOrder instead.
func (c *instance) Deliver(ctx context.Context, events []sdk.Event) []sdk.Result {
	results := make([]sdk.Result, 0, len(events))
	// stop, once set, is the reason the rest of the batch is not written.
	var stop error

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	// 0600: events carry customers' phone numbers and messages.
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		stop = fmt.Errorf("open %s: %w", c.path, err)
	} else {
		defer f.Close()
	}

	for _, ev := range events {
		if stop == nil && ctx.Err() != nil {
			stop = fmt.Errorf("not written: %w", ctx.Err())
		}
		if stop != nil {
			results = append(results, sdk.RetryResult(ev.ID, 0, stop))
			continue
		}
		res := c.writeOnce(ctx, f, c.host.KV(), ev)
		// After a Failed event the batch goes on: that event will not be
		// in the file before a user replays it, so holding the rest back
		// would keep nothing in order.
		if res.Outcome == sdk.Retry {
			stop = fmt.Errorf("not written, to keep the file in order: event %s before it was not written: %s", ev.ID, res.Error)
		}
		results = append(results, res)
	}
	return results
}

// kvKey is where the KV remembers that an event is in the file.
func kvKey(eventID string) string { return "written/" + eventID }

// writeOnce appends ev unless an earlier delivery already did.
func (c *instance) writeOnce(ctx context.Context, f *os.File, kv sdk.KV, ev sdk.Event) sdk.Result {
	_, written, err := kv.Get(ctx, kvKey(ev.ID))
	if err != nil {
		// Unknown whether it was written: writing it anyway could
		// duplicate it, so ask for a retry instead.
		return sdk.RetryResult(ev.ID, 0, fmt.Errorf("look up %s: %w", kvKey(ev.ID), err))
	}
	if written {
		// A redelivery: the effect exists, so the answer is Delivered.
		return sdk.DeliveredResult(ev.ID)
	}
	line, err := json.Marshal(ev)
	if err != nil {
		// The same event will never encode: a permanent failure.
		return sdk.FailedResult(ev.ID, fmt.Errorf("encode event: %w", err))
	}
	// One Write call per line, so that a line is never split between two
	// writes even if another program appends to the file too.
	if _, err := f.Write(append(line, '\n')); err != nil {
		return sdk.RetryResult(ev.ID, 0, fmt.Errorf("write %s: %w", f.Name(), err))
	}
	// Sync before recording the event as written: otherwise a power cut
	// could lose the line while the KV says it is there, and the event
	// would be lost for good. (Syncing once per event is simple and slow;
	// a busy connector would write the whole batch, sync once, then
	// record every id.)
	if err := f.Sync(); err != nil {
		return sdk.RetryResult(ev.ID, 0, fmt.Errorf("sync %s: %w", f.Name(), err))
	}
	if err := kv.Put(ctx, kvKey(ev.ID), []byte("1")); err != nil {
		// The line is in the file: answering Retry would write it a
		// second time. The event is delivered; only the protection
		// against a future redelivery is missing, which costs at worst a
		// duplicate line — the at-least-once promise allows that.
		c.log.Warn("event written but not recorded as written; a redelivery would write it again",
			"event_id", ev.ID, "err", err)
	}
	return sdk.DeliveredResult(ev.ID)
}

// hookBody is what POST /hooks/<name> accepts: a text to send to a
// customer, as an external system (a CRM, a script) would ask.
type hookBody struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// HandleHook answers POST /hooks/<name>, which the hub passes on as it
// came (headers and exact body, so that signatures can be checked). The
// connector authenticates the request itself; the hub does not.
//
// The caller's X-Request-Id becomes the message's idempotency key: if the
// caller retries (it timed out, our answer got lost), the hub sends the
// message once.
func (c *instance) HandleHook(ctx context.Context, req *sdk.HookRequest) (*sdk.HookResponse, error) {
	token, host := c.hookToken, c.host

	if token == "" {
		return reply(http.StatusForbidden, "hooks are off: set config.hook_token and send it as \"Authorization: Bearer <token>\""), nil
	}
	// Constant time, so that response timing does not reveal how much of
	// a guessed token was right.
	got, bearer := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !bearer || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		return reply(http.StatusUnauthorized, "missing or wrong \"Authorization: Bearer <hook_token>\""), nil
	}
	if req.Method != http.MethodPost {
		resp := reply(http.StatusMethodNotAllowed, "use POST")
		resp.Header.Set("Allow", http.MethodPost)
		return resp, nil
	}
	var body hookBody
	if err := json.Unmarshal(req.Body, &body); err != nil {
		return reply(http.StatusBadRequest, `body must be JSON: {"to": "<wa_id>", "text": "..."}`), nil
	}
	if body.To == "" && body.Text == "" {
		// Nothing to send: a ping, which lets the external system check
		// the URL and the token.
		return reply(http.StatusOK, ""), nil
	}
	if body.To == "" || body.Text == "" {
		return reply(http.StatusBadRequest, `both "to" and "text" are required`), nil
	}
	key := req.Header.Get("X-Request-Id")
	if key == "" {
		return reply(http.StatusBadRequest, "X-Request-Id header required: it makes a retried request send the message once"), nil
	}
	res, err := host.SendMessage(ctx, sdk.OutboundMessage{To: body.To, Text: body.Text, IdempotencyKey: key})
	var refused *sdk.RefusedError
	switch {
	case errors.As(err, &refused):
		// The hub's policy said no (opted out, 24-hour window closed...):
		// retrying will not help, so say why with a 4xx.
		return replyJSON(http.StatusUnprocessableEntity, map[string]any{"ok": false, "error": map[string]string{"code": refused.Code, "message": refused.Message}}), nil
	case err != nil:
		// The hub could not take it now: a 503 asks the caller to retry,
		// which is safe thanks to the idempotency key.
		c.log.Warn("hook: SendMessage failed", "err", err)
		return reply(http.StatusServiceUnavailable, "could not queue the message, retry later"), nil
	}
	return replyJSON(http.StatusOK, map[string]any{"ok": true, "id": res.ID, "state": res.State}), nil
}

// reply is a JSON answer: {"ok":true} for a 2xx, {"ok":false,"error":msg}
// otherwise.
func reply(status int, msg string) *sdk.HookResponse {
	if status < 300 {
		return replyJSON(status, map[string]any{"ok": true})
	}
	return replyJSON(status, map[string]any{"ok": false, "error": msg})
}

func replyJSON(status int, v any) *sdk.HookResponse {
	body, _ := json.Marshal(v) // maps of strings always encode
	return &sdk.HookResponse{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
}

// Health tells the hub whether deliveries can succeed: here, whether the
// file's directory is writable. The hub shows the answer in /readyz and
// the admin API. Keep it cheap: it is called periodically.
func (c *instance) Health(ctx context.Context) error {
	dir := filepath.Dir(c.path)
	f, err := os.CreateTemp(dir, ".example-connector-health-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}
