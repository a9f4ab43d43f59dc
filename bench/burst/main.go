// Command burst measures what one burst does at the service behind each
// admission scope, on a quiet and on a saturated machine: 1 000 requests
// released at one instant against a budget of 100/s in delay mode
// (maxDelay 15 s), the scenario of the issue "Admission that keeps its
// bound under saturation and across several serve replicas".
//
//	go run ./bench/burst [flags]
//
// One example service (a process that records the arrival of every
// request) behind three deployments, all on this machine over loopback:
//
//   - local: the wasm plugin in Envoy A (programmed by serve A);
//   - global, in process: serve A's ext_proc admission, its budget in serve A;
//   - global, Redis: two Envoys (B1, B2), each programmed by its own serve
//     (B1, B2), the two serves sharing one budget in a real redis-server;
//     the burst is split between the two Envoys.
//
// Each arm runs quiet, then saturated: a busy loop per CPU (separate
// processes, ordinary priority) for the length of the burst. Arms run one
// at a time, each after the machine is quiet. The service is where the
// bound is promised: at most 110 (limit + 10 %) in any sliding second,
// nothing lost.
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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/internal/redistest"
	"github.com/shadowlab/shadowlab/serve"
)

type config struct {
	burst   int
	hogs    int
	runs    int
	timeout time.Duration
	quiet   time.Duration
	keep    bool
}

func (c *config) parse(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("burst", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.burst, "burst", 1000, "requests released at one instant per burst (the budget is 100/s, maxDelay 15s)")
	fs.IntVar(&c.hogs, "hogs", runtime.NumCPU(), "busy loops of the saturated runs")
	fs.IntVar(&c.runs, "runs", 1, "bursts per arm and condition")
	fs.DurationVar(&c.timeout, "timeout", 40*time.Second, "a client gives up after this long")
	fs.DurationVar(&c.quiet, "quiet", time.Minute, "longest wait for a quiet machine before each burst")
	fs.BoolVar(&c.keep, "keep", false, "keep the working directory (logs, policies)")
	return fs.Parse(args)
}

const policyTmpl = `
version: 1
listeners: [{name: edge, address: "{{.Listener}}"}]
services:
  legacy: {endpoints: ["{{.Legacy}}"]}
routes:
  - name: local-delay
    match: {pathPrefix: /local/}
    primary: legacy
    admission: {rate: 100/s, maxDelay: 15s, scope: local}
  - name: global-delay
    match: {pathPrefix: /global/}
    primary: legacy
    admission: {rate: 100/s, maxDelay: 15s, scope: global}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// deployment is one serve and its Envoy.
type deployment struct{ listener, api string }

func main() {
	var cfg config
	harness.Main("burst", &cfg.keep, cfg.parse, func(ctx context.Context, lab *harness.Lab, log *zap.Logger) error {
		return run(ctx, cfg, lab, log)
	})
}

func run(ctx context.Context, cfg config, lab *harness.Lab, log *zap.Logger) error {
	legacy, err := lab.BackendProc(ctx, "legacy")
	if err != nil {
		return err
	}
	redis, err := redistest.New(lab.Dir)
	if err != nil {
		return err
	}
	lab.OnStop(redis.Stop)
	start := func(name, redisURL string) (deployment, error) {
		d := deployment{listener: mustAddr()}
		path := filepath.Join(lab.Dir, name+".yaml")
		var buf strings.Builder
		if err := template.Must(template.New("p").Parse(policyTmpl)).Execute(&buf, map[string]string{"Listener": d.listener, "Legacy": legacy}); err != nil {
			return d, err
		}
		if err := os.WriteFile(path, []byte(buf.String()), 0o600); err != nil {
			return d, err
		}
		xdsAddr := mustAddr()
		d.api = mustAddr()
		sc := serve.Config{PolicyPath: path, XDSAddress: xdsAddr, GatewayAddress: mustAddr(), APIAddress: d.api, AdmissionAddress: mustAddr()}
		sc.AdmissionRedis.URL = redisURL
		if _, err := lab.ServeProc(ctx, sc); err != nil {
			return d, err
		}
		boot, err := harness.DynamicBootstrap("burst-"+name, xdsAddr, false)
		if err != nil {
			return d, err
		}
		if _, err := lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot}); err != nil {
			return d, err
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return d, harness.WaitHTTP(wctx, "http://"+d.listener+"/ready", func(r *http.Response) bool { return r.Header.Get(backend.HeaderBackend) != "" })
	}
	a, err := start("a", "")
	if err != nil {
		return err
	}
	b1, err := start("b1", redis.URL)
	if err != nil {
		return err
	}
	b2, err := start("b2", redis.URL)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * cfg.burst, MaxIdleConnsPerHost: cfg.burst, IdleConnTimeout: time.Minute}}
	for _, d := range []deployment{a, b1, b2} {
		warm(client, "http://"+d.listener+"/warm", cfg.burst)
	}
	arms := []struct {
		name    string
		targets []deployment
		scope   string
	}{
		{"local (plugin in Envoy A)", []deployment{a}, "local"},
		{"global, budget in serve A", []deployment{a}, "global"},
		{"global, budget in Redis (2 Envoys, 2 serves)", []deployment{b1, b2}, "global"},
	}
	var rows []row
	for _, saturated := range []bool{false, true} {
		for _, arm := range arms {
			for n := range cfg.runs {
				if _, err := harness.WaitQuiet(ctx, cfg.quiet, log); err != nil {
					return err
				}
				path := fmt.Sprintf("/%s/%d-%t-%d", arm.scope, len(rows), saturated, n)
				log.Info("burst", zap.String("arm", arm.name), zap.Bool("saturated", saturated), zap.String("path", path))
				var stop func()
				if saturated {
					if stop, err = harness.CPUHog(cfg.hogs, time.Minute); err != nil {
						return err
					}
				}
				before := unchecked(arm.targets)
				t0 := time.Now()
				res := burst(client, arm.targets, path, cfg.burst, cfg.timeout)
				if stop != nil {
					stop()
				}
				passed := unchecked(arm.targets) - before
				arrivals, err := received(legacy, path)
				if err != nil {
					return err
				}
				r := summarize(arm.name, saturated, t0, res, arrivals)
				r.unchecked = passed
				rows = append(rows, r)
			}
		}
	}
	printReport(cfg, rows)
	return nil
}

// unchecked is the sum, over the deployments' serves, of the global
// admission's requests passed unchecked (fail open): Redis failures and
// decisions skipped while Redis was taken as down.
func unchecked(ds []deployment) int {
	n := 0
	for _, d := range ds {
		resp, err := http.Get("http://" + d.api + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			for _, m := range []string{"shadowlab_admission_redis_failures_total ", "shadowlab_admission_redis_skipped_total "} {
				if v, ok := strings.CutPrefix(line, m); ok {
					f, _ := strconv.ParseFloat(v, 64)
					n += int(f)
				}
			}
		}
	}
	return n
}

func mustAddr() string {
	a, err := harness.FreeAddr()
	if err != nil {
		panic(err)
	}
	return a
}

func warm(c *http.Client, url string, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if resp, err := c.Get(url); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

type result struct {
	status  int
	latency time.Duration
}

// burst releases n requests at one instant, split between the targets.
func burst(c *http.Client, targets []deployment, path string, n int, timeout time.Duration) []result {
	out := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		url := "http://" + targets[i%len(targets)].listener + path
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := c.Do(req)
			if err != nil {
				out[i] = result{latency: time.Since(t0)}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out[i] = result{status: resp.StatusCode, latency: time.Since(t0)}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(start)
	wg.Wait()
	return out
}

// received are the sorted arrival times of the service's requests on path.
func received(legacy, path string) ([]time.Time, error) {
	resp, err := http.Get("http://" + legacy + backend.ControlPrefix + "received")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rec backend.Recording
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return nil, err
	}
	var out []time.Time
	for _, r := range rec.Requests {
		if r.Path == path {
			out = append(out, r.At)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

type row struct {
	arm               string
	saturated         bool
	ok, refused, lost int
	unchecked         int
	arrived, peak     int
	p50, p99, max     time.Duration
	drained           time.Duration
	perSecond         []int
}

func summarize(arm string, saturated bool, t0 time.Time, res []result, arrivals []time.Time) row {
	r := row{arm: arm, saturated: saturated, arrived: len(arrivals)}
	var lat []time.Duration
	for _, x := range res {
		switch x.status {
		case http.StatusOK:
			r.ok++
			lat = append(lat, x.latency)
		case http.StatusTooManyRequests:
			r.refused++
		default:
			r.lost++
		}
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	r.p50, r.p99, r.max = q(0.5), q(0.99), q(1)
	r.peak, _ = admission.MostInWindow(arrivals, time.Second)
	if len(arrivals) > 0 {
		r.drained = arrivals[len(arrivals)-1].Sub(t0)
	}
	for _, at := range arrivals {
		s := int(at.Sub(t0) / time.Second)
		for len(r.perSecond) <= s {
			r.perSecond = append(r.perSecond, 0)
		}
		r.perSecond[s]++
	}
	return r
}

func printReport(cfg config, rows []row) {
	fmt.Printf("`go run ./bench/burst` on %s: %d CPUs, %s.\n\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.Version())
	fmt.Printf("A burst of %d at one instant, budget 100/s, delay mode (maxDelay 15 s); saturated: %d busy loops (one process each) during the burst.\n", cfg.burst, cfg.hogs)
	fmt.Println("Peak: most arrivals at the service in any sliding second (the promise: at most 110).")
	fmt.Println()
	fmt.Println("| arm | machine | 200 | 429 | lost | Redis failed or skipped | at the service | peak / 1 s | wait p50 | wait p99 | wait max | drained after | per second |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, r := range rows {
		machine := "quiet"
		if r.saturated {
			machine = "saturated"
		}
		fmt.Printf("| %s | %s | %d | %d | %d | %d | %d | %d | %s | %s | %s | %s | %v |\n", r.arm, machine, r.ok, r.refused, r.lost, r.unchecked, r.arrived, r.peak,
			sec(r.p50), sec(r.p99), sec(r.max), sec(r.drained), r.perSecond)
	}
}

func sec(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + " s" }
