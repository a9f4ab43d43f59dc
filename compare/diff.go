package compare

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/shadowlab/shadowlab/wire"
)

// MaxDifferences bounds the JSON differences of one pair. When a pair has
// more, Result keeps the first MaxDifferences in Path order and adds one
// Difference with Path and Pattern Truncated, Kind Changed, and "N more
// differences" as both excerpts. Status, header and body differences are
// never cut. (A pair with more than 4 000 differences is listed from the
// first 4 000 met in document order, to bound the work.)
const MaxDifferences = 1000

// maxListed bounds the differences of one pair that are rendered (paths,
// excerpts) to pick the MaxDifferences listed; past it they are only
// counted. Up to it, the listed ones are the first in Path order whichever
// side is which; past it, they are the first in Path order among those met
// first in document order.
const maxListed = 4 * MaxDifferences

// Truncated is the Path and Pattern of the Difference that stands for the
// differences past MaxDifferences. It sorts after every other JSON path.
const Truncated = "$…"

// none marks a side that has no value.
const none = ^uint32(0)

// Compare compares the shadow's response with the primary's under rules
// (nil: the defaults of NewRules(nil)). It is pure and deterministic, and
// symmetric: swapping the responses swaps Added with Removed and the
// excerpts, and keeps every Path.
//
// Status is always compared, headers only when rules name them. When the
// statuses differ the bodies are not compared: the status difference is the
// finding. Otherwise bodies are
// decoded by Content-Encoding first (gzip, deflate, br, identity, chains),
// each side up to the rules' decoded limit (Spec.MaxDecodedBytes). A body
// that does not decode as its Content-Encoding says (corrupt, truncated) is
// a finding: an Undecodable difference at "body", so the pair never
// matches. An unsupported coding or a body that decodes to more than the
// limit (decoding stops there) leaves the bodies uncompared; either way
// Result.Skipped says why, per side. Byte-identical bodies with the same
// Content-Encoding match without decoding: the shadow answered exactly what
// the primary did. Two JSON bodies (Content-Type
// containing "json", or without a Content-Type a body that starts with '{'
// or '[') are compared structurally; a JSON body against any other gives
// one Body difference; other bodies are compared as bytes, with excerpts of
// the first differing region.
func Compare(primary, shadow Response, rules *Rules) Result {
	res := compare(primary, shadow, rules)
	res.Differences, res.Marks = splitMarks(res.Differences)
	return res
}

// splitMarks moves the echoes of shadowlab's marks out of ds: an added
// member whose name is a mark header's, in any case.
func splitMarks(ds []Difference) (rest, marks []Difference) {
	for _, d := range ds {
		if d.Kind == Added && isMark(lastMember(d.Path)) {
			marks = append(marks, d)
			continue
		}
		rest = append(rest, d)
	}
	if len(marks) == 0 {
		return ds, nil
	}
	return rest, marks
}

func isMark(name string) bool {
	for _, m := range wire.Marks {
		if strings.EqualFold(m, name) {
			return true
		}
	}
	return false
}

// lastMember is the name of the member a JSON path ends in, or "".
func lastMember(path string) string {
	segs, err := ParsePath(path)
	if err != nil || len(segs) == 0 || segs[len(segs)-1].Kind != SegmentField {
		return ""
	}
	return segs[len(segs)-1].Name
}

func compare(primary, shadow Response, rules *Rules) Result {
	if rules == nil {
		rules = &Rules{}
	}
	var res Result
	var fixed []Difference
	if primary.Status != shadow.Status {
		fixed = append(fixed, Difference{
			Path: "status", Pattern: "status", Kind: Status,
			Primary: strconv.Itoa(primary.Status), Shadow: strconv.Itoa(shadow.Status),
		})
	}
	if primary.GRPCStatus != shadow.GRPCStatus {
		fixed = append(fixed, Difference{
			Path: GRPCStatusPath, Pattern: GRPCStatusPath, Kind: Status,
			Primary: grpcExcerpt(rules, primary), Shadow: grpcExcerpt(rules, shadow),
		})
	}
	for _, h := range rules.headers {
		pv, pok := primary.Headers[h]
		sv, sok := shadow.Headers[h]
		if pok == sok && pv == sv {
			continue
		}
		d := Difference{Path: headerPrefix + h, Pattern: headerPrefix + h, Kind: Header}
		d.Primary, d.Shadow = headerExcerpt(rules, h, pv, pok), headerExcerpt(rules, h, sv, sok)
		fixed = append(fixed, d)
	}

	// Different statuses answer with different documents (an error body
	// against a resource): their body differences are consequences of the
	// status difference, not findings of their own.
	if primary.Status != shadow.Status || primary.GRPCStatus != shadow.GRPCStatus {
		res.Differences = finish(fixed, nil, 0)
		return res
	}
	encP, encS := primary.Headers["content-encoding"], shadow.Headers["content-encoding"]
	if encP == encS && bytes.Equal(primary.Body, shadow.Body) {
		res.Differences = finish(fixed, nil, 0)
		return res
	}
	limit := rules.decodeLimit()
	pb, errP := decodeBody(primary.Body, encP, limit)
	sb, errS := decodeBody(shadow.Body, encS, limit)
	if errP != nil || errS != nil {
		res.Skipped = skipReason(errP, errS)
		if d, ok := undecodable(errP, errS); ok {
			fixed = append(fixed, d)
		}
		res.Differences = finish(fixed, nil, 0)
		return res
	}
	if bytes.Equal(pb, sb) {
		res.Differences = finish(fixed, nil, 0)
		return res
	}

	st := rules.state()
	defer rules.release(st)
	jp := st.a.parseBody(pb, primary.Headers["content-type"])
	js := st.b.parseBody(sb, shadow.Headers["content-type"])
	switch {
	case jp && js:
		w := &st.w
		w.start(rules, &st.a, &st.b, nil)
		w.root()
		res.Differences = finish(fixed, w.out, w.total)
	case jp || js:
		d := Difference{Path: "body", Pattern: "body", Kind: Body}
		d.Primary = st.w.bodyExcerpt(rules, &st.a, jp, pb)
		d.Shadow = st.w.bodyExcerpt(rules, &st.b, js, sb)
		res.Differences = finish(append(fixed, d), nil, 0)
	default:
		off := 0
		for off < len(pb) && off < len(sb) && pb[off] == sb[off] {
			off++
		}
		d := Difference{Path: "body", Pattern: "body", Kind: Body}
		d.Primary, d.Shadow = bytesExcerpt(rules, pb, off), bytesExcerpt(rules, sb, off)
		res.Differences = finish(append(fixed, d), nil, 0)
	}
	return res
}

// parseBody parses a decoded body when it is JSON: its content type says
// so, or it starts like a JSON object or array and parses as one (services
// do serve JSON as text/plain: go-httpbin's /etag, for one).
func (d *doc) parseBody(body []byte, contentType string) bool {
	if !containsFold(contentType, "json") && !looksJSON(body) {
		return false
	}
	return d.parse(body)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// skipReason says why the bodies were not compared, per side: "shadow body
// does not decode as gzip: unexpected EOF", "primary body too large
// decoded: decodes (gzip) to more than 1 MiB".
func skipReason(errP, errS error) string {
	var why []string
	for _, s := range []struct {
		side string
		err  error
	}{{"primary body", errP}, {"shadow body", errS}} {
		switch {
		case s.err == nil:
		case errors.Is(s.err, errUnsupported):
			why = append(why, s.side+": "+s.err.Error())
		default:
			why = append(why, s.side+" "+s.err.Error())
		}
	}
	return strings.Join(why, "; ")
}

// undecodable is the finding of a body that does not decode as its
// Content-Encoding says: one Undecodable difference at "body" whose
// excerpts say, per side, why (or "(decodes)").
func undecodable(errP, errS error) (Difference, bool) {
	if !errors.Is(errP, errUndecodable) && !errors.Is(errS, errUndecodable) {
		return Difference{}, false
	}
	side := func(err error) string {
		if errors.Is(err, errUndecodable) {
			return cut([]byte(err.Error()), MaxExcerpt)
		}
		return "(decodes)"
	}
	return Difference{Path: "body", Pattern: "body", Kind: Undecodable, Primary: side(errP), Shadow: side(errS)}, true
}

// finish sorts the differences, cuts the JSON ones to MaxDifferences with
// a Truncated marker, and returns nil when there are none.
func finish(fixed, json []Difference, total int) []Difference {
	if len(fixed)+len(json) == 0 {
		return nil
	}
	if total > MaxDifferences {
		slices.SortFunc(json, cmpDiff)
		clear(json[MaxDifferences:])
		json = json[:MaxDifferences]
		more := strconv.Itoa(total-MaxDifferences) + " more differences"
		json = append(json, Difference{Path: Truncated, Pattern: Truncated, Kind: Changed, Primary: more, Shadow: more})
	}
	out := append(json, fixed...)
	slices.SortFunc(out, cmpDiff)
	return out
}

// cmpDiff orders differences by Path. Ties are broken by keys that do not
// depend on which side is which, so that a swapped comparison keeps the
// same differences when it must cut them, and last by Kind.
func cmpDiff(x, y Difference) int {
	if c := strings.Compare(x.Path, y.Path); c != 0 {
		return c
	}
	if c := cmp.Compare(kindRank(x.Kind), kindRank(y.Kind)); c != 0 {
		return c
	}
	if c := strings.Compare(min(x.Primary, x.Shadow), min(y.Primary, y.Shadow)); c != 0 {
		return c
	}
	if c := strings.Compare(max(x.Primary, x.Shadow), max(y.Primary, y.Shadow)); c != 0 {
		return c
	}
	if c := strings.Compare(string(x.Kind), string(y.Kind)); c != 0 {
		return c
	}
	return strings.Compare(x.Primary, y.Primary)
}

func kindRank(k Kind) int {
	switch k {
	case Added, Removed:
		return 1
	case Changed:
		return 2
	case TypeChanged:
		return 3
	}
	return 4
}

// state is the scratch space of one comparison, pooled per Rules.
type state struct {
	a, b doc
	w    walker
}

// maxPooledNodes keeps the scratch of huge bodies out of the pool.
const maxPooledNodes = 1 << 16

func (r *Rules) state() *state {
	if s, ok := r.pool.Get().(*state); ok {
		return s
	}
	return &state{}
}

func (r *Rules) release(s *state) {
	if cap(s.a.tape) > maxPooledNodes || cap(s.b.tape) > maxPooledNodes || cap(s.w.canon) > maxPooledNodes*8 {
		return
	}
	s.a.src, s.b.src = nil, nil
	s.w.clear()
	r.pool.Put(s)
}

// seg is one step of the current path: a member (its key node, in doc a
// or b) or an array index.
type seg struct {
	key   uint32
	side  uint8 // 0: the key is in doc a, 1: in doc b
	index int32 // >= 0: an array index; -1: a member

	// Set when the path up to here is rendered (see walker.paths).
	pathEnd, patEnd int32 // where it ends in walker.path, walker.pat
	indexed         bool  // some step up to here is an index
	redacted        bool  // some member up to here is redacted
}

// elem is an array element in an unordered comparison.
type elem struct {
	t      uint32 // its tape node
	pos    int32  // its index in the array
	keyed  bool   // an object with the identifying member
	c0, c1 uint32 // its canonical form (or its key's) in walker.canon
	used   bool
}

type span struct{ s, e int }

// walker compares two parsed documents, or, when learn is set, counts the
// patterns of a self-comparison for a Learner.
type walker struct {
	r    *Rules
	a, b *doc

	segs  []seg
	sets  []*rule
	keys  []uint32
	match []bool
	elems []elem
	canon []byte
	spans []span
	tmp   []byte
	keyA  []byte
	keyB  []byte
	strA  []byte
	strB  []byte
	ex    []byte
	num   numScratch

	// path and pat render segs[:rendered] (and "$"): a path is rendered
	// once, however many differences are found under it.
	path, pat []byte
	rendered  int

	out   []Difference
	total int
	learn *learning
}

func (w *walker) start(r *Rules, a, b *doc, learn *learning) {
	w.r, w.a, w.b, w.learn = r, a, b, learn
	w.segs, w.sets, w.keys, w.match = w.segs[:0], w.sets[:0], w.keys[:0], w.match[:0]
	w.elems, w.canon, w.spans = w.elems[:0], w.canon[:0], w.spans[:0]
	w.out, w.total = nil, 0
	w.path, w.pat, w.rendered = append(w.path[:0], '$'), append(w.pat[:0], '$'), 0
}

func (w *walker) push(s seg) { w.segs = append(w.segs, s) }

func (w *walker) pop() {
	w.segs = w.segs[:len(w.segs)-1]
	w.rendered = min(w.rendered, len(w.segs))
}

func (w *walker) clear() {
	w.r, w.a, w.b, w.learn, w.out = nil, nil, nil, nil, nil
	clear(w.sets[:cap(w.sets)])
}

// root compares the two documents' top-level values.
func (w *walker) root() {
	var set []*rule
	if w.r.root != nil {
		w.sets = append(w.sets, w.r.root)
		set = w.sets
	}
	var pn *pnode
	if w.learn != nil {
		pn = w.learn.l.root
	}
	w.value(0, 0, set, pn)
}

func (w *walker) doc(side uint8) *doc {
	if side == 0 {
		return w.a
	}
	return w.b
}

// value compares a's node ta with b's node tb, at the current path.
func (w *walker) value(ta, tb uint32, set []*rule, pn *pnode) {
	a, b := w.a, w.b
	na, nb := &a.tape[ta], &b.tape[tb]
	if w.learn != nil {
		if pn == nil {
			return // not tracked
		}
		w.learn.see(pn)
	}
	if bytes.Equal(a.src[na.start:na.end], b.src[nb.start:nb.end]) {
		if w.learn != nil {
			w.seeChildren(a, ta, set, pn)
		}
		return
	}
	if !sameType(na.kind, nb.kind) {
		w.emit(TypeChanged, ta, tb, pn)
		if w.learn != nil {
			w.seeChildren(a, ta, set, pn)
			w.seeChildren(b, tb, set, pn)
		}
		return
	}
	switch na.kind {
	case kindFalse, kindTrue:
		w.emit(Changed, ta, tb, pn) // the texts differ, so the values do
	case kindNumber:
		if !numbersEqual(a.src[na.start:na.end], b.src[nb.start:nb.end], w.r.tolerance, w.r.tolDec, &w.num) {
			w.emit(Changed, ta, tb, pn)
		}
	case kindString:
		if !na.esc && !nb.esc {
			w.emit(Changed, ta, tb, pn) // the texts differ, so the values do
			return
		}
		sa := a.str(ta, w.strA)
		sb := b.str(tb, w.strB)
		if na.esc {
			w.strA = sa
		}
		if nb.esc {
			w.strB = sb
		}
		if !bytes.Equal(sa, sb) {
			w.emit(Changed, ta, tb, pn)
		}
	case kindObject:
		w.object(ta, tb, set, pn)
	case kindArray:
		if u := unorderedRule(set); u != nil {
			w.unordered(ta, tb, set, u, pn)
		} else {
			w.array(ta, tb, set, pn)
		}
	}
}

// key returns the decoded name of key node t of d, in scratch *buf when
// it has escapes.
func key(d *doc, t uint32, buf *[]byte) []byte {
	if !d.tape[t].esc {
		n := &d.tape[t]
		return d.src[n.start+1 : n.end-1]
	}
	*buf = d.str(t, *buf)
	return *buf
}

// maxLinearMembers is the size from which a mismatched member lookup
// builds an index of the shadow object's keys.
const maxLinearMembers = 32

func (w *walker) object(ta, tb uint32, set []*rule, pn *pnode) {
	a, b := w.a, w.b
	base := len(w.keys)
	for k, i := tb+1, uint32(0); i < b.tape[tb].n; i++ {
		w.keys = append(w.keys, k)
		w.match = append(w.match, false)
		k = b.tape[k+1].next
	}
	bk, matched := w.keys[base:], w.match[base:]
	var index map[string]*[]int // for big objects in another order: positions by key
	hint := 0
	for k, i := ta+1, uint32(0); i < a.tape[ta].n; i++ {
		v := k + 1
		next := a.tape[v].next
		name := key(a, k, &w.keyA)
		j := -1
		if len(bk) > 0 {
			if hint >= len(bk) {
				hint = 0
			}
			if !matched[hint] && bytes.Equal(name, key(b, bk[hint], &w.keyB)) {
				j = hint
			} else if len(bk) > maxLinearMembers {
				if index == nil {
					index = make(map[string]*[]int, len(bk))
					for x, kb := range bk {
						s := string(key(b, kb, &w.keyB))
						l := index[s]
						if l == nil {
							l = new([]int)
							index[s] = l
						}
						*l = append(*l, x)
					}
				}
				// Positions are taken in order, so the first unmatched one
				// is found in amortized constant time even with duplicates.
				if l := index[string(name)]; l != nil {
					for len(*l) > 0 && matched[(*l)[0]] {
						*l = (*l)[1:]
					}
					if len(*l) > 0 {
						j = (*l)[0]
					}
				}
			} else {
				for x := range bk {
					if !matched[x] && bytes.Equal(name, key(b, bk[x], &w.keyB)) {
						j = x
						break
					}
				}
			}
		}
		if j >= 0 {
			matched[j] = true
			hint = j + 1
		}
		sb := len(w.sets)
		cs, ignored := w.fieldRules(set, name)
		if !ignored {
			var pc *pnode
			if w.learn != nil {
				pc = w.learn.field(pn, name)
			}
			w.push(seg{key: k, index: -1})
			if j >= 0 {
				w.value(v, bk[j]+1, cs, pc)
			} else {
				w.only(0, v, cs, pc)
			}
			w.pop()
		}
		w.sets = w.sets[:sb]
		k = next
	}
	for x, kb := range bk {
		if matched[x] {
			continue
		}
		name := key(b, kb, &w.keyB)
		sb := len(w.sets)
		cs, ignored := w.fieldRules(set, name)
		if !ignored {
			var pc *pnode
			if w.learn != nil {
				pc = w.learn.field(pn, name)
			}
			w.push(seg{key: kb, side: 1, index: -1})
			w.only(1, kb+1, cs, pc)
			w.pop()
		}
		w.sets = w.sets[:sb]
	}
	w.keys, w.match = w.keys[:base], w.match[:base]
}

func (w *walker) array(ta, tb uint32, set []*rule, pn *pnode) {
	a, b := w.a, w.b
	na, nb := int(a.tape[ta].n), int(b.tape[tb].n)
	var pe *pnode
	if w.learn != nil {
		pe = w.learn.elem(pn)
	}
	ka, kb := ta+1, tb+1
	for i := range max(na, nb) {
		sb := len(w.sets)
		cs, ignored := w.indexRules(set, i)
		if !ignored {
			w.push(seg{index: int32(i)})
			switch {
			case i < na && i < nb:
				w.value(ka, kb, cs, pe)
			case i < na:
				w.only(0, ka, cs, pe)
			default:
				w.only(1, kb, cs, pe)
			}
			w.pop()
		}
		w.sets = w.sets[:sb]
		if i < na {
			ka = a.tape[ka].next
		}
		if i < nb {
			kb = b.tape[kb].next
		}
	}
}

// unordered compares arrays whose order does not matter. With a key
// member (u.by), elements that are objects with that member are paired by
// its value (the k-th occurrence of a value on one side with the k-th on
// the other); a value on one side only is Removed or Added. The remaining
// elements are compared as multisets: equal elements (canonical form,
// under the rules, without tolerance) pair up and match; the leftovers of
// each side, in canonical order, are compared pairwise, and the surplus of
// the longer side is Removed or Added. A paired element's Path carries the
// smaller of its two positions, so that Paths do not depend on which side
// is which. Rules that name an index ([N]) do not apply inside unordered
// arrays.
func (w *walker) unordered(ta, tb uint32, set []*rule, u *rule, pn *pnode) {
	sb := len(w.sets)
	defer func() { w.sets = w.sets[:sb] }()
	es, ignored := w.anyRules(set)
	if ignored {
		return
	}
	var pe *pnode
	if w.learn != nil {
		pe = w.learn.elem(pn)
	}
	base := len(w.elems)
	cbase := len(w.canon)
	na := w.collect(w.a, ta, es, u)
	w.collect(w.b, tb, es, u)
	ea := w.elems[base : base+na]
	eb := w.elems[base+na:]
	byCanon := func(x, y elem) int {
		if x.keyed != y.keyed {
			if x.keyed {
				return -1
			}
			return 1
		}
		if c := bytes.Compare(w.canon[x.c0:x.c1], w.canon[y.c0:y.c1]); c != 0 {
			return c
		}
		return cmp.Compare(x.pos, y.pos)
	}
	slices.SortFunc(ea, byCanon)
	slices.SortFunc(eb, byCanon)

	pair := func(x, y elem) {
		w.push(seg{index: min(x.pos, y.pos)})
		w.value(x.t, y.t, es, pe)
		w.pop()
	}
	one := func(side uint8, x elem) {
		w.push(seg{index: x.pos})
		w.only(side, x.t, es, pe)
		w.pop()
	}
	// Merge the sorted sides: keyed elements pair by key, the others by
	// whole value. Indices are used, not slices: pairing recurses and may
	// grow w.elems and w.canon.
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		x, y := elem{}, elem{}
		if i < len(ea) {
			x = w.elems[base+i]
		}
		if j < len(eb) {
			y = w.elems[base+na+j]
		}
		var c int
		switch {
		case i >= len(ea):
			c = 1
		case j >= len(eb):
			c = -1
		default:
			c = byCanonNoPos(w.canon, x, y)
		}
		switch {
		case c == 0 && x.keyed:
			w.elems[base+i].used, w.elems[base+na+j].used = true, true
			pair(x, y)
			i, j = i+1, j+1
		case c == 0:
			w.elems[base+i].used, w.elems[base+na+j].used = true, true
			if w.learn != nil {
				w.push(seg{index: min(x.pos, y.pos)})
				w.learn.see(pe)
				w.seeChildren(w.a, x.t, es, pe)
				w.pop()
			}
			i, j = i+1, j+1
		case c < 0 && x.keyed:
			one(0, x)
			w.elems[base+i].used = true
			i++
		case c > 0 && y.keyed:
			one(1, y)
			w.elems[base+na+j].used = true
			j++
		case c < 0:
			i++
		default:
			j++
		}
	}
	// Leftovers, in canonical order, pairwise.
	i, j = 0, 0
	for {
		for i < na && w.elems[base+i].used {
			i++
		}
		for j < len(eb) && w.elems[base+na+j].used {
			j++
		}
		switch {
		case i < na && j < len(eb):
			pair(w.elems[base+i], w.elems[base+na+j])
		case i < na:
			one(0, w.elems[base+i])
		case j < len(eb):
			one(1, w.elems[base+na+j])
		default:
			w.elems, w.canon = w.elems[:base], w.canon[:cbase]
			return
		}
		i, j = i+1, j+1
	}
}

// byCanonNoPos orders elements as the merge needs: keyed first, then by
// canonical form.
func byCanonNoPos(canon []byte, x, y elem) int {
	if x.keyed != y.keyed {
		if x.keyed {
			return -1
		}
		return 1
	}
	return bytes.Compare(canon[x.c0:x.c1], canon[y.c0:y.c1])
}

// collect appends the elements of array t of d to w.elems, each with its
// canonical form (or its key member's), and returns how many.
func (w *walker) collect(d *doc, t uint32, es []*rule, u *rule) int {
	n := int(d.tape[t].n)
	k := t + 1
	for i := range n {
		e := elem{t: k, pos: int32(i), c0: uint32(len(w.canon))}
		if u.hasBy && d.tape[k].kind == kindObject {
			if v, ok := member(d, k, u.by, &w.keyA); ok {
				e.keyed = true
				w.canon = w.appendCanon(w.canon, d, v, nil)
			}
		}
		if !e.keyed {
			w.canon = w.appendCanon(w.canon, d, k, es)
		}
		e.c1 = uint32(len(w.canon))
		w.elems = append(w.elems, e)
		k = d.tape[k].next
	}
	return n
}

// member finds the value of the first member of object t named name.
func member(d *doc, t uint32, name string, buf *[]byte) (uint32, bool) {
	k := t + 1
	for range d.tape[t].n {
		if string(key(d, k, buf)) == name {
			return k + 1, true
		}
		k = d.tape[k+1].next
	}
	return 0, false
}

// appendCanon appends the canonical form of node t of d under the rules
// set: equal JSON values give equal bytes whatever their whitespace, member
// order, number spelling or string escapes; ignored members are left out,
// and unordered arrays are sorted. Every form is self-delimiting.
func (w *walker) appendCanon(buf []byte, d *doc, t uint32, set []*rule) []byte {
	n := &d.tape[t]
	switch n.kind {
	case kindNull:
		return append(buf, 'n')
	case kindFalse:
		return append(buf, 'f')
	case kindTrue:
		return append(buf, 't')
	case kindNumber:
		return appendCanonNumber(buf, d.src[n.start:n.end], &w.num)
	case kindString:
		s := key(d, t, &w.strA)
		buf = append(buf, 's')
		buf = appendUvarint(buf, uint64(len(s)))
		return append(buf, s...)
	case kindObject:
		buf = append(buf, 'o')
		start, sbase := len(buf), len(w.spans)
		k := t + 1
		for range n.n {
			name := key(d, k, &w.keyA)
			setBase := len(w.sets)
			cs, ignored := w.fieldRules(set, name)
			if !ignored {
				ms := len(buf)
				buf = append(buf, 'k')
				buf = appendUvarint(buf, uint64(len(name)))
				buf = append(buf, name...)
				buf = w.appendCanon(buf, d, k+1, cs)
				w.spans = append(w.spans, span{ms, len(buf)})
			}
			w.sets = w.sets[:setBase]
			k = d.tape[k+1].next
		}
		buf = w.sortSpans(buf, start, sbase)
		return append(buf, 'e')
	case kindArray:
		buf = append(buf, 'a')
		start, sbase := len(buf), len(w.spans)
		u := unorderedRule(set)
		k := t + 1
		setBase := len(w.sets)
		es, allIgnored := w.anyRules(set)
		for i := range int(n.n) {
			if u != nil {
				if !allIgnored {
					ms := len(buf)
					buf = w.appendCanon(buf, d, k, es)
					w.spans = append(w.spans, span{ms, len(buf)})
				}
			} else {
				sb := len(w.sets)
				cs, ignored := w.indexRules(set, i)
				if !ignored {
					buf = w.appendCanon(buf, d, k, cs)
				} else {
					buf = append(buf, 'x') // keeps positions
				}
				w.sets = w.sets[:sb]
			}
			k = d.tape[k].next
		}
		w.sets = w.sets[:setBase]
		if u != nil {
			buf = w.sortSpans(buf, start, sbase)
		}
		return append(buf, 'e')
	}
	return buf
}

// sortSpans sorts the byte ranges w.spans[sbase:] of buf[start:] (which
// they tile) by content, rewriting buf in place, and pops them.
func (w *walker) sortSpans(buf []byte, start, sbase int) []byte {
	spans := w.spans[sbase:]
	less := func(x, y span) int { return bytes.Compare(buf[x.s:x.e], buf[y.s:y.e]) }
	if len(spans) > 1 && !slices.IsSortedFunc(spans, less) {
		slices.SortFunc(spans, less)
		w.tmp = append(w.tmp[:0], buf[start:]...)
		at := start
		for _, s := range spans {
			at += copy(buf[at:], w.tmp[s.s-start:s.e-start])
		}
	}
	w.spans = w.spans[:sbase]
	return buf
}

func appendUvarint(buf []byte, v uint64) []byte {
	for v >= 0x80 {
		buf = append(buf, byte(v)|0x80)
		v >>= 7
	}
	return append(buf, byte(v))
}

// fieldRules pushes onto w.sets the rules that apply to member name of an
// object whose rules are set, and returns them; ignored reports that the
// member is ignored. The caller truncates w.sets afterwards.
func (w *walker) fieldRules(set []*rule, name []byte) (child []*rule, ignored bool) {
	if len(set) == 0 {
		return nil, false
	}
	base := len(w.sets)
	for _, r := range set {
		if r.fields != nil {
			if c := r.fields[string(name)]; c != nil {
				if c.ignore {
					return nil, true
				}
				w.sets = append(w.sets, c)
			}
		}
		if c := r.anyChild; c != nil {
			if c.ignore {
				return nil, true
			}
			w.sets = append(w.sets, c)
		}
	}
	return w.sets[base:], false
}

// indexRules is fieldRules for element i of an array.
func (w *walker) indexRules(set []*rule, i int) (child []*rule, ignored bool) {
	if len(set) == 0 {
		return nil, false
	}
	base := len(w.sets)
	for _, r := range set {
		if r.index != nil {
			if c := r.index[i]; c != nil {
				if c.ignore {
					return nil, true
				}
				w.sets = append(w.sets, c)
			}
		}
		if c := r.anyChild; c != nil {
			if c.ignore {
				return nil, true
			}
			w.sets = append(w.sets, c)
		}
	}
	return w.sets[base:], false
}

// anyRules is indexRules for an element of an unordered array: only
// wildcard rules apply.
func (w *walker) anyRules(set []*rule) (child []*rule, ignored bool) {
	base := len(w.sets)
	for _, r := range set {
		if c := r.anyChild; c != nil {
			if c.ignore {
				return nil, true
			}
			w.sets = append(w.sets, c)
		}
	}
	return w.sets[base:], false
}

func unorderedRule(set []*rule) *rule {
	for _, r := range set {
		if r.unordered {
			return r
		}
	}
	return nil
}

// only reports node t, present on one side only (0: primary, so Removed;
// 1: shadow, so Added).
func (w *walker) only(side uint8, t uint32, set []*rule, pn *pnode) {
	if w.learn != nil {
		if pn == nil {
			return
		}
		w.learn.see(pn)
		w.learn.vary(pn, true)
		w.seeChildren(w.doc(side), t, set, pn)
		return
	}
	if side == 0 {
		w.emit(Removed, t, none, nil)
	} else {
		w.emit(Added, none, t, nil)
	}
}

// emit records a difference at the current path.
func (w *walker) emit(k Kind, ta, tb uint32, pn *pnode) {
	if w.learn != nil {
		w.learn.vary(pn, false)
		return
	}
	w.total++
	if w.total > maxListed {
		return
	}
	path, pattern, redacted := w.paths()
	d := Difference{Path: path, Pattern: pattern, Kind: k}
	if ta != none {
		d.Primary = w.excerpt(w.a, ta, redacted)
	}
	if tb != none {
		d.Shadow = w.excerpt(w.b, tb, redacted)
	}
	w.out = append(w.out, d)
	if len(w.out) >= 2*MaxDifferences {
		// Keep the first MaxDifferences in order: the result is the same
		// as sorting them all at the end, with bounded memory.
		slices.SortFunc(w.out, cmpDiff)
		clear(w.out[MaxDifferences:])
		w.out = w.out[:MaxDifferences]
	}
}

// paths renders the current path and its pattern, and reports whether
// the path passes through a redacted member. Only the steps pushed since
// the last call are rendered.
func (w *walker) paths() (path, pattern string, redacted bool) {
	p, q := w.path[:1], w.pat[:1]
	indexed := false
	if w.rendered > 0 {
		last := &w.segs[w.rendered-1]
		p, q = w.path[:last.pathEnd], w.pat[:last.patEnd]
		indexed, redacted = last.indexed, last.redacted
	}
	for i := w.rendered; i < len(w.segs); i++ {
		s := &w.segs[i]
		if s.index >= 0 {
			indexed = true
			p = append(p, '[')
			p = strconv.AppendInt(p, int64(s.index), 10)
			p = append(p, ']')
			q = append(q, "[*]"...)
		} else {
			name := key(w.doc(s.side), s.key, &w.keyA)
			redacted = redacted || w.r.redacts(name)
			start := len(p)
			p = appendField(p, name)
			q = append(q, p[start:]...)
		}
		s.pathEnd, s.patEnd, s.indexed, s.redacted = int32(len(p)), int32(len(q)), indexed, redacted
	}
	w.path, w.pat, w.rendered = p, q, len(w.segs)
	path = string(p)
	if !indexed {
		return path, path, redacted
	}
	return path, string(q), redacted
}

// seeChildren counts, for a Learner, the patterns inside node t of d as
// seen (not varied): they were present on one side.
func (w *walker) seeChildren(d *doc, t uint32, set []*rule, pn *pnode) {
	n := &d.tape[t]
	switch n.kind {
	case kindObject:
		k := t + 1
		for range n.n {
			name := key(d, k, &w.keyA)
			sb := len(w.sets)
			cs, ignored := w.fieldRules(set, name)
			if !ignored {
				if pc := w.learn.field(pn, name); pc != nil {
					w.learn.see(pc)
					w.seeChildren(d, k+1, cs, pc)
				}
			}
			w.sets = w.sets[:sb]
			k = d.tape[k+1].next
		}
	case kindArray:
		pe := w.learn.elem(pn)
		if pe == nil {
			return
		}
		unordered := unorderedRule(set) != nil
		k := t + 1
		for i := range int(n.n) {
			sb := len(w.sets)
			var cs []*rule
			var ignored bool
			if unordered {
				cs, ignored = w.anyRules(set)
			} else {
				cs, ignored = w.indexRules(set, i)
			}
			if !ignored {
				w.learn.see(pe)
				w.seeChildren(d, k, cs, pe)
			}
			w.sets = w.sets[:sb]
			k = d.tape[k].next
		}
	}
}

// GRPCStatusPath is the path of a gRPC status difference.
const GRPCStatusPath = "grpc-status"

// grpcExcerpt is a gRPC status with its message ("NOT_FOUND: no order
// o-9"), secrets in the message redacted, clipped like any excerpt.
func grpcExcerpt(rules *Rules, r Response) string {
	s := r.GRPCStatus
	if s == "" {
		s = "(not gRPC)"
	}
	if r.GRPCMessage != "" {
		s += ": " + r.GRPCMessage
	}
	return headerExcerpt(rules, GRPCStatusPath, s, true)
}
