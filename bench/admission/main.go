// Command admission measures shadowlab's admission plugin on a real Envoy:
// what the plugin costs per request, and what a burst does to the upstream
// behind Envoy's own local_ratelimit and behind the plugin in delay mode.
//
//	go run ./bench/admission [flags]
//
// It builds the plugin (./wasm, as `make build` does) into a temporary
// directory, writes a static bootstrap with one listener and one route per
// arm, starts Envoy (--concurrency 2) and an in-process Go upstream that
// records the arrival of every request. Everything shares this machine's
// CPUs over loopback. Phases:
//
//   - start-up: Envoy with the same bootstrap without the wasm filters, and
//     with them, started in turn; time from exec to /ready LIVE, and RSS.
//   - cost: a plain route against a route through the plugin with a limit
//     it never reaches (pure plugin cost), arms interleaved in short slices
//     in a random order; a few paced workers, then one request at a time.
//   - bursts: the same burst (all clients released by one channel close,
//     on connections opened beforehand) to a plain route, to a route with
//     envoy.filters.http.local_ratelimit (429 over the limit), to the plugin
//     in delay mode, and to local_ratelimit with clients that retry after
//     1 s. One after another, each after the machine is quiet.
//
// It prints a markdown section on stdout and its progress on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// config is the command line.
type config struct {
	wasm         string
	costConfig   string
	delayConfig  string
	limit        int
	burst        int
	attempts     int
	backoff      time.Duration
	workers      int
	rate         float64
	costDuration time.Duration
	slice        time.Duration
	settle       time.Duration
	starts       int
	quiet        time.Duration
	timeout      time.Duration
	seed         uint64
	trace        string
	keep         bool
}

// parse reads the command line into c.
func (c *config) parse(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("admission", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.wasm, "wasm", "", "plugin module to measure (default: build ./wasm into a temporary directory)")
	fs.StringVar(&c.costConfig, "cost-config", `{"limit": 1000000000, "window_ms": 1000, "max_delay_ms": 1000, "mode": "delay"}`,
		"plugin configuration of the cost arm: a limit it never reaches (any delay > 0, even 1 µs, waits for the next tick)")
	fs.StringVar(&c.delayConfig, "delay-config", `{"limit": 100, "window_ms": 1000, "max_delay_ms": 15000, "mode": "delay", "tick_ms": 20}`,
		"plugin configuration of the delay arm of the bursts")
	fs.IntVar(&c.limit, "limit", 100, "requests per second of local_ratelimit (max_tokens = tokens_per_fill, fill_interval 1s); the delay arm's limit should match")
	fs.IntVar(&c.burst, "burst", 1000, "clients released at one instant per burst")
	fs.IntVar(&c.attempts, "attempts", 20, "most attempts of a retrying client (the retry arm)")
	fs.DurationVar(&c.backoff, "backoff", time.Second, "wait of a retrying client after a 429")
	fs.IntVar(&c.workers, "workers", 4, "workers of the paced cost phase")
	fs.Float64Var(&c.rate, "rate", 1000, "requests per second of the paced cost phase, all workers together")
	fs.DurationVar(&c.costDuration, "cost-duration", 8*time.Second, "length of each cost phase, both arms")
	fs.DurationVar(&c.slice, "slice", 250*time.Millisecond, "length of one arm's turn in the cost phases")
	fs.DurationVar(&c.settle, "settle", 25*time.Millisecond, "start of each slice that is run but not recorded")
	fs.IntVar(&c.starts, "starts", 2, "Envoy starts measured per bootstrap (without and with the plugin)")
	fs.DurationVar(&c.quiet, "quiet", 3*time.Second, "before each phase, wait up to this long for a quiet machine")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the arm order (0: from the clock)")
	fs.StringVar(&c.trace, "trace", "", "write each burst arm's forwarded requests (Envoy saw it, held, Envoy sent it, arrival) as CSV to `PREFIX`-<route>.csv")
	fs.BoolVar(&c.keep, "keep", false, "keep the working directory (bootstrap, Envoy log, access log)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var checks harness.Checks
	checks.Check(c.limit >= 1 && c.limit <= 100_000, "-limit: must be 1-100000 (got %d)", c.limit)
	checks.Check(c.burst >= 1 && c.burst <= 10_000, "-burst: must be 1-10000 (got %d)", c.burst)
	checks.Check(c.attempts >= 1 && c.attempts <= 100, "-attempts: must be 1-100 (got %d)", c.attempts)
	checks.Check(c.backoff > 0 && c.backoff <= time.Minute, "-backoff: must be in (0, 1m] (got %s)", c.backoff)
	checks.Check(c.workers >= 1 && c.workers <= 256, "-workers: must be 1-256 (got %d)", c.workers)
	checks.Check(c.rate > 0 && c.rate <= 100_000, "-rate: must be in (0, 100000] (got %g)", c.rate)
	checks.Check(c.slice >= 50*time.Millisecond && c.slice <= time.Minute, "-slice: must be 50ms-1m (got %s)", c.slice)
	checks.Check(c.settle >= 0 && c.settle < c.slice, "-settle: must be in [0, slice) (got %s)", c.settle)
	checks.Check(c.costDuration >= 2*c.slice && c.costDuration <= 10*time.Minute, "-cost-duration: must be 2 slices-10m (got %s)", c.costDuration)
	checks.Check(c.starts >= 1 && c.starts <= 20, "-starts: must be 1-20 (got %d)", c.starts)
	checks.Check(c.quiet >= 0 && c.quiet <= 10*time.Minute, "-quiet: must be 0-10m (got %s)", c.quiet)
	checks.Check(c.timeout >= time.Second && c.timeout <= 5*time.Minute, "-timeout: must be 1s-5m (got %s)", c.timeout)
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return checks.Err()
}

func main() {
	var cfg config
	harness.Main("admission", &cfg.keep, cfg.parse, func(ctx context.Context, lab *harness.Lab, log *zap.Logger) error {
		res, err := run(ctx, cfg, lab, log)
		if err == nil {
			err = writeMarkdown(os.Stdout, res)
		}
		return err
	})
}

// bench is everything a run drives.
type bench struct {
	cfg    config
	log    *zap.Logger
	envoy  *harness.Envoy
	up     *upstream
	client *http.Client
	base   string // http://listener
}

func run(ctx context.Context, cfg config, lab *harness.Lab, log *zap.Logger) (*results, error) {
	res := &results{Machine: harness.DescribeMachine(), Params: cfg}
	var err error

	if cfg.wasm != "" {
		res.Module.Source = "`" + cfg.wasm + "` (-wasm)"
		if res.Module.Path, err = filepath.Abs(cfg.wasm); err == nil {
			err = res.Module.describe()
		}
	} else {
		log.Info("building the plugin")
		res.Module, err = buildModule()
	}
	if err != nil {
		return nil, err
	}
	log.Info("plugin", zap.Int64("bytes", res.Module.Bytes), zap.String("sha256", res.Module.SHA256), zap.String("source", res.Module.Source))

	up, err := startUpstream()
	if err != nil {
		return nil, err
	}
	defer up.close()
	listener, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	accessLog := filepath.Join(lab.Dir, "access.log")
	static := staticConfig(cfg, listener, up.addr(), accessLog)
	plainBoot, err := harness.StaticBootstrap(static)
	if err != nil {
		return nil, err
	}
	static.WasmPath = res.Module.Path
	wasmBoot, err := harness.StaticBootstrap(static)
	if err != nil {
		return nil, err
	}

	b := &bench{cfg: cfg, log: log, up: up, base: "http://" + listener, client: harness.Client(cfg.burst+100, cfg.timeout)}
	defer b.client.CloseIdleConnections()
	if err := b.startups(ctx, lab, plainBoot, wasmBoot, &res.Startup); err != nil {
		return nil, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(waitCtx, b.base+"/"+routePlain+"/ready", func(r *http.Response) bool { return r.StatusCode == http.StatusOK }); err != nil {
		return nil, fmt.Errorf("envoy never routed to the upstream: %w", err)
	}
	b.up.take(routePlain)

	rng := rand.New(rand.NewPCG(cfg.seed, 0xad))
	for _, ph := range []struct {
		name    string
		workers int
		pace    time.Duration
	}{
		{fmt.Sprintf("paced: %d workers, %g requests/s in all", cfg.workers, cfg.rate), cfg.workers, time.Duration(float64(cfg.workers) * float64(time.Second) / cfg.rate)},
		{"one request at a time, back to back", 1, 0},
	} {
		cp, err := b.cost(ctx, ph.name, ph.workers, ph.pace, rng)
		if err != nil {
			return nil, err
		}
		res.Cost = append(res.Cost, cp)
	}

	for _, arm := range []struct {
		name, route string
		attempts    int
	}{
		{"plain (no admission)", routePlain, 1},
		{fmt.Sprintf("local_ratelimit %d/s", cfg.limit), routeLRL, 1},
		{"shadowlab delay", routeDelay, 1},
		{fmt.Sprintf("local_ratelimit %d/s, clients retry after %s", cfg.limit, cfg.backoff), routeRetry, cfg.attempts},
	} {
		br, err := b.burst(ctx, arm.name, arm.route, arm.attempts)
		if err != nil {
			return nil, err
		}
		res.Bursts = append(res.Bursts, br)
	}

	if res.RSSAfterKiB, err = harness.MemKiB(b.envoy.Pid(), "VmRSS"); err != nil {
		return nil, err
	}
	if res.HWMKiB, err = harness.MemKiB(b.envoy.Pid(), "VmHWM"); err != nil {
		return nil, err
	}
	select {
	case <-b.envoy.Exited():
		return nil, errors.New("envoy exited during the run")
	default:
	}
	// Envoy writes its access log to the file every few seconds, and all
	// of it when it exits.
	_ = b.envoy.Stop()
	logged, err := readAccessLog(accessLog)
	if err != nil {
		return nil, err
	}
	for i := range res.Bursts {
		br := &res.Bursts[i]
		br.sendPeak(logged)
		if br.Route == routeDelay {
			res.Release = releaseOf(br, logged, cfg.limit)
		}
		if cfg.trace != "" {
			if err := writeTrace(cfg.trace+"-"+br.Route+".csv", br, logged); err != nil {
				return nil, err
			}
		}
	}
	return res, ctx.Err()
}

// startups starts Envoy cfg.starts times on each bootstrap, in turn, and
// keeps the last Envoy with the plugin running for the other phases.
func (b *bench) startups(ctx context.Context, lab *harness.Lab, plainBoot, wasmBoot []byte, st *startup) error {
	for i := range b.cfg.starts {
		for _, withPlugin := range []bool{false, true} {
			boot, name := plainBoot, "without the plugin"
			if withPlugin {
				boot, name = wasmBoot, "with the plugin"
			}
			if _, err := harness.WaitQuiet(ctx, b.cfg.quiet, b.log, os.Getpid()); err != nil {
				return err
			}
			cpu0, err := harness.SampleCPU(os.Getpid())
			if err != nil {
				return err
			}
			p, err := lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot, LogLevel: "warning", Concurrency: 2})
			if err != nil {
				return fmt.Errorf("envoy %s: %w", name, err)
			}
			s := startSample{Ready: p.Ready}
			cpu1, err := harness.SampleCPU(os.Getpid(), p.Pid())
			if err != nil {
				return err
			}
			cpu0.Procs = append(cpu0.Procs, 0) // Envoy did not exist at cpu0: all its ticks count
			s.CPU = cpu0.Usage(cpu1)
			if s.RSSKiB, err = harness.MemKiB(p.Pid(), "VmRSS"); err != nil {
				return err
			}
			b.log.Info("envoy ready", zap.String("bootstrap", name), zap.Duration("took", s.Ready), zap.Int("rss_kib", s.RSSKiB),
				zap.Float64("others_cores", s.CPU.Others), zap.Float64("steal_cores", s.CPU.Steal))
			if withPlugin {
				st.Plugin = append(st.Plugin, s)
			} else {
				st.Plain = append(st.Plain, s)
			}
			if withPlugin && i == b.cfg.starts-1 {
				b.envoy = p
				return nil
			}
			_ = p.Stop()
		}
	}
	return nil
}

// cost runs one cost phase: plain against the plugin with a limit it never
// reaches, interleaved, after a warm-up of one slice pair.
func (b *bench) cost(ctx context.Context, name string, workers int, pace time.Duration, rng *rand.Rand) (costPhase, error) {
	urls := [numArms]string{armPlain: b.base + "/" + routePlain + "/item", armPlugin: b.base + "/" + routeCost + "/item"}
	runCost(ctx, b.client, urls, workers, pace, harness.Slicing{Slice: b.cfg.slice, Order: []int{armPlain, armPlugin}}, b.envoy.Pid())
	b.up.take(routePlain)
	b.up.take(routeCost)
	sl := harness.Slicing{Slice: b.cfg.slice, Settle: b.cfg.settle, Order: harness.Interleave(numArms, int(b.cfg.costDuration/(numArms*b.cfg.slice)), rng)}
	b.log.Info("cost phase", zap.String("phase", name), zap.Duration("duration", sl.Total()))
	quiet, err := harness.WaitQuiet(ctx, b.cfg.quiet, b.log, os.Getpid(), b.envoy.Pid())
	if err != nil {
		return costPhase{}, err
	}
	before, err := harness.SampleCPU(os.Getpid(), b.envoy.Pid())
	if err != nil {
		return costPhase{}, err
	}
	counters0, err := b.envoy.Stats(ctx, "^"+pluginStat)
	if err != nil {
		return costPhase{}, err
	}
	run := runCost(ctx, b.client, urls, workers, pace, sl, b.envoy.Pid())
	after, err := harness.SampleCPU(os.Getpid(), b.envoy.Pid())
	if err != nil {
		return costPhase{}, err
	}
	counters1, err := b.envoy.Stats(ctx, "^"+pluginStat)
	if err != nil {
		return costPhase{}, err
	}
	cp := costPhase{Name: name, Seconds: sl.Total().Seconds(), CPU: before.Usage(after), Quiet: quiet}
	for a := range numArms {
		cp.Arms[a] = costArm{Requests: len(run.lat[a]) + run.errors[a], Errors: run.errors[a], Sent: run.sent[a],
			Lat: harness.Summarize(run.lat[a]), NotHeld: harness.Summarize(run.notHeld[a])}
		if run.cpuOK && run.sent[a] > 0 {
			cp.Arms[a].EnvoyUs = float64(run.envoyTicks[a]) * 1e6 / harness.UserHZ / float64(run.sent[a])
		}
	}
	cp.CASRetries = counters1[pluginStat+"cas_retries"] - counters0[pluginStat+"cas_retries"]
	b.up.take(routePlain)
	for _, a := range b.up.take(routeCost) {
		cp.Decided++
		if a.admission == "held" {
			cp.Held++
		}
	}
	b.log.Info("cost phase done", zap.String("phase", name),
		zap.Duration("plain_p50", cp.Arms[armPlain].Lat.P50), zap.Duration("plugin_p50", cp.Arms[armPlugin].Lat.P50),
		zap.Duration("plain_p99", cp.Arms[armPlain].Lat.P99), zap.Duration("plugin_p99", cp.Arms[armPlugin].Lat.P99),
		zap.Float64("others_cores", cp.CPU.Others), zap.Float64("steal_cores", cp.CPU.Steal))
	return cp, ctx.Err()
}

// burst opens the connections, waits for a quiet machine, and fires one
// burst at route.
func (b *bench) burst(ctx context.Context, name, route string, attempts int) (burstResult, error) {
	br := burstResult{Name: name, Route: route, N: b.cfg.burst}
	if br.WarmFailed = warm(ctx, b.client, b.up, b.base+"/"+routeWarm+"/", b.cfg.burst); br.WarmFailed > 0 {
		b.log.Warn("some connections could not be opened", zap.Int("failed", br.WarmFailed))
	}
	b.log.Info("burst", zap.String("arm", name), zap.Int("clients", b.cfg.burst), zap.Int("attempts", attempts))
	var err error
	if br.Quiet, err = harness.WaitQuiet(ctx, b.cfg.quiet, b.log, os.Getpid(), b.envoy.Pid()); err != nil {
		return br, err
	}
	before, err := harness.SampleCPU(os.Getpid(), b.envoy.Pid())
	if err != nil {
		return br, err
	}
	t0, shots := burst(ctx, b.client, b.base+"/"+route+"/item", route, b.cfg.burst, attempts, b.cfg.backoff)
	after, err := harness.SampleCPU(os.Getpid(), b.envoy.Pid())
	if err != nil {
		return br, err
	}
	br.CPU = before.Usage(after)
	br.summarize(t0, shots, b.up.take(route))
	b.log.Info("burst done", zap.String("arm", name), zap.Int("ok", br.OK), zap.Int("status_429", br.TooMany),
		zap.Int("reached", br.Reached), zap.Int("peak_1s", br.PeakSliding), zap.Duration("last_arrival", br.LastArrival),
		zap.Float64("others_cores", br.CPU.Others), zap.Float64("steal_cores", br.CPU.Steal))
	return br, ctx.Err()
}
