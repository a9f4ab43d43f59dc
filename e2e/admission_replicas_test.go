package e2e

import (
	"context"
	"net/url"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/internal/redistest"
	"github.com/shadowlab/shadowlab/wire"
)

// TestAdmissionReplicas: two Envoys, each programmed by its own `shadowlab
// serve`, the two serves sharing their global budgets through one real
// Redis, in front of one service. The admission policy is TestAdmission's
// (100/s, maxDelay 15 s).
func TestAdmissionReplicas(t *testing.T) {
	redis := redistest.Start(t)
	envs := startReplicas(t, admissionPolicy, 2, redis.URL)
	a, b := envs[0], envs[1]
	clients := newBurstClients(2 * burstSize)
	for _, e := range envs {
		clients.warm(t, "http://"+e.ports.Listener+"/warm")
	}
	_, err := harness.WaitQuiet(context.Background(), time.Minute, zaptest.NewLogger(t))
	require.NoError(t, err)
	// global sums the report rows of both replicas for a global route.
	global := func(route string) wire.Counts {
		var c wire.Counts
		for _, e := range envs {
			c.Add(admissionRow(t, "http://"+e.api, wire.ScopeGlobal.String(), route, "").Counts)
		}
		return c
	}

	t.Run("one budget for two replicas", func(t *testing.T) {
		const path = "/global/delay/shared"
		before := global("global-delay")
		start := time.Now()
		res := clients.burstsTo(map[string]int{
			"http://" + a.ports.Listener + path: burstSize / 2,
			"http://" + b.ports.Listener + path: burstSize / 2,
		}, 30*time.Second, nil)
		got := slices.Concat(res["http://"+a.ports.Listener+path], res["http://"+b.ports.Listener+path])
		arrivals := a.arrivals(path)
		peak := maxInWindow(arrivals, time.Second)
		t.Logf("%d/%d answered 200, upstream got %d, peak %d per sliding 1s, latency p50 %s p99 %s max %s\nupstream per second: %s",
			count(got, 200), len(got), len(arrivals), peak, pct(got, 0.5), pct(got, 0.99), pct(got, 1), perSecond(arrivals, start))
		assert.Equal(t, burstSize, count(got, 200), "every held request eventually succeeds")
		assert.Len(t, arrivals, burstSize, "each request reaches the upstream once")
		assert.LessOrEqual(t, peak, maxPerSec, "two replicas, one budget: at most the limit +10%% per 1s window")
		assert.LessOrEqual(t, pct(got, 1), maxDelay+time.Second, "a request waited longer than maxDelay")
		requireEventually(t, func() error {
			c := global("global-delay")
			if n := c.Admitted + c.Delayed - before.Admitted - before.Delayed; n != burstSize {
				return assert.AnError
			}
			return nil
		})

		// `shadowlab report` over both replicas: each one's row and the
		// merged one, with the merged waits.
		bin, err := harness.BuildShadowlab()
		require.NoError(t, err)
		out, err := exec.Command(bin, "report", "--server", "http://"+a.api+",http://"+b.api).CombinedOutput()
		require.NoError(t, err, "%s", out)
		t.Logf("shadowlab report --server A,B:\n%s", out)
		var rows []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "global-delay") {
				rows = append(rows, line)
			}
		}
		require.Len(t, rows, 3, "a row per replica and the merged one")
		replicas := rows[0] + rows[1] // sorted by name, not by the order given
		assert.Contains(t, replicas, a.api)
		assert.Contains(t, replicas, b.api)
		assert.Contains(t, rows[2], " all ")
	})

	t.Run("saturated machine", func(t *testing.T) {
		// Local admission in Envoy a (its own budget), then global
		// through both Envoys.
		saturatedBurst(t, clients, a, "local", map[string]int{"http://" + a.ports.Listener + "/local/delay/saturated": burstSize}, a)
		saturatedBurst(t, clients, a, "global", map[string]int{
			"http://" + a.ports.Listener + "/global/delay/saturated": burstSize / 2,
			"http://" + b.ports.Listener + "/global/delay/saturated": burstSize / 2,
		}, envs...)
	})

	t.Run("redis stopped mid-burst", func(t *testing.T) {
		// A burst is held; Redis dies; a second burst arrives and passes
		// unchecked (fail open, counted); Redis comes back empty; a third
		// burst is admitted under the bound again.
		const path = "/global/delay/redis"
		before := global("global-delay")
		burst := func(n int) func() []result {
			done := make(chan []result, 1)
			go func() {
				res := clients.burstsTo(map[string]int{
					"http://" + a.ports.Listener + path: n / 2,
					"http://" + b.ports.Listener + path: n - n/2,
				}, 30*time.Second, nil)
				done <- slices.Concat(res["http://"+a.ports.Listener+path], res["http://"+b.ports.Listener+path])
			}()
			return func() []result { return <-done }
		}
		start := time.Now()
		first := burst(500)
		time.Sleep(2 * time.Second)
		redis.Stop()
		time.Sleep(500 * time.Millisecond)
		during := burst(100)()
		time.Sleep(time.Second)
		redis.Restart()
		time.Sleep(time.Second)
		// The bound resumes once Redis is back, while the requests held
		// before the outage are still being released on their schedule:
		// Redis came back empty, but each serve resumes the schedule it
		// remembers (admission.Later) instead of starting a new one beside
		// it (before, a burst admitted then could double the rate: 147 and
		// 234 in a second were seen).
		thirdAt := time.Now()
		third := burst(300)
		got := slices.Concat(first(), during, third())
		arrivals := a.arrivals(path)
		var after []time.Time // arrivals once Redis is back: the first burst's rest and the third
		for _, at := range arrivals {
			if at.After(thirdAt) {
				after = append(after, at)
			}
		}
		failOpen := global("global-delay").FailOpen - before.FailOpen
		t.Logf("%d/%d answered 200, %d errors; %d passed unchecked (fail_open) while Redis was down; peak %d per sliding 1s after Redis came back (%d overall), latency of the burst during the outage max %s\nupstream per second: %s",
			count(got, 200), len(got), len(got)-count(got, 200)-count(got, 429), failOpen, maxInWindow(after, time.Second), maxInWindow(arrivals, time.Second), pct(during, 1), perSecond(arrivals, start))
		for _, e := range envs {
			st := envoyStats(t, e, "ext_proc.shadowlab_admission")
			t.Logf("envoy: ext_proc message timeouts %d, failure_mode_allowed %d",
				st["http.shadowlab_edge.ext_proc.shadowlab_admission.message_timeouts"], st["http.shadowlab_edge.ext_proc.shadowlab_admission.failure_mode_allowed"])
		}
		t.Logf("latency of the burst during the outage: p50 %s p99 %s", pct(during, 0.5), pct(during, 0.99))
		assert.Equal(t, len(got), count(got, 200), "no client error, nothing lost")
		assert.GreaterOrEqual(t, failOpen, uint64(100), "the requests passed unchecked are counted")
		assert.Less(t, pct(during, 1), time.Second, "with Redis down a request passes at once")
		assert.LessOrEqual(t, maxInWindow(after, time.Second), maxPerSec, "the bound resumes once Redis is back")
	})
}

// saturatedBurst sends one scope's burst (URL → requests, every path the
// same) at one instant while a busy loop per core competes for the
// machine: timers fire late, releases bunch up, and the bound must still
// hold at the service (e's), within limit + 15 % (maxPerSecSaturated), with nothing lost; the
// cost, longer waits, is logged. envs are the Envoys the burst goes
// through.
func saturatedBurst(t *testing.T, clients *burstClients, e *procEnv, scope string, urls map[string]int, envs ...*procEnv) {
	t.Helper()
	var path string
	for u := range urls {
		pu, err := url.Parse(u)
		require.NoError(t, err)
		path = pu.Path
	}
	stop, err := harness.CPUHog(runtime.NumCPU(), time.Minute)
	require.NoError(t, err)
	t.Cleanup(stop)
	start := time.Now()
	res := clients.burstsTo(urls, 40*time.Second, nil)
	stop()
	for _, env := range envs {
		st := envoyStats(t, env, "ext_proc.shadowlab_admission")
		assert.Zero(t, st["http.shadowlab_edge.ext_proc.shadowlab_admission.failure_mode_allowed"], "Envoy let requests through unadmitted (ext_proc too slow)")
	}
	var got []result
	for u := range urls {
		got = append(got, res[u]...)
	}
	arrivals := e.arrivals(path)
	peak := maxInWindow(arrivals, time.Second)
	t.Logf("%s, saturated: %d/%d answered 200 (%d × 429), upstream got %d, peak %d per sliding 1s, latency p50 %s p99 %s max %s\nupstream per second: %s",
		scope, count(got, 200), len(got), count(got, 429), len(arrivals), peak, pct(got, 0.5), pct(got, 0.99), pct(got, 1), perSecond(arrivals, start))
	assert.Equal(t, len(got), count(got, 200), "%s: nothing lost in delay mode", scope)
	assert.Len(t, arrivals, count(got, 200), "%s: each answered request reached the upstream once", scope)
	assert.LessOrEqual(t, peak, maxPerSecSaturated, "%s: the bound holds on a saturated machine", scope)
}
