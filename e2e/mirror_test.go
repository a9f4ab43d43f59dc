package e2e

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/wire"
)

// basePolicy mirrors three kinds of route:
//   - records: GET/POST, only tenants acme and globex, safe methods only;
//   - users: any method, every client, unsafe methods opted in (dry run);
//   - everything else: primary only.
const basePolicy = `
version: 1
listeners: [{name: ingress, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: records
    match: {pathPrefix: /billing/records, methods: [GET, POST]}
    primary: legacy
    shadow:
      service: candidate
      percent: 100
      tenants: {header: x-tenant, values: [acme, globex]}
  - name: users
    match: {pathPrefix: /users}
    primary: legacy
    shadow: {service: candidate, percent: 100, unsafeMethods: true}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

func TestMirror(t *testing.T) {
	for name, opts := range map[string]envOptions{"sotw": {}, "delta": {delta: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, basePolicy, opts)

			type sent struct {
				method, path, tenant string
				mirrored, dryRun     bool
			}
			requests := []sent{
				{"GET", "/billing/records/1", "acme", true, false},
				{"GET", "/billing/records/2", "globex", true, false},
				{"HEAD", "/billing/records/3", "acme", false, false}, // HEAD is not in the route's methods
				{"GET", "/billing/records/4", "initech", false, false},
				{"GET", "/billing/records/5", "", false, false},
				{"POST", "/billing/records/6", "acme", false, false}, // unsafe, not opted in
				{"GET", "/users/7", "", true, false},
				{"HEAD", "/users/8", "initech", true, false},
				{"OPTIONS", "/users/9", "", true, false},
				{"POST", "/users/10", "", true, true},
				{"DELETE", "/users/11", "acme", true, true},
				{"PATCH", "/users/12", "", true, true},
				{"GET", "/health", "acme", false, false},
			}
			ids := map[string]string{} // path → request id the primary saw
			for _, s := range requests {
				h := map[string]string{
					// Forged: Envoy must replace the ID and strip the markers.
					"x-request-id":    "forged-" + s.path,
					wire.HeaderShadow: "1",
					wire.HeaderRoute:  "forged",
					wire.HeaderDryRun: "1",
				}
				if s.tenant != "" {
					h["x-tenant"] = s.tenant
				}
				if s.method == "HEAD" {
					resp, _ := e.do(s.method, s.path, h)
					require.Equal(t, "legacy", resp.Header.Get(backend.HeaderBackend))
				} else {
					e.mustPrimary(s.method, s.path, h)
				}
			}

			for _, r := range e.legacy.Received() {
				id := r.Headers["x-request-id"]
				assert.NotEmpty(t, id, "%s %s: primary got no request id", r.Method, r.Path)
				assert.False(t, strings.HasPrefix(id, "forged"), "%s %s: client-supplied id %q reached the primary", r.Method, r.Path, id)
				for _, hdr := range []string{wire.HeaderShadow, wire.HeaderRoute, wire.HeaderDryRun} {
					assert.NotContains(t, r.Headers, hdr, "%s %s: primary carries %s", r.Method, r.Path, hdr)
				}
				ids[r.Path] = id
			}
			require.Len(t, ids, len(requests), "primary must see every request once")

			shadows := map[string]backend.Request{}
			for _, r := range e.settle() {
				_, dup := shadows[r.Path]
				require.False(t, dup, "%s mirrored twice", r.Path)
				shadows[r.Path] = r
			}
			for _, s := range requests {
				got, ok := shadows[s.path]
				if !s.mirrored {
					assert.False(t, ok, "%s %s (tenant %q) must not be mirrored", s.method, s.path, s.tenant)
					continue
				}
				if !assert.True(t, ok, "%s %s (tenant %q) must be mirrored", s.method, s.path, s.tenant) {
					continue
				}
				assert.Equal(t, s.method, got.Method)
				assert.Equal(t, ids[s.path], got.Headers["x-request-id"], "%s: shadow and primary ids differ", s.path)
				assert.Equal(t, "1", got.Headers[wire.HeaderShadow], "%s: shadow marker", s.path)
				wantRoute := "records"
				if strings.HasPrefix(s.path, "/users") {
					wantRoute = "users"
				}
				assert.Equal(t, wantRoute, got.Headers[wire.HeaderRoute], "%s: route header", s.path)
				if s.dryRun {
					assert.Equal(t, "1", got.Headers[wire.HeaderDryRun], "%s: unsafe method without dry-run marker", s.path)
				} else {
					assert.NotContains(t, got.Headers, wire.HeaderDryRun, "%s: safe method with dry-run marker", s.path)
				}
				assert.False(t, strings.HasSuffix(got.Headers["host"], "-shadow"), "%s: host %q got the -shadow suffix", s.path, got.Headers["host"])
			}
		})
	}
}

// TestMirrorShare checks that a percentage mirrors about that share of
// matching requests: 400 requests at 25 % give a binomial count with mean
// 100 and standard deviation ~8.7; the bound is ±5 standard deviations, so a
// correct Envoy fails it about once in 3 million runs.
func TestMirrorShare(t *testing.T) {
	t.Parallel()
	e := newEnv(t, strings.Replace(basePolicy, "percent: 100, unsafeMethods", "percent: 25, unsafeMethods", 1), envOptions{})
	const n, p = 400, 0.25
	for i := range n {
		e.mustPrimary("GET", fmt.Sprintf("/users/%d", i), nil)
	}
	got := len(e.settle())
	mean, sd := n*p, math.Sqrt(n*p*(1-p))
	t.Logf("mirrored %d of %d at %.0f %% (expected %.0f ± %.1f)", got, n, p*100, mean, sd)
	assert.InDelta(t, mean, float64(got), 5*sd)
}

// TestTrustRequestID: a listener that trusts client ids keeps them, on the
// primary and the shadow alike.
func TestTrustRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, strings.Replace(basePolicy, `address: "{{.Listener}}"}`, `address: "{{.Listener}}", trustRequestID: true}`, 1), envOptions{})
	e.mustPrimary("GET", "/users/1", map[string]string{"x-request-id": "client-chosen-1"})
	shadows := e.settle()
	require.Len(t, shadows, 1)
	assert.Equal(t, "client-chosen-1", shadows[0].Headers["x-request-id"])
	assert.Equal(t, "client-chosen-1", e.legacy.Received()[0].Headers["x-request-id"])
}

// waitMirrored sends GETs to path until the shadow receives one, and
// returns how long that took.
func (e *env) waitMirrored(path string, headers map[string]string) time.Duration {
	e.t.Helper()
	start := time.Now()
	require.Eventually(e.t, func() bool {
		e.mustPrimary(http.MethodGet, path, headers)
		for _, r := range e.candidate.Received() {
			if strings.HasPrefix(r.Path, path) {
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "%s never mirrored", path)
	return time.Since(start)
}
