package render

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// testSHA stands for the plugin's SHA-256 in the goldens.
const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// GoldenOptions are the options each golden is rendered with.
func goldenOptions(target Target, policyYAML []byte) Options {
	return Options{Target: target, Selector: map[string]string{"app": "orders"}, WasmSHA256: testSHA, PolicyYAML: policyYAML, Hosts: []string{"shop.example.com"}}
}

func TestGolden(t *testing.T) {
	for _, name := range []string{"mesh", "outside"} {
		file := name
		if name == "outside" {
			file = "mesh" // the same policy, shadowlab running outside the cluster at an IP
		}
		data, err := os.ReadFile(filepath.Join("testdata", file+".yaml"))
		require.NoError(t, err)
		p, err := policy.Parse(data, file+".yaml")
		require.NoError(t, err)
		for _, target := range Targets {
			t.Run(name+"/"+string(target), func(t *testing.T) {
				o := goldenOptions(target, data)
				if name == "outside" {
					o.ShadowlabHost, o.Gateway, o.Hosts = "10.0.0.7", "mesh", []string{"orders.shop.svc.cluster.local"}
				}
				got, err := Render(p, o)
				require.NoError(t, err)
				again, err := Render(p, o)
				require.NoError(t, err)
				require.Equal(t, string(got), string(again), "rendering is deterministic")
				path := filepath.Join("testdata", "golden", name+"."+string(target)+".yaml")
				if *update {
					require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
					require.NoError(t, os.WriteFile(path, got, 0o644))
				}
				want, err := os.ReadFile(path)
				require.NoError(t, err, "missing golden file; run go test ./render -update")
				assert.Equal(t, string(want), string(got), "%s differs (run go test ./render -update and review the diff)", path)
			})
		}
	}
}

// TestRefused: what a target cannot express faithfully is refused, every
// problem at once, naming the route.
func TestRefused(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "bad-order.yaml"))
	require.NoError(t, err)
	p, err := policy.Parse(data, "bad-order.yaml")
	require.NoError(t, err)
	_, err = Render(p, goldenOptions(GatewayAPI, data))
	require.Error(t, err)
	for _, want := range []string{
		`routes "everything" and "orders" overlap`,
		`routes "everything" and "not-beta" overlap`,
		`route "not-beta": header x-beta: the Gateway API has no inverted or absent-header match`,
	} {
		assert.Contains(t, err.Error(), want)
	}
	// Istio keeps the policy's order and has withoutHeaders: it renders.
	_, err = Render(p, goldenOptions(Istio, data))
	require.NoError(t, err)

	o := goldenOptions(Istio, data)
	o.Selector, o.Target = nil, "nginx"
	_, err = Render(p, o)
	require.ErrorContains(t, err, `target "nginx": want one of istio, gateway-api, envoy-gateway`)

	mesh, err := os.ReadFile(filepath.Join("testdata", "mesh.yaml"))
	require.NoError(t, err)
	pm, err := policy.Parse(mesh, "mesh.yaml")
	require.NoError(t, err)
	o = goldenOptions(Istio, mesh)
	o.Selector, o.WasmSHA256 = nil, ""
	_, err = Render(pm, o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "istio: --selector is required")
	assert.Contains(t, err.Error(), "the plugin's SHA-256 is needed")
	o = goldenOptions(GatewayAPI, mesh)
	o.WasmSHA256 = "" // the core Gateway API runs no plugin
	_, err = Render(pm, o)
	require.NoError(t, err)
	assert.False(t, strings.Contains(string(mesh), "127.0.0.1"))

	// A canary is served through shadowlab's own xDS only.
	canary := strings.Replace(string(mesh), "shadow: {service: orders-v2, percent: 100, unsafeMethods: true}",
		"shadow: {service: orders-v2, percent: 100, unsafeMethods: true}\n    rollout: {stage: canary, percent: 10}", 1)
	require.NotEqual(t, string(mesh), canary)
	pc, err := policy.Parse([]byte(canary), "mesh.yaml")
	require.NoError(t, err)
	_, err = Render(pc, goldenOptions(Istio, []byte(canary)))
	require.ErrorContains(t, err, `route "orders-write": rollout stage canary is served through shadowlab's own xDS only`)
}

// TestIstioHeaderPresence: the four ways a policy says a header must be
// there or not become Istio's name-only matches, in headers or
// withoutHeaders.
func TestIstioHeaderPresence(t *testing.T) {
	p, err := policy.Parse([]byte(`version: 1
listeners: [{name: l, address: "127.0.0.1:1"}]
services: {a: {endpoints: ["a.shop:80"]}}
routes:
  - {name: r1, match: {pathPrefix: /1, headers: [{name: x-p, present: true}]}, primary: a}
  - {name: r2, match: {pathPrefix: /2, headers: [{name: x-p, present: true, invert: true}]}, primary: a}
  - {name: r3, match: {pathPrefix: /3, headers: [{name: x-p, present: false}]}, primary: a}
  - {name: r4, match: {pathPrefix: /4, headers: [{name: x-p, present: false, invert: true}]}, primary: a}
`), "p.yaml")
	require.NoError(t, err)
	out, err := Render(p, Options{Target: Istio, Selector: map[string]string{"app": "a"}})
	require.NoError(t, err)
	got := string(out)
	for _, want := range []string{
		"name: r1\n      match:\n        - uri:\n            prefix: /1\n          headers:\n            x-p: {}",
		"name: r2\n      match:\n        - uri:\n            prefix: /2\n          withoutHeaders:\n            x-p: {}",
		"name: r3\n      match:\n        - uri:\n            prefix: /3\n          withoutHeaders:\n            x-p: {}",
		"name: r4\n      match:\n        - uri:\n            prefix: /4\n          headers:\n            x-p: {}",
	} {
		assert.Contains(t, got, want)
	}
}

// TestNothingToMirror: a route of unsafe methods only that opts in to them
// without capture mirrors nothing (no mesh API marks a mirror alone as a
// dry run): no mirroring variant, no capture plugin. (Without opting in,
// the policy refuses such a route.)
func TestNothingToMirror(t *testing.T) {
	p, err := policy.Parse([]byte(`version: 1
listeners: [{name: l, address: "127.0.0.1:1"}]
services: {a: {endpoints: ["a.shop:80"]}, b: {endpoints: ["b.shop:80"]}}
routes:
  - {name: dark, match: {pathPrefix: /w, methods: [POST]}, primary: a, shadow: {service: b, percent: 100, unsafeMethods: true, capture: false}}
`), "p.yaml")
	require.NoError(t, err)
	for _, target := range Targets {
		out, err := Render(p, goldenOptions(target, nil))
		require.NoError(t, err, target)
		got := string(out)
		for _, absent := range []string{"RequestMirror", "mirrors:", ".sampled", "shadowlab-capture", "WasmPlugin", wire.HeaderSample + `"`} {
			assert.NotContains(t, got, absent, "%s", target)
		}
	}
}
