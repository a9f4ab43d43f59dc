package xds

import (
	"errors"
	"fmt"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	wasmfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/wasm/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	wasmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/wasm/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// WasmCode says where Envoy gets the admission plugin: a file on Envoy's
// machine, or shadowlab's API (URL path WasmCodePath(SHA256) on APICluster),
// which Envoy fetches once and verifies against SHA256.
type WasmCode struct {
	Filename string
	SHA256   string // hex; with Filename empty, fetch from the API
}

func (w WasmCode) set() bool { return w.Filename != "" || w.SHA256 != "" }

// checkAdmission reports what the options lack for p's admission routes.
func checkAdmission(p *policy.Policy, opts Options) []error {
	var errs []error
	for _, r := range p.AdmissionRoutes(wire.ScopeLocal) {
		if !opts.Wasm.set() {
			errs = append(errs, fmt.Errorf("route %q: admission scope local needs the wasm plugin (build it with `make build`; serve finds bin/shadowlab.wasm or takes --wasm)", r.Name))
		} else if opts.Wasm.Filename == "" && opts.APIAddress == "" {
			errs = append(errs, fmt.Errorf("route %q: admission scope local: Envoy fetches the plugin from shadowlab's API, which is disabled", r.Name))
		}
	}
	for _, r := range p.AdmissionRoutes(wire.ScopeGlobal) {
		if opts.AdmissionAddress == "" {
			errs = append(errs, fmt.Errorf("route %q: admission scope global needs the admission server, which is disabled", r.Name))
		}
	}
	return errs
}

// admissionFilters are the listener's admission filters, before capture:
// one plugin instance per local-admission route and one ext_proc filter for
// every global-admission route, all disabled unless a route enables its own.
// A held request is held before anything else sees it, so capture measures
// the service, not the wait.
func admissionFilters(p *policy.Policy, opts Options) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	for _, r := range p.AdmissionRoutes(wire.ScopeLocal) {
		out = append(out, offPlugin(AdmissionWasmFilter(r.Name), wire.AdmissionRootID, pluginConfig(r, opts).AppendJSON(nil), opts))
	}
	if global := p.AdmissionRoutes(wire.ScopeGlobal); len(global) > 0 {
		out = append(out, &hcmv3.HttpFilter{
			Name:       AdmissionExtProcFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(AdmissionExtProc(global, AdmissionCluster))},
			Disabled:   true,
		})
	}
	return out
}

// AdmissionPerRoute switches route r's admission filter on for each Envoy
// route of r (the mirrored variants share one budget: the plugin's budget
// key and the server's route come from the policy route, not Envoy's):
// typed_per_filter_config by filter name. Also for Istio's EnvoyFilter
// (package render).
func AdmissionPerRoute(r *policy.Route) map[string]*anypb.Any {
	if r.Admission == nil {
		return nil
	}
	if r.Admission.Scope == wire.ScopeGlobal {
		return map[string]*anypb.Any{AdmissionExtProcFilter: mustAny(&routev3.FilterConfig{Config: mustAny(&extprocv3.ExtProcPerRoute{
			Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
				GrpcInitialMetadata: []*corev3.HeaderValue{{Key: wire.MetadataRoute, Value: r.Name}},
			}},
		})})}
	}
	return map[string]*anypb.Any{AdmissionWasmFilter(r.Name): enabledPerRoute()}
}

// enabledPerRoute switches a wasm filter that is disabled in the
// connection manager on for one route. Envoy refuses a FilterConfig
// without config, and takes one whose config is present but empty (no type
// URL) as "enabled, no per-route config": the wasm filter has no per-route
// config type.
func enabledPerRoute() *anypb.Any { return mustAny(&routev3.FilterConfig{Config: &anypb.Any{}}) }

// pluginInstance is one instance of shadowlab's plugin, named name, in the
// role rootID, with its JSON configuration. Every instance shares one VM
// per worker (WasmVMID).
func pluginInstance(name, rootID string, config []byte, opts Options) *wasmfilterv3.Wasm {
	code := &corev3.AsyncDataSource{}
	if opts.Wasm.Filename != "" {
		code.Specifier = &corev3.AsyncDataSource_Local{Local: &corev3.DataSource{
			Specifier: &corev3.DataSource_Filename{Filename: opts.Wasm.Filename},
		}}
	} else {
		code.Specifier = &corev3.AsyncDataSource_Remote{Remote: &corev3.RemoteDataSource{
			HttpUri: &corev3.HttpUri{
				Uri:              "http://" + APIAuthority + WasmCodePath(opts.Wasm.SHA256),
				HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: APICluster},
				Timeout:          durationpb.New(30 * time.Second),
			},
			Sha256: opts.Wasm.SHA256,
			RetryPolicy: &corev3.RetryPolicy{
				NumRetries:   wrapperspb.UInt32(20),
				RetryBackOff: &corev3.BackoffStrategy{BaseInterval: durationpb.New(250 * time.Millisecond), MaxInterval: durationpb.New(5 * time.Second)},
			},
		}}
	}
	return &wasmfilterv3.Wasm{Config: &wasmv3.PluginConfig{
		Name:          name,
		RootId:        rootID,
		Configuration: mustAny(wrapperspb.String(string(config))),
		// A plugin that fails (a trap, a VM that cannot start) lets
		// requests through: shadowlab must never fail a request.
		FailurePolicy: wasmv3.FailurePolicy_FAIL_OPEN,
		Vm: &wasmv3.PluginConfig_VmConfig{VmConfig: &wasmv3.VmConfig{
			VmId:    WasmVMID,
			Runtime: "envoy.wasm.runtime.v8",
			Code:    code,
		}},
	}}
}

// pluginConfig is the plugin's configuration for route r.
func pluginConfig(r *policy.Route, opts Options) wire.PluginConfig {
	cluster := ""
	if opts.APIAddress != "" {
		cluster = APICluster
	}
	return PluginConfig(r, cluster)
}

// PluginConfig is the admission plugin's configuration for route r, its
// reports sent to reportCluster ("": none). Also for the manifests of
// meshes (package render).
func PluginConfig(r *policy.Route, reportCluster string) wire.PluginConfig {
	b := r.Admission.Budget
	ms := func(d time.Duration) uint32 { return uint32(d.Milliseconds()) }
	c := wire.PluginConfig{
		Route:      r.Name,
		Limit:      uint32(b.Limit),
		WindowMs:   ms(b.Window),
		MaxDelayMs: ms(b.MaxDelay),
		Mode:       b.Mode.String(),
		KeyHeader:  r.Admission.KeyHeader,
		TickMs:     wire.DefaultTickMs,
		SlackMs:    ms(b.Slack),
	}
	if reportCluster != "" {
		c.ReportCluster, c.ReportPath, c.ReportAuthority = reportCluster, wire.ReportPath, wire.ReportAuthority
	}
	return c
}

// AdmissionExtProc is the global admission filter: it waits for the
// admission server's answer to the request headers (not observability
// mode), which may hold the request up to the longest maxDelay of the
// routes (max_message_timeout; the server asks for each hold with
// override_message_timeout) or answer 429. A server that is down, slow or
// full lets the request through (failure_mode_allow). Only x-request-id and
// the routes' key headers leave Envoy. cluster is the admission server's
// Envoy cluster (AdmissionCluster here; Istio names its own).
func AdmissionExtProc(routes []*policy.Route, cluster string) *extprocv3.ExternalProcessor {
	var longest time.Duration
	headers := []string{wire.HeaderRequestID}
	for _, r := range routes {
		longest = max(longest, r.Admission.Budget.MaxDelay)
		if h := r.Admission.KeyHeader; h != "" && !slices.Contains(headers, h) {
			headers = append(headers, h)
		}
	}
	slices.Sort(headers[1:])
	patterns := make([]*matcherv3.StringMatcher, len(headers))
	for i, h := range headers {
		patterns[i] = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h}}
	}
	ep := &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}},
		},
		FailureModeAllow: true,
		StatPrefix:       AdmissionStatPrefix,
		MessageTimeout:   durationpb.New(time.Second),
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SKIP,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_NONE,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		ForwardRules: &extprocv3.HeaderForwardingRules{
			AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: patterns},
		},
	}
	if longest > 0 {
		ep.MaxMessageTimeout = durationpb.New(longest + policy.AdmissionHoldMargin)
	}
	return ep
}

// streamIdleTimeout is the listener's stream idle timeout: Envoy's default
// (5 minutes) unless a held request may wait longer without a byte moving.
func streamIdleTimeout(routes []*policy.Route) *durationpb.Duration {
	const envoyDefault = 5 * time.Minute
	longest := time.Duration(0)
	for _, r := range routes {
		if r.Admission != nil {
			longest = max(longest, r.Admission.Budget.MaxDelay)
		}
	}
	if longest+time.Minute <= envoyDefault {
		return nil
	}
	return durationpb.New(longest + time.Minute)
}

// admissionCluster reaches the global admission server over HTTP/2, one
// stream per request, with room for AdmissionClusterMaxRequests at once.
func admissionCluster(addr string, t *ClientTLS) (*clusterv3.Cluster, error) {
	c, err := grpcCluster(AdmissionCluster, addr)
	if err != nil {
		return nil, err
	}
	toShadowlab(c, t, "h2")
	limit := wrapperspb.UInt32(AdmissionClusterMaxRequests)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: limit, MaxPendingRequests: limit, MaxRequests: limit,
	}}}
	return c, nil
}

// apiCluster reaches shadowlab's HTTP API (plugin code, plugin reports).
func apiCluster(addr string, t *ClientTLS) (*clusterv3.Cluster, error) {
	if addr == "" {
		return nil, errors.New("no API address")
	}
	c, err := staticCluster(APICluster, []string{addr}, 250*time.Millisecond)
	if err != nil {
		return nil, err
	}
	toShadowlab(c, t, "http/1.1")
	return c, nil
}
