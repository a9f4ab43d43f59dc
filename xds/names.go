package xds

import (
	"fmt"
	"hash/fnv"

	"github.com/shadowlab/shadowlab/wire"
)

// Every Envoy-facing name shadowlab produces comes from this file: clusters,
// listeners, route configurations, runtime keys, stat prefixes and filters.
// Changing one is a breaking change for dashboards and for Envoys that are
// already running, so they are kept short and stable. What crosses the
// boundary at run time (headers, metadata, the plugin's configuration and
// reports) is package wire's.

const (
	// RuntimeLayer prefixes the RTDS layers (RuntimeShardName); it was the
	// one layer's name before they were split, which an Envoy asking for
	// it has a bootstrap from before.
	RuntimeLayer = "shadowlab"

	// XDSCluster is the bootstrap's static cluster for the control plane.
	XDSCluster = "shadowlab_xds"

	// NodeCluster is the node.cluster of every Envoy shadowlab bootstraps.
	NodeCluster = "shadowlab"

	// VirtualHost is the single virtual host of every route configuration.
	VirtualHost = "shadowlab"

	// EarlyHeaderMutation is the connection manager's early header
	// mutation that removes the x-shadowlab-* headers (and, unless trusted,
	// the request ID) of every client request.
	EarlyHeaderMutation = "shadowlab.strip_client_headers"
)

// ListenerName is the Envoy listener for policy listener l.
func ListenerName(l string) string { return "listener/" + l }

// RouteConfigName is the RDS route configuration of policy listener l.
func RouteConfigName(l string) string { return "routes/" + l }

// StatPrefix is the HTTP connection manager stat prefix of listener l.
func StatPrefix(l string) string { return "shadowlab_" + l }

// ServiceCluster is the cluster primary traffic to service s goes to.
func ServiceCluster(s string) string { return "service/" + s }

// ShadowCluster is the cluster route r mirrors to. Each mirrored route has
// its own, so its circuit breakers (and later its capture filter) belong to
// that route alone, and the cluster name identifies the route.
func ShadowCluster(r string) string { return "shadow/" + r }

// MirrorRouteName names the Envoy route that mirrors requests of policy route
// r (safe methods, selected tenants).
func MirrorRouteName(r string) string { return r }

// MirrorUnsafeRouteName names the Envoy route that mirrors opted-in unsafe
// methods of route r with the dry-run marker.
func MirrorUnsafeRouteName(r string) string { return r + "/unsafe" }

// DirectRouteName names the Envoy route that sends requests of route r to the
// primary only (everything the mirror routes did not take).
func DirectRouteName(r string) string { return r + "/direct" }

// MirrorPercentKey is the runtime key holding route r's mirror percentage.
func MirrorPercentKey(r string) string { return "shadowlab.mirror." + r }

const (
	// AdmissionExtProcFilter is the HTTP filter name of the global admission
	// filter: a second, non-observing ext_proc, on routes with global scope.
	AdmissionExtProcFilter = "shadowlab.admission.global"
	// AdmissionCluster is the cluster of the global admission server.
	AdmissionCluster = "shadowlab_admission"
	// AdmissionStatPrefix prefixes the global admission filter's stats.
	AdmissionStatPrefix = "shadowlab_admission"
	// AdmissionClusterMaxRequests is the admission cluster's circuit
	// breaker: one gRPC stream per request on a global-admission route,
	// held ones included. The admission server's own cap on held requests
	// (extproc.AdmitterConfig.MaxHeld, default 5 000) stays below it, so
	// the server refuses before Envoy's breaker opens; past the breaker a
	// request passes unadmitted (failure_mode_allow) and Envoy counts it.
	AdmissionClusterMaxRequests = 20_000

	// APICluster reaches shadowlab's HTTP API: Envoy fetches the wasm
	// plugin from it and the plugin reports its admission counts to it.
	APICluster = "shadowlab_api"
	// WasmVMID is the vm_id of every shadowlab plugin instance: they share
	// one VM per worker and one shared-data namespace.
	WasmVMID = "shadowlab"
	// APIAuthority is the :authority of the requests Envoy makes to the API
	// (the plugin's code; its reports use wire.ReportAuthority).
	APIAuthority = wire.ReportAuthority
)

// AdmissionWasmFilter is the HTTP filter name of the local admission plugin
// instance of policy route r.
func AdmissionWasmFilter(r string) string { return "shadowlab.admission.local/" + r }

// CaptureWasmFilter is the HTTP filter name of the capture plugin's
// instance, one per listener, which records the primary's answers of the
// routes that switch it on, each by the settings in its route metadata.
const CaptureWasmFilter = "shadowlab.capture"

// WasmCodePath is the API path serving the plugin whose SHA-256 is sha
// (hex).
func WasmCodePath(sha string) string { return "/wasm/" + sha + ".wasm" }

// RolloutWasmFilter is the plugin's rollout instance of route r.
func RolloutWasmFilter(r string) string { return "shadowlab.rollout/" + r }

// CandidateRouteName is the Envoy route by which the candidate answers
// route r's requests that fall back on any failure;
// CandidateUnsafeRouteName the one for its other methods.
func CandidateRouteName(r string) string       { return r + "/candidate" }
func CandidateUnsafeRouteName(r string) string { return r + "/candidate/unsafe" }

// ScopesName is the scoped routes (SRDS) configuration of listener l.
func ScopesName(l string) string { return "scopes/" + l }

// ScopeName is the scope of listener l's requests whose first path segment
// is seg; SegmentRouteConfigName its route configuration.
func ScopeName(l, seg string) string              { return "scope/" + l + "/" + seg }
func SegmentRouteConfigName(l, seg string) string { return "routes/" + l + "/" + seg }

// RuntimeShards is the number of RTDS layers the mirror percentages are
// spread over (RuntimeShard): a percentage edit sends Envoy the layer of
// its route, with about 1/RuntimeShards of the keys, not all of them. Not
// more: Envoy rebuilds its runtime snapshot from every layer each time one
// loads, and starting with 256 layers of 10 000 keys took it 5.5 s (16: well
// under a second).
const RuntimeShards = 16

// RuntimeShardName is the RTDS layer (and Runtime resource) of shard i.
func RuntimeShardName(i int) string { return fmt.Sprintf("%s/%x", RuntimeLayer, i) }

// RuntimeShard is the shard whose layer holds route r's percentage: FNV-1a
// of the name, so a route keeps its layer whatever else changes.
func RuntimeShard(r string) int {
	h := fnv.New32a()
	h.Write([]byte(r))
	return int(h.Sum32() % RuntimeShards)
}
