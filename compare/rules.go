package compare

import (
	"fmt"
	"maps"
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
	// Redact adds member, parameter and header names to DefaultRedact:
	// their values never appear in excerpts.
	Redact []string
	// Reveal are names of DefaultRedact this route must see (an opt-out);
	// each must be one of them.
	Reveal []string
	// MaxDecodedBytes bounds each body decoded from its Content-Encoding;
	// decoding stops past it and the bodies are not compared. 0:
	// MaxDecodedBytes.
	MaxDecodedBytes int
}

// DefaultRedact are the secret-looking names whose values never appear in
// excerpts unless a route reveals them: JSON member names at any depth,
// parameters of form-encoded and query-string text (name=value, also
// inside JSON strings such as an echoed URL), "name: value" lines of text,
// and compared headers. Names are matched without regard to case or to the
// separators '-', '_' and '.': api-key, api_key, apiKey and API.KEY are
// "apikey". Matching is by the whole name, not a part of it
// (user_password is not matched; add it to redact).
var DefaultRedact = []string{
	"password", "passwd", "passphrase", "secret", "client_secret",
	"token", "access_token", "refresh_token", "id_token", "auth_token", "session_token", "csrf_token",
	"api_key", "apikey", "x-api-key", "private_key",
	"authorization", "proxy-authorization", "cookie", "set-cookie", "session", "session_id", "sessionid",
	"ssn", "card_number", "cardnumber", "credit_card", "cvv", "cvc", "iban",
}

// defaultRedact is DefaultRedact normalised.
var defaultRedact = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range DefaultRedact {
		m[normalName(n)] = true
	}
	return m
}()

// maxNameLen bounds the names that can be redacted (longer are not).
const maxNameLen = 64

// normalName is a name as redaction matches it: lower case, without '-',
// '_' and '.'.
func normalName(s string) string {
	var buf [maxNameLen]byte
	b, ok := appendNormal(buf[:0], []byte(s))
	if !ok {
		return strings.ToLower(s)
	}
	return string(b)
}

// appendNormal appends the normal form of name to dst; false when it is
// longer than maxNameLen.
func appendNormal(dst, name []byte) ([]byte, bool) {
	for _, c := range name {
		switch {
		case c == '-' || c == '_' || c == '.':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if len(dst) == maxNameLen {
			return dst, false
		}
		dst = append(dst, c)
	}
	return dst, true
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
// ordered, no headers, DefaultRedact redacted, bodies decoded up to
// MaxDecodedBytes.
type Rules struct {
	root       *rule           // ignore and unordered paths as a tree; nil: none
	tolerance  float64         // absolute, >= 0
	tolDec     decimal         // tolerance as the shortest decimal that rounds to it
	headers    []string        // lower case, sorted, unique
	redact     map[string]bool // normal names (normalName) whose values are redacted
	maxDecoded int             // bound of a decoded body; > 0

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
	r.redact = maps.Clone(defaultRedact)
	for i, f := range s.Redact {
		if strings.Trim(f, "-_.") == "" {
			bad("redact", i, "must not be empty")
			continue
		}
		r.redact[normalName(f)] = true
	}
	for i, f := range s.Reveal {
		n := normalName(f)
		if !defaultRedact[n] {
			bad("reveal", i, "%q is not a name redacted by default (%s)", clipText(f), strings.Join(DefaultRedact, ", "))
			continue
		}
		delete(r.redact, n)
	}
	switch m := s.MaxDecodedBytes; {
	case m < 0:
		bad("maxDecodedBytes", -1, "must be at least 0 (got %d)", m)
	case m > 0:
		r.maxDecoded = min(m, MaxDecodedBytes)
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

// redacts reports whether the values of a member, parameter or header
// named name never appear in excerpts.
func (r *Rules) redacts(name []byte) bool {
	var buf [maxNameLen]byte
	n, ok := appendNormal(buf[:0], name)
	if r.redact == nil {
		return ok && defaultRedact[string(n)]
	}
	return ok && r.redact[string(n)]
}

// decodeLimit is how large a body may decode to.
// DecodeLimit is the most a body is decoded to (Spec's maxDecodedBytes, or
// MaxDecodedBytes).
func (r *Rules) DecodeLimit() int {
	if r == nil {
		return MaxDecodedBytes
	}
	return r.decodeLimit()
}

func (r *Rules) decodeLimit() int {
	if r.maxDecoded > 0 {
		return r.maxDecoded
	}
	return MaxDecodedBytes
}

// redactsHeader reports whether a header's value never appears in excerpts:
// wire.SecretHeaders (Authorization, Cookie, Set-Cookie, ...), and headers
// named in the redact list.
func (r *Rules) redactsHeader(name string) bool {
	return slices.Contains(wire.SecretHeaders, name) || r.redacts([]byte(name))
}
