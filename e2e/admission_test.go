package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// admissionRoutes are, for one scope (SCOPE), a route per scenario, all at
// 100/s (the budget) except the abandonment route, which holds long.
const admissionRoutes = `
  - name: SCOPE-delay
    match: {pathPrefix: /SCOPE/delay}
    primary: legacy
    admission: {rate: 100/s, maxDelay: 15s, mode: delay, scope: SCOPE}
  - name: SCOPE-reject
    match: {pathPrefix: /SCOPE/reject}
    primary: legacy
    admission: {rate: 100/s, mode: reject, scope: SCOPE}
  - name: SCOPE-abandon
    match: {pathPrefix: /SCOPE/abandon}
    primary: legacy
    admission: {rate: 10/s, maxDelay: 1m, scope: SCOPE}
  - name: SCOPE-sched
    match: {pathPrefix: /SCOPE/sched}
    primary: legacy
    admission: {rate: 100/s, maxDelay: 15s, key: "header:x-job", scope: SCOPE}`

// admissionPolicy is both scopes' routes, a heavily used local route for
// the sustained load, and a route without admission.
var admissionPolicy = `
version: 1
listeners: [{name: edge, address: "{{.Listener}}"}]
services:
  legacy: {endpoints: ["{{.Legacy}}"]}
routes:` + strings.ReplaceAll(admissionRoutes, "SCOPE", "local") + strings.ReplaceAll(admissionRoutes, "SCOPE", "global") + `
  - name: load
    match: {pathPrefix: /load}
    primary: legacy
    admission: {rate: 2000/s, maxDelay: 5s, scope: local}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// The tolerance: at most the limit + 10 % reach the upstream in any
// 1 s window. On a saturated machine (a busy loop per core), forwarding
// between the release and the upstream stalls for up to ~300 ms, past the
// slack the schedule keeps (README: "Not bounded by this"), and a window at
// the upstream can see a few more: seen 111 once in about ten make test
// runs, against 95–106 in bench/burst. The saturated runs are held to
// limit + 15 %.
const (
	burstSize          = 1000
	limitPerSec        = 100
	maxPerSec          = limitPerSec * 110 / 100
	maxPerSecSaturated = limitPerSec * 115 / 100
	maxDelay           = 15 * time.Second
)

// TestAdmission runs the admission scenarios against one real Envoy, the
// local (wasm) and global (ext_proc) scopes side by side on their own
// routes at the same instants.
//
// The service and `shadowlab serve` run as their own processes, built
// without the race detector, as users run them: the test binary, with 2 000
// clients and the race detector, would otherwise delay the very arrivals
// and releases it measures.
func TestAdmission(t *testing.T) {
	e := startProcEnv(t, admissionPolicy)
	clients := newBurstClients(2 * burstSize)
	clients.warm(t, "http://"+e.ports.Listener+"/warm")
	api := "http://" + e.api
	// The scenarios count arrivals per second: under `go test ./...` they
	// wait (up to a minute) for other packages' tests to end.
	_, err := harness.WaitQuiet(context.Background(), time.Minute, zaptest.NewLogger(t))
	require.NoError(t, err)

	t.Run("burst delay", func(t *testing.T) {
		start := time.Now()
		res := clients.bursts(e.ports.Listener, map[string]int{"/local/delay": burstSize, "/global/delay": burstSize}, 30*time.Second, nil)
		for _, scope := range []string{"local", "global"} {
			path := "/" + scope + "/delay"
			got := res[path]
			arrivals := e.arrivals(path)
			peak := maxInWindow(arrivals, time.Second)
			t.Logf("%s: %d/%d answered 200, upstream got %d, peak %d per sliding 1s, latency p50 %s p99 %s max %s, done after %s\nupstream per second: %s",
				scope, count(got, 200), len(got), len(arrivals), peak, pct(got, 0.5), pct(got, 0.99), pct(got, 1), lastArrival(arrivals).Sub(start).Round(time.Millisecond), perSecond(arrivals, start))
			assert.Equal(t, burstSize, count(got, 200), "%s: every held request eventually succeeds", scope)
			assert.Len(t, arrivals, burstSize, "%s: each request reaches the upstream once", scope)
			assert.LessOrEqual(t, peak, maxPerSec, "%s: upstream over the limit +10%% in a 1s window", scope)
			assert.LessOrEqual(t, pct(got, 1), maxDelay+time.Second, "%s: a request waited longer than maxDelay", scope)
			held := 0
			for _, r := range e.received(path) {
				if r.Headers[wire.HeaderAdmission] == "held" && r.Headers[wire.HeaderHeldMs] != "" {
					held++
				}
			}
			assert.Greater(t, held, burstSize*8/10, "%s: most of the burst is held", scope)
		}
		// Counts reach the report: the plugin's within a report period.
		requireEventually(t, func() error {
			for _, scope := range []string{wire.ScopeLocal.String(), wire.ScopeGlobal.String()} {
				a := admissionRow(t, api, scope, scope+"-delay", "")
				if a.Admitted+a.Delayed != burstSize || a.ReleasedTotal() != a.Delayed || a.Delayed < burstSize*8/10 {
					return fmt.Errorf("%s: %+v", scope, a)
				}
			}
			return nil
		})
	})

	t.Run("burst reject", func(t *testing.T) {
		res := clients.bursts(e.ports.Listener, map[string]int{"/local/reject": burstSize, "/global/reject": burstSize}, 30*time.Second, nil)
		cfg := admission.Config{Limit: limitPerSec, Window: time.Second, Mode: admission.ModeReject}
		for _, scope := range []string{"local", "global"} {
			path := "/" + scope + "/reject"
			got := res[path]
			arrivals := e.arrivals(path)
			retry := map[int]int{}
			for _, r := range got {
				if r.status != http.StatusTooManyRequests {
					continue
				}
				n, err := strconv.Atoi(r.retry)
				if assert.NoError(t, err, "%s: 429 without a whole-second Retry-After: %q", scope, r.retry) {
					retry[n]++
				}
			}
			t.Logf("%s: %d × 200, %d × 429, upstream peak %d per 1s, Retry-After histogram %v", scope, count(got, 200), count(got, 429), maxInWindow(arrivals, time.Second), retry)
			assert.Equal(t, burstSize, count(got, 200)+count(got, 429), "%s: only 200 or 429", scope)
			assert.GreaterOrEqual(t, count(got, 200), limitPerSec*9/10, "%s: the budget is used", scope)
			assert.LessOrEqual(t, maxInWindow(arrivals, time.Second), maxPerSec, "%s", scope)
			for n := range retry {
				assert.True(t, n >= 1 && n <= cfg.MaxRetryAfter(), "%s: Retry-After %d outside 1..%d", scope, n, cfg.MaxRetryAfter())
			}
			assert.GreaterOrEqual(t, len(retry), 5, "%s: Retry-After values are spread, not identical", scope)
			for n, c := range retry {
				assert.Less(t, c, count(got, 429)/2, "%s: half the rejected requests got Retry-After %d", scope, n)
			}
		}
	})

	t.Run("abandoned while held", func(t *testing.T) {
		// 10/s, 1 min max delay: of 100 requests ~10 pass and the rest are
		// held for up to 9 s; the clients give up after 1 s.
		const n = 100
		res := clients.bursts(e.ports.Listener, map[string]int{"/local/abandon": n, "/global/abandon": n}, time.Second,
			func(i int) map[string]string { return map[string]string{"x-abandon-id": strconv.Itoa(i)} })
		time.Sleep(2500 * time.Millisecond) // past the first released slots
		before := map[string]int{"local": len(e.arrivals("/local/abandon")), "global": len(e.arrivals("/global/abandon"))}
		for _, scope := range []string{"local", "global"} {
			got := res["/"+scope+"/abandon"]
			gaveUp := n - count(got, 200)
			// A request released just before its client gives up reaches
			// the upstream, and its answer comes too late: that is the
			// client's doing, not admission's. What must never happen is
			// a request reaching the upstream after its client gave up.
			var atDeadline int
			for _, r := range e.received("/" + scope + "/abandon") {
				i, err := strconv.Atoi(r.Headers["x-abandon-id"])
				if !assert.NoError(t, err, "%s: request without its id", scope) || got[i].status == 200 {
					continue
				}
				assert.True(t, r.At.Before(got[i].end), "%s: request %d reached the upstream %v after its client gave up", scope, i, r.At.Sub(got[i].end))
				atDeadline++
			}
			t.Logf("%s: %d answered, %d abandoned by their clients; upstream got %d (%d just before their client gave up)", scope, count(got, 200), gaveUp, before[scope], atDeadline)
			assert.Greater(t, gaveUp, n/2, "%s: most clients gave up while held", scope)
			assert.Equal(t, count(got, 200)+atDeadline, before[scope], "%s: only answered requests reached the upstream", scope)
		}
		time.Sleep(10 * time.Second) // every abandoned request's slot has passed
		for _, scope := range []string{"local", "global"} {
			assert.Equal(t, before[scope], len(e.arrivals("/"+scope+"/abandon")), "%s: an abandoned request reached the upstream", scope)
		}
		assert.Zero(t, e.metric("shadowlab_admission_held"), "global: held requests left behind")
		held := envoyStats(t, e, "wasmcustom.shadowlab_admission_held_now")
		assert.Zero(t, held["wasmcustom.shadowlab_admission_held_now"], "local: held requests left behind")
		requireEventually(t, func() error {
			for _, scope := range []string{wire.ScopeLocal.String(), wire.ScopeGlobal.String()} {
				a := admissionRow(t, api, scope, scope+"-abandon", "")
				if a.Abandoned == 0 || a.Delayed != a.Abandoned+a.ReleasedTotal() {
					return fmt.Errorf("%s: %+v", scope, a)
				}
			}
			return nil
		})
	})

	t.Run("15-second scheduler", func(t *testing.T) {
		// A scheduler with 15 s resolution fires its jobs in a few large
		// buckets: 3 buckets 15 s apart, each 150 requests of each of 2 jobs
		// (the budget key): 1.5 s of budget per job and bucket.
		const buckets, jobs, perJob = 3, 2, 150
		start := time.Now()
		results := map[string][]result{}
		for b := range buckets {
			time.Sleep(time.Until(start.Add(time.Duration(b) * 15 * time.Second)))
			res := clients.bursts(e.ports.Listener, map[string]int{"/local/sched": jobs * perJob, "/global/sched": jobs * perJob}, 30*time.Second,
				func(i int) map[string]string { return map[string]string{"x-job": "job-" + strconv.Itoa(i%jobs)} })
			for p, r := range res {
				results[p] = append(results[p], r...)
			}
		}
		for _, scope := range []string{"local", "global"} {
			path := "/" + scope + "/sched"
			got := results[path]
			arrivals := e.arrivals(path)
			perKey := map[string][]time.Time{}
			for _, r := range e.received(path) {
				perKey[r.Headers["x-job"]] = append(perKey[r.Headers["x-job"]], r.At)
			}
			peak := 0
			for _, a := range perKey {
				slices.SortFunc(a, func(x, y time.Time) int { return x.Compare(y) })
				peak = max(peak, maxInWindow(a, time.Second))
			}
			t.Logf("%s: %d/%d answered 200, peak per job %d per sliding 1s (all jobs %d; %d per 100ms), latency max %s\nupstream per second: %s",
				scope, count(got, 200), len(got), peak, maxInWindow(arrivals, time.Second), maxInWindow(arrivals, 100*time.Millisecond), pct(got, 1), perSecond(arrivals, start))
			assert.Equal(t, buckets*jobs*perJob, count(got, 200), scope)
			assert.Len(t, perKey, jobs, scope)
			assert.LessOrEqual(t, peak, maxPerSec, "%s: a job's budget exceeded", scope)
			assert.Less(t, pct(got, 1), 2*time.Second, "%s: a bucket took longer than its budget", scope)
			// Spread, not a wall: without admission a bucket's 300 arrive
			// within a few ms; here no 100 ms sees a third of them.
			assert.Less(t, maxInWindow(arrivals, 100*time.Millisecond), jobs*perJob/3, "%s: bucket not spread", scope)
		}
	})

	t.Run("saturated machine", func(t *testing.T) {
		// Local only: TestAdmissionReplicas saturates the global scope,
		// its budget in Redis and its burst through two Envoys. With the
		// budget in serve and the whole burst through one Envoy, serve
		// keeps the bound at release but its messages to Envoy bunch on
		// the way: 103 to 111 per second at the service in our runs (make
		// bench measures it; BENCHMARKS.md).
		saturatedBurst(t, clients, e, "local", map[string]int{"http://" + e.ports.Listener + "/local/delay/saturated": burstSize}, e)
	})

	t.Run("wasm plugin under sustained load", func(t *testing.T) {
		n := 100_000
		if s := os.Getenv("SHADOWLAB_E2E_LOAD"); s != "" {
			n, _ = strconv.Atoi(s)
		}
		url := "http://" + e.ports.Listener + "/load"
		vmStats := func() map[string]int64 { return envoyStats(t, e, "wasm") }
		before := vmStats()
		start := time.Now()
		var rss []int
		bad := loadTest(clients.c, url, n, 32, func(done int) {
			if done%(n/10) == 0 {
				rss = append(rss, rssKiB(t, e.envoy.Pid()))
			}
		})
		elapsed := time.Since(start)
		after := vmStats()
		t.Logf("%d requests in %s (%.0f/s), non-200: %d; Envoy RSS per tenth (KiB): %v; held %d, released %d, passed %d, created VMs %d→%d",
			n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), bad, rss,
			after["wasmcustom.shadowlab_admission_held"]-before["wasmcustom.shadowlab_admission_held"],
			after["wasmcustom.shadowlab_admission_released"]-before["wasmcustom.shadowlab_admission_released"],
			after["wasmcustom.shadowlab_admission_passed"]-before["wasmcustom.shadowlab_admission_passed"],
			before["wasm.envoy.wasm.runtime.v8.created"], after["wasm.envoy.wasm.runtime.v8.created"])
		assert.Zero(t, bad, "non-200 answers under load")
		decided := after["wasmcustom.shadowlab_admission_passed"] + after["wasmcustom.shadowlab_admission_held"] + after["wasmcustom.shadowlab_admission_rejected"] -
			before["wasmcustom.shadowlab_admission_passed"] - before["wasmcustom.shadowlab_admission_held"] - before["wasmcustom.shadowlab_admission_rejected"]
		assert.Equal(t, int64(n), decided, "the plugin decided on every request (a trapped VM fails open silently)")
		assert.Equal(t, before["wasm.envoy.wasm.runtime.v8.created"], after["wasm.envoy.wasm.runtime.v8.created"], "a VM was recreated")
		require.GreaterOrEqual(t, len(rss), 5)
		// Flat: after the first tenth (warm-up), RSS grows by less than 32 MiB.
		assert.Less(t, slices.Max(rss[1:])-rss[1], 32<<10, "Envoy memory grows under load: %v KiB", rss)
		assert.NotContains(t, e.envoy.Logs(), "Uncaught", "a wasm callback trapped")
	})

	t.Run("admission server down fails open", func(t *testing.T) {
		e.stopServe()
		for range 20 {
			r := get(context.Background(), clients.c, "http://"+e.ports.Listener+"/global/delay", nil)
			require.Equal(t, 200, r.status, "a request failed because shadowlab is down")
			require.Less(t, r.latency, 2*time.Second)
		}
		st := envoyStats(t, e, "shadowlab_admission")
		var failOpen int64
		for k, v := range st {
			if strings.HasSuffix(k, "failure_mode_allowed") {
				failOpen += v
			}
		}
		assert.GreaterOrEqual(t, failOpen, int64(20), "Envoy counts the requests passed unadmitted: %v", st)
	})
}

// burstClients are enough keep-alive connections for every request of a
// burst to leave at one instant.
type burstClients struct{ c *http.Client }

func newBurstClients(n int) *burstClients {
	return &burstClients{c: &http.Client{Transport: &http.Transport{
		MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: time.Minute, DisableCompression: true,
	}}}
}

// warm opens the connections with a burst to a route without admission.
func (b *burstClients) warm(t *testing.T, url string) {
	tr := b.c.Transport.(*http.Transport)
	var wg sync.WaitGroup
	for range tr.MaxIdleConnsPerHost {
		wg.Go(func() { _ = get(context.Background(), b.c, url, nil) })
	}
	wg.Wait()
}

// bursts sends, for each path, that many requests released at one instant,
// every client giving up after timeout. headers, if set, gives request i
// of each path its headers.
func (b *burstClients) bursts(addr string, paths map[string]int, timeout time.Duration, headers func(i int) map[string]string) map[string][]result {
	urls := map[string]int{}
	for path, n := range paths {
		urls["http://"+addr+path] = n
	}
	out := map[string][]result{}
	for url, rs := range b.burstsTo(urls, timeout, headers) {
		out[strings.TrimPrefix(url, "http://"+addr)] = rs
	}
	return out
}

// burstsTo is bursts to whole URLs (several Envoys at one instant).
func (b *burstClients) burstsTo(urls map[string]int, timeout time.Duration, headers func(i int) map[string]string) map[string][]result {
	out := map[string][]result{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for url, n := range urls {
		rs := make([]result, n)
		out[url] = rs
		for i := range n {
			wg.Go(func() {
				var h map[string]string
				if headers != nil {
					h = headers(i)
				}
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				rs[i] = get(ctx, b.c, url, h)
			})
		}
	}
	time.Sleep(50 * time.Millisecond) // every goroutine waiting on start
	close(start)
	wg.Wait()
	return out
}

type result struct {
	status    int
	latency   time.Duration
	end       time.Time // when the answer came, or the client gave up
	retry     string
	admission string // x-shadowlab-admission of the answer (rejected on 429s)
	err       error
}

func get(ctx context.Context, c *http.Client, url string, headers map[string]string) result {
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err, latency: time.Since(t0), end: time.Now()}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return result{status: resp.StatusCode, latency: time.Since(t0), end: time.Now(), retry: resp.Header.Get("retry-after"), admission: resp.Header.Get(wire.HeaderAdmission)}
}

// loadTest sends n requests from workers keep-alive connections, calling
// progress after each, and returns the number of non-200 answers.
func loadTest(c *http.Client, url string, n, workers int, progress func(done int)) int {
	var next, done, bad atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if r := get(context.Background(), c, url, nil); r.status != 200 {
					bad.Add(1)
				}
				d := done.Add(1)
				mu.Lock()
				progress(int(d))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return int(bad.Load())
}

func count(rs []result, status int) int {
	n := 0
	for _, r := range rs {
		if r.status == status {
			n++
		}
	}
	return n
}

// pct is the q-quantile of the latencies of answered requests.
func pct(rs []result, q float64) time.Duration {
	var ls []time.Duration
	for _, r := range rs {
		if r.err == nil {
			ls = append(ls, r.latency)
		}
	}
	if len(ls) == 0 {
		return 0
	}
	slices.Sort(ls)
	return ls[min(len(ls)-1, int(q*float64(len(ls))))]
}

// arrivals are the sorted arrival times at the upstream of requests under
// prefix.
func (e *procEnv) arrivals(prefix string) []time.Time {
	var out []time.Time
	for _, r := range e.received(prefix) {
		out = append(out, r.At)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func lastArrival(ts []time.Time) time.Time {
	if len(ts) == 0 {
		return time.Time{}
	}
	return ts[len(ts)-1]
}

// maxInWindow is the most arrivals in any window [t, t+w) (sorted input).
func maxInWindow(ts []time.Time, w time.Duration) int {
	most, _ := admission.MostInWindow(ts, w)
	return most
}

// perSecond is the arrival count in each second since start, as text.
func perSecond(ts []time.Time, start time.Time) string {
	var counts []int
	for _, t := range ts {
		s := int(t.Sub(start) / time.Second)
		for len(counts) <= s {
			counts = append(counts, 0)
		}
		counts[s]++
	}
	return fmt.Sprint(counts)
}

// admissionRow is the report's row for scope, route and key.
func admissionRow(t *testing.T, api, scope, route, key string) report.AdmissionReport {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/admission")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rows []report.AdmissionReport
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rows))
	for _, r := range rows {
		if r.Scope == scope && r.Route == route && r.Key == key {
			return r
		}
	}
	return report.AdmissionReport{}
}

func requireEventually(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.NoError(t, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// envoyStats are Envoy's counters and gauges whose names contain substr.
func envoyStats(t *testing.T, e *procEnv, substr string) map[string]int64 {
	t.Helper()
	st, err := e.envoy.Stats(context.Background(), substr)
	require.NoError(t, err)
	return st
}

func rssKiB(t *testing.T, pid int) int {
	n, err := harness.MemKiB(pid, "VmRSS")
	require.NoError(t, err)
	return n
}
