package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/delivery"
	"github.com/wahub/wahub/host/outbound"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/supervisor"
	"github.com/wahub/wahub/sdk"
)

// specs lists the enabled connectors for the supervisor.
func specs(cfg *config.Config) ([]supervisor.Spec, error) {
	var out []supervisor.Spec
	for _, name := range sortedKeys(cfg.Connectors) {
		cc := cfg.Connectors[name]
		if !cc.Enabled {
			continue
		}
		raw, err := json.Marshal(cc.Config.Reveal())
		if err != nil {
			return nil, &config.Error{Key: "connectors." + name + ".config", Msg: "cannot be encoded as JSON: " + err.Error()}
		}
		out = append(out, spec(name, cc, raw))
	}
	return out, nil
}

// spec is one connector as the supervisor runs it.
func spec(name string, cc config.Connector, raw json.RawMessage) supervisor.Spec {
	if cc.SHA256 == config.DevSHA256 {
		return supervisor.Spec{Name: name, Plugin: cc.Plugin, Unchecked: true, Config: raw}
	}
	return supervisor.Spec{Name: name, Plugin: cc.Plugin, SHA256: cc.SHA256, Config: raw}
}

// policies are the delivery settings of the enabled connectors.
func policies(cfg *config.Config) map[string]delivery.Policy {
	out := map[string]delivery.Policy{}
	for name, cc := range cfg.Connectors {
		if !cc.Enabled {
			continue
		}
		out[name] = delivery.Policy{
			BatchSize:     cc.BatchSize,
			MaxAttempts:   cc.Retry.MaxAttempts,
			Initial:       cc.Retry.InitialInterval,
			Max:           cc.Retry.MaxInterval,
			RatePerSecond: cc.RatePerSecond,
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// plugins adapts the supervisor to what the delivery engine needs.
type plugins struct{ sup *supervisor.Supervisor }

func (p plugins) Deliverer(name string) (delivery.Deliverer, error) {
	r, _, err := p.sup.Remote(name)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (p plugins) Running(name string) <-chan struct{} { return p.sup.Running(name) }

// hostAPI is the hub as one connector's plugin calls it back.
type hostAPI struct {
	name     string
	store    *store.Store
	sender   *outbound.Sender
	markRead bool // whatsapp.mark_read_on_reply
	// media is the hub's media store as plugins read and fill it; nil
	// until the media stage is wired, and then every call says so.
	media mediaHost
}

// mediaHost is what a plugin's media calls need of the hub: files by id,
// streamed, and a place to put an agent's attachment.
type mediaHost interface {
	Open(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error)
	Put(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error)
}

// errNoMedia answers media calls on a hub without a media store.
var errNoMedia = errors.New("media: this hub keeps no media store")

func (h *hostAPI) OpenMedia(ctx context.Context, id string) (sdk.MediaInfo, io.ReadCloser, error) {
	if h.media == nil {
		return sdk.MediaInfo{}, nil, errNoMedia
	}
	return h.media.Open(ctx, id)
}

func (h *hostAPI) PutMedia(ctx context.Context, m sdk.MediaUpload, r io.Reader) (sdk.MediaInfo, error) {
	if h.media == nil {
		return sdk.MediaInfo{}, errNoMedia
	}
	return h.media.Put(ctx, m, r)
}

// SendMessage checks the message against WhatsApp's rules and queues it
// for the outbound sender; the idempotency key is scoped to the
// connector. A refusal reaches the plugin as *sdk.RefusedError.
func (h *hostAPI) SendMessage(ctx context.Context, msg sdk.OutboundMessage) (sdk.SendResult, error) {
	// An agent is answering: the customer sees their message read and
	// the agent typing.
	msg.MarkRead = msg.MarkRead || h.markRead
	rec, _, err := h.sender.Submit(ctx, "connector:"+h.name, msg)
	var inv *outbound.InvalidError
	if errors.As(err, &inv) {
		return sdk.SendResult{}, &sdk.RefusedError{Code: "invalid", Message: inv.Msg}
	}
	if err != nil {
		return sdk.SendResult{}, err
	}
	return sdk.SendResult{ID: rec.ID, State: rec.State}, nil
}

func (h *hostAPI) KV() sdk.KV { return h.store.KV(h.name) }

func (h *hostAPI) UpsertContact(ctx context.Context, c sdk.ContactUpdate) error {
	return h.store.SetContactAttributes(ctx, c)
}

// maxHookBody bounds what an external system may post to /hooks.
const maxHookBody = 4 << 20

// hook hands POST /hooks/{connector} to the connector's plugin, which
// verifies and answers it.
func (h *Hub) hook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("connector")
	remote, desc, err := h.sup.Remote(name)
	var down *supervisor.NotRunningError
	switch {
	case errors.Is(err, supervisor.ErrUnknownConnector):
		admin.WriteError(w, http.StatusNotFound, "unknown_connector", "no enabled connector "+name+" in connectors.yaml")
		return
	case errors.As(err, &down):
		w.Header().Set("Retry-After", "5")
		admin.WriteError(w, http.StatusServiceUnavailable, "connector_down", down.Error())
		return
	case err != nil:
		admin.WriteError(w, http.StatusServiceUnavailable, "connector_down", err.Error())
		return
	}
	if !desc.Has(sdk.CapabilityHooks) {
		admin.WriteError(w, http.StatusNotFound, "no_hooks", "connector "+name+" ("+desc.Name+") does not take inbound callbacks")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHookBody))
	if err != nil {
		admin.WriteError(w, http.StatusRequestEntityTooLarge, "too_large", "hook body over 4 MiB")
		return
	}
	// The request reaches the plugin over gRPC, whose strings must be
	// UTF-8; no system wahub talks to sends anything else in a header.
	if key, ok := invalidHeader(r.Header); !ok {
		h.log.Info("hook refused: a header is not valid UTF-8", "connector", name, "header", key, "remote", r.RemoteAddr)
		admin.WriteError(w, http.StatusBadRequest, "bad_header", "header "+key+" is not valid UTF-8")
		return
	}
	resp, err := remote.HandleHook(r.Context(), &sdk.HookRequest{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, RemoteAddr: r.RemoteAddr,
	})
	if err != nil {
		h.log.Error("hook failed", "connector", name, "err", err)
		admin.WriteError(w, http.StatusBadGateway, "hook_failed", "the connector could not handle the request; see the hub's log")
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(resp.Body)
}

// invalidHeader finds a header whose name or value is not valid UTF-8;
// key is its name made printable.
func invalidHeader(hdr http.Header) (key string, ok bool) {
	for k, vs := range hdr {
		bad := !utf8.ValidString(k)
		for _, v := range vs {
			bad = bad || !utf8.ValidString(v)
		}
		if bad {
			return strconv.QuoteToASCII(k), false
		}
	}
	return "", true
}

// Syncer is the connector's sync call and interval, for the syncer: how
// often is the plugin's to say (sync.interval has one owner, the
// connector that reads it), never read here from its configuration.
func (p plugins) Syncer(name string) (func(context.Context, string) (sdk.SyncResult, error), time.Duration, error) {
	remote, desc, err := p.sup.Remote(name)
	if err != nil {
		return nil, 0, err
	}
	every := desc.SyncEvery()
	if every <= 0 {
		return nil, 0, nil
	}
	return remote.Sync, every, nil
}

// enabledConnectors are the names of the enabled connectors, sorted.
func enabledConnectors(cfg *config.Config) []string {
	var out []string
	for _, name := range sortedKeys(cfg.Connectors) {
		if cfg.Connectors[name].Enabled {
			out = append(out, name)
		}
	}
	return out
}
