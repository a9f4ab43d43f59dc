package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
)

const cliRolloutPolicy = `version: 1
listeners: [{name: ingress, address: "127.0.0.1:10000"}]
services:
  legacy: {endpoints: ["127.0.0.1:8081"]}
  candidate: {endpoints: ["127.0.0.1:8082"]}
routes:
  - name: orders
    match: {pathPrefix: /orders}
    primary: legacy
    shadow: {service: candidate, percent: 100, tenants: {header: x-tenant, values: [acme, globex]}}
    rollout: {stage: shadow}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// promote goes through passing gates only (unless forced), step by step;
// rollback always; the file is edited in place and stays valid.
func TestPromoteAndRollback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cliRolloutPolicy), 0o640))
	verdict := report.Inconclusive
	tenants := []report.TenantReport{{Tenant: "acme", Verdict: report.Pass}, {Tenant: "globex", Verdict: report.Fail}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/rollout/orders" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(report.RouteRollout{Route: "orders", Verdict: verdict, Tenants: tenants,
			Gates: []report.GateResult{{Gate: report.GateMinPairs, Verdict: verdict, Missing: "12 more compared pairs in the window"}}})
	}))
	defer srv.Close()
	cli := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, &out, &out)
		return code, out.String()
	}
	stage := func() *policy.Rollout {
		p, err := policy.Load(path)
		require.NoError(t, err)
		return p.Route("orders").Rollout
	}

	code, out := cli("promote", "--policy", path, "--server", srv.URL, "orders")
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, out, "refused: the gates of route \"orders\" are inconclusive")
	require.Contains(t, out, "12 more compared pairs")
	require.Equal(t, policy.StageShadow, stage().Stage, "nothing written")

	verdict = report.Pass
	code, out = cli("promote", "--policy", path, "--server", srv.URL, "orders")
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "shadow → canary at 10 %")
	require.Equal(t, uint32(100_000), stage().PerMillion)

	code, out = cli("promote", "--policy", path, "--server", srv.URL, "--tenant", "globex", "orders")
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, out, `tenant "globex" of route "orders" are fail`)
	code, out = cli("promote", "--policy", path, "--server", srv.URL, "--tenant", "acme", "--percent", "25", "orders")
	require.Equal(t, exitOK, code, out)
	require.Equal(t, []string{"acme"}, stage().Tenants.Values)
	require.Equal(t, 25.0, stage().Percent)

	code, out = cli("promote", "--policy", path, "--server", "http://127.0.0.1:1", "orders")
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, out, "serve's verdict is needed (or --force)")
	code, out = cli("promote", "--policy", path, "--server", "http://127.0.0.1:1", "--force", "orders")
	require.Equal(t, exitOK, code, out)
	require.Equal(t, policy.StagePromoted, stage().Stage)
	code, out = cli("promote", "--policy", path, "--server", srv.URL, "orders")
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, out, "already promoted")

	code, out = cli("rollback", "--policy", path, "orders")
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "promoted → shadow")
	require.Equal(t, policy.StageShadow, stage().Stage)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the file keeps its permissions")

	code, out = cli("promote", "--policy", path, "--server", srv.URL, "rest")
	require.Equal(t, exitFailed, code, out)
	require.Contains(t, out, "has no rollout block")

	code, out = cli("status", "--server", srv.URL, "orders")
	require.Equal(t, exitOK, code, out)
	require.Contains(t, out, "orders:  — PASS")
}
