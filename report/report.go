// Package report turns compared pairs into what users read: per route, pairs
// by outcome, match rate, the JSON paths that differ with counts and redacted
// samples, learned noise, and primary vs shadow latency. It keeps them in an
// embedded SQLite store (bounded, survives restarts) and exposes them as
// Prometheus metrics, a JSON HTTP API, zap logs and a text table.
package report

import (
	"time"

	"github.com/shadowlab/shadowlab/compare"
)

// Outcome is what became of one mirrored request.
type Outcome string

const (
	Match       Outcome = "match"        // both halves, no difference (or only noise)
	Diff        Outcome = "diff"         // both halves, at least one difference
	PrimaryOnly Outcome = "primary_only" // the shadow half never came (timed out, shed, failed)
	ShadowOnly  Outcome = "shadow_only"  // the primary half never came
	Ambiguous   Outcome = "ambiguous"    // two halves claimed one request id and side: never paired
	Skipped     Outcome = "skipped"      // not compared (body over the limit, unsupported)
)

// Pair is one mirrored request's result, as the ext_proc side hands it over.
type Pair struct {
	Route     string
	RequestID string
	Method    string
	Path      string // request path without the query string
	Tenant    string // policy.Route.TenantOf the request; "" when the route has no tenants
	Outcome   Outcome
	Reason    string // why, for primary_only, shadow_only, ambiguous, skipped

	// Differences of a compared pair (Outcome Diff), noise included: the
	// report sets noise apart when it is read, because noise is learned
	// while pairs arrive.
	Differences []compare.Difference
	// Marks are shadowlab's marks the shadow echoed back (compare.Result's
	// Marks): explained, never counted as differences.
	Marks []compare.Difference

	PrimaryStatus, ShadowStatus   int           // 0 when that half is missing
	PrimaryLatency, ShadowLatency time.Duration // upstream latency, 0 when missing
	At                            time.Time

	// Responses are both responses as compared, for the pair's page; nil
	// when there are none. The reporter renders them (redacted, bounded)
	// only for the non-match pairs it keeps responses of, and drops them.
	Responses *Responses
}

// Responses are what a pair's page shows of it: each side's response as the
// comparator saw it (gRPC messages already as JSON), nil when that side is
// missing, and the rules it was compared under (compared headers,
// redaction).
type Responses struct {
	Primary, Shadow *compare.Response
	Rules           *compare.Rules
}
