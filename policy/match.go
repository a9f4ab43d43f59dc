package policy

import (
	"regexp"
	"slices"
	"strings"
)

// Request is what a route is matched against: the method, the request
// target as Envoy's :path (path and query), and a header lookup that
// returns every value of a header (lower-case name).
type Request struct {
	Method string
	Target string
	Header func(name string) []string
}

// RouteFor returns the first route, in policy order, that matches req the
// way Envoy matches the route translated from it (prefix on the whole
// :path, exact path and regex on the path without its query, regexes
// anchored, several values of a header joined with ","), or nil. Listeners
// are not considered: it is for meshes, where the mesh's control plane
// decides which listener serves which route, and for telling which policy
// route a mirrored request belongs to when no mark says so.
func (p *Policy) RouteFor(req Request) *Route {
	for _, r := range p.Routes {
		if r.Matches(req) {
			return r
		}
	}
	return nil
}

// Matches reports whether req matches r's match block.
func (r *Route) Matches(req Request) bool {
	m := r.compiled()
	path, _, _ := strings.Cut(req.Target, "?")
	switch {
	case r.Match.Path != "":
		if path != r.Match.Path {
			return false
		}
	case m.path != nil:
		if !m.path.MatchString(path) {
			return false
		}
	default:
		if !strings.HasPrefix(req.Target, r.Match.PathPrefix) {
			return false
		}
	}
	if len(r.Match.Methods) > 0 && !slices.Contains(r.Match.Methods, req.Method) {
		return false
	}
	for i, h := range r.Match.Headers {
		if !h.matches(req.Header(h.Name), m.headers[i]) {
			return false
		}
	}
	return true
}

// matches is Envoy's header matching, invert_match included. A missing
// header matches an inverted value matcher and "present: false", and
// nothing else (Envoy's rule without treat_missing_header_as_empty).
func (h HeaderMatch) matches(values []string, re *regexp.Regexp) bool {
	if len(values) == 0 {
		if h.Present != nil {
			return !h.Invert && !*h.Present
		}
		return h.Invert
	}
	if h.Present != nil {
		return *h.Present != h.Invert
	}
	v := strings.Join(values, ",")
	var ok bool
	switch {
	case re != nil:
		ok = re.MatchString(v)
	case h.Prefix != "":
		ok = strings.HasPrefix(v, h.Prefix)
	default:
		ok = v == h.Exact
	}
	return ok != h.Invert
}

// compiledMatch is a route's match with its regexes compiled, anchored as
// Envoy's safe_regex matches (the whole value).
type compiledMatch struct {
	path    *regexp.Regexp
	headers []*regexp.Regexp // per Match.Headers; nil where not a regex
}

// compiled returns r's compiled match: the one Parse made, or (for a Route
// built by hand) a new one. The policy checked every regex, so compiling
// cannot fail.
func (r *Route) compiled() *compiledMatch {
	if r.match != nil {
		return r.match
	}
	return compileMatch(r.Match)
}

func compileMatch(mt Match) *compiledMatch {
	m := &compiledMatch{headers: make([]*regexp.Regexp, len(mt.Headers))}
	if mt.PathRegex != "" {
		m.path = regexp.MustCompile(`^(?:` + mt.PathRegex + `)$`)
	}
	for i, h := range mt.Headers {
		if h.Regex != "" && h.Present == nil {
			m.headers[i] = regexp.MustCompile(`^(?:` + h.Regex + `)$`)
		}
	}
	return m
}
