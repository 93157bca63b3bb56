// Package hub assembles the running hub from its configuration: the store,
// the HTTP endpoints, routing, the delivery engine, the outbound sender, the
// plugin supervisor and the contact syncer. host/cmd/wahub's serve command is a thin wrapper around Run.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jonboulle/clockwork"

	"github.com/wahub/wahub/host/admin"
	"github.com/wahub/wahub/host/cluster"
	"github.com/wahub/wahub/host/config"
	"github.com/wahub/wahub/host/delivery"
	"github.com/wahub/wahub/host/graph"
	"github.com/wahub/wahub/host/ingest"
	"github.com/wahub/wahub/host/media"
	"github.com/wahub/wahub/host/outbound"
	"github.com/wahub/wahub/host/route"
	"github.com/wahub/wahub/host/sandbox"
	"github.com/wahub/wahub/host/store"
	"github.com/wahub/wahub/host/supervisor"
	"github.com/wahub/wahub/host/syncer"
	"github.com/wahub/wahub/host/templates"
	"github.com/wahub/wahub/sdk"
)

// Hub is one running wahub process.
type Hub struct {
	cfg   *config.Config
	log   *slog.Logger
	store *store.Store
	lock  *store.Lock
	// cluster is set on PostgreSQL: the hub's heartbeat and leases.
	cluster  *cluster.Cluster
	started  time.Time
	registry *prometheus.Registry
	handler  http.Handler
	// opsHandler serves /metrics and /readyz on server.metrics_listen
	// (nil when they share the public listener).
	opsHandler http.Handler
	clock      clockwork.Clock
	router     *route.Router
	sup        *supervisor.Supervisor
	engine     *delivery.Engine
	sender     *outbound.Sender
	graph      *graphClient
	// media is the media store: inbound files, uploads, their fetcher.
	media *media.Store
	// templates keeps the template catalogue fresh (with a business
	// account id).
	templates *templates.Refresher
	// decisions counts routing decisions by team and rule.
	decisions *prometheus.CounterVec
	specs     []supervisor.Spec
	// sandbox is set in Run when the configuration asks for one: its
	// fakes need the address the hub listens on.
	sandbox atomic.Pointer[sandbox.Sandbox]
	// addr is the address the hub listens on, once it does.
	addr atomic.Value
}

// graphClient lets Run point the sender at the sandbox's fake once the
// hub's address is known.
type graphClient struct{ c atomic.Pointer[graph.Client] }

func (g *graphClient) Send(ctx context.Context, pn string, m graph.Message) (graph.Accepted, error) {
	return g.c.Load().Send(ctx, pn, m)
}

func (g *graphClient) MarkReadTyping(ctx context.Context, pn, wamid string) error {
	return g.c.Load().MarkReadTyping(ctx, pn, wamid)
}

func (g *graphClient) Upload(ctx context.Context, pn string, f graph.MediaFile) (string, error) {
	return g.c.Load().Upload(ctx, pn, f)
}

// Options are what tests and the CLI may set beyond the configuration.
type Options struct {
	Logger *slog.Logger
	// Clock is the clock every stage uses; tests inject one.
	Clock clockwork.Clock
	// Executable serves the built-in connectors (default: this binary).
	Executable string
}

// New opens the store and builds the HTTP handler. Close releases them.
func New(cfg *config.Config, opt Options) (*Hub, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Clock == nil {
		opt.Clock = clockwork.NewRealClock()
	}
	// Before anything reads them: the webhook and admin handlers take
	// their secrets now.
	sandbox.ApplySecrets(cfg)
	router, err := route.New(cfg)
	if err != nil {
		return nil, err
	}
	specs, err := specs(cfg)
	if err != nil {
		return nil, err
	}
	var lock *store.Lock
	if cfg.Store.Driver != "postgres" {
		warning, err := store.SecureDir(cfg.Store.Path)
		if err != nil {
			return nil, err
		}
		if warning != "" {
			opt.Logger.Warn(warning)
		}
		// One hub per SQLite file: a second would deliver every event again.
		if lock, err = store.AcquireLock(cfg.Store.Path); err != nil {
			return nil, err
		}
	}
	st, err := OpenStore(cfg, store.Options{BusyTimeout: cfg.Store.BusyTimeout, Now: opt.Clock.Now}, opt.Logger)
	if err != nil {
		lock.Release()
		return nil, err
	}
	h := &Hub{
		cfg:      cfg,
		log:      opt.Logger,
		store:    st,
		lock:     lock,
		started:  opt.Clock.Now(),
		registry: prometheus.NewRegistry(),
		clock:    opt.Clock,
		router:   router,
		specs:    specs,
	}
	h.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newStateCollector(h))
	h.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wahub_routing_decisions_total",
		Help: "Events routed, by the team and the rule that decided (rule \"affinity\": the conversation's team was kept).",
	}, []string{"team", "rule"})
	h.registry.MustRegister(h.decisions)
	if st.Driver() == "postgres" {
		names := make([]string, 0, len(cfg.Connectors))
		for name := range policies(cfg) {
			names = append(names, name)
		}
		h.cluster = cluster.New(cluster.Options{Store: st, NodeID: cfg.Store.NodeID, Addr: cfg.Server.Listen,
			Connectors: names, LeaseTimeout: cfg.Store.LeaseTimeout, Clock: opt.Clock, Logger: h.log.With("component", "cluster")})
	}
	wa := cfg.WhatsApp
	h.graph = &graphClient{}
	h.graph.c.Store(graph.New(wa.APIURL, wa.AccessToken.Reveal(), nil))
	// The media store before the sender: media messages read their files
	// from it.
	if h.media, err = h.newMedia(); err != nil {
		st.Close()
		lock.Release()
		return nil, err
	}
	h.sender = outbound.New(outbound.Options{
		Store: st,
		Graph: h.graph,
		Media: h.media,
		Policy: outbound.Policy{
			Templates:           st,
			BlockedCountryCodes: wa.BlockedCountryCodes,
			PhoneNumberIDs:      wa.PhoneNumberIDs,
			TemplateCategories:  wa.TemplateCategories,
		},
		Clock:             opt.Clock,
		Logger:            h.log.With("component", "outbound"),
		MessagesPerSecond: wa.MessagesPerSecond,
		PairInterval:      wa.PairInterval,
		PairBurst:         wa.PairBurst,
		Registry:          h.registry,
		Leader:            h.leader(),
		LeaderChanged:     h.leaderChanged(),
	})
	h.sup = supervisor.New(supervisor.Options{
		Executable: opt.Executable,
		Logger:     h.log.With("component", "plugins"),
		Host: func(name string) sdk.Host {
			return &hostAPI{name: name, store: st, sender: h.sender, markRead: wa.MarkReadOnReply, media: h.media}
		},
		Clock: opt.Clock,
	})
	h.templates = &templates.Refresher{
		Fetch:     h.fetchTemplates,
		Store:     st,
		Clock:     opt.Clock,
		Interval:  wa.TemplatesRefresh,
		Logger:    h.log.With("component", "templates"),
		OnRefresh: h.checkTriggerTemplates,
	}
	var dc delivery.Cluster
	if h.cluster != nil {
		dc = h.cluster
	}
	h.engine = delivery.New(delivery.Options{
		Store:      st,
		Cluster:    dc,
		Connectors: plugins{h.sup},
		Decide:     h.decide,
		Prepare:    h.media.Prepare,
		Policies:   policies(cfg),
		Clock:      opt.Clock,
		Logger:     h.log.With("component", "delivery"),
		Metrics:    delivery.NewMetrics(h.registry),
	})
	if h.handler, err = h.routes(); err != nil {
		h.media.Close()
		st.Close()
		return nil, err
	}
	return h, nil
}

// OpenStore opens the store the configuration names: the SQLite file, or
// the PostgreSQL database.
func OpenStore(cfg *config.Config, opt store.Options, log *slog.Logger) (*store.Store, error) {
	if cfg.Store.Driver == "postgres" {
		return store.OpenPostgres(cfg.Store.URL.Reveal(), opt, store.PostgresOptions{Logger: log})
	}
	return store.Open(cfg.Store.Path, opt)
}

// leader is the sender's and the periodic jobs' view of the leader lease;
// nil on SQLite, where this hub is the only one.
func (h *Hub) leader() func() (store.Lease, time.Time, bool) {
	if h.cluster == nil {
		return nil
	}
	return h.cluster.Leader
}

func (h *Hub) leaderChanged() func() <-chan struct{} {
	if h.cluster == nil {
		return nil
	}
	return h.cluster.Changed
}

// isLeader reports whether this hub runs the periodic jobs.
func (h *Hub) isLeader() bool { return h.cluster == nil || h.cluster.IsLeader() }

// Store is the hub's store, for commands that read it directly.
func (h *Hub) Store() *store.Store { return h.store }

// Handler is the hub's whole HTTP surface.
func (h *Hub) Handler() http.Handler { return h.handler }

func (h *Hub) routes() (http.Handler, error) {
	secrets := make([][]byte, 0, len(h.cfg.WhatsApp.AppSecret))
	for _, s := range h.cfg.WhatsApp.AppSecret {
		secrets = append(secrets, []byte(s.Reveal()))
	}
	mux := http.NewServeMux()
	if h.cfg.Sandbox {
		mux.HandleFunc("/sandbox", h.serveSandbox)
		mux.HandleFunc("/sandbox/", h.serveSandbox)
	}
	mux.Handle("/webhooks/whatsapp", &ingest.Handler{
		Secrets:     secrets,
		VerifyToken: h.cfg.WhatsApp.VerifyToken.Reveal(),
		MaxBody:     int64(h.cfg.Server.MaxBodyBytes),
		Log:         h.store,
		Now:         h.clock.Now,
		Logger:      h.log.With("component", "ingest"),
		Metrics:     ingest.NewMetrics(h.registry),
	})
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("POST /hooks/{connector}", h.hook)
	mux.Handle("/api/v1/", admin.New(admin.Options{
		Token:  h.cfg.Server.AdminToken.Reveal(),
		Store:  h.store,
		Ops:    ops{h},
		Media:  h.media,
		Logger: h.log.With("component", "admin"),
	}))
	// Operators' endpoints: on the public listener unless
	// server.metrics_listen gives them one of their own. /readyz names
	// failing connectors and their errors; /metrics shows traffic.
	opsMux := mux
	if h.cfg.Server.MetricsListen != "" {
		opsMux = http.NewServeMux()
		opsMux.HandleFunc("GET /healthz", healthz)
		h.opsHandler = opsMux
	}
	opsMux.HandleFunc("GET /readyz", h.ready)
	opsMux.Handle("GET /metrics", promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{Registry: h.registry}))
	con, err := h.newConsole()
	if err != nil {
		return nil, err
	}
	mux.Handle("/console", con)
	mux.Handle("/console/", con)
	if h.cfg.Sandbox && !h.cfg.SandboxPublic {
		return loopbackOnly(mux, h.log), nil
	}
	return mux, nil
}

func healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// loopbackOnly answers only requests addressed to a loopback name. The
// sandbox's fakes and its admin token are public, and it listens on
// loopback; a web page elsewhere could still reach it through DNS
// rebinding (a name of the attacker's that resolves to 127.0.0.1), and
// the browser then sends that name as Host.
func loopbackOnly(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			log.Info("sandbox: refused a request for a host that is not loopback", "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
			admin.WriteError(w, http.StatusMisdirectedRequest, "not_loopback",
				"the sandbox answers only requests to localhost, 127.0.0.1 or [::1]; Host "+strconv.QuoteToASCII(r.Host)+" is not one (set sandbox_public: true to expose it)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost, 127.0.0.0/8 or ::1, with or without a port. An
// empty Host (HTTP/1.0) carries no name to rebind.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ready reports whether the hub can do its work: the store takes commits
// (and, once connectors run out of process, each enabled one is running).
func (h *Hub) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if err := h.store.Ping(ctx); err != nil {
		checks["store"] = err.Error()
		ok = false
	} else {
		checks["store"] = "ok"
	}
	for _, st := range h.sup.Statuses() {
		if st.State == supervisor.StateRunning {
			checks["connector:"+st.Name] = "ok"
			continue
		}
		msg := st.State
		if st.LastError != "" {
			msg += ": " + st.LastError
		}
		checks["connector:"+st.Name] = msg
		ok = false
	}
	status, code := "ready", http.StatusOK
	if !ok {
		status, code = "not ready", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": checks})
}

// Run serves until ctx ends, then stops taking requests, lets in-flight ones
// finish (each waits for its commit) and closes the store. ready, if not
// nil, receives the address the hub listens on.
func (h *Hub) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", h.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another wahub running? set server.listen)", h.cfg.Server.Listen, err)
	}
	srv := h.server(h.handler)
	if h.opsHandler != nil {
		mln, err := net.Listen("tcp", h.cfg.Server.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w (set server.metrics_listen)", h.cfg.Server.MetricsListen, err)
		}
		msrv := h.server(h.opsHandler)
		go msrv.Serve(mln)
		defer msrv.Close()
		h.log.Info("metrics listening", "addr", mln.Addr().String(), "paths", "/metrics /readyz /healthz")
	}
	if h.cfg.Sandbox {
		if err := h.startSandbox(ln.Addr().String()); err != nil {
			ln.Close()
			return err
		}
		defer h.sandbox.Load().Close()
	}
	h.addr.Store(ln.Addr().String())
	if h.cluster != nil {
		h.cluster.SetAddr(ln.Addr().String())
	}
	h.log.Info("wahub listening", "addr", ln.Addr().String(), "store", h.store.Path(), "driver", h.store.Driver())
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() {
		if c := h.cfg.Server; c.TLSCert != "" && c.TLSKey != "" {
			errc <- srv.ServeTLS(ln, c.TLSCert, c.TLSKey)
			return
		}
		errc <- srv.Serve(ln)
	}()

	// Plugins start while the webhook already takes events: ingest never
	// waits on a connector.
	bg, stopBG := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		h.sup.Start(bg, h.specs)
		close(started)
	}()
	select {
	case <-started:
	case <-ctx.Done():
		// Stopped while plugins start: end the launches now rather than
		// wait for every one of them, and stop as usual.
		stopBG()
		<-started
		h.sup.Stop()
		return h.shutdown(srv, errc)
	}
	// tasks owns every background task of the hub: each is started here,
	// and none outlives Run (the store closes after it).
	var tasks sync.WaitGroup
	var leader func() bool
	if h.cluster != nil {
		h.log.Info("cluster: sharing the store with other hubs", "node", h.cluster.ID(), "lease_timeout", h.cfg.Store.LeaseTimeout.String())
		leader = h.cluster.IsLeader
		tasks.Go(func() { h.cluster.Run(bg) })
	}
	tasks.Go(func() {
		syncer.Run(bg, syncer.Options{Store: h.store, Plugins: plugins{h.sup}, Connectors: enabledConnectors(h.cfg),
			Clock: h.clock, Logger: h.log.With("component", "sync"), Leader: leader})
	})
	fetchMedia := h.mediaFetchable() // before delivery asks the media store to hold events
	tasks.Go(func() { h.engine.Run(bg) })
	tasks.Go(func() { h.sender.Run(bg) })
	if fetchMedia {
		tasks.Go(func() { h.runMedia(bg) })
	}
	if h.cfg.Media.RetentionDays > 0 {
		tasks.Go(func() { h.pruneMedia(bg) })
	}
	if h.cfg.WhatsApp.BusinessAccountID != "" {
		tasks.Go(func() { h.templates.Run(bg) })
	} else {
		h.log.Info("templates: whatsapp.business_account_id is not set; the template catalogue is built from template webhooks only")
	}
	if days := h.cfg.Store.RetentionDays; days > 0 {
		tasks.Go(func() { h.prune(bg, time.Duration(days)*24*time.Hour) })
	}
	defer func() {
		stopBG()
		tasks.Wait()
		// Plugins last: the engine's batches in flight end first.
		h.sup.Stop()
	}()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return h.shutdown(srv, errc)
}

// server is an http.Server with the hub's timeouts: a slow client can
// hold a connection for at most ReadTimeout while sending and
// server.write_timeout while (not) reading the answer.
func (h *Hub) server(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      h.cfg.Server.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelWarn),
	}
}

// shutdown stops taking requests and lets those in flight finish.
func (h *Hub) shutdown(srv *http.Server, errc <-chan error) error {
	h.log.Info("shutting down: finishing in-flight requests", "timeout", h.cfg.Server.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), h.cfg.Server.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		h.log.Warn("shutdown timeout: closing remaining connections")
		srv.Close()
		err = nil
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// prune deletes settled events older than keep, now and then every six
// hours.
func (h *Hub) prune(ctx context.Context, keep time.Duration) {
	for {
		for !h.isLeader() {
			// Another hub prunes; take over when it goes.
			select {
			case <-h.cluster.Changed():
			case <-ctx.Done():
				return
			}
		}
		n, err := h.store.Prune(ctx, h.clock.Now().Add(-keep))
		if err != nil && ctx.Err() == nil {
			h.log.Error("retention: pruning old events failed", "err", err)
		} else if n > 0 {
			h.log.Info("retention: pruned settled events", "events", n, "older_than", keep.String())
		}
		select {
		case <-h.clock.After(6 * time.Hour):
		case <-ctx.Done():
			return
		}
	}
}

// startSandbox starts the fakes and points every unset api_url, token and
// secret at them.
func (h *Hub) startSandbox(addr string) error {
	base := "http://" + addr
	secret := ""
	if len(h.cfg.WhatsApp.AppSecret) > 0 {
		secret = h.cfg.WhatsApp.AppSecret[0].Reveal()
	}
	sb := sandbox.New(base, secret)
	sb.Apply(h.cfg)
	specs, err := specs(h.cfg)
	if err != nil {
		sb.Close()
		return err
	}
	h.specs = specs
	wa := h.cfg.WhatsApp
	h.graph.c.Store(graph.New(wa.APIURL, wa.AccessToken.Reveal(), nil))
	h.sandbox.Store(sb)
	h.log.Warn("sandbox: external APIs are fakes served by this hub; see GET /sandbox", "url", base+"/sandbox")
	return nil
}

func (h *Hub) serveSandbox(w http.ResponseWriter, r *http.Request) {
	sb := h.sandbox.Load()
	if sb == nil {
		http.Error(w, "sandbox starting", http.StatusServiceUnavailable)
		return
	}
	sb.Handler().ServeHTTP(w, r)
}

// Close commits what is queued, closes the store and gives up its lock.
func (h *Hub) Close() error {
	h.media.Close()
	err := h.store.Close()
	return errors.Join(err, h.lock.Release())
}
