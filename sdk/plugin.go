package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/wahub/wahub/sdk/internal/pb"
)

// ProtocolVersion is the newest connector protocol this SDK speaks. It
// changes only when the protocol's meaning changes; additions a plugin may
// lack are discovered through capabilities.
//
//   - 1: the first protocol.
//   - 2: Describe, asked again after Configure, reports the sync interval
//     the configuration sets (DescribeResponse.sync_interval_ms); the hub
//     no longer reads it out of the connector's configuration. With a
//     protocol 1 plugin the hub syncs every DefaultSyncInterval.
const ProtocolVersion = 2

// Protocols are the versions this SDK speaks, oldest first. Both sides
// offer all of them and go-plugin picks the newest they share, so a plugin
// built against an older SDK keeps working with a newer hub and the other
// way round.
var Protocols = []int{1, 2}

// Handshake is what the host and a plugin check before talking. The cookie
// only keeps a person from running a plugin binary by hand by mistake.
// ProtocolVersion is the fallback go-plugin uses when the other side does
// not negotiate; VersionedPlugins carries the set.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "WAHUB_CONNECTOR_PLUGIN",
	MagicCookieValue: "d1c6f1c4-wahub-connector",
}

// PluginName is the name the connector is dispensed under.
const PluginName = "connector"

// MaxMessageSize is the largest gRPC message between the hub and a plugin
// (gRPC's default is 4 MB, which a batch of events with large raw payloads
// exceeds). The hub splits delivery batches to stay below it.
const MaxMessageSize = maxMessageSize

const maxMessageSize = 64 << 20

// SDKVersion is reported to the host by Describe.
const SDKVersion = "1.0.0"

// GRPCPlugin adapts a Connector to go-plugin. Impl is set on the plugin
// side and nil on the host side; Protocol is the version it speaks.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl     Connector
	Protocol int
}

// PluginSet is the plugin map of the newest protocol, for in-process tests.
func PluginSet(impl Connector) plugin.PluginSet {
	return plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl, Protocol: ProtocolVersion}}
}

// VersionedPlugins is the plugin map of each version in versions (all of
// Protocols when empty), as both sides hand it to go-plugin.
func VersionedPlugins(impl Connector, versions ...int) map[int]plugin.PluginSet {
	if len(versions) == 0 {
		versions = Protocols
	}
	out := make(map[int]plugin.PluginSet, len(versions))
	for _, v := range versions {
		out[v] = plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl, Protocol: v}}
	}
	return out
}

// GRPCServer serves Impl; go-plugin calls it in the plugin process.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterConnectorServer(s, &connectorServer{impl: p.Impl, broker: broker, protocol: p.Protocol})
	return nil
}

// GRPCClient returns a *Remote; go-plugin calls it in the host process.
// Its ctx ends when the plugin process exits, which Remote.Done reports.
func (p *GRPCPlugin) GRPCClient(ctx context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Remote{client: pb.NewConnectorClient(c), broker: broker, done: ctx.Done(), protocol: p.Protocol}, nil
}

// GRPCServerOptions are the options a plugin's gRPC server needs; Serve and
// the test harness use them.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMessageSize), grpc.MaxSendMsgSize(maxMessageSize)}
}

// ---- plugin side ----

type connectorServer struct {
	pb.UnimplementedConnectorServer
	impl     Connector
	broker   *plugin.GRPCBroker
	protocol int

	hostOnce sync.Once
	host     *remoteHost
	hostErr  error
}

func (s *connectorServer) Describe(ctx context.Context, _ *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	info := s.impl.Describe()
	resp := &pb.DescribeResponse{Name: info.Name, Version: info.Version, Capabilities: Capabilities(s.impl), SdkVersion: SDKVersion}
	if s.protocol >= 2 && has(s.impl, CapabilitySync) {
		resp.SyncIntervalMs = syncInterval(s.impl).Milliseconds()
	}
	return resp, nil
}

func (s *connectorServer) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	var host Host
	if req.HostBrokerId != 0 {
		// One connection to the host for the plugin's life, opened here
		// rather than per call: a broker dial costs a listener.
		s.hostOnce.Do(func() {
			conn, err := s.broker.Dial(req.HostBrokerId)
			if err != nil {
				s.hostErr = fmt.Errorf("connect to the hub's host service: %w", err)
				return
			}
			s.host = &remoteHost{client: pb.NewHostClient(conn)}
		})
		if s.hostErr != nil {
			return nil, status.Error(codes.Unavailable, s.hostErr.Error())
		}
		host = s.host
	}
	cfg := Config{Name: req.Name, Raw: req.ConfigJson, CheckOnly: req.CheckOnly}
	if err := s.impl.Configure(ctx, cfg, host); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *connectorServer) Deliver(ctx context.Context, req *pb.DeliverRequest) (*pb.DeliverResponse, error) {
	events := make([]Event, 0, len(req.Events))
	var bad []*pb.Result
	for _, raw := range req.Events {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			// Cannot happen with a hub of the same protocol; answer for
			// what can be identified and let the rest be retried.
			bad = append(bad, &pb.Result{EventId: ev.ID, Outcome: pb.Outcome_OUTCOME_FAILED, Error: "plugin could not decode the event: " + err.Error()})
			continue
		}
		events = append(events, ev)
	}
	results := s.impl.Deliver(ctx, events)
	out := &pb.DeliverResponse{Results: make([]*pb.Result, 0, len(results)+len(bad))}
	for _, r := range results {
		out.Results = append(out.Results, &pb.Result{
			EventId:      r.EventID,
			Outcome:      pb.Outcome(r.Outcome),
			RetryAfterMs: r.RetryAfter.Milliseconds(),
			Error:        r.Error,
			NotAttempted: r.NotAttempted,
		})
	}
	out.Results = append(out.Results, bad...)
	return out, nil
}

func (s *connectorServer) HandleHook(ctx context.Context, req *pb.HookRequest) (*pb.HookResponse, error) {
	h, ok := s.impl.(HookHandler)
	if !ok || !has(s.impl, CapabilityHooks) {
		return nil, status.Error(codes.Unimplemented, "connector does not take hooks")
	}
	resp, err := h.HandleHook(ctx, &HookRequest{
		Method: req.Method, Path: req.Path, RawQuery: req.RawQuery,
		Header: headerFromPB(req.Headers), Body: req.Body, RemoteAddr: req.RemoteAddr,
	})
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if resp == nil {
		resp = &HookResponse{Status: http.StatusOK}
	}
	return &pb.HookResponse{Status: int32(resp.Status), Headers: headerToPB(resp.Header), Body: resp.Body}, nil
}

func (s *connectorServer) Sync(ctx context.Context, req *pb.SyncRequest) (*pb.SyncResponse, error) {
	sy, ok := s.impl.(Syncer)
	if !ok || !has(s.impl, CapabilitySync) {
		return nil, status.Error(codes.Unimplemented, "connector does not sync")
	}
	res, err := sy.Sync(ctx, req.Cursor)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	out := &pb.SyncResponse{NextCursor: res.NextCursor, More: res.More}
	for _, c := range res.Contacts {
		out.Contacts = append(out.Contacts, contactToPB(c))
	}
	return out, nil
}

func (s *connectorServer) Health(ctx context.Context, _ *pb.HealthRequest) (*pb.HealthResponse, error) {
	hc, ok := s.impl.(HealthChecker)
	if !ok || !has(s.impl, CapabilityHealth) {
		return &pb.HealthResponse{Ok: true, Message: "no health check"}, nil
	}
	if err := hc.Health(ctx); err != nil {
		return &pb.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &pb.HealthResponse{Ok: true}, nil
}

// syncInterval is how often v (a Connector or an Instance) asks to be
// synced: 0 for never.
func syncInterval(v any) time.Duration {
	if si, ok := v.(SyncIntervaler); ok {
		return si.SyncInterval()
	}
	if _, ok := v.(Syncer); ok {
		return DefaultSyncInterval
	}
	return 0
}

// has reports whether c has the capability: a Runtime has every method
// but only its Instance type's capabilities.
func has(c Connector, capability string) bool {
	return slices.Contains(Capabilities(c), capability)
}

// remoteHost is the Host a plugin sees: calls go back to the hub.
type remoteHost struct {
	client pb.HostClient
}

func (h *remoteHost) SendMessage(ctx context.Context, msg OutboundMessage) (SendResult, error) {
	raw, err := json.Marshal(msg)
	if err != nil {
		return SendResult{}, err
	}
	resp, err := h.client.SendMessage(ctx, &pb.SendMessageRequest{MessageJson: raw})
	if err != nil {
		return SendResult{}, fromStatus(err)
	}
	if resp.RefusedCode != "" {
		return SendResult{ID: resp.Id, State: resp.State}, &RefusedError{Code: resp.RefusedCode, Message: resp.RefusedMessage}
	}
	return SendResult{ID: resp.Id, State: resp.State}, nil
}

func (h *remoteHost) KV() KV { return (*remoteKV)(h) }

func (h *remoteHost) UpsertContact(ctx context.Context, c ContactUpdate) error {
	_, err := h.client.UpsertContact(ctx, &pb.UpsertContactRequest{Contact: contactToPB(c)})
	return fromStatus(err)
}

type remoteKV remoteHost

func (k *remoteKV) Get(ctx context.Context, key string) ([]byte, bool, error) {
	resp, err := k.client.KVGet(ctx, &pb.KVGetRequest{Key: key})
	if err != nil {
		return nil, false, fromStatus(err)
	}
	return resp.Value, resp.Found, nil
}

func (k *remoteKV) Put(ctx context.Context, key string, value []byte) error {
	_, err := k.client.KVPut(ctx, &pb.KVPutRequest{Key: key, Value: value})
	return fromStatus(err)
}

func (k *remoteKV) CompareAndSwap(ctx context.Context, key string, old, new []byte) (bool, error) {
	resp, err := k.client.KVCompareAndSwap(ctx, &pb.KVCompareAndSwapRequest{Key: key, Old: old, OldAbsent: old == nil, New: new})
	if err != nil {
		return false, fromStatus(err)
	}
	return resp.Swapped, nil
}

func (k *remoteKV) Delete(ctx context.Context, key string) error {
	_, err := k.client.KVDelete(ctx, &pb.KVDeleteRequest{Key: key})
	return fromStatus(err)
}

func (k *remoteKV) List(ctx context.Context, prefix string) ([]KVPair, error) {
	resp, err := k.client.KVList(ctx, &pb.KVListRequest{Prefix: prefix})
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]KVPair, len(resp.Pairs))
	for i, p := range resp.Pairs {
		out[i] = KVPair{Key: p.Key, Value: p.Value}
	}
	return out, nil
}

// ---- host side ----

// Remote is a connector running in a plugin process, as the host calls it.
type Remote struct {
	client pb.ConnectorClient
	broker *plugin.GRPCBroker
	done   <-chan struct{}
	// protocol is the version negotiated with the plugin.
	protocol int

	hostOnce sync.Once
	hostID   uint32
}

// Done is closed when the plugin process has exited.
func (r *Remote) Done() <-chan struct{} { return r.done }

// Protocol is the protocol version negotiated with the plugin.
func (r *Remote) Protocol() int { return r.protocol }

// Description is what Describe tells the host.
type Description struct {
	Info
	Capabilities []string
	SDKVersion   string
	// Protocol is the version negotiated with the plugin.
	Protocol int
	// SyncInterval is how often the connector asks to be synced, once
	// configured (protocol 2): 0 for never.
	SyncInterval time.Duration
}

// SyncEvery is how often the hub syncs the connector; 0: never. A
// protocol 1 plugin cannot say, and one with the sync capability is
// synced every DefaultSyncInterval.
func (d Description) SyncEvery() time.Duration {
	switch {
	case !d.Has(CapabilitySync):
		return 0
	case d.Protocol < 2:
		return DefaultSyncInterval
	}
	return d.SyncInterval
}

// Has reports whether the connector has a capability.
func (d Description) Has(capability string) bool {
	for _, c := range d.Capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// Describe asks the plugin who it is and what it can do.
func (r *Remote) Describe(ctx context.Context) (Description, error) {
	resp, err := r.client.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return Description{}, fromStatus(err)
	}
	return Description{Info: Info{Name: resp.Name, Version: resp.Version}, Capabilities: resp.Capabilities, SDKVersion: resp.SdkVersion,
		Protocol: r.protocol, SyncInterval: time.Duration(resp.SyncIntervalMs) * time.Millisecond}, nil
}

// Configure sends the configuration and, the first time, starts serving
// host on the broker for the plugin's calls back. host may be nil for a
// check-only configuration.
func (r *Remote) Configure(ctx context.Context, cfg Config, host Host) error {
	req := &pb.ConfigureRequest{Name: cfg.Name, ConfigJson: cfg.Raw, CheckOnly: cfg.CheckOnly}
	if host != nil {
		r.hostOnce.Do(func() {
			r.hostID = r.broker.NextId()
			srv := &hostServer{host: host}
			go r.broker.AcceptAndServe(r.hostID, func(opts []grpc.ServerOption) *grpc.Server {
				s := grpc.NewServer(append(opts, GRPCServerOptions()...)...)
				pb.RegisterHostServer(s, srv)
				return s
			})
		})
		req.HostBrokerId = r.hostID
	}
	_, err := r.client.Configure(ctx, req)
	return fromStatus(err)
}

// Deliver sends a batch and returns the plugin's results. An error means
// the outcome of the whole batch is unknown (the plugin died, the call
// timed out): the host must deliver it again.
func (r *Remote) Deliver(ctx context.Context, events []Event) ([]Result, error) {
	raws := make([][]byte, len(events))
	for i := range events {
		raw, err := json.Marshal(&events[i])
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", events[i].ID, err)
		}
		raws[i] = raw
	}
	return r.DeliverJSON(ctx, raws)
}

// DeliverJSON is Deliver for events already encoded as their JSON, as the
// hub keeps them.
func (r *Remote) DeliverJSON(ctx context.Context, events [][]byte) ([]Result, error) {
	req := &pb.DeliverRequest{Events: events}
	resp, err := r.client.Deliver(ctx, req, grpc.MaxCallSendMsgSize(maxMessageSize))
	if err != nil {
		return nil, fromStatus(err)
	}
	out := make([]Result, len(resp.Results))
	for i, res := range resp.Results {
		out[i] = Result{EventID: res.EventId, Outcome: Outcome(res.Outcome), RetryAfter: time.Duration(res.RetryAfterMs) * time.Millisecond,
			Error: res.Error, NotAttempted: res.NotAttempted}
	}
	return out, nil
}

// ErrUnsupported is returned for a capability the connector lacks.
var ErrUnsupported = errors.New("connector does not support this")

// HandleHook hands an inbound HTTP request to the plugin.
func (r *Remote) HandleHook(ctx context.Context, req *HookRequest) (*HookResponse, error) {
	resp, err := r.client.HandleHook(ctx, &pb.HookRequest{
		Method: req.Method, Path: req.Path, RawQuery: req.RawQuery,
		Headers: headerToPB(req.Header), Body: req.Body, RemoteAddr: req.RemoteAddr,
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &HookResponse{Status: int(resp.Status), Header: headerFromPB(resp.Headers), Body: resp.Body}, nil
}

// Sync asks the plugin for changes since cursor.
func (r *Remote) Sync(ctx context.Context, cursor string) (SyncResult, error) {
	resp, err := r.client.Sync(ctx, &pb.SyncRequest{Cursor: cursor})
	if err != nil {
		return SyncResult{}, fromStatus(err)
	}
	out := SyncResult{NextCursor: resp.NextCursor, More: resp.More}
	for _, c := range resp.Contacts {
		out.Contacts = append(out.Contacts, contactFromPB(c))
	}
	return out, nil
}

// Health asks the plugin whether its external system is reachable.
func (r *Remote) Health(ctx context.Context) error {
	resp, err := r.client.Health(ctx, &pb.HealthRequest{})
	if err != nil {
		return fromStatus(err)
	}
	if !resp.Ok {
		return errors.New(resp.Message)
	}
	return nil
}

// hostServer serves the host's Host to the plugin.
type hostServer struct {
	pb.UnimplementedHostServer
	host Host
}

func (s *hostServer) SendMessage(ctx context.Context, req *pb.SendMessageRequest) (*pb.SendMessageResponse, error) {
	var msg OutboundMessage
	if err := json.Unmarshal(req.MessageJson, &msg); err != nil {
		return nil, status.Error(codes.InvalidArgument, "message: "+err.Error())
	}
	res, err := s.host.SendMessage(ctx, msg)
	var refused *RefusedError
	if errors.As(err, &refused) {
		return &pb.SendMessageResponse{Id: res.ID, State: res.State, RefusedCode: refused.Code, RefusedMessage: refused.Message}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.SendMessageResponse{Id: res.ID, State: res.State}, nil
}

func (s *hostServer) KVGet(ctx context.Context, req *pb.KVGetRequest) (*pb.KVGetResponse, error) {
	v, found, err := s.host.KV().Get(ctx, req.Key)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVGetResponse{Value: v, Found: found}, nil
}

func (s *hostServer) KVPut(ctx context.Context, req *pb.KVPutRequest) (*pb.KVPutResponse, error) {
	if err := s.host.KV().Put(ctx, req.Key, req.Value); err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVPutResponse{}, nil
}

func (s *hostServer) KVCompareAndSwap(ctx context.Context, req *pb.KVCompareAndSwapRequest) (*pb.KVCompareAndSwapResponse, error) {
	old := req.Old
	if req.OldAbsent {
		old = nil
	} else if old == nil {
		old = []byte{}
	}
	ok, err := s.host.KV().CompareAndSwap(ctx, req.Key, old, req.New)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVCompareAndSwapResponse{Swapped: ok}, nil
}

func (s *hostServer) KVDelete(ctx context.Context, req *pb.KVDeleteRequest) (*pb.KVDeleteResponse, error) {
	if err := s.host.KV().Delete(ctx, req.Key); err != nil {
		return nil, toStatus(err)
	}
	return &pb.KVDeleteResponse{}, nil
}

func (s *hostServer) KVList(ctx context.Context, req *pb.KVListRequest) (*pb.KVListResponse, error) {
	pairs, err := s.host.KV().List(ctx, req.Prefix)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.KVListResponse{Pairs: make([]*pb.KVPair, len(pairs))}
	for i, p := range pairs {
		out.Pairs[i] = &pb.KVPair{Key: p.Key, Value: p.Value}
	}
	return out, nil
}

func (s *hostServer) UpsertContact(ctx context.Context, req *pb.UpsertContactRequest) (*pb.UpsertContactResponse, error) {
	if req.Contact == nil {
		return nil, status.Error(codes.InvalidArgument, "contact: missing")
	}
	if err := s.host.UpsertContact(ctx, contactFromPB(req.Contact)); err != nil {
		return nil, toStatus(err)
	}
	return &pb.UpsertContactResponse{}, nil
}

// ---- conversions ----

func headerToPB(h http.Header) []*pb.Header {
	out := make([]*pb.Header, 0, len(h))
	for k, v := range h {
		out = append(out, &pb.Header{Name: k, Values: v})
	}
	return out
}

func headerFromPB(hs []*pb.Header) http.Header {
	h := make(http.Header, len(hs))
	for _, x := range hs {
		h[http.CanonicalHeaderKey(x.Name)] = append(h[http.CanonicalHeaderKey(x.Name)], x.Values...)
	}
	return h
}

func contactToPB(c ContactUpdate) *pb.ContactUpdate {
	return &pb.ContactUpdate{WaId: c.WAID, UserId: c.UserID, Name: c.Name, Attributes: c.Attributes}
}

func contactFromPB(c *pb.ContactUpdate) ContactUpdate {
	return ContactUpdate{WAID: c.WaId, UserID: c.UserId, Name: c.Name, Attributes: c.Attributes}
}

// toStatus carries an error across gRPC keeping whether it is worth
// retrying: context ends stay what they are.
func toStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// fromStatus turns a gRPC status back into a plain error with the remote
// message, so that users read the connector's words and not gRPC's.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unimplemented:
		return fmt.Errorf("%w: %s", ErrUnsupported, st.Message())
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	case codes.Unavailable:
		return &UnavailableError{Msg: st.Message()}
	}
	return errors.New(st.Message())
}

// UnavailableError means the plugin process (or the host) could not be
// reached: the call's outcome is unknown.
type UnavailableError struct{ Msg string }

func (e *UnavailableError) Error() string { return "plugin unavailable: " + e.Msg }
