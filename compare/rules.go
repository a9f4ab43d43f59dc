package compare

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/shadowlab/shadowlab/policy"
)

// Rules is one route's compare block, compiled once and shared by every
// comparison of the route (it is safe for concurrent use). The zero Rules,
// like NewRules(nil), compares status and bodies exactly: nothing ignored,
// no tolerance, arrays ordered, no headers.
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

// NewRules compiles a route's compare block; nil means the defaults. It
// reports every invalid entry, each with its place in the block.
//
// Paths are policy.ParsePath paths. As in JSONPath, .* and [*] both select
// every child of an object or an array. An unorderedArrays entry may name
// the member that identifies elements: "$.users by id" pairs elements whose
// id values are equal; without it the array is compared as a multiset.
func NewRules(c *policy.Compare) (*Rules, error) {
	r := &Rules{}
	if c == nil {
		return r, nil
	}
	var errs []error
	for i, s := range c.Ignore {
		segs, err := policy.ParsePath(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("ignore[%d]: invalid JSON path %q: %w", i, s, err))
		case len(segs) == 0:
			errs = append(errs, fmt.Errorf("ignore[%d]: ignoring \"$\" would ignore the whole body", i))
		default:
			r.add(segs).ignore = true
		}
	}
	for i, s := range c.UnorderedArrays {
		p, by, hasBy := policy.SplitUnordered(s)
		segs, err := policy.ParsePath(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("unorderedArrays[%d]: invalid JSON path %q: %w", i, p, err))
		case hasBy && by == "":
			errs = append(errs, fmt.Errorf("unorderedArrays[%d]: %q names no member after \"by\"", i, s))
		default:
			if n := r.add(segs); !n.unordered { // the first entry for a path wins
				n.unordered, n.by, n.hasBy = true, by, hasBy
			}
		}
	}
	if t := c.NumericTolerance; t != nil {
		if math.IsNaN(*t) || math.IsInf(*t, 0) || *t < 0 {
			errs = append(errs, fmt.Errorf("numericTolerance: must be a number of at least 0 (got %v)", *t))
		} else if *t > 0 {
			r.tolerance = *t
			var scratch []byte
			r.tolDec = parseDecimal([]byte(strconv.FormatFloat(*t, 'g', -1, 64)), &scratch)
		}
	}
	seen := map[string]bool{}
	for i, h := range c.Headers {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			errs = append(errs, fmt.Errorf("headers[%d]: must not be empty", i))
			continue
		}
		if !seen[h] {
			seen[h] = true
			r.headers = append(r.headers, h)
		}
	}
	slices.Sort(r.headers)
	for i, f := range c.Redact {
		if f == "" {
			errs = append(errs, fmt.Errorf("redact[%d]: must not be empty", i))
			continue
		}
		r.redact = append(r.redact, f)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// add returns the tree node for segs, creating the way to it.
func (r *Rules) add(segs []policy.PathSegment) *rule {
	if r.root == nil {
		r.root = &rule{}
	}
	n := r.root
	for _, s := range segs {
		switch s.Kind {
		case policy.SegmentField:
			if n.fields == nil {
				n.fields = map[string]*rule{}
			}
			c := n.fields[s.Name]
			if c == nil {
				c = &rule{}
				n.fields[s.Name] = c
			}
			n = c
		case policy.SegmentIndex:
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
// policy.SecretHeaders (Authorization, Cookie, Set-Cookie, ...), and
// headers named in the redact list.
func (r *Rules) redactsHeader(name string) bool {
	return slices.Contains(policy.SecretHeaders, name) || r.redacts([]byte(name))
}
