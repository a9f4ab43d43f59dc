package compare

import (
	"container/list"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/shadowlab/shadowlab/wire"
)

// LearnerConfig bounds and tunes a Learner. Zero fields take the defaults.
type LearnerConfig struct {
	MaxFingerprints int     // remembered previous responses per side (LRU); default 1024
	MaxBodyBytes    int     // bodies larger (decoded) are not remembered; default 64 KiB
	MinComparisons  int     // self-comparisons a pattern needs on a side before it is judged; default 3
	Threshold       float64 // share of those in which it varied to be noise; default 0.5
}

// Learner defaults and bounds.
const (
	DefaultMaxFingerprints = 1024
	DefaultMaxBodyBytes    = 64 << 10
	DefaultMinComparisons  = 3
	DefaultThreshold       = 0.5

	// MaxPatterns bounds the patterns one Learner tracks; patterns met
	// after that are counted in LearnerStats.Untracked, not tracked.
	MaxPatterns = 10000
)

// Learner learns a route's noise: the patterns whose values vary between
// responses of one service to identical requests (timestamps, generated
// ids, nonces). It needs no third deployment: it compares each response
// with the same side's previous response to the same request fingerprint.
// NOISE.md describes the method and its limits. A Learner is safe for
// concurrent use.
type Learner struct {
	cfg   LearnerConfig
	rules *Rules

	mu      sync.Mutex
	sides   [2]lru
	root    *pnode            // "$"
	headers map[string]*pnode // "header:<name>", for the rules' headers
	byPat   map[string]*pnode
	nodes   []*pnode
	epoch   uint64
	stats   LearnerStats
}

// LearnerStats counts what a Learner did.
type LearnerStats struct {
	Observed    int // responses passed to Observe
	Comparisons int // self-comparisons made (same side, fingerprint and status)
	Oversized   int // responses whose body decodes to more than MaxBodyBytes: ignored
	Patterns    int // patterns tracked
	Untracked   int // times a new pattern was met with MaxPatterns already tracked
}

// pnode is one tracked pattern. The JSON patterns form a tree like the
// paths they stand for; every array element shares its array's elem.
type pnode struct {
	pattern string
	fields  map[string]*pnode
	elem    *pnode

	// The last epoch (self-comparison) that saw the pattern, that saw its
	// value vary, that saw it present in one response only.
	seen, valued, presence uint64
	n                      [2]counts // per side
}

// counts are a pattern's self-comparisons on one side.
type counts struct {
	compared int // that saw the pattern in either response
	value    int // in which its value differed (changed, type changed)
	presence int // in which it was in one response only
}

// memo is a remembered response.
type memo struct {
	status  int
	headers []string // values of the rules' headers, "\x00" when absent
	body    []byte   // decoded JSON body; nil when not JSON
}

const absent = "\x00"

// headerPrefix starts the Path and Pattern of header differences.
const headerPrefix = "header:"

// NewLearner returns a Learner for one route, comparing under rules (nil:
// the defaults).
func NewLearner(cfg LearnerConfig, rules *Rules) *Learner {
	if cfg.MaxFingerprints <= 0 {
		cfg.MaxFingerprints = DefaultMaxFingerprints
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	cfg.MaxBodyBytes = min(cfg.MaxBodyBytes, MaxDecodedBytes)
	if cfg.MinComparisons <= 0 {
		cfg.MinComparisons = DefaultMinComparisons
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	if rules == nil {
		rules = &Rules{}
	}
	l := &Learner{cfg: cfg, rules: rules, headers: map[string]*pnode{}, byPat: map[string]*pnode{}}
	for i := range l.sides {
		l.sides[i] = lru{max: cfg.MaxFingerprints, ll: list.New(), m: map[string]*list.Element{}}
	}
	l.root = l.newNode("$")
	return l
}

// Observe remembers resp as the latest answer of side (anything but
// wire.SidePrimary or wire.SideShadow is ignored) to the request identified by
// fingerprint, a hash the caller computes of what selects the response
// (method, path, query, and the caller's identity when answers depend on
// it). If the side's previous answer to the same fingerprint is remembered
// and has the same status, the two are compared under the rules, and every
// pattern seen in either counts one comparison for the side, and one
// variation if it differed. Bodies that decode to more than MaxBodyBytes
// are neither compared nor remembered.
func (l *Learner) Observe(side wire.Side, fingerprint string, resp Response) {
	if side != wire.SidePrimary && side != wire.SideShadow {
		return
	}
	s := side.Index()
	m := &memo{status: resp.Status, headers: make([]string, len(l.rules.headers))}
	for i, h := range l.rules.headers {
		if v, ok := resp.Headers[h]; ok {
			m.headers[i] = v
		} else {
			m.headers[i] = absent
		}
	}
	st := l.rules.state()
	defer l.rules.release(st)
	body, err := decodeBody(resp.Body, resp.Headers["content-encoding"], l.cfg.MaxBodyBytes)
	if err == nil && st.b.parseBody(body, resp.Headers["content-type"]) {
		m.body = slices.Clone(body)
		st.b.src = m.body // the same bytes, now owned
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.Observed++
	if errors.Is(err, errTooLarge) {
		l.stats.Oversized++
		return
	}
	prev := l.sides[s].swap(fingerprint, m)
	if prev == nil || prev.status != m.status {
		return
	}
	l.stats.Comparisons++
	l.epoch++
	g := &learning{l: l, side: s, epoch: l.epoch}
	for i, h := range l.rules.headers {
		pv, cv := prev.headers[i], m.headers[i]
		if pv == absent && cv == absent {
			continue
		}
		pn := l.headers[h]
		if pn == nil {
			if pn = l.newNode(headerPrefix + h); pn == nil {
				continue
			}
			l.headers[h] = pn
		}
		g.see(pn)
		if pv != cv {
			g.vary(pn, pv == absent || cv == absent)
		}
	}
	if prev.body == nil || m.body == nil || !st.a.parse(prev.body) {
		return
	}
	w := &st.w
	w.start(l.rules, &st.a, &st.b, g)
	w.root()
}

// Noise returns the patterns judged noise, in value or in presence,
// sorted by Pattern, each with the Kinds of difference that are noise
// there. Varied counts the self-comparisons in which the value varied (in
// which the presence did, for patterns noisy in presence only) on the side
// that judged.
func (l *Learner) Noise() []NoisePath {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []NoisePath
	for _, pn := range l.nodes {
		if np, ok := l.noise(pn); ok {
			out = append(out, np)
		}
	}
	slices.SortFunc(out, func(x, y NoisePath) int { return strings.Compare(x.Pattern, y.Pattern) })
	return out
}

// noise judges one pattern in both senses.
func (l *Learner) noise(pn *pnode) (NoisePath, bool) {
	vp, value := l.judge(pn, valueVaried)
	pp, presence := l.judge(pn, presenceVaried)
	np := vp
	switch {
	case !value && !presence:
		return NoisePath{}, false
	case !value:
		np = pp
	}
	switch {
	case strings.HasPrefix(pn.pattern, headerPrefix):
		np.Kinds = []Kind{Header}
	case value && presence:
		np.Kinds = []Kind{Added, Changed, Removed, TypeChanged}
	case value:
		np.Kinds = []Kind{Changed, TypeChanged}
	default:
		np.Kinds = []Kind{Added, Removed}
	}
	return np, true
}

// IsNoise reports whether pattern (a Difference.Pattern) is noise, in
// value or in presence. To classify a Difference, use IsNoiseDiff.
func (l *Learner) IsNoise(pattern string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	pn := l.byPat[pattern]
	if pn == nil {
		return false
	}
	_, ok := l.noise(pn)
	return ok
}

// IsNoiseDiff reports whether a difference of a primary-vs-shadow
// comparison is noise: its Pattern is noise for its Kind (see
// NoisePath.Kinds). Status and Body differences are never noise.
func (l *Learner) IsNoiseDiff(d Difference) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	pn := l.byPat[d.Pattern]
	if pn == nil {
		return false
	}
	np, ok := l.noise(pn)
	return ok && slices.Contains(np.Kinds, d.Kind)
}

// Stats returns the Learner's counters.
func (l *Learner) Stats() LearnerStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.Patterns = len(l.nodes)
	return st
}

func valueVaried(c counts) int    { return c.value }
func presenceVaried(c counts) int { return c.presence }

// judge decides whether a pattern is noise in the sense varied picks: the
// deciding side compared it at least MinComparisons times and it varied in
// at least Threshold of them. The primary decides when it has compared the
// pattern MinComparisons times: noise is what the reference service does
// not reproduce, and nondeterminism that only the shadow shows is a
// difference worth reporting. The shadow decides patterns the primary has
// not (yet) seen enough of.
func (l *Learner) judge(pn *pnode, varied func(counts) int) (NoisePath, bool) {
	c := pn.n[0]
	if c.compared < l.cfg.MinComparisons {
		c = pn.n[1]
	}
	if v := varied(c); c.compared >= l.cfg.MinComparisons && float64(v) >= l.cfg.Threshold*float64(c.compared) {
		return NoisePath{Pattern: pn.pattern, Varied: v, Compared: c.compared}, true
	}
	return NoisePath{}, false
}

// newNode tracks a new pattern, or returns nil when MaxPatterns are.
func (l *Learner) newNode(pattern string) *pnode {
	if len(l.nodes) >= MaxPatterns {
		l.stats.Untracked++
		return nil
	}
	pn := &pnode{pattern: pattern}
	l.nodes = append(l.nodes, pn)
	l.byPat[pattern] = pn
	return pn
}

// learning is the walker's view of a Learner during one self-comparison.
type learning struct {
	l     *Learner
	side  int
	epoch uint64
	buf   []byte
}

// field returns the pattern of member name of pn, tracking it if new.
func (g *learning) field(pn *pnode, name []byte) *pnode {
	if pn == nil {
		return nil
	}
	if c := pn.fields[string(name)]; c != nil {
		return c
	}
	g.buf = appendField(append(g.buf[:0], pn.pattern...), name)
	c := g.l.newNode(string(g.buf))
	if c == nil {
		return nil
	}
	if pn.fields == nil {
		pn.fields = map[string]*pnode{}
	}
	pn.fields[string(name)] = c
	return c
}

// elem returns the pattern of the elements of array pattern pn.
func (g *learning) elem(pn *pnode) *pnode {
	if pn == nil {
		return nil
	}
	if pn.elem == nil {
		pn.elem = g.l.newNode(pn.pattern + "[*]")
	}
	return pn.elem
}

// see counts pn as seen in this self-comparison (once).
func (g *learning) see(pn *pnode) {
	if pn != nil && pn.seen != g.epoch {
		pn.seen = g.epoch
		pn.n[g.side].compared++
	}
}

// vary counts pn as varied in this self-comparison (once for each way):
// in presence (in one response only) or in value.
func (g *learning) vary(pn *pnode, presence bool) {
	switch {
	case pn == nil:
	case presence && pn.presence != g.epoch:
		pn.presence = g.epoch
		pn.n[g.side].presence++
	case !presence && pn.valued != g.epoch:
		pn.valued = g.epoch
		pn.n[g.side].value++
	}
}

// lru maps fingerprints to the latest response, forgetting the least
// recently used beyond max.
type lru struct {
	max int
	ll  *list.List
	m   map[string]*list.Element
}

type lruEntry struct {
	key string
	m   *memo
}

// swap stores m under key and returns what was stored before, if anything.
func (c *lru) swap(key string, m *memo) *memo {
	if e, ok := c.m[key]; ok {
		ent := e.Value.(*lruEntry)
		prev := ent.m
		ent.m = m
		c.ll.MoveToFront(e)
		return prev
	}
	c.m[key] = c.ll.PushFront(&lruEntry{key: key, m: m})
	if c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*lruEntry).key)
	}
	return nil
}
