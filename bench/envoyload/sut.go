package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
)

// The example services run in a child process (this binary, re-executed
// with the argument "sut"): the primary (legacy), the shadow (candidate)
// and, with -faults, the broken shadows. The load generator then shares no
// heap, garbage collector or scheduler with them, and their CPU time is
// read apart from the generator's and serve's (its own process).

// sutArg is the first argument that makes this binary the services.
const sutArg = "sut"

// sutConfig is the child's command line: sutArg and this as JSON.
type sutConfig struct {
	Dir    string
	Faults bool
	Slow   time.Duration
}

// runSUT starts the services, reports their addresses by name (a JSON
// object, one line on stdout) and serves until SIGINT or SIGTERM (the
// parent's stop; it dies with the parent too).
func runSUT(arg string) error {
	var cfg sutConfig
	if err := json.Unmarshal([]byte(arg), &cfg); err != nil {
		return fmt.Errorf("sut: %w", err)
	}
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
		// The blackhole listens and never accepts: connections complete in
		// the kernel's backlog and are never answered.
		bh, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		lab.OnStop(func() { _ = bh.Close() })
		slowAddr, err := startSlow(lab, cfg.Slow)
		if err != nil {
			return err
		}
		refused, err := harness.FreeAddr()
		if err != nil {
			return err
		}
		services["blackhole"], services["slow"], services["refused"] = bh.Addr().String(), slowAddr, refused
	}
	line, err := json.Marshal(services)
	if err != nil {
		return err
	}
	if _, err := fmt.Printf("%s\n", line); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// startSlow serves the example API's answer after delay (cut short when the
// request is cancelled) until lab stops.
func startSlow(lab *harness.Lab, delay time.Duration) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
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
	lab.OnStop(func() { _ = srv.Close() })
	return ln.Addr().String(), nil
}
