package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/examples/grpcbackend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/xds"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.RemoveBuilt()
	os.Exit(code)
}

// ports are the loopback addresses a policy template can use.
type ports struct {
	Listener  string
	Legacy    string
	Candidate string

	// The gRPC example services (envOptions.grpc): their addresses, the
	// candidate's descriptor set file and the CA its certificate is
	// issued by.
	GRPCLegacy, GRPCCandidate string
	Descriptors, CA           string
}

// env is one real deployment: the two example backends, an in-process
// control plane (real gRPC) following a policy file, and a real Envoy.
type env struct {
	t          *testing.T
	lab        *harness.Lab
	policyPath string
	ports      ports
	cpAddrs    cpAddrs

	legacy, candidate *backend.Server
	grpc              [2]*grpcbackend.Server // legacy, candidate; with envOptions.grpc
	cp                *controlPlane
	envoy             *harness.Envoy
	client            *http.Client
}

type envOptions struct {
	delta bool         // incremental xDS instead of state of the world
	api   bool         // the services answer as the example billing API
	grpc  bool         // the gRPC example services run too (grpc_test.go)
	serve serve.Config // control plane settings (ports and policy are the env's)
	logs  io.Writer    // also receives the control plane's logs (JSON, debug level)
}

// newEnv starts everything for a policy template (text/template over ports)
// and waits until Envoy serves it. Everything stops when the test ends;
// the logs are printed if the test failed.
func newEnv(t *testing.T, policyTmpl string, opts envOptions) *env {
	t.Helper()
	e := &env{
		t:      t,
		lab:    harness.Test(t),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	e.policyPath = filepath.Join(e.lab.Dir, "policy.yaml")
	var legacyOpts, candidateOpts []backend.Option
	if opts.api {
		legacyOpts = append(legacyOpts, backend.WithAPI(backend.API{}))
		candidateOpts = append(candidateOpts, backend.WithAPI(backend.API{Candidate: true}))
	}
	var err error
	e.legacy, err = e.lab.Backend("legacy", legacyOpts...)
	require.NoError(t, err)
	e.candidate, err = e.lab.Backend("candidate", candidateOpts...)
	require.NoError(t, err)
	e.ports = ports{Listener: freeAddr(t), Legacy: e.legacy.Addr(), Candidate: e.candidate.Addr()}
	if opts.grpc {
		e.startGRPC()
	}
	e.writePolicy(policyTmpl)

	e.cpAddrs = cpAddrs{xds: freeAddr(t), gateway: freeAddr(t), api: freeAddr(t), admission: freeAddr(t)}
	e.cp = e.startControlPlane(opts.serve, opts.logs)

	boot, err := harness.DynamicBootstrap("e2e-"+t.Name(), e.cpAddrs.xds, opts.delta)
	require.NoError(t, err)
	e.envoy, err = e.lab.Envoy(context.Background(), harness.EnvoyConfig{Bootstrap: boot})
	require.NoError(t, err)
	e.waitServing()
	return e
}

// writePolicy renders a template over the env's ports into the policy file,
// atomically (write + rename), as an editor or a ConfigMap update would.
func (e *env) writePolicy(tmpl string) {
	e.t.Helper()
	writePolicy(e.t, e.policyPath, tmpl, e.ports)
}

func writePolicy(t *testing.T, path, tmpl string, p ports) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("p").Option("missingkey=error").Parse(tmpl)).Execute(&buf, p))
	require.NoError(t, os.WriteFile(path+".tmp", buf.Bytes(), 0o600))
	require.NoError(t, os.Rename(path+".tmp", path))
}

// waitServing waits until the listener answers from the primary.
func (e *env) waitServing() {
	e.t.Helper()
	waitRouted(e.t, e.ports.Listener, 20*time.Second)
	e.resetBackends()
}

// waitRouted waits until Envoy's listener at addr answers from a backend.
func waitRouted(t *testing.T, addr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	require.NoError(t, harness.WaitHTTP(ctx, "http://"+addr+"/__ready_probe", func(r *http.Response) bool {
		return r.Header.Get(backend.HeaderBackend) != ""
	}), "envoy never routed to a backend")
}

func (e *env) resetBackends() {
	e.legacy.Reset()
	e.candidate.Reset()
}

// do sends one request through Envoy and returns the response with its body
// read.
func (e *env) do(method, path string, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.ports.Listener+path, nil)
	require.NoError(e.t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, body
}

// mustPrimary sends a request and checks the client got legacy's answer.
func (e *env) mustPrimary(method, path string, headers map[string]string) backend.Reply {
	e.t.Helper()
	resp, body := e.do(method, path, headers)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, body)
	require.Equal(e.t, "legacy", resp.Header.Get(backend.HeaderBackend), "%s %s answered by the wrong service", method, path)
	var r backend.Reply
	if method != http.MethodHead {
		require.NoError(e.t, json.Unmarshal(body, &r), "body %q", body)
		require.Equal(e.t, "legacy", r.Service)
	}
	return r
}

// settle waits until the shadow has stopped receiving (mirrors are
// asynchronous) and returns what it received.
func (e *env) settle() []backend.Request {
	e.t.Helper()
	last, stable := -1, 0
	require.Eventually(e.t, func() bool {
		n := e.candidate.Count()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		return stable >= 5
	}, 10*time.Second, 40*time.Millisecond)
	return e.candidate.Received()
}

// controlPlane is `shadowlab serve` in-process: the xDS server, the capture
// (ext_proc) server and the report API on real sockets, following the
// policy file; stoppable and restartable on the same ports.
type controlPlane struct {
	*serve.Instance
	srv *xds.Server
}

// cpAddrs are the control plane's ports, fixed for the env's life so that a
// restarted control plane is found by the same Envoy.
type cpAddrs struct{ xds, gateway, api, admission string }

func (e *env) startControlPlane(cfg serve.Config, logs io.Writer) *controlPlane {
	e.t.Helper()
	cfg.PolicyPath, cfg.XDSAddress, cfg.GatewayAddress, cfg.APIAddress = e.policyPath, e.cpAddrs.xds, e.cpAddrs.gateway, e.cpAddrs.api
	cfg.AdmissionAddress = e.cpAddrs.admission
	if cfg.WasmPath == "" {
		path, err := harness.BuildPlugin()
		require.NoError(e.t, err, "building the admission plugin")
		cfg.WasmPath = path
	}
	if cfg.Pairer.Grace == 0 {
		cfg.Pairer.Grace = 200 * time.Millisecond
	}
	log := zaptest.NewLogger(e.t, zaptest.Level(zap.InfoLevel))
	if logs != nil { // also as JSON into logs, all levels
		log = zap.New(zapcore.NewTee(log.Core(), zapcore.NewCore(
			zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel)))
	}
	in, err := e.lab.Serve(context.Background(), cfg, log)
	require.NoError(e.t, err)
	return &controlPlane{Instance: in, srv: in.XDS}
}

func (cp *controlPlane) stop() { cp.Stop() }

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	require.NoError(t, err)
	return addr
}
