package xds

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/policy"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./xds -update")
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the translation (run go test ./xds -update and review the diff):\n%s", path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, wl, gl)
		}
	}
	return ""
}

func load(t *testing.T, path string) *policy.Policy {
	t.Helper()
	p, err := policy.Load(path)
	require.NoError(t, err)
	return p
}

// goldenOptions are the options the golden cases translate with: capture
// on, as `shadowlab serve` runs.
var goldenOptions = Options{
	GatewayAddress:   "127.0.0.1:18003",
	AdmissionAddress: "127.0.0.1:18002",
	APIAddress:       "127.0.0.1:18080",
	Wasm:             WasmCode{SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
}

// scopedOptions scope every listener whose routes allow it.
var scopedOptions = func() Options { o := goldenOptions; o.ScopeAt = 1; return o }()

// TestTranslateGolden: testdata/<case>.policy.yaml → <case>.envoy.yaml;
// basic without capture → basic.mirror-only.envoy.yaml; segments scoped →
// segments.scoped.envoy.yaml.
func TestTranslateGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/*.policy.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	type goldenCase struct {
		policy string
		opts   Options
	}
	mtls := goldenOptions
	mtls.TLS = &ClientTLS{Cert: "/etc/envoy/shadowlab/client.pem", Key: "/etc/envoy/shadowlab/client.key",
		CA: "/etc/envoy/shadowlab/ca.pem", ServerID: "spiffe://mesh.example/ns/shadowlab/sa/serve"}
	tests := map[string]goldenCase{
		"basic.mirror-only": {"testdata/basic.policy.yaml", Options{}},
		// Envoy authenticates to the gateway, global admission and the API.
		"admission.mtls": {"testdata/admission.policy.yaml", mtls},
		// One route configuration per first path segment.
		"segments.scoped": {"testdata/segments.policy.yaml", scopedOptions},
	}
	for _, path := range cases {
		tests[strings.TrimSuffix(filepath.Base(path), ".policy.yaml")] = goldenCase{path, goldenOptions}
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := Translate(load(t, tt.policy), tt.opts)
			require.NoError(t, err)
			out, err := res.YAML()
			require.NoError(t, err)
			golden(t, name+".envoy.yaml", out)

			// Deterministic: a second translation is byte-identical.
			again, err := Translate(load(t, tt.policy), tt.opts)
			require.NoError(t, err)
			out2, err := again.YAML()
			require.NoError(t, err)
			assert.Equal(t, string(out), string(out2))

			snap, err := res.Snapshot()
			require.NoError(t, err)
			require.NoError(t, snap.Consistent())
		})
	}
}

func TestBootstrapGolden(t *testing.T) {
	tests := map[string]BootstrapConfig{
		"bootstrap-sotw":  {NodeID: "envoy-1", XDSAddress: "127.0.0.1:18000", AdminAddress: "127.0.0.1:9901"},
		"bootstrap-delta": {NodeID: "envoy-1", XDSAddress: "shadowlab.mesh.svc:18000", AdminAddress: "0.0.0.0:9901", Delta: true},
		"bootstrap-mtls": {NodeID: "envoy-1", XDSAddress: "shadowlab.mesh.svc:18000", AdminAddress: "127.0.0.1:9901",
			TLS: &ClientTLS{Cert: "/etc/envoy/shadowlab/client.pem", Key: "/etc/envoy/shadowlab/client.key", CA: "/etc/envoy/shadowlab/ca.pem"}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			b, err := Bootstrap(cfg)
			require.NoError(t, err)
			out, err := MessageYAML(b)
			require.NoError(t, err)
			golden(t, name+".envoy.yaml", out)
		})
	}
}

func TestBootstrapErrors(t *testing.T) {
	tests := map[string]struct {
		cfg  BootstrapConfig
		want string
	}{
		"no node id":    {BootstrapConfig{XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:2"}, "node id is empty"},
		"bad xds":       {BootstrapConfig{NodeID: "n", XDSAddress: "nowhere", AdminAddress: "127.0.0.1:2"}, "xds address"},
		"bad admin":     {BootstrapConfig{NodeID: "n", XDSAddress: "127.0.0.1:1", AdminAddress: "127.0.0.1:x"}, "admin address"},
		"port too high": {BootstrapConfig{NodeID: "n", XDSAddress: "127.0.0.1:70000", AdminAddress: "127.0.0.1:2"}, "bad port"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Bootstrap(tt.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestPercentChangeOnlyTouchesRuntime: changing a percentage changes the
// runtime layer's version and no other type's, so state-of-the-world
// clients are sent the runtime layer alone.
func TestPercentChangeOnlyTouchesRuntime(t *testing.T) {
	text, err := os.ReadFile("testdata/basic.policy.yaml")
	require.NoError(t, err)
	before, err := Translate(load(t, "testdata/basic.policy.yaml"), goldenOptions)
	require.NoError(t, err)
	edited, err := policy.Parse([]byte(strings.Replace(string(text), "percent: 10", "percent: 55", 1)), "edited")
	require.NoError(t, err)
	after, err := Translate(edited, goldenOptions)
	require.NoError(t, err)

	s1, err := before.Snapshot()
	require.NoError(t, err)
	s2, err := after.Snapshot()
	require.NoError(t, err)
	for _, typ := range []types.ResponseType{types.Listener, types.Route, types.Cluster} {
		assert.Equal(t, s1.Resources[typ].Version, s2.Resources[typ].Version, "type %d changed", typ)
	}
	assert.NotEqual(t, s1.Resources[types.Runtime].Version, s2.Resources[types.Runtime].Version)
	v1, _ := before.Version()
	v2, _ := after.Version()
	assert.NotEqual(t, v1, v2)
}

// FuzzTranslate: any policy that loads translates, and every resource
// passes Envoy's validation and the snapshot is consistent.
func FuzzTranslate(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.policy.yaml")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := policy.Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		res, err := Translate(p, goldenOptions)
		if err != nil {
			t.Fatalf("valid policy does not translate: %v\n%s", err, data)
		}
		if _, err := res.Snapshot(); err != nil {
			t.Fatalf("valid policy gives a bad snapshot: %v\n%s", err, data)
		}
	})
}
