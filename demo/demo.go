// Package demo runs shadowlab end to end on loopback ports, as `make demo`
// does: the two example services and the control plane as processes, a real
// Envoy, a burst of mixed traffic, and a per-route account of what the
// primary and the shadow saw.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/shadowlab/shadowlab/envoy"
	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/examples/grpcbackend"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

//go:embed policy.yaml.tmpl
var policyTemplate string

// Config is what `shadowlab demo` lets a user change.
type Config struct {
	BinDir   string // holds shadowlab and backend; default: the running binary's directory
	Requests int    // mixed requests to drive; default 600
	Verbose  bool   // print the processes' logs at the end
	Seed     uint64 // traffic RNG seed; default 1

	// Attach, when set, is the policy file of a deployment already
	// running (docker compose): nothing is started, the scenes run against
	// its Envoy and services, and API is serve's API address.
	Attach, API string
	// Wait bounds how long an attached deployment may take to be ready;
	// default 2 min.
	Wait time.Duration
	// Keep, after every scene passed, keeps everything up (services,
	// serve, Envoy) until ctx is cancelled (Ctrl-C), for the operator page
	// to be looked at; a process dying meanwhile fails the demo. Not with
	// Attach: that deployment is not the demo's to keep or stop.
	Keep bool
}

func (c Config) wait() time.Duration {
	if c.Wait <= 0 {
		return 2 * time.Minute
	}
	return c.Wait
}

// Run builds the demo, drives traffic, prints the report and stops
// everything, also when ctx is cancelled (Ctrl-C), which is not an error.
func Run(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if cfg.Requests <= 0 {
		cfg.Requests = 600
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Keep && cfg.Attach != "" {
		return fmt.Errorf("--keep: the deployment --attach drives is not the demo's to keep up or stop; its operator page is http://%s/ui/", dialable(cfg.API))
	}
	d := &demo{cfg: cfg, out: stdout}
	err := d.run(ctx)
	if err == nil && ctx.Err() == nil {
		err = d.page(ctx)
	}
	d.shutdown()
	if cfg.Verbose || (err != nil && ctx.Err() == nil) {
		d.dumpLogs(stderr)
	}
	if d.dir != "" {
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(stderr, "shadowlab demo: logs and policy kept in %s\n", d.dir)
		} else {
			_ = os.RemoveAll(d.dir)
		}
	}
	if ctx.Err() != nil {
		if d.kept {
			fmt.Fprintln(stdout, "stopped: everything the demo started is down")
		} else {
			fmt.Fprintln(stdout, "interrupted: everything stopped")
		}
		return nil
	}
	return err
}

type demo struct {
	cfg   Config
	out   io.Writer
	dir   string
	procs []*proc
	envoy *envoy.Process

	binDir    string            // where the example services' binaries are
	addrs     map[string]string // service name → address
	burstSent int               // requests of the burst scene on the admission route
	client    *http.Client
	listener  string // Envoy's listener address
	api       string // serve's API address (the operator page's)
	kept      bool   // page kept everything up until ctx was cancelled
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context) error {
	var (
		policyPath, apiAddr string
		original            []byte
		err                 error
	)
	if d.cfg.Attach != "" {
		policyPath, apiAddr = d.cfg.Attach, d.cfg.API
		if original, err = d.attach(ctx); err != nil {
			return err
		}
		// Scene 2 edits the policy file; the user's file is put back as
		// it was, whatever happens.
		defer func() {
			if err := writeAtomic(policyPath, original); err != nil {
				d.say("  could not restore %s: %v", policyPath, err)
			}
		}()
	} else {
		if policyPath, apiAddr, err = d.start(ctx); err != nil {
			return err
		}
		if original, err = os.ReadFile(policyPath); err != nil {
			return err
		}
	}
	d.api = dialable(apiAddr)
	return d.scenes(ctx, policyPath, string(original), apiAddr)
}

// page prints the operator page's address and, with Keep, keeps everything
// up until ctx is cancelled, which is not an error, or until a process the
// demo started exits, which is.
func (d *demo) page(ctx context.Context) error {
	d.say("")
	d.say("operator page: http://%s/ui/", d.api)
	switch {
	case d.cfg.Attach != "":
		return nil
	case !d.cfg.Keep:
		d.say("  the demo stops everything now; `shadowlab demo --keep` (`make demo` in a terminal) keeps it up to look at")
		return nil
	}
	d.say("keeping everything up: Envoy listener http://%s, operator page http://%s/ui/ — Ctrl-C to stop", d.listener, d.api)
	died := make(chan string, len(d.procs)+1)
	stop := make(chan struct{})
	defer close(stop)
	watch := func(name string, exited <-chan struct{}) {
		select {
		case <-exited:
			died <- name
		case <-stop:
		}
	}
	if d.envoy != nil {
		go watch("envoy", d.envoy.Exited())
	}
	for _, p := range d.procs {
		go watch(p.name, p.exited)
	}
	select {
	case <-ctx.Done():
		d.kept = true
		return nil
	case name := <-died:
		d.say("  PROBLEM: %s exited while the demo kept everything up", name)
		return fmt.Errorf("%s exited while kept up", name)
	}
}

// start runs the services, serve and Envoy as local processes on free
// loopback ports, and returns the policy's path and the API's address.
func (d *demo) start(ctx context.Context) (policyPath, apiAddr string, err error) {
	self, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	binDir := d.cfg.BinDir
	if binDir == "" {
		binDir = filepath.Dir(self)
	}
	d.binDir = binDir
	backendBin := filepath.Join(binDir, "backend")
	if _, err := os.Stat(backendBin); err != nil {
		return "", "", fmt.Errorf("example service binary not found (run `make build`): %w", err)
	}
	if _, err := os.Stat(filepath.Join(binDir, "shadowlab.wasm")); err != nil {
		return "", "", fmt.Errorf("admission plugin not found (run `make build`): %w", err)
	}
	envoyBin, err := envoy.Binary()
	if err != nil {
		return "", "", err
	}
	if d.dir, err = os.MkdirTemp("", "shadowlab-demo-"); err != nil {
		return "", "", err
	}

	// 1. The example services, as processes.
	addrs := map[string]string{}
	for _, name := range []string{"legacy", "candidate"} {
		p, addr, err := startProc(ctx, d.dir, name, "listening ", backendBin, "-name", name, "-addr", "127.0.0.1:0", "-api", name)
		if err != nil {
			return "", "", err
		}
		d.procs = append(d.procs, p)
		addrs[name] = addr
	}

	// 2. The policy, on free ports, and the control plane following it.
	listenerAddr, xdsAddr, gatewayAddr, admissionAddr := freeAddr(), freeAddr(), freeAddr(), freeAddr()
	apiAddr = freeAddr()
	policyPath = filepath.Join(d.dir, "policy.yaml")
	text, err := RenderPolicy(listenerAddr, addrs["legacy"], addrs["candidate"])
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(policyPath, text, 0o644); err != nil {
		return "", "", err
	}
	cp, _, err := startProc(ctx, d.dir, "shadowlab-serve", "", self,
		"serve", "--policy", policyPath, "--xds-address", xdsAddr, "--gateway-address", gatewayAddr,
		"--api-address", apiAddr, "--admission-address", admissionAddr, "--wasm", filepath.Join(binDir, "shadowlab.wasm"),
		"--db", filepath.Join(d.dir, "shadowlab.db"), "--log-format", "console")
	if err != nil {
		return "", "", err
	}
	d.procs = append(d.procs, cp)

	// 3. Envoy, bootstrapped against the control plane.
	boot, err := xds.Bootstrap(xds.BootstrapConfig{NodeID: "demo", XDSAddress: xdsAddr, AdminAddress: "127.0.0.1:0"})
	if err != nil {
		return "", "", err
	}
	bootYAML, err := xds.MessageYAML(boot)
	if err != nil {
		return "", "", err
	}
	if d.envoy, err = envoy.Start(ctx, envoy.Config{Bin: envoyBin, Bootstrap: bootYAML, Dir: d.dir}); err != nil {
		return "", "", err
	}
	readyCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := d.envoy.WaitReady(readyCtx); err != nil {
		return "", "", err
	}
	d.addrs, d.listener = addrs, listenerAddr
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if err := waitRouting(readyCtx, d.client, listenerAddr); err != nil {
		return "", "", err
	}
	d.say("shadowlab demo: %s", envoyVersion(envoyBin))
	d.say("  legacy (primary) %s, candidate (shadow) %s, Envoy listener %s", addrs["legacy"], addrs["candidate"], listenerAddr)
	d.say("  shadowlab serve: xDS %s, shadow gateway %s, report API http://%s", xdsAddr, gatewayAddr, apiAddr)
	return policyPath, apiAddr, nil
}

// attach finds a running deployment from its policy file (the listener and
// the legacy and candidate services' first endpoints) and waits until Envoy
// routes and the API is ready. It returns the policy file's contents.
func (d *demo) attach(ctx context.Context) ([]byte, error) {
	if d.cfg.API == "" {
		return nil, errors.New("--attach needs --api, the address of serve's API")
	}
	text, err := policy.ReadFile(d.cfg.Attach)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Parse(text, d.cfg.Attach)
	if err != nil {
		return nil, err
	}
	d.addrs = map[string]string{}
	for _, name := range []string{"legacy", "candidate"} {
		svc := pol.Service(name)
		if svc == nil || len(svc.Endpoints) == 0 {
			return nil, fmt.Errorf("%s: the demo needs a service %q with an endpoint", d.cfg.Attach, name)
		}
		d.addrs[name] = dialable(svc.Endpoints[0])
	}
	if len(pol.Listeners) == 0 {
		return nil, fmt.Errorf("%s: no listener", d.cfg.Attach)
	}
	d.listener = dialable(pol.Listeners[0].Address)
	d.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	readyCtx, cancel := context.WithTimeout(ctx, d.cfg.wait())
	defer cancel()
	start := time.Now()
	if err := waitReady(readyCtx, d.client, d.cfg.API); err != nil {
		return nil, err
	}
	if err := waitRouting(readyCtx, d.client, d.listener); err != nil {
		return nil, err
	}
	d.say("shadowlab demo, attached to a running deployment (ready %v after the first try: serve's policy loaded, Envoy routing)",
		time.Since(start).Round(time.Millisecond))
	d.say("  legacy (primary) %s, candidate (shadow) %s, Envoy listener %s", d.addrs["legacy"], d.addrs["candidate"], d.listener)
	d.say("  shadowlab serve: report API http://%s", d.cfg.API)
	return text, nil
}

// scenes drives the demo's traffic through Envoy and checks what each side
// saw, the policy edit, the burst and the report.
func (d *demo) scenes(ctx context.Context, policyPath, original, apiAddr string) error {
	pol, err := policy.Load(policyPath)
	if err != nil {
		return err
	}
	d.say("  policy %s: %d routes, %d mirrored", policyPath, len(pol.Routes), mirroredRoutes(pol))

	// 4. Traffic on the policy as written.
	d.say("")
	d.say("scene 1: mixed traffic on the policy as written")
	if err := d.round(ctx, pol, d.cfg.Seed); err != nil {
		return err
	}

	// 5. Edit the policy file under the running Envoy: orders 25 % → 100 %,
	// tenant initech added to billing-records. No restart.
	d.say("")
	d.say("scene 2: edit %s: orders 25 %% → 100 %%, add tenant initech to billing-records", filepath.Base(policyPath))
	edited := strings.Replace(original, "shadow: {service: candidate, percent: 25}", "shadow: {service: candidate, percent: 100}", 1)
	edited = strings.Replace(edited, "values: [acme, globex]", "values: [acme, globex, initech]", 1)
	if edited == original {
		return errors.New("demo policy changed: scene 2 edits nothing")
	}
	if err := writeAtomic(policyPath, []byte(edited)); err != nil {
		return err
	}
	took, err := d.waitMirrored(ctx, "/billing/records/probe", "initech")
	if err != nil {
		return err
	}
	if d.envoy != nil {
		d.say("  Envoy (pid %d, not restarted) applied it in %v (file write → first mirrored request)", d.envoy.Pid(), took.Round(time.Millisecond))
	} else {
		d.say("  Envoy (not restarted) applied it in %v (file write → first mirrored request)", took.Round(time.Millisecond))
	}
	if pol, err = policy.Load(policyPath); err != nil {
		return err
	}
	if err := d.round(ctx, pol, d.cfg.Seed+1); err != nil {
		return err
	}

	// 6. A scheduler's burst, with and without admission.
	d.say("")
	d.say("scene 3: a scheduled burst")
	if err := d.burst(ctx, pol, 1000); err != nil {
		return err
	}

	// 7. What the comparison found, and what admission did.
	d.say("")
	d.say("scene 4: the report (shadowlab report --server http://%s)", apiAddr)
	if err := d.comparison(ctx, apiAddr); err != nil {
		return err
	}

	// 8. The catalog moves to its candidate, on the evidence.
	d.say("")
	d.say("scene 5: rollout of %s: shadow → canary (its failures fall back) → gates → promoted", rolloutRoute)
	if err := d.rollout(ctx, policyPath, apiAddr); err != nil {
		return err
	}

	// 9. A gRPC service compared field by field.
	d.say("")
	d.say("scene 6: a gRPC service (%s), unary and streaming calls compared field by field", grpcbackend.ServiceName)
	return d.grpcScene(ctx, policyPath, apiAddr)
}

// RenderPolicy is the demo's policy with its listener and the two services
// at the given addresses.
func RenderPolicy(listener, legacy, candidate string) ([]byte, error) {
	var buf bytes.Buffer
	err := template.Must(template.New("policy").Parse(policyTemplate)).Execute(&buf, map[string]string{
		"Listener": listener, "Legacy": legacy, "Candidate": candidate,
	})
	return buf.Bytes(), err
}

// dialable is addr with an unspecified host (a listener on every
// interface) replaced by loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// waitReady waits until serve's API answers /readyz with 200.
func waitReady(ctx context.Context, client *http.Client, apiAddr string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+apiAddr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("serve's API at %s never became ready: %w", apiAddr, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// round drives the mixed traffic and reports what each side saw of it
// against pol.
func (d *demo) round(ctx context.Context, pol *policy.Policy, seed uint64) error {
	before := map[string]int{}
	for name := range d.addrs {
		got, err := received(ctx, d.client, d.addrs[name])
		if err != nil {
			return err
		}
		before[name] = len(got)
	}
	start := time.Now()
	sent, err := drive(ctx, d.client, d.listener, d.cfg.Requests, seed)
	if err != nil {
		return err
	}
	d.say("  drove %d requests (GET/HEAD/POST/DELETE, tenants acme, globex, initech, none) in %v",
		len(sent), time.Since(start).Round(time.Millisecond))
	primary, err := received(ctx, d.client, d.addrs["legacy"])
	if err != nil {
		return err
	}
	shadow, err := settle(ctx, d.client, d.addrs["candidate"])
	if err != nil {
		return err
	}
	return d.report(pol, sent, primary[before["legacy"]:], shadow[before["candidate"]:])
}

// waitMirrored sends GETs for tenant to path until the shadow receives one,
// and returns how long that took.
func (d *demo) waitMirrored(ctx context.Context, path, tenant string) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		r := sentRequest{method: http.MethodGet, path: path, tenant: tenant}
		if err := send(ctx, d.client, d.listener, &r); err != nil {
			return 0, err
		}
		got, err := received(ctx, d.client, d.addrs["candidate"])
		if err != nil {
			return 0, err
		}
		if slices.ContainsFunc(got, func(q backend.Request) bool { return q.Path == path }) {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("the policy edit never took effect: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// sentRequest is one request the driver sent and the answer it got.
type sentRequest struct {
	method, path, tenant string
	backend              string // x-backend of the answer
	status               int
}

// drive sends n requests of mixed routes, methods and tenants from 8
// workers, in an order fixed by seed.
func drive(ctx context.Context, client *http.Client, addr string, n int, seed uint64) ([]sentRequest, error) {
	rng := rand.New(rand.NewPCG(seed, 0))
	prefixes := []string{"/billing/records", "/users", "/orders", "/static"}
	methods := []string{"GET", "GET", "GET", "GET", "GET", "GET", "HEAD", "POST", "POST", "DELETE"}
	tenants := []string{"acme", "globex", "initech", ""}
	reqs := make([]sentRequest, n)
	for i := range reqs {
		reqs[i] = sentRequest{
			method: methods[rng.IntN(len(methods))],
			path:   fmt.Sprintf("%s/%d", prefixes[rng.IntN(len(prefixes))], rng.IntN(24)), // repeats: noise is learned from them
			tenant: tenants[rng.IntN(len(tenants))],
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				errs[i] = send(ctx, client, addr, &reqs[i])
			}
		})
	}
	for i := range reqs {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return reqs, errors.Join(errs...)
}

func send(ctx context.Context, client *http.Client, addr string, r *sentRequest) error {
	req, err := http.NewRequestWithContext(ctx, r.method, "http://"+addr+r.path, nil)
	if err != nil {
		return err
	}
	if r.tenant != "" {
		req.Header.Set("x-tenant", r.tenant)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	r.backend, r.status = resp.Header.Get(backend.HeaderBackend), resp.StatusCode
	return nil
}

// report prints per route what the primary and the shadow saw, and fails if
// anything contradicts the policy: a client answered by the shadow, a shadow
// request without its primary's id, a request mirrored that should not be.
func (d *demo) report(pol *policy.Policy, sent []sentRequest, primary, shadow []backend.Request) error {
	var problems []string
	for _, s := range sent {
		if s.backend != "legacy" || s.status != http.StatusOK {
			problems = append(problems, fmt.Sprintf("%s %s answered %d by %q, want 200 by legacy", s.method, s.path, s.status, s.backend))
		}
	}
	type primaryInfo struct {
		req      backend.Request
		route    string
		eligible bool
	}
	byID := map[string]primaryInfo{}
	type row struct{ primary, eligible, shadow, dryRun int }
	rows := map[string]*row{}
	for _, r := range pol.Routes {
		rows[r.Name] = &row{}
	}
	for _, p := range primary {
		route, eligible := classify(pol, p.Method, p.Path, p.Headers["x-tenant"])
		byID[p.Headers[wire.HeaderRequestID]] = primaryInfo{p, route, eligible}
		rows[route].primary++
		if eligible {
			rows[route].eligible++
		}
	}
	matched := 0
	for _, s := range shadow {
		id := s.Headers[wire.HeaderRequestID]
		p, ok := byID[id]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("shadow %s %s carries request id %q that no primary request had", s.Method, s.Path, id))
			continue
		case p.req.Path != s.Path || p.req.Method != s.Method:
			problems = append(problems, fmt.Sprintf("shadow %s %s paired by id with primary %s %s", s.Method, s.Path, p.req.Method, p.req.Path))
		case s.Headers[wire.HeaderShadow] != "1" || s.Headers[wire.HeaderRoute] != p.route:
			problems = append(problems, fmt.Sprintf("shadow %s %s: marker %q, route %q (want 1, %q)", s.Method, s.Path, s.Headers[wire.HeaderShadow], s.Headers[wire.HeaderRoute], p.route))
		case !p.eligible:
			problems = append(problems, fmt.Sprintf("%s %s (tenant %q) was mirrored but the policy excludes it", s.Method, s.Path, p.req.Headers["x-tenant"]))
		default:
			matched++
		}
		if (s.Headers[wire.HeaderDryRun] == "1") == slices.Contains(policy.SafeMethods, s.Method) {
			problems = append(problems, fmt.Sprintf("shadow %s %s: dry-run marker %q", s.Method, s.Path, s.Headers[wire.HeaderDryRun]))
		}
		if r := rows[p.route]; r != nil {
			r.shadow++
			if s.Headers[wire.HeaderDryRun] == "1" {
				r.dryRun++
			}
		}
	}

	d.say("")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  route\tmirrors\tprimary saw\teligible\tshadow saw\tshare\tdry-run")
	for _, r := range pol.Routes {
		row := rows[r.Name]
		what, share := "-", "-"
		if r.Shadow != nil {
			what = describeShadow(r)
			if row.eligible > 0 {
				share = fmt.Sprintf("%.0f %%", 100*float64(row.shadow)/float64(row.eligible))
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\t%d\n", r.Name, what, row.primary, row.eligible, row.shadow, share, row.dryRun)
	}
	tw.Flush()
	d.say("")
	d.say("  clients: %d requests, every answer came from the primary (legacy): %v", len(sent), countBackend(sent, "legacy") == len(sent))
	d.say("  request ids: %d of %d shadow requests carried their primary's x-request-id, route and shadow marker", matched, len(shadow))
	return d.verdict(problems, "the shadow saw only what the policy selects, each request tagged with its primary's id")
}

// verdict prints the problems found, or ok, and fails on any problem.
func (d *demo) verdict(problems []string, ok string) error {
	if len(problems) > 0 {
		for _, p := range problems {
			d.say("  PROBLEM: %s", p)
		}
		return fmt.Errorf("%d problem(s) found", len(problems))
	}
	d.say("  ok: %s", ok)
	return nil
}

// classify finds the policy route a request takes (first match by prefix
// and method, as Envoy does for the demo's prefix-only policy) and whether
// the policy makes it eligible for mirroring.
func classify(pol *policy.Policy, method, path, tenant string) (string, bool) {
	for _, r := range pol.Routes {
		if !strings.HasPrefix(path, r.Match.PathPrefix) || (len(r.Match.Methods) > 0 && !slices.Contains(r.Match.Methods, method)) {
			continue
		}
		s := r.Shadow
		if s == nil {
			return r.Name, false
		}
		tenantOK := s.Tenants == nil || slices.Contains(s.Tenants.Values, tenant)
		methodOK := s.UnsafeMethods || slices.Contains(policy.SafeMethods, method)
		return r.Name, tenantOK && methodOK
	}
	return "", false
}

func describeShadow(r *policy.Route) string {
	s := fmt.Sprintf("%g %%", r.Shadow.Percent)
	if t := r.Shadow.Tenants; t != nil {
		s += " of " + strings.Join(t.Values, ",")
	}
	if r.Shadow.UnsafeMethods {
		s += ", writes too"
	} else {
		s += ", reads"
	}
	return s
}

func countBackend(sent []sentRequest, name string) int {
	n := 0
	for _, s := range sent {
		if s.backend == name {
			n++
		}
	}
	return n
}

func mirroredRoutes(p *policy.Policy) int {
	n := 0
	for _, r := range p.Routes {
		if r.Shadow != nil {
			n++
		}
	}
	return n
}

// received fetches what a backend process recorded.
func received(ctx context.Context, client *http.Client, addr string) ([]backend.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+backend.ControlPrefix+"received", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rec backend.Recording
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return nil, fmt.Errorf("reading %s's recording: %w", addr, err)
	}
	return rec.Requests, nil
}

// settle waits until the shadow has stopped receiving (mirrors are
// asynchronous) and returns what it got.
func settle(ctx context.Context, client *http.Client, addr string) ([]backend.Request, error) {
	last, stable := -1, 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := received(ctx, client, addr)
		if err != nil {
			return nil, err
		}
		if len(got) == last {
			stable++
		} else {
			last, stable = len(got), 0
		}
		if stable >= 4 || time.Now().After(deadline) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitRouting waits until Envoy's listener routes to a backend.
func waitRouting(ctx context.Context, client *http.Client, addr string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/static/ready", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.Header.Get(backend.HeaderBackend) != "" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("envoy never routed to the services: %w", ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (d *demo) shutdown() {
	if d.envoy != nil {
		_ = d.envoy.Stop()
	}
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop()
	}
}

func (d *demo) dumpLogs(w io.Writer) {
	for _, p := range d.procs {
		fmt.Fprintf(w, "----- %s log -----\n%s\n", p.name, p.logs())
	}
	if d.envoy != nil {
		fmt.Fprintf(w, "----- envoy log (last lines) -----\n%s\n", lastLines(d.envoy.Logs(), 40))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func envoyVersion(bin string) string {
	v, err := envoy.Version(bin)
	if err != nil {
		return "envoy (version unknown)"
	}
	return "Envoy " + v + " (" + bin + ")"
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}
