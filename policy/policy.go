// Package policy is shadowlab's one model: what to mirror, to where, how to
// compare, and how to admit bursts. Parse decodes a YAML file, checks it and
// compiles it in one pass into an immutable *Policy: every default
// resolved, every grammar (rate, duration, JSON path, header name) parsed
// once, comparison rules compiled, admission budgets built, routes and
// services by name. Nothing downstream (xds, extproc, report, the plugin's
// configuration) re-reads YAML, re-validates or re-derives a decision; a
// new policy is a new value that consumers swap in atomically.
package policy

import (
	"slices"
	"time"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/grpcmsg"
	"github.com/shadowlab/shadowlab/wire"
)

// Policy is a compiled policy. It is immutable: the control plane, the
// capture pairer and the admission server share one pointer.
type Policy struct {
	Listeners []*Listener // in policy order
	Services  []*Service  // sorted by name
	Routes    []*Route    // in policy order: the first match wins

	// Hash is the hex SHA-256 of the compiled policy (defaults resolved):
	// equal policies have equal hashes.
	Hash string

	routes   map[string]*Route
	services map[string]*Service
}

// Route returns the route named name, or nil.
func (p *Policy) Route(name string) *Route { return p.routes[name] }

// Service returns the service named name, or nil.
func (p *Policy) Service(name string) *Service { return p.services[name] }

// AdmissionRoutes are the routes with admission of the given scope, in
// policy order.
func (p *Policy) AdmissionRoutes(scope wire.Scope) []*Route {
	var out []*Route
	for _, r := range p.Routes {
		if r.Admission != nil && r.Admission.Scope == scope {
			out = append(out, r)
		}
	}
	return out
}

// Listener is one downstream address Envoy listens on.
type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"` // host:port, an IP literal or "localhost"

	// TrustRequestID keeps a client-supplied x-request-id instead of
	// replacing it (Envoy preserve_external_request_id). Default false:
	// clients cannot forge the ID that pairs primary and shadow.
	TrustRequestID bool `json:"trustRequestID"`

	// Routes are the routes served here, in policy order.
	Routes []*Route `json:"-"`
}

// Service is an upstream: a set of static endpoints.
type Service struct {
	Name           string        `json:"name"`
	Endpoints      []string      `json:"endpoints"` // host:port each, at least one
	ConnectTimeout time.Duration `json:"connectTimeout"`
	Protocol       Protocol      `json:"protocol"`
	TLS            *TLS          `json:"tls"`            // nil: plaintext
	GRPC           *GRPC         `json:"grpc,omitempty"` // nil: not a gRPC service (omitted: hashes of policies without gRPC are unchanged)
}

// GRPC is how a gRPC service's messages are decoded for comparison: with
// the descriptors of a FileDescriptorSet file, or asked of the service's
// own server reflection. Each side of a pair is decoded with its own
// service's descriptors.
type GRPC struct {
	Descriptors string `json:"descriptors,omitempty"` // a FileDescriptorSet file (protoc --include_imports --descriptor_set_out, buf build -o)
	Reflection  bool   `json:"reflection,omitempty"`
	// Files are the descriptors read from Descriptors when the policy was
	// loaded; nil with Reflection.
	Files *grpcmsg.Files `json:"-"`
	// DescriptorsHash is the hex SHA-256 of the Descriptors file as read,
	// so that a route's hash changes with the file.
	DescriptorsHash string `json:"descriptorsHash,omitempty"`
}

// Protocol is how a service is spoken to.
type Protocol string

// Protocols. ProtocolAuto is HTTP/1.1 in plaintext and, with TLS, whatever
// ALPN agrees (h2 or http/1.1); ProtocolHTTP2 is h2c in plaintext.
const (
	ProtocolAuto  Protocol = "auto"
	ProtocolHTTP1 Protocol = "http1"
	ProtocolHTTP2 Protocol = "http2"
)

// TLS is how a service's connections are secured: files read by Envoy
// (the primary) and by shadowlab's gateway (the shadow), PEM encoded.
type TLS struct {
	CA         string `json:"ca"`         // the roots the server is verified against (required)
	Cert       string `json:"cert"`       // client certificate (mTLS), with Key; "": none
	Key        string `json:"key"`        // its private key
	ServerName string `json:"serverName"` // SNI and the name verified; default the endpoints' one host
}

// Route is one thing the user wants routed, and maybe mirrored, compared
// and admitted.
type Route struct {
	Name    string   `json:"name"`
	Match   Match    `json:"match"`
	Primary *Service `json:"primary"`

	// Listeners names the listeners the route is served on; nil is all.
	Listeners []string `json:"listeners"`

	// Timeout of the whole upstream request, primary and shadow alike.
	Timeout time.Duration `json:"timeout"`

	Shadow    *Shadow    `json:"shadow"`    // nil: not mirrored
	Admission *Admission `json:"admission"` // nil: no admission control
	Rollout   *Rollout   `json:"rollout"`   // nil: shadow only, never moved on

	// Hash is the hex SHA-256 of the route as compiled, its services
	// included: a route whose hash is unchanged translates the same.
	Hash string `json:"-"`

	match *compiledMatch // Match with its regexes compiled (match.go)
}

// Match selects requests. Exactly one of PathPrefix, Path, PathRegex, GRPC
// is written; GRPC compiles to PathPrefix ("/pkg.Service/") or Path
// ("/pkg.Service/Method"), which is what everything downstream matches on.
type Match struct {
	// GRPC is a gRPC service ("shop.v1.Orders") or method
	// ("shop.v1.Orders/GetOrder"), fully qualified.
	GRPC       string        `yaml:"grpc" json:"grpc,omitempty"`
	PathPrefix string        `yaml:"pathPrefix" json:"pathPrefix,omitempty"`
	Path       string        `yaml:"path" json:"path,omitempty"`
	PathRegex  string        `yaml:"pathRegex" json:"pathRegex,omitempty"` // RE2, whole-path match
	Methods    []string      `yaml:"methods" json:"methods,omitempty"`     // upper case; empty means any
	Headers    []HeaderMatch `yaml:"headers" json:"headers,omitempty"`     // all must match
}

// HeaderMatch matches one request header. Exactly one of Exact, Prefix,
// Regex, Present is set.
type HeaderMatch struct {
	Name    string `yaml:"name" json:"name"` // lower case
	Exact   string `yaml:"exact" json:"exact,omitempty"`
	Prefix  string `yaml:"prefix" json:"prefix,omitempty"`
	Regex   string `yaml:"regex" json:"regex,omitempty"`
	Present *bool  `yaml:"present" json:"present,omitempty"`
	Invert  bool   `yaml:"invert" json:"invert,omitempty"`
}

// Shadow says where and how much of a route's traffic is mirrored, and how
// the two answers are compared.
type Shadow struct {
	Service *Service `json:"service"`

	// Percent of matching requests mirrored, 0–100, as written.
	Percent float64 `json:"percent"`
	// PerMillion is Percent as Envoy samples it: a fraction of a million
	// (resolution 0.0001 %), rounded.
	PerMillion uint32 `json:"-"`

	// Tenants limits mirroring to clients whose header value is listed.
	// nil: every client.
	Tenants *Tenants `json:"tenants"`

	// UnsafeMethods mirrors POST/PUT/PATCH/DELETE (and any other method not
	// in SafeMethods) too, marked x-shadowlab-dry-run: 1.
	UnsafeMethods bool `json:"unsafeMethods"`

	// MaxConcurrent caps in-flight requests to the shadow, per Envoy and
	// in shadowlab's gateway.
	MaxConcurrent uint32 `json:"maxConcurrent"`

	// MaxRequestBytes bounds a mirrored request's body: a larger request
	// is not mirrored, and counted (its pair is skipped, not a finding).
	MaxRequestBytes int64 `json:"maxRequestBytes"`

	// Capture compares the shadow's answers with the primary's (through
	// shadowlab's gateway). Default true; false mirrors straight to the
	// shadow service and compares nothing (a dark launch, a load test).
	Capture bool `json:"capture"`

	// StickyOn samples users instead of requests: a user (this request
	// header's value, else the client's address) is mirrored on every
	// request or on none, at Percent of the users. "": each request is
	// sampled on its own (by x-request-id).
	StickyOn string `json:"stickyOn,omitempty"`

	Compare Compare `json:"compare"`
}

// Tenants is the incremental, client-by-client enablement.
type Tenants struct {
	Header string   `yaml:"header" json:"header"` // lower case
	Values []string `yaml:"values" json:"values"` // at least one, unique
}

// Compare is how a mirrored route's answers are compared.
type Compare struct {
	// Spec is the comparison as written; Rules is it compiled.
	Spec  compare.Spec   `json:"spec"`
	Rules *compare.Rules `json:"-"`

	// VaryOn are request headers (lower case) whose values make requests
	// different for noise learning, besides the method, path and query,
	// tenant, body, Cookie and Authorization; they enter the request's
	// fingerprint only as a keyed hash.
	VaryOn []string `json:"varyOn"`

	// LearnNoise learns the fields that vary between identical requests.
	LearnNoise bool `json:"learnNoise"`
	// MaxBodyBytes bounds each half's body; a larger pair is skipped.
	MaxBodyBytes int64 `json:"maxBodyBytes"`

	// Hash is the hex SHA-256 of the above: consumers keep what they
	// learned under a compare block while its hash is unchanged.
	Hash string `json:"-"`
}

// Admission is a route's admission budget.
type Admission struct {
	// Rate as written ("100/s"), for messages and reports.
	Rate string `json:"rate"`
	// Budget is the algorithm's configuration: the rate as Limit per
	// Window, MaxDelay, Mode, and the release slack of the scope.
	Budget admission.Config `json:"budget"`
	Scope  wire.Scope       `json:"scope"`
	// KeyHeader splits the budget per value of this request header; "" is
	// one budget for the route.
	KeyHeader string `json:"keyHeader"`
}

// Defaults, documented in README's policy reference.
const (
	DefaultConnectTimeout  = time.Second
	DefaultRouteTimeout    = 15 * time.Second
	DefaultMaxConcurrent   = uint32(100)
	DefaultMaxBodyBytes    = int64(1 << 20)
	DefaultMaxRequestBytes = int64(1 << 20)
)

// Limits on a policy, documented in README's policy reference. Parse
// checks each, so a policy over any of them is refused whole before
// anything is translated.
//
// A file over MaxFileBytes is refused before it is read, and one whose
// text could make more than MaxYAMLNodes YAML nodes before it is parsed
// (yaml.v3 keeps every node of the file at once: about 200 bytes each).
// A list or map over its limit is one problem at its path and line, and
// nothing in it is checked; so is a string over its limit. The per-field
// limits are for what reaches Envoy or is large by nature; every other
// list is limited to MaxListItems and every other string to
// MaxStringBytes. A regex Envoy would refuse (see regexProgramSize), and a
// list of tenants or methods that Envoy would match with such a regex, are
// problems too.
const (
	MaxFileBytes = 32 << 20  // the policy file: 50 000 routes, one flow-style line each with methods and tenants, are 8.8 MiB
	MaxYAMLNodes = 8_000_000 // an upper bound counted from the text (yamlNodeBound); those 50 000 routes are 2.7 million

	MaxRoutes    = 50_000 // routes
	MaxListeners = 64     // listeners, and a route's listeners
	MaxServices  = 10_000 // services
	MaxEndpoints = 1_000  // a service's endpoints
	MaxListItems = 256    // any other list: match.methods, match.headers, tenants.values, compare's lists, rollout.idempotent

	MaxPathBytes        = 4096 // match.path, match.pathPrefix
	MaxRegexBytes       = 1024 // match.pathRegex, match.headers[].regex
	MaxHeaderNameBytes  = 256  // header names (match.headers[].name, tenants.header, compare.headers, compare.varyOn, admission.key), match.methods
	MaxHeaderValueBytes = 4096 // match.headers[].exact and .prefix, tenants.values
	MaxStringBytes      = 4096 // any other string, and mapping keys

	// MaxRegexProgramSize is Envoy's default limit on the size of a
	// regex's RE2 program (runtime re2.max_program_size.error_level).
	MaxRegexProgramSize = 100

	// MaxProblems bounds the problems an *Error lists; the others are
	// counted (Error.More).
	MaxProblems = 1000
)

// AdmissionHoldMargin is added to a held request's delay when the global
// admission server asks Envoy to wait for it (override_message_timeout), and
// to the longest maxDelay when the translator sets the ext_proc filter's
// max_message_timeout: the release is never cut short by Envoy's timer.
const AdmissionHoldMargin = time.Second

// Release slack of each scope (admission.Config.Slack). The wasm plugin
// releases held requests from a timer tick (wire.DefaultTickMs); a released
// request then still has to be forwarded, so the schedule allows
// LocalAdmissionSlack of lateness per release and the limit holds at the
// upstream, not only at the release. The global server releases from a Go
// timer and sends one gRPC message to Envoy, which then forwards it. Both
// were sized on a 2-vCPU machine: loaded, at the start of a burst the
// worker that decides on hundreds of requests also runs the ticks, and
// releases due meanwhile leave late together (with 50 ms and 20 ms, 1 s
// windows at the upstream saw up to 112 and 106 requests at 100/s); and
// saturated (a busy loop per core), the global scope's message to Envoy and
// Envoy's forwarding bunched releases that serve had spaced (50 ms: up to
// 111 at 100/s; 100 ms: up to 113 with the budget shared by two replicas
// through two Envoys; 150 ms: 97 to 101). The cost is throughput: a schedule admits Limit per Window+Slack.
// Windows shorter than MinAdmissionWindow are refused: no scope can release
// that precisely.
const (
	LocalAdmissionSlack  = 100 * time.Millisecond
	GlobalAdmissionSlack = 150 * time.Millisecond
	MinAdmissionWindow   = 100 * time.Millisecond
)

// SafeMethods are mirrored without opting in.
var SafeMethods = []string{"GET", "HEAD", "OPTIONS"}

// SplitMethods splits a route's methods into safe and unsafe ones. With no
// methods (any method), safe is SafeMethods and unsafe is nil, meaning
// "every other method"; otherwise unsafe is non-nil (maybe empty).
func SplitMethods(methods []string) (safe, unsafe []string) {
	if len(methods) == 0 {
		return SafeMethods, nil
	}
	unsafe = []string{}
	for _, m := range methods {
		if slices.Contains(SafeMethods, m) {
			safe = append(safe, m)
		} else {
			unsafe = append(unsafe, m)
		}
	}
	return safe, unsafe
}
