package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/serve"
)

// routeVersions reads the version of every dynamic route configuration from
// Envoy's config dump.
func (e *env) routeVersions() map[string]string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, code, err := e.envoy.Admin(ctx, "GET", "/config_dump?resource=dynamic_route_configs")
	require.NoError(e.t, err)
	require.Equal(e.t, 200, code, body)
	var dump struct {
		Configs []struct {
			VersionInfo string `json:"version_info"`
			RouteConfig struct {
				Name string `json:"name"`
			} `json:"route_config"`
		} `json:"configs"`
	}
	require.NoError(e.t, json.Unmarshal([]byte(body), &dump))
	out := map[string]string{}
	for _, c := range dump.Configs {
		out[c.RouteConfig.Name] = c.VersionInfo
	}
	return out
}

// mirroredNone sends n GETs to path and checks, once the shadow has settled,
// that none was mirrored. Mirrors of earlier requests still in flight are
// let land first, and only requests under path count.
func (e *env) mirroredNone(path string, n int, headers map[string]string) {
	e.t.Helper()
	e.settle()
	e.resetBackends()
	for i := range n {
		e.mustPrimary("GET", fmt.Sprintf("%s/%d", path, i), headers)
	}
	var under []string
	for _, r := range e.settle() {
		if strings.HasPrefix(r.Path, path) {
			under = append(under, r.Method+" "+r.Path)
		}
	}
	assert.Empty(e.t, under, "%s must not be mirrored", path)
}

// TestPolicyEditsLive edits the policy file under a running Envoy: a
// percentage 0 → 100 (over RTDS only: no route is rewritten), a new route, a
// new tenant. Each takes effect without restarting Envoy; the time from the
// file write to the first mirrored request is logged.
func TestPolicyEditsLive(t *testing.T) {
	for name, opts := range map[string]envOptions{"sotw": {}, "delta": {delta: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			zero := strings.Replace(basePolicy, "percent: 100, unsafeMethods", "percent: 0, unsafeMethods", 1)
			zero = strings.Replace(zero, "values: [acme, globex]", "values: [acme]", 1)
			e := newEnv(t, zero, opts)
			pid := e.envoy.Pid()

			e.mirroredNone("/users", 20, nil)
			routesBefore := e.routeVersions()

			// 1. 0 % → 100 %: RTDS only.
			hundred := strings.Replace(zero, "percent: 0, unsafeMethods", "percent: 100, unsafeMethods", 1)
			e.writePolicy(hundred)
			took := e.waitMirrored("/users", nil)
			t.Logf("percentage 0 → 100 %% took effect in %v", took)
			assert.Equal(t, routesBefore, e.routeVersions(), "a percentage change must not rewrite routes")

			// 2. A new mirrored route.
			withOrders := strings.Replace(hundred, "  - name: rest\n", `  - name: orders
    match: {pathPrefix: /orders}
    primary: legacy
    shadow: {service: candidate, percent: 100}
  - name: rest
`, 1)
			e.mirroredNone("/orders", 5, nil)
			e.writePolicy(withOrders)
			took = e.waitMirrored("/orders", nil)
			t.Logf("new route took effect in %v", took)

			// 3. A new tenant.
			globex := map[string]string{"x-tenant": "globex"}
			e.mirroredNone("/billing/records", 5, globex)
			e.writePolicy(strings.Replace(withOrders, "values: [acme]", "values: [acme, globex]", 1))
			took = e.waitMirrored("/billing/records", globex)
			t.Logf("new tenant took effect in %v", took)

			assert.Equal(t, pid, e.envoy.Pid())
			select {
			case <-e.envoy.Exited():
				t.Fatal("envoy exited")
			default:
			}
			assert.Zero(t, e.cp.srv.NACKs(), "envoy rejected a configuration")
		})
	}
}

// TestInvalidEditKeepsLastGood writes broken policies under a running Envoy:
// each is refused, traffic keeps flowing on the last good config, and a
// following valid edit is applied.
func TestInvalidEditKeepsLastGood(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basePolicy, envOptions{})
	before := e.routeVersions()
	version := e.cp.srv.Version()

	broken := map[string]string{
		"percent out of range": strings.Replace(basePolicy, "percent: 100, unsafeMethods", "percent: 150, unsafeMethods", 1),
		"unknown service":      strings.Replace(basePolicy, "shadow: {service: candidate", "shadow: {service: candidat", 1),
		"not yaml":             basePolicy + "\n  - [unclosed\n",
		"empty":                "",
	}
	for name, p := range broken {
		refused := e.cp.srv.Refused()
		e.writePolicy(p)
		require.Eventually(t, func() bool { return e.cp.srv.Refused() > refused }, 5*time.Second, 10*time.Millisecond,
			"%s: edit not refused", name)
		e.resetBackends()
		for i := range 20 {
			e.mustPrimary("GET", fmt.Sprintf("/users/%d", i), nil)
		}
		assert.Len(t, e.settle(), 20, "%s: last good config (100 %% mirroring) must keep serving", name)
		assert.Equal(t, version, e.cp.srv.Version(), "%s: nothing published", name)
		assert.Equal(t, before, e.routeVersions(), "%s: envoy's routes changed", name)
	}

	e.writePolicy(strings.Replace(basePolicy, "  - name: rest\n", "  - name: orders\n    match: {pathPrefix: /orders}\n    primary: legacy\n    shadow: {service: candidate, percent: 100}\n  - name: rest\n", 1))
	e.waitMirrored("/orders", nil)
	assert.Zero(t, e.cp.srv.NACKs())
}

// TestControlPlaneRestart stops the control plane under traffic: no request
// fails, Envoy keeps routing with the last config, and the mirrored
// requests, whose shadow leg runs through serve's gateway, are dropped, not
// queued. A policy edited while it is down reaches Envoy once it is back,
// and mirroring resumes.
func TestControlPlaneRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, basePolicy, envOptions{})
	e.cp.stop()
	stopped := time.Now()

	e.resetBackends()
	for i := range 200 {
		e.mustPrimary("GET", fmt.Sprintf("/users/%d", i), nil) // fails the test on any error
	}
	assert.Empty(t, e.settle(), "the shadow leg runs through serve's gateway, which is down")

	e.writePolicy(strings.Replace(basePolicy, "  - name: rest\n", "  - name: orders\n    match: {pathPrefix: /orders}\n    primary: legacy\n    shadow: {service: candidate, percent: 100}\n  - name: rest\n", 1))
	e.mirroredNone("/orders", 5, nil)
	t.Logf("control plane down for %v under traffic, no failed request", time.Since(stopped))

	restarted := time.Now()
	e.cp = e.startControlPlane(serve.Config{}, nil)
	took := e.waitMirrored("/orders", nil)
	t.Logf("after restart, envoy resynchronised in %v (%v since the control plane came back)", took, time.Since(restarted))
	e.settle() // waitMirrored's own mirrors of /orders still in flight land first
	e.resetBackends()
	for i := range 20 {
		e.mustPrimary("GET", fmt.Sprintf("/users/%d", i), nil)
	}
	var users []string
	for _, r := range e.settle() {
		if strings.HasPrefix(r.Path, "/users/") {
			users = append(users, r.Path)
		}
	}
	assert.Len(t, users, 20, "mirroring resumed")
}

// TestNACKKeepsLastGood publishes a policy that passes shadowlab's
// validation but that Envoy refuses (a second listener on an address
// another process holds: Envoy cannot bind it; a regex beyond RE2's
// program-size limit, this test's earlier trigger, is now refused by the
// policy itself): the NACK is counted and logged with Envoy's reason,
// traffic keeps flowing on the previous listeners and routes, and the next
// good edit is applied.
func TestNACKKeepsLastGood(t *testing.T) {
	for name, opts := range map[string]envOptions{"sotw": {}, "delta": {delta: true}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testNACKKeepsLastGood(t, opts)
		})
	}
}

func testNACKKeepsLastGood(t *testing.T, opts envOptions) {
	e := newEnv(t, basePolicy, opts)
	taken := strings.Replace(basePolicy, `listeners: [{name: ingress, address: "{{.Listener}}"}]`,
		`listeners: [{name: ingress, address: "{{.Listener}}"}, {name: taken, address: "{{.Legacy}}"}]`, 1)
	require.NotEqual(t, basePolicy, taken)
	before := e.routeVersions()
	e.writePolicy(taken)
	require.Eventually(t, func() bool { return e.cp.srv.NACKs() > 0 }, 10*time.Second, 10*time.Millisecond, "envoy did not NACK")
	assert.Equal(t, before, e.routeVersions(), "envoy must keep its last good routes")

	e.resetBackends()
	for i := range 20 {
		e.mustPrimary("GET", fmt.Sprintf("/users/%d", i), nil)
	}
	assert.Len(t, e.settle(), 20, "the last good config must keep mirroring")
	assert.Equal(t, int64(1), e.cp.srv.NACKs(), "a refused config must not be resent in a loop")

	e.writePolicy(strings.Replace(basePolicy, "  - name: rest\n", "  - name: orders\n    match: {pathPrefix: /orders}\n    primary: legacy\n    shadow: {service: candidate, percent: 100}\n  - name: rest\n", 1))
	e.waitMirrored("/orders", nil)
}
