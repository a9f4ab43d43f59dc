package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/shadowlab/shadowlab/envoy"
)

// EnvoyBin is the Envoy to run (envoy.Binary), resolved once per process.
// A missing Envoy is an error, never a skip.
func EnvoyBin() (string, error) { return envoyBin() }

var envoyBin = sync.OnceValues(envoy.Binary)

// BuildShadowlab, BuildBackend and BuildPlugin build bin/shadowlab, the
// example service and the admission plugin as `make build` does, once per
// process, into one directory (so `shadowlab demo` finds the others beside
// itself), and return the path. RemoveBuilt removes them.
func BuildShadowlab() (string, error) { return shadowlab() }

// BuildBackend: see BuildShadowlab.
func BuildBackend() (string, error) { return backendBin() }

// BuildGRPCBackend: see BuildShadowlab.
func BuildGRPCBackend() (string, error) { return grpcBackendBin() }

// BuildPlugin: see BuildShadowlab.
func BuildPlugin() (string, error) { return plugin() }

var (
	shadowlab      = sync.OnceValues(func() (string, error) { return build("shadowlab", "cmd/shadowlab", false) })
	backendBin     = sync.OnceValues(func() (string, error) { return build("backend", "examples/cmd/backend", false) })
	plugin         = sync.OnceValues(func() (string, error) { return build("shadowlab.wasm", "wasm", true) })
	grpcBackendBin = sync.OnceValues(func() (string, error) { return build("grpcbackend", "examples/cmd/grpcbackend", false) })
	buildDir       = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "shadowlab-harness-") })
)

// build builds the module's package pkg into the build directory as name;
// wasm builds the proxy-wasm plugin.
func build(name, pkg string, wasm bool) (string, error) {
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if wasm {
		args = append(args, "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w")
	}
	cmd := exec.Command("go", append(args, "github.com/shadowlab/shadowlab/"+pkg)...)
	cmd.Env = os.Environ()
	if wasm {
		cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./%s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// RemoveBuilt removes what the Build functions built (call it
// from TestMain, or at the end of a command).
func RemoveBuilt() {
	if dir, err := buildDir(); err == nil {
		_ = os.RemoveAll(dir)
	}
}

// The releases of a third-party service the end-to-end tests mirror one to
// the other: go-httpbin, a Go port of httpbin.org, built from the Go module
// proxy like any dependency (go install module@version).
const (
	HTTPBinModule = "github.com/mccutchen/go-httpbin/v2/cmd/go-httpbin"
	HTTPBinOld    = "v2.18.2"
	HTTPBinNew    = "v2.26.0"
)

// BuildHTTPBin builds go-httpbin at version (HTTPBinOld or HTTPBinNew),
// once per process per version, and returns its path.
func BuildHTTPBin(version string) (string, error) {
	httpbinMu.Lock()
	defer httpbinMu.Unlock()
	if path, ok := httpbins[version]; ok {
		return path, nil
	}
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "httpbin-"+version)
	cmd := exec.Command("go", "install", HTTPBinModule+"@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", HTTPBinModule, version, err, b)
	}
	httpbins[version] = filepath.Join(bin, "go-httpbin")
	return httpbins[version], nil
}

var (
	httpbinMu sync.Mutex
	httpbins  = map[string]string{}
)
