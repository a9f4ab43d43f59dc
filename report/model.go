package report

import (
	"time"

	"github.com/shadowlab/shadowlab/compare"
)

// Report is what shadowlab has concluded so far, per route. It is the JSON
// body of GET /api/v1/report and what Render prints. Field order and JSON
// names are part of the public API.
type Report struct {
	GeneratedAt time.Time     `json:"generated_at"`
	Routes      []RouteReport `json:"routes"` // sorted by Route; [] when none
	// Admission is every scope, route and key's admission outcomes, sorted
	// by scope, route, key; [] when none.
	Admission []AdmissionReport `json:"admission"`
	// Policy is every route of the policy in use, in policy order; [] when
	// no policy was given (a report read from a store alone).
	Policy []PolicyRoute `json:"policy"`
	// DelayBucketBoundsMs are the upper bounds of the admission delay
	// buckets (wire.DelayBucketsMs): AdmissionReport's delay_buckets has
	// one more, past the last bound.
	DelayBucketBoundsMs []float64 `json:"delay_bucket_bounds_ms"`
}

// RouteReport is one route's results: the JSON body of
// GET /api/v1/routes/{route}.
//
// Match and Diff are decided when the report is read, with the route's
// current noise: a pair whose differences all lie on noise patterns counts as
// a match. So learning noise later turns earlier pairs into matches.
type RouteReport struct {
	Route string `json:"route"`
	// Pairs counts every recorded pair of the route, whatever its outcome.
	Pairs int `json:"pairs"`
	// Outcomes has all six outcomes as keys (0 when none), match and diff
	// after noise re-classification.
	Outcomes map[Outcome]int `json:"outcomes"`
	// MatchRate is match / (match + diff), between 0 and 1. It is nil (JSON
	// null) when no pair was compared: "no data" is not "0 % match".
	MatchRate *float64 `json:"match_rate"`
	// Differences are the non-noise patterns seen in diff pairs, sorted by
	// count (descending), then pattern, then kind. [] when none.
	Differences []PathReport `json:"differences"`
	// FoldedPairs counts diff pairs whose set of differing patterns arrived
	// after the route already had Config.MaxSignatures distinct sets. They
	// were counted per pattern only and stay diffs whatever noise is learned
	// later (their noise patterns are still left out of Differences).
	FoldedPairs int `json:"folded_pairs"`
	// Noise is the route's current learned noise, sorted by suppressed
	// (descending), then pattern. [] when none.
	Noise []NoiseReport `json:"noise"`
	// Marks are shadowlab's own request marks (x-shadowlab-*) that the
	// shadow echoed back in its body, by pattern, with how many compared
	// pairs did: explained by the marks, not counted as differences. []
	// when none.
	Marks   []MarkReport  `json:"marks"`
	Latency LatencyReport `json:"latency"`
	// Reasons counts Pair.Reason per outcome, for the outcomes that were not
	// compared (primary_only, shadow_only, ambiguous, skipped). An empty
	// reason is counted as "unspecified"; past 32 distinct reasons per
	// outcome the rest are counted as "other". {} when none.
	Reasons map[Outcome]map[string]int `json:"reasons"`
	// History is the route's outcomes per 10 s over the last hour since
	// serve started (in memory only).
	History History `json:"history"`
	// Tenants breaks the route's pairs down by tenant (policy.Route.
	// TenantOf) since serve started; [] when the route has no tenants.
	Tenants []RouteTenant `json:"tenants"`
}

// PathReport is one differing pattern of a route with one kind of difference.
type PathReport struct {
	// Pattern is the JSON path with indices as [*] ("$.items[*].price"),
	// "status", "header:<name>" or "body"; "other" gathers the patterns that
	// arrived after the route had Config.MaxPatternsPerRoute of them.
	Pattern string       `json:"pattern"`
	Kind    compare.Kind `json:"kind"`
	// Count is how many diff pairs had at least one difference here.
	Count int `json:"count"`
	// Samples are the first Config.MaxSamplesPerPath pairs seen with this
	// difference (the first ever, or since the last Reset): deterministic
	// and stable between reads. [] when none.
	Samples []Sample `json:"samples"`
}

// Sample is one concrete occurrence of a difference. Excerpts of
// Authorization, Cookie and Set-Cookie headers read "[redacted]".
type Sample struct {
	RequestID string    `json:"request_id"`
	Path      string    `json:"path"`    // concrete: "$.items[3].price"
	Primary   string    `json:"primary"` // excerpt; "" when the primary has none
	Shadow    string    `json:"shadow"`  // excerpt; "" when the shadow has none
	At        time.Time `json:"at"`
}

// NoiseReport is one learned noise pattern of a route.
type NoiseReport struct {
	Pattern  string `json:"pattern"`
	Varied   int    `json:"varied"`
	Compared int    `json:"compared"`
	// Suppressed counts the pairs whose differences all lay on noise and that
	// therefore count as matches, with a difference on this pattern.
	Suppressed int `json:"suppressed"`
}

// MarkReport is one pattern where the shadow echoed shadowlab's marks.
type MarkReport struct {
	Pattern string `json:"pattern"`
	Count   int    `json:"count"`
}

// LatencyReport is the upstream latency of each side of a route's pairs.
type LatencyReport struct {
	Primary SideLatency `json:"primary"`
	Shadow  SideLatency `json:"shadow"`
}

// SideLatency summarises one side's upstream latency, in milliseconds, from
// a log-linear histogram (relative error under 1 % from 10 µs to 10 min;
// faster responses read as 0.01 ms, slower as about 11 min). All zero when
// Count is 0.
type SideLatency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"` // exact
}

// PairRecord is one recent non-match pair as GET /api/v1/pairs lists it.
type PairRecord struct {
	ID        int64  `json:"id"` // increases with recording order
	Route     string `json:"route"`
	RequestID string `json:"request_id"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	// Outcome is diff or match as re-classified with the route's current
	// noise, or the recorded non-compared outcome.
	Outcome          Outcome   `json:"outcome"`
	Reason           string    `json:"reason"`
	PrimaryStatus    int       `json:"primary_status"`
	ShadowStatus     int       `json:"shadow_status"`
	PrimaryLatencyMS float64   `json:"primary_latency_ms"`
	ShadowLatencyMS  float64   `json:"shadow_latency_ms"`
	At               time.Time `json:"at"`
	// Differences are the pair's first 10 differences (no values: samples
	// hold excerpts); DifferenceCount is how many it had.
	Differences     []PairDifference `json:"differences"`
	DifferenceCount int              `json:"difference_count"`
	// Evidence says the pair's responses are kept: GET /api/v1/pairs/{id}
	// shows them.
	Evidence bool `json:"evidence"`
}

// PairDifference is where one difference of a recent pair lies.
type PairDifference struct {
	Path    string       `json:"path"`
	Pattern string       `json:"pattern"`
	Kind    compare.Kind `json:"kind"`
	Noise   bool         `json:"noise"` // the pattern is currently learned noise
}

// PairsQuery selects recent non-match pairs; zero fields select everything.
type PairsQuery struct {
	Route     string
	Outcome   Outcome
	RequestID string
	Limit     int // default 50, at most 1000
}
