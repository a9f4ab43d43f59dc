package render

import (
	"fmt"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// istio renders for Istio: one VirtualService whose http routes keep the
// policy's order (Istio's first match wins, as the policy's), a
// ServiceEntry per service with IP endpoints, a WasmPlugin per route for
// capture and local admission (a WasmPlugin applies to a whole workload,
// so each instance handles only its route's Envoy routes, by name), and
// for global admission an EnvoyFilter that adds the ext_proc filter off
// and switches it on, with the route's gRPC metadata, on the route's
// Envoy routes.
func (r *renderer) istio() {
	var http []M
	hasGlobal := false
	for _, rt := range r.p.Routes {
		if mirrors(rt) {
			http = append(http, r.istioMirrored(rt))
		}
		http = append(http, r.istioRoute(rt, rt.Name, r.istioMatches(rt, nil, nil), nil))
		for _, p := range r.wasmPlugins(rt) {
			r.add(p, fmt.Sprintf("shadowlab's plugin on route %q.", rt.Name))
		}
		hasGlobal = hasGlobal || rt.Admission != nil && rt.Admission.Scope == wire.ScopeGlobal
	}
	for _, s := range r.p.Services {
		if se := r.serviceEntry(s); se != nil {
			r.add(se, fmt.Sprintf("Policy service %q (IP endpoints): a mesh service of its own.", s.Name))
		}
	}
	spec := M{}
	hosts := r.o.Hosts
	if len(hosts) == 0 {
		hosts = []string{"*"}
	}
	spec = append(spec, KV{"hosts", hosts})
	if r.o.Gateway != "mesh" {
		ns, gw := r.parent()
		spec = append(spec, KV{"gateways", []string{ns + "/" + gw}})
	} else if len(r.o.Hosts) == 0 {
		r.fail("istio: with --gateway mesh (sidecars), --host is required: the service host the sidecars route for")
	}
	spec = append(spec, KV{"http", http})
	r.add(M{{"apiVersion", "networking.istio.io/v1"}, {"kind", "VirtualService"},
		{"metadata", M{{"name", "shadowlab"}, {"namespace", r.o.RouteNamespace}}}, {"spec", spec}},
		"The policy's routes, in its order. Each mirrored route has a \"sampled\" variant first: it matches what shadowlab's plugin sampled and mirrors all of it to shadowlab's gateway.")
	if hasGlobal {
		r.add(r.extProcFilter(), "Global admission: shadowlab's ext_proc filter, off except on the routes that switch it on.")
	}
	if r.o.ShadowlabHost != "" {
		r.add(r.shadowlabEntry(), "shadowlab, running outside the mesh, as a mesh service: Envoy reaches it through this entry's clusters.")
	}
	if r.o.ShadowlabHost == "" {
		r.add(M{{"apiVersion", "security.istio.io/v1"}, {"kind", "PeerAuthentication"},
			{"metadata", M{{"name", "shadowlab"}, {"namespace", r.o.Namespace}}},
			{"spec", M{{"mtls", M{{"mode", "STRICT"}}}}}},
			"shadowlab's ports accept mesh mTLS only: the sidecar authenticates every peer, and serve runs with --insecure-behind-authenticating-proxy.")
	}
	r.deployment()
	r.note("Capture is tied to the mirror: shadowlab's plugin samples each route's percentage by a hash of x-request-id and sets %s on the sampled requests; Envoy then picks the route again and the route's sampled variant mirrors every request it matches. A client that sends the header itself gets it removed.", wire.HeaderSample)
	r.note("Shadow requests reach the shadow service marked by shadowlab's gateway (x-shadowlab-shadow, and x-shadowlab-dry-run for unsafe methods): Istio's mirror cannot add headers to the mirror alone. Routes that mirror without capture go straight to the shadow service, unmarked, and safe methods only.")
	r.note("Istio names each Envoy route after its VirtualService http route (the names below); the plugins act only on their own route's names. Waypoints (ambient mode) refuse EnvoyFilter: global admission needs sidecars or a gateway.")
}

// istioHost is shadowlab's host in the mesh: its Service, a DNS name it
// runs at, or (for an IP) the name of the ServiceEntry rendered for it.
func (r *renderer) istioHost() string {
	if isIP(r.o.ShadowlabHost) {
		return "shadowlab." + r.o.Namespace + ".internal"
	}
	return r.shadowlabHost()
}

// shadowlabEntry makes shadowlab running elsewhere a mesh service.
func (r *renderer) shadowlabEntry() M {
	resolution, spec := "DNS", M{{"hosts", []string{r.istioHost()}}, {"location", "MESH_EXTERNAL"}}
	if isIP(r.o.ShadowlabHost) {
		resolution = "STATIC"
	}
	spec = append(spec, KV{"resolution", resolution}, KV{"ports", []M{
		{{"number", r.o.GatewayPort}, {"name", "http-gateway"}, {"protocol", "HTTP"}},
		{{"number", r.o.AdmissionPort}, {"name", "grpc-admission"}, {"protocol", "GRPC"}},
		{{"number", r.o.APIPort}, {"name", "http-api"}, {"protocol", "HTTP"}},
	}})
	if isIP(r.o.ShadowlabHost) {
		spec = append(spec, KV{"endpoints", []M{{{"address", r.o.ShadowlabHost}}}})
	}
	return M{{"apiVersion", "networking.istio.io/v1"}, {"kind", "ServiceEntry"},
		{"metadata", M{{"name", "shadowlab"}, {"namespace", r.o.RouteNamespace}}}, {"spec", spec}}
}

// istioRoute is one http route of the VirtualService.
func (r *renderer) istioRoute(rt *policy.Route, name string, match []M, mirror M) M {
	h := M{{"name", name}, {"match", match}, {"route", []M{{{"destination", r.destination(rt.Primary)}}}}, {"timeout", rt.Timeout.String()}}
	if mirror != nil {
		h = append(h, KV{"mirrors", []M{mirror}})
	}
	return h
}

// istioMirrored is route rt's sampled variant.
func (r *renderer) istioMirrored(rt *policy.Route) M {
	var extra []M
	if rt.Shadow.Capture {
		extra = append(extra, M{{"name", wire.HeaderSample}, {"exact", wire.MarkOn}})
	}
	if t := rt.Shadow.Tenants; t != nil {
		extra = append(extra, M{{"name", t.Header}, {"regex", tenantRegex(t)}})
	}
	methods, any, _ := mirroredMethods(rt)
	if any {
		methods = nil
	}
	mirror := M{{"destination", M{{"host", r.istioHost()}, {"port", M{{"number", r.o.GatewayPort}}}}}}
	if !rt.Shadow.Capture {
		mirror = M{{"destination", r.destination(rt.Shadow.Service)}}
		if rt.Shadow.PerMillion < 1_000_000 {
			mirror = append(mirror, KV{"percentage", M{{"value", rt.Shadow.Percent}}})
		}
	}
	h := r.istioRoute(rt, rt.Name+".sampled", r.istioMatches(rt, methods, extra), mirror)
	if rt.Shadow.Capture {
		// The sample mark is for Envoy's route choice only.
		h = append(h, KV{"headers", M{{"request", M{{"remove", []string{wire.HeaderSample}}}}}})
	}
	return h
}

// istioMatches renders rt's match (methods override the route's when
// given), with extra header matches.
func (r *renderer) istioMatches(rt *policy.Route, methods []string, extra []M) []M {
	m := rt.Match
	var uri M
	switch {
	case m.Path != "":
		uri = M{{"exact", m.Path}}
	case m.PathRegex != "":
		uri = M{{"regex", m.PathRegex}}
	default:
		uri = M{{"prefix", m.PathPrefix}}
	}
	var headers M
	var without M
	for _, h := range m.Headers {
		var v M
		switch {
		case h.Present != nil:
			// Present (or absent, inverted): a name-only match is
			// presence in Istio, and in withoutHeaders absence.
			if *h.Present != h.Invert {
				headers = append(headers, KV{h.Name, M{}})
			} else {
				without = append(without, KV{h.Name, M{}})
			}
			continue
		case h.Regex != "":
			v = M{{"regex", h.Regex}}
		case h.Prefix != "":
			v = M{{"prefix", h.Prefix}}
		default:
			v = M{{"exact", h.Exact}}
		}
		if h.Invert {
			without = append(without, KV{h.Name, v})
		} else {
			headers = append(headers, KV{h.Name, v})
		}
	}
	for _, e := range extra {
		headers = append(headers, KV{e[0].V.(string), M{e[1]}})
	}
	if methods == nil {
		methods = m.Methods
	}
	one := func(method string) M {
		out := M{{"uri", uri}}
		if method != "" {
			out = append(out, KV{"method", M{{"exact", method}}})
		}
		if len(headers) > 0 {
			out = append(out, KV{"headers", headers})
		}
		if len(without) > 0 {
			out = append(out, KV{"withoutHeaders", without})
		}
		return out
	}
	if len(methods) == 0 {
		return []M{one("")}
	}
	var out []M
	for _, method := range methods {
		out = append(out, one(method))
	}
	return out
}

// destination is where Istio sends a service's requests: its DNS name, or
// the ServiceEntry rendered for its IPs.
func (r *renderer) destination(s *policy.Service) M {
	host, port := endpoint(s.Endpoints[0])
	if isIP(host) {
		host = r.entryHost(s)
	} else {
		host = r.serviceFQDN(host)
	}
	if !isIP(host) && len(s.Endpoints) > 1 {
		r.fail("service %q: several DNS endpoints; the istio target routes to one host per service (a Kubernetes Service or ServiceEntry)", s.Name)
	}
	if s.TLS != nil {
		r.fail("service %q: TLS to the upstream is not rendered for istio (use a DestinationRule of your own)", s.Name)
	}
	return M{{"host", host}, {"port", M{{"number", port}}}}
}

// serviceFQDN is a DNS endpoint as Istio names the Kubernetes Service it
// stands for: Istio takes any name with a dot as whole, so "name" and
// "name.namespace" (what a pod resolves) become
// "name.namespace.svc.cluster.local"; "….svc" gets its cluster domain.
// Other names are left as they are (an external host needs a ServiceEntry
// of its own).
func (r *renderer) serviceFQDN(host string) string {
	labels := strings.Split(host, ".")
	switch {
	case len(labels) == 1:
		return host + "." + r.o.RouteNamespace + ".svc.cluster.local"
	case len(labels) == 2:
		return host + ".svc.cluster.local"
	case strings.HasSuffix(host, ".svc"):
		return host + ".cluster.local"
	}
	return host
}

func (r *renderer) entryHost(s *policy.Service) string {
	return kname(s.Name) + ".shadowlab.internal"
}

// serviceEntry makes a service with IP endpoints a mesh service; nil for
// a service that already has a DNS name.
func (r *renderer) serviceEntry(s *policy.Service) M {
	host, port := endpoint(s.Endpoints[0])
	if !isIP(host) {
		return nil
	}
	var eps []M
	for _, ep := range s.Endpoints {
		h, p := endpoint(ep)
		if !isIP(h) || p != port {
			r.fail("service %q: endpoints mix IPs and names or ports; a ServiceEntry takes IPs on one port", s.Name)
		}
		eps = append(eps, M{{"address", h}})
	}
	protocol := "HTTP"
	if s.Protocol == policy.ProtocolHTTP2 {
		protocol = "HTTP2"
	}
	return M{{"apiVersion", "networking.istio.io/v1"}, {"kind", "ServiceEntry"},
		{"metadata", M{{"name", "svc-" + kname(s.Name)}, {"namespace", r.o.RouteNamespace}}},
		{"spec", M{
			{"hosts", []string{r.entryHost(s)}},
			{"location", "MESH_EXTERNAL"},
			{"resolution", "STATIC"},
			{"ports", []M{{{"number", port}, {"name", strings.ToLower(protocol)}, {"protocol", protocol}}}},
			{"endpoints", eps},
		}}}
}

// wasmPlugins are route rt's WasmPlugins, local admission (phase AUTHZ:
// a held request is held before the capture sees it) and capture, each
// acting only on the route's Envoy routes and reporting to the API through
// the cluster Istio makes of shadowlab's Service.
func (r *renderer) wasmPlugins(rt *policy.Route) []M {
	report := "outbound|" + fmt.Sprint(r.o.APIPort) + "||" + r.istioHost()
	names := r.envoyRouteNames(rt)
	plugin := func(suffix, root, phase string, config []byte) M {
		p := M{{"apiVersion", "extensions.istio.io/v1alpha1"}, {"kind", "WasmPlugin"},
			{"metadata", M{{"name", kname(rt.Name) + "-" + suffix}, {"namespace", r.o.RouteNamespace}}},
			{"spec", M{
				{"selector", M{{"matchLabels", r.o.Selector}}},
				{"url", r.wasmURL()},
				{"sha256", r.o.WasmSHA256},
				{"pluginName", root},
				{"phase", phase},
				{"failStrategy", "FAIL_OPEN"},
				{"pluginConfig", jsonNode(config)},
			}}}
		if r.o.Gateway == "mesh" {
			// With sidecars the routes are the callers' outbound ones.
			spec := p[3].V.(M)
			p[3].V = append(spec, KV{"match", []M{{{"mode", "CLIENT"}}}})
		}
		return p
	}
	var out []M
	if rt.Admission != nil && rt.Admission.Scope == wire.ScopeLocal {
		out = append(out, plugin("admission", wire.AdmissionRootID, "AUTHZ", localAdmission(rt, report, names).AppendJSON(nil)))
	}
	if mirrors(rt) && rt.Shadow.Capture {
		out = append(out, plugin("capture", wire.CaptureRootID, "UNSPECIFIED_PHASE", sampledCapture(rt, report, names).AppendJSON(nil)))
	}
	return out
}

// extProcFilter is the EnvoyFilter for global admission: shadowlab's own
// ext_proc filter (xds.AdmissionExtProc: request headers only, only
// x-request-id and the key headers sent, failing open) inserted before the
// router, disabled, and switched on per Envoy route as the translator does
// it (xds.AdmissionPerRoute: the policy route's name as gRPC metadata).
func (r *renderer) extProcFilter() M {
	cluster := "outbound|" + fmt.Sprint(r.o.AdmissionPort) + "||" + r.istioHost()
	routes := r.p.AdmissionRoutes(wire.ScopeGlobal)
	ep := xds.AdmissionExtProc(routes, cluster)
	r.check(ep)
	typed, err := anypb.New(ep)
	if err != nil {
		r.fail("the ext_proc filter: %v", err)
	}
	filter := &hcmv3.HttpFilter{Name: xds.AdmissionExtProcFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: typed}, Disabled: true}
	patches := []M{{
		{"applyTo", "HTTP_FILTER"},
		{"match", M{{"context", r.istioContext()}, {"listener", M{{"filterChain", M{{"filter", M{{"name", "envoy.filters.network.http_connection_manager"}, {"subFilter", M{{"name", "envoy.filters.http.router"}}}}}}}}}}},
		{"patch", M{{"operation", "INSERT_BEFORE"}, {"value", r.protoNode(filter)}}},
	}}
	for _, rt := range routes {
		// A map of Anys: each value keeps its "@type".
		per := xds.AdmissionPerRoute(rt)[xds.AdmissionExtProcFilter]
		for _, name := range r.envoyRouteNames(rt) {
			patches = append(patches, M{
				{"applyTo", "HTTP_ROUTE"},
				{"match", M{{"context", r.istioContext()}, {"routeConfiguration", M{{"vhost", M{{"route", M{{"name", name}}}}}}}}},
				{"patch", M{{"operation", "MERGE"}, {"value", M{{"typed_per_filter_config", M{{xds.AdmissionExtProcFilter, r.protoNode(per)}}}}}}},
			})
		}
	}
	return M{{"apiVersion", "networking.istio.io/v1alpha3"}, {"kind", "EnvoyFilter"},
		{"metadata", M{{"name", "shadowlab-admission"}, {"namespace", r.o.RouteNamespace}}},
		{"spec", M{{"workloadSelector", M{{"labels", r.o.Selector}}}, {"configPatches", patches}}}}
}

// istioContext is where the EnvoyFilter patches apply.
func (r *renderer) istioContext() string {
	if r.o.Gateway == "mesh" {
		return "SIDECAR_OUTBOUND" // the VirtualService routes the callers' outbound traffic
	}
	return "GATEWAY"
}

// envoyRouteNames are the Envoy routes Istio makes of policy route rt.
func (r *renderer) envoyRouteNames(rt *policy.Route) []string {
	if mirrors(rt) {
		return []string{rt.Name + ".sampled", rt.Name}
	}
	return []string{rt.Name}
}
