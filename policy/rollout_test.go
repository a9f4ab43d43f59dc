package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const rolloutBase = `version: 1
listeners: [{name: ingress, address: "127.0.0.1:10000"}]
services:
  legacy: {endpoints: ["127.0.0.1:8081"]}
  candidate: {endpoints: ["127.0.0.1:8082"]}
routes:
  # The orders API.
  - name: orders
    match: {pathPrefix: /orders, methods: [GET, PUT, POST]}
    primary: legacy
    timeout: 4s
    shadow: {service: candidate, percent: 100, unsafeMethods: true, tenants: {header: x-tenant, values: [acme, globex]}}
ROLLOUT
`

func rolloutPolicy(block string) []byte {
	return []byte(strings.Replace(rolloutBase, "ROLLOUT", block, 1))
}

func TestRolloutDefaults(t *testing.T) {
	p, err := Parse(rolloutPolicy("    rollout: {stage: canary, percent: 12.5, idempotent: [PUT]}"), "p.yaml")
	require.NoError(t, err)
	ro := p.Route("orders").Rollout
	require.Equal(t, &Rollout{Stage: StageCanary, Percent: 12.5, PerMillion: 125_000, Idempotent: []string{"PUT"},
		CandidateTimeout: 2 * time.Second, Gates: Gates{Window: 10 * time.Minute, MinPairs: 100, MinMatchRate: 0.99,
			MaxLatencyRatioP50: 1.25, MaxLatencyRatioP99: 1.5, LatencySlack: 5 * time.Millisecond, MaxFallbackRate: 0.01, MinCandidateRequests: 100}}, ro)
	r := p.Route("orders")
	require.True(t, r.Candidate())
	require.True(t, r.Mirrored())
	require.Equal(t, "x-tenant", r.TenantHeader())
	require.Equal(t, "acme", r.TenantOf("acme"))
	require.Equal(t, OtherTenant, r.TenantOf("initech"))
}

func TestRolloutProblems(t *testing.T) {
	for block, want := range map[string][]string{
		"    rollout: {stage: live}":                             {"p.yaml:13: routes[0].rollout.stage: must be shadow, canary or promoted"},
		"    rollout: {stage: canary}":                           {"routes[0].rollout.percent: required with stage canary"},
		"    rollout: {percent: 120}":                            {"routes[0].rollout.percent: must be between 0 and 100"},
		"    rollout: {idempotent: [GET, put, PUT, PUT]}":        {"GET is safe", "an upper-case HTTP method", "duplicate method PUT"},
		"    rollout: {candidateTimeout: 5s}":                    {"at most the route's timeout 4s"},
		"    rollout: {stickyOn: X-User}":                        {"must be lower case"},
		"    rollout: {tenants: {header: x-tenant, values: []}}": {"rollout.tenants.values: at least one value"},
		"    rollout: {gates: {window: 1s, minPairs: 0, minMatchRate: 99, maxLatencyRatioP99: 0.5}}": {
			"gates.window: must be between 10s and 24h", "gates.minPairs: must be between 1", "99 % is 0.99", "gates.maxLatencyRatioP99: a ratio between 1"},
	} {
		_, err := Parse(rolloutPolicy(block), "p.yaml")
		require.Error(t, err, block)
		for _, w := range want {
			require.Contains(t, err.Error(), w, block)
		}
	}
	// Sticky sampling is the plugin's, which runs only where answers are
	// captured.
	_, err := Parse([]byte(strings.Replace(string(rolloutPolicy("")), "unsafeMethods: true,", "unsafeMethods: true, capture: false, stickyOn: x-user,", 1)), "p.yaml")
	require.ErrorContains(t, err, "shadow.stickyOn: sticky sampling is done by shadowlab's plugin")
	// A rollout needs a shadow to take over, and its comparison.
	_, err = Parse([]byte(strings.Replace(string(rolloutPolicy("    rollout: {}")), "    shadow: {service: candidate, percent: 100, unsafeMethods: true, tenants: {header: x-tenant, values: [acme, globex]}}\n", "", 1)), "p.yaml")
	require.ErrorContains(t, err, "rollout needs a shadow")
}

// EditRollout changes only what it is told, keeps the comments, creates
// the block or the tenants when missing, and refuses an edit that would
// make the policy invalid.
func TestEditRollout(t *testing.T) {
	data := rolloutPolicy("")
	canary, pct := StageCanary, 20.0
	out, err := EditRollout(data, "p.yaml", "orders", RolloutEdit{Stage: &canary, Percent: &pct})
	require.NoError(t, err)
	require.Contains(t, string(out), "# The orders API.")
	p, err := Parse(out, "p.yaml")
	require.NoError(t, err)
	require.Equal(t, StageCanary, p.Route("orders").Rollout.Stage)
	require.Equal(t, uint32(200_000), p.Route("orders").Rollout.PerMillion)

	out, err = EditRollout(out, "p.yaml", "orders", RolloutEdit{AddTenant: "acme"})
	require.NoError(t, err)
	p, err = Parse(out, "p.yaml")
	require.NoError(t, err)
	require.Equal(t, &Tenants{Header: "x-tenant", Values: []string{"acme"}}, p.Route("orders").Rollout.Tenants)
	_, err = EditRollout(out, "p.yaml", "orders", RolloutEdit{AddTenant: "acme"})
	require.ErrorContains(t, err, "already on for tenant \"acme\"")

	bad := 150.0
	_, err = EditRollout(out, "p.yaml", "orders", RolloutEdit{Percent: &bad})
	require.ErrorContains(t, err, "nothing was written")
	_, err = EditRollout(out, "p.yaml", "nowhere", RolloutEdit{Stage: &canary})
	require.ErrorContains(t, err, `no route "nowhere"`)
	_, err = EditRollout(append(out, "# "+strings.Repeat(",", MaxYAMLNodes/2)...), "p.yaml", "orders", RolloutEdit{Stage: &canary})
	require.ErrorIs(t, err, ErrTooLarge) // refused before it is parsed, as Parse would
}
