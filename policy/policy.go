// Package policy is shadowlab's one model: what to mirror, to where, how to
// compare, and how to admit bursts. Load parses and validates a YAML file into
// an immutable *Policy with every default applied; nothing downstream (xds,
// extproc, report) re-reads YAML or re-validates.
package policy

import (
	"github.com/shadowlab/shadowlab/admission"
	"strings"
	"time"
)

// Policy is a validated, defaulted policy. Treat it as immutable once Load
// returns it: the control plane and the ext_proc server share one pointer.
type Policy struct {
	Version   int                `yaml:"version"`
	Listeners []Listener         `yaml:"listeners"`
	Services  map[string]Service `yaml:"services"`
	Routes    []Route            `yaml:"routes"`

	// Hash is the hex SHA-256 of the canonical form of the policy (set by
	// Load, never read from YAML). Equal policies have equal hashes.
	Hash string `yaml:"-"`
}

// Listener is one downstream address Envoy listens on. Every listener serves
// every route unless a route names its listeners.
type Listener struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"` // host:port, IPv4/IPv6 literal or "localhost"

	// TrustRequestID keeps a client-supplied x-request-id instead of
	// replacing it (Envoy preserve_external_request_id). Default false:
	// clients cannot forge the ID that pairs primary and shadow.
	TrustRequestID bool `yaml:"trustRequestID"`
}

// Service is an upstream: a set of static endpoints.
type Service struct {
	Endpoints []string `yaml:"endpoints"` // host:port each, at least one

	// ConnectTimeout for new upstream connections. Default 1s.
	ConnectTimeout *Duration `yaml:"connectTimeout"`
}

// Route is one thing the user wants routed (and maybe mirrored).
type Route struct {
	Name    string `yaml:"name"`
	Match   Match  `yaml:"match"`
	Primary string `yaml:"primary"` // service name

	// Listeners this route is served on; empty means all listeners.
	Listeners []string `yaml:"listeners"`

	// Timeout for the whole upstream request (primary and shadow alike).
	// Default 15s.
	Timeout *Duration `yaml:"timeout"`

	Shadow    *Shadow    `yaml:"shadow"`    // nil: not mirrored
	Compare   *Compare   `yaml:"compare"`   // nil: defaults (issue 3)
	Admission *Admission `yaml:"admission"` // nil: no admission control
}

// Match selects requests. Exactly one of PathPrefix, Path, PathRegex is set.
type Match struct {
	PathPrefix string        `yaml:"pathPrefix"`
	Path       string        `yaml:"path"`
	PathRegex  string        `yaml:"pathRegex"` // RE2, whole-path match
	Methods    []string      `yaml:"methods"`   // upper case; empty means any
	Headers    []HeaderMatch `yaml:"headers"`   // all must match
}

// HeaderMatch matches one request header. Exactly one of Exact, Prefix,
// Regex, Present is set.
type HeaderMatch struct {
	Name    string `yaml:"name"` // lower case
	Exact   string `yaml:"exact"`
	Prefix  string `yaml:"prefix"`
	Regex   string `yaml:"regex"`
	Present *bool  `yaml:"present"`
	Invert  bool   `yaml:"invert"`
}

// Shadow says where and how much of a route's traffic is mirrored.
type Shadow struct {
	Service string `yaml:"service"`

	// Percent of matching requests mirrored, 0–100, fractional allowed
	// (resolution 0.0001 %). Required. Served over RTDS, so changing it does
	// not rewrite routes.
	Percent *float64 `yaml:"percent"`

	// Tenants limits mirroring to clients whose header value is listed.
	// nil: every client.
	Tenants *Tenants `yaml:"tenants"`

	// UnsafeMethods mirrors POST/PUT/PATCH/DELETE (and any other non-safe
	// method) too, marked x-shadowlab-dry-run: 1. Default false: only GET,
	// HEAD and OPTIONS are mirrored.
	UnsafeMethods bool `yaml:"unsafeMethods"`

	// MaxConcurrent caps in-flight (and pending) requests to the shadow
	// service per Envoy, so a slow shadow cannot pile up. Default 100.
	MaxConcurrent *uint32 `yaml:"maxConcurrent"`
}

// Tenants is the incremental, client-by-client enablement.
type Tenants struct {
	Header string   `yaml:"header"` // lower case
	Values []string `yaml:"values"` // at least one, unique
}

// Compare configures how responses are compared (used from issue 3 on).
type Compare struct {
	Ignore           []string `yaml:"ignore"`           // JSON paths, e.g. $.items[*].id
	NumericTolerance *float64 `yaml:"numericTolerance"` // >= 0; default 0
	UnorderedArrays  []string `yaml:"unorderedArrays"`  // JSON paths
	Headers          []string `yaml:"headers"`          // response headers compared, lower case
	LearnNoise       *bool    `yaml:"learnNoise"`       // default true
	Redact           []string `yaml:"redact"`           // JSON field names never stored
	MaxBodyBytes     *int64   `yaml:"maxBodyBytes"`     // per half; default 1 MiB
}

// Admission configures jittered admission (used from issue 4 on).
type Admission struct {
	Rate     string    `yaml:"rate"`     // "100/s", "10000/15m": count per window
	MaxDelay *Duration `yaml:"maxDelay"` // required for mode delay
	Key      string    `yaml:"key"`      // "route" (default) or "header:<name>"
	Mode     string    `yaml:"mode"`     // delay (default) | reject | observe
	Scope    string    `yaml:"scope"`    // local (default) | global

	// Parsed from Rate by Load.
	Limit  int           `yaml:"-"`
	Window time.Duration `yaml:"-"`
}

// Admission modes and scopes.
const (
	ModeDelay   = "delay"
	ModeReject  = "reject"
	ModeObserve = "observe"

	ScopeLocal  = "local"
	ScopeGlobal = "global"

	KeyRoute        = "route"
	KeyHeaderPrefix = "header:"
)

// AdmissionHoldMargin is added to a held request's delay when the global
// admission server asks Envoy to wait for it (override_message_timeout), and
// to the longest maxDelay when the translator sets the ext_proc filter's
// max_message_timeout: the release is never cut short by Envoy's timer.
const AdmissionHoldMargin = time.Second

// Release granularity of each scope. The wasm plugin releases held requests
// from a timer tick (LocalAdmissionTick); a released request then still has
// to be forwarded, so the schedule allows LocalAdmissionSlack of lateness
// per release (admission.Config.Slack) and the limit holds at the upstream,
// not only at the release. The global server releases from a Go timer and
// sends one gRPC message, hence a smaller allowance. Both were sized on a
// loaded 2-vCPU machine: at the start of a burst the worker that decides
// on hundreds of requests also runs the ticks, and releases due meanwhile
// leave late together (with 50 ms and 20 ms, 1 s windows at the upstream
// saw up to 112 and 106 requests at 100/s). The cost is throughput: a
// schedule admits Limit per Window+Slack. Windows shorter than
// MinAdmissionWindow are refused: no scope can release that precisely.
const (
	LocalAdmissionTick   = 20 * time.Millisecond
	LocalAdmissionSlack  = 100 * time.Millisecond
	GlobalAdmissionSlack = 50 * time.Millisecond
	MinAdmissionWindow   = 100 * time.Millisecond
)

// Budget is the admission.Config of a (loaded, valid) admission block: its
// rate, maximum delay and mode, with the release slack of its scope.
func (a *Admission) Budget() admission.Config {
	mode, _ := admission.ParseMode(a.Mode)
	if a.Mode == "" {
		mode = admission.ModeDelay
	}
	c := admission.Config{Limit: a.Limit, Window: a.Window, Mode: mode, Slack: LocalAdmissionSlack}
	if a.Scope == ScopeGlobal {
		c.Slack = GlobalAdmissionSlack
	}
	if a.MaxDelay != nil {
		c.MaxDelay = a.MaxDelay.Duration
	}
	return c
}

// KeyHeader is the header whose value splits the budget ("" when the budget
// is the whole route's).
func (a *Admission) KeyHeader() string {
	h, ok := strings.CutPrefix(a.Key, KeyHeaderPrefix)
	if !ok {
		return ""
	}
	return h
}

// Defaults, documented in README's policy reference.
const (
	DefaultConnectTimeout = time.Second
	DefaultRouteTimeout   = 15 * time.Second
	DefaultMaxConcurrent  = uint32(100)
	DefaultMaxBodyBytes   = int64(1 << 20)
)

// SecretHeaders are never captured, stored, logged or compared.
var SecretHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// SplitUnordered splits an unorderedArrays entry, "<path>" or
// "<path> by <member>" (arrays of objects matched by that member), into
// its path and member; keyed reports whether " by " was there.
func SplitUnordered(s string) (path, member string, keyed bool) {
	path, member, keyed = strings.Cut(s, " by ")
	return strings.TrimSpace(path), strings.TrimSpace(member), keyed
}

// SafeMethods are mirrored without opting in.
var SafeMethods = []string{"GET", "HEAD", "OPTIONS"}

// Duration is a time.Duration written in YAML as a Go duration string
// ("1s", "250ms", "2m").
type Duration struct {
	time.Duration
}
