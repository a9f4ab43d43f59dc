package xds

import (
	"errors"
	"strings"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// httpProtocolOptionsKey is where a cluster's HTTP protocol options go in
// typed_extension_protocol_options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// httpFilters is the listener's filter chain (the router logging the
// failed attempts of rolloutLogs): the admission filters, the
// rollout instances (which pick a canary's users before the capture
// looks at the route), the capture instances (each off by default, switched on by the routes that
// admit or sample for mirroring) and the router.
func httpFilters(p *policy.Policy, opts Options, failures []*accesslogv3.AccessLog) []*hcmv3.HttpFilter {
	router := &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{UpstreamLog: failures})},
	}
	filters := append(admissionFilters(p, opts), rolloutWasmFilters(p, opts)...)
	filters = append(filters, captureWasmFilters(p, opts)...)
	return append(filters, router)
}

// http2Options makes a cluster speak HTTP/2 (gRPC) to its endpoints.
func http2Options() *anypb.Any {
	return mustAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
}

// grpcCluster is a static HTTP/2 cluster for one of shadowlab's gRPC
// servers, with TCP keepalive.
func grpcCluster(name, addr string) (*clusterv3.Cluster, error) {
	c, err := staticCluster(name, []string{addr}, 250*time.Millisecond)
	if err != nil {
		return nil, err
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: http2Options()}
	c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{
		TcpKeepalive: &corev3.TcpKeepalive{KeepaliveTime: wrapperspb.UInt32(30)},
	}
	return c, nil
}

// checkCapture reports what the options lack to capture p's mirrored
// routes through the gateway and the plugin.
func checkCapture(p *policy.Policy, opts Options) []error {
	if !opts.captured(p, captureGateway) {
		return nil
	}
	var errs []error
	if !opts.Wasm.set() {
		errs = append(errs, errors.New("capture needs the plugin, which records the primary's answers (build it with `make build`; serve finds bin/shadowlab.wasm or takes --wasm)"))
	}
	if opts.APIAddress == "" {
		errs = append(errs, errors.New("capture: the plugin sends the primary's answers to shadowlab's API, which is disabled"))
	}
	return errs
}

// captureWasmFilters is the plugin's capture instance when some route is
// captured: one for every route, off unless a route's sampled variants
// switch it on (captureOn), so only mirrored requests are captured and
// nothing else pays for it. Its own configuration holds what every route
// shares (where batches go, how often); each route's settings travel in
// its Envoy routes' metadata, so adding, editing or removing a captured
// route changes routes, never the listener (whose update would drain
// connections), and 10 000 captured routes are one plugin instance, not
// 10 000 each with its own timer.
func captureWasmFilters(p *policy.Policy, opts Options) []*hcmv3.HttpFilter {
	if !opts.captured(p, captureGateway) {
		return nil
	}
	base := wire.CaptureConfig{ReportCluster: APICluster, ReportPath: wire.CapturePath, ReportAuthority: wire.ReportAuthority, TickMs: captureTickMs}
	return []*hcmv3.HttpFilter{offPlugin(CaptureWasmFilter, wire.CaptureRootID, base.AppendJSON(nil), opts)}
}

// captureOn switches the capture instance on for Envoy route rt of policy
// route r, with r's settings in rt's metadata (wire.MetadataNamespace,
// wire.MetadataCapture), where the plugin reads them.
func captureOn(rt *routev3.Route, r *policy.Route) {
	switchOn(rt, CaptureWasmFilter)
	settings := structpb.NewStringValue(string(captureConfig(r).AppendRouteJSON(nil)))
	rt.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		wire.MetadataNamespace: {Fields: map[string]*structpb.Value{wire.MetadataCapture: settings}},
	}}
}

// offPlugin is an instance of the plugin named name, in the role rootID,
// off in the connection manager until a route switches it on (switchOn).
func offPlugin(name, rootID string, config []byte, opts Options) *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       name,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(pluginInstance(name, rootID, config, opts))},
		Disabled:   true,
	}
}

// captureTickMs is how often each Envoy worker sends its capture batch.
const captureTickMs = 100

// captureConfig is the capture instance's configuration for route r: with
// sticky sampling, the instance samples (the route's sampled variants
// match its mark); otherwise the route match's runtime fraction does.
func captureConfig(r *policy.Route) wire.CaptureConfig {
	if r.Shadow.StickyOn != "" {
		return SampledCapture(r, APICluster)
	}
	return CaptureConfig(r, APICluster)
}

// SampledCapture is route r's capture configuration where the plugin
// samples: by request ID, or by user with shadow.stickyOn, for the route's
// tenants and mirrored methods (the safe ones, or all with
// unsafeMethods), marking the sampled requests with wire.HeaderSample,
// which the mirroring variants match. Also for the manifests of meshes
// (package render), whose mirrors sample at random.
func SampledCapture(r *policy.Route, reportCluster string) wire.CaptureConfig {
	c := CaptureConfig(r, reportCluster)
	methods := r.Match.Methods
	if !r.Shadow.UnsafeMethods {
		methods, _ = policy.SplitMethods(r.Match.Methods)
	}
	c.SampleMethods = strings.Join(methods, ",")
	if t := r.Shadow.Tenants; t != nil {
		c.SampleTenantHeader, c.SampleTenants = t.Header, strings.Join(t.Values, "\n")
	}
	c.SampleHeader, c.SamplePerMillion, c.SampleStickyHeader = wire.HeaderSample, r.Shadow.PerMillion, r.Shadow.StickyOn
	return c
}

// CaptureConfig is the capture instance's configuration for route r, its
// batches sent to reportCluster. Also for the manifests of meshes
// (package render), which add the sampling.
func CaptureConfig(r *policy.Route, reportCluster string) wire.CaptureConfig {
	c := r.Shadow.Compare
	return wire.CaptureConfig{
		Route:           r.Name,
		MaxBodyBytes:    uint32(c.MaxBodyBytes),
		Headers:         strings.Join(c.Spec.Headers, ","),
		ReportCluster:   reportCluster,
		ReportPath:      wire.CapturePath,
		ReportAuthority: wire.ReportAuthority,
		TickMs:          captureTickMs,
	}
}
