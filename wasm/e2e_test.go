//go:build wasm_e2e && !wasm

// The spike's end-to-end check of the plugin on the real Envoy binary. It is
// opt-in (build tag wasm_e2e) because it builds the module, runs Envoy and
// sends a few hundred thousand requests on loopback:
//
//	go test -tags wasm_e2e -run TestEnvoy -v -timeout 20m ./wasm
//
// Knobs (environment): SHADOWLAB_E2E_REQUESTS (per sustained arm, default
// 100000), SHADOWLAB_E2E_WORKERS (default 64), SHADOWLAB_E2E_GOGC (GOGC in
// the VM's environment), SHADOWLAB_E2E_GC_HEAP (plugin gc_heap_bytes),
// SHADOWLAB_E2E_BODY (bytes of the held POST, default 4 MiB),
// SHADOWLAB_E2E_STOP_ITERATION=true (allow_on_headers_stop_iteration on; off
// by default: with it on, a held request whose body exceeds the buffer limit
// gets 413, with it off Envoy applies flow control and the body waits).

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/stretchr/testify/require"
)

// upstream is the tiny Go HTTP service behind Envoy. It echoes the headers
// the plugin stamped and counts arrivals per path.
type upstream struct {
	srv  *http.Server
	addr string
	mu   sync.Mutex
	hits map[string]int
	at   map[string][]time.Time // arrival times per path

	bodyBytes atomic.Int64 // of the last request with a body
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &upstream{addr: l.Addr().String(), hits: map[string]int{}, at: map[string][]time.Time{}}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if n > 0 {
			u.bodyBytes.Store(n)
		}
		u.mu.Lock()
		u.hits[r.URL.Path]++
		u.at[r.URL.Path] = append(u.at[r.URL.Path], time.Now())
		u.mu.Unlock()
		w.Header().Set("x-echo-admission", r.Header.Get(wire.HeaderAdmission))
		w.Header().Set("x-echo-held-ms", r.Header.Get(wire.HeaderHeldMs))
		w.Header().Set("x-echo-request-id", r.Header.Get(wire.HeaderRequestID))
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { _ = u.srv.Serve(l) }()
	t.Cleanup(func() { _ = u.srv.Close() })
	return u
}

// controlPlane stands in for shadowlab's control plane: it sums the
// reported counts per route and key.
type controlPlane struct {
	srv    *http.Server
	addr   string
	mu     sync.Mutex
	posts  int
	bad    []string // what was wrong with requests, if anything
	counts map[reportKey]wire.Counts
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cp := &controlPlane{addr: l.Addr().String(), counts: map[reportKey]wire.Counts{}}
	cp.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		cp.mu.Lock()
		defer cp.mu.Unlock()
		cp.posts++
		if r.Method != http.MethodPost || r.URL.Path != wire.ReportPath || r.Host != wire.ReportAuthority ||
			r.Header.Get("content-type") != wire.ReportContentType {
			cp.bad = append(cp.bad, fmt.Sprintf("%s %s host %q content-type %q", r.Method, r.URL.Path, r.Host, r.Header.Get("content-type")))
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
			var l reportLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				cp.bad = append(cp.bad, fmt.Sprintf("line %q: %v", line, err))
				continue
			}
			c := cp.counts[reportKey{l.Route, l.Key}]
			c.Add(l.Counts)
			cp.counts[reportKey{l.Route, l.Key}] = c
		}
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = cp.srv.Serve(l) }()
	t.Cleanup(func() { _ = cp.srv.Close() })
	return cp
}

func (cp *controlPlane) get(route, key string) (wire.Counts, int, []string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.counts[reportKey{route, key}], cp.posts, slices.Clone(cp.bad)
}

func (u *upstream) count(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

// maxInWindow is the most arrivals at path within any window of length w.
func (u *upstream) maxInWindow(path string, w time.Duration) int {
	u.mu.Lock()
	at := slices.Clone(u.at[path])
	u.mu.Unlock()
	slices.SortFunc(at, time.Time.Compare)
	most, _ := admission.MostInWindow(at, w)
	return most
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// rssKiB reads VmRSS (or another /proc status field) in KiB.
func rssKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	n, err := harness.MemKiB(pid, field)
	require.NoError(t, err)
	return n
}

// stats returns Envoy's counters and gauges whose names match filter.
func stats(t *testing.T, p *harness.Envoy, filter string) map[string]int64 {
	t.Helper()
	st, err := p.Stats(context.Background(), filter)
	require.NoError(t, err)
	return st
}

func delta(after, before map[string]int64, name string) int64 {
	return after["wasmcustom.shadowlab_admission_"+name] - before["wasmcustom.shadowlab_admission_"+name]
}

type result struct {
	status    int
	admission string
	heldMs    int
	retry     string
	latency   time.Duration
	err       error
}

func get(ctx context.Context, c *http.Client, url string) result {
	t0 := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err, latency: time.Since(t0)}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	r := result{status: resp.StatusCode, latency: time.Since(t0), retry: resp.Header.Get("retry-after")}
	r.admission = resp.Header.Get("x-echo-admission")
	if r.admission == "" {
		r.admission = resp.Header.Get(wire.HeaderAdmission) // set on the plugin's own 429
	}
	r.heldMs, _ = strconv.Atoi(resp.Header.Get("x-echo-held-ms"))
	return r
}

// burst sends n requests released at one instant and returns their results.
func burst(c *http.Client, url string, n int, timeout time.Duration) []result {
	out := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			out[i] = get(ctx, c, url)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// load sends n requests from workers keep-alive connections and returns the
// latencies and the number of non-200 answers.
func load(c *http.Client, url string, n, workers int) ([]time.Duration, int) {
	var next, bad atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r := get(context.Background(), c, url)
				lat[i] = r.latency
				if r.err != nil || r.status != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return lat, int(bad.Load())
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// badLogLines are Envoy log lines that mean the plugin or its VM failed.
var badLog = regexp.MustCompile(`poll_oneoff|errno=|fatal error|panic|\[critical\]|\[error\]|Function: proxy_on_|wasm log.*(error|failed)|VM .*(failed|crash)`)

func TestEnvoyWasmPlugin(t *testing.T) {
	t.Cleanup(harness.RemoveBuilt)
	lab := harness.Test(t)
	wasmPath, err := harness.BuildPlugin()
	require.NoError(t, err)
	st, err := os.Stat(wasmPath)
	require.NoError(t, err)
	t.Logf("module: %s, %d bytes (%.2f MiB)", wasmPath, st.Size(), float64(st.Size())/(1<<20))

	up := startUpstream(t)
	cp := startControlPlane(t)
	vmEnv := map[string]string{}
	if v := os.Getenv("SHADOWLAB_E2E_GOGC"); v != "" {
		vmEnv["GOGC"] = v
	}
	gcHeap := ""
	if v := envInt("SHADOWLAB_E2E_GC_HEAP", 0); v > 0 {
		gcHeap = `, "gc_heap_bytes": ` + strconv.Itoa(v)
	}
	plugins := map[string]string{ // listener → plugin configuration; none: no plugin
		"burst":            `{"limit": 100, "window_ms": 1000, "max_delay_ms": 15000, "tick_ms": 10}`,
		"post":             `{"limit": 1, "window_ms": 1000, "max_delay_ms": 5000, "tick_ms": 10}`,
		"reject":           `{"limit": 100, "window_ms": 1000, "mode": "reject"}`,
		"abandon":          `{"limit": 1, "window_ms": 1000, "max_delay_ms": 30000}`,
		"pass":             `{"limit": 1000000000, "max_delay_ms": 1000` + gcHeap + `}`,
		"mixed":            `{"limit": 5000, "window_ms": 1000, "max_delay_ms": 1000, "tick_ms": 10` + gcHeap + `}`,
		"report":           `{"limit": 5, "window_ms": 1000, "mode": "reject", "route": "report-policy", "key_header": "x-tenant", "report_cluster": "control", "report_ms": 200}`,
		"report_down":      `{"limit": 1000000, "mode": "reject", "report_cluster": "control_down", "report_ms": 100}`,
		"report_nocluster": `{"limit": 1000000, "mode": "reject", "report_cluster": "no_such_cluster", "report_ms": 100}`,
	}
	ls := map[string]harness.Listener{}
	var all []harness.Listener
	for _, name := range []string{"plain", "burst", "post", "reject", "abandon", "pass", "mixed", "report", "report_down", "report_nocluster"} {
		addr, err := harness.FreeAddr()
		require.NoError(t, err)
		route := harness.Route{Name: name + "-route", Prefix: "/", Cluster: "upstream"}
		if cfg, ok := plugins[name]; ok {
			route.Plugin = &harness.Plugin{Name: "shadowlab-" + name, Config: cfg}
		}
		// The report listener leaves x-request-id to the plugin.
		ls[name] = harness.Listener{Name: name, Address: addr, Routes: []harness.Route{route}, NoRequestID: name == "report"}
		all = append(all, ls[name])
	}
	url := func(name string) string { return "http://" + ls[name].Address + "/" + name }
	startEnvoy := func(cfg harness.StaticConfig) *harness.Envoy {
		t.Helper()
		boot, err := harness.StaticBootstrap(cfg)
		require.NoError(t, err)
		p, err := lab.Envoy(context.Background(), harness.EnvoyConfig{Bootstrap: boot})
		require.NoError(t, err)
		return p
	}

	// Start-up cost of the wasm VMs: time to ready with and without them.
	upstreamCluster := harness.Cluster{Name: "upstream", Address: up.addr}
	plainP := startEnvoy(harness.StaticConfig{Listeners: []harness.Listener{ls["plain"]}, Clusters: []harness.Cluster{upstreamCluster}})
	plainRSS := rssKiB(t, plainP.Pid(), "VmRSS")
	require.NoError(t, plainP.Stop())
	down, err := harness.FreeAddr()
	require.NoError(t, err)
	p := startEnvoy(harness.StaticConfig{Listeners: all, WasmPath: wasmPath, VMEnv: vmEnv,
		Clusters:      []harness.Cluster{upstreamCluster, {Name: "control", Address: cp.addr}, {Name: "control_down", Address: down}},
		StopIteration: os.Getenv("SHADOWLAB_E2E_STOP_ITERATION") == "true"})
	if testing.Verbose() {
		t.Cleanup(func() {
			t.Logf("envoy log (wasm lines and errors):\n%s", grepLines(p.Logs(), regexp.MustCompile(`wasm|error|critical`), 80))
		})
	}
	startRSS := rssKiB(t, p.Pid(), "VmRSS")
	t.Logf("envoy ready: %v without wasm (RSS %d KiB), %v with the plugin on %d listeners (RSS %d KiB)", plainP.Ready, plainRSS, p.Ready, len(all)-1, startRSS)
	t.Logf("wasm runtime stats: %v", stats(t, p, "wasm.envoy.wasm"))

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, DisableCompression: true,
	}}

	t.Run("burst is spread: at most the limit per 1 s window", func(t *testing.T) {
		before := stats(t, p, "shadowlab")
		res := burst(client, url("burst"), 1000, 30*time.Second)
		passed, held := 0, 0
		var heldLat []time.Duration
		for i, r := range res {
			require.NoError(t, r.err, "request %d", i)
			require.Equal(t, http.StatusOK, r.status, "request %d", i)
			switch r.admission {
			case wire.AdmissionPassed:
				passed++
			case wire.AdmissionHeld:
				held++
				heldLat = append(heldLat, r.latency)
				require.LessOrEqual(t, r.heldMs, 15000+100, "request %d held-ms", i)
			default:
				t.Fatalf("request %d: admission header %q", i, r.admission)
			}
		}
		after := stats(t, p, "shadowlab")
		most := up.maxInWindow("/burst", time.Second)
		t.Logf("burst of 1000, limit 100/s, max delay 15 s: passed %d, held %d (p50 %v, max %v); most upstream arrivals in a 1 s window %d; counters held %d released %d cas_retries %d",
			passed, held, pct(heldLat, .5), pct(heldLat, 1), most,
			delta(after, before, "held"), delta(after, before, "released"), delta(after, before, "cas_retries"))
		require.Equal(t, 1000, passed+held)
		require.LessOrEqual(t, most, 110, "upstream arrivals per 1 s window (limit +10 %)")
		require.Equal(t, 1000, up.count("/burst"))
	})

	t.Run("held POST keeps its body and waits", func(t *testing.T) {
		require.Equal(t, http.StatusOK, get(context.Background(), client, url("post")).status)
		// The post route's budget (1/s) is spent: this one is held.
		size := envInt("SHADOWLAB_E2E_BODY", 4<<20)
		body := strings.Repeat("x", size)
		t0 := time.Now()
		resp, err := client.Post(url("post"), "text/plain", strings.NewReader(body))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		heldMs, _ := strconv.Atoi(resp.Header.Get("x-echo-held-ms"))
		t.Logf("held POST of %d bytes: status %d, admission %q, held-ms %d, took %v, upstream got %d bytes",
			len(body), resp.StatusCode, resp.Header.Get("x-echo-admission"), heldMs, took, up.bodyBytes.Load())
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, wire.AdmissionHeld, resp.Header.Get("x-echo-admission"))
		require.GreaterOrEqual(t, took, time.Duration(heldMs)*time.Millisecond, "released before its delay")
		require.EqualValues(t, len(body), up.bodyBytes.Load())
	})

	t.Run("reject answers 429 with spread retry-after", func(t *testing.T) {
		res := burst(client, url("reject"), 1000, 10*time.Second)
		ok, rejected := 0, 0
		values := map[int]int{}
		for i, r := range res {
			require.NoError(t, r.err, "request %d", i)
			switch r.status {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				rejected++
				secs, err := strconv.Atoi(r.retry)
				require.NoError(t, err, "retry-after %q", r.retry)
				require.True(t, secs >= 1 && secs <= 62, "retry-after %d", secs)
				values[secs]++
			default:
				t.Fatalf("request %d: status %d", i, r.status)
			}
		}
		t.Logf("burst of 1000, limit 100/s, reject: 200 %d, 429 %d; retry-after values %v", ok, rejected, values)
		require.InDelta(t, 100, ok, 10)
		require.GreaterOrEqual(t, len(values), 5, "retry-after values are spread")
		require.Equal(t, ok, up.count("/reject"))
	})

	t.Run("abandoned held requests leave nothing behind", func(t *testing.T) {
		require.Equal(t, http.StatusOK, get(context.Background(), client, url("abandon")).status)
		before := stats(t, p, "shadowlab")
		res := burst(client, url("abandon"), 20, 300*time.Millisecond)
		gone := 0
		for _, r := range res {
			if r.err != nil {
				gone++
			}
		}
		// Slots are ~1 s apart: only the first can come before 300 ms.
		require.GreaterOrEqual(t, gone, 19, "requests held past the client timeout")
		require.Eventually(t, func() bool {
			s := stats(t, p, "shadowlab")
			return delta(s, before, "abandoned") == int64(gone) && s["wasmcustom.shadowlab_admission_held_now"] == 0
		}, 2*time.Second, 20*time.Millisecond, "stats %v", stats(t, p, "shadowlab"))
		time.Sleep(3 * time.Second) // past the first slots: nothing may be resumed now
		after := stats(t, p, "shadowlab")
		require.EqualValues(t, 20-gone, delta(after, before, "released"))
		require.Equal(t, 1+20-gone, up.count("/abandon"))
	})

	t.Run("reports reach the control plane; a dead one changes nothing", func(t *testing.T) {
		resp, err := client.Get(url("plain"))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.NotEmpty(t, resp.Header.Get("x-echo-request-id"), "envoy adds x-request-id itself by default")

		before := stats(t, p, "shadowlab")
		statuses := map[int]int{}
		ids := map[string]bool{}
		for range 20 {
			req, _ := http.NewRequest(http.MethodGet, url("report"), nil)
			req.Header.Set("x-tenant", "acme")
			resp, err := client.Do(req)
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusOK {
				id := resp.Header.Get("x-echo-request-id")
				require.Regexp(t, uuidV4, id, "x-request-id stamped by the plugin")
				ids[id] = true
			}
		}
		require.Equal(t, map[int]int{http.StatusOK: 5, http.StatusTooManyRequests: 15}, statuses)
		require.Len(t, ids, 5, "distinct request ids")
		require.Eventually(t, func() bool {
			c, _, _ := cp.get("report-policy", "acme")
			return c.Admitted == 5 && c.Rejected == 15
		}, 5*time.Second, 50*time.Millisecond)

		for _, name := range []string{"report_down", "report_nocluster"} {
			_, bad := load(client, url(name), 200, 4)
			require.Zero(t, bad, "%s: requests failed", name)
		}
		require.Eventually(t, func() bool {
			return delta(stats(t, p, "shadowlab"), before, "report_failed") >= 2
		}, 5*time.Second, 50*time.Millisecond)
		time.Sleep(time.Second) // more failed reports: still nothing else
		c, posts, bad := cp.get("report-policy", "acme")
		after := stats(t, p, "shadowlab")
		t.Logf("control plane: %d posts, report-policy/acme %+v; reports %d, report_failed %d",
			posts, c, delta(after, before, "reports"), delta(after, before, "report_failed"))
		require.Empty(t, bad)
		require.Equal(t, wire.Counts{Admitted: 5, Rejected: 15}, c, "nothing counted twice")
		require.Positive(t, delta(after, before, "reports"))
		require.Zero(t, delta(after, before, "fail_open"))
	})

	t.Run("latency one request at a time", func(t *testing.T) {
		// Arms interleaved in small blocks; one worker, so this is the
		// plugin's cost per request, not queueing.
		lat := map[string][]time.Duration{}
		for range 20 {
			for _, arm := range []string{"plain", "pass"} {
				l, bad := load(client, url(arm), 200, 1)
				require.Zero(t, bad)
				lat[arm] = append(lat[arm], l...)
			}
		}
		for _, arm := range []string{"plain", "pass"} {
			t.Logf("%-5s %d sequential requests: p50 %v p90 %v p99 %v", arm, len(lat[arm]),
				pct(lat[arm], .5), pct(lat[arm], .9), pct(lat[arm], .99))
		}
		t.Logf("added by the plugin: p50 %v, p99 %v",
			pct(lat["pass"], .5)-pct(lat["plain"], .5), pct(lat["pass"], .99)-pct(lat["plain"], .99))
	})

	t.Run("sustained load", func(t *testing.T) {
		n := envInt("SHADOWLAB_E2E_REQUESTS", 100000)
		workers := envInt("SHADOWLAB_E2E_WORKERS", 64)
		created0 := stats(t, p, "wasm.envoy.wasm")
		before := stats(t, p, "shadowlab")
		rss0 := rssKiB(t, p.Pid(), "VmRSS")
		// Arms interleaved in blocks so drift hits both alike.
		const blocks = 10
		lat := map[string][]time.Duration{}
		bad := map[string]int{}
		var rssAfterBlock []int
		took := map[string]time.Duration{}
		t0 := time.Now()
		for b := range blocks {
			for _, arm := range []string{"plain", "pass", "mixed"} {
				ta := time.Now()
				l, e := load(client, url(arm), n/blocks, workers)
				took[arm] += time.Since(ta)
				lat[arm] = append(lat[arm], l...)
				bad[arm] += e
			}
			rssAfterBlock = append(rssAfterBlock, rssKiB(t, p.Pid(), "VmRSS"))
			select {
			case <-p.Exited():
				t.Fatalf("envoy exited during block %d:\n%s", b, p.Logs())
			default:
			}
		}
		elapsed := time.Since(t0)
		after := stats(t, p, "shadowlab")
		created1 := stats(t, p, "wasm.envoy.wasm")
		rss1 := rssKiB(t, p.Pid(), "VmRSS")
		for _, arm := range []string{"plain", "pass", "mixed"} {
			t.Logf("%-5s %d requests, %.0f/s: p50 %v p90 %v p99 %v max %v, non-200 %d", arm, len(lat[arm]),
				float64(len(lat[arm]))/took[arm].Seconds(),
				pct(lat[arm], .5), pct(lat[arm], .9), pct(lat[arm], .99), pct(lat[arm], 1), bad[arm])
		}
		t.Logf("%d requests in %v (%.0f/s), %d workers", 3*n, elapsed, float64(3*n)/elapsed.Seconds(), workers)
		t.Logf("plugin counters: passed %d held %d released %d rejected %d fail_open %d cas_retries %d gc_runs %d",
			delta(after, before, "passed"), delta(after, before, "held"), delta(after, before, "released"),
			delta(after, before, "rejected"), delta(after, before, "fail_open"), delta(after, before, "cas_retries"),
			delta(after, before, "gc_runs"))
		t.Logf("delay histogram: %s", histogram(t, p, "shadowlab_admission_delay_ms"))
		t.Logf("envoy RSS: %d KiB at start, %d KiB before load, %d KiB after (HWM %d KiB); after each block %v",
			startRSS, rss0, rss1, rssKiB(t, p.Pid(), "VmHWM"), rssAfterBlock)
		t.Logf("wasm runtime stats before %v after %v", created0, created1)
		t.Logf("VM Go memory (sum over VMs): heap %d -> %d KiB, sys %d -> %d KiB; GCs during the load %d",
			before["wasmcustom.shadowlab_vm_heap_bytes"]>>10, after["wasmcustom.shadowlab_vm_heap_bytes"]>>10,
			before["wasmcustom.shadowlab_vm_sys_bytes"]>>10, after["wasmcustom.shadowlab_vm_sys_bytes"]>>10,
			after["wasmcustom.shadowlab_vm_gc"]-before["wasmcustom.shadowlab_vm_gc"])

		require.Zero(t, bad["plain"]+bad["pass"]+bad["mixed"], "failed requests")
		// With FAIL_OPEN a dead VM lets requests through: check the plugin saw them all.
		require.EqualValues(t, 2*(n/blocks)*blocks, delta(after, before, "passed")+delta(after, before, "held"),
			"requests the plugin decided on")
		require.Equal(t, created0, created1, "a VM was created or destroyed under load (restart?)")
	})

	select {
	case <-p.Exited():
		t.Fatalf("envoy exited:\n%s", p.Logs())
	default:
	}
	end := stats(t, p, "wasm")
	t.Logf("envoy wasm stats at the end: %v", end)
	for k, v := range end {
		if strings.Contains(k, "vm_reload") || strings.HasSuffix(k, "fail_open") {
			require.Zero(t, v, "%s", k)
		}
	}
	// The plugin warns, as it should, about the control planes that are
	// down on purpose.
	logs := regexp.MustCompile(`(?m)^.*admission outcomes not delivered.*$`).ReplaceAllString(p.Logs(), "")
	if bad := grepLines(logs, badLog, 40); bad != "" {
		t.Errorf("envoy log has plugin/VM errors:\n%s", bad)
	}
}

// histogram returns the summary line Envoy's admin gives for a histogram.
func histogram(t *testing.T, p *harness.Envoy, name string) string {
	t.Helper()
	body, _, err := p.Admin(context.Background(), "GET", "/stats?filter="+name)
	require.NoError(t, err)
	return strings.TrimSpace(body)
}

func grepLines(s string, re *regexp.Regexp, max int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... %d more", len(out)-max))
	}
	return strings.Join(out, "\n")
}
