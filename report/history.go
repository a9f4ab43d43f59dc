package report

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/policy"
)

// A route's recent history and per-tenant breakdown live in memory only
// (a restart starts them empty): per bucket of historyBucket, and per
// tenant, the compared pairs by signature — so that, like the totals, they
// are re-classified with the route's current noise when read — and the
// other outcomes by kind.
const (
	historyBucket = 10 * time.Second
	// historyBuckets bounds the buckets kept: the last hour.
	historyBuckets = 360
	// maxBucketSignatures bounds the distinct signatures a bucket or a
	// tenant counts; later ones are counted per pattern, always as diffs.
	maxBucketSignatures = 64
	// maxHistoryPatterns bounds the differing patterns listed per bucket.
	maxHistoryPatterns = 50
	// maxTenants bounds the tenants a route counts (policy.TenantOf names
	// at most policy.MaxTrackedTenants and OtherTenant).
	maxTenants = policy.MaxTrackedTenants + 1
)

// History is a route's outcomes over time: the JSON field history of a
// RouteReport.
type History struct {
	BucketSeconds int             `json:"bucket_seconds"`
	Buckets       []HistoryBucket `json:"buckets"` // oldest first; only buckets that saw pairs
}

// HistoryBucket is one bucket of a route's history. Match and Diff are
// re-classified with the route's current noise, as RouteReport's are.
type HistoryBucket struct {
	Start time.Time `json:"start"`
	Match int       `json:"match"`
	Diff  int       `json:"diff"`
	Other int       `json:"other"` // primary_only, shadow_only, ambiguous, skipped
	// Differences are the non-noise patterns of the bucket's diff pairs,
	// by count (descending); at most maxHistoryPatterns. Listed in one
	// route's report (GET /api/v1/routes/{route}); [] in the report of
	// every route (GET /api/v1/report), which also holds only the last 15
	// minutes' buckets.
	Differences []PatternCount `json:"differences"`
}

// PatternCount is how many pairs differed at one pattern with one kind.
type PatternCount struct {
	Pattern string `json:"pattern"`
	Kind    string `json:"kind"`
	Count   int    `json:"count"`
}

// RouteTenant is one tenant of a route (policy.Route.TenantOf): its pairs
// by outcome since serve started, match and diff re-classified with the
// route's current noise.
type RouteTenant struct {
	Tenant    string          `json:"tenant"`
	Pairs     int             `json:"pairs"`
	Outcomes  map[Outcome]int `json:"outcomes"`
	MatchRate *float64        `json:"match_rate"` // null when none was compared
}

// tally counts pairs by signature (compared) and outcome (the rest).
type tally struct {
	sigs     map[*signature]int
	folded   map[patKey]int // differences of diff pairs past maxBucketSignatures
	foldedN  int            // those pairs
	outcomes map[Outcome]int
}

func newTally() *tally {
	return &tally{sigs: map[*signature]int{}, outcomes: map[Outcome]int{}}
}

// add counts one pair: sig is its signature among the route's (nil when
// the route folded it), keys its patterns.
func (t *tally) add(o Outcome, sig *signature, keys []patKey) {
	if !compared(o) {
		t.outcomes[o]++
		return
	}
	if _, ok := t.sigs[sig]; sig != nil && (ok || len(t.sigs) < maxBucketSignatures) {
		t.sigs[sig]++
		return
	}
	if len(keys) == 0 { // an identical pair is a match whatever happens
		t.outcomes[Match]++
		return
	}
	if t.folded == nil {
		t.folded = map[patKey]int{}
	}
	t.foldedN++
	for _, k := range keys {
		t.folded[k]++
	}
}

// read re-classifies the tally with the route's noise: match and diff
// counts and the non-noise patterns' counts.
func (t *tally) read(rs *routeState) (match, diff, other int, counts map[patKey]int) {
	counts = map[patKey]int{}
	match, diff = t.outcomes[Match], t.foldedN
	for o, n := range t.outcomes {
		if o != Match {
			other += n
		}
	}
	for s, n := range t.sigs {
		if rs.allNoise(s.keys) {
			match += n
			continue
		}
		diff += n
		for _, k := range s.keys {
			if !rs.isNoise(k) {
				counts[k] += n
			}
		}
	}
	for k, n := range t.folded {
		if !rs.isNoise(k) {
			counts[k] += n
		}
	}
	return match, diff, other, counts
}

// history is a route's buckets by start (unix seconds).
type history map[int64]*tally

// tallyAt returns the bucket of at, dropping the oldest past historyBuckets.
func (h history) tallyAt(at time.Time) *tally {
	start := at.Truncate(historyBucket).Unix()
	if t := h[start]; t != nil {
		return t
	}
	if len(h) >= historyBuckets {
		oldest := start
		for s := range h {
			oldest = min(oldest, s)
		}
		if oldest == start { // older than everything kept
			return nil
		}
		delete(h, oldest)
	}
	t := newTally()
	h[start] = t
	return t
}

// historyView selects what a report shows of a route's history: buckets
// from since on, with their differing patterns or not.
type historyView struct {
	since    time.Time
	patterns bool
}

// fullHistory is one route's report's (GET /api/v1/routes/{route}): the
// whole hour with its patterns.
var fullHistory = historyView{patterns: true}

// overviewHistory is the report of every route's (GET /api/v1/report,
// which the overview polls every 2 s): the last overviewSpan, without
// patterns, so that its size stays a few KB per route.
func overviewHistory(now time.Time) historyView {
	return historyView{since: now.Add(-overviewSpan)}
}

const overviewSpan = 15 * time.Minute

// historyLocked reads the route's history as hv selects. The caller holds
// rs.mu.
func (rs *routeState) historyLocked(hv historyView) History {
	out := History{BucketSeconds: int(historyBucket / time.Second), Buckets: []HistoryBucket{}}
	starts := make([]int64, 0, len(rs.history))
	for s := range rs.history {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		if time.Unix(s, 0).Before(hv.since.Truncate(historyBucket)) {
			continue
		}
		match, diff, other, counts := rs.history[s].read(rs)
		b := HistoryBucket{Start: time.Unix(s, 0).UTC(), Match: match, Diff: diff, Other: other, Differences: []PatternCount{}}
		if hv.patterns {
			b.Differences = patternCounts(counts, maxHistoryPatterns)
		}
		out.Buckets = append(out.Buckets, b)
	}
	return out
}

// tenantsLocked reads the route's per-tenant tallies. The caller holds
// rs.mu.
func (rs *routeState) tenantsLocked() []RouteTenant {
	out := make([]RouteTenant, 0, len(rs.tenants))
	for name, t := range rs.tenants {
		match, diff, _, _ := t.read(rs)
		rt := RouteTenant{Tenant: name, Outcomes: map[Outcome]int{Match: match, Diff: diff, PrimaryOnly: 0, ShadowOnly: 0, Ambiguous: 0, Skipped: 0}}
		for o, n := range t.outcomes {
			if o != Match {
				rt.Outcomes[o] = n
			}
		}
		for _, n := range rt.Outcomes {
			rt.Pairs += n
		}
		if match+diff > 0 {
			rate := float64(match) / float64(match+diff)
			rt.MatchRate = &rate
		}
		out = append(out, rt)
	}
	slices.SortFunc(out, func(a, b RouteTenant) int { return strings.Compare(a.Tenant, b.Tenant) })
	return out
}

// tenantLocked returns the tally of tenant; past maxTenants, OtherTenant's.
func (rs *routeState) tenantLocked(tenant string) *tally {
	t := rs.tenants[tenant]
	if t != nil {
		return t
	}
	if len(rs.tenants) >= maxTenants {
		tenant = policy.OtherTenant
		if t = rs.tenants[tenant]; t != nil {
			return t
		}
	}
	t = newTally()
	rs.tenants[tenant] = t
	return t
}

// patternCounts lists counts by count (descending), pattern and kind, at
// most n.
func patternCounts(counts map[patKey]int, n int) []PatternCount {
	out := make([]PatternCount, 0, len(counts))
	for k, c := range counts {
		out = append(out, PatternCount{Pattern: k.pattern, Kind: string(k.kind), Count: c})
	}
	slices.SortFunc(out, func(a, b PatternCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Pattern, b.Pattern), strings.Compare(a.Kind, b.Kind))
	})
	return out[:min(len(out), n)]
}
