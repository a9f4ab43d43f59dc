package policy

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stage is where a route's rollout stands: who answers its users.
type Stage string

// Stages, in rollout order.
const (
	// StageShadow: the primary answers everyone; the candidate (the
	// shadow service) is mirrored to and compared.
	StageShadow Stage = "shadow"
	// StageCanary: the candidate answers Percent of the users (sticky, of
	// the listed tenants), falling back to the primary when it fails; the
	// others' requests are still mirrored to it.
	StageCanary Stage = "canary"
	// StagePromoted: the candidate answers everyone, falling back to the
	// primary when it fails.
	StagePromoted Stage = "promoted"
)

// Stages lists the stages in rollout order.
var Stages = []Stage{StageShadow, StageCanary, StagePromoted}

// Rollout moves a mirrored route's users to its shadow service, the
// candidate, on the comparison's evidence.
type Rollout struct {
	Stage Stage `json:"stage"`
	// Percent of the users the candidate answers in canary, 0–100, and
	// PerMillion it as a fraction of a million. A user is in the canary when
	// the hash of its sticky key, as a fraction of a million, is below
	// PerMillion: raising the percentage only adds users.
	Percent    float64 `json:"percent"`
	PerMillion uint32  `json:"-"`
	// StickyOn is the request header whose value identifies a user (say
	// x-user-id); "" or a request without it: the client's address.
	StickyOn string `json:"stickyOn"`
	// Tenants, when set, limits the canary to these values of a header:
	// the tenants switched on. nil: every tenant.
	Tenants *Tenants `json:"tenants"`
	// Idempotent are the unsafe methods the candidate may fall back on
	// whatever the failure (like GET). Other unsafe methods fall back only
	// when the candidate provably never saw the request (connection
	// refused or failed, stream refused, reset before the request was sent).
	Idempotent []string `json:"idempotent"`
	// CandidateTimeout bounds each attempt on the candidate and the
	// fallback attempt alike (Envoy's per-try timeout): a candidate slower
	// than it is abandoned for the primary. Default half the route's
	// timeout, so that both attempts fit.
	CandidateTimeout time.Duration `json:"candidateTimeout"`
	Gates            Gates         `json:"gates"`
	// AutoRollback returns the route to shadow (editing the policy file)
	// when a gate fails during canary.
	AutoRollback bool `json:"autoRollback"`
}

// TenantHeader is the header whose values the rollout's evidence is broken
// down by: the rollout's tenants header, else the shadow's; "" for none.
func (r *Route) TenantHeader() string {
	switch {
	case r.Rollout != nil && r.Rollout.Tenants != nil:
		return r.Rollout.Tenants.Header
	case r.Shadow != nil && r.Shadow.Tenants != nil:
		return r.Shadow.Tenants.Header
	}
	return ""
}

// TenantValues are the tenants whose evidence is kept apart (the others
// are folded into one): the rollout's and the shadow's tenants, in that
// order, each once.
func (r *Route) TenantValues() []string {
	var out []string
	h := r.TenantHeader()
	for _, t := range []*Tenants{rolloutTenants(r), shadowTenants(r)} {
		if t == nil || t.Header != h {
			continue
		}
		for _, v := range t.Values {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// TenantOf is the tenant a request's evidence is counted under, from the
// value of TenantHeader: the value itself when it is one of the first
// MaxTrackedTenants TenantValues, else OtherTenant; "" when the route has
// no tenants.
func (r *Route) TenantOf(value string) string {
	if r.TenantHeader() == "" {
		return ""
	}
	if i := slices.Index(r.TenantValues(), value); i >= 0 && i < MaxTrackedTenants && value != "" {
		return value
	}
	return OtherTenant
}

func rolloutTenants(r *Route) *Tenants {
	if r.Rollout == nil {
		return nil
	}
	return r.Rollout.Tenants
}

func shadowTenants(r *Route) *Tenants {
	if r.Shadow == nil {
		return nil
	}
	return r.Shadow.Tenants
}

// Candidate reports whether the candidate answers some of route r's users:
// its stage is canary or promoted.
func (r *Route) Candidate() bool {
	return r.Rollout != nil && r.Rollout.Stage != StageShadow
}

// Mirrored reports whether route r mirrors to its shadow: it has one, and
// the candidate does not answer everyone yet.
func (r *Route) Mirrored() bool {
	return r.Shadow != nil && (r.Rollout == nil || r.Rollout.Stage != StagePromoted)
}

// Gates are what a route's numbers must show, over Window, before it moves
// on. Too few pairs is inconclusive, never a pass.
type Gates struct {
	Window   time.Duration `json:"window"`
	MinPairs int           `json:"minPairs"`
	// MinMatchRate is match / (match + diff), 0–1.
	MinMatchRate float64 `json:"minMatchRate"`
	// MaxLatencyRatioP50 and P99 bound the shadow's (the candidate's)
	// latency percentile over the primary's, over the window's pairs.
	MaxLatencyRatioP50 float64 `json:"maxLatencyRatioP50"`
	MaxLatencyRatioP99 float64 `json:"maxLatencyRatioP99"`
	// LatencySlack passes a latency gate whatever the ratio when the
	// candidate is slower by no more than this: a ratio of sub-millisecond
	// latencies is noise, not a slower service.
	LatencySlack time.Duration `json:"latencySlack"`
	// MaxFallbackRate bounds fallbacks / requests the candidate answered,
	// 0–1; judged once the candidate answered MinCandidateRequests.
	MaxFallbackRate      float64 `json:"maxFallbackRate"`
	MinCandidateRequests int     `json:"minCandidateRequests"`
}

// Rollout defaults, documented in README's policy reference.
const (
	DefaultGateWindow           = 10 * time.Minute
	DefaultMinPairs             = 100
	DefaultMinMatchRate         = 0.99
	DefaultMaxLatencyRatioP50   = 1.25
	DefaultMaxLatencyRatioP99   = 1.5
	DefaultLatencySlack         = 5 * time.Millisecond
	DefaultMaxFallbackRate      = 0.01
	DefaultMinCandidateRequests = 100
	// MaxTrackedTenants bounds the tenants a route's evidence is kept for
	// apart; the others are folded into OtherTenant.
	MaxTrackedTenants = 32
	// OtherTenant is where the tenants beyond the tracked ones, and
	// requests without the header, are counted.
	OtherTenant   = "(other)"
	minGateWindow = time.Minute / 6
	maxGateWindow = 24 * time.Hour
)

type docRollout struct {
	Stage            string    `yaml:"stage"`
	Percent          *float64  `yaml:"percent"`
	StickyOn         string    `yaml:"stickyOn"`
	Tenants          *Tenants  `yaml:"tenants"`
	Idempotent       []string  `yaml:"idempotent"`
	CandidateTimeout *duration `yaml:"candidateTimeout"`
	Gates            *docGates `yaml:"gates"`
	AutoRollback     bool      `yaml:"autoRollback"`
}

type docGates struct {
	Window               *duration `yaml:"window"`
	MinPairs             *int      `yaml:"minPairs"`
	MinMatchRate         *float64  `yaml:"minMatchRate"`
	MaxLatencyRatioP50   *float64  `yaml:"maxLatencyRatioP50"`
	MaxLatencyRatioP99   *float64  `yaml:"maxLatencyRatioP99"`
	LatencySlack         *duration `yaml:"latencySlack"`
	MaxFallbackRate      *float64  `yaml:"maxFallbackRate"`
	MinCandidateRequests *int      `yaml:"minCandidateRequests"`
}

// rollout checks and compiles route r's rollout block (route out is
// compiled as far as it could be).
func (c *checker) rollout(path string, d *docRollout, r *docRoute, out *Route) *Rollout {
	ro := &Rollout{Stage: StageShadow, StickyOn: d.StickyOn, Tenants: d.Tenants, AutoRollback: d.AutoRollback,
		CandidateTimeout: out.Timeout / 2}
	if r.Shadow == nil {
		c.add(path, "rollout needs a shadow: the shadow service is the candidate that takes over")
	} else if r.Shadow.Capture != nil && !*r.Shadow.Capture {
		c.add(path, "rollout needs the comparison (shadow.capture: false compares nothing for its gates)")
	}
	if d.Stage != "" {
		ro.Stage = Stage(d.Stage)
		if !slices.Contains(Stages, ro.Stage) {
			c.add(fieldPath(path, "stage"), "must be shadow, canary or promoted (got %q)", clip(d.Stage))
		}
	}
	pp := fieldPath(path, "percent")
	switch p := d.Percent; {
	case p == nil:
		if ro.Stage == StageCanary {
			c.add(pp, "required with stage canary: the percent of users the candidate answers, 0 to 100")
		}
	case math.IsNaN(*p) || *p < 0 || *p > 100:
		c.add(pp, "must be between 0 and 100 (got %s)", strconv.FormatFloat(*p, 'g', -1, 64))
	default:
		ro.Percent = *p
		ro.PerMillion = uint32(math.Round(*p * 10_000))
	}
	if d.StickyOn != "" {
		c.headerName(fieldPath(path, "stickyOn"), d.StickyOn, false)
	}
	if d.Tenants != nil {
		c.tenants(fieldPath(path, "tenants"), d.Tenants)
	}
	ip := fieldPath(path, "idempotent")
	for i, m := range d.Idempotent {
		mp := itemPath(ip, i)
		switch up := strings.ToUpper(m); {
		case !isToken(m) || up != m:
			c.add(mp, "an upper-case HTTP method (got %q)", clip(m))
		case slices.Contains(SafeMethods, m):
			c.add(mp, "%s is safe: it falls back on any failure already", m)
		case slices.Contains(ro.Idempotent, m):
			c.add(mp, "duplicate method %s", m)
		default:
			ro.Idempotent = append(ro.Idempotent, m)
		}
	}
	if t := d.CandidateTimeout; t != nil {
		tp := fieldPath(path, "candidateTimeout")
		if t.Duration <= 0 || t.Duration > out.Timeout {
			c.add(tp, "must be greater than 0 and at most the route's timeout %s (got %s)", out.Timeout, t.Duration)
		}
		ro.CandidateTimeout = t.Duration
	}
	ro.Gates = c.gates(fieldPath(path, "gates"), d.Gates)
	return ro
}

// tenants checks a tenants block: a header and unique, non-empty values.
func (c *checker) tenants(path string, t *Tenants) {
	c.headerName(fieldPath(path, "header"), t.Header, false)
	vp := fieldPath(path, "values")
	if len(t.Values) == 0 {
		c.add(vp, "at least one value is required (omit tenants for every client)")
	}
	first := map[string]string{}
	valid := true
	for i, v := range t.Values {
		ip := itemPath(vp, i)
		switch f, dup := first[v]; {
		case v == "":
			c.add(ip, "must not be empty")
		case dup:
			c.add(ip, "duplicate value %q (first at %s)", clip(v), c.where(f))
		default:
			first[v] = ip
			continue
		}
		valid = false
	}
	if valid {
		c.oneOf(vp, t.Values, "values")
	}
}

// gates checks and compiles a gates block; nil is the defaults.
func (c *checker) gates(path string, d *docGates) Gates {
	g := Gates{Window: DefaultGateWindow, MinPairs: DefaultMinPairs, MinMatchRate: DefaultMinMatchRate,
		MaxLatencyRatioP50: DefaultMaxLatencyRatioP50, MaxLatencyRatioP99: DefaultMaxLatencyRatioP99, LatencySlack: DefaultLatencySlack,
		MaxFallbackRate: DefaultMaxFallbackRate, MinCandidateRequests: DefaultMinCandidateRequests}
	if d == nil {
		return g
	}
	if w := d.Window; w != nil {
		if w.Duration < minGateWindow || w.Duration > maxGateWindow {
			c.add(fieldPath(path, "window"), "must be between 10s and 24h (got %s)", w.Duration)
		}
		g.Window = w.Duration
	}
	count := func(name string, v *int, into *int) {
		if v == nil {
			return
		}
		if *v < 1 || *v > 1_000_000_000 {
			c.add(fieldPath(path, name), "must be between 1 and 1000000000 (got %d)", *v)
		}
		*into = *v
	}
	if ls := d.LatencySlack; ls != nil {
		if ls.Duration < 0 || ls.Duration > time.Minute {
			c.add(fieldPath(path, "latencySlack"), "must be between 0 and 1m (got %s)", ls.Duration)
		}
		g.LatencySlack = ls.Duration
	}
	count("minPairs", d.MinPairs, &g.MinPairs)
	count("minCandidateRequests", d.MinCandidateRequests, &g.MinCandidateRequests)
	fraction := func(name string, v *float64, into *float64) {
		if v == nil {
			return
		}
		if math.IsNaN(*v) || *v < 0 || *v > 1 {
			c.add(fieldPath(path, name), "a fraction between 0 and 1 (got %s; 99 %% is 0.99)", strconv.FormatFloat(*v, 'g', -1, 64))
		}
		*into = *v
	}
	fraction("minMatchRate", d.MinMatchRate, &g.MinMatchRate)
	fraction("maxFallbackRate", d.MaxFallbackRate, &g.MaxFallbackRate)
	ratio := func(name string, v *float64, into *float64) {
		if v == nil {
			return
		}
		if math.IsNaN(*v) || *v < 1 || *v > 1000 {
			c.add(fieldPath(path, name), "a ratio between 1 and 1000 (got %s)", strconv.FormatFloat(*v, 'g', -1, 64))
		}
		*into = *v
	}
	ratio("maxLatencyRatioP50", d.MaxLatencyRatioP50, &g.MaxLatencyRatioP50)
	ratio("maxLatencyRatioP99", d.MaxLatencyRatioP99, &g.MaxLatencyRatioP99)
	return g
}
