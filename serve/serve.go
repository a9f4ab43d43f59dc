// Package serve is the `shadowlab serve` process: the xDS control plane, the
// shadow gateway, the global admission server and the report API (which
// also takes the plugin's capture batches) on their own ports, wired to one policy file. cmd/shadowlab runs it; the
// end-to-end tests start and stop it in-process.
//
// Start builds every component first (listening on every port, so a busy
// port fails at once, and nothing runs yet), then runs them all under one
// group with one shutdown path: the first to fail, or Stop, stops them all,
// and the report store is flushed and closed last.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/shadowlab/shadowlab/budget"
	"github.com/shadowlab/shadowlab/extproc"
	"github.com/shadowlab/shadowlab/fallback"
	"github.com/shadowlab/shadowlab/gateway"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// Config is what `shadowlab serve` is told.
type Config struct {
	PolicyPath string
	// XDSAddress is the listen address of the xDS (ADS) server; "" runs
	// serve for a mesh whose control plane programs Envoy (`shadowlab
	// render`): capture, gateway, admission and reports only. The policy
	// is still translated on every load, as a check.
	XDSAddress string
	// GatewayAddress is the listen address of the shadow gateway, where
	// Envoy mirrors to; "" turns capture off (Envoy mirrors straight to the
	// shadow services and nothing is compared).
	GatewayAddress string
	// GatewayAdvertise is the address Envoy dials for the gateway; default
	// GatewayAddress, with an unspecified host (0.0.0.0, ::) as 127.0.0.1.
	GatewayAdvertise string
	Gateway          gateway.Config
	APIAddress       string // listen address of the report API and /metrics; "" disables it
	// APIAdvertise is the address Envoy dials for the API (the admission
	// plugin's code and reports); default as GatewayAdvertise.
	APIAdvertise string
	// AdmissionAddress is the listen address of the global admission
	// (ext_proc) server; "" disables global admission.
	AdmissionAddress   string
	AdmissionAdvertise string // default as GatewayAdvertise
	Admitter           extproc.AdmitterConfig
	// AdmissionRedis, with a URL, keeps the global admission budgets in
	// Redis, shared by every serve replica that uses it; without, they
	// live in this process.
	AdmissionRedis budget.Config
	// WasmPath is the admission plugin (bin/shadowlab.wasm). Envoy fetches
	// it from the API (checked by SHA-256), or reads this path itself when
	// the API is off. "" looks for shadowlab.wasm beside the executable,
	// then bin/shadowlab.wasm; not found, local admission is refused.
	WasmPath string
	Report   report.Config
	Pairer   pair.Config
	// Credentials authenticate the ports' peers (auth.go); none: plain
	// ports, on loopback only.
	Credentials Credentials
	// ScopeAt is xds.Options.ScopeAt: the route count from which a
	// listener whose routes allow it is split by first path segment (0:
	// xds.DefaultScopeAt; negative: never).
	ScopeAt int
}

// Instance is a running serve.
type Instance struct {
	XDS      *xds.Server
	Reporter *report.Reporter
	Pairer   *pair.Pairer
	Gateway  *gateway.Gateway  // nil when the gateway is off
	Admitter *extproc.Admitter // nil when global admission is off

	// Bound addresses (useful with port 0); "" for a part that is off.
	XDSAddr, GatewayAddr, APIAddr, AdmissionAddr string

	cfg       Config
	log       *zap.Logger
	listeners []net.Listener
	servers   []func(ctx context.Context) error // each serves until ctx is done

	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	doneOnce sync.Once
	err      error
	ready    chan struct{} // closed once the first policy is published

	shared *budget.Store // the Redis-backed budgets; nil: in process

	gwMu  sync.Mutex
	gwSrv *http.Server // the gateway's server now

	sec *security
}

// Start builds every component, runs them, and returns once the policy is
// published. A port that cannot be bound, or a policy that does not load,
// fails Start and leaves nothing behind: serve never starts on a broken
// file.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Instance, error) {
	in := &Instance{cfg: cfg, log: log, done: make(chan struct{}), ready: make(chan struct{})}
	published := make(chan error, 1)
	if err := in.build(published); err != nil {
		in.close()
		return nil, err
	}
	in.run(ctx)
	select {
	case err := <-published:
		if err != nil {
			in.Stop()
			return nil, err
		}
	case <-time.After(30 * time.Second):
		in.Stop()
		return nil, errors.New("policy was not published within 30s")
	}
	fields := []zap.Field{zap.String("xds", in.XDSAddr), zap.String("gateway", in.GatewayAddr),
		zap.String("admission", in.AdmissionAddr), zap.String("api", in.APIAddr), zap.String("policy", cfg.PolicyPath)}
	if in.APIAddr != "" {
		scheme := "http"
		if in.sec != nil && in.sec.tls != nil {
			scheme = "https"
		}
		fields = append(fields, zap.String("page", scheme+"://"+in.APIAddr+"/ui/"))
	}
	log.Info("serving", fields...)
	return in, nil
}

// build listens on every configured port and constructs every component,
// without starting anything. On error, close releases what it made.
func (in *Instance) build(published chan<- error) error {
	cfg, log := in.cfg, in.log
	var opts xds.Options
	var err error
	if in.sec, err = newSecurity(cfg, log.Named("auth")); err != nil {
		return err
	}
	xdsLis, err := in.listen("xds address", cfg.XDSAddress, &in.XDSAddr)
	if err != nil {
		return err
	}
	gwLis, err := in.listen("gateway address", cfg.GatewayAddress, &in.GatewayAddr)
	if err != nil {
		return err
	}
	apiLis, err := in.listen("api address", cfg.APIAddress, &in.APIAddr)
	if err != nil {
		return err
	}
	admLis, err := in.listen("admission address", cfg.AdmissionAddress, &in.AdmissionAddr)
	if err != nil {
		return err
	}
	opts.ScopeAt = cfg.ScopeAt
	opts.GatewayAddress = advertise(cfg.GatewayAdvertise, in.GatewayAddr)
	opts.APIAddress = advertise(cfg.APIAdvertise, in.APIAddr)
	opts.AdmissionAddress = advertise(cfg.AdmissionAdvertise, in.AdmissionAddr)
	opts.TLS = in.secure(&xdsLis, &gwLis, &admLis, &apiLis)

	wasm, err := loadWasm(cfg.WasmPath)
	if err != nil {
		return err
	}
	if wasm != nil {
		opts.Wasm = xds.WasmCode{SHA256: wasm.sha256}
		if apiLis == nil {
			opts.Wasm = xds.WasmCode{Filename: wasm.path}
		}
		log.Info("admission plugin", zap.String("path", wasm.path), zap.String("sha256", wasm.sha256), zap.Int("bytes", len(wasm.code)))
	}

	if in.Reporter, err = report.New(cfg.Report, log.Named("report")); err != nil {
		return err
	}
	reg := in.Reporter.Registry()
	in.XDS = xds.NewServer(opts, log.Named("xds"))
	if err := in.XDS.RegisterMetrics(reg); err != nil {
		return err
	}
	if in.Pairer, err = pair.New(cfg.Pairer, in.Reporter, time.Now, reg, log.Named("pairer")); err != nil {
		return err
	}
	pub := &publisher{Server: in.XDS, first: published, ready: in.ready,
		use: []func(*policy.Policy){in.Pairer.Use, in.Reporter.UseLocalAdmission, in.Reporter.UseRollout, in.Reporter.UsePolicy}}
	fallbacks := fallback.New(in.Reporter, time.Now, log.Named("fallback"))
	pub.use = append(pub.use, fallbacks.Use)
	in.XDS.Also(fallbacks.Register)
	in.servers = append(in.servers, in.autoRollback(reg))

	in.servers = append(in.servers,
		func(ctx context.Context) error {
			err := xds.WatchPolicy(ctx, cfg.PolicyPath, pub, log.Named("policy"))
			pub.fail(err) // the first load failed: Start reports it
			return err
		},
	)
	if xdsLis != nil {
		in.servers = append(in.servers, func(ctx context.Context) error { return in.XDS.Serve(ctx, xdsLis) })
	}
	if gwLis != nil {
		in.servers = append(in.servers, func(ctx context.Context) error { in.Pairer.Run(ctx); return nil })
		gcfg := cfg.Gateway
		gcfg.Unmarked = xdsLis == nil // a mesh's control plane programs Envoy: its mirrors carry no marks
		if in.Gateway, err = gateway.New(gcfg, in.Pairer, time.Now, reg, log.Named("gateway")); err != nil {
			return err
		}
		pub.use = append(pub.use, in.Gateway.Use)
		srv := in.gatewayServer()
		in.servers = append(in.servers, in.afterPolicy(func(ctx context.Context) error { return serveHTTP(ctx, srv, gwLis) }))
	}
	if cfg.AdmissionRedis.URL != "" && admLis == nil {
		return errors.New("admission redis: set, but global admission is off (--admission-address is empty)")
	}
	if admLis != nil {
		acfg := cfg.Admitter
		if cfg.AdmissionRedis.URL != "" {
			if acfg.Shared, err = in.openShared(reg); err != nil {
				return err
			}
		}
		if in.Admitter, err = extproc.NewAdmitter(acfg, in.Reporter, time.Now, nil, log.Named("admission")); err != nil {
			return err
		}
		pub.use = append(pub.use, in.Admitter.Use)
		held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shadowlab_admission_held",
			Help: "Requests the global admission server holds now.",
		}, func() float64 { return float64(in.Admitter.Held()) })
		if err := reg.Register(held); err != nil {
			return err
		}
		g := newGRPCServer()
		in.Admitter.Register(g)
		in.servers = append(in.servers, in.afterPolicy(func(ctx context.Context) error { return serveGRPC(ctx, g, admLis) }))
	}
	if apiLis != nil {
		srv := apiServer(in.gateReports(apiHandler(in.Reporter.Handler(), wasm, in.Pairer.CaptureHandler())))
		if err := in.sec.guard(srv, reg); err != nil {
			return err
		}
		in.servers = append(in.servers, func(ctx context.Context) error { return serveHTTP(ctx, srv, apiLis) })
	}
	return nil
}

// openShared opens the Redis that keeps the global budgets and exports its
// counters. Redis need not be up: until it answers, global admission fails
// open (a warning says so now).
func (in *Instance) openShared(reg prometheus.Registerer) (*budget.Store, error) {
	s, err := budget.Open(in.cfg.AdmissionRedis, in.log.Named("budget"))
	if err != nil {
		return nil, err
	}
	in.shared = s
	if err := s.Warm(context.Background()); err != nil {
		in.log.Warn("admission redis does not answer yet: global admission passes requests unchecked until it does", zap.Error(err))
	}
	counter := func(name, help string, v func(budget.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(s.Stats())) })
	}
	for _, c := range []prometheus.Collector{
		counter("shadowlab_admission_redis_decisions_total", "Global admission decisions and releases asked of the shared budget in Redis.",
			func(st budget.Stats) uint64 { return st.Decisions }),
		counter("shadowlab_admission_redis_round_trips_total", "Compare-and-swaps sent to Redis (one per decision when uncontended).",
			func(st budget.Stats) uint64 { return st.RoundTrips }),
		counter("shadowlab_admission_redis_conflicts_total", "Compare-and-swaps lost to another replica: decided again from Redis's State.",
			func(st budget.Stats) uint64 { return st.Conflicts }),
		counter("shadowlab_admission_redis_failures_total", "Decisions or releases Redis failed (down, slow, refusing): the request passed unchecked.",
			func(st budget.Stats) uint64 { return st.Failures }),
		counter("shadowlab_admission_redis_skipped_total", "Decisions or releases not asked while Redis was known down: the request passed unchecked.",
			func(st budget.Stats) uint64 { return st.Skipped }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (in *Instance) gatewayServer() *http.Server {
	in.gwMu.Lock()
	defer in.gwMu.Unlock()
	in.gwSrv = &http.Server{
		Handler:           in.Gateway,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       gatewayReadTimeout,
		IdleTimeout:       5 * time.Minute, // Envoy keeps its mirror connections
		MaxHeaderBytes:    gatewayMaxHeaderBytes,
	}
	return in.gwSrv
}

// Bounds of every HTTP server serve runs, against slow or hostile peers:
// a request's header must arrive within readHeaderTimeout, its whole body
// within the read timeout (a peer trickling bytes is cut off), and an idle
// connection is closed after the idle timeout.
const (
	readHeaderTimeout = 5 * time.Second
	// apiReadTimeout covers the largest body the API takes (a 16 MiB
	// capture batch) on any link Envoy reaches serve over.
	apiReadTimeout  = 30 * time.Second
	apiWriteTimeout = time.Minute // a /metrics scrape or a report
	apiIdleTimeout  = 2 * time.Minute
	// apiMaxHeaderBytes: the plugin and report clients send a few headers.
	apiMaxHeaderBytes = 64 << 10
	// gatewayReadTimeout: Envoy sends a mirrored body at once; it is at
	// most shadow.maxRequestBytes.
	gatewayReadTimeout = 30 * time.Second
	// gatewayMaxHeaderBytes is above Envoy's default request header limit
	// (60 KiB), so every request Envoy takes can be mirrored.
	gatewayMaxHeaderBytes = 128 << 10
)

// apiServer is the report API's server.
func apiServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
	}
}

// afterPolicy runs serve only once the first policy is published: the
// port is bound early (a busy port fails Start at once) but accepts
// nothing before the routes are known, so halves and admission requests
// arriving right after a restart wait in the listen backlog instead of
// being dropped as unknown.
func (in *Instance) afterPolicy(serve func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-in.ready:
			return serve(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

// gateReports holds the API's data endpoints (the plugin's capture
// batches and admission reports) until the first policy is published, as
// afterPolicy does for whole ports, and answers GET /readyz: 200 once the
// policy is published and the store answers, else 503 with the reason.
// The rest of the API serves at once.
func (in *Instance) gateReports(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/readyz":
			in.serveReady(w, req)
			return
		case req.Method == http.MethodPost && (req.URL.Path == wire.CapturePath || req.URL.Path == wire.ReportPath):
			select {
			case <-in.ready:
			case <-req.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, req)
	})
}

func (in *Instance) serveReady(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	select {
	case <-in.ready:
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"not ready","reason":"no policy published yet"}` + "\n"))
		return
	}
	if err := in.Reporter.Ready(req.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		b, _ := json.Marshal(map[string]string{"status": "not ready", "reason": err.Error()})
		_, _ = w.Write(append(b, '\n'))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
}

// KillGateway closes the gateway's port and every connection on it at
// once, as a crash would; RestartGateway listens again on the same
// address. For fault tests: the rest of serve goes on.
func (in *Instance) KillGateway() error {
	in.gwMu.Lock()
	defer in.gwMu.Unlock()
	if in.gwSrv == nil {
		return errors.New("no gateway")
	}
	return in.gwSrv.Close()
}

// RestartGateway serves the gateway again after KillGateway.
func (in *Instance) RestartGateway() error {
	l, err := net.Listen("tcp", in.GatewayAddr)
	if err != nil {
		return err
	}
	l = in.sec.wrap(l, false, "http/1.1")
	srv := in.gatewayServer()
	go func() { _ = serveHTTP(in.ctx, srv, l) }()
	return nil
}

// listen binds addr for what, unless addr is "" (that part is off: nil,
// nil), and records the bound address in bound.
func (in *Instance) listen(what, addr string, bound *string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	in.listeners = append(in.listeners, l)
	*bound = l.Addr().String()
	return l, nil
}

// close releases what build made when Start does not run it.
func (in *Instance) close() {
	for _, l := range in.listeners {
		_ = l.Close()
	}
	if in.shared != nil {
		_ = in.shared.Close()
	}
	if in.Reporter != nil {
		_ = in.Reporter.Close()
	}
}

// run starts every server under one group: the first error (or Stop)
// cancels the others; when all have returned, the report is flushed and
// closed and Wait returns.
func (in *Instance) run(ctx context.Context) {
	ctx, in.cancel = context.WithCancel(ctx)
	in.ctx = ctx
	g, gctx := errgroup.WithContext(ctx)
	for _, serve := range in.servers {
		g.Go(func() error { return serve(gctx) })
	}
	go func() {
		err := g.Wait()
		for _, l := range in.listeners { // those afterPolicy never served
			_ = l.Close()
		}
		if in.shared != nil {
			_ = in.shared.Close()
		}
		in.finish(errors.Join(err, in.Reporter.Close()))
	}()
	go in.boundShutdown(gctx)
}

// stopTimeout bounds a shutdown: the HTTP servers give requests
// shutdownGrace and then close every connection, gRPC servers stop at
// once, and the store's last flush waits at most its busy timeout (5s);
// should anything still hang, Stop and Wait return after stopTimeout with
// an error (the process then exits, which ends the rest).
const stopTimeout = 10 * time.Second

// boundShutdown ends Stop and Wait stopTimeout after ctx is done.
func (in *Instance) boundShutdown(ctx context.Context) {
	<-ctx.Done()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-in.done:
	case <-t.C:
		in.log.Error("shutdown did not complete; returning anyway", zap.Duration("after", stopTimeout))
		in.finish(fmt.Errorf("shutdown did not complete within %v", stopTimeout))
	}
}

// finish records err and ends Stop and Wait, once.
func (in *Instance) finish(err error) {
	in.doneOnce.Do(func() {
		in.err = err
		close(in.done)
	})
}

// Stop stops every server and waits for them; results are flushed.
func (in *Instance) Stop() {
	in.cancel()
	<-in.done
}

// Wait blocks until the instance stops and returns the first error.
func (in *Instance) Wait() error {
	<-in.done
	return in.err
}

// publisher takes a policy live: Envoy's snapshot first (xds.Server), then
// every component that reads the policy on the data path. It signals the
// first publish, or the failure of the first load, to Start.
type publisher struct {
	*xds.Server
	use   []func(*policy.Policy)
	first chan<- error
	ready chan struct{} // closed after the first publish
	once  sync.Once
}

func (p *publisher) Publish(ctx context.Context, pol *policy.Policy) (string, error) {
	v, err := p.Server.Publish(ctx, pol)
	if err != nil {
		return v, err
	}
	for _, use := range p.use {
		use(pol)
	}
	p.once.Do(func() { close(p.ready) })
	p.fail(nil)
	return v, nil
}

// fail signals the outcome of the first load (nil: published), once.
func (p *publisher) fail(err error) {
	select {
	case p.first <- err:
	default:
	}
}

func newGRPCServer() *grpc.Server {
	return grpc.NewServer(
		grpc.MaxConcurrentStreams(100_000),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
}

func serveGRPC(ctx context.Context, g *grpc.Server, l net.Listener) error {
	go func() {
		<-ctx.Done()
		g.Stop()
	}()
	if err := g.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) && ctx.Err() == nil {
		return err
	}
	return nil
}

// shutdownGrace is how long an HTTP server's requests in progress get to
// finish at shutdown; then every connection is closed, whatever a peer
// holds open.
const shutdownGrace = 2 * time.Second

func serveHTTP(ctx context.Context, srv *http.Server, l net.Listener) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// advertise is the address Envoy should dial for a server bound to bound
// ("" when the server is off).
func advertise(explicit, bound string) string {
	switch {
	case bound == "":
		return ""
	case explicit != "":
		return explicit
	}
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
