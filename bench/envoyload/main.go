// Command envoyload measures what mirroring and capture cost a real Envoy
// and `shadowlab serve`, with one route per arm on one Envoy, all answered
// by the same primary: plain (primary only); mirror (p % mirrored straight
// to the shadow, shadow.capture: false); captured (p % mirrored to serve's
// shadow gateway, which forwards to the shadow and records its answer,
// while the proxy-wasm plugin captures the primary's and posts it in
// batches to serve). The earlier design, both answers captured by ext_proc
// in Envoy, was measured here too before it was removed (BENCHMARKS.md).
//
//	go run ./bench/envoyload [flags]
//
// Phases: a warm-up that checks every arm mirrors and captures; for each
// of -percents, a closed loop (each worker sends its next request when the
// previous one is answered) for each arm's maximum throughput, then an open
// loop at -fraction of plain's maximum, latency measured from each
// request's scheduled send time (no coordinated omission); with -faults,
// the open loop against captured routes whose shadow is blackholed, slow
// or refusing; last, a closed loop of captured routes at 100 % answering
// 1 KiB and 16 KiB, for serve's cost per pair. Markdown (or -json) goes to
// stdout, progress to stderr.
//
// The arms of a phase take turns in time slices (-slice), each round
// holding every arm once in a random order: each arm runs on its own (no
// request of plain shares an instant with another arm's shadow work) while
// drift and noisy neighbours hit all arms alike. The first -settle of each
// slice is run but not recorded, and the pairer's -grace is short, so that
// work is charged to the slice that caused it.
//
// Envoy runs pinned to -envoy-cpus; this generator pins every one of its
// threads to -load-cpus with sched_setaffinity, and what it starts inherits
// that: the example services (this binary with the argument "sut") and
// `shadowlab serve` (its own process). The CPU time of each is read from
// /proc at every slice boundary and charged to the slice's arm. Before each
// phase it waits (up to -quiet) for an idle machine, and it reports the CPU
// that other processes and the hypervisor took.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
)

// config is the command line, and the parameters of -json.
type config struct {
	Percents         []float64     `json:"percents"`
	Workers          int           `json:"workers"`
	ClosedDuration   time.Duration `json:"closed_duration_ns"`
	Duration         time.Duration `json:"duration_ns"`
	Slice            time.Duration `json:"slice_ns"`
	Settle           time.Duration `json:"settle_ns"`
	Fraction         float64       `json:"fraction"`
	Rate             float64       `json:"rate,omitempty"`
	Inflight         int           `json:"inflight"`
	Timeout          time.Duration `json:"timeout_ns"`
	Warmup           time.Duration `json:"warmup_ns"`
	Faults           bool          `json:"faults"`
	Rollout          bool          `json:"rollout"`
	FaultDuration    time.Duration `json:"fault_duration_ns"`
	FaultPercent     float64       `json:"fault_percent"`
	Slow             time.Duration `json:"slow_ns"`
	ServeDuration    time.Duration `json:"serve_duration_ns"`
	Grace            time.Duration `json:"grace_ns"`
	Seed             uint64        `json:"seed"`
	Quiet            time.Duration `json:"quiet_ns"`
	EnvoyConcurrency int           `json:"envoy_concurrency"`
	EnvoyCPUs        string        `json:"envoy_cpus"`
	LoadCPUs         string        `json:"load_cpus"`
	JSON, Keep       bool          `json:"-"`
	Trace            string        `json:"-"`
}

// parse reads the command line into c.
func (c *config) parse(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("envoyload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Percents = []float64{10, 100}
	fs.Func("percents", "mirror percentages, one closed and one open phase each (comma-separated, (0, 100]; default 10,100)", func(s string) error {
		c.Percents = nil
		for f := range strings.SplitSeq(s, ",") {
			p, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return err
			}
			c.Percents = append(c.Percents, p)
		}
		return nil
	})
	fs.IntVar(&c.Workers, "workers", 16, "closed-loop workers")
	fs.DurationVar(&c.ClosedDuration, "closed-duration", 16*time.Second, "closed-loop (throughput) phase per percent, all arms together")
	fs.DurationVar(&c.Duration, "duration", 60*time.Second, "open-loop (latency) phase per percent, all arms together")
	fs.DurationVar(&c.Slice, "slice", 500*time.Millisecond, "length of one arm's turn; each round holds every arm once, in a random order")
	fs.DurationVar(&c.Settle, "settle", 100*time.Millisecond, "start of each slice that is run but not recorded")
	fs.Float64Var(&c.Fraction, "fraction", 0.5, "open-loop rate as a fraction of plain's closed-loop maximum (of the same percent)")
	fs.Float64Var(&c.Rate, "rate", 0, "open-loop rate in requests per second (0: -fraction × plain's maximum)")
	fs.DurationVar(&c.Quiet, "quiet", 30*time.Second, "before each phase, wait up to this long for the machine to be idle (all < 0.1 core for 1 s); 0: don't wait")
	fs.IntVar(&c.Inflight, "inflight", 256, "open-loop concurrency limit (requests beyond it queue, and their wait is counted)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&c.Warmup, "warmup", 500*time.Millisecond, "warm-up per route, not recorded (0: none, and no check that every arm mirrors)")
	fs.BoolVar(&c.Faults, "faults", false, "also run the shadow fault arms: blackholed, slow, refusing")
	fs.BoolVar(&c.Rollout, "rollout", false, "also run the rollout arms: promoted (the candidate answers through the aggregate cluster), and its fallback (candidate refusing)")
	fs.DurationVar(&c.FaultDuration, "fault-duration", 32*time.Second, "open-loop fault phase, all arms together")
	fs.Float64Var(&c.FaultPercent, "fault-percent", 10, "mirror percentage of the fault arms")
	fs.DurationVar(&c.Slow, "slow", 5*time.Second, "delay of the slow shadow")
	fs.DurationVar(&c.ServeDuration, "serve-duration", 16*time.Second, "closed-loop serve phase (1 KiB and 16 KiB answers, 100 % captured); 0: skip")
	fs.DurationVar(&c.Grace, "grace", 100*time.Millisecond, "pairer grace (compare a pair within its own slice)")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the arm order (0: from the clock)")
	fs.BoolVar(&c.JSON, "json", false, "print JSON instead of markdown")
	fs.BoolVar(&c.Keep, "keep", false, "keep the working directory (policy, Envoy and serve logs)")
	fs.IntVar(&c.EnvoyConcurrency, "envoy-concurrency", 1, "Envoy's worker threads")
	fs.StringVar(&c.EnvoyCPUs, "envoy-cpus", "1", "pin Envoy to these `CPUs`, as taskset -c lists them (1, 0-1, 0,2); empty: any")
	fs.StringVar(&c.LoadCPUs, "load-cpus", "0", "pin the generator (every thread, sched_setaffinity), and so the example services and serve it starts, to these `CPUs`; empty: any")
	fs.StringVar(&c.Trace, "trace", "", "write every open-loop request of each phase as CSV to `PREFIX`-<phase>.csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var checks harness.Checks
	checks.Check(len(c.Percents) >= 1 && len(c.Percents) <= 3, "-percents: 1 to 3 percentages (got %d)", len(c.Percents))
	for _, p := range append(slices.Clone(c.Percents), c.FaultPercent) {
		checks.Check(p > 0 && p <= 100, "-percents, -fault-percent: must be in (0, 100] (got %g)", p)
	}
	checks.Check(c.Workers >= 1 && c.Workers <= 1024, "-workers: must be 1-1024 (got %d)", c.Workers)
	checks.Check(c.Inflight >= 1 && c.Inflight <= 10_000, "-inflight: must be 1-10000 (got %d)", c.Inflight)
	checks.Check(c.Fraction > 0 && c.Fraction <= 1, "-fraction: must be in (0, 1] (got %g)", c.Fraction)
	checks.Check(c.Rate >= 0 && c.Rate <= 100_000, "-rate: must be 0-100000 (got %g)", c.Rate)
	checks.Check(c.Slice >= 100*time.Millisecond && c.Slice <= time.Minute, "-slice: must be 100ms-1m (got %s)", c.Slice)
	checks.Check(c.Settle >= 0 && c.Settle < c.Slice, "-settle: must be in [0, slice) (got %s)", c.Settle)
	for name, d := range map[string]time.Duration{"-duration": c.Duration, "-closed-duration": c.ClosedDuration, "-fault-duration": c.FaultDuration} {
		checks.Check(d >= 4*c.Slice && d <= 10*time.Minute, "%s: must be 4 slices (one round)-10m (got %s)", name, d)
	}
	checks.Check(c.ServeDuration == 0 || c.ServeDuration >= 2*c.Slice && c.ServeDuration <= 10*time.Minute, "-serve-duration: must be 0 or 2 slices-10m (got %s)", c.ServeDuration)
	checks.Check(c.Timeout >= 100*time.Millisecond && c.Timeout <= time.Minute, "-timeout: must be 100ms-1m (got %s)", c.Timeout)
	checks.Check(c.Warmup >= 0 && c.Warmup <= time.Minute, "-warmup: must be 0-1m (got %s)", c.Warmup)
	checks.Check(c.Slow > 0 && c.Slow <= time.Minute, "-slow: must be in (0, 1m] (got %s)", c.Slow)
	checks.Check(c.Grace > 0 && c.Grace <= 10*time.Second, "-grace: must be in (0, 10s] (got %s)", c.Grace)
	checks.Check(c.EnvoyConcurrency >= 1 && c.EnvoyConcurrency <= 64, "-envoy-concurrency: must be 1-64 (got %d)", c.EnvoyConcurrency)
	checks.Check(c.Quiet >= 0 && c.Quiet <= 10*time.Minute, "-quiet: must be 0-10m (got %s)", c.Quiet)
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	return checks.Err()
}

// maxRequests bounds the requests of one open-loop phase (and the memory
// of their timings: 17 bytes each).
const maxRequests = 10_000_000

func main() {
	if len(os.Args) == 3 && os.Args[1] == sutArg {
		if err := runSUT(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "envoyload sut: %v\n", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	harness.Main("envoyload", &cfg.Keep, cfg.parse, func(ctx context.Context, lab *harness.Lab, log *zap.Logger) error {
		res, err := run(ctx, cfg, lab, log)
		if err != nil {
			return err
		}
		if cfg.JSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}
		return writeMarkdown(os.Stdout, res)
	})
}

// bench is everything a run drives.
type bench struct {
	cfg    config
	log    *zap.Logger
	envoy  *harness.Envoy
	base   string // http://<Envoy's listener>
	api    string // serve's API
	client *client
	rng    *rand.Rand
	pids   []int // in the order procGenerator … procEnvoy
}

func run(ctx context.Context, cfg config, lab *harness.Lab, log *zap.Logger) (*results, error) {
	// Build serve and the plugin before pinning: the build would otherwise
	// run on the generator's CPUs only.
	for _, build := range []func() (string, error){harness.BuildShadowlab, harness.BuildPlugin} {
		if _, err := build(); err != nil {
			return nil, err
		}
	}
	if cfg.LoadCPUs != "" {
		if err := harness.PinProcess(cfg.LoadCPUs); err != nil {
			return nil, err
		}
	}
	sut, services, err := startSUT(ctx, lab, sutConfig{Dir: lab.Dir, Faults: cfg.Faults || cfg.Rollout, Slow: cfg.Slow})
	if err != nil {
		return nil, err
	}
	var phases [][]arm
	for _, p := range cfg.Percents {
		phases = append(phases, percentArms(p))
	}
	if cfg.Faults {
		phases = append(phases, faultArms(cfg.FaultPercent, cfg.Slow.String()))
	}
	if cfg.ServeDuration > 0 {
		phases = append(phases, serveArms())
	}
	if cfg.Rollout {
		phases = append(phases, rolloutArms())
	}
	all := slices.Concat(phases...)
	sv, err := startServe(ctx, lab, cfg, services, all)
	if err != nil {
		return nil, err
	}
	boot, err := harness.DynamicBootstrap("envoyload", sv.xds, false)
	if err != nil {
		return nil, err
	}
	p, err := lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot, LogLevel: "warning", Concurrency: cfg.EnvoyConcurrency, CPUs: cfg.EnvoyCPUs})
	if err != nil {
		return nil, err
	}
	b := &bench{
		cfg: cfg, log: log, envoy: p, base: "http://" + sv.listener, api: sv.api,
		client: newClient(max(cfg.Workers, cfg.Inflight), cfg.Timeout),
		rng:    rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		pids:   []int{procGenerator: os.Getpid(), procServices: sut.Pid(), procServe: sv.proc.Pid(), procEnvoy: p.Pid()},
	}
	defer b.client.close()
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(waitCtx, b.base+plainArm.Path, func(r *http.Response) bool {
		return r.StatusCode == http.StatusOK && r.Header.Get(backend.HeaderBackend) == "legacy"
	}); err != nil {
		return nil, fmt.Errorf("envoy never routed to the primary: %w", err)
	}
	res := &results{Machine: harness.DescribeMachine(), Params: cfg, CPUs: map[string]string{}}
	for i, name := range []string{"generator", "services", "serve", "envoy"} {
		if res.CPUs[name], err = harness.AllowedCPUs(b.pids[i]); err != nil {
			return nil, err
		}
	}
	if err := b.warm(ctx, all); err != nil {
		return nil, err
	}
	if err := b.measure(ctx, res, phases); err != nil {
		return nil, err
	}
	counts, err := captureReports(ctx, b.api, all)
	if err != nil {
		return nil, err
	}
	for _, a := range distinct(all) {
		if a.Capture {
			res.Routes = append(res.Routes, routeCounts{Route: a.Route, captureCounts: counts[a.Route]})
		}
	}
	select {
	case <-p.Exited():
		return nil, errors.New("envoy exited during the run")
	default:
	}
	res.budgets()
	return res, nil
}

// measure runs the phases: for each percent a closed and an open loop,
// then the faults and serve's phase.
func (b *bench) measure(ctx context.Context, res *results, phases [][]arm) error {
	faultRate := 0.0
	for i, p := range b.cfg.Percents {
		pr := percentResult{Percent: p}
		var err error
		if pr.Throughput, err = b.phase(ctx, fmt.Sprintf("closed-%g", p), phases[i], 0, b.cfg.ClosedDuration); err != nil {
			return err
		}
		rate := b.cfg.Fraction * pr.Throughput.Arms[armPlain].RPS
		if b.cfg.Rate > 0 {
			rate = b.cfg.Rate
		}
		if rate < 1 {
			return fmt.Errorf("plain's maximum throughput is %.1f rps: nothing to measure", pr.Throughput.Arms[armPlain].RPS)
		}
		if faultRate == 0 {
			faultRate = rate
		}
		if pr.Latency, err = b.phase(ctx, fmt.Sprintf("open-%g", p), phases[i], rate, b.cfg.Duration); err != nil {
			return err
		}
		pr.ClosedCost, pr.Cost = costOf(pr.Throughput.Arms), costOf(pr.Latency.Arms)
		res.Percents = append(res.Percents, pr)
	}
	next := len(b.cfg.Percents)
	if b.cfg.Faults {
		f, err := b.phase(ctx, "faults", phases[next], faultRate, b.cfg.FaultDuration)
		if err != nil {
			return err
		}
		res.Faults = &f
		next++
	}
	if b.cfg.ServeDuration > 0 {
		s, err := b.phase(ctx, "serve", phases[next], 0, b.cfg.ServeDuration)
		if err != nil {
			return err
		}
		res.Serve = &serveResult{Phase: s}
		for i, a := range s.Arms {
			us := perPair(a.CPU.ServeUs, a.Sent, a.Report.compared())
			res.Serve.Sizes = append(res.Serve.Sizes, serveSize{Bytes: serveBodies[i], ServeUs: us, PairsPerCore: pairsPerCore(us)})
		}
		next++
	}
	if b.cfg.Rollout {
		if faultRate == 0 {
			return errors.New("no rate for the rollout phase")
		}
		r, err := b.phase(ctx, "rollout", phases[next], faultRate, b.cfg.FaultDuration)
		if err != nil {
			return err
		}
		res.Rollout = &r
	}
	return nil
}

// served is a started serve and the addresses chosen for it and Envoy.
type served struct {
	proc               *harness.Proc
	listener, xds, api string
}

// startServe writes the policy of arms and starts `shadowlab serve` on it
// as a process, results in SQLite as by default.
func startServe(ctx context.Context, lab *harness.Lab, cfg config, services map[string]string, arms []arm) (served, error) {
	var addrs [4]string
	var err error
	for i := range addrs {
		if addrs[i], err = harness.FreeAddr(); err != nil {
			return served{}, err
		}
	}
	sv := served{listener: addrs[0], xds: addrs[1], api: addrs[2]}
	gateway := addrs[3]
	text := policyText(sv.listener, services, arms)
	if _, err := policy.Parse([]byte(text), "policy.yaml"); err != nil {
		return served{}, fmt.Errorf("the benchmark's own policy does not load: %w", err)
	}
	path := filepath.Join(lab.Dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return served{}, err
	}
	sv.proc, err = lab.ServeProc(ctx, serve.Config{
		PolicyPath: path, XDSAddress: sv.xds, GatewayAddress: gateway, APIAddress: sv.api,
		Report: report.Config{DBPath: filepath.Join(lab.Dir, "shadowlab.db")},
		// A short grace compares a pair within the slice that produced it
		// instead of charging the work to whichever arm comes next.
		Pairer: pair.Config{Grace: cfg.Grace},
	})
	return sv, err
}

// urls are the request URLs of arms.
func (b *bench) urls(arms []arm) []string {
	out := make([]string, len(arms))
	for i, a := range arms {
		out[i] = b.base + a.Path
	}
	return out
}

// probe is what is read before and after a phase: Envoy's shadow and
// capture counters, and serve's pairs per captured route.
type probe struct {
	counters map[string]int64
	reports  map[string]captureCounts
}

func (b *bench) probe(ctx context.Context, arms []arm) (probe, error) {
	c, err := b.envoy.Stats(ctx, shadowCounterFilter)
	if err != nil {
		return probe{}, err
	}
	r, err := captureReports(ctx, b.api, arms)
	return probe{counters: c, reports: r}, err
}

// afterRun waits, after a run, for the pairs of its last slice: the plugin
// sends its batches every tick, the pairer sweeps every 100 ms and
// compares a grace after the second half.
func (b *bench) afterRun(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(b.cfg.Grace + 400*time.Millisecond):
	}
}

// warm sends closed-loop traffic to every route, then checks that each
// mirrored one mirrored and each captured one was compared: a run with
// either silently off would measure nothing.
func (b *bench) warm(ctx context.Context, arms []arm) error {
	if b.cfg.Warmup == 0 {
		return nil
	}
	arms = distinct(arms)
	b.log.Info("warm-up", zap.Int("routes", len(arms)), zap.Duration("per_route", b.cfg.Warmup))
	before, err := b.probe(ctx, nil)
	if err != nil {
		return err
	}
	runs, _ := runClosed(ctx, b.client, b.urls(arms), b.cfg.Workers, harness.Slicing{Slice: b.cfg.Warmup, Order: harness.Interleave(len(arms), 1, b.rng)}, b.pids)
	b.afterRun(ctx)
	after, err := b.probe(ctx, arms)
	if err != nil {
		return err
	}
	if errs := b.client.takeErrors(); len(errs) > 0 {
		return fmt.Errorf("warm-up: requests failed: %v", errs)
	}
	d := delta(after.counters, before.counters)
	var problems []error
	for i, a := range arms {
		s := shadowStatsOf(d, a)
		switch {
		case a.Shadow == "" || a.Stage != "": // a rollout arm mirrors nothing
		case s.Sent == 0:
			problems = append(problems, fmt.Errorf("%s: %d requests, none mirrored", a.Route, runs[i].Sent))
		case a.Capture && a.Shadow == "candidate" && after.reports[a.Route].Pairs == 0:
			problems = append(problems, fmt.Errorf("%s: %d mirrored, but no pair recorded", a.Route, s.Sent))
		}
	}
	if err := errors.Join(problems...); err != nil {
		return fmt.Errorf("warm-up: mirroring or capture is off: %w", err)
	}
	return ctx.Err()
}

// phase runs arms interleaved for d: a closed loop when rate is 0, an open
// loop at rate otherwise.
func (b *bench) phase(ctx context.Context, name string, arms []arm, rate float64, d time.Duration) (phaseResult, error) {
	n := len(arms)
	sl := harness.Slicing{Slice: b.cfg.Slice, Settle: b.cfg.Settle, Order: harness.Interleave(n, int(d/(time.Duration(n)*b.cfg.Slice)), b.rng)}
	if rate > 0 {
		if n := (schedule{rate: rate}).count(sl.Total()); n > maxRequests {
			return phaseResult{}, fmt.Errorf("%.0f rps for %s is %d requests, more than the %d a phase may hold: lower -rate, -fraction or -duration", rate, sl.Total(), n, maxRequests)
		}
	}
	b.log.Info("phase", zap.String("phase", name), zap.Int("arms", n), zap.Float64("rps", rate), zap.Duration("duration", sl.Total()))
	if _, err := harness.WaitQuiet(ctx, b.cfg.Quiet, b.log, b.pids...); err != nil {
		return phaseResult{}, err
	}
	before, err := b.probe(ctx, arms)
	if err != nil {
		return phaseResult{}, err
	}
	urls := b.urls(arms)
	var runs []armRun
	var cpu []harness.CPUSample
	if rate == 0 {
		runs, cpu = runClosed(ctx, b.client, urls, b.cfg.Workers, sl, b.pids)
	} else {
		run := runOpen(ctx, b.client, urls, rate, sl, b.cfg.Inflight, b.pids)
		if b.cfg.Trace != "" {
			if err := run.writeCSV(b.cfg.Trace + "-" + name + ".csv"); err != nil {
				return phaseResult{}, err
			}
		}
		runs, cpu = run.arms(n), run.cpu
	}
	b.afterRun(ctx)
	after, err := b.probe(ctx, arms)
	if err != nil {
		return phaseResult{}, err
	}
	r := phaseResult{Name: name, TargetRPS: rate, DurationS: sl.Total().Seconds(), CPU: phaseUsage(cpu), ErrorKinds: b.client.takeErrors()}
	if rate == 0 {
		r.Workers = b.cfg.Workers
	}
	sent := make([]int, n)
	for a := range runs {
		sent[a] = runs[a].Sent
	}
	cpus, stats := armsCPU(cpu, sl, sent), delta(after.counters, before.counters)
	for a, ar := range arms {
		res := armResult{arm: ar, armRun: runs[a], CPU: cpus[a], Shadow: shadowStatsOf(stats, ar)}
		res.Share = ratio(res.Shadow.Sent, int64(res.Sent))
		if ar.Capture {
			res.Report = after.reports[ar.Route].minus(before.reports[ar.Route])
		}
		r.Arms = append(r.Arms, res)
		b.log.Info("arm", zap.String("phase", name), zap.String("route", ar.Route), zap.Float64("rps", res.RPS), zap.Int("errors", res.Errors),
			zap.Float64("envoy_us", res.CPU.EnvoyUs), zap.Float64("serve_us", res.CPU.ServeUs), zap.Int("pairs", res.Report.Pairs))
	}
	b.log.Info("phase done", zap.String("phase", name), zap.Float64("cpu_ours", r.CPU.Ours), zap.Float64("cpu_others", r.CPU.Others), zap.Float64("cpu_steal", r.CPU.Steal))
	return r, ctx.Err()
}

// startSUT starts this binary as the example services and reads the
// addresses they report.
func startSUT(ctx context.Context, lab *harness.Lab, cfg sutConfig) (*harness.Proc, map[string]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	p, err := lab.Start("sut", self, sutArg, string(arg))
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var services map[string]string
	line, err := p.FirstLine(ctx)
	if err == nil {
		err = json.Unmarshal([]byte(line), &services)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("services: %w", err)
	}
	return p, services, nil
}
