// Command xdsscale measures large policies and small edits, the scenario
// of the issue "Large policies, small updates":
//
//	go run ./bench/xdsscale [flags]
//
// Translation (each size in a process of its own, so that its peak RSS is
// its own): a generated policy of 1 000, 10 000 and 50 000 mirrored routes
// (two tenants each, one first path segment each) is parsed, then
// translated from cold into a snapshot (what serve does on its first
// publish, for delta Envoys: scoped), then edited: one tenant added to one route, then one route's
// percentage changed, each translated by the warm translator, against a
// translation from scratch of the same edit (what every edit cost before
// translation was incremental).
//
// Envoy: serve (in this process) follows a 10 000-route policy and a real
// Envoy takes it over state of the world (one table: what serve gives
// those streams) and over delta xDS, with the routes in one table
// (serve --scope-at -1) and scoped by first segment (the default). After Envoy is ready,
// one tenant is added to one route, then its percentage set to 0; for each,
// the bytes Envoy received from the control plane and the resources it
// reloaded (its own counters: upstream_cx_rx_bytes_total of the xDS
// cluster, rds/scoped_rds/lds/cds/runtime update counters), and the time
// from the policy write until Envoy serves the change (a request of the
// new tenant is mirrored; with the route's percentage set to 0, it is
// not), and until serve had published it.
//
// It prints a markdown section on stdout and its progress on stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/xds"
)

type config struct {
	sizes  []int
	envoyN int
	edits  int
	keep   bool
}

func (c *config) parse(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("xdsscale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "1000,10000,50000", "route counts of the translation runs")
	fs.IntVar(&c.envoyN, "envoy-routes", 10_000, "route count of the Envoy runs (0: skip them)")
	fs.IntVar(&c.edits, "edits", 5, "edits translated per kind (the median is shown)")
	fs.BoolVar(&c.keep, "keep", false, "keep the working directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for s := range strings.SplitSeq(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return fmt.Errorf("-sizes: %q is not a route count", s)
		}
		c.sizes = append(c.sizes, n)
	}
	return nil
}

func main() {
	var cfg config
	if len(os.Args) == 4 && os.Args[1] == "child" { // child ROUTES EDITS: one size, in a process of its own
		n, err := strconv.Atoi(os.Args[2])
		edits, err2 := strconv.Atoi(os.Args[3])
		if err == nil {
			err = err2
		}
		if err == nil {
			err = child(n, edits)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdsscale:", err)
			os.Exit(1)
		}
		return
	}
	harness.Main("xdsscale", &cfg.keep, cfg.parse, func(ctx context.Context, lab *harness.Lab, log *zap.Logger) error {
		return run(ctx, cfg, lab, log)
	})
}

// generated is harness.LargePolicy with the probe the benchmark waits on.
func generated(n int, addr, legacy, candidate, tenants string, percent int) []byte {
	return harness.LargePolicy(n, addr, legacy, candidate, "/ready", tenants, percent)
}

// translation is one size's figures (the child's JSON line).
type translation struct {
	Routes       int     `json:"routes"`
	ParseMs      float64 `json:"parse_ms"`
	ColdMs       float64 `json:"cold_ms"`
	RSSParsedMB  float64 `json:"rss_parsed_mb"`
	RSSPeakMB    float64 `json:"rss_peak_mb"`
	TenantEditMs float64 `json:"tenant_edit_ms"` // translation only
	TenantSnapMs float64 `json:"tenant_snapshot_ms"`
	PercentMs    float64 `json:"percent_edit_ms"`
	ScratchMs    float64 `json:"scratch_ms"`
	RCs          int     `json:"route_configurations"`
}

// child measures n routes in this process: parse, cold translation with
// its peak RSS, then edits by the warm translator and from scratch.
func child(n, edits int) error {
	opts := xds.Options{GatewayAddress: "127.0.0.1:18003", APIAddress: "127.0.0.1:18080", Wasm: xds.WasmCode{Filename: "/x.wasm"}}
	text := generated(n, "127.0.0.1:10000", "127.0.0.1:8081", "127.0.0.1:8082", "acme", 100)
	t0 := time.Now()
	p, err := policy.Parse(text, "generated.yaml")
	if err != nil {
		return err
	}
	out := translation{Routes: n, ParseMs: ms(time.Since(t0))}
	text = nil
	runtime.GC()
	out.RSSParsedMB = maxRSS()
	tr := xds.NewTranslator(opts)
	t0 = time.Now()
	res, err := tr.Translate(p)
	if err != nil {
		return err
	}
	if _, err := res.Snapshot(); err != nil {
		return err
	}
	out.ColdMs, out.RSSPeakMB, out.RCs = ms(time.Since(t0)), maxRSS(), len(res.Routes)

	// timed is the translation of p by tr, and the snapshot after it.
	timed2 := func(tr *xds.Translator, p *policy.Policy) (float64, float64, error) {
		t0 := time.Now()
		res, err := tr.Translate(p)
		if err != nil {
			return 0, 0, err
		}
		t1 := time.Now()
		_, err = res.Snapshot()
		return ms(t1.Sub(t0)), ms(time.Since(t1)), err
	}
	timed := func(tr *xds.Translator, p *policy.Policy) (float64, error) {
		a, b, err := timed2(tr, p)
		return a + b, err
	}
	var tenant, snap, percent, scratch []float64
	for i := range edits {
		tenants := "acme"
		if i%2 == 0 {
			tenants = "acme, initech"
		}
		edited, err := policy.Parse(generated(n, "127.0.0.1:10000", "127.0.0.1:8081", "127.0.0.1:8082", tenants, 100), "edited.yaml")
		if err != nil {
			return err
		}
		d, sn, err := timed2(tr, edited)
		if err != nil {
			return err
		}
		tenant, snap = append(tenant, d), append(snap, sn)
		if d, err = timed(xds.NewTranslator(opts), edited); err != nil {
			return err
		}
		scratch = append(scratch, d)
		pct, err := policy.Parse(generated(n, "127.0.0.1:10000", "127.0.0.1:8081", "127.0.0.1:8082", tenants, 50+i), "percent.yaml")
		if err != nil {
			return err
		}
		if d, err = timed(tr, pct); err != nil {
			return err
		}
		percent = append(percent, d)
	}
	out.TenantEditMs, out.TenantSnapMs, out.PercentMs, out.ScratchMs = median(tenant), median(snap), median(percent), median(scratch)
	return json.NewEncoder(os.Stdout).Encode(out)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// maxRSS is this process's peak resident set so far, in MB.
func maxRSS() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

func run(ctx context.Context, cfg config, lab *harness.Lab, log *zap.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Println("## Large policies, small edits (`go run ./bench/xdsscale`)")
	fmt.Println()
	fmt.Printf("%d CPUs, %s. Translation: a generated policy (each route mirrored for two tenants, under a first path segment of its own, captured), in a process of its own per size; times are translation + snapshot, edits the median of %d.\n\n", runtime.NumCPU(), runtime.Version(), cfg.edits)
	fmt.Println("| routes | parse | cold translation + snapshot | peak RSS (after parse → after translation) | route configurations | one tenant added: translation + snapshot | from scratch | one percentage |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range cfg.sizes {
		log.Info("translating", zap.Int("routes", n))
		cmd := exec.CommandContext(ctx, self, "child", strconv.Itoa(n), strconv.Itoa(cfg.edits))
		cmd.Stderr = os.Stderr
		b, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%d routes: %w", n, err)
		}
		var t translation
		if err := json.Unmarshal(b, &t); err != nil {
			return fmt.Errorf("%d routes: %w: %s", n, err, b)
		}
		fmt.Printf("| %d | %.0f ms | %.0f ms | %.0f → %.0f MB | %d | %.1f + %.1f ms | %.0f ms | %.1f ms |\n",
			t.Routes, t.ParseMs, t.ColdMs, t.RSSParsedMB, t.RSSPeakMB, t.RCs, t.TenantEditMs, t.TenantSnapMs, t.ScratchMs, t.PercentMs)
	}
	if cfg.envoyN == 0 {
		return nil
	}
	fmt.Println()
	fmt.Printf("Envoy 1.40 (2 workers) following serve, %d routes; bytes and reloads are Envoy's own counters.\n\n", cfg.envoyN)
	fmt.Println("Served after: from the policy file's write until Envoy serves the edit (in brackets: until serve had published it — reading and parsing the 10 000-route file is most of that).")
	fmt.Println()
	fmt.Println("| xDS | layout | Envoy ready | full push | one tenant added: bytes | reloaded | served after | one percentage: bytes | reloaded | served after |")
	fmt.Println("|---|---|---:|---:|---:|---|---:|---:|---|---:|")
	// State-of-the-world streams always get one table per listener
	// (xds.Server); delta streams get the scoped layout unless it is off.
	for _, arm := range []struct{ delta, scoped bool }{{false, false}, {true, false}, {true, true}} {
		if err := envoyRun(ctx, cfg.envoyN, arm.delta, arm.scoped, lab, log); err != nil {
			return err
		}
	}
	return nil
}

// envoyRun measures one layout over one protocol.
func envoyRun(ctx context.Context, n int, delta, scoped bool, lab *harness.Lab, log *zap.Logger) error {
	proto, layout := "SotW", "one table"
	if delta {
		proto = "delta"
	}
	scopeAt := -1
	if scoped {
		layout, scopeAt = "scoped", 0
	}
	log.Info("envoy run", zap.String("xds", proto), zap.String("layout", layout))
	legacy, err := lab.Backend("legacy")
	if err != nil {
		return err
	}
	candidate, err := lab.Backend("candidate")
	if err != nil {
		return err
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(lab.Dir, "run-")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "policy.yaml")
	write := func(tenants string, percent int) error {
		if err := os.WriteFile(path+".tmp", generated(n, addr, legacy.Addr(), candidate.Addr(), tenants, percent), 0o600); err != nil {
			return err
		}
		return os.Rename(path+".tmp", path)
	}
	if err := write("acme", 100); err != nil {
		return err
	}
	var ports [3]string
	for i := range ports {
		if ports[i], err = harness.FreeAddr(); err != nil {
			return err
		}
	}
	wasm, err := harness.BuildPlugin()
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	in, err := lab.Serve(sctx, serve.Config{PolicyPath: path, XDSAddress: ports[0], GatewayAddress: ports[1], APIAddress: ports[2], WasmPath: wasm, ScopeAt: scopeAt}, log.Named("serve"))
	if err != nil {
		return err
	}
	defer in.Stop()
	boot, err := harness.DynamicBootstrap("xdsscale", ports[0], delta)
	if err != nil {
		return err
	}
	e, err := lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot})
	if err != nil {
		return err
	}
	defer func() { _ = e.Stop() }()
	client := harness.Client(4, 5*time.Second)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := harness.WaitHTTP(wctx, "http://"+addr+"/ready", func(r *http.Response) bool { return r.Header.Get(backend.HeaderBackend) != "" }); err != nil {
		return err
	}
	const filter = `^(cluster\.shadowlab_xds\.upstream_cx_rx_bytes_total|listener_manager\.lds\.update_success|cluster_manager\.cds\.update_success|runtime\.load_success|http\.shadowlab_ingress\.(rds\..*\.config_reload|scoped_rds\..*\.config_reload))$`
	counters := func() (map[string]int64, error) { return e.Stats(wctx, filter) }
	full, err := counters()
	if err != nil {
		return err
	}
	const rx = "cluster.shadowlab_xds.upstream_cx_rx_bytes_total"

	// measure applies one edit and waits until served says Envoy serves
	// it; published is when serve had published it (its xDS version moved).
	var published time.Duration
	measure := func(edit func() error, served func() (bool, error)) (bytes int64, reloaded string, took time.Duration, err error) {
		before, err := counters()
		if err != nil {
			return 0, "", 0, err
		}
		version := in.XDS.Version()
		t0 := time.Now()
		if err := edit(); err != nil {
			return 0, "", 0, err
		}
		for in.XDS.Version() == version && time.Since(t0) < time.Minute {
			time.Sleep(time.Millisecond)
		}
		published = time.Since(t0)
		for {
			ok, err := served()
			if err != nil {
				return 0, "", 0, err
			}
			if ok {
				break
			}
			if time.Since(t0) > time.Minute {
				return 0, "", 0, fmt.Errorf("%s %s: the edit was not served within a minute", proto, layout)
			}
			time.Sleep(20 * time.Millisecond)
		}
		took = time.Since(t0)
		time.Sleep(time.Second) // anything else sent lands meanwhile
		after, err := counters()
		if err != nil {
			return 0, "", 0, err
		}
		return after[rx] - before[rx], reloads(before, after), took, nil
	}

	// mirrored sends one request of tenant initech and reports whether the
	// candidate got its mirror within 200 ms (through serve's gateway it
	// takes a few milliseconds).
	mirrored := func() (bool, error) {
		candidate.Reset()
		req, _ := http.NewRequestWithContext(wctx, http.MethodGet, "http://"+addr+"/edited/x", nil)
		req.Header.Set("x-tenant", "initech")
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if candidate.Count() > 0 {
				return true, nil
			}
			time.Sleep(2 * time.Millisecond)
		}
		return false, nil
	}
	// Served: the new tenant's requests are mirrored; then, its percentage
	// set to 0, they are not.
	tBytes, tReloaded, tTook, err := measure(func() error { return write("acme, initech", 100) }, mirrored)
	if err != nil {
		return err
	}
	tPublished := published
	pBytes, pReloaded, pTook, err := measure(func() error { return write("acme, initech", 0) }, func() (bool, error) {
		m, err := mirrored()
		return !m, err
	})
	if err != nil {
		return err
	}
	fmt.Printf("| %s | %s | %.1f s | %s | %s | %s | %d ms (%d) | %s | %s | %d ms (%d) |\n", proto, layout, e.Ready.Seconds(), size(full[rx]),
		size(tBytes), tReloaded, tTook.Milliseconds(), tPublished.Milliseconds(), size(pBytes), pReloaded, pTook.Milliseconds(), published.Milliseconds())
	_ = legacy.Close()
	_ = candidate.Close()
	return nil
}

// reloads says which of Envoy's update counters moved between two reads.
func reloads(before, after map[string]int64) string {
	rds, other := 0, []string{}
	for k, v := range after {
		if v == before[k] || strings.HasSuffix(k, "rx_bytes_total") {
			continue
		}
		switch {
		case strings.Contains(k, ".rds."):
			rds++
		case strings.Contains(k, "scoped_rds"):
			other = append(other, "scopes")
		case strings.HasPrefix(k, "listener_manager"):
			other = append(other, "listeners")
		case strings.HasPrefix(k, "cluster_manager"):
			other = append(other, "clusters")
		case strings.HasPrefix(k, "runtime"):
			other = append(other, "runtime")
		}
	}
	if rds > 0 {
		other = append([]string{fmt.Sprintf("%d route config(s)", rds)}, other...)
	}
	if len(other) == 0 {
		return "nothing"
	}
	slices.Sort(other[min(1, len(other)):])
	return strings.Join(other, ", ")
}

func size(b int64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.2f MB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}
