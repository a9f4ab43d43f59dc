// Command envoyload measures what mirroring and capture cost a real Envoy:
// the latency and throughput of a plain route (primary only) against a
// mirrored and captured route (a percentage mirrored to a shadow, both
// responses captured by ext_proc in observability mode) on the same Envoy,
// with the two arms interleaved in time.
//
//	go run ./bench/envoyload [flags]
//
// Phases: a short warm-up; closed loop (N workers, each sending its next
// request when the previous one is answered) to find the maximum throughput
// of each arm; open loop at a fraction of plain's maximum, each request sent
// at its scheduled time and its latency measured from that time, so that a
// stall is counted for every request it delays (no coordinated omission);
// with -faults, the same open loop against routes whose shadow is
// blackholed, slow or refusing. It prints a markdown section (or JSON with
// -json) on stdout and its progress on stderr.
//
// The arms take turns in time slices (-slice, default 500 ms), each pair of
// slices in a random order. Interleaving request by request would have plain
// requests share Envoy, serve and the CPUs with the mirrored arm's shadow
// requests and captures at the same instants, charging part of mirroring's
// cost to plain and pulling the ratios toward 1; slices let each arm run on
// its own while alternating often enough that drift and noisy neighbours hit
// both arms alike. The first -settle of each slice (the previous arm's tail)
// is run but not recorded, and the capture pairer's grace is shortened so
// that a pair is compared within the slice that produced it.
//
// The machine may be shared: before each phase it waits (up to -quiet) for
// the machine to be idle, and it reports the CPU that other processes and the
// hypervisor took during each phase, and the CPU time per request of each
// arm by process (Envoy, services + serve, generator), read from /proc at
// every slice boundary.
//
// Envoy, the example services and `shadowlab serve` run on loopback; the
// services and serve in a child process (this binary with the argument
// "sut"), so the load generator shares only the CPUs with them.
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
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
)

// config is the command line.
type config struct {
	percent        float64
	workers        int
	closedDuration time.Duration
	duration       time.Duration
	slice, settle  time.Duration
	fraction       float64
	inflight       int
	timeout        time.Duration
	warmup         time.Duration
	faults         bool
	faultDuration  time.Duration
	slow           time.Duration
	grace          time.Duration
	seed           uint64
	json           bool
	trace          string
	keep           bool
	rate           float64
	capture        bool
	quiet          time.Duration
	concurrency    int
	cpus           string
}

// parse reads the command line into c.
func (c *config) parse(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("envoyload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Float64Var(&c.percent, "percent", 10, "mirror percentage of the mirrored route (0-100)")
	fs.IntVar(&c.workers, "workers", 16, "closed-loop workers")
	fs.DurationVar(&c.closedDuration, "closed-duration", 8*time.Second, "closed-loop (throughput) phase, both arms")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "open-loop (latency) phase, both arms")
	fs.DurationVar(&c.slice, "slice", 500*time.Millisecond, "length of one arm's turn; arms alternate in a random order per pair")
	fs.DurationVar(&c.settle, "settle", 100*time.Millisecond, "start of each slice that is run but not recorded")
	fs.Float64Var(&c.fraction, "fraction", 0.5, "open-loop rate as a fraction of plain's closed-loop maximum")
	fs.Float64Var(&c.rate, "rate", 0, "open-loop rate in requests per second, both arms together (0: -fraction × plain's maximum)")
	fs.BoolVar(&c.capture, "capture", true, "capture (ext_proc) on; false measures mirroring alone")
	fs.DurationVar(&c.quiet, "quiet", time.Minute, "before each phase, wait up to this long for the machine to be idle (others < 0.1 core for 1 s); 0: don't wait")
	fs.IntVar(&c.inflight, "inflight", 256, "open-loop concurrency limit (requests beyond it queue, and their wait is counted)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "warm-up per arm, not recorded")
	fs.BoolVar(&c.faults, "faults", false, "also run the shadow fault arms: blackholed, slow, refusing")
	fs.DurationVar(&c.faultDuration, "fault-duration", 10*time.Second, "open-loop phase per fault, both arms")
	fs.DurationVar(&c.slow, "slow", 5*time.Second, "delay of the slow shadow")
	fs.DurationVar(&c.grace, "grace", 100*time.Millisecond, "capture pairer grace (compare a pair within its own slice)")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the arm order (0: from the clock)")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of markdown")
	fs.BoolVar(&c.keep, "keep", false, "keep the working directory (policy, Envoy and serve logs)")
	fs.IntVar(&c.concurrency, "envoy-concurrency", 2, "Envoy's worker threads")
	fs.StringVar(&c.cpus, "envoy-cpus", "", "pin Envoy to these CPUs, as taskset -c lists them (`1`, 0-1); default: any")
	fs.StringVar(&c.trace, "trace", "", "write every open-loop request of each phase as CSV to `PREFIX`-<route>.csv")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var checks harness.Checks
	checks.Check(c.percent > 0 && c.percent <= 100, "-percent: must be in (0, 100] (got %g)", c.percent)
	checks.Check(c.workers >= 1 && c.workers <= 1024, "-workers: must be 1-1024 (got %d)", c.workers)
	checks.Check(c.inflight >= 1 && c.inflight <= 10_000, "-inflight: must be 1-10000 (got %d)", c.inflight)
	checks.Check(c.fraction > 0 && c.fraction <= 1, "-fraction: must be in (0, 1] (got %g)", c.fraction)
	checks.Check(c.rate >= 0 && c.rate <= 100_000, "-rate: must be 0-100000 (got %g)", c.rate)
	checks.Check(c.slice >= 100*time.Millisecond && c.slice <= time.Minute, "-slice: must be 100ms-1m (got %s)", c.slice)
	checks.Check(c.settle >= 0 && c.settle < c.slice, "-settle: must be in [0, slice) (got %s)", c.settle)
	for name, d := range map[string]time.Duration{"-duration": c.duration, "-closed-duration": c.closedDuration, "-fault-duration": c.faultDuration} {
		checks.Check(d >= 2*c.slice && d <= 10*time.Minute, "%s: must be 2 slices-10m (got %s)", name, d)
	}
	checks.Check(c.timeout >= 100*time.Millisecond && c.timeout <= time.Minute, "-timeout: must be 100ms-1m (got %s)", c.timeout)
	checks.Check(c.warmup >= 0 && c.warmup <= time.Minute, "-warmup: must be 0-1m (got %s)", c.warmup)
	checks.Check(c.slow > 0 && c.slow <= time.Minute, "-slow: must be in (0, 1m] (got %s)", c.slow)
	checks.Check(c.grace > 0 && c.grace <= 10*time.Second, "-grace: must be in (0, 10s] (got %s)", c.grace)
	checks.Check(c.concurrency >= 1 && c.concurrency <= 64, "-envoy-concurrency: must be 1-64 (got %d)", c.concurrency)
	checks.Check(c.quiet >= 0 && c.quiet <= 10*time.Minute, "-quiet: must be 0-10m (got %s)", c.quiet)
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
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
	harness.Main("envoyload", &cfg.keep, cfg.parse, func(ctx context.Context, lab *harness.Lab, log *zap.Logger) error {
		res, err := run(ctx, cfg, lab, log)
		if err != nil {
			return err
		}
		if cfg.json {
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
	addrs  sutAddrs
	client *client
	rng    *rand.Rand
	pids   []int // in the order procGenerator, procSUT, procEnvoy
}

// probe is what is read before and after a phase: Envoy's shadow and
// capture counters and the CPU time used.
type probe struct {
	counters map[string]int64
	cpu      harness.CPUSample
}

func (b *bench) probe(ctx context.Context) (probe, error) {
	c, err := b.envoy.Stats(ctx, shadowCounterFilter)
	if err != nil {
		return probe{}, err
	}
	cpu, err := harness.SampleCPU(b.pids...)
	return probe{counters: c, cpu: cpu}, err
}

func run(ctx context.Context, cfg config, lab *harness.Lab, log *zap.Logger) (*results, error) {
	sut, addrs, err := startSUT(ctx, lab, sutConfig{Dir: lab.Dir, Percent: cfg.percent, Faults: cfg.faults, Grace: cfg.grace, Slow: cfg.slow, Capture: cfg.capture})
	if err != nil {
		return nil, err
	}
	log.Info("system under test", zap.String("listener", addrs.Listener), zap.String("xds", addrs.XDS), zap.String("policy", addrs.Policy))
	boot, err := harness.DynamicBootstrap("envoyload", addrs.XDS, false)
	if err != nil {
		return nil, err
	}
	p, err := lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot, LogLevel: "warning", Concurrency: cfg.concurrency, CPUs: cfg.cpus})
	if err != nil {
		return nil, err
	}
	b := &bench{
		cfg: cfg, log: log, envoy: p, addrs: addrs,
		client: newClient(max(cfg.workers, cfg.inflight), cfg.timeout),
		rng:    rand.New(rand.NewPCG(cfg.seed, 0x5eed)),
		pids:   []int{procGenerator: os.Getpid(), procSUT: sut.Pid(), procEnvoy: p.Pid()},
	}
	defer b.client.close()
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(waitCtx, "http://"+addrs.Listener+pathPlain+"ready", func(r *http.Response) bool {
		return r.StatusCode == http.StatusOK && r.Header.Get(backend.HeaderBackend) == "legacy"
	}); err != nil {
		return nil, fmt.Errorf("envoy never routed to the primary: %w", err)
	}
	res := &results{Machine: harness.DescribeMachine(), Params: paramsOf(cfg)}
	if err := b.warm(ctx); err != nil {
		return nil, err
	}
	if res.Throughput, err = b.throughput(ctx); err != nil {
		return nil, err
	}
	rate := cfg.fraction * res.Throughput.Plain.RPS
	if cfg.rate > 0 {
		rate = cfg.rate
	}
	if rate < 1 {
		return nil, fmt.Errorf("plain's maximum throughput is %.1f rps: nothing to measure", res.Throughput.Plain.RPS)
	}
	if res.Latency, err = b.latency(ctx, "mirrored", pathMirrored, rate, cfg.duration); err != nil {
		return nil, err
	}
	if cfg.faults {
		for _, f := range []struct{ name, route, path string }{
			{"blackholed", "shadow-blackholed", pathBlackholed},
			{"slow " + cfg.slow.String(), "shadow-slow", pathSlow},
			{"refusing", "shadow-refused", pathRefused},
		} {
			lr, err := b.latency(ctx, f.route, f.path, rate, cfg.faultDuration)
			if err != nil {
				return nil, err
			}
			res.Faults = append(res.Faults, faultResult{Fault: f.name, Route: f.route, Result: lr})
		}
	}
	res.Outcomes = map[string]int{}
	if cfg.capture {
		rr, err := routeReport(ctx, addrs.API, "mirrored")
		if err != nil {
			return nil, err
		}
		res.Pairs = rr.Pairs
		for k, v := range rr.Outcomes {
			res.Outcomes[string(k)] = v
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

// urls are the request URLs of the plain arm and of the route at path.
func (b *bench) urls(path string) [numArms]string {
	base := "http://" + b.addrs.Listener
	return [numArms]string{armBase: base + pathPlain + "item/1", armTest: base + path + "item/1"}
}

// warm sends closed-loop traffic to both arms, then checks that Envoy
// mirrored and captured some of it: a run with mirroring silently off would
// measure nothing.
func (b *bench) warm(ctx context.Context) error {
	if b.cfg.warmup == 0 {
		return nil
	}
	b.log.Info("warm-up", zap.Duration("per_arm", b.cfg.warmup))
	before, err := b.envoy.Stats(ctx, shadowCounterFilter)
	if err != nil {
		return err
	}
	run := runClosed(ctx, b.client, b.urls(pathMirrored), b.cfg.workers, harness.Slicing{Slice: b.cfg.warmup, Order: []int{armBase, armTest}}, b.pids)
	after, err := b.envoy.Stats(ctx, shadowCounterFilter)
	if err != nil {
		return err
	}
	if errs := b.client.takeErrors(); len(errs) > 0 {
		return fmt.Errorf("warm-up: requests failed: %v", errs)
	}
	s := shadowStatsOf(delta(after, before), "mirrored")
	if s.Sent == 0 || (b.cfg.capture && s.CaptureStreams == 0) {
		return fmt.Errorf("warm-up: %d mirrored-route requests, but %d mirrored and %d captured: mirroring or capture is off", run.sent[armTest], s.Sent, s.CaptureStreams)
	}
	return ctx.Err()
}

// throughput is the closed-loop phase: each arm's maximum, interleaved.
func (b *bench) throughput(ctx context.Context) (throughputResult, error) {
	sl := harness.Slicing{Slice: b.cfg.slice, Settle: b.cfg.settle, Order: harness.Interleave(int(b.cfg.closedDuration/(2*b.cfg.slice)), b.rng)}
	b.log.Info("closed loop: maximum throughput", zap.Int("workers", b.cfg.workers), zap.Duration("duration", sl.Total()))
	if _, err := harness.WaitQuiet(ctx, b.cfg.quiet, b.log, b.pids...); err != nil {
		return throughputResult{}, err
	}
	before, err := b.probe(ctx)
	if err != nil {
		return throughputResult{}, err
	}
	run := runClosed(ctx, b.client, b.urls(pathMirrored), b.cfg.workers, sl, b.pids)
	after, err := b.probe(ctx)
	if err != nil {
		return throughputResult{}, err
	}
	var r throughputResult
	for a, arm := range []*closedArm{&r.Plain, &r.Mirrored} {
		*arm = closedArm{Requests: run.ok[a] + run.errored[a], Errors: run.errored[a], RPS: run.rps(a)}
	}
	r.Ratio = ratio(r.Mirrored.RPS, r.Plain.RPS)
	r.Shadow = shadowStatsOf(delta(after.counters, before.counters), "mirrored")
	r.Share = ratio(float64(r.Shadow.Sent), float64(run.sent[armTest]))
	r.CPU = usageOf(before.cpu.Until(after.cpu))
	cpu := armsCPU(run.cpu, sl, run.sent)
	r.Plain.CPU, r.Mirrored.CPU = cpu[armBase], cpu[armTest]
	r.ErrorKinds = b.client.takeErrors()
	b.log.Info("closed loop done", zap.Float64("plain_rps", r.Plain.RPS), zap.Float64("mirrored_rps", r.Mirrored.RPS), zap.Float64("ratio", r.Ratio),
		zap.Float64("cpu_ours", r.CPU.Ours), zap.Float64("cpu_others", r.CPU.Others), zap.Float64("cpu_steal", r.CPU.Steal))
	return r, ctx.Err()
}

// latency is an open-loop phase at rate: plain against the route at path.
func (b *bench) latency(ctx context.Context, route, path string, rate float64, d time.Duration) (latencyResult, error) {
	sl := harness.Slicing{Slice: b.cfg.slice, Settle: b.cfg.settle, Order: harness.Interleave(int(d/(2*b.cfg.slice)), b.rng)}
	if n := (schedule{rate: rate}).count(sl.Total()); n > maxRequests {
		return latencyResult{}, fmt.Errorf("%.0f rps for %s is %d requests, more than the %d a phase may hold: lower -rate, -fraction or -duration", rate, sl.Total(), n, maxRequests)
	}
	b.log.Info("open loop", zap.String("route", route), zap.Float64("rps", rate), zap.Duration("duration", sl.Total()))
	if _, err := harness.WaitQuiet(ctx, b.cfg.quiet, b.log, b.pids...); err != nil {
		return latencyResult{}, err
	}
	before, err := b.probe(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	run := runOpen(ctx, b.client, b.urls(path), rate, sl, b.cfg.inflight, b.pids)
	after, err := b.probe(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	if b.cfg.trace != "" {
		if err := writeFile(b.cfg.trace+"-"+route+".csv", run.writeCSV); err != nil {
			return latencyResult{}, err
		}
	}
	arms := run.arms()
	r := latencyResult{
		TargetRPS: rate,
		Plain:     armLatencyOf(arms[armBase]),
		Test:      armLatencyOf(arms[armTest]),
		Shadow:    shadowStatsOf(delta(after.counters, before.counters), route),
		CPU:       usageOf(before.cpu.Until(after.cpu)),
	}
	cpu := armsCPU(run.cpu, sl, [numArms]int{arms[armBase].Sent, arms[armTest].Sent})
	r.Plain.CPU, r.Test.CPU = cpu[armBase], cpu[armTest]
	r.P50Ratio = ratio(arms[armTest].Latency.P50, arms[armBase].Latency.P50)
	r.P99Ratio = ratio(arms[armTest].Latency.P99, arms[armBase].Latency.P99)
	r.Share = ratio(float64(r.Shadow.Sent), float64(arms[armTest].Sent))
	r.ErrorKinds = b.client.takeErrors()
	b.log.Info("open loop done", zap.String("route", route),
		zap.Duration("plain_p50", arms[armBase].Latency.P50), zap.Duration("test_p50", arms[armTest].Latency.P50),
		zap.Duration("plain_p99", arms[armBase].Latency.P99), zap.Duration("test_p99", arms[armTest].Latency.P99),
		zap.Float64("cpu_ours", r.CPU.Ours), zap.Float64("cpu_others", r.CPU.Others), zap.Float64("cpu_steal", r.CPU.Steal))
	return r, ctx.Err()
}

// startSUT starts this binary as the system under test and reads the
// addresses it reports.
func startSUT(ctx context.Context, lab *harness.Lab, cfg sutConfig) (*harness.Proc, sutAddrs, error) {
	var addrs sutAddrs
	self, err := os.Executable()
	if err != nil {
		return nil, addrs, err
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		return nil, addrs, err
	}
	p, err := lab.Start("sut", self, sutArg, string(arg))
	if err != nil {
		return nil, addrs, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	line, err := p.FirstLine(ctx)
	if err == nil {
		err = json.Unmarshal([]byte(line), &addrs)
	}
	if err != nil {
		return nil, addrs, fmt.Errorf("system under test: %w", err)
	}
	return p, addrs, nil
}

// writeFile creates path and writes it with write.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
