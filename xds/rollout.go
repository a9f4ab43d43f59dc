package xds

import (
	"errors"
	"slices"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	grpclogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	prioritygroupv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/router/cluster_specifiers/priority_group/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Rollout: a route in canary or promoted sends some or all of its users to
// the candidate (its shadow service) with Envoy's priority_group cluster
// specifier: the first attempt goes to the candidate's cluster, the retry
// to the primary's. The route's retry policy makes one retry, picking the
// cluster again: a candidate that fails is retried on the primary within
// the same request, and the user gets the primary's answer. (An aggregate
// cluster with previous_priorities retries works on Envoy 1.40 too, at the
// same cost per request; the cluster specifier needs no extra cluster and
// its attempts are logged under the real clusters' names.) Safe
// methods and the route's idempotent ones fall back on any failure (5xx,
// reset, connection failure, the per-try timeout); other methods only when
// the candidate provably never saw the request.
//
// In canary, the plugin's rollout role sets each user's bucket
// (x-shadowlab-canary-bucket) and Envoy picks the route again; the routes
// that match the canary's buckets by range (and its tenants) come before
// the route's others. The share and the tenants are in the routes only:
// a percentage edit or a promotion changes no listener. Every
// request the candidate answers, and every failed attempt, is logged over
// gRPC to shadowlab (the xDS server), which counts the fallbacks by reason.

// Retry conditions of a candidate attempt.
const (
	retryAny    = "5xx,reset,connect-failure,refused-stream"
	retryUnseen = "connect-failure,refused-stream,reset-before-request"
)

// checkRollout reports what the options lack for p's rollouts.
func checkRollout(p *policy.Policy, opts Options) []error {
	for _, r := range p.Routes {
		if canary(r) && !opts.Wasm.set() {
			return []error{errors.New("canary needs the plugin, which picks the users the candidate answers (build it with `make build`; serve finds bin/shadowlab.wasm or takes --wasm)")}
		}
	}
	return nil
}

// rolledOut reports whether some route of p has a rollout block.
func rolledOut(p *policy.Policy) bool {
	return slices.ContainsFunc(p.Routes, func(r *policy.Route) bool { return r.Rollout != nil })
}

// canary reports whether route r is in canary.
func canary(r *policy.Route) bool { return r.Rollout != nil && r.Rollout.Stage == policy.StageCanary }

// rolloutWasmFilters are the plugin's rollout instances, one per route
// with a rollout block, whatever its stage (so that a stage edit changes
// routes only: a listener update would drain connections, and keep the
// users on them on the previous stage meanwhile), each off unless the
// route's own Envoy routes switch it on (in canary).
func rolloutWasmFilters(p *policy.Policy, opts Options) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	for _, r := range p.Routes {
		if r.Rollout == nil || !opts.Wasm.set() {
			continue
		}
		out = append(out, offPlugin(RolloutWasmFilter(r.Name), wire.RolloutRootID, RolloutConfig(r).AppendJSON(nil), opts))
	}
	return out
}

// RolloutConfig is the rollout instance's configuration for route r.
func RolloutConfig(r *policy.Route) wire.RolloutConfig {
	return wire.RolloutConfig{Route: r.Name, StickyHeader: r.Rollout.StickyOn}
}

// candidateRoutes are the Envoy routes by which the candidate answers
// route r's requests (in canary, those of the users whose bucket, set by
// the plugin, is below the share, of the tenants switched on): the methods
// that fall back on any failure, then the others. A canary of 0 % has none.
func candidateRoutes(r *policy.Route) []*routev3.Route {
	var mark []*routev3.HeaderMatcher
	if canary(r) {
		if r.Rollout.PerMillion == 0 {
			return nil
		}
		mark = []*routev3.HeaderMatcher{{Name: wire.HeaderCanaryBucket, HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{
			RangeMatch: &typev3.Int64Range{Start: 0, End: int64(r.Rollout.PerMillion)}}}}
		if t := r.Rollout.Tenants; t != nil {
			mark = append(mark, oneOfHeader(t.Header, t.Values, false))
		}
	}
	anyFailure, unseen := fallbackMethods(r)
	var out []*routev3.Route
	add := func(name string, methods *routev3.HeaderMatcher, retryOn string) {
		rt := primaryRoute(name, r, append(slices.Clone(mark), methods))
		action := rt.GetRoute()
		action.ClusterSpecifier = candidateThenPrimary(r)
		action.RetryPolicy = fallbackRetry(retryOn, r.Rollout.CandidateTimeout)
		rt.RequestHeadersToAdd = []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: wire.HeaderCanary, Value: r.Name},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}}
		rt.RequestHeadersToRemove = []string{wire.HeaderCanaryBucket}
		out = append(out, rt)
	}
	add(CandidateRouteName(r.Name), methodHeader(anyFailure, false), retryAny)
	switch {
	case unseen == nil: // every other method
		add(CandidateUnsafeRouteName(r.Name), methodHeader(anyFailure, true), retryUnseen)
	case len(unseen) > 0:
		add(CandidateUnsafeRouteName(r.Name), methodHeader(unseen, false), retryUnseen)
	}
	return out
}

// candidateThenPrimary is the cluster specifier that sends a request's
// first attempt to the candidate's cluster and its retry to the primary's
// (with the retry policy's refresh_cluster_on_retry).
func candidateThenPrimary(r *policy.Route) *routev3.RouteAction_InlineClusterSpecifierPlugin {
	group := func(name, cluster string) *prioritygroupv3.PriorityGroup {
		return &prioritygroupv3.PriorityGroup{Name: name, Clusters: []*prioritygroupv3.ClusterWeight{{ClusterName: cluster, Weight: wrapperspb.UInt32(1)}}}
	}
	return &routev3.RouteAction_InlineClusterSpecifierPlugin{InlineClusterSpecifierPlugin: &routev3.ClusterSpecifierPlugin{
		Extension: &corev3.TypedExtensionConfig{
			Name: "envoy.router.cluster_specifier_plugin.priority_group",
			TypedConfig: mustAny(&prioritygroupv3.PriorityGroupClusterSpecifier{PriorityGroups: []*prioritygroupv3.PriorityGroup{
				group("candidate", ServiceCluster(r.Shadow.Service.Name)), group("primary", ServiceCluster(r.Primary.Name)),
			}}),
		},
	}}
}

// candidateService reports whether service s answers some route's users as
// its candidate.
func candidateService(p *policy.Policy, s *policy.Service) bool {
	return slices.ContainsFunc(p.Routes, func(r *policy.Route) bool { return r.Candidate() && r.Shadow.Service == s })
}

// unlimitRetries lifts Envoy's default of three retries in flight at once
// on a candidate's cluster, where the fallback retries are counted: every
// request that fails on the candidate must reach the primary, however many
// fail at once.
func unlimitRetries(c *clusterv3.Cluster) {
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority:   corev3.RoutingPriority_DEFAULT,
		MaxRetries: wrapperspb.UInt32(1 << 30),
	}}}
}

// fallbackMethods splits route r's methods into those that fall back on
// any failure (safe and declared idempotent) and the others; others is
// nil when the route matches any method (every method not in the first).
func fallbackMethods(r *policy.Route) (anyFailure, others []string) {
	safe, unsafe := policy.SplitMethods(r.Match.Methods)
	anyFailure = slices.Clone(safe)
	if unsafe == nil {
		return append(anyFailure, r.Rollout.Idempotent...), nil
	}
	others = []string{}
	for _, m := range unsafe {
		if slices.Contains(r.Rollout.Idempotent, m) {
			anyFailure = append(anyFailure, m)
		} else {
			others = append(others, m)
		}
	}
	return anyFailure, others
}

// fallbackRetry is one retry, on the cluster picked again (the primary's:
// candidateThenPrimary), at once (1 ms back-off: the candidate failing is
// not the primary's fault), each attempt bounded by perTry.
func fallbackRetry(retryOn string, perTry time.Duration) *routev3.RetryPolicy {
	rp := &routev3.RetryPolicy{
		RetryOn:               retryOn,
		NumRetries:            wrapperspb.UInt32(1),
		RefreshClusterOnRetry: true,
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(time.Millisecond),
			MaxInterval:  durationpb.New(time.Millisecond),
		},
	}
	if retryOn == retryAny {
		rp.PerTryTimeout = durationpb.New(perTry)
	}
	return rp
}

// rolloutLogs are the access logs of the candidate's requests (on the
// connection manager: one entry per request it answered, with the number
// of attempts) and of its failed attempts (on the router: one entry per
// failure, with its code and flags), both to shadowlab over gRPC. Only
// requests with the canary mark are logged, and only failures per attempt.
func rolloutLogs(p *policy.Policy) (requests, failures []*accesslogv3.AccessLog) {
	if !rolledOut(p) {
		return nil, nil // as the rollout instances: whatever the stages
	}
	headers := []string{wire.HeaderCanary}
	for _, r := range p.Routes {
		if h := r.TenantHeader(); r.Rollout != nil && h != "" && !slices.Contains(headers, h) {
			headers = append(headers, h)
		}
	}
	slices.Sort(headers[1:])
	logger := mustAny(&grpclogv3.HttpGrpcAccessLogConfig{
		CommonConfig: &grpclogv3.CommonGrpcAccessLogConfig{
			LogName: wire.RolloutLogName,
			GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
				EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster}}},
			TransportApiVersion: corev3.ApiVersion_V3,
			BufferFlushInterval: durationpb.New(200 * time.Millisecond),
			BufferSizeBytes:     wrapperspb.UInt32(16 << 10),
		},
		AdditionalRequestHeadersToLog: headers,
	})
	marked := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
		HeaderFilter: &accesslogv3.HeaderFilter{Header: &routev3.HeaderMatcher{
			Name: wire.HeaderCanary, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}}}
	status := func(op accesslogv3.ComparisonFilter_Op, code uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
				Op: op, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "shadowlab.rollout.log_status"}}}}}
	}
	failed := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{
		Filters: []*accesslogv3.AccessLogFilter{marked, {FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{
			Filters: []*accesslogv3.AccessLogFilter{
				status(accesslogv3.ComparisonFilter_GE, 500),
				status(accesslogv3.ComparisonFilter_EQ, 0),
				{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{}}},
			}}}}},
	}}}
	log := func(f *accesslogv3.AccessLogFilter) []*accesslogv3.AccessLog {
		return []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.http_grpc", Filter: f,
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: logger}}}
	}
	return log(marked), log(failed)
}
