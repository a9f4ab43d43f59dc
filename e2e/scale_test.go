package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
)

// largePolicy is harness.LargePolicy on the env's template addresses.
func largePolicy(n int, tenants string) string {
	return string(harness.LargePolicy(n, "{{.Listener}}", "{{.Legacy}}", "{{.Candidate}}", "/__ready_probe", tenants, 100))
}

// TestLargePolicySmallEdit: 10 000 routes served to the real Envoy over
// delta xDS; adding a tenant to one route reaches Envoy as that route's
// segment alone: Envoy mirrors the new tenant's requests, reloads one route
// configuration of 10 000 and no listener, cluster, scope or runtime layer,
// and receives a few kilobytes from the control plane (its own counters).
func TestLargePolicySmallEdit(t *testing.T) {
	const n = 10_000
	start := time.Now()
	e := newEnv(t, largePolicy(n, "acme"), envOptions{delta: true})
	t.Logf("%d routes: serving %.1fs after start (Envoy ready in %.1fs)", n, time.Since(start).Seconds(), e.envoy.Ready.Seconds())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	counters := func() map[string]int64 {
		s, err := e.envoy.Stats(ctx, `^(cluster\.shadowlab_xds\.upstream_cx_rx_bytes_total|listener_manager\.lds\.update_success|cluster_manager\.cds\.update_success|runtime\.load_success|http\.shadowlab_ingress\.(rds\.routes/ingress/.*\.config_reload|scoped_rds\..*\.config_reload))$`)
		require.NoError(t, err)
		return s
	}
	before := counters()
	tables := 0
	for k := range before {
		if strings.Contains(k, ".rds.routes/ingress/") {
			tables++
		}
	}
	require.Equal(t, n, tables, "one route configuration per segment")

	e.mirroredNone("/edited/a", 3, map[string]string{"x-tenant": "initech"})
	edit := time.Now()
	e.writePolicy(largePolicy(n, "acme, initech"))
	// Under make test (race detector, other e2e tests alongside) reading
	// and publishing 10 000 routes took 15 s once: longer than
	// waitMirrored's patience.
	require.Eventually(t, func() bool {
		e.mustPrimary(http.MethodGet, "/edited/b", map[string]string{"x-tenant": "initech"})
		return slices.ContainsFunc(e.candidate.Received(), func(r backend.Request) bool { return strings.HasPrefix(r.Path, "/edited/b") })
	}, 90*time.Second, 50*time.Millisecond, "the new tenant's requests were never mirrored")
	t.Logf("one tenant added to one route of %d: Envoy mirrors it %s after the edit", n, time.Since(edit).Round(time.Millisecond))
	time.Sleep(time.Second) // any other update would have landed by now

	after := counters()
	changed := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			changed[k] = d
		}
	}
	received := changed["cluster.shadowlab_xds.upstream_cx_rx_bytes_total"]
	delete(changed, "cluster.shadowlab_xds.upstream_cx_rx_bytes_total")
	t.Logf("Envoy received %d bytes from the control plane; counters that moved: %v", received, changed)
	assert.Equal(t, map[string]int64{"http.shadowlab_ingress.rds.routes/ingress/edited.config_reload": 1}, changed,
		"only the edited route's configuration is reloaded: no listener, cluster, scope or runtime update")
	full := before["cluster.shadowlab_xds.upstream_cx_rx_bytes_total"] // everything, over delta, since Envoy started
	t.Logf("the full push was %d bytes; the edit %.3f %% of it", full, 100*float64(received)/float64(full))
	assert.Less(t, received, full/100, "the edit's bytes (%d) are under 1 %% of the full push (%d)", received, full)
}
