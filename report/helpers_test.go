package report

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/policy"
)

var t0 = time.Date(2026, 3, 1, 17, 0, 0, 0, time.UTC)

// newTestReporter starts a reporter whose store is written only by Flush
// (the ticker is an hour), with a fixed clock. Close runs at cleanup.
func newTestReporter(t *testing.T, cfg Config) *Reporter {
	t.Helper()
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = time.Hour
	}
	r, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r.now = func() time.Time { return t0 }
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// changed is a "changed" difference at a JSON path whose pattern is itself.
func changed(path, primary, shadow string) compare.Difference {
	return compare.Difference{Path: path, Pattern: path, Kind: compare.Changed, Primary: primary, Shadow: shadow}
}

// comparedPair is a compared pair of route number n with the differences
// given (none: a match).
func comparedPair(route string, n int, diffs ...compare.Difference) Pair {
	p := Pair{
		Route:          route,
		RequestID:      fmt.Sprintf("req-%04d", n),
		Method:         "GET",
		Path:           "/billing/records",
		Outcome:        Match,
		Differences:    diffs,
		PrimaryStatus:  200,
		ShadowStatus:   200,
		PrimaryLatency: time.Duration(n%10+1) * time.Millisecond,
		ShadowLatency:  time.Duration(n%10+2) * time.Millisecond,
		At:             t0.Add(time.Duration(n) * time.Second),
	}
	if len(diffs) > 0 {
		p.Outcome = Diff
	}
	return p
}

func otherPair(route string, n int, o Outcome, reason string) Pair {
	p := Pair{Route: route, RequestID: fmt.Sprintf("req-%04d", n), Method: "GET", Path: "/x", Outcome: o, Reason: reason,
		At: t0.Add(time.Duration(n) * time.Second)}
	if o == PrimaryOnly {
		p.PrimaryStatus, p.PrimaryLatency = 200, 3*time.Millisecond
	}
	return p
}

func mustRoute(t *testing.T, r *Reporter, route string) RouteReport {
	t.Helper()
	rr, ok := r.RouteReport(route)
	if !ok {
		t.Fatalf("route %q not in the report", route)
	}
	return rr
}

// counts maps "pattern kind" to Count.
func counts(rr RouteReport) map[string]int {
	out := map[string]int{}
	for _, d := range rr.Differences {
		out[d.Pattern+" "+string(d.Kind)] = d.Count
	}
	return out
}

// useLocalRoutes gives r a policy whose routes named routes have local
// admission (and a route "plain" without admission).
func useLocalRoutes(t *testing.T, r *Reporter, routes ...string) {
	t.Helper()
	doc := "version: 1\nlisteners: [{name: edge, address: 127.0.0.1:10000}]\nservices:\n  legacy: {endpoints: [\"127.0.0.1:8081\"]}\nroutes:\n"
	for _, name := range routes {
		doc += "  - {name: " + name + ", match: {pathPrefix: /" + name + "}, primary: legacy, admission: {rate: 100/s, mode: reject, scope: local}}\n"
	}
	doc += "  - {name: plain, match: {pathPrefix: /}, primary: legacy}\n"
	pol, err := policy.Parse([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r.UseLocalAdmission(pol)
}
