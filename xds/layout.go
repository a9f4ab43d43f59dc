package xds

import (
	"strings"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// The routes of a listener reach Envoy in one of two layouts.
//
// Table: one route configuration (RDS) with every route in policy order.
// Exact for any policy, but Envoy receives a route configuration whole, so
// editing one route of 10 000 resends all of them.
//
// Scoped: one route configuration per first path segment ("orders" for
// /orders/…), picked per request by Envoy's scoped routes (SRDS). The
// connection manager's early header mutation writes the scope key,
// "<listener><path without its query>", into wire.HeaderScope before the
// route is chosen; the key builder takes its first two '/'-separated
// elements: the listener's name and the path's first segment. A one-route
// edit then changes the small route configuration of its segment, and over
// delta xDS Envoy receives that alone.
//
// Scoped routing has no "otherwise": a request whose segment has no scope
// gets Envoy's 404. That is exactly what the table does when every route is
// confined to one first segment — an exact path, or a prefix that goes on
// past its first segment's closing '/' — because no route can match a
// segment no route names, and within a segment the routes keep their
// policy order. A listener with any route that can match more than one
// segment (a regex, a prefix such as "/" or "/ord") keeps the table, so the
// matching order the policy promises holds in both layouts (TestLayoutsRouteAlike runs
// both through the real Envoy).

// DefaultScopeAt is the number of routes from which a listener whose routes
// allow it is scoped (Options.ScopeAt).
const DefaultScopeAt = 100

// scopeAt is the route count from which listeners are scoped; 0: never.
func (o Options) scopeAt() int {
	switch {
	case o.ScopeAt < 0:
		return 0
	case o.ScopeAt == 0:
		return DefaultScopeAt
	}
	return o.ScopeAt
}

// scopedListener reports whether listener l's routes are split by first
// path segment.
func (o Options) scopedListener(l *policy.Listener) bool {
	at := o.scopeAt()
	if at == 0 || len(l.Routes) < at {
		return false
	}
	for _, r := range l.Routes {
		if _, ok := Segment(r.Match); !ok {
			return false
		}
	}
	return true
}

// Segment is the first path segment every request route match m can match
// has, and whether there is one: an exact path ("/orders" and "/orders/7"
// are in "orders", "/" in ""), or a prefix that closes its first segment
// ("/orders/" and "/orders/open" are in "orders"). A regex, or a prefix
// that ends inside its first segment ("/", "/ord"), can match any number of
// segments.
func Segment(m policy.Match) (string, bool) {
	switch {
	case m.Path != "":
		rest, ok := strings.CutPrefix(m.Path, "/")
		if !ok {
			return "", false
		}
		seg, _, _ := strings.Cut(rest, "/")
		return seg, true
	case m.PathPrefix != "" && m.PathRegex == "":
		rest, ok := strings.CutPrefix(m.PathPrefix, "/")
		if !ok {
			return "", false
		}
		if seg, _, closed := strings.Cut(rest, "/"); closed {
			return seg, true
		}
	}
	return "", false
}

// routeSpecifier is where listener l's connection manager finds its routes:
// RDS (the table) or scoped RDS, both over ADS.
func routeSpecifier(l string, scoped bool, hcm *hcmv3.HttpConnectionManager) {
	if !scoped {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: RouteConfigName(l), ConfigSource: adsSource()}}
		return
	}
	fragment := func(index uint32) *hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder {
		return &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{Type: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_{
			HeaderValueExtractor: &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor{
				Name:             wire.HeaderScope,
				ElementSeparator: "/",
				ExtractType:      &hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder_HeaderValueExtractor_Index{Index: index},
			}}}
	}
	hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_ScopedRoutes{ScopedRoutes: &hcmv3.ScopedRoutes{
		Name:            ScopesName(l),
		ScopeKeyBuilder: &hcmv3.ScopedRoutes_ScopeKeyBuilder{Fragments: []*hcmv3.ScopedRoutes_ScopeKeyBuilder_FragmentBuilder{fragment(0), fragment(1)}},
		RdsConfigSource: adsSource(),
		ConfigSpecifier: &hcmv3.ScopedRoutes_ScopedRds{ScopedRds: &hcmv3.ScopedRds{ScopedRdsConfigSource: adsSource()}},
	}}
}

// scope is the scoped route configuration that sends listener l's requests
// whose first path segment is seg to their route configuration. Every
// scoped listener receives every scope (SRDS is a wildcard subscription);
// the listener's name in the key keeps each to its own.
func scope(l, seg string) *routev3.ScopedRouteConfiguration {
	return &routev3.ScopedRouteConfiguration{
		Name:                   ScopeName(l, seg),
		RouteConfigurationName: SegmentRouteConfigName(l, seg),
		Key: &routev3.ScopedRouteConfiguration_Key{Fragments: []*routev3.ScopedRouteConfiguration_Key_Fragment{
			{Type: &routev3.ScopedRouteConfiguration_Key_Fragment_StringKey{StringKey: l}},
			{Type: &routev3.ScopedRouteConfiguration_Key_Fragment_StringKey{StringKey: seg}},
		}},
	}
}

// earlyMutations are listener l's early header mutations: the client's
// x-shadowlab-* headers (and request ID) removed, then, when scoped, the
// scope key written. Envoy's %PATH(NQ)% is the path without its query, so
// "/orders?page=2" is in "orders" as the route's exact "/orders" is.
func earlyMutations(l *policy.Listener, scoped bool) []*mutationv3.HeaderMutation {
	muts := clientHeadersToRemove(l)
	if scoped {
		muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: wire.HeaderScope, Value: l.Name + "%PATH(NQ)%"},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}})
	}
	return muts
}

// routeTable is a route configuration named name holding routes, in order.
// The scope key header, when there is one, goes no further than Envoy.
func routeTable(name string, routes []*routev3.Route, scoped bool) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: VirtualHost, Domains: []string{"*"}, Routes: routes}
	if scoped {
		vh.RequestHeadersToRemove = []string{wire.HeaderScope}
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}}
}
