package report

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/policy"
)

const rolloutPolicy = `
version: 1
listeners: [{name: ingress, address: "127.0.0.1:10000"}]
services:
  legacy: {endpoints: ["127.0.0.1:8081"]}
  candidate: {endpoints: ["127.0.0.1:8082"]}
routes:
  - name: orders
    match: {pathPrefix: /orders}
    primary: legacy
    shadow: {service: candidate, percent: 100, tenants: {header: x-tenant, values: [acme, globex]}}
    rollout:
      stage: canary
      percent: 10
      gates: {window: 1m, minPairs: 10, minMatchRate: 0.9, maxLatencyRatioP99: 2, minCandidateRequests: 5, maxFallbackRate: 0.2}
  - name: plain
    match: {pathPrefix: /}
    primary: legacy
`

func rolloutReporter(t *testing.T) (*Reporter, *time.Time) {
	t.Helper()
	r := newTestReporter(t, Config{})
	now := t0
	r.now = func() time.Time { return now }
	p, err := policy.Parse([]byte(rolloutPolicy), "policy.yaml")
	require.NoError(t, err)
	r.UseRollout(p)
	return r, &now
}

func gateVerdicts(gs []GateResult) map[string]Verdict {
	out := map[string]Verdict{}
	for _, g := range gs {
		out[g.Gate] = g.Verdict
	}
	return out
}

// Too few pairs is inconclusive whatever the match rate; enough good pairs
// pass; a low match rate fails; per tenant too; the window forgets.
func TestRolloutGates(t *testing.T) {
	r, now := rolloutReporter(t)
	rep := r.Rollout()
	require.Len(t, rep.Routes, 1)
	o := rep.Routes[0]
	require.Equal(t, Inconclusive, o.Verdict)
	require.Equal(t, "10 more compared pairs in the window", o.Gates[0].Missing)
	require.Equal(t, []string{"acme", "globex", policy.OtherTenant}, []string{o.Tenants[0].Tenant, o.Tenants[1].Tenant, o.Tenants[2].Tenant})

	for i := range 9 {
		p := comparedPair("orders", i)
		p.Tenant = "acme"
		r.Record(p)
	}
	o = r.Rollout().Routes[0]
	require.Equal(t, Inconclusive, o.Verdict, "9 matching pairs of 10 needed")
	require.Equal(t, Inconclusive, gateVerdicts(o.Gates)[GateMatchRate])

	for i := 9; i < 20; i++ {
		p := comparedPair("orders", i)
		p.Tenant = "acme"
		r.Record(p)
	}
	o = r.Rollout().Routes[0]
	v := gateVerdicts(o.Gates)
	require.Equal(t, Pass, v[GateMatchRate])
	require.Equal(t, Pass, v[GateLatencyP99])
	require.Equal(t, Inconclusive, v[GateFallbackRate], "no request answered by the candidate yet")
	require.Equal(t, Inconclusive, o.Verdict)
	require.Equal(t, 20, o.Tenants[0].Pairs)
	require.Equal(t, 0, o.Tenants[1].Pairs)

	for range 10 {
		r.Candidate("orders", "acme", "", false)
	}
	o = r.Rollout().Routes[0]
	require.Equal(t, Pass, o.Verdict, "%+v", o.Gates)
	require.Equal(t, Pass, o.Tenants[0].Verdict)
	require.Equal(t, Inconclusive, o.Tenants[1].Verdict, "globex has no pairs")

	// globex's pairs differ: its gate fails, and the route's match rate
	// (20 of 32) too.
	for i := range 12 {
		p := comparedPair("orders", 100+i, changed("$.total", "1", "2"))
		p.Tenant = "globex"
		r.Record(p)
	}
	o = r.Rollout().Routes[0]
	require.Equal(t, Fail, o.Tenants[1].Verdict)
	require.Equal(t, Fail, o.Verdict)
	require.Equal(t, Pass, o.Tenants[0].Verdict, "acme still passes")

	// Fallbacks: 3 of 13 requests is over 20 %.
	r.Candidate("orders", "acme", Reason5xx, false)
	r.Candidate("orders", "acme", ReasonTimeout, false)
	r.Candidate("orders", "acme", "", true)
	o = r.Rollout().Routes[0]
	require.Equal(t, Fail, gateVerdicts(o.Tenants[0].Gates)[GateFallbackRate])
	require.Equal(t, map[string]int{Reason5xx: 1, ReasonTimeout: 1}, o.Fallbacks)
	require.Equal(t, 1, o.Failed)

	// A minute later the window has forgotten everything.
	*now = now.Add(61 * time.Second)
	o = r.Rollout().Routes[0]
	require.Equal(t, 0, o.Pairs)
	require.Equal(t, 0, o.CandidateRequests)
	require.Equal(t, Inconclusive, o.Verdict)
}

// A route in shadow has no fallback gate; a route without rollout is not
// reported; the metrics carry the verdicts.
func TestRolloutShadowStageAndMetrics(t *testing.T) {
	r, _ := rolloutReporter(t)
	p, err := policy.Parse([]byte(rolloutPolicy), "policy.yaml")
	require.NoError(t, err)
	p.Route("orders").Rollout.Stage = policy.StageShadow
	r.UseRollout(p)
	for i := range 10 {
		r.Record(comparedPair("orders", i))
	}
	o := r.Rollout().Routes[0]
	require.Equal(t, Pass, o.Verdict)
	require.NotContains(t, gateVerdicts(o.Gates), GateFallbackRate)

	body := scrape(t, r)
	require.Contains(t, body, `shadowlab_rollout_gates_pass{route="orders",tenant=""} 1`)
	require.Contains(t, body, `shadowlab_rollout_verdict{route="orders",tenant="acme",verdict="inconclusive"} 1`)
	require.Contains(t, body, `shadowlab_rollout_pairs{route="orders",tenant=""} 10`)
	require.NotContains(t, body, `route="plain"`)
}

func scrape(t *testing.T, r *Reporter) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	return rec.Body.String()
}

func TestRolloutAPI(t *testing.T) {
	r, _ := rolloutReporter(t)
	for path, want := range map[string]int{"/api/v1/rollout": 200, "/api/v1/rollout/orders": 200, "/api/v1/rollout/plain": 404, "/api/v1/rollout?x=1": 400} {
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		require.Equal(t, want, rec.Code, path+": "+rec.Body.String())
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/rollout/orders", nil))
	var o RouteRollout
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &o))
	require.Equal(t, Inconclusive, o.Verdict)
	require.Equal(t, policy.StageCanary, o.Stage)
}

// A latency ratio fails only when the candidate is slower by more than the
// slack: sub-millisecond ratios are noise.
func TestRolloutLatencySlack(t *testing.T) {
	r, _ := rolloutReporter(t)
	record := func(n int, primary, shadow time.Duration) {
		for i := range n {
			p := comparedPair("orders", i)
			p.PrimaryLatency, p.ShadowLatency = primary, shadow
			r.Record(p)
		}
	}
	record(10, 300*time.Microsecond, 3*time.Millisecond) // 10× slower, by 2.7 ms
	v := gateVerdicts(r.Rollout().Routes[0].Gates)
	require.Equal(t, Pass, v[GateLatencyP50])
	require.Equal(t, Pass, v[GateLatencyP99])
	record(200, 20*time.Millisecond, 60*time.Millisecond) // 3× slower, by 40 ms
	v = gateVerdicts(r.Rollout().Routes[0].Gates)
	require.Equal(t, Fail, v[GateLatencyP50])
	require.Equal(t, Fail, v[GateLatencyP99])
}
