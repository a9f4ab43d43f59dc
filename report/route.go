package report

import (
	"cmp"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
)

// OtherPattern gathers the differences on patterns that arrived after a route
// already had Config.MaxPatternsPerRoute of them (and, in metrics, past
// Config.MaxMetricPatterns). Real patterns start with "$", "status", "header:"
// or "body", so it cannot collide with one.
const OtherPattern = "other"

// maxReasons bounds the distinct reasons kept per route and outcome.
const maxReasons = 32

// unspecifiedReason counts pairs recorded without a reason.
const unspecifiedReason = "unspecified"

// maxPairSignature bounds the patterns a stored recent pair keeps for
// re-classification; a pair with more stays a diff in GET /api/v1/pairs.
const maxPairSignature = 32

// maxPairDifferences bounds the differences listed per stored recent pair.
const maxPairDifferences = 10

// patKey identifies a difference by where (pattern) and what (kind).
type patKey struct {
	pattern string
	kind    compare.Kind
}

func comparePatKeys(a, b patKey) int {
	if c := strings.Compare(a.pattern, b.pattern); c != 0 {
		return c
	}
	return strings.Compare(string(a.kind), string(b.kind))
}

// outcomeKey counts non-compared pairs by outcome and reason.
type outcomeKey struct {
	outcome Outcome
	reason  string
}

// signature is a distinct set of differing patterns and how many compared
// pairs had exactly that set. The empty set ("" key) counts identical pairs.
type signature struct {
	keys  []patKey // sorted by comparePatKeys
	count int
}

// encodeSignature writes sorted keys as length-prefixed strings,
// "7:$.total7:changed": cheap, unambiguous whatever a pattern contains, and
// "" for no difference.
func encodeSignature(keys []patKey) string {
	var b []byte
	for _, k := range keys {
		b = strconv.AppendInt(b, int64(len(k.pattern)), 10)
		b = append(b, ':')
		b = append(b, k.pattern...)
		b = strconv.AppendInt(b, int64(len(k.kind)), 10)
		b = append(b, ':')
		b = append(b, k.kind...)
	}
	return string(b)
}

var errBadSignature = errors.New("bad signature")

func decodeSignature(s string) ([]patKey, error) {
	var keys []patKey
	next := func() (string, error) {
		i := strings.IndexByte(s, ':')
		if i <= 0 {
			return "", errBadSignature
		}
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > len(s)-i-1 {
			return "", errBadSignature
		}
		v := s[i+1 : i+1+n]
		s = s[i+1+n:]
		return v, nil
	}
	for s != "" {
		p, err := next()
		if err != nil {
			return nil, err
		}
		k, err := next()
		if err != nil {
			return nil, err
		}
		keys = append(keys, patKey{p, compare.Kind(k)})
	}
	for i := 1; i < len(keys); i++ {
		if comparePatKeys(keys[i-1], keys[i]) >= 0 {
			return nil, errBadSignature // not sorted or not distinct
		}
	}
	return keys, nil
}

// limits are the per-route caps of a Config, defaults applied.
type limits struct {
	samples, patterns, signatures int
}

// routeState is everything the report knows about one route. mu guards all
// of it; dead is set (under mu) when Reset dropped the state, so that a
// Record that raced with the Reset retries on the new state and the store
// writer skips what is still queued for it.
type routeState struct {
	mu   sync.Mutex
	name string
	dead atomic.Bool

	outcomes    map[outcomeKey]int // non-compared pairs
	sigs        map[string]*signature
	folded      map[patKey]int // per-pattern counts of folded pairs
	foldedPairs int
	patterns    map[patKey][]Sample // known patterns (the cap) and their samples
	noise       map[string]compare.NoisePath
	marks       map[string]int // echoed marks: pattern → pairs
	latency     [2]histogram
	history     history           // in memory only: see history.go
	tenants     map[string]*tally // in memory only

	dirty         bool // anything below is set
	dirtySigs     map[string]struct{}
	dirtyOutcomes map[outcomeKey]struct{}
	dirtyFolded   bool
	dirtyLatency  [2]bool
	dirtyNoise    bool
	dirtyMarks    bool
	newSamples    []sampleRow
}

func newRouteState(name string) *routeState {
	return &routeState{
		name:          name,
		outcomes:      map[outcomeKey]int{},
		sigs:          map[string]*signature{},
		folded:        map[patKey]int{},
		patterns:      map[patKey][]Sample{},
		noise:         map[string]compare.NoisePath{},
		marks:         map[string]int{},
		history:       history{},
		tenants:       map[string]*tally{},
		dirtySigs:     map[string]struct{}{},
		dirtyOutcomes: map[outcomeKey]struct{}{},
	}
}

// sampleRow is a sample as the store keeps it.
type sampleRow struct {
	key    patKey
	seq    int
	sample Sample
}

// recorded is what recordLocked hands back for metrics, logs and the store.
type recorded struct {
	keys      []patKey // distinct, folded into "other" past the cap
	allNoise  bool     // compared, with differences all on current noise
	newSample bool     // the pair is a sample of at least one pattern
}

// redactedHeaders are the difference paths whose excerpts are never kept,
// whatever the comparator did.
var redactedHeaders = map[string]bool{
	"header:authorization":       true,
	"header:proxy-authorization": true,
	"header:cookie":              true,
	"header:set-cookie":          true,
}

func redactExcerpt(path, v string) string {
	if v != "" && redactedHeaders[strings.ToLower(path)] {
		return compare.Redacted
	}
	if len(v) > compare.MaxExcerpt {
		v = strings.ToValidUTF8(v[:compare.MaxExcerpt], "")
	}
	return v
}

func compared(o Outcome) bool { return o == Match || o == Diff }

// recordLocked adds one pair to the aggregates. The caller holds rs.mu.
func (rs *routeState) recordLocked(p *Pair, at time.Time, lim limits) recorded {
	var rec recorded
	for i := range 2 {
		d := [2]time.Duration{p.PrimaryLatency, p.ShadowLatency}[i]
		if d > 0 {
			rs.latency[i].observe(d)
			rs.dirtyLatency[i] = true
		}
	}
	rs.dirty = true
	if !compared(p.Outcome) {
		rs.tallyLocked(p, at, nil, nil)
		reason := p.Reason
		if reason == "" {
			reason = unspecifiedReason
		}
		k := outcomeKey{p.Outcome, reason}
		if _, ok := rs.outcomes[k]; !ok && rs.reasonCount(p.Outcome) >= maxReasons {
			k.reason = OtherPattern
		}
		rs.outcomes[k]++
		rs.dirtyOutcomes[k] = struct{}{}
		return rec
	}

	for _, d := range uniqueMarks(p.Marks) {
		if _, ok := rs.marks[d]; ok || len(rs.marks) < lim.patterns {
			rs.marks[d]++
			rs.dirtyMarks = true
		}
	}

	// Distinct keys, folded past the pattern cap; first difference per key
	// for its sample.
	first := map[patKey]int{}
	for i, d := range p.Differences {
		k := patKey{d.Pattern, d.Kind}
		if _, ok := rs.patterns[k]; !ok && len(rs.patterns) >= lim.patterns {
			k.pattern = OtherPattern
		}
		if _, ok := first[k]; !ok {
			first[k] = i
			rec.keys = append(rec.keys, k)
		}
	}
	slices.SortFunc(rec.keys, comparePatKeys)
	for _, k := range rec.keys {
		samples, known := rs.patterns[k]
		if !known {
			rs.patterns[k] = nil
		}
		if len(samples) < lim.samples {
			d := p.Differences[first[k]]
			s := Sample{
				RequestID: p.RequestID,
				Path:      d.Path,
				Primary:   redactExcerpt(d.Path, d.Primary),
				Shadow:    redactExcerpt(d.Path, d.Shadow),
				At:        at,
			}
			rs.patterns[k] = append(samples, s)
			rs.newSamples = append(rs.newSamples, sampleRow{k, len(samples), s})
			rec.newSample = true
		}
	}

	sig := encodeSignature(rec.keys)
	switch e, ok := rs.sigs[sig]; {
	case ok:
		e.count++
		rs.dirtySigs[sig] = struct{}{}
		rs.tallyLocked(p, at, e, rec.keys)
	case sig == "" || len(rs.sigs) < lim.signatures:
		e = &signature{keys: rec.keys, count: 1}
		rs.sigs[sig] = e
		rs.dirtySigs[sig] = struct{}{}
		rs.tallyLocked(p, at, e, rec.keys)
	default:
		rs.tallyLocked(p, at, nil, rec.keys)
		rs.foldedPairs++
		for _, k := range rec.keys {
			rs.folded[k]++
		}
		rs.dirtyFolded = true
	}
	rec.allNoise = len(rec.keys) > 0 && rs.allNoise(rec.keys)
	return rec
}

// tallyLocked counts a pair in its history bucket and its tenant's tally.
// The caller holds rs.mu.
func (rs *routeState) tallyLocked(p *Pair, at time.Time, sig *signature, keys []patKey) {
	if t := rs.history.tallyAt(at); t != nil {
		t.add(p.Outcome, sig, keys)
	}
	if p.Tenant != "" {
		rs.tenantLocked(p.Tenant).add(p.Outcome, sig, keys)
	}
}

func (rs *routeState) reasonCount(o Outcome) int {
	n := 0
	for k := range rs.outcomes {
		if k.outcome == o {
			n++
		}
	}
	return n
}

func (rs *routeState) allNoise(keys []patKey) bool {
	for _, k := range keys {
		if !rs.isNoise(k) {
			return false
		}
	}
	return true
}

// isNoise reports whether the route's current noise explains differences of
// this pattern and kind.
func (rs *routeState) isNoise(k patKey) bool {
	n, ok := rs.noise[k.pattern]
	return ok && noiseCovers(n, k.kind)
}

// noiseCovers reports whether a noise path explains a difference of kind:
// a field whose value varies is not noise when it goes missing, unless that
// was learned too. A noise path without kinds (stored before kinds were
// kept) covers every kind.
func noiseCovers(n compare.NoisePath, kind compare.Kind) bool {
	return len(n.Kinds) == 0 || slices.Contains(n.Kinds, kind)
}

// setNoiseLocked replaces the route's noise. The caller holds rs.mu.
func (rs *routeState) setNoiseLocked(noise []compare.NoisePath) {
	rs.noise = make(map[string]compare.NoisePath, len(noise))
	for _, n := range noise {
		rs.noise[n.Pattern] = n
	}
	rs.dirtyNoise = true
	rs.dirty = true
}

// reportLocked builds the route's report, re-classifying signatures with the
// current noise, with the part of its history hv selects. The caller holds
// rs.mu.
func (rs *routeState) reportLocked(hv historyView) RouteReport {
	rr := RouteReport{
		Route:       rs.name,
		Outcomes:    map[Outcome]int{Match: 0, Diff: 0, PrimaryOnly: 0, ShadowOnly: 0, Ambiguous: 0, Skipped: 0},
		Differences: []PathReport{},
		FoldedPairs: rs.foldedPairs,
		Noise:       []NoiseReport{},
		Marks:       []MarkReport{},
		Reasons:     map[Outcome]map[string]int{},
		Latency: LatencyReport{
			Primary: rs.latency[wire.SidePrimary.Index()].summary(),
			Shadow:  rs.latency[wire.SideShadow.Index()].summary(),
		},
	}
	for k, n := range rs.outcomes {
		rr.Outcomes[k.outcome] += n
		if rr.Reasons[k.outcome] == nil {
			rr.Reasons[k.outcome] = map[string]int{}
		}
		rr.Reasons[k.outcome][k.reason] += n
	}

	suppressed := map[string]int{}
	counts := map[patKey]int{}
	match, diff := 0, rs.foldedPairs
	for _, s := range rs.sigs {
		if rs.allNoise(s.keys) { // the empty signature too
			match += s.count
			for _, k := range s.keys {
				suppressed[k.pattern] += s.count
			}
			continue
		}
		diff += s.count
		for _, k := range s.keys {
			if !rs.isNoise(k) {
				counts[k] += s.count
			}
		}
	}
	for k, n := range rs.folded {
		if !rs.isNoise(k) {
			counts[k] += n
		}
	}
	rr.Outcomes[Match], rr.Outcomes[Diff] = match, diff
	rr.History, rr.Tenants = rs.historyLocked(hv), rs.tenantsLocked()
	for _, n := range rr.Outcomes {
		rr.Pairs += n
	}
	if match+diff > 0 {
		rate := float64(match) / float64(match+diff)
		rr.MatchRate = &rate
	}

	for k, n := range counts {
		rr.Differences = append(rr.Differences, PathReport{
			Pattern: k.pattern,
			Kind:    k.kind,
			Count:   n,
			Samples: append([]Sample{}, rs.patterns[k]...),
		})
	}
	slices.SortFunc(rr.Differences, func(a, b PathReport) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Pattern, b.Pattern), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	for _, n := range rs.noise {
		rr.Noise = append(rr.Noise, NoiseReport{Pattern: n.Pattern, Varied: n.Varied, Compared: n.Compared, Suppressed: suppressed[n.Pattern]})
	}
	slices.SortFunc(rr.Noise, func(a, b NoiseReport) int {
		return cmp.Or(cmp.Compare(b.Suppressed, a.Suppressed), strings.Compare(a.Pattern, b.Pattern))
	})
	for p, n := range rs.marks {
		rr.Marks = append(rr.Marks, MarkReport{Pattern: p, Count: n})
	}
	slices.SortFunc(rr.Marks, func(a, b MarkReport) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Pattern, b.Pattern))
	})
	return rr
}

// uniqueMarks are the distinct patterns of a pair's echoed marks.
func uniqueMarks(ds []compare.Difference) []string {
	var out []string
	for _, d := range ds {
		if !slices.Contains(out, d.Pattern) {
			out = append(out, d.Pattern)
		}
	}
	return out
}

// routeDelta is what a flush writes for one route: absolute values of what
// changed since the previous flush.
type routeDelta struct {
	rs          *routeState
	foldedPairs int
	sigs        map[string]int
	outcomes    map[outcomeKey]int
	folded      map[patKey]int // nil when unchanged; else the full set
	latency     [2]*histogram  // nil when unchanged
	noise       []compare.NoisePath
	noiseDirty  bool
	marks       map[string]int // nil when unchanged; else the full set
	samples     []sampleRow
}

// takeDeltaLocked collects and clears the dirty state. The caller holds
// rs.mu.
func (rs *routeState) takeDeltaLocked() *routeDelta {
	if !rs.dirty {
		return nil
	}
	d := &routeDelta{rs: rs, foldedPairs: rs.foldedPairs, sigs: map[string]int{}, outcomes: map[outcomeKey]int{}}
	for s := range rs.dirtySigs {
		d.sigs[s] = rs.sigs[s].count
	}
	for k := range rs.dirtyOutcomes {
		d.outcomes[k] = rs.outcomes[k]
	}
	if rs.dirtyFolded {
		d.folded = make(map[patKey]int, len(rs.folded))
		for k, n := range rs.folded {
			d.folded[k] = n
		}
	}
	for i := range 2 {
		if rs.dirtyLatency[i] {
			h := rs.latency[i].clone()
			d.latency[i] = &h
		}
	}
	if rs.dirtyNoise {
		d.noiseDirty = true
		for _, n := range rs.noise {
			d.noise = append(d.noise, n)
		}
	}
	if rs.dirtyMarks {
		d.marks = maps.Clone(rs.marks)
	}
	d.samples = rs.newSamples

	rs.dirty = false
	rs.dirtySigs = map[string]struct{}{}
	rs.dirtyOutcomes = map[outcomeKey]struct{}{}
	rs.dirtyFolded, rs.dirtyLatency, rs.dirtyNoise, rs.dirtyMarks = false, [2]bool{}, false, false
	rs.newSamples = nil
	return d
}

// restoreDeltaLocked marks what d carried dirty again, after a failed write.
// Values are re-read at the next flush, so only the keys matter. The caller
// holds rs.mu.
func (rs *routeState) restoreDeltaLocked(d *routeDelta) {
	rs.dirty = true
	for s := range d.sigs {
		rs.dirtySigs[s] = struct{}{}
	}
	for k := range d.outcomes {
		rs.dirtyOutcomes[k] = struct{}{}
	}
	rs.dirtyFolded = rs.dirtyFolded || d.folded != nil
	for i := range 2 {
		rs.dirtyLatency[i] = rs.dirtyLatency[i] || d.latency[i] != nil
	}
	rs.dirtyNoise = rs.dirtyNoise || d.noiseDirty
	rs.dirtyMarks = rs.dirtyMarks || d.marks != nil
	rs.newSamples = append(d.samples, rs.newSamples...)
}
