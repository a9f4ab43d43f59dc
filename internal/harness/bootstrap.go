package harness

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/xds"
)

// StaticConfig is an Envoy configured by its bootstrap alone: listeners
// whose routes go to static clusters, with the admission plugin or Envoy's
// local_ratelimit on chosen routes. The plugin's Envoy tests and
// bench/admission describe their Envoy with it.
type StaticConfig struct {
	Listeners []Listener
	Clusters  []Cluster
	// WasmPath is the plugin module; "" leaves every plugin out: the same
	// Envoy without the plugin.
	WasmPath string
	VMEnv    map[string]string // the plugin VM's environment variables
	// StopIteration is the plugin's allow_on_headers_stop_iteration.
	StopIteration bool
}

// Listener is one HTTP listener.
type Listener struct {
	Name, Address string // the name is also its stat prefix and route configuration's
	Routes        []Route
	NoRequestID   bool       // generate_request_id off
	AccessLog     *AccessLog // nil: none
}

// AccessLog writes a line in Format to Path for each request that carries
// the header Header.
type AccessLog struct{ Path, Header, Format string }

// Route sends a path prefix to a cluster, through at most one plugin and
// one rate limit.
type Route struct {
	Name, Prefix, Cluster string
	Plugin                *Plugin    // runs on this route only; nil: none
	RateLimit             *RateLimit // nil: none
}

// Plugin is one instance of the admission plugin: a wasm filter whose name
// and root id are Name, configured with the flat JSON Config. Plugins
// share one VM.
type Plugin struct{ Name, Config string }

// RateLimit is envoy.filters.http.local_ratelimit on a route: a token
// bucket shared by Envoy's workers, enabled and enforced on every request,
// 429 when it is empty.
type RateLimit struct {
	MaxTokens, PerFill int
	Fill               time.Duration
}

// Cluster is a static cluster of one endpoint, with circuit breakers
// that never trip.
type Cluster struct{ Name, Address string }

// routeTimeout is every route's: longer than any hold of the plugin.
const routeTimeout = 60 * time.Second

// StaticBootstrap renders cfg as a bootstrap (admin on a random port), after
// Envoy's own validation (ValidateAll).
func StaticBootstrap(cfg StaticConfig) ([]byte, error) {
	var errs []error
	typed := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		errs = append(errs, err)
		return a
	}
	addr := func(hostport string) *corev3.Address {
		a, err := socketAddress(hostport)
		errs = append(errs, err)
		return a
	}
	b := &bootstrapv3.Bootstrap{
		Admin:           &bootstrapv3.Admin{Address: addr("127.0.0.1:0")},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{},
	}
	for _, l := range cfg.Listeners {
		hcm := httpConnectionManager(l, cfg, typed)
		b.StaticResources.Listeners = append(b.StaticResources.Listeners, &listenerv3.Listener{
			Name:    l.Name,
			Address: addr(l.Address),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: typed(hcm)},
			}}}},
		})
	}
	for _, c := range cfg.Clusters {
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, staticCluster(c, addr(c.Address)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("static bootstrap: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("static bootstrap fails Envoy validation: %w", err)
	}
	return xds.MessageYAML(b)
}

// httpConnectionManager is l's connection manager: its routes, then one wasm
// filter per plugin (turned off on the routes of others), local_ratelimit
// if a route limits (without a bucket of its own: only routes with one are
// limited), and the router.
func httpConnectionManager(l Listener, cfg StaticConfig, typed func(proto.Message) *anypb.Any) *hcmv3.HttpConnectionManager {
	var plugins []*Plugin
	limited := false
	for _, r := range l.Routes {
		if r.Plugin != nil && cfg.WasmPath != "" && !slices.ContainsFunc(plugins, func(p *Plugin) bool { return p.Name == r.Plugin.Name }) {
			plugins = append(plugins, r.Plugin)
		}
		limited = limited || r.RateLimit != nil
	}
	var routes []*routev3.Route
	for _, r := range l.Routes {
		perFilter := map[string]*anypb.Any{}
		for _, p := range plugins {
			if r.Plugin == nil || p.Name != r.Plugin.Name {
				perFilter[p.Name] = typed(&routev3.FilterConfig{Disabled: true})
			}
		}
		if rl := r.RateLimit; rl != nil {
			perFilter["envoy.filters.http.local_ratelimit"] = typed(&ratelimitv3.LocalRateLimit{
				StatPrefix:     r.Name,
				TokenBucket:    &typev3.TokenBucket{MaxTokens: uint32(rl.MaxTokens), TokensPerFill: wrapperspb.UInt32(uint32(rl.PerFill)), FillInterval: durationpb.New(rl.Fill)},
				FilterEnabled:  everyRequest(r.Name + "_enabled"),
				FilterEnforced: everyRequest(r.Name + "_enforced"),
			})
		}
		if len(perFilter) == 0 {
			perFilter = nil
		}
		routes = append(routes, &routev3.Route{
			Name:  r.Name,
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: r.Prefix}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: r.Cluster},
				Timeout:          durationpb.New(routeTimeout),
			}},
			TypedPerFilterConfig: perFilter,
		})
	}
	var filters []*hcmv3.HttpFilter
	for _, p := range plugins {
		filters = append(filters, httpFilter(p.Name, typed(wasmFilter(p, cfg, typed))))
	}
	if limited {
		filters = append(filters, httpFilter("envoy.filters.http.local_ratelimit", typed(&ratelimitv3.LocalRateLimit{StatPrefix: "none"})))
	}
	filters = append(filters, httpFilter("envoy.filters.http.router", typed(&routerv3.Router{})))
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name:         l.Name,
			VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, Routes: routes}},
		}},
		HttpFilters: filters,
	}
	if l.NoRequestID {
		hcm.GenerateRequestId = wrapperspb.Bool(false)
	}
	if a := l.AccessLog; a != nil {
		hcm.AccessLog = []*accesslogv3.AccessLog{{
			Name: "envoy.access_loggers.file",
			Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{HeaderFilter: &accesslogv3.HeaderFilter{
				Header: &routev3.HeaderMatcher{Name: a.Header, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}},
			}}},
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed(&filev3.FileAccessLog{
				Path: a.Path,
				AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
					Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
						Specifier: &corev3.DataSource_InlineString{InlineString: a.Format},
					}},
				}},
			})},
		}}
	}
	return hcm
}

// wasmFilter is plugin p in the VM shared by every plugin of cfg.
func wasmFilter(p *Plugin, cfg StaticConfig, typed func(proto.Message) *anypb.Any) *wasmfilterv3.Wasm {
	vm := &wasmv3.VmConfig{
		VmId:    "shadowlab",
		Runtime: "envoy.wasm.runtime.v8",
		Code: &corev3.AsyncDataSource{Specifier: &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
			Specifier: &corev3.DataSource_Filename{Filename: cfg.WasmPath},
		}}},
	}
	if len(cfg.VMEnv) > 0 {
		vm.EnvironmentVariables = &wasmv3.EnvironmentVariables{KeyValues: cfg.VMEnv}
	}
	return &wasmfilterv3.Wasm{Config: &wasmv3.PluginConfig{
		Name:                        p.Name,
		RootId:                      p.Name,
		Configuration:               typed(wrapperspb.String(p.Config)),
		FailurePolicy:               wasmv3.FailurePolicy_FAIL_OPEN,
		AllowOnHeadersStopIteration: wrapperspb.Bool(cfg.StopIteration),
		Vm:                          &wasmv3.PluginConfig_VmConfig{VmConfig: vm},
	}}
}

func httpFilter(name string, config *anypb.Any) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: name, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: config}}
}

// everyRequest is a runtime fraction of 100 % under key.
func everyRequest(key string) *corev3.RuntimeFractionalPercent {
	return &corev3.RuntimeFractionalPercent{RuntimeKey: key, DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
}

func staticCluster(c Cluster, addr *corev3.Address) *clusterv3.Cluster {
	many := wrapperspb.UInt32(100_000)
	return &clusterv3.Cluster{
		Name:                 c.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: many, MaxPendingRequests: many, MaxRequests: many,
		}}},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: c.Name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			}}}},
		},
	}
}

func socketAddress(hostport string) (*corev3.Address, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port of %q: %w", hostport, err)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}, nil
}
