package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/envoy"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/wire"
)

// The Envoy Gateway end-to-end test: a real control plane (Envoy Gateway
// v1.9.1 in standalone mode: resources from files, Envoy run on the host)
// translates what `shadowlab render --target envoy-gateway` printed into
// the real Envoy, beside `shadowlab serve --xds-address ""`, and the
// assertions plain Envoy passes hold: the share mirrored, tenants, marks,
// capture of exactly the mirrored requests, admission in both scopes.

const egPolicy = `
version: 1
listeners: [{name: edge, address: "127.0.0.1:10000"}]
services:
  legacy: {endpoints: ["{{.legacy}}"]}
  candidate: {endpoints: ["{{.candidate}}"]}
routes:
  - name: reads
    match: {pathPrefix: /api/, methods: [GET]}
    primary: legacy
    shadow: {service: candidate, percent: 50, tenants: {header: x-tenant, values: [acme]}}
  - name: writes
    match: {pathPrefix: /api/, methods: [POST]}
    primary: legacy
    shadow: {service: candidate, percent: 100, unsafeMethods: true}
  - name: local
    match: {pathPrefix: /local/}
    primary: legacy
    admission: {rate: 5/s, mode: reject, scope: local}
  - name: global
    match: {pathPrefix: /global/}
    primary: legacy
    admission: {rate: 5/s, mode: reject, scope: global}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// egBase is what a cluster operator has before shadowlab: the
// GatewayClass, the Gateway, and (standalone only) the EnvoyProxy that
// makes Envoy Gateway run our Envoy on the host.
const egBase = `
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyProxy
metadata: {name: host-proxy, namespace: envoy-gateway-system}
spec:
  provider:
    type: Host
    host: {envoyVersion: "{{.EnvoyVersion}}"}
  bootstrap:
    type: Merge
    value: |
      admin: {address: {socket_address: {address: 127.0.0.1, port_value: {{.AdminPort}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: eg}
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
  parametersRef: {group: gateway.envoyproxy.io, kind: EnvoyProxy, name: host-proxy, namespace: envoy-gateway-system}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: eg, namespace: envoy-gateway-system}
spec:
  gatewayClassName: eg
  listeners: [{name: http, protocol: HTTP, port: {{.ListenerPort}}}]
---
# Standalone mode only: Envoy Gateway builds the cluster its Envoy fetches
# wasm modules through for Kubernetes (a CA at /certs/ca.crt, its Service's
# DNS name, and a client certificate from a CA it makes up at each start;
# its wasm server speaks TLS 1.3 only),
# so on a host Envoy refuses it and the listener never warms. Point it at
# the certificates certgen wrote and at loopback.
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyPatchPolicy
metadata: {name: wasm-cluster-on-host, namespace: envoy-gateway-system}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: eg}
  type: JSONPatch
  jsonPatches:
    - type: type.googleapis.com/envoy.config.cluster.v3.Cluster
      name: wasm_cluster
      operation:
        op: replace
        path: /transport_socket/typed_config/common_tls_context
        value:
          tls_params: {tls_maximum_protocol_version: TLSv1_3}
          validation_context: {trusted_ca: {filename: {{.Certs}}/envoy/ca.crt}}
          tls_certificates:
            - certificate_chain: {filename: {{.Certs}}/envoy/tls.crt}
              private_key: {filename: {{.Certs}}/envoy/tls.key}
    - type: type.googleapis.com/envoy.config.cluster.v3.Cluster
      name: wasm_cluster
      operation:
        op: replace
        path: /load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/address
        value: 127.0.0.1
`

const egConfig = `
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyGateway
gateway:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
provider:
  type: Custom
  custom:
    resource:
      type: File
      file: {paths: ["{{.Resources}}"]}
    infrastructure:
      type: Host
      host:
        configHome: {{.Home}}/config
        dataHome: {{.Home}}/data
        stateHome: {{.Home}}/state
        runtimeDir: {{.Home}}/run
logging: {level: {default: warn}}
extensionApis:
  enableBackend: true
  enableEnvoyPatchPolicy: true
`

// egService answers like both releases of an orders service: the same
// JSON, except that the candidate's total differs on /api/diff/.
type egService struct {
	candidate bool
	mu        sync.Mutex
	got       []*http.Request
}

func (s *egService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	s.got = append(s.got, r)
	s.mu.Unlock()
	total := 10
	if s.candidate && strings.HasPrefix(r.URL.Path, "/api/diff/") {
		total = 11
	}
	w.Header().Set("content-type", "application/json")
	fmt.Fprintf(w, `{"path":%q,"total":%d}`, r.URL.Path, total)
}

// requests returns the requests received whose path starts with prefix.
func (s *egService) requests(prefix string) []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*http.Request
	for _, r := range s.got {
		if strings.HasPrefix(r.URL.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func (s *egService) reset() {
	s.mu.Lock()
	s.got = nil
	s.mu.Unlock()
}

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}

func writeTemplate(t *testing.T, path, tmpl string, data any) {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, template.Must(template.New(filepath.Base(path)).Option("missingkey=error").Parse(tmpl)).Execute(&b, data))
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o600))
}

// TestEnvoyGateway is not parallel: Envoy Gateway binds fixed ports
// (18000, 18002, 8081, 19000, 19001, 19003), one at a time per machine.
func TestEnvoyGateway(t *testing.T) {
	egBin := os.Getenv("ENVOY_GATEWAY_BIN")
	require.NotEmpty(t, egBin, "ENVOY_GATEWAY_BIN is not set: run `make test`, or set it to the output of envoy-gateway/install.sh")
	envoyBin, err := harness.EnvoyBin()
	require.NoError(t, err)
	lab := harness.Test(t)
	// Unix socket paths and Envoy Gateway's directories: keep them short.
	work, err := os.MkdirTemp("", "eg-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	home, resources := filepath.Join(work, "home"), filepath.Join(work, "resources")
	require.NoError(t, os.MkdirAll(resources, 0o755))

	// The services, and shadowlab serve without xDS.
	legacy, candidate := &egService{}, &egService{candidate: true}
	addr := map[string]string{}
	for name, h := range map[string]http.Handler{"legacy": legacy, "candidate": candidate} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		addr[name] = l.Addr().String()
	}
	policyPath := filepath.Join(lab.Dir, "policy.yaml")
	writeTemplate(t, policyPath, egPolicy, addr)
	plugin, err := harness.BuildPlugin()
	require.NoError(t, err)
	gwAddr, apiAddr, admAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	sv, err := lab.Serve(context.Background(), serve.Config{PolicyPath: policyPath, XDSAddress: "",
		GatewayAddress: gwAddr, APIAddress: apiAddr, AdmissionAddress: admAddr, WasmPath: plugin,
		Pairer: pair.Config{Grace: 300 * time.Millisecond, TTL: 5 * time.Second}}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	require.Empty(t, sv.XDSAddr, "no xDS server")

	// What a user runs: shadowlab render, into Envoy Gateway's resources.
	bin, err := harness.BuildShadowlab()
	require.NoError(t, err)
	var rendered, stderr bytes.Buffer
	cmd := exec.Command(bin, "render", "--target", "envoy-gateway",
		"--gateway", "envoy-gateway-system/eg", "--route-namespace", "envoy-gateway-system",
		"--shadowlab-host", "127.0.0.1", "--gateway-port", portOf(t, gwAddr), "--api-port", portOf(t, apiAddr),
		"--admission-port", portOf(t, admAddr), "--wasm", plugin, policyPath)
	cmd.Stdout, cmd.Stderr = &rendered, &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	require.NoError(t, os.WriteFile(filepath.Join(resources, "20-shadowlab.yaml"), rendered.Bytes(), 0o600))

	listener, admin := freeAddr(t), freeAddr(t)
	envoyVersion, err := envoy.Version(envoyBin)
	require.NoError(t, err)
	writeTemplate(t, filepath.Join(resources, "00-base.yaml"), egBase, map[string]string{
		"EnvoyVersion": envoyVersion, "AdminPort": portOf(t, admin), "ListenerPort": portOf(t, listener),
		"Certs": filepath.Join(home, "config", "certs"),
	})
	cfg := filepath.Join(work, "envoy-gateway.yaml")
	writeTemplate(t, cfg, egConfig, map[string]string{"Resources": resources, "Home": home})

	// Envoy Gateway's host infrastructure runs Envoy through func-e, which
	// downloads Envoy unless its version directory has it: ours goes there.
	versions := filepath.Join(home, "data", "envoy-versions", envoyVersion, "bin")
	require.NoError(t, os.MkdirAll(versions, 0o755))
	real, err := filepath.EvalSymlinks(envoyBin)
	require.NoError(t, err)
	require.NoError(t, os.Symlink(real, filepath.Join(versions, "envoy")))
	out, err := exec.Command("env", "HOME="+home, egBin, "certgen", "--local", "--config-home", filepath.Join(home, "config")).CombinedOutput()
	require.NoError(t, err, "envoy-gateway certgen: %s", out)
	start := time.Now()
	eg, err := lab.Start("envoy-gateway", "env", "HOME="+home, egBin, "server", "--config-path", cfg)
	require.NoError(t, err)

	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	send := func(method, path string, header map[string]string) int {
		req, err := http.NewRequest(method, "http://"+listener+path, strings.NewReader(`{"qty":1}`))
		require.NoError(t, err)
		req.Host = "shop.example.com"
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	acme := map[string]string{"x-tenant": "acme"}
	require.Eventually(t, func() bool {
		select {
		case <-eg.Exited():
			require.FailNow(t, "envoy-gateway exited", "%s", eg.Logs())
		default:
		}
		req, _ := http.NewRequest("GET", "http://"+listener+"/ready", nil)
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 60*time.Second, 200*time.Millisecond, "Envoy Gateway's Envoy never routed")
	// The listener with the plugins warms once Envoy has the wasm module:
	// until then Envoy serves the routes of the last listener it had.
	require.Eventually(t, func() bool {
		legacy.reset()
		candidate.reset()
		for range 20 {
			send("GET", "/api/warm", acme)
		}
		return len(candidate.requests("/api/warm")) > 0
	}, 90*time.Second, time.Second, "nothing mirrored through shadowlab's gateway (Envoy Gateway's log follows)")
	t.Logf("Envoy Gateway: routing, mirror and plugins live %.1fs after start", time.Since(start).Seconds())
	require.NotContains(t, eg.Logs(), "Envoy rejected the last update")

	// Share and tenants: half of acme's reads, none of globex's.
	reportOf := func(route string) report.RouteReport {
		for _, r := range sv.Reporter.Report().Routes {
			if r.Route == route {
				return r
			}
		}
		return report.RouteReport{}
	}
	// The warm-up's pairs are still arriving: wait until they stop.
	base := -1
	require.Eventually(t, func() bool {
		now := reportOf("reads").Pairs
		settled := now == base
		base = now
		return settled
	}, 30*time.Second, time.Second)
	legacy.reset()
	candidate.reset()
	const n = 200
	for i := range n {
		path := fmt.Sprintf("/api/items/%d", i)
		if i%4 == 0 {
			path = fmt.Sprintf("/api/diff/%d", i)
		}
		require.Equal(t, 200, send("GET", path, acme))
		require.Equal(t, 200, send("GET", path, map[string]string{"x-tenant": "globex"}))
	}
	mirrored := candidate.requests("/api/")
	assert.GreaterOrEqual(t, len(mirrored), n*50/100-35, "about half of acme's %d reads mirrored", n)
	assert.LessOrEqual(t, len(mirrored), n*50/100+35, "about half of acme's %d reads mirrored", n)
	diffs := 0
	for _, r := range mirrored {
		assert.Equal(t, "acme", r.Header.Get("x-tenant"), "only the listed tenant is mirrored")
		assert.Equal(t, wire.MarkOn, r.Header.Get(wire.HeaderShadow))
		assert.Equal(t, "reads", r.Header.Get(wire.HeaderRoute))
		assert.Empty(t, r.Header.Get(wire.HeaderDryRun))
		assert.Empty(t, r.Header.Get(wire.HeaderSample))
		assert.Equal(t, "shop.example.com", r.Host)
		if strings.HasPrefix(r.URL.Path, "/api/diff/") {
			diffs++
		}
	}
	for _, r := range legacy.requests("/api/") {
		for _, h := range append([]string{wire.HeaderSample}, wire.Marks...) {
			assert.Empty(t, r.Header.Get(h), "the primary never sees %s", h)
		}
	}
	// Capture: exactly the mirrored requests were captured, each paired.
	want := base + len(mirrored)
	var rr report.RouteReport
	require.Eventually(t, func() bool {
		rr = reportOf("reads")
		return rr.Pairs >= want
	}, 30*time.Second, 100*time.Millisecond, "reads: want %d pairs", want)
	time.Sleep(6 * time.Second) // a primary captured without its mirror shows up as primary_only after the pair TTL (5s)
	rr = reportOf("reads")
	assert.Equal(t, want, rr.Pairs, "%+v", rr.Outcomes)
	assert.Zero(t, rr.Outcomes[report.PrimaryOnly], "a captured request that was not mirrored: %+v", rr.Outcomes)
	assert.Zero(t, rr.Outcomes[report.ShadowOnly], "a mirrored request that was not captured: %+v", rr.Outcomes)
	assert.Equal(t, map[string]int{"$.total changed": diffs}, differences(rr), "the seeded difference, on every mirrored /api/diff/ request")

	// Unsafe methods: every write mirrored, marked dry-run by the gateway.
	for range 10 {
		require.Equal(t, 200, send("POST", "/api/orders", nil))
	}
	require.Eventually(t, func() bool { return len(candidate.requests("/api/orders")) == 10 }, 10*time.Second, 50*time.Millisecond)
	for _, r := range candidate.requests("/api/orders") {
		assert.Equal(t, wire.MarkOn, r.Header.Get(wire.HeaderDryRun))
		assert.Equal(t, "writes", r.Header.Get(wire.HeaderRoute))
	}
	require.Eventually(t, func() bool { return reportOf("writes").Pairs >= 10 }, 30*time.Second, 100*time.Millisecond)

	// Admission: 5/s, reject mode, in the plugin and in serve.
	for _, route := range []string{"local", "global"} {
		rejected := 0
		for i := range 30 {
			if send("GET", "/"+route+"/"+strconv.Itoa(i), nil) == http.StatusTooManyRequests {
				rejected++
			}
		}
		assert.GreaterOrEqual(t, rejected, 15, "%s: a burst of 30 at 5/s is mostly rejected", route)
		assert.LessOrEqual(t, rejected, 28, "%s: the first ones pass", route)
	}
	require.Eventually(t, func() bool {
		seen := map[string]uint64{}
		for _, a := range sv.Reporter.Admission() {
			seen[a.Route] += a.Rejected
		}
		return seen["local"] >= 15 && seen["global"] >= 15
	}, 15*time.Second, 200*time.Millisecond, "serve reports both scopes' rejections: %+v", sv.Reporter.Admission())
}
