package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/serve"
)

// The system under test runs in a child process (this binary, re-executed
// with the argument "sut"): the two example services, the shadow fault
// servers and `shadowlab serve` (control plane, capture server, report).
// The load generator then shares no heap, garbage collector or scheduler
// with what it measures, only the CPUs.

// sutArg is the first argument that makes this binary the system under test.
const sutArg = "sut"

// Route path prefixes; the routes of the policy below.
const (
	pathPlain      = "/plain/"
	pathMirrored   = "/mirrored/"
	pathBlackholed = "/shadow-blackholed/"
	pathSlow       = "/shadow-slow/"
	pathRefused    = "/shadow-refused/"
)

// sutAddrs is what the child tells its parent, as one JSON line on stdout.
type sutAddrs struct {
	Listener string `json:"listener"` // the Envoy listener of the policy
	Legacy   string `json:"legacy"`
	XDS      string `json:"xds"`
	API      string `json:"api"`
	Policy   string `json:"policy"`
}

// sutConfig is the child's command line: sutArg and this as JSON.
type sutConfig struct {
	Dir         string
	Percent     float64
	Faults      bool
	Grace, Slow time.Duration
	Capture     bool
}

// runSUT starts everything, reports the addresses on stdout and serves
// until SIGINT or SIGTERM (the parent's stop; it dies with the parent too).
func runSUT(arg string) error {
	var cfg sutConfig
	if err := json.Unmarshal([]byte(arg), &cfg); err != nil {
		return fmt.Errorf("sut: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	log, err := zc.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()

	lab := harness.New(cfg.Dir)
	defer lab.Stop()
	legacy, err := lab.Backend("legacy", backend.WithAPI(backend.API{}))
	if err != nil {
		return err
	}
	candidate, err := lab.Backend("candidate", backend.WithAPI(backend.API{Candidate: true}))
	if err != nil {
		return err
	}
	// The example services record every request for the tests; forgetting
	// them every second keeps their heaps (and garbage collections) small.
	forget := time.NewTicker(time.Second)
	lab.OnStop(forget.Stop)
	go func() {
		for range forget.C {
			legacy.Reset()
			candidate.Reset()
		}
	}()
	services := map[string]string{"legacy": legacy.Addr(), "candidate": candidate.Addr()}
	if cfg.Faults {
		bh, err := startBlackhole()
		if err != nil {
			return err
		}
		lab.OnStop(bh.close)
		slow, slowAddr, err := startSlow(cfg.Slow)
		if err != nil {
			return err
		}
		lab.OnStop(func() { _ = slow.Close() })
		refused, err := harness.FreeAddr()
		if err != nil {
			return err
		}
		services["blackhole"], services["slow"], services["refused"] = bh.addr(), slowAddr, refused
	}

	listener, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	text := policyText(listener, services, cfg.Percent, cfg.Faults)
	if _, err := policy.Parse([]byte(text), "policy.yaml"); err != nil {
		return fmt.Errorf("the benchmark's own policy does not load: %w", err)
	}
	policyPath := filepath.Join(cfg.Dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(text), 0o600); err != nil {
		return err
	}
	extProc := "127.0.0.1:0"
	if !cfg.Capture {
		extProc = ""
	}
	in, err := lab.Serve(ctx, serve.Config{
		PolicyPath:     policyPath,
		XDSAddress:     "127.0.0.1:0",
		ExtProcAddress: extProc,
		APIAddress:     "127.0.0.1:0",
		// A short grace compares a pair within the slice that produced it
		// instead of charging the work to whichever arm comes next.
		Pairer: pair.Config{Grace: cfg.Grace},
	}, log)
	if err != nil {
		return err
	}
	line, err := json.Marshal(sutAddrs{Listener: listener, Legacy: legacy.Addr(), XDS: in.XDSAddr, API: in.APIAddr, Policy: policyPath})
	if err != nil {
		return err
	}
	if _, err := fmt.Printf("%s\n", line); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// policyText is the benchmark's policy: a plain route, a mirrored and
// captured route, and with faults one route per shadow fault. Every route
// answers with the primary (legacy); only the shadow differs.
func policyText(listener string, services map[string]string, percent float64, faults bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nlisteners: [{name: ingress, address: %q}]\nservices:\n", listener)
	for _, name := range []string{"legacy", "candidate", "blackhole", "slow", "refused"} {
		if addr, ok := services[name]; ok {
			fmt.Fprintf(&b, "  %s: {endpoints: [%q]}\n", name, addr)
		}
	}
	b.WriteString("routes:\n")
	fmt.Fprintf(&b, "  - name: plain\n    match: {pathPrefix: %s}\n    primary: legacy\n", pathPlain)
	shadowed := func(name, prefix, shadow string) {
		fmt.Fprintf(&b, "  - name: %s\n    match: {pathPrefix: %s}\n    primary: legacy\n", name, prefix)
		fmt.Fprintf(&b, "    shadow: {service: %s, percent: %g}\n", shadow, percent)
		b.WriteString("    compare: {ignore: [\"$.generated_at\"]}\n")
	}
	shadowed("mirrored", pathMirrored, "candidate")
	if faults {
		shadowed("shadow-blackholed", pathBlackholed, "blackhole")
		shadowed("shadow-slow", pathSlow, "slow")
		shadowed("shadow-refused", pathRefused, "refused")
	}
	return b.String()
}

// blackhole accepts connections and never answers: it reads and discards
// whatever arrives until the peer or close ends the connection.
type blackhole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startBlackhole() (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	bh := &blackhole{ln: ln, conns: map[net.Conn]struct{}{}}
	bh.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bh.mu.Lock()
			bh.conns[c] = struct{}{}
			bh.mu.Unlock()
			bh.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				bh.mu.Lock()
				delete(bh.conns, c)
				bh.mu.Unlock()
				_ = c.Close()
			})
		}
	})
	return bh, nil
}

func (bh *blackhole) addr() string { return bh.ln.Addr().String() }

func (bh *blackhole) close() {
	_ = bh.ln.Close()
	bh.mu.Lock()
	for c := range bh.conns {
		_ = c.Close()
	}
	bh.mu.Unlock()
	bh.wg.Wait()
}

// startSlow serves the example API's answer after delay (cut short when the
// request is cancelled).
func startSlow(delay time.Duration) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	api := backend.API{Candidate: true}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
			ans := api.Answer(r.Method, r.URL.Path, time.Now())
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ans.Status)
			_, _ = w.Write(ans.Body)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}
