package xds

// Every Envoy-facing name shadowlab produces comes from this file: clusters,
// listeners, route configurations, runtime keys, stat prefixes and headers.
// Changing one is a breaking change for dashboards and for Envoys that are
// already running, so they are kept short and stable.

const (
	// HeaderShadow marks a mirrored request ("1"). Stripped from client
	// requests, so only Envoy's mirror can set it.
	HeaderShadow = "x-shadowlab-shadow"
	// HeaderRoute names the policy route of a mirrored request; route
	// attributes are empty on shadow requests, so the shadow carries it.
	HeaderRoute = "x-shadowlab-route"
	// HeaderDryRun ("1") tells the shadow service an unsafe method reached it
	// only to be compared: run it in a transaction and roll it back.
	HeaderDryRun = "x-shadowlab-dry-run"
	// HeaderRequestID pairs a primary request with its shadow. Envoy
	// generates it and copies it onto the shadow.
	HeaderRequestID = "x-request-id"

	// RuntimeLayer is the RTDS layer (and Runtime resource) name.
	RuntimeLayer = "shadowlab"

	// XDSCluster is the bootstrap's static cluster for the control plane.
	XDSCluster = "shadowlab_xds"

	// NodeCluster is the node.cluster of every Envoy shadowlab bootstraps.
	NodeCluster = "shadowlab"

	// VirtualHost is the single virtual host of every route configuration.
	VirtualHost = "shadowlab"
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
	// ExtProcCluster is the cluster of shadowlab's ext_proc (capture) server.
	ExtProcCluster = "shadowlab_extproc"
	// ExtProcFilter is the HTTP filter name of the capture filter, downstream
	// (primary) and upstream on shadow clusters (shadow).
	ExtProcFilter = "envoy.filters.http.ext_proc"
	// ExtProcStatPrefix prefixes the capture filter's stats.
	ExtProcStatPrefix = "shadowlab_capture"

	// MetadataRoute and MetadataSide are the gRPC initial metadata with which
	// Envoy opens a capture stream: the policy route and the side. Route
	// attributes are empty on shadow requests, so both sides say it this way.
	MetadataRoute = "x-shadowlab-route"
	MetadataSide  = "x-shadowlab-side"

	SidePrimary = "primary"
	SideShadow  = "shadow"
)
