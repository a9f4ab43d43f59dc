// Package xds turns a policy into Envoy resources and serves them to Envoy.
//
// Translate is pure: the same policy always gives byte-identical resources.
// Everything with I/O (the gRPC server, the file watch) lives in server.go and
// watch.go and only ever publishes a snapshot that translated, validated and
// passed Consistent() in full.
package xds

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlymutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Resources is everything Envoy needs for one policy, each list in a
// deterministic order: listeners and routes in policy order, clusters the
// routes' shadows (in policy order) then the services and shadowlab's own.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	// Scopes are the scoped route configurations of the listeners whose
	// routes are split by first path segment (layout.go); empty otherwise.
	Scopes   []*routev3.ScopedRouteConfiguration
	Clusters []*clusterv3.Cluster
	Runtimes []*runtimev3.Runtime

	// versions is each resource's content version, by type and name, as
	// the translator computed it from its pieces (nil: hashed when the
	// snapshot is made).
	versions map[types.ResponseType]map[string]string
}

// percentDenominator is the resolution of mirror percentages: a millionth,
// i.e. 0.0001 %.
const percentDenominator = typev3.FractionalPercent_MILLION

// Options are the parts of the Envoy config that come from how shadowlab
// runs, not from the policy.
type Options struct {
	// GatewayAddress is host:port of shadowlab's shadow gateway. With it,
	// each mirrored route's shadow cluster points at the gateway, which
	// forwards to the shadow service and records the shadow's answer, and
	// the plugin's capture role records the primary's (it needs Wasm and
	// APIAddress). Empty: Envoy mirrors straight to the shadow service and
	// nothing is captured.
	GatewayAddress string
	// AdmissionAddress is host:port of the global admission (ext_proc)
	// server. Routes with global admission need it.
	AdmissionAddress string
	// APIAddress is host:port of shadowlab's HTTP API: the admission plugin
	// reports to it, and fetches its code from it unless Wasm.Filename is
	// set. Empty: no reports.
	APIAddress string
	// Wasm is the admission plugin's code. Routes with local admission need
	// it.
	Wasm WasmCode
	// TLS is how Envoy authenticates to the gateway, the admission server
	// and the API (the same files the bootstrap gives it for xDS); nil:
	// plain TCP.
	TLS *ClientTLS
	// ScopeAt is the number of routes from which a listener whose routes
	// are each confined to one first path segment is scoped (layout.go):
	// 0 means DefaultScopeAt, a negative number never.
	ScopeAt int
}

// captureKind is how a mirrored route's answers are captured.
type captureKind int

const (
	captureNone    captureKind = iota // mirrored straight to the shadow service, nothing compared
	captureGateway                    // the shadow through the gateway, the primary by the plugin
)

// captureOf is how route r is captured. A promoted route keeps its
// capture instance (unused: no Envoy route switches it on), so that the
// listener does not change with the rollout's stage.
func (o Options) captureOf(r *policy.Route) captureKind {
	switch {
	case r.Shadow == nil || !r.Shadow.Capture:
		return captureNone
	case o.GatewayAddress != "":
		return captureGateway
	}
	return captureNone
}

// captured reports whether any route of p is captured the way kind says.
func (o Options) captured(p *policy.Policy, kind captureKind) bool {
	for _, r := range p.Routes {
		if o.captureOf(r) == kind {
			return true
		}
	}
	return false
}

// listener is the Envoy listener for policy listener l: one HTTP connection
// manager whose routes come over RDS.
func listener(l *policy.Listener, p *policy.Policy, opts Options, scoped bool) (*listenerv3.Listener, error) {
	addr, err := socketAddress(l.Address)
	if err != nil {
		return nil, err
	}
	if sa := addr.GetSocketAddress(); sa.GetAddress() == "localhost" {
		sa.Address = "127.0.0.1" // Envoy binds IP literals only
	}
	requests, failures := rolloutLogs(p)
	hcm := &hcmv3.HttpConnectionManager{
		AccessLog:   requests,
		StatPrefix:  StatPrefix(l.Name),
		CodecType:   hcmv3.HttpConnectionManager_AUTO,
		HttpFilters: httpFilters(p, opts, failures),
		// Envoy generates x-request-id, which pairs a primary with its
		// shadow. Whether Envoy keeps a client-supplied one depends on
		// whether it deems the client internal (loopback and private ranges
		// are), so an untrusting listener removes the client's ID before
		// anything else runs (clientHeadersToRemove) and Envoy always
		// generates a fresh one.
		StreamIdleTimeout:         streamIdleTimeout(l.Routes),
		GenerateRequestId:         wrapperspb.Bool(true),
		PreserveExternalRequestId: l.TrustRequestID,
		UseRemoteAddress:          wrapperspb.Bool(true),
		EarlyHeaderMutationExtensions: []*corev3.TypedExtensionConfig{{
			Name:        EarlyHeaderMutation,
			TypedConfig: mustAny(&earlymutationv3.HeaderMutation{Mutations: earlyMutations(l, scoped)}),
		}},
	}
	routeSpecifier(l.Name, scoped, hcm)
	return &listenerv3.Listener{
		Name:    ListenerName(l.Name),
		Address: addr,
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
			}},
		}},
	}, nil
}

// clientHeadersToRemove are the request headers listener l removes from
// every client request before anything else runs: every x-shadowlab-*
// header, so that a client can neither pass its request off as a shadow nor
// as admitted, and, unless the listener trusts them, the client's request
// ID. The connection manager's early header mutation runs before the route
// is chosen and before the HTTP filters, so what the admission plugin, the
// global admission filter (x-shadowlab-admission, -held-ms) and the mirror
// (the marks) add afterwards still reaches the services, on every route.
// Route-level request_headers_to_remove would not do: the router applies it
// after the filters, and would remove the plugin's headers too.
func clientHeadersToRemove(l *policy.Listener) []*mutationv3.HeaderMutation {
	muts := []*mutationv3.HeaderMutation{{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{
		RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{KeyMatcher: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: wire.HeaderPrefix},
		}},
	}}}
	if !l.TrustRequestID {
		muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: wire.HeaderRequestID}})
	}
	return muts
}

// envoyRoutes expands one policy route into Envoy routes, first match wins:
//
//  1. sampled safe methods (GET/HEAD/OPTIONS ∩ match.methods) of selected
//     tenants: mirrored and captured;
//  2. with unsafeMethods, the other methods of selected tenants, sampled:
//     mirrored with the dry-run marker and captured;
//  3. everything else the route matches, primary only.
//
// Sampling is the route match's runtime fraction, not the mirror policy's:
// a request is then mirrored exactly when its primary is captured, so an
// unsampled request never looks like a lost shadow. The percentage is
// served over RTDS (MirrorPercentKey), or, with inline, written in the
// fraction's default and no runtime key: in a scoped listener, where
// editing it resends one small route configuration, not a runtime layer
// Envoy rebuilds its whole runtime from. A route without a shadow is just
// (3), named after the route.
func envoyRoutes(r *policy.Route, opts Options, inline bool) []*routev3.Route {
	if !r.Candidate() {
		return shadowRoutes(r, opts, inline)
	}
	out := candidateRoutes(r)
	if !canary(r) {
		return out // promoted: the candidate answers everyone
	}
	for _, rt := range shadowRoutes(r, opts, inline) {
		switchOn(rt, RolloutWasmFilter(r.Name))
		rt.RequestHeadersToRemove = append(rt.RequestHeadersToRemove, wire.HeaderCanaryBucket)
		out = append(out, rt)
	}
	return out
}

// shadowRoutes are route r's Envoy routes while its primary answers
// everyone.
func shadowRoutes(r *policy.Route, opts Options, inline bool) []*routev3.Route {
	if r.Shadow == nil {
		return []*routev3.Route{primaryRoute(r.Name, r, nil)}
	}
	var tenant []*routev3.HeaderMatcher
	if t := r.Shadow.Tenants; t != nil {
		tenant = []*routev3.HeaderMatcher{oneOfHeader(t.Header, t.Values, false)}
	}
	safe, unsafe := policy.SplitMethods(r.Match.Methods)

	// With sticky sampling the capture plugin samples (by user) and marks
	// what it sampled; it runs on every request of the route.
	sticky := r.Shadow.StickyOn != "" && opts.captureOf(r) == captureGateway
	var out []*routev3.Route
	mirrored := func(name string, methods *routev3.HeaderMatcher, dryRun bool) {
		rt := primaryRoute(name, r, append(slices.Clone(tenant), methods))
		if sticky {
			rt.Match.Headers = append([]*routev3.HeaderMatcher{oneOfHeader(wire.HeaderSample, []string{wire.MarkOn}, false)}, rt.Match.Headers...)
			rt.RequestHeadersToRemove = []string{wire.HeaderSample}
		} else {
			rt.Match.RuntimeFraction = &corev3.RuntimeFractionalPercent{
				DefaultValue: &typev3.FractionalPercent{Numerator: 0, Denominator: percentDenominator},
				RuntimeKey:   MirrorPercentKey(r.Name),
			}
			if inline {
				rt.Match.RuntimeFraction.DefaultValue.Numerator = r.Shadow.PerMillion
				rt.Match.RuntimeFraction.RuntimeKey = ""
			}
		}
		rt.GetRoute().RequestMirrorPolicies = mirrorPolicies(r, dryRun)
		if opts.captureOf(r) == captureGateway {
			captureOn(rt, r)
		}
		out = append(out, rt)
	}
	if len(safe) > 0 {
		mirrored(MirrorRouteName(r.Name), methodHeader(safe, false), false)
	}
	if r.Shadow.UnsafeMethods && (unsafe == nil || len(unsafe) > 0) {
		if unsafe == nil { // any method that is not safe
			mirrored(MirrorUnsafeRouteName(r.Name), methodHeader(policy.SafeMethods, true), true)
		} else {
			mirrored(MirrorUnsafeRouteName(r.Name), methodHeader(unsafe, false), true)
		}
	}
	direct := primaryRoute(DirectRouteName(r.Name), r, nil)
	if sticky {
		captureOn(direct, r)
	}
	return append(out, direct)
}

// switchOn turns the connection manager's filter, off by default, on for
// route rt.
func switchOn(rt *routev3.Route, filter string) {
	if rt.TypedPerFilterConfig == nil {
		rt.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	rt.TypedPerFilterConfig[filter] = enabledPerRoute()
}

// primaryRoute is an Envoy route named name that sends r's matching requests
// to r's primary service. Extra header matchers narrow it; when they are
// given they include the :method matcher, which replaces the route's own.
func primaryRoute(name string, r *policy.Route, extra []*routev3.HeaderMatcher) *routev3.Route {
	m := r.Match
	if len(extra) > 0 {
		m.Methods = nil
	}
	match := routeMatch(m)
	match.Headers = append(extra, match.Headers...)
	return &routev3.Route{
		Name:                 name,
		Match:                match,
		TypedPerFilterConfig: AdmissionPerRoute(r),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ServiceCluster(r.Primary.Name)},
			Timeout:          durationpb.New(r.Timeout),
		}},
	}
}

func routeMatch(m policy.Match) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	switch {
	case m.Path != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case m.PathRegex != "":
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.PathRegex}}
	default:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.PathPrefix}
	}
	if len(m.Methods) > 0 {
		rm.Headers = append(rm.Headers, methodHeader(m.Methods, false))
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, headerMatcher(h))
	}
	return rm
}

func headerMatcher(h policy.HeaderMatch) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
	switch {
	case h.Present != nil:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: *h.Present}
	case h.Regex != "":
		hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: h.Regex}}})
	case h.Prefix != "":
		hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}})
	default:
		hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact}})
	}
	return hm
}

func stringMatch(m *matcherv3.StringMatcher) *routev3.HeaderMatcher_StringMatch {
	return &routev3.HeaderMatcher_StringMatch{StringMatch: m}
}

func methodHeader(methods []string, invert bool) *routev3.HeaderMatcher {
	return oneOfHeader(":method", methods, invert)
}

// oneOfHeader matches header name against any of values exactly (one exact
// matcher for one value, an anchored RE2 alternation for several).
func oneOfHeader(name string, values []string, invert bool) *routev3.HeaderMatcher {
	if len(values) == 1 {
		return &routev3.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: stringMatch(
			&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: values[0]}})}
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return &routev3.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: stringMatch(
		&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "^(" + strings.Join(quoted, "|") + ")$"}}})}
}

// mirrorPolicies mirrors every request of a sampled route to r's shadow
// cluster, marked as a shadow of route r (and as a dry run for unsafe
// methods), with the Host header unchanged.
func mirrorPolicies(r *policy.Route, dryRun bool) []*routev3.RouteAction_RequestMirrorPolicy {
	muts := []*mutationv3.HeaderMutation{setHeader(wire.HeaderShadow, wire.MarkOn), setHeader(wire.HeaderRoute, r.Name)}
	if dryRun {
		muts = append(muts, setHeader(wire.HeaderDryRun, wire.MarkOn))
	}
	return []*routev3.RouteAction_RequestMirrorPolicy{{
		Cluster:                       ShadowCluster(r.Name),
		TraceSampled:                  wrapperspb.Bool(false),
		DisableShadowHostSuffixAppend: true,
		RequestHeadersMutations:       muts,
	}}
}

func setHeader(key, value string) *mutationv3.HeaderMutation {
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}}
}

// serviceCluster is the cluster primary traffic to service s goes to.
func serviceCluster(s *policy.Service) (*clusterv3.Cluster, error) {
	c, err := staticCluster(ServiceCluster(s.Name), s.Endpoints, s.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	speak(c, s)
	return c, nil
}

// shadowCluster is route r's mirror target: the shadow service's endpoints
// behind circuit breakers sized by shadow.maxConcurrent, so a slow shadow
// sheds mirrored requests instead of piling them up; with capture, an
// upstream capture filter sees the shadow's response.
func shadowCluster(r *policy.Route, opts Options) (*clusterv3.Cluster, error) {
	s := r.Shadow.Service
	endpoints, connect := s.Endpoints, s.ConnectTimeout
	kind := opts.captureOf(r)
	if kind == captureGateway {
		endpoints, connect = []string{opts.GatewayAddress}, 250*time.Millisecond
	}
	c, err := staticCluster(ShadowCluster(r.Name), endpoints, connect)
	if err != nil {
		return nil, err
	}
	if kind == captureNone {
		speak(c, s) // Envoy talks to the shadow service itself
	} else {
		toShadowlab(c, opts.TLS, "http/1.1")
	}
	limit := wrapperspb.UInt32(r.Shadow.MaxConcurrent)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     limit,
		MaxPendingRequests: limit,
		MaxRequests:        limit,
		MaxRetries:         wrapperspb.UInt32(0),
		TrackRemaining:     true,
	}}}
	return c, nil
}

// staticCluster is a cluster named name with endpoints inline: STATIC when
// every endpoint is an IP literal, STRICT_DNS otherwise.
func staticCluster(name string, endpoints []string, connectTimeout time.Duration) (*clusterv3.Cluster, error) {
	kind := clusterv3.Cluster_STATIC
	var lbs []*endpointv3.LbEndpoint
	for _, e := range endpoints {
		addr, err := socketAddress(e)
		if err != nil {
			return nil, err
		}
		if net.ParseIP(addr.GetSocketAddress().GetAddress()) == nil {
			kind = clusterv3.Cluster_STRICT_DNS
		}
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: addr}}})
	}
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
		},
	}
	if kind == clusterv3.Cluster_STRICT_DNS {
		c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	return c, nil
}

func socketAddress(hostport string) (*corev3.Address, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", hostport, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("address %q: bad port", hostport)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}, nil
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// mustAny packs m. Packing a non-nil generated message cannot fail.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("xds: packing %T: %v", m, err))
	}
	return a
}
