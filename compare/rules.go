package compare

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/shadowlab/shadowlab/wire"
)

// Spec is what a route's compare block says about comparing: the rules
// NewRules compiles. Paths are ParsePath paths; an unorderedArrays entry may
// name the member that identifies elements ("$.users by id").
type Spec struct {
	Ignore           []string // JSON paths whose values are not compared
	UnorderedArrays  []string // JSON paths of arrays compared as multisets, or matched "by" a member
	NumericTolerance float64  // absolute, >= 0
	Headers          []string // response headers compared, lower case (checked by the policy)
	Redact           []string // member and header names whose values never appear in excerpts
}

// SpecError is one problem with one entry of a Spec: Field is its name in
// the policy ("ignore", "unorderedArrays", "numericTolerance", "redact") and
// Index the entry's position in a list (-1 for a single value).
type SpecError struct {
	Field string
	Index int
	Msg   string
}

func (e *SpecError) Error() string {
	if e.Index < 0 {
		return e.Field + ": " + e.Msg
	}
	return e.Field + "[" + strconv.Itoa(e.Index) + "]: " + e.Msg
}

// SpecErrors are every problem of a Spec, in the order of its fields.
type SpecErrors []*SpecError

func (es SpecErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Rules is one route's compare block, compiled once and shared by every
// comparison of the route (it is safe for concurrent use). The zero Rules
// compares status and bodies exactly: nothing ignored, no tolerance, arrays
// ordered, no headers.
type Rules struct {
	root      *rule    // ignore and unordered paths as a tree; nil: none
	tolerance float64  // absolute, >= 0
	tolDec    decimal  // tolerance as the shortest decimal that rounds to it
	headers   []string // lower case, sorted, unique
	redact    []string // field names, matched without regard to case

	pool sync.Pool // *state
}

// rule is one step of the compiled path tree. A value whose path leads to a
// rule with ignore set is skipped, and so is everything in it.
type rule struct {
	fields   map[string]*rule
	index    map[int]*rule
	anyChild *rule // .* and [*]: every member of an object or element of an array

	ignore    bool
	unordered bool
	by        string // unordered arrays of objects matched by this member; "" for multiset
	hasBy     bool
}

// NewRules compiles a Spec. It reports every invalid entry at once, as
// SpecErrors.
//
// As in JSONPath, .* and [*] both select every child of an object or an
// array. An unorderedArrays entry "$.users by id" pairs elements whose id
// values are equal; without "by" the array is compared as a multiset.
func NewRules(s Spec) (*Rules, error) {
	r := &Rules{}
	var errs SpecErrors
	bad := func(field string, i int, format string, args ...any) {
		errs = append(errs, &SpecError{Field: field, Index: i, Msg: fmt.Sprintf(format, args...)})
	}
	for i, p := range s.Ignore {
		segs, err := ParsePath(p)
		switch {
		case err != nil:
			bad("ignore", i, "invalid JSON path %q: %v", clipText(p), err)
		case len(segs) == 0:
			bad("ignore", i, "ignoring \"$\" would ignore the whole body; name what to ignore, e.g. \"$.generated_at\"")
		default:
			r.add(segs).ignore = true
		}
	}
	for i, entry := range s.UnorderedArrays {
		p, by, hasBy := strings.Cut(entry, " by ")
		p, by = strings.TrimSpace(p), strings.TrimSpace(by)
		if hasBy && by == "" {
			bad("unorderedArrays", i, "%q: name the member after \"by\", e.g. \"$.users by id\"", clipText(entry))
			continue
		}
		segs, err := ParsePath(p)
		if err != nil {
			bad("unorderedArrays", i, "invalid JSON path %q: %v", clipText(p), err)
			continue
		}
		if n := r.add(segs); !n.unordered { // the first entry for a path wins
			n.unordered, n.by, n.hasBy = true, by, hasBy
		}
	}
	if t := s.NumericTolerance; math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		bad("numericTolerance", -1, "must be a number of at least 0 (got %s)", strconv.FormatFloat(t, 'g', -1, 64))
	} else if t > 0 {
		r.tolerance = t
		var scratch []byte
		r.tolDec = parseDecimal([]byte(strconv.FormatFloat(t, 'g', -1, 64)), &scratch)
	}
	for _, h := range s.Headers {
		h = strings.ToLower(h)
		if !slices.Contains(r.headers, h) {
			r.headers = append(r.headers, h)
		}
	}
	slices.Sort(r.headers)
	for i, f := range s.Redact {
		if f == "" {
			bad("redact", i, "must not be empty")
			continue
		}
		r.redact = append(r.redact, f)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

// Headers are the response headers compared, lower case and sorted.
func (r *Rules) Headers() []string { return r.headers }

// clipText shortens s for a message (%q shows a cut rune as bytes).
func clipText(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// add returns the tree node for segs, creating the way to it.
func (r *Rules) add(segs []PathSegment) *rule {
	if r.root == nil {
		r.root = &rule{}
	}
	n := r.root
	for _, s := range segs {
		switch s.Kind {
		case SegmentField:
			if n.fields == nil {
				n.fields = map[string]*rule{}
			}
			c := n.fields[s.Name]
			if c == nil {
				c = &rule{}
				n.fields[s.Name] = c
			}
			n = c
		case SegmentIndex:
			if n.index == nil {
				n.index = map[int]*rule{}
			}
			c := n.index[s.Index]
			if c == nil {
				c = &rule{}
				n.index[s.Index] = c
			}
			n = c
		default: // SegmentAnyField, SegmentAnyIndex
			if n.anyChild == nil {
				n.anyChild = &rule{}
			}
			n = n.anyChild
		}
	}
	return n
}

// redacts reports whether a member's value never appears in excerpts.
func (r *Rules) redacts(name []byte) bool {
	for _, f := range r.redact {
		if len(f) == len(name) && strings.EqualFold(f, string(name)) {
			return true
		}
	}
	return false
}

// redactsHeader reports whether a header's value never appears in excerpts:
// wire.SecretHeaders (Authorization, Cookie, Set-Cookie, ...), and headers
// named in the redact list.
func (r *Rules) redactsHeader(name string) bool {
	return slices.Contains(wire.SecretHeaders, name) || r.redacts([]byte(name))
}
