package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/envoy"
	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/xds"
)

// binaries builds bin/shadowlab, bin/backend and the plugin once per test
// binary, as `make build` does (no race detector), into one directory.
var binaries = sync.OnceValues(func() (string, error) {
	plugin, err := wasmPlugin()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(plugin)
	for pkg, name := range map[string]string{"../cmd/shadowlab": "shadowlab", "../examples/cmd/backend": "backend"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

// procEnv is a deployment of processes: the example service (legacy),
// `shadowlab serve` and Envoy, on loopback.
type procEnv struct {
	t     *testing.T
	dir   string
	ports ports
	api   string
	envoy *envoy.Process
	serve *exec.Cmd
	http  *http.Client
}

func startProcEnv(t *testing.T, policyTmpl string) *procEnv {
	t.Helper()
	bins, err := binaries()
	require.NoError(t, err)
	envoyPath, err := envoyBin()
	require.NoError(t, err, "envoy is required for the end-to-end tests (make envoy)")
	e := &procEnv{t: t, dir: t.TempDir(), http: &http.Client{Timeout: 30 * time.Second}}

	legacy := e.start("legacy", filepath.Join(bins, "backend"), "-name", "legacy", "-addr", "127.0.0.1:0")
	e.ports = ports{Listener: freeAddr(t), Legacy: legacy, Candidate: "127.0.0.1:1"}
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("p").Option("missingkey=error").Parse(policyTmpl)).Execute(&buf, e.ports))
	policyPath := filepath.Join(e.dir, "policy.yaml")
	require.NoError(t, os.WriteFile(policyPath, buf.Bytes(), 0o600))

	xdsAddr := freeAddr(t)
	e.api = freeAddr(t)
	e.serve = e.command("serve", filepath.Join(bins, "shadowlab"), "serve", "--policy", policyPath,
		"--xds-address", xdsAddr, "--extproc-address", freeAddr(t), "--api-address", e.api,
		"--admission-address", freeAddr(t), "--wasm", filepath.Join(bins, "shadowlab.wasm"), "--db", "", "--log-format", "console")
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + e.api + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}, 30*time.Second, 50*time.Millisecond, "serve never answered; log:\n%s", e.log("serve"))

	boot, err := xds.Bootstrap(xds.BootstrapConfig{NodeID: "e2e-" + t.Name(), XDSAddress: xdsAddr, AdminAddress: "127.0.0.1:0"})
	require.NoError(t, err)
	bootYAML, err := xds.MessageYAML(boot)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.envoy, err = envoy.Start(ctx, envoy.Config{Bin: envoyPath, Bootstrap: bootYAML, Dir: e.dir})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = e.envoy.Stop()
		if t.Failed() {
			t.Logf("envoy log:\n%s\nserve log:\n%s", tail(e.envoy.Logs(), 60), tail(e.log("serve"), 60))
		}
	})
	require.NoError(t, e.envoy.WaitReady(ctx), "envoy log:\n%s", tail(e.envoy.Logs(), 100))
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + e.ports.Listener + "/__ready_probe")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.Header.Get(backend.HeaderBackend) != ""
	}, 30*time.Second, 20*time.Millisecond, "envoy never routed to the service; log:\n%s", tail(e.envoy.Logs(), 60))
	return e
}

// command starts bin with args, its output in <dir>/<name>.log, killed
// when the test ends.
func (e *procEnv) command(name, bin string, args ...string) *exec.Cmd {
	f, err := os.Create(filepath.Join(e.dir, name+".log"))
	require.NoError(e.t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		f.Close()
	})
	return cmd
}

// start starts the example service and returns its address.
func (e *procEnv) start(name, bin string, args ...string) string {
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(e.t, err)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(e.t, cmd.Start())
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	require.True(e.t, sc.Scan(), "%s printed nothing", name)
	addr, ok := strings.CutPrefix(sc.Text(), "listening ")
	require.True(e.t, ok, "%s: %q", name, sc.Text())
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return addr
}

func (e *procEnv) log(name string) string {
	b, _ := os.ReadFile(filepath.Join(e.dir, name+".log"))
	return string(b)
}

// stopServe stops `shadowlab serve` (SIGKILL: nothing is flushed politely).
func (e *procEnv) stopServe() {
	_ = e.serve.Process.Kill()
}

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
