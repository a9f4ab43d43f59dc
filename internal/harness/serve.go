package harness

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/serve"
)

// Serve starts `shadowlab serve` in this process until Stop (or the lab's
// stop). It retries for a few seconds while an address is still in use: a
// serve just stopped may hold the ports a restart takes over.
func (l *Lab) Serve(ctx context.Context, cfg serve.Config, log *zap.Logger) (*serve.Instance, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		in, err := serve.Start(ctx, cfg, log)
		if err == nil {
			l.OnStop(in.Stop)
			return in, nil
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ServeProc starts bin/shadowlab serve as a process (BuildShadowlab) on
// cfg's policy, addresses, plugin (default BuildPlugin's) and database (""
// keeps results in memory), and waits until its API answers /healthz.
func (l *Lab) ServeProc(ctx context.Context, cfg serve.Config) (*Proc, error) {
	bin, err := BuildShadowlab()
	if err != nil {
		return nil, err
	}
	return l.ServeProcBin(ctx, bin, cfg)
}

// ServeProcBin is ServeProc with the shadowlab binary bin (another build,
// say of an earlier commit, to measure it side by side).
func (l *Lab) ServeProcBin(ctx context.Context, bin string, cfg serve.Config) (*Proc, error) {
	var err error
	if cfg.WasmPath == "" {
		if cfg.WasmPath, err = BuildPlugin(); err != nil {
			return nil, err
		}
	}
	args := []string{"serve", "--policy", cfg.PolicyPath, "--xds-address", cfg.XDSAddress,
		"--gateway-address", cfg.GatewayAddress,
		"--api-address", cfg.APIAddress, "--admission-address", cfg.AdmissionAddress,
		"--wasm", cfg.WasmPath, "--db", cfg.Report.DBPath, "--log-format", "console", "--log-level", "warn"}
	if cfg.Pairer.Grace > 0 {
		args = append(args, "--pair-grace", cfg.Pairer.Grace.String())
	}
	if cfg.Gateway.MaxBufferedBytes > 0 {
		args = append(args, "--gateway-max-buffered", strconv.FormatInt(cfg.Gateway.MaxBufferedBytes, 10))
	}
	if cfg.AdmissionRedis.URL != "" {
		args = append(args, "--admission-redis", cfg.AdmissionRedis.URL)
	}
	p, err := l.Start(l.name("serve"), bin, args...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := WaitHTTP(ctx, "http://"+cfg.APIAddress+"/healthz", func(r *http.Response) bool { return r.StatusCode == http.StatusOK }); err != nil {
		return nil, fmt.Errorf("serve never answered: %w\n%s", err, tail(p.Logs(), 60))
	}
	return p, nil
}

// Backend starts an example service in this process on a random loopback
// port.
func (l *Lab) Backend(name string, opts ...backend.Option) (*backend.Server, error) {
	b := backend.New(name, opts...)
	if err := b.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	l.OnStop(func() { _ = b.Close() })
	return b, nil
}

// BackendProc starts the example service as a process (BuildBackend) with
// args after -name and returns its address.
func (l *Lab) BackendProc(ctx context.Context, name string, args ...string) (string, error) {
	bin, err := BuildBackend()
	if err != nil {
		return "", err
	}
	p, err := l.Start(name, bin, append([]string{"-name", name, "-addr", "127.0.0.1:0"}, args...)...)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	line, err := p.FirstLine(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		return "", fmt.Errorf("%s printed %q, not its address", name, line)
	}
	return addr, nil
}
