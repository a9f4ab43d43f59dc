package xds

import (
	"errors"
	"slices"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	upstreamcodecv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// httpProtocolOptionsKey is where a cluster's HTTP protocol options go in
// typed_extension_protocol_options.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// capturedHeaders are forwarded to the capture server on every half; the
// route's compare.headers are added. Nothing else leaves Envoy: no
// Authorization, no Cookie, no Set-Cookie.
var capturedHeaders = []string{":method", ":path", ":status", wire.HeaderRequestID, "content-type", "content-encoding", "content-length"}

// httpFilters is the listener's filter chain: the admission filters and
// the capture filter (each off by default, switched on by the routes that
// admit or sample for mirroring) and the router.
func httpFilters(p *policy.Policy, opts Options) []*hcmv3.HttpFilter {
	router := &hcmv3.HttpFilter{
		Name:       "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	}
	filters := append(admissionFilters(p, opts), captureWasmFilters(p, opts)...)
	if opts.captured(p, captureExtProc) {
		var headers []string
		for _, r := range p.Routes {
			headers = append(headers, routeCapturedHeaders(r)...)
		}
		filters = append(filters, &hcmv3.HttpFilter{
			Name:       ExtProcFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(captureFilter(headers, nil))},
			Disabled:   true,
		})
	}
	return append(filters, router)
}

// captureFilter is the ext_proc filter in observability mode ("send and
// go"): Envoy streams request headers, response headers and the response
// body to the capture server and never waits for it, and a capture server
// that is down, slow or full changes nothing for the request
// (failure_mode_allow). metadata opens each gRPC stream.
func captureFilter(extraHeaders []string, metadata []*corev3.HeaderValue) *extprocv3.ExternalProcessor {
	headers := slices.Clone(capturedHeaders)
	for _, h := range extraHeaders {
		if !slices.Contains(headers, h) && !slices.Contains(wire.SecretHeaders, h) {
			headers = append(headers, h)
		}
	}
	slices.Sort(headers[len(capturedHeaders):])
	patterns := make([]*matcherv3.StringMatcher, len(headers))
	for i, h := range headers {
		patterns[i] = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h}}
	}
	return &extprocv3.ExternalProcessor{
		GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ExtProcCluster}},
			InitialMetadata: metadata,
		},
		FailureModeAllow:  true,
		ObservabilityMode: true,
		StatPrefix:        ExtProcStatPrefix,
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
			ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
			RequestBodyMode:     extprocv3.ProcessingMode_NONE,
			ResponseBodyMode:    extprocv3.ProcessingMode_STREAMED,
			RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
			ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		ForwardRules: &extprocv3.HeaderForwardingRules{
			AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: patterns},
		},
	}
}

// routeCapturedHeaders are what a mirrored route adds to capturedHeaders:
// the response headers it compares, and its tenant header, which tells
// identical requests of different tenants apart when noise is learned.
func routeCapturedHeaders(r *policy.Route) []string {
	if r.Shadow == nil {
		return nil
	}
	out := slices.Clone(r.Shadow.Compare.Spec.Headers)
	if t := r.Shadow.Tenants; t != nil {
		out = append(out, t.Header)
	}
	return out
}

// captureMetadata names the route and side of a capture stream.
func captureMetadata(route string, side wire.Side) []*corev3.HeaderValue {
	return []*corev3.HeaderValue{{Key: wire.MetadataRoute, Value: route}, {Key: wire.MetadataSide, Value: side.String()}}
}

// capturePerRoute switches the listener's capture filter on for a sampled
// route and labels its streams as route's primary side.
func capturePerRoute(route string) *anypb.Any {
	return mustAny(&routev3.FilterConfig{Config: mustAny(&extprocv3.ExtProcPerRoute{
		Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
			GrpcInitialMetadata: captureMetadata(route, wire.SidePrimary),
		}},
	})})
}

// shadowProtocolOptions puts a capture filter in front of the codec of
// route r's shadow cluster: an upstream filter, so it sees the mirrored
// request and the shadow's response, which Envoy otherwise discards.
func shadowProtocolOptions(r *policy.Route) *httpv3.HttpProtocolOptions {
	headers := routeCapturedHeaders(r)
	return &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       ExtProcFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(captureFilter(headers, captureMetadata(r.Name, wire.SideShadow)))},
		}, {
			Name:       "envoy.filters.http.upstream_codec",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&upstreamcodecv3.UpstreamCodec{})},
		}},
	}
}

// http2Options makes a cluster speak HTTP/2 (gRPC) to its endpoints.
func http2Options() *anypb.Any {
	return mustAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}},
	})
}

// extProcCluster reaches the capture server over HTTP/2. Every captured
// request is one gRPC stream, so its limits are far above Envoy's defaults
// (1024); beyond them a request simply goes uncaptured (failure_mode_allow).
func extProcCluster(addr string) (*clusterv3.Cluster, error) {
	c, err := grpcCluster(ExtProcCluster, addr)
	if err != nil {
		return nil, err
	}
	limit := wrapperspb.UInt32(100_000)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: limit, MaxPendingRequests: limit, MaxRequests: limit,
	}}}
	return c, nil
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

// captureWasmFilters are the plugin's capture instances, one per mirrored
// route, each off unless the route's sampled variants switch it on: only
// mirrored requests are captured, and nothing else pays for it.
func captureWasmFilters(p *policy.Policy, opts Options) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	for _, r := range p.Routes {
		if opts.captureOf(r) != captureGateway {
			continue
		}
		w := pluginInstance(CaptureWasmFilter(r.Name), wire.CaptureRootID, captureConfig(r).AppendJSON(nil), opts)
		out = append(out, &hcmv3.HttpFilter{
			Name:       CaptureWasmFilter(r.Name),
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(w)},
			Disabled:   true,
		})
	}
	return out
}

// captureTickMs is how often each Envoy worker sends its capture batch.
const captureTickMs = 100

// captureConfig is the capture instance's configuration for route r.
func captureConfig(r *policy.Route) wire.CaptureConfig {
	c := r.Shadow.Compare
	return wire.CaptureConfig{
		Route:           r.Name,
		MaxBodyBytes:    uint32(c.MaxBodyBytes),
		Headers:         strings.Join(c.Spec.Headers, ","),
		ReportCluster:   APICluster,
		ReportPath:      wire.CapturePath,
		ReportAuthority: wire.ReportAuthority,
		TickMs:          captureTickMs,
	}
}
