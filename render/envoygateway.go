package render

import (
	"fmt"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// envoyGateway renders for Envoy Gateway: the Gateway API routes to
// Backends (IP or DNS endpoints, so it also runs without Kubernetes, in
// Envoy Gateway's standalone mode), an EnvoyExtensionPolicy per route for
// capture and admission, and an EnvoyPatchPolicy adding the cluster the
// plugin reports to (Envoy Gateway names its clusters itself).
func (r *renderer) envoyGateway() {
	r.checkOrder()
	for _, s := range r.p.Services {
		r.add(r.backend("svc-"+kname(s.Name), s.Endpoints, s.Protocol == policy.ProtocolHTTP2), fmt.Sprintf("Policy service %q.", s.Name))
		if s.TLS != nil {
			r.fail("service %q: TLS to the upstream is not rendered for envoy-gateway yet (BackendTLSPolicy)", s.Name)
		}
	}
	host := r.shadowlabHost()
	r.add(r.backend("shadowlab-gateway", []string{hostPort(host, r.o.GatewayPort)}, false), "shadowlab's gateway: mirrors go here; it forwards them to the shadow service and records its answers.")
	needAPI, needAdm := false, false
	to := func(s *policy.Service) M {
		return M{{"group", "gateway.envoyproxy.io"}, {"kind", "Backend"}, {"name", "svc-" + kname(s.Name)}}
	}
	for _, rt := range r.p.Routes {
		var mirror []M
		if mirrors(rt) {
			mirror = r.mirrorMatches(rt)
			needAPI = needAPI || rt.Shadow.Capture
		}
		r.add(r.httpRoute(rt, to, mirror), fmt.Sprintf("Policy route %q.", rt.Name))
		if ext := r.extensionPolicy(rt); ext != nil {
			r.add(ext, fmt.Sprintf("Capture and admission on route %q.", rt.Name))
		}
		if rt.Admission != nil {
			needAPI = needAPI || rt.Admission.Scope == wire.ScopeLocal
			needAdm = needAdm || rt.Admission.Scope == wire.ScopeGlobal
		}
	}
	if needAdm {
		r.add(r.backend("shadowlab-admission", []string{hostPort(host, r.o.AdmissionPort)}, true), "shadowlab's global admission server (ext_proc, gRPC).")
	}
	if needAPI {
		r.add(r.reportClusterPatch(), "The cluster shadowlab's plugin sends captured answers and admission reports to (its API). Envoy Gateway needs extensionApis.enableEnvoyPatchPolicy.")
	}
	r.deployment()
	r.note("Capture is tied to the mirror: shadowlab's plugin samples each route's percentage by a hash of x-request-id and sets %s on the sampled requests; Envoy then picks the route again, and the route's \"sampled\" rule mirrors every request it matches. A client that sends the header itself gets it removed.", wire.HeaderSample)
	r.note("Shadow requests reach the shadow service marked by shadowlab's gateway (x-shadowlab-shadow, and x-shadowlab-dry-run for unsafe methods), not by Envoy.")
}

func hostPort(host string, port int) string { return host + ":" + strconv.Itoa(port) }

// backend is an Envoy Gateway Backend with the endpoints (IP or DNS).
func (r *renderer) backend(name string, endpoints []string, h2c bool) M {
	var eps []M
	for _, ep := range endpoints {
		host, port := endpoint(ep)
		if isIP(host) {
			eps = append(eps, M{{"ip", M{{"address", host}, {"port", port}}}})
		} else {
			eps = append(eps, M{{"fqdn", M{{"hostname", host}, {"port", port}}}})
		}
	}
	spec := M{{"endpoints", eps}}
	if h2c {
		spec = append(spec, KV{"appProtocols", []string{"gateway.envoyproxy.io/h2c"}})
	}
	return M{{"apiVersion", "gateway.envoyproxy.io/v1alpha1"}, {"kind", "Backend"},
		{"metadata", M{{"name", name}, {"namespace", r.o.RouteNamespace}}}, {"spec", spec}}
}

// extensionPolicy attaches route rt's capture and admission to its
// HTTPRoute; nil when it has neither.
func (r *renderer) extensionPolicy(rt *policy.Route) M {
	var wasm []M
	code := M{{"type", "HTTP"}, {"http", M{{"url", r.wasmURL()}, {"sha256", r.o.WasmSHA256}}}}
	if rt.Admission != nil && rt.Admission.Scope == wire.ScopeLocal {
		cfg := localAdmission(rt, xds.APICluster, nil)
		wasm = append(wasm, M{{"name", "shadowlab-admission"}, {"rootID", wire.AdmissionRootID}, {"code", code},
			{"config", jsonNode(cfg.AppendJSON(nil))}, {"failOpen", true}})
	}
	if mirrors(rt) && rt.Shadow.Capture {
		cfg := sampledCapture(rt, xds.APICluster, nil)
		wasm = append(wasm, M{{"name", "shadowlab-capture"}, {"rootID", wire.CaptureRootID}, {"code", code},
			{"config", jsonNode(cfg.AppendJSON(nil))}, {"failOpen", true}})
	}
	spec := M{{"targetRefs", []M{{{"group", "gateway.networking.k8s.io"}, {"kind", "HTTPRoute"}, {"name", kname(rt.Name)}}}}}
	if rt.Admission != nil && rt.Admission.Scope == wire.ScopeGlobal {
		hold := rt.Admission.Budget.MaxDelay + policy.AdmissionHoldMargin
		spec = append(spec, KV{"extProc", []M{{
			{"backendRefs", []M{{{"group", "gateway.envoyproxy.io"}, {"kind", "Backend"}, {"name", "shadowlab-admission"}}}},
			{"processingMode", M{{"request", M{}}}},
			{"messageTimeout", durationString(hold)},
			{"failOpen", true},
		}}})
		r.note("Global admission (%s): Envoy Gateway's extProc cannot set a per-route gRPC metadata nor override_message_timeout, so serve finds the route from the request (the policy's first match) and the filter's messageTimeout is the longest hold plus %s: a shadowlab that accepts the stream and then hangs holds a request that long before it passes (one that is down or refuses passes it at once).", rt.Name, policy.AdmissionHoldMargin)
	}
	if len(wasm) > 0 {
		spec = append(spec, KV{"wasm", wasm})
	}
	if len(spec) == 1 {
		return nil
	}
	return M{{"apiVersion", "gateway.envoyproxy.io/v1alpha1"}, {"kind", "EnvoyExtensionPolicy"},
		{"metadata", M{{"name", kname(rt.Name) + "-shadowlab"}, {"namespace", r.o.RouteNamespace}}}, {"spec", spec}}
}

func durationString(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + "s"
	}
	return strconv.Itoa(int(d/time.Millisecond)) + "ms"
}

// reportClusterPatch adds xds.APICluster, shadowlab's API, to the
// Gateway's Envoy: the cluster is built as a go-control-plane proto and
// validated before it is rendered.
func (r *renderer) reportClusterPatch() M {
	host, port := r.shadowlabHost(), uint32(r.o.APIPort)
	kind := clusterv3.Cluster_STRICT_DNS
	if isIP(host) {
		kind = clusterv3.Cluster_STATIC
	}
	c := &clusterv3.Cluster{
		Name:                 xds.APICluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		ConnectTimeout:       durationpb.New(250 * time.Millisecond),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: xds.APICluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}},
			}}}},
		}}},
	}
	ns, gw := r.parent()
	return M{{"apiVersion", "gateway.envoyproxy.io/v1alpha1"}, {"kind", "EnvoyPatchPolicy"},
		{"metadata", M{{"name", "shadowlab-api"}, {"namespace", ns}}},
		{"spec", M{
			{"targetRef", M{{"group", "gateway.networking.k8s.io"}, {"kind", "Gateway"}, {"name", gw}}},
			{"type", "JSONPatch"},
			{"jsonPatches", []M{{
				{"type", "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
				{"name", xds.APICluster},
				{"operation", M{{"op", "add"}, {"path", ""}, {"value", r.protoNode(c)}}},
			}}},
		}}}
}
