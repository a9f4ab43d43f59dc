// Package istioproof runs Istio's own translation (istiod's code, through
// the fake discovery server Istio's tests use; no Kubernetes API server,
// no processes) on shadowlab's rendered Istio goldens, for an ingress
// gateway proxy, and checks what the rendering relies on. It is a module
// of its own: Istio and its dependencies stay out of shadowlab's.
package istioproof

import (
	"os"
	"slices"
	"strings"
	"testing"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/test/xds"
)

// around is what a cluster has besides shadowlab's objects: the Istio
// Gateway the VirtualService binds to, and the Kubernetes Services of the
// policy's services.
const around = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 8080, name: http, protocol: HTTP}
      hosts: ["*/shop.example.com"]
`

const services = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: orders-legacy, namespace: shop}
spec:
  ports: [{name: http, port: 8080}]
  selector: {app: orders-legacy}
---
apiVersion: v1
kind: Service
metadata: {name: orders-v2, namespace: shop}
spec:
  ports: [{name: http, port: 8080}]
  selector: {app: orders-v2}
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  ports: [{name: http, port: 8080}]
  selector: {app: orders-legacy}
`

// TestIstioTranslatesTheGoldens: an ingress gateway (mesh.istio.yaml), and
// sidecars calling orders.shop with shadowlab outside the mesh at an IP
// (outside.istio.yaml, --gateway mesh).
func TestIstioTranslatesTheGoldens(t *testing.T) {
	t.Run("gateway", func(t *testing.T) { translate(t, "mesh", model.Router) })
	t.Run("sidecar", func(t *testing.T) { translate(t, "outside", model.SidecarProxy) })
}

func translate(t *testing.T, name string, kind model.NodeType) {
	golden, err := os.ReadFile("../testdata/golden/" + name + ".istio.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shadowlab := "shadowlab.shadowlab.svc.cluster.local"
	if kind == model.SidecarProxy {
		shadowlab = "shadowlab.shadowlab.internal" // the ServiceEntry rendered for shadowlab at an IP
	}
	var istioDocs, kubeDocs []string
	wasmPlugins := 0
	for _, d := range strings.Split(string(golden), "\n---\n") {
		if strings.Contains(d, "istio.io/") {
			istioDocs = append(istioDocs, d)
			if strings.Contains(d, "kind: WasmPlugin") {
				wasmPlugins++
			}
		} else {
			kubeDocs = append(kubeDocs, d)
		}
	}
	// NewFakeDiscoveryServer fails the test if Istio's validation refuses
	// an object.
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           strings.Join(istioDocs, "\n---\n") + "\n---\n" + around,
		KubernetesObjectString: strings.Join(kubeDocs, "\n---\n") + "\n---\n" + services,
	})
	labels := map[string]string{"app": "orders", "istio": "ingressgateway"}
	p := s.SetupProxy(&model.Proxy{
		Type: kind, ID: "caller-0.default", DNSDomain: "default.svc.cluster.local", ConfigNamespace: "default", IPAddresses: []string{"10.9.9.9"},
		Labels: labels, Metadata: &model.NodeMetadata{IstioVersion: "1.32.0", Labels: labels, Namespace: "default"},
	})

	clusters := map[string]bool{}
	for _, c := range s.Clusters(p) {
		clusters[c.Name] = true
	}
	// Every route and mirror goes to a cluster Istio made; routes are named
	// after the VirtualService's http routes, as the plugins' envoy_routes
	// and the EnvoyFilter's route patches expect.
	names := map[string]int{}
	perFilter := map[string]bool{}
	for _, rc := range s.Routes(p) {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				names[rt.Name]++
				if c := rt.GetRoute().GetCluster(); !clusters[c] {
					t.Errorf("route %s: cluster %q does not exist (have %v)", rt.Name, c, keys(clusters))
				}
				for _, m := range rt.GetRoute().GetRequestMirrorPolicies() {
					if !clusters[m.Cluster] {
						t.Errorf("route %s: mirror cluster %q does not exist", rt.Name, m.Cluster)
					}
				}
				if _, ok := rt.TypedPerFilterConfig["shadowlab.admission.global"]; ok {
					perFilter[rt.Name] = true
				}
			}
		}
	}
	for _, want := range []string{"orders-dark.sampled", "orders-dark", "orders-read.sampled", "orders-read", "orders-write.sampled", "orders-write", "rest"} {
		if names[want] == 0 {
			t.Errorf("no Envoy route named %q (have %v)", want, names)
		}
	}
	if !perFilter["orders-write"] || !perFilter["orders-write.sampled"] || perFilter["orders-read"] {
		t.Errorf("global admission switched on for %v, want orders-write and orders-write.sampled only", perFilter)
	}
	for _, c := range []string{"outbound|18003||" + shadowlab, "outbound|18002||" + shadowlab, "outbound|18080||" + shadowlab} {
		if !clusters[c] {
			t.Errorf("no cluster %s: the plugins report there, the mirror and ext_proc go there", c)
		}
	}

	// The ext_proc filter is in the chain, off until a route switches it on
	// (with sidecars, on the outbound HTTP listeners).
	found := false
	for _, l := range s.Listeners(p) {
		if kind == model.SidecarProxy && l.Name != "0.0.0.0_8080" {
			continue
		}
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				m := &hcm.HttpConnectionManager{}
				if !f.GetTypedConfig().MessageIs(m) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				i := slices.IndexFunc(m.HttpFilters, func(h *hcm.HttpFilter) bool { return h.Name == "shadowlab.admission.global" })
				if i >= 0 {
					found = true
					if !m.HttpFilters[i].Disabled || m.HttpFilters[i+1].Name != "envoy.filters.http.router" {
						t.Errorf("the ext_proc filter: disabled %v, before %s", m.HttpFilters[i].Disabled, m.HttpFilters[i+1].Name)
					}
				}
			}
		}
	}
	if !found {
		t.Error("the EnvoyFilter's ext_proc filter is in no listener")
	}

	// The WasmPlugins apply to the gateway.
	n := 0
	for _, exts := range s.PushContext().TrafficExtensions(p) {
		n += len(exts)
	}
	if n != wasmPlugins {
		t.Errorf("%d plugins apply to the gateway, want the %d WasmPlugins", n, wasmPlugins)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
