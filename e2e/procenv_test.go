package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/serve"
)

// procEnv is a deployment of processes: the example service (legacy),
// `shadowlab serve` and Envoy, on loopback, built as `make build` does
// (no race detector).
type procEnv struct {
	t     *testing.T
	ports ports
	api   string
	envoy *harness.Envoy
	serve *harness.Proc
	http  *http.Client
}

func startProcEnv(t *testing.T, policyTmpl string) *procEnv {
	t.Helper()
	return startReplicas(t, policyTmpl, 1, "")[0]
}

// startReplicas starts n deployments of `shadowlab serve` and Envoy, each
// Envoy programmed by its own serve, in front of one example service
// (legacy); with redisURL the serves keep their global admission budgets
// there, shared.
func startReplicas(t *testing.T, policyTmpl string, n int, redisURL string) []*procEnv {
	t.Helper()
	lab := harness.Test(t)
	ctx := context.Background()
	legacy, err := lab.BackendProc(ctx, "legacy")
	require.NoError(t, err)
	envs := make([]*procEnv, n)
	for i := range envs {
		e := &procEnv{t: t, http: &http.Client{Timeout: 30 * time.Second}, api: freeAddr(t)}
		e.ports = ports{Listener: freeAddr(t), Legacy: legacy, Candidate: "127.0.0.1:1"}
		policyPath := filepath.Join(lab.Dir, "policy-"+strconv.Itoa(i+1)+".yaml")
		writePolicy(t, policyPath, policyTmpl, e.ports)
		xdsAddr := freeAddr(t)
		cfg := serve.Config{PolicyPath: policyPath, XDSAddress: xdsAddr, GatewayAddress: freeAddr(t),
			APIAddress: e.api, AdmissionAddress: freeAddr(t)}
		cfg.AdmissionRedis.URL = redisURL
		e.serve, err = lab.ServeProc(ctx, cfg)
		require.NoError(t, err)
		boot, err := harness.DynamicBootstrap("e2e-"+t.Name()+"-"+strconv.Itoa(i+1), xdsAddr, false)
		require.NoError(t, err)
		e.envoy, err = lab.Envoy(ctx, harness.EnvoyConfig{Bootstrap: boot})
		require.NoError(t, err)
		waitRouted(t, e.ports.Listener, 30*time.Second)
		envs[i] = e
	}
	return envs
}

// stopServe stops `shadowlab serve` (SIGKILL: nothing is flushed politely).
func (e *procEnv) stopServe() { e.serve.Kill() }

// received are the requests the service got on paths under prefix.
func (e *procEnv) received(prefix string) []backend.Request {
	e.t.Helper()
	resp, err := e.http.Get("http://" + e.ports.Legacy + backend.ControlPrefix + "received")
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var rec backend.Recording
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&rec))
	var out []backend.Request
	for _, r := range rec.Requests {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// metric is the value of an unlabelled metric on serve's /metrics.
func (e *procEnv) metric(name string) float64 {
	e.t.Helper()
	resp, err := e.http.Get("http://" + e.api + "/metrics")
	require.NoError(e.t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(e.t, err)
			return f
		}
	}
	e.t.Fatalf("no metric %s on /metrics", name)
	return 0
}
