package render

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// The Gateway API side, shared by the gateway-api and envoy-gateway
// targets: one HTTPRoute per policy route. Matching differs from the
// policy's in two ways, handled here:
//
//   - a policy pathPrefix is a string prefix (Envoy's), a Gateway API
//     PathPrefix matches whole path segments: it is rendered as the
//     RegularExpression QuoteMeta(prefix)+".*", which Envoy matches the
//     same way;
//   - the policy's first route wins, the Gateway API's most specific one
//     (path type Exact > RegularExpression > PathPrefix, then the longer
//     path, then more header matches, then a method): overlapping routes
//     whose policy order the Gateway API would not keep are refused.

// backendRef names where a rule sends requests.
type backendRef func(s *policy.Service) M

// httpRoute renders route rt. mirrored is the variant that mirrors (nil:
// none); it returns the HTTPRoute.
func (r *renderer) httpRoute(rt *policy.Route, to backendRef, mirror []M) M {
	ns, gw := r.parent()
	meta := M{{"name", kname(rt.Name)}, {"namespace", r.o.RouteNamespace}, {"labels", map[string]string{"app.kubernetes.io/managed-by": "shadowlab", "shadowlab.dev/route": kname(rt.Name)}}}
	spec := M{{"parentRefs", []M{{{"name", gw}, {"namespace", ns}}}}}
	if len(r.o.Hosts) > 0 {
		spec = append(spec, KV{"hostnames", r.o.Hosts})
	}
	timeouts := M{{"request", rt.Timeout.String()}}
	var rules []M
	plain := r.matches(rt, nil, nil)
	if len(mirror) > 0 && sameYAML(mirror, plain) {
		// Every request of the route is mirrored: one rule, or two equal
		// rules would tie.
		return M{{"apiVersion", "gateway.networking.k8s.io/v1"}, {"kind", "HTTPRoute"}, {"metadata", meta}, {"spec", append(spec, KV{"rules", []M{{
			{"name", "sampled"},
			{"matches", plain},
			{"filters", r.mirrorFilters(rt, to)},
			{"backendRefs", []M{to(rt.Primary)}},
			{"timeouts", timeouts},
		}}})}}
	}
	if len(mirror) > 0 {
		rules = append(rules, M{
			{"name", "sampled"},
			{"matches", mirror},
			{"filters", r.mirrorFilters(rt, to)},
			{"backendRefs", []M{to(rt.Primary)}},
			{"timeouts", timeouts},
		})
	}
	rules = append(rules, M{
		{"name", "primary"},
		{"matches", plain},
		{"backendRefs", []M{to(rt.Primary)}},
		{"timeouts", timeouts},
	})
	spec = append(spec, KV{"rules", rules})
	return M{{"apiVersion", "gateway.networking.k8s.io/v1"}, {"kind", "HTTPRoute"}, {"metadata", meta}, {"spec", spec}}
}

// mirrorFilters mirror a sampled request: to shadowlab's gateway when the
// route captures (the plugin sampled it; every such request is mirrored),
// else straight to the shadow service at the route's percentage.
func (r *renderer) mirrorFilters(rt *policy.Route, to backendRef) []M {
	if rt.Shadow.Capture {
		// The sample mark is for Envoy's route choice only: the primary
		// service never sees it (the gateway drops it from the mirror).
		return []M{
			{{"type", "RequestHeaderModifier"}, {"requestHeaderModifier", M{{"remove", []string{wire.HeaderSample}}}}},
			{{"type", "RequestMirror"}, {"requestMirror", M{{"backendRef", r.gatewayBackend()}}}},
		}
	}
	m := M{{"backendRef", to(rt.Shadow.Service)}}
	if rt.Shadow.PerMillion < 1_000_000 {
		m = append(m, KV{"fraction", M{{"numerator", int(rt.Shadow.PerMillion)}, {"denominator", 1_000_000}}})
	}
	return []M{{{"type", "RequestMirror"}, {"requestMirror", m}}}
}

// gatewayBackend is the backendRef of shadowlab's gateway.
func (r *renderer) gatewayBackend() M {
	if r.o.Target == EnvoyGateway {
		return M{{"group", "gateway.envoyproxy.io"}, {"kind", "Backend"}, {"name", "shadowlab-gateway"}}
	}
	return M{{"name", "shadowlab"}, {"namespace", r.o.Namespace}, {"port", r.o.GatewayPort}}
}

// mirrorMatches are the matches of route rt's mirroring variant: the
// route's, narrowed to its tenants and mirrored methods, and, when the
// route captures, to the requests the plugin sampled.
func (r *renderer) mirrorMatches(rt *policy.Route) []M {
	var extra []M
	if rt.Shadow.Capture {
		extra = append(extra, M{{"type", "Exact"}, {"name", wire.HeaderSample}, {"value", wire.MarkOn}})
	}
	if t := rt.Shadow.Tenants; t != nil {
		if len(t.Values) == 1 {
			extra = append(extra, M{{"type", "Exact"}, {"name", t.Header}, {"value", t.Values[0]}})
		} else {
			extra = append(extra, M{{"type", "RegularExpression"}, {"name", t.Header}, {"value", tenantRegex(t)}})
		}
	}
	methods, any, narrowed := mirroredMethods(rt)
	if narrowed {
		r.note("Routes that mirror unsafe methods without capture: the Gateway API cannot add the dry-run mark to the mirror alone, so only their safe methods are mirrored. With capture, shadowlab's gateway adds the mark.")
	}
	switch {
	case any:
		return r.matches(rt, nil, extra)
	case len(methods) == 0:
		return nil // nothing of the route can be mirrored
	}
	return r.matches(rt, methods, extra)
}

// matches renders route rt's match, one HTTPRouteMatch per method (methods
// overrides the route's when given), each with the extra header matches.
func (r *renderer) matches(rt *policy.Route, methods []string, extra []M) []M {
	path := r.pathMatch(rt)
	headers := append(r.headerMatches(rt), extra...)
	if methods == nil {
		methods = rt.Match.Methods
	}
	one := func(method string) M {
		m := M{{"path", path}}
		if method != "" {
			m = append(m, KV{"method", method})
		}
		if len(headers) > 0 {
			m = append(m, KV{"headers", headers})
		}
		return m
	}
	if len(methods) == 0 {
		return []M{one("")}
	}
	var out []M
	for _, method := range methods {
		if !gatewayMethods[method] {
			r.fail("route %q: method %s: the Gateway API matches only %s", rt.Name, method, "GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH")
			continue
		}
		out = append(out, one(method))
	}
	return out
}

var gatewayMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true, "CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true}

func (r *renderer) pathMatch(rt *policy.Route) M {
	m := rt.Match
	switch {
	case m.Path != "":
		return M{{"type", "Exact"}, {"value", m.Path}}
	case m.PathRegex != "":
		return M{{"type", "RegularExpression"}, {"value", m.PathRegex}}
	}
	if strings.Contains(m.PathPrefix, "?") {
		r.fail("route %q: pathPrefix %q contains a query: the Gateway API matches paths without their query", rt.Name, m.PathPrefix)
	}
	return M{{"type", "RegularExpression"}, {"value", regexp.QuoteMeta(m.PathPrefix) + ".*"}}
}

func (r *renderer) headerMatches(rt *policy.Route) []M {
	var out []M
	for _, h := range rt.Match.Headers {
		switch {
		case h.Invert || h.Present != nil && !*h.Present:
			r.fail("route %q: header %s: the Gateway API has no inverted or absent-header match; use the istio target or plain Envoy", rt.Name, h.Name)
		case h.Present != nil:
			out = append(out, M{{"type", "RegularExpression"}, {"name", h.Name}, {"value", ".*"}})
		case h.Regex != "":
			out = append(out, M{{"type", "RegularExpression"}, {"name", h.Name}, {"value", h.Regex}})
		case h.Prefix != "":
			out = append(out, M{{"type", "RegularExpression"}, {"name", h.Name}, {"value", regexp.QuoteMeta(h.Prefix) + ".*"}})
		default:
			out = append(out, M{{"type", "Exact"}, {"name", h.Name}, {"value", h.Exact}})
		}
	}
	return out
}

// checkOrder refuses routes that overlap where the Gateway API's
// precedence would not keep the policy's order.
func (r *renderer) checkOrder() {
	rs := r.p.Routes
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			if overlap(rs[i], rs[j]) && !precedes(rank(rs[i]), rank(rs[j])) {
				r.fail("routes %q and %q overlap, and the Gateway API orders routes by how specific they are, not by the policy's order: %q would not win as it does in the policy. Make %q more specific (a longer path, a header), reorder, or use the istio target", rs[i].Name, rs[j].Name, rs[i].Name, rs[i].Name)
			}
		}
	}
}

// rank is a route's precedence in the Gateway API as Envoy Gateway sorts
// routes: path type, path length, header matches, method.
type precedence [4]int

func rank(rt *policy.Route) precedence {
	var p precedence
	switch {
	case rt.Match.Path != "":
		p[0], p[1] = 3, len(rt.Match.Path)
	case rt.Match.PathRegex != "":
		p[0], p[1] = 2, len(rt.Match.PathRegex)
	default:
		p[0], p[1] = 2, len(regexp.QuoteMeta(rt.Match.PathPrefix))+2
	}
	p[2] = len(rt.Match.Headers)
	if len(rt.Match.Methods) > 0 {
		p[3] = 1
	}
	return p
}

func precedes(a, b precedence) bool {
	for k := range a {
		if a[k] != b[k] {
			return a[k] > b[k]
		}
	}
	return false
}

// overlap reports whether some request could match both routes (true when
// it cannot tell: user regexes).
func overlap(a, b *policy.Route) bool {
	if !methodsOverlap(a.Match.Methods, b.Match.Methods) {
		return false
	}
	am, bm := a.Match, b.Match
	switch {
	case am.PathRegex != "" || bm.PathRegex != "":
		return true
	case am.Path != "" && bm.Path != "":
		return am.Path == bm.Path
	case am.Path != "":
		return strings.HasPrefix(am.Path, bm.PathPrefix)
	case bm.Path != "":
		return strings.HasPrefix(bm.Path, am.PathPrefix)
	}
	return strings.HasPrefix(am.PathPrefix, bm.PathPrefix) || strings.HasPrefix(bm.PathPrefix, am.PathPrefix)
}

func methodsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, m := range a {
		for _, n := range b {
			if m == n {
				return true
			}
		}
	}
	return false
}

// gatewayAPI renders for any Gateway API implementation: HTTPRoutes to
// Kubernetes Services. The core API has no way to run code on the primary's
// answer, so nothing is captured: a route that captures is mirrored
// straight to its shadow service, and compared by nothing.
func (r *renderer) gatewayAPI() {
	r.checkOrder()
	r.refNamespaces = map[string]bool{}
	to := func(s *policy.Service) M {
		if len(s.Endpoints) != 1 {
			r.fail("service %q: %d endpoints; the gateway-api target routes to one Kubernetes Service per service (write its DNS name, name.namespace:port)", s.Name, len(s.Endpoints))
			return M{{"name", kname(s.Name)}}
		}
		host, port := endpoint(s.Endpoints[0])
		if isIP(host) {
			r.fail("service %q: endpoint %s is an IP; the gateway-api target routes to Kubernetes Services (write name.namespace:port), or use the envoy-gateway target", s.Name, s.Endpoints[0])
			return M{{"name", kname(s.Name)}}
		}
		labels := strings.Split(host, ".")
		ref := M{{"name", labels[0]}}
		if len(labels) > 1 {
			ref = append(ref, KV{"namespace", labels[1]})
			if labels[1] != r.o.RouteNamespace {
				r.refNamespaces[labels[1]] = true
			}
		}
		if s.TLS != nil {
			r.fail("service %q: TLS to the upstream is not rendered for the gateway-api target (BackendTLSPolicy is not rendered yet)", s.Name)
		}
		return append(ref, KV{"port", port})
	}
	for _, rt := range r.p.Routes {
		var mirror []M
		if mirrors(rt) {
			if rt.Shadow.Capture {
				r.note("Comparison: the core Gateway API cannot run code on the primary's answer, so nothing is captured or compared. Routes that capture are mirrored straight to their shadow service at their percentage, with no marks. Use the envoy-gateway or istio target to compare.")
				shadow := *rt.Shadow
				shadow.Capture = false
				uncaptured := *rt
				uncaptured.Shadow = &shadow
				rt = &uncaptured
			}
			mirror = r.mirrorMatches(rt)
		}
		if rt.Admission != nil {
			r.note("Admission: the core Gateway API has no extension point for it; routes with admission are rendered without it (use the envoy-gateway or istio target).")
		}
		r.add(r.httpRoute(rt, to, mirror), fmt.Sprintf("Policy route %q.", rt.Name))
	}
	for _, ns := range slices.Sorted(maps.Keys(r.refNamespaces)) {
		r.add(M{{"apiVersion", "gateway.networking.k8s.io/v1beta1"}, {"kind", "ReferenceGrant"},
			{"metadata", M{{"name", "shadowlab-routes"}, {"namespace", ns}}},
			{"spec", M{
				{"from", []M{{{"group", "gateway.networking.k8s.io"}, {"kind", "HTTPRoute"}, {"namespace", r.o.RouteNamespace}}}},
				{"to", []M{{{"group", ""}, {"kind", "Service"}}}},
			}}}, fmt.Sprintf("Lets the routes in %s send to the Services in %s.", r.o.RouteNamespace, ns))
	}
	r.note("Shadow requests are not marked: the Gateway API cannot add x-shadowlab-shadow to a mirror alone; the shadow service sees the primary's request unchanged.")
}

// sameYAML reports whether two values render the same.
func sameYAML(a, b any) bool {
	ya, erra := yaml.Marshal(valueNode(a))
	yb, errb := yaml.Marshal(valueNode(b))
	return erra == nil && errb == nil && string(ya) == string(yb)
}
