package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/shadowlab/shadowlab/envoy"
	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/xds"
)

// envoyBin is resolved once per test binary; a missing Envoy fails every
// test that needs it (never a skip).
var envoyBin = sync.OnceValues(envoy.Binary)

// wasmPlugin builds the admission plugin once per test binary, as `make
// build` does, into a directory removed when the binary exits (TestMain).
var wasmPlugin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "shadowlab-e2e-wasm-")
	if err != nil {
		return "", err
	}
	wasmDirs = append(wasmDirs, dir)
	out := filepath.Join(dir, "shadowlab.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", out, "../wasm")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ../wasm: %w\n%s", err, b)
	}
	return out, nil
})

var wasmDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range wasmDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}

// ports are the loopback addresses a policy template can use.
type ports struct {
	Listener  string
	Legacy    string
	Candidate string
}

// env is one real deployment: the two example backends, an in-process
// control plane (real gRPC) following a policy file, and a real Envoy.
type env struct {
	t          *testing.T
	dir        string
	policyPath string
	ports      ports
	cpAddrs    cpAddrs
	delta      bool

	legacy, candidate *backend.Server
	cp                *controlPlane
	envoy             *envoy.Process
	client            *http.Client
}

type envOptions struct {
	delta bool         // incremental xDS instead of state of the world
	api   bool         // the services answer as the example billing API
	serve serve.Config // control plane settings (ports and policy are the env's)
	logs  io.Writer    // also receives the control plane's logs (JSON, debug level)
}

// newEnv starts everything for a policy template (text/template over ports)
// and waits until Envoy serves it. Everything stops when the test ends;
// Envoy's log is printed if the test failed.
func newEnv(t *testing.T, policyTmpl string, opts envOptions) *env {
	t.Helper()
	bin, err := envoyBin()
	require.NoError(t, err, "envoy is required for the end-to-end tests (make envoy)")

	e := &env{
		t:      t,
		dir:    t.TempDir(),
		delta:  opts.delta,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	e.policyPath = filepath.Join(e.dir, "policy.yaml")

	if opts.api {
		e.legacy = backend.New("legacy", backend.WithAPI(backend.API{}))
		e.candidate = backend.New("candidate", backend.WithAPI(backend.API{Candidate: true}))
	} else {
		e.legacy, e.candidate = backend.New("legacy"), backend.New("candidate")
	}
	for _, b := range []*backend.Server{e.legacy, e.candidate} {
		require.NoError(t, b.Start("127.0.0.1:0"))
		t.Cleanup(func() { _ = b.Close() })
	}
	e.ports = ports{Listener: freeAddr(t), Legacy: e.legacy.Addr(), Candidate: e.candidate.Addr()}
	e.writePolicy(policyTmpl)

	e.cpAddrs = cpAddrs{xds: freeAddr(t), extproc: freeAddr(t), api: freeAddr(t), admission: freeAddr(t)}
	e.cp = startControlPlane(t, e.cpAddrs, e.policyPath, opts.serve, opts.logs)

	boot, err := xds.Bootstrap(xds.BootstrapConfig{
		NodeID: "e2e-" + t.Name(), XDSAddress: e.cpAddrs.xds, AdminAddress: "127.0.0.1:0", Delta: opts.delta,
	})
	require.NoError(t, err)
	bootYAML, err := xds.MessageYAML(boot)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.envoy, err = envoy.Start(ctx, envoy.Config{Bin: bin, Bootstrap: bootYAML, Dir: e.dir})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = e.envoy.Stop()
		if t.Failed() {
			t.Logf("envoy log:\n%s", tail(e.envoy.Logs(), 200))
		}
	})
	require.NoError(t, e.envoy.WaitReady(ctx), "envoy log:\n%s", tail(e.envoy.Logs(), 100))
	e.waitServing()
	return e
}

// writePolicy renders a template over the env's ports into the policy file,
// atomically (write + rename), as an editor or a ConfigMap update would.
func (e *env) writePolicy(tmpl string) {
	e.t.Helper()
	var buf bytes.Buffer
	require.NoError(e.t, template.Must(template.New("p").Option("missingkey=error").Parse(tmpl)).Execute(&buf, e.ports))
	tmp := e.policyPath + ".tmp"
	require.NoError(e.t, os.WriteFile(tmp, buf.Bytes(), 0o600))
	require.NoError(e.t, os.Rename(tmp, e.policyPath))
}

// waitServing waits until the listener answers from the primary.
func (e *env) waitServing() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		resp, err := e.client.Get("http://" + e.ports.Listener + "/__ready_probe")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Header.Get(backend.HeaderBackend) != ""
	}, 20*time.Second, 20*time.Millisecond, "envoy never routed to a backend; log:\n%s", tail(e.envoy.Logs(), 60))
	e.resetBackends()
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
type cpAddrs struct{ xds, extproc, api, admission string }

func startControlPlane(t *testing.T, addrs cpAddrs, policyPath string, cfg serve.Config, logs io.Writer) *controlPlane {
	t.Helper()
	cfg.PolicyPath, cfg.XDSAddress, cfg.ExtProcAddress, cfg.APIAddress = policyPath, addrs.xds, addrs.extproc, addrs.api
	cfg.AdmissionAddress = addrs.admission
	if cfg.WasmPath == "" {
		path, err := wasmPlugin()
		require.NoError(t, err, "building the admission plugin")
		cfg.WasmPath = path
	}
	if cfg.Pairer.Grace == 0 {
		cfg.Pairer.Grace = 200 * time.Millisecond
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	if logs != nil { // also as JSON into logs, all levels
		log = zap.New(zapcore.NewTee(log.Core(), zapcore.NewCore(
			zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel)))
	}
	var in *serve.Instance
	require.Eventually(t, func() bool { // a just-stopped control plane's ports may take a moment
		var err error
		in, err = serve.Start(context.Background(), cfg, log)
		if err != nil && !strings.Contains(err.Error(), "address already in use") {
			require.NoError(t, err)
		}
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "control plane ports stay busy")
	t.Cleanup(in.Stop)
	return &controlPlane{Instance: in, srv: in.XDS}
}

func (cp *controlPlane) stop() { cp.Stop() }

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = append([]string{fmt.Sprintf("... (%d lines before)", len(ls)-lines)}, ls[len(ls)-lines:]...)
	}
	return strings.Join(ls, "\n")
}
