// Package serve is the `shadowlab serve` process: the xDS control plane, the
// ext_proc capture server and the report API on their own ports, wired to
// one policy file. cmd/shadowlab runs it; the end-to-end tests start and
// stop it in-process.
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/shadowlab/shadowlab/extproc"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/xds"
)

// Config is what `shadowlab serve` is told.
type Config struct {
	PolicyPath     string
	XDSAddress     string // listen address of the xDS (ADS) server
	ExtProcAddress string // listen address of the capture (ext_proc) server; "" disables capture
	// ExtProcAdvertise is the address Envoy dials for capture; default
	// ExtProcAddress, with an unspecified host (0.0.0.0, ::) as 127.0.0.1.
	ExtProcAdvertise string
	APIAddress       string // listen address of the report API and /metrics; "" disables it
	// APIAdvertise is the address Envoy dials for the API (the admission
	// plugin's code and reports); default as ExtProcAdvertise.
	APIAdvertise string
	// AdmissionAddress is the listen address of the global admission
	// (ext_proc) server; "" disables global admission.
	AdmissionAddress   string
	AdmissionAdvertise string // default as ExtProcAdvertise
	Admitter           extproc.AdmitterConfig
	// WasmPath is the admission plugin (bin/shadowlab.wasm). Envoy fetches
	// it from the API (checked by SHA-256), or reads this path itself when
	// the API is off. "" looks for shadowlab.wasm beside the executable,
	// then bin/shadowlab.wasm; not found, local admission is refused.
	WasmPath string
	Report   report.Config
	Pairer   extproc.PairerConfig
}

// Instance is a running serve.
type Instance struct {
	XDS      *xds.Server
	Reporter *report.Reporter
	Pairer   *extproc.Pairer
	Admitter *extproc.Admitter // nil when global admission is off

	// Bound addresses (useful with port 0).
	XDSAddr, ExtProcAddr, APIAddr, AdmissionAddr string

	cancel  context.CancelFunc
	done    chan struct{}
	errOnce sync.Once
	err     error
}

// Start listens on every configured port (so a busy port fails at once),
// loads and publishes the policy, and serves until ctx is done or Stop. A
// policy that does not load fails Start: serve never starts on a broken
// file.
func Start(ctx context.Context, cfg Config, log *zap.Logger) (*Instance, error) {
	in := &Instance{done: make(chan struct{})}
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	listen := func(what, addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		listeners = append(listeners, l)
		return l, nil
	}

	xdsLis, err := listen("xds address", cfg.XDSAddress)
	if err != nil {
		return nil, err
	}
	in.XDSAddr = xdsLis.Addr().String()
	var extLis, apiLis net.Listener
	var opts xds.Options
	if cfg.ExtProcAddress != "" {
		if extLis, err = listen("ext_proc address", cfg.ExtProcAddress); err != nil {
			return nil, err
		}
		in.ExtProcAddr = extLis.Addr().String()
		opts.ExtProcAddress = advertise(cfg.ExtProcAdvertise, in.ExtProcAddr)
	}
	if cfg.APIAddress != "" {
		if apiLis, err = listen("api address", cfg.APIAddress); err != nil {
			return nil, err
		}
		in.APIAddr = apiLis.Addr().String()
		opts.APIAddress = advertise(cfg.APIAdvertise, in.APIAddr)
	}
	var admLis net.Listener
	if cfg.AdmissionAddress != "" {
		if admLis, err = listen("admission address", cfg.AdmissionAddress); err != nil {
			return nil, err
		}
		in.AdmissionAddr = admLis.Addr().String()
		opts.AdmissionAddress = advertise(cfg.AdmissionAdvertise, in.AdmissionAddr)
	}
	wasm, err := loadWasm(cfg.WasmPath)
	if err != nil {
		closeAll()
		return nil, err
	}
	if wasm != nil {
		opts.Wasm = xds.WasmCode{SHA256: wasm.sha256}
		if apiLis == nil {
			opts.Wasm = xds.WasmCode{Filename: wasm.path}
		}
		log.Info("admission plugin", zap.String("path", wasm.path), zap.String("sha256", wasm.sha256), zap.Int("bytes", len(wasm.code)))
	}

	in.Reporter, err = report.New(cfg.Report, log.Named("report"))
	if err != nil {
		closeAll()
		return nil, err
	}
	in.XDS = xds.NewServer(opts, log.Named("xds"))
	in.Pairer, err = extproc.NewPairer(cfg.Pairer, in.XDS.Policy, in.Reporter, time.Now, in.Reporter.Registry(), log.Named("pairer"))
	if err != nil {
		closeAll()
		_ = in.Reporter.Close()
		return nil, err
	}
	if err := in.XDS.RegisterMetrics(in.Reporter.Registry()); err != nil {
		closeAll()
		_ = in.Reporter.Close()
		return nil, err
	}

	ctx, in.cancel = context.WithCancel(ctx)
	published := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		err := xds.WatchPolicy(ctx, cfg.PolicyPath, notifyFirst{in.XDS, published}, log.Named("policy"))
		select {
		case published <- err: // first load failed
		default:
		}
		in.fail(err)
	})
	wg.Go(func() { in.fail(in.XDS.Serve(ctx, xdsLis)) })
	if extLis != nil {
		g := grpc.NewServer(
			grpc.MaxConcurrentStreams(100_000),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		)
		extproc.NewServer(in.XDS.Policy, in.Pairer, time.Now, log.Named("extproc")).Register(g)
		wg.Go(func() { in.Pairer.Run(ctx) })
		wg.Go(func() { in.fail(serveGRPC(ctx, g, extLis)) })
	}
	if admLis != nil {
		in.Admitter, err = extproc.NewAdmitter(cfg.Admitter, in.XDS.Policy, in.Reporter, time.Now, nil, log.Named("admission"))
		if err != nil {
			in.cancel()
			closeAll()
			wg.Wait()
			_ = in.Reporter.Close()
			return nil, err
		}
		g := grpc.NewServer(
			grpc.MaxConcurrentStreams(100_000),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		)
		in.Admitter.Register(g)
		held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shadowlab_admission_held",
			Help: "Requests the global admission server holds now.",
		}, func() float64 { return float64(in.Admitter.Held()) })
		if err := in.Reporter.Registry().Register(held); err != nil {
			in.fail(err)
		}
		wg.Go(func() { in.fail(serveGRPC(ctx, g, admLis)) })
	}
	if apiLis != nil {
		srv := &http.Server{Handler: apiHandler(in.Reporter.Handler(), wasm), ReadHeaderTimeout: 5 * time.Second}
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
		wg.Go(func() {
			if err := srv.Serve(apiLis); !errors.Is(err, http.ErrServerClosed) {
				in.fail(err)
			}
		})
	}
	go func() {
		wg.Wait()
		in.fail(in.Reporter.Close())
		close(in.done)
	}()

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
	log.Info("serving", zap.String("xds", in.XDSAddr), zap.String("ext_proc", in.ExtProcAddr),
		zap.String("admission", in.AdmissionAddr), zap.String("api", in.APIAddr), zap.String("policy", cfg.PolicyPath))
	return in, nil
}

// fail records the first error and stops everything.
func (in *Instance) fail(err error) {
	if err == nil {
		return
	}
	in.errOnce.Do(func() { in.err = err })
	in.cancel()
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

// notifyFirst passes publishes through and signals the first success.
type notifyFirst struct {
	*xds.Server
	ch chan error
}

func (n notifyFirst) Publish(ctx context.Context, p *policy.Policy) (string, error) {
	v, err := n.Server.Publish(ctx, p)
	if err == nil {
		select {
		case n.ch <- nil:
		default:
		}
	}
	return v, err
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

// advertise is the address Envoy should dial for a server bound to bound.
func advertise(explicit, bound string) string {
	if explicit != "" {
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
