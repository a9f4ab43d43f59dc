package wire

// Headers on requests.
const (
	// HeaderRequestID pairs a primary request with its shadow. Envoy
	// generates it and copies it onto the mirror.
	HeaderRequestID = "x-request-id"
	// HeaderShadow marks a mirrored request ("1"). Envoy strips it from
	// client requests, so only the mirror can carry it.
	HeaderShadow = "x-shadowlab-shadow"
	// HeaderRoute names the policy route of a mirrored request: route
	// attributes are empty on Envoy's shadow requests.
	HeaderRoute = "x-shadowlab-route"
	// HeaderDryRun ("1") tells the shadow service that an unsafe method
	// reached it only to be compared: run it and roll it back.
	HeaderDryRun = "x-shadowlab-dry-run"

	// HeaderAdmission is set on requests that went through admission
	// (AdmissionPassed or AdmissionHeld) and on admission's 429 answers
	// (AdmissionRejected).
	HeaderAdmission = "x-shadowlab-admission"
	// HeaderHeldMs says how long a held request waited, in milliseconds.
	HeaderHeldMs = "x-shadowlab-held-ms"
	// HeaderRetryAfter is set on admission's 429 answers, whole seconds.
	HeaderRetryAfter = "retry-after"
)

// MarkOn is the value of HeaderShadow and HeaderDryRun.
const MarkOn = "1"

// Values of HeaderAdmission.
const (
	AdmissionPassed   = "passed"
	AdmissionHeld     = "held"
	AdmissionRejected = "rejected"
)

// HeaderPrefix starts every shadowlab request header. Envoy removes every
// header with it from client requests before its filters run, so only
// shadowlab (the mirror, the admission plugin and server) sets them.
const HeaderPrefix = "x-shadowlab-"

// HeaderScope is the scope key of a request on a listener whose routes are
// split by first path segment: "<listener><path without its query>",
// written by Envoy's early header mutation before the route is chosen and
// removed before the request leaves Envoy.
const HeaderScope = "x-shadowlab-scope"

// Marks are the headers that mark a mirrored request: only shadowlab's own
// configuration may set them.
var Marks = []string{HeaderShadow, HeaderRoute, HeaderDryRun}

// SecretHeaders never leave Envoy for shadowlab: they are never captured,
// stored, logged, exported or compared.
var SecretHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// MetadataRoute is the gRPC initial metadata, naming the policy route, with
// which Envoy opens a global admission stream.
const MetadataRoute = "x-shadowlab-route"
