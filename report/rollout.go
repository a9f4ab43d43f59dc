package report

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowlab/shadowlab/policy"
)

// The rollout's evidence: per route with a rollout block, and per tenant
// (policy.Route.TenantOf), what the gates read over the route's gate
// window — compared pairs, each side's latency, the requests the candidate
// answered and its fallbacks by reason. It lives in memory only, in
// rolloutSlots slots of window/rolloutSlots: a restart starts every gate
// at inconclusive, never at pass.

// Verdict is a gate's, a tenant's or a route's conclusion.
type Verdict string

// Verdicts. Inconclusive is never a pass: too few samples to tell.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
)

// Gate names, in the order status lists them.
const (
	GateMinPairs     = "min_pairs"
	GateMatchRate    = "match_rate"
	GateLatencyP50   = "latency_ratio_p50"
	GateLatencyP99   = "latency_ratio_p99"
	GateFallbackRate = "fallback_rate"
)

// The window's slots, the key of a route's whole evidence among its
// tenants', and the reasons kept apart per cell (the rest: ReasonOther).
const (
	rolloutSlots      = 20
	allTenants        = ""
	maxFallbackReason = 16
)

// Fallback reasons: why a candidate's attempt failed.
const (
	Reason5xx            = "5xx"
	ReasonReset          = "reset"
	ReasonTimeout        = "timeout"
	ReasonConnectFailure = "connect_failure"
	ReasonOther          = "other"
)

// RolloutReport is every rolled-out route's stage and gates: the JSON body
// of GET /api/v1/rollout.
type RolloutReport struct {
	GeneratedAt time.Time      `json:"generated_at"`
	Routes      []RouteRollout `json:"routes"` // in policy order; [] when none
}

// RouteRollout is one route's stage, evidence and gates: the JSON body of
// GET /api/v1/rollout/{route}.
type RouteRollout struct {
	Route   string       `json:"route"`
	Stage   policy.Stage `json:"stage"`
	Percent float64      `json:"percent"`
	// CanaryTenants are the tenants the canary is on for; [] is every one.
	CanaryTenants []string `json:"canary_tenants"`
	AutoRollback  bool     `json:"auto_rollback"`
	WindowSeconds float64  `json:"window_seconds"`
	Evidence
	Verdict Verdict        `json:"verdict"`
	Gates   []GateResult   `json:"gates"`
	Tenants []TenantReport `json:"tenants"` // the route's tracked tenants, then (other); [] when it has none
}

// TenantReport is one tenant's evidence and gates.
type TenantReport struct {
	Tenant string `json:"tenant"`
	Evidence
	Verdict Verdict      `json:"verdict"`
	Gates   []GateResult `json:"gates"`
}

// Evidence is what the gates read, over the window.
type Evidence struct {
	Pairs     int      `json:"pairs"` // compared: match + diff
	Matches   int      `json:"matches"`
	MatchRate *float64 `json:"match_rate"` // null without pairs
	// Latency percentiles of each side's pairs, in milliseconds.
	PrimaryP50MS float64 `json:"primary_p50_ms"`
	PrimaryP99MS float64 `json:"primary_p99_ms"`
	ShadowP50MS  float64 `json:"shadow_p50_ms"`
	ShadowP99MS  float64 `json:"shadow_p99_ms"`
	// CandidateRequests the candidate was asked to answer (canary and
	// promoted), Fallbacks of them answered by the primary instead, by
	// reason, and Failed: the user got an error all the same.
	CandidateRequests int            `json:"candidate_requests"`
	Fallbacks         map[string]int `json:"fallbacks"`
	Failed            int            `json:"failed"`
	// Troubled counts the candidate's requests that fell back, failed, or
	// both: what the fallback gate reads.
	Troubled int `json:"fallen_back_or_failed"`
}

// GateResult is one gate's verdict; Missing says what an inconclusive
// gate lacks.
type GateResult struct {
	Gate      string   `json:"gate"`
	Verdict   Verdict  `json:"verdict"`
	Value     *float64 `json:"value"` // null when there is nothing to measure
	Threshold float64  `json:"threshold"`
	Missing   string   `json:"missing,omitempty"`
}

// rollouts keeps each rolled-out route's window.
type rollouts struct {
	mu     sync.Mutex
	pol    *policy.Policy
	routes map[string]*rolloutWindow
}

type rolloutWindow struct {
	window time.Duration
	slots  [rolloutSlots]rolloutSlot
}

type rolloutSlot struct {
	n     int64 // which slot of time this is: t / (window/rolloutSlots)
	cells map[string]*rolloutCell
}

type rolloutCell struct {
	match, diff      int
	primary, shadow  map[uint16]uint32 // latency histogram buckets (histIndex), sparse
	candidate        int
	fallbacks        map[string]int
	failed, troubled int
}

// use makes p the policy the windows follow: a route keeps its window while
// its gate window is unchanged.
func (rs *rollouts) use(p *policy.Policy) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old := rs.routes
	rs.pol, rs.routes = p, map[string]*rolloutWindow{}
	for _, r := range p.Routes {
		if r.Rollout == nil {
			continue
		}
		if w, ok := old[r.Name]; ok && w.window == r.Rollout.Gates.Window {
			rs.routes[r.Name] = w
			continue
		}
		rs.routes[r.Name] = &rolloutWindow{window: r.Rollout.Gates.Window}
	}
}

// cells returns the cells of route's slot at t for the whole route and for
// tenant, or nil when the route is not rolled out. The caller holds rs.mu.
func (rs *rollouts) cells(route, tenant string, t time.Time) []*rolloutCell {
	w := rs.routes[route]
	if w == nil {
		return nil
	}
	n := t.UnixNano() / int64(w.window/rolloutSlots)
	s := &w.slots[n%rolloutSlots]
	if s.n != n || s.cells == nil {
		*s = rolloutSlot{n: n, cells: map[string]*rolloutCell{}}
	}
	out := []*rolloutCell{cell(s, allTenants)}
	if tenant != "" {
		out = append(out, cell(s, tenant))
	}
	return out
}

func cell(s *rolloutSlot, tenant string) *rolloutCell {
	c := s.cells[tenant]
	if c == nil {
		c = &rolloutCell{}
		s.cells[tenant] = c
	}
	return c
}

// pair counts a compared pair.
func (rs *rollouts) pair(p *Pair, match bool, t time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, c := range rs.cells(p.Route, p.Tenant, t) {
		if match {
			c.match++
		} else {
			c.diff++
		}
		c.primary = observeSparse(c.primary, p.PrimaryLatency)
		c.shadow = observeSparse(c.shadow, p.ShadowLatency)
	}
}

func observeSparse(h map[uint16]uint32, d time.Duration) map[uint16]uint32 {
	if h == nil {
		h = map[uint16]uint32{}
	}
	h[uint16(histIndex(max(d, 0)))]++
	return h
}

// candidate counts a request the candidate was asked to answer: reason is
// why it fell back to the primary ("" when it did not), failed that the
// user got an error all the same.
func (rs *rollouts) candidate(route, tenant, reason string, failed bool, t time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, c := range rs.cells(route, tenant, t) {
		c.candidate++
		if reason != "" || failed {
			c.troubled++
		}
		if reason != "" {
			if c.fallbacks == nil {
				c.fallbacks = map[string]int{}
			}
			if _, ok := c.fallbacks[reason]; !ok && len(c.fallbacks) >= maxFallbackReason {
				reason = ReasonOther
			}
			c.fallbacks[reason]++
		}
		if failed {
			c.failed++
		}
	}
}

// report evaluates every rolled-out route's gates at now.
func (rs *rollouts) report(now time.Time) RolloutReport {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := RolloutReport{GeneratedAt: now.UTC().Round(0), Routes: []RouteRollout{}}
	if rs.pol == nil {
		return out
	}
	for _, r := range rs.pol.Routes {
		w := rs.routes[r.Name]
		if w == nil {
			continue
		}
		ro := r.Rollout
		rr := RouteRollout{Route: r.Name, Stage: ro.Stage, Percent: ro.Percent, CanaryTenants: []string{},
			AutoRollback: ro.AutoRollback, WindowSeconds: ro.Gates.Window.Seconds(), Tenants: []TenantReport{}}
		if ro.Tenants != nil {
			rr.CanaryTenants = slices.Clone(ro.Tenants.Values)
		}
		rr.Evidence = w.evidence(allTenants, now)
		rr.Gates, rr.Verdict = judge(rr.Evidence, ro.Gates, ro.Stage)
		if r.TenantHeader() != "" {
			tenants := r.TenantValues()
			tenants = append(tenants[:min(len(tenants), policy.MaxTrackedTenants)], policy.OtherTenant)
			for _, t := range tenants {
				tr := TenantReport{Tenant: t, Evidence: w.evidence(t, now)}
				tr.Gates, tr.Verdict = judge(tr.Evidence, ro.Gates, ro.Stage)
				rr.Tenants = append(rr.Tenants, tr)
			}
		}
		out.Routes = append(out.Routes, rr)
	}
	return out
}

// evidence sums tenant's cells of the slots inside the window at now.
func (w *rolloutWindow) evidence(tenant string, now time.Time) Evidence {
	n := now.UnixNano() / int64(w.window/rolloutSlots)
	e := Evidence{Fallbacks: map[string]int{}}
	primary, shadow := map[uint16]uint64{}, map[uint16]uint64{}
	for i := range w.slots {
		s := &w.slots[i]
		c := s.cells[tenant]
		if c == nil || s.n <= n-rolloutSlots || s.n > n {
			continue
		}
		e.Matches += c.match
		e.Pairs += c.match + c.diff
		for k, v := range c.primary {
			primary[k] += uint64(v)
		}
		for k, v := range c.shadow {
			shadow[k] += uint64(v)
		}
		e.CandidateRequests += c.candidate
		e.Failed += c.failed
		e.Troubled += c.troubled
		for k, v := range c.fallbacks {
			e.Fallbacks[k] += v
		}
	}
	if e.Pairs > 0 {
		rate := float64(e.Matches) / float64(e.Pairs)
		e.MatchRate = &rate
	}
	e.PrimaryP50MS, e.PrimaryP99MS = sparseQuantileMS(primary, 0.5), sparseQuantileMS(primary, 0.99)
	e.ShadowP50MS, e.ShadowP99MS = sparseQuantileMS(shadow, 0.5), sparseQuantileMS(shadow, 0.99)
	return e
}

// sparseQuantileMS is the q-quantile of a sparse histogram, in
// milliseconds (the bucket's midpoint); 0 when empty.
func sparseQuantileMS(h map[uint16]uint64, q float64) float64 {
	var total uint64
	for _, v := range h {
		total += v
	}
	if total == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if seen += h[k]; seen >= rank {
			return histMid(int(k)) / float64(time.Millisecond)
		}
	}
	return 0
}

// judge runs the gates on e. The fallback gate is judged only where the
// candidate answers users (canary, promoted).
func judge(e Evidence, g policy.Gates, stage policy.Stage) ([]GateResult, Verdict) {
	var out []GateResult
	pairs := float64(e.Pairs)
	enough := e.Pairs >= g.MinPairs
	missingPairs := fmt.Sprintf("%d more compared pairs in the window", g.MinPairs-e.Pairs)
	gate := func(name string, value *float64, threshold float64, ok func(v float64) bool) {
		r := GateResult{Gate: name, Value: value, Threshold: threshold, Verdict: Inconclusive}
		switch {
		case !enough:
			r.Missing = missingPairs
		case value == nil:
			r.Missing = "no measurement"
		case ok(*value):
			r.Verdict = Pass
		default:
			r.Verdict = Fail
		}
		out = append(out, r)
	}
	minPairs := GateResult{Gate: GateMinPairs, Value: &pairs, Threshold: float64(g.MinPairs), Verdict: Pass}
	if !enough {
		minPairs.Verdict, minPairs.Missing = Inconclusive, missingPairs
	}
	out = append(out, minPairs)
	gate(GateMatchRate, e.MatchRate, g.MinMatchRate, func(v float64) bool { return v >= g.MinMatchRate })
	slack := float64(g.LatencySlack) / float64(time.Millisecond)
	gate(GateLatencyP50, ratio(e.ShadowP50MS, e.PrimaryP50MS), g.MaxLatencyRatioP50, func(v float64) bool {
		return v <= g.MaxLatencyRatioP50 || e.ShadowP50MS-e.PrimaryP50MS <= slack
	})
	gate(GateLatencyP99, ratio(e.ShadowP99MS, e.PrimaryP99MS), g.MaxLatencyRatioP99, func(v float64) bool {
		return v <= g.MaxLatencyRatioP99 || e.ShadowP99MS-e.PrimaryP99MS <= slack
	})
	if stage != policy.StageShadow {
		r := GateResult{Gate: GateFallbackRate, Threshold: g.MaxFallbackRate, Verdict: Inconclusive}
		if e.CandidateRequests > 0 {
			v := float64(e.Troubled) / float64(e.CandidateRequests)
			r.Value = &v
		}
		switch {
		case e.CandidateRequests < g.MinCandidateRequests:
			r.Missing = fmt.Sprintf("%d more requests answered by the candidate in the window", g.MinCandidateRequests-e.CandidateRequests)
		case *r.Value <= g.MaxFallbackRate:
			r.Verdict = Pass
		default:
			r.Verdict = Fail
		}
		out = append(out, r)
	}
	verdict := Pass
	for _, r := range out {
		switch {
		case r.Verdict == Fail:
			return out, Fail
		case r.Verdict == Inconclusive:
			verdict = Inconclusive
		}
	}
	return out, verdict
}

// ratio is a/b, nil when either is unmeasured.
func ratio(a, b float64) *float64 {
	if a <= 0 || b <= 0 {
		return nil
	}
	v := a / b
	return &v
}

// UseRollout makes p the policy whose rollouts the reporter keeps evidence
// for and judges.
func (r *Reporter) UseRollout(p *policy.Policy) { r.rollout.use(p) }

// Candidate counts a request route's candidate was asked to answer, of
// tenant (the route's TenantOf; "" for none): reason is why it fell back
// to the primary ("" when it did not), failed that the user got an error.
func (r *Reporter) Candidate(route, tenant, reason string, failed bool) {
	if r.closed.Load() {
		return
	}
	r.rollout.candidate(route, tenant, reason, failed, r.now())
	r.metrics.candidates.WithLabelValues(route).Inc()
	if reason != "" {
		r.metrics.fallbacks.WithLabelValues(route, reason).Inc()
	}
	if failed {
		r.metrics.candidateFailed.WithLabelValues(route).Inc()
	}
}

// Rollout judges every rolled-out route's gates now.
func (r *Reporter) Rollout() RolloutReport { return r.rollout.report(r.now()) }

// rolloutCollector exports each rolled-out route's gates at scrape time,
// for the route as a whole (tenant="") and per tenant: what Flagger's and
// Argo Rollouts' analyses query (examples/rollout).
type rolloutCollector struct {
	r                               *Reporter
	gatesPass, verdict, rate, pairs *prometheus.Desc
}

func newRolloutCollector(r *Reporter) *rolloutCollector {
	labels := []string{"route", "tenant"}
	return &rolloutCollector{r: r,
		gatesPass: prometheus.NewDesc("shadowlab_rollout_gates_pass",
			"1 when every gate of the route (or tenant) passes over its window; 0 when one fails or is inconclusive.", labels, nil),
		verdict: prometheus.NewDesc("shadowlab_rollout_verdict",
			"1 for the route's (or tenant's) current verdict, 0 for the others.", append(labels, "verdict"), nil),
		rate: prometheus.NewDesc("shadowlab_rollout_match_rate",
			"match / (match + diff) over the gate window (absent without pairs).", labels, nil),
		pairs: prometheus.NewDesc("shadowlab_rollout_pairs", "Compared pairs in the gate window.", labels, nil),
	}
}

func (c *rolloutCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.gatesPass
	ch <- c.verdict
	ch <- c.rate
	ch <- c.pairs
}

func (c *rolloutCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(route, tenant string, e Evidence, v Verdict) {
		pass := 0.0
		if v == Pass {
			pass = 1
		}
		ch <- prometheus.MustNewConstMetric(c.gatesPass, prometheus.GaugeValue, pass, route, tenant)
		for _, o := range []Verdict{Pass, Fail, Inconclusive} {
			on := 0.0
			if o == v {
				on = 1
			}
			ch <- prometheus.MustNewConstMetric(c.verdict, prometheus.GaugeValue, on, route, tenant, string(o))
		}
		if e.MatchRate != nil {
			ch <- prometheus.MustNewConstMetric(c.rate, prometheus.GaugeValue, *e.MatchRate, route, tenant)
		}
		ch <- prometheus.MustNewConstMetric(c.pairs, prometheus.GaugeValue, float64(e.Pairs), route, tenant)
	}
	for _, rr := range c.r.Rollout().Routes {
		emit(rr.Route, "", rr.Evidence, rr.Verdict)
		for _, t := range rr.Tenants {
			emit(rr.Route, t.Tenant, t.Evidence, t.Verdict)
		}
	}
}
