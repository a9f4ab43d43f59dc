package policy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/wire"
)

// Limits enforced by validation.
const (
	maxConnectTimeout = 60 * time.Second
	maxRouteTimeout   = time.Hour
	maxMaxConcurrent  = 100_000
	maxMaxBodyBytes   = int64(64 << 20)
	maxAdmissionDelay = time.Hour
	maxRateCount      = 1_000_000_000
	minRateWindow     = time.Millisecond
	maxRateWindow     = 24 * time.Hour
)

// checker checks a decoded document and compiles it, in one pass: each
// rule reports its problems with path and line, and each part that passes
// becomes its compiled value. The Policy it builds is used only when no
// problem was found. idx gives lines (and tells written-but-empty fields
// from absent ones).
type checker struct {
	idx      *index
	problems *problemList
	found    int // problems found, including those not reported

	// undecoded holds the paths Parse could not decode, or refused over a
	// limit: such a block is absent (or empty), and neither its absence nor
	// references to what it would define are reported again.
	undecoded map[string]bool
}

// add reports a problem at path, unless path is in or under a block that
// could not be decoded.
func (c *checker) add(path, format string, args ...any) {
	c.found++
	if !suppressed(c.undecoded, path) {
		c.problems.add(path, c.idx.line(path), format, args...)
	}
}

// where says where path is, for "(first at ...)": its line, or the path
// itself when lines are unknown.
func (c *checker) where(path string) string {
	if l := c.idx.line(path); l > 0 {
		return "line " + strconv.Itoa(l)
	}
	return path
}

// policy checks and compiles d. The result is meaningful only if no
// problem was added.
func (c *checker) policy(d *document) *Policy {
	switch {
	case d.Version == 0 && !c.idx.has("version"):
		c.add("version", "required: write \"version: 1\"")
	case d.Version != 1:
		c.add("version", "must be 1 (got %d)", d.Version)
	}
	p := &Policy{routes: map[string]*Route{}, services: map[string]*Service{}}
	listeners := c.listeners(d.Listeners, p)
	c.services(d.Services, p)
	c.routes(d, listeners, p)
	for _, l := range p.Listeners {
		for _, r := range p.Routes {
			if len(r.Listeners) == 0 || slices.Contains(r.Listeners, l.Name) {
				l.Routes = append(l.Routes, r)
			}
		}
	}
	return p
}

// nameRE is the rule for listener, service and route names: they become
// Envoy cluster names, stat prefixes and runtime keys.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)

const nameRule = "use 1 to 63 lower-case letters, digits, '-' or '_', starting and ending with a letter or digit (names become Envoy cluster names, stat prefixes and runtime keys)"

func (c *checker) name(path, name string) bool {
	switch {
	case name == "":
		c.add(path, "required")
		return false
	case !nameRE.MatchString(name):
		c.add(path, "invalid name %q: %s", clip(name), nameRule)
		return false
	}
	return true
}

// listeners checks and compiles the listeners and returns the set of
// valid names.
func (c *checker) listeners(ls []docListener, p *Policy) map[string]bool {
	if len(ls) == 0 {
		c.add("listeners", "at least one listener is required")
	}
	names := map[string]bool{}
	firstName := map[string]string{}
	firstAddr := map[string]string{}
	for i, l := range ls {
		lp := itemPath("listeners", i)
		np := fieldPath(lp, "name")
		if c.name(np, l.Name) {
			if first, dup := firstName[l.Name]; dup {
				c.add(np, "duplicate listener name %q (first at %s)", l.Name, c.where(first))
			} else {
				firstName[l.Name] = np
				names[l.Name] = true
			}
		}
		ap := fieldPath(lp, "address")
		if canon, ok := c.listenAddress(ap, l.Address); ok {
			if first, dup := firstAddr[canon]; dup {
				c.add(ap, "duplicate address %q (first at %s)", l.Address, c.where(first))
			} else {
				firstAddr[canon] = ap
			}
		}
		p.Listeners = append(p.Listeners, &Listener{Name: l.Name, Address: l.Address, TrustRequestID: l.TrustRequestID})
	}
	return names
}

// listenAddress checks a listener address: host:port where host is an IP
// literal (IPv6 in brackets, no zone) or "localhost". It returns a canonical
// form for duplicate detection.
func (c *checker) listenAddress(path, s string) (string, bool) {
	host, port, ok := c.hostPort(path, s, "0.0.0.0:10000")
	if !ok {
		return "", false
	}
	if host == "localhost" {
		return net.JoinHostPort(host, strconv.Itoa(port)), true
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		c.add(path, "host must be an IP address or \"localhost\" (got %q)", clip(host))
		return "", false
	}
	if addr.Zone() != "" {
		c.add(path, "IPv6 zones are not supported (got %q)", clip(host))
		return "", false
	}
	return netip.AddrPortFrom(addr, uint16(port)).String(), true
}

// endpoint checks a service endpoint: host:port where host is an IP literal,
// "localhost" or a DNS host name. It returns a canonical form for duplicate
// detection.
func (c *checker) endpoint(path, s string) (string, bool) {
	host, port, ok := c.hostPort(path, s, "127.0.0.1:8080")
	if !ok {
		return "", false
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			c.add(path, "IPv6 zones are not supported (got %q)", clip(host))
			return "", false
		}
		return netip.AddrPortFrom(addr, uint16(port)).String(), true
	}
	if !validHostname(host) {
		c.add(path, "host must be an IP address, \"localhost\" or a DNS host name (got %q)", clip(host))
		return "", false
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(port)), true
}

func (c *checker) hostPort(path, s, example string) (string, int, bool) {
	if s == "" {
		c.add(path, "required: host:port, e.g. %s", example)
		return "", 0, false
	}
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		reason := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			reason = ae.Err
		}
		c.add(path, "must be host:port, e.g. %s (got %q: %s)", example, clip(s), reason)
		return "", 0, false
	}
	if host == "" {
		c.add(path, "host is missing, e.g. %s (got %q)", example, clip(s))
		return "", 0, false
	}
	port, err := strconv.Atoi(portText)
	if err != nil || !isDigits(portText) || port < 1 || port > 65535 {
		c.add(path, "port must be between 1 and 65535 (got %s)", clip(portText))
		return "", 0, false
	}
	return host, port, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validHostname reports whether h is a DNS host name (RFC 1123): labels of
// 1 to 63 letters, digits and '-', not starting or ending with '-', at most
// 253 bytes, and a last label that is not all digits (so that a mistyped
// IPv4 address such as 10.0.0.256 is not taken for a name).
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := range len(l) {
			b := l[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-') {
				return false
			}
		}
	}
	return !isDigits(labels[len(labels)-1])
}

// services checks and compiles the services, with their defaults.
func (c *checker) services(ss map[string]docService, p *Policy) {
	if len(ss) == 0 {
		c.add("services", "at least one service is required")
	}
	names := make([]string, 0, len(ss))
	for n := range ss {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := ss[name]
		sp := fieldPath("services", name)
		c.name(sp, name)
		ep := fieldPath(sp, "endpoints")
		if len(s.Endpoints) == 0 {
			c.add(ep, "at least one endpoint (host:port) is required")
		}
		first := map[string]string{}
		for i, e := range s.Endpoints {
			ip := itemPath(ep, i)
			canon, ok := c.endpoint(ip, e)
			if !ok {
				continue
			}
			if f, dup := first[canon]; dup {
				c.add(ip, "duplicate endpoint %q (first at %s)", e, c.where(f))
				continue
			}
			first[canon] = ip
		}
		svc := &Service{Name: name, Endpoints: s.Endpoints, ConnectTimeout: DefaultConnectTimeout, Protocol: ProtocolAuto}
		if s.ConnectTimeout != nil {
			c.duration(fieldPath(sp, "connectTimeout"), s.ConnectTimeout.Duration, maxConnectTimeout, "60s")
			svc.ConnectTimeout = s.ConnectTimeout.Duration
		}
		switch pr := Protocol(s.Protocol); pr {
		case "":
		case ProtocolAuto, ProtocolHTTP1, ProtocolHTTP2:
			svc.Protocol = pr
		default:
			c.add(fieldPath(sp, "protocol"), "must be %s, %s or %s (got %q)", ProtocolAuto, ProtocolHTTP1, ProtocolHTTP2, clip(s.Protocol))
		}
		if s.TLS != nil {
			svc.TLS = c.tls(fieldPath(sp, "tls"), s.TLS, s.Endpoints)
		}
		if s.GRPC != nil {
			svc.GRPC = c.grpc(sp, s.GRPC, svc)
		}
		p.Services = append(p.Services, svc)
		p.services[name] = svc
	}
}

// tls checks a service's TLS block: every file must be readable and hold
// what it should (Envoy and the gateway read them), a certificate comes
// with its key, the server name is a DNS name, and there is a CA and a name
// to verify the server against (Envoy verifies nothing by itself).
func (c *checker) tls(path string, t *docTLS, endpoints []string) *TLS {
	out := &TLS{CA: t.CA, Cert: t.Cert, Key: t.Key, ServerName: t.ServerName}
	if t.CA == "" {
		c.add(fieldPath(path, "ca"), "required: the CA file to verify the service's certificate against")
	} else {
		if pem, err := os.ReadFile(t.CA); err != nil {
			c.add(fieldPath(path, "ca"), "cannot read the CA file: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			c.add(fieldPath(path, "ca"), "%q holds no PEM certificate", clip(t.CA))
		}
	}
	switch {
	case (t.Cert == "") != (t.Key == ""):
		missing := "key"
		if t.Cert == "" {
			missing = "cert"
		}
		c.add(fieldPath(path, missing), "required with %s: a client certificate needs both cert and key", map[string]string{"key": "cert", "cert": "key"}[missing])
	case t.Cert != "":
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			c.add(fieldPath(path, "cert"), "cannot load the client certificate and key: %v", err)
		}
	}
	switch hosts := endpointHosts(endpoints); {
	case t.ServerName != "" && !validHostname(t.ServerName):
		c.add(fieldPath(path, "serverName"), "must be a DNS host name (got %q)", clip(t.ServerName))
	case t.ServerName == "" && len(hosts) == 1:
		out.ServerName = hosts[0] // the name verified; SNI when it is a DNS name
	case t.ServerName == "" && c.undecoded[fieldPath(parentPath(path), "endpoints")]:
		// the endpoints are not there to tell; their problem is reported
	case t.ServerName == "":
		c.add(fieldPath(path, "serverName"), "required when the endpoints have different hosts (%s): the name every endpoint's certificate is verified for", strings.Join(hosts, ", "))
	}
	return out
}

// endpointHosts are the distinct hosts of endpoints, sorted.
func endpointHosts(endpoints []string) []string {
	var hosts []string
	for _, e := range endpoints {
		if h, _, err := net.SplitHostPort(e); err == nil && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	return hosts
}

// duration checks 0 < d <= limit.
func (c *checker) duration(path string, d, limit time.Duration, limitText string) {
	if d <= 0 || d > limit {
		c.add(path, "must be greater than 0 and at most %s (got %s)", limitText, d)
	}
}

// serviceRef returns the service name names, or nil after reporting why
// there is none.
func (c *checker) serviceRef(path, name string, p *Policy) *Service {
	if name == "" {
		c.add(path, "required: the name of a service")
		return nil
	}
	if s := p.services[name]; s != nil {
		return s
	}
	if c.undecoded["services"] {
		return nil
	}
	if len(p.Services) == 0 {
		c.add(path, "unknown service %q (no services are defined)", clip(name))
		return nil
	}
	names := make([]string, len(p.Services))
	for i, s := range p.Services {
		names[i] = s.Name
	}
	c.add(path, "unknown service %q (defined: %s)", clip(name), strings.Join(names, ", "))
	return nil
}

type routeMatch struct {
	name, path string
	listeners  []string
}

// routes checks and compiles the routes.
func (c *checker) routes(d *document, listeners map[string]bool, p *Policy) {
	if len(d.Routes) == 0 {
		c.add("routes", "at least one route is required")
	}
	firstName := map[string]string{}
	matches := map[string][]routeMatch{}
	for i := range d.Routes {
		r := &d.Routes[i]
		rp := itemPath("routes", i)
		out := &Route{Name: r.Name, Match: r.Match, Listeners: r.Listeners, Timeout: DefaultRouteTimeout}
		p.Routes = append(p.Routes, out)
		p.routes[r.Name] = out
		np := fieldPath(rp, "name")
		if c.name(np, r.Name) {
			if first, dup := firstName[r.Name]; dup {
				c.add(np, "duplicate route name %q (first at %s)", r.Name, c.where(first))
			} else {
				firstName[r.Name] = np
			}
		}
		out.Primary = c.serviceRef(fieldPath(rp, "primary"), r.Primary, p)
		c.routeListeners(fieldPath(rp, "listeners"), r.Listeners, listeners)
		if r.Timeout != nil {
			c.duration(fieldPath(rp, "timeout"), r.Timeout.Duration, maxRouteTimeout, "1h")
			out.Timeout = r.Timeout.Duration
		}
		mp := fieldPath(rp, "match")
		key, ok := c.match(mp, &out.Match)
		cp := fieldPath(rp, "compare")
		if r.Shadow != nil {
			out.Shadow = c.shadow(fieldPath(rp, "shadow"), r, p)
			out.Shadow.Compare = c.compare(cp, r.Compare)
			if r.Compare != nil && !out.Shadow.Capture {
				c.add(cp, "has no effect with shadow.capture: false (nothing is compared); remove one of them")
			}
		} else if r.Compare != nil {
			if !c.undecoded[fieldPath(rp, "shadow")] {
				c.add(cp, "compare needs a shadow (this route mirrors nothing to compare with)")
			}
			c.compare(cp, r.Compare)
		}
		if r.Admission != nil {
			out.Admission = c.admission(fieldPath(rp, "admission"), r.Admission)
		}
		if r.Rollout != nil {
			out.Rollout = c.rollout(fieldPath(rp, "rollout"), r.Rollout, r, out)
		}
		if !ok {
			continue
		}
		for _, prev := range matches[key] {
			if shareListener(prev.listeners, r.Listeners) {
				c.add(mp, "unreachable: same match as route %q at %s", prev.name, c.where(prev.path))
				break
			}
		}
		matches[key] = append(matches[key], routeMatch{name: r.Name, path: rp, listeners: r.Listeners})
	}
}

// shareListener reports whether two routes are served on a common listener
// (an empty list means every listener).
func shareListener(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func (c *checker) routeListeners(path string, names []string, defined map[string]bool) {
	seen := map[string]bool{}
	for i, n := range names {
		ip := itemPath(path, i)
		switch {
		case n == "":
			c.add(ip, "must not be empty")
		case seen[n]:
			c.add(ip, "listener %q listed twice", clip(n))
		case !defined[n] && !c.undecoded["listeners"]:
			c.add(ip, "unknown listener %q (defined: %s)", clip(n), strings.Join(sortedSet(defined), ", "))
		}
		seen[n] = true
	}
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// match checks a route's match and returns a canonical key of it, used to
// find routes that can never be reached; ok is false when the match is
// invalid.
func (c *checker) match(path string, m *Match) (key string, ok bool) {
	ok = true
	var got []string
	for _, s := range []struct{ field, value string }{
		{"grpc", m.GRPC}, {"pathPrefix", m.PathPrefix}, {"path", m.Path}, {"pathRegex", m.PathRegex},
	} {
		fp := fieldPath(path, s.field)
		if s.value == "" {
			if c.idx.has(fp) {
				c.add(fp, "must not be empty")
				ok = false
			}
			continue
		}
		got = append(got, s.field)
		switch s.field {
		case "pathPrefix", "path":
			if !strings.HasPrefix(s.value, "/") {
				c.add(fp, "must start with \"/\" (got %q)", clip(s.value))
				ok = false
			} else if strings.ContainsAny(s.value, "?#") {
				c.add(fp, "must not contain '?' or '#': the query string is not part of the path (got %q)", clip(s.value))
				ok = false
			}
		case "pathRegex":
			ok = c.regex(fp, s.value) && ok
		case "grpc":
			ok = c.grpcMatch(fp, s.value) && ok
		}
	}
	switch {
	case len(got) == 0 && ok:
		c.add(path, "one of grpc, pathPrefix, path or pathRegex is required")
		ok = false
	case len(got) > 1:
		c.add(path, "exactly one of grpc, pathPrefix, path or pathRegex is allowed (got %s)", strings.Join(got, " and "))
		ok = false
	case ok && m.GRPC != "":
		if strings.Contains(m.GRPC, "/") {
			m.Path = "/" + m.GRPC
		} else {
			m.PathPrefix = "/" + m.GRPC + "/"
		}
	}

	mp := fieldPath(path, "methods")
	seen := map[string]bool{}
	for i, meth := range m.Methods {
		ip := itemPath(mp, i)
		switch {
		case meth == "":
			c.add(ip, "must not be empty")
		case !isToken(meth):
			c.add(ip, "invalid method %q: must be an HTTP token such as GET", clip(meth))
		case strings.ToUpper(meth) != meth:
			c.add(ip, "method %q must be upper case (write %q)", meth, strings.ToUpper(meth))
		case seen[meth]:
			c.add(ip, "duplicate method %q", meth)
		default:
			seen[meth] = true
			continue
		}
		ok = false
	}
	if len(seen) == len(m.Methods) { // each valid
		c.oneOf(mp, m.Methods, "methods")
	}

	hp := fieldPath(path, "headers")
	headerKeys := make([]string, 0, len(m.Headers))
	for i := range m.Headers {
		k, hok := c.headerMatch(itemPath(hp, i), &m.Headers[i])
		ok = ok && hok
		headerKeys = append(headerKeys, k)
	}
	if !ok || c.undecoded[mp] || c.undecoded[hp] { // not all there: no key
		return "", false
	}
	methods := slices.Clone(m.Methods)
	sort.Strings(methods)
	sort.Strings(headerKeys)
	return fmt.Sprintf("prefix=%q path=%q regex=%q methods=%q headers=%q",
		m.PathPrefix, m.Path, m.PathRegex, methods, headerKeys), true
}

func (c *checker) headerMatch(path string, h *HeaderMatch) (string, bool) {
	ok := c.headerName(fieldPath(path, "name"), h.Name, true)
	var got []string
	for _, s := range []struct{ field, value string }{
		{"exact", h.Exact}, {"prefix", h.Prefix}, {"regex", h.Regex},
	} {
		fp := fieldPath(path, s.field)
		if s.value == "" {
			if c.idx.has(fp) {
				c.add(fp, "must not be empty (to match a header that is absent, use present: false)")
				ok = false
			}
			continue
		}
		got = append(got, s.field)
		if s.field == "regex" {
			ok = c.regex(fp, s.value) && ok
		}
	}
	if h.Present != nil {
		got = append(got, "present")
	}
	switch {
	case len(got) == 0 && ok:
		c.add(path, "one of exact, prefix, regex or present is required")
		ok = false
	case len(got) > 1:
		c.add(path, "exactly one of exact, prefix, regex or present is allowed (got %s)", strings.Join(got, " and "))
		ok = false
	}
	present := "-"
	if h.Present != nil {
		present = strconv.FormatBool(*h.Present)
	}
	return fmt.Sprintf("%q exact=%q prefix=%q regex=%q present=%s invert=%t",
		h.Name, h.Exact, h.Prefix, h.Regex, present, h.Invert), ok
}

// headerName checks a lower-case HTTP header name. Pseudo-headers (":path")
// are refused everywhere; inMatch tailors the hint.
func (c *checker) headerName(path, name string, inMatch bool) bool {
	switch {
	case name == "":
		c.add(path, "required: a lower-case header name")
	case strings.HasPrefix(name, ":"):
		hint := "pseudo-headers are not allowed here"
		if inMatch {
			switch name {
			case ":method":
				hint = "pseudo-headers cannot be matched here; use match.methods"
			case ":path":
				hint = "pseudo-headers cannot be matched here; use match.path, match.pathPrefix or match.pathRegex"
			default:
				hint = "pseudo-headers cannot be matched here"
			}
		}
		c.add(path, "%s (got %q)", hint, clip(name))
	case !isToken(name):
		c.add(path, "invalid header name %q: use letters, digits and !#$%%&'*+-.^_`|~", clip(name))
	case strings.ToLower(name) != name:
		c.add(path, "header name %q must be lower case (write %q)", name, strings.ToLower(name))
	default:
		return true
	}
	return false
}

// isToken reports whether s is an HTTP token (RFC 9110 tchar).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		b := s[i]
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(b)) {
			return false
		}
	}
	return true
}

// shadow checks and compiles a route's shadow block (its Compare is the
// caller's). Percent is rounded to 0.0001 % (Envoy's finest fraction is per
// million); more digits are accepted, not refused.
func (c *checker) shadow(path string, r *docRoute, p *Policy) *Shadow {
	s := r.Shadow
	out := &Shadow{Tenants: s.Tenants, UnsafeMethods: s.UnsafeMethods, MaxConcurrent: DefaultMaxConcurrent, MaxRequestBytes: DefaultMaxRequestBytes, Capture: true,
		StickyOn: s.StickyOn}
	if s.Capture != nil {
		out.Capture = *s.Capture
	}
	if s.StickyOn != "" {
		sp := fieldPath(path, "stickyOn")
		if c.headerName(sp, s.StickyOn, false) && !out.Capture {
			c.add(sp, "sticky sampling is done by shadowlab's plugin, which runs only where answers are captured (remove shadow.capture: false, or stickyOn)")
		}
	}
	sp := fieldPath(path, "service")
	if out.Service = c.serviceRef(sp, s.Service, p); out.Service != nil && s.Service == r.Primary {
		c.add(sp, "must differ from primary %q (a route cannot mirror to its own primary)", r.Primary)
	}
	pp := fieldPath(path, "percent")
	switch {
	case s.Percent == nil:
		c.add(pp, "required: the percent of matching requests to mirror, 0 to 100")
	case math.IsNaN(*s.Percent) || *s.Percent < 0 || *s.Percent > 100:
		c.add(pp, "must be between 0 and 100 (got %s)", strconv.FormatFloat(*s.Percent, 'g', -1, 64))
	default:
		out.Percent = *s.Percent
		out.PerMillion = uint32(math.Round(*s.Percent * 10_000))
	}
	if t := s.Tenants; t != nil {
		c.tenants(fieldPath(path, "tenants"), t)
	}
	if mc := s.MaxConcurrent; mc != nil {
		if *mc < 1 || *mc > maxMaxConcurrent {
			c.add(fieldPath(path, "maxConcurrent"), "must be between 1 and %d (got %d)", maxMaxConcurrent, *mc)
		}
		out.MaxConcurrent = *mc
	}
	if mb := s.MaxRequestBytes; mb != nil {
		if *mb < 1 || *mb > maxMaxBodyBytes {
			c.add(fieldPath(path, "maxRequestBytes"), "must be between 1 and %d (64 MiB) (got %d)", maxMaxBodyBytes, *mb)
		}
		out.MaxRequestBytes = *mb
	}
	// A shadow that can never fire is a mistake: the route matches only
	// methods that are not mirrored without unsafeMethods.
	// (Invalid methods are reported by match and skip this check.)
	if len(r.Match.Methods) > 0 && !s.UnsafeMethods {
		safe := false
		for _, m := range r.Match.Methods {
			safe = safe || !isToken(m) || slices.Contains(SafeMethods, strings.ToUpper(m))
		}
		if !safe {
			c.add(fieldPath(path, "unsafeMethods"),
				"nothing would be mirrored: the route matches only %s, and methods other than GET, HEAD and OPTIONS are mirrored only with unsafeMethods: true",
				strings.Join(r.Match.Methods, ", "))
		}
	}
	return out
}

// compare checks and compiles a route's compare block; nil is the
// defaults. The comparison rules are compiled by compare.NewRules, whose
// problems are reported at their entries.
func (c *checker) compare(path string, cm *docCompare) Compare {
	out := Compare{LearnNoise: true, MaxBodyBytes: DefaultMaxBodyBytes}
	if cm != nil {
		out.Spec = compare.Spec{Ignore: cm.Ignore, UnorderedArrays: cm.UnorderedArrays, Redact: cm.Redact, Reveal: cm.Reveal}
		if cm.NumericTolerance != nil {
			out.Spec.NumericTolerance = *cm.NumericTolerance
		}
		out.Spec.Headers = c.headerList(fieldPath(path, "headers"), cm.Headers, false)
		out.VaryOn = c.headerList(fieldPath(path, "varyOn"), cm.VaryOn, true)
		if cm.LearnNoise != nil {
			out.LearnNoise = *cm.LearnNoise
		}
		if mb := cm.MaxBodyBytes; mb != nil {
			if *mb < 1 || *mb > maxMaxBodyBytes {
				c.add(fieldPath(path, "maxBodyBytes"), "must be between 1 and %d (64 MiB) (got %d)", maxMaxBodyBytes, *mb)
			}
			out.MaxBodyBytes = *mb
		}
	}
	// A body is compared decoded: the route's limit bounds it decoded too,
	// so a decompression bomb stops there (skipped as too large decoded).
	spec := out.Spec
	spec.MaxDecodedBytes = int(min(out.MaxBodyBytes, maxMaxBodyBytes))
	rules, err := compare.NewRules(spec)
	var errs compare.SpecErrors
	if err != nil && !errors.As(err, &errs) {
		c.add(path, "%v", err)
	}
	for _, se := range errs {
		fp := fieldPath(path, se.Field)
		if se.Index >= 0 {
			fp = itemPath(fp, se.Index)
		}
		c.add(fp, "%s", se.Msg)
	}
	out.Rules = rules
	return out
}

// headerList checks a list of lower-case header names and returns the
// valid ones. Secret headers (Authorization, Cookie, ...) are refused unless
// secretsOK: they can be hashed into a fingerprint (varyOn), never compared.
func (c *checker) headerList(path string, headers []string, secretsOK bool) []string {
	var out []string
	first := map[string]string{}
	for i, h := range headers {
		ip := itemPath(path, i)
		if !c.headerName(ip, h, false) {
			continue
		}
		if !secretsOK && slices.Contains(wire.SecretHeaders, h) {
			c.add(ip, "%q carries secrets: shadowlab never captures it, so it cannot be compared", h)
			continue
		}
		if f, dup := first[h]; dup {
			c.add(ip, "duplicate header %q (first at %s)", h, c.where(f))
			continue
		}
		first[h] = ip
		out = append(out, h)
	}
	return out
}

// admission checks a route's admission block. The rules:
//   - rate is required, "N/W": N a whole number from 1 to 1e9, W a Go
//     duration ("15m", "500ms", "1h30m") or a bare unit meaning one of it
//     ("ms", "s", "m", "h"), between 1ms and 24h;
//   - mode is delay (default), reject or observe;
//   - scope is local (default, the wasm plugin in each Envoy) or global
//     (the ext_proc server, shared by all Envoys);
//   - key is "route" (default) or "header:<name>" with a lower-case header
//     name that is not a pseudo-header;
//   - maxDelay is required with mode delay (how long a request may be held);
//     when set it must be greater than 0 and at most 1h (a held request ties
//     up a downstream connection; longer holds are better refused);
//   - maxDelay is refused with mode reject, where requests over the rate are
//     answered at once and nothing is held; with observe it is accepted (it
//     says what delay mode would do).
func (c *checker) admission(path string, a *docAdmission) *Admission {
	before := c.found
	out := &Admission{Rate: a.Rate, Scope: wire.ScopeLocal}
	rp := fieldPath(path, "rate")
	if a.Rate == "" {
		c.add(rp, "required, e.g. \"100/s\" or \"10000/15m\"")
	} else if n, w, err := parseRate(a.Rate); err != nil {
		c.add(rp, "invalid rate %q: %v", clip(a.Rate), err)
	} else {
		out.Budget.Limit, out.Budget.Window = n, w
	}
	out.Budget.Mode = admission.ModeDelay
	if a.Mode != "" {
		mode, err := admission.ParseMode(a.Mode)
		var ce *admission.ConfigError
		if errors.As(err, &ce) {
			c.add(fieldPath(path, "mode"), "%s", ce.Problem)
		}
		out.Budget.Mode = mode
	}
	if a.Scope != "" {
		scope, ok := wire.ParseScope(a.Scope)
		if !ok {
			c.add(fieldPath(path, "scope"), "must be %s or %s (got %q)", wire.ScopeLocal, wire.ScopeGlobal, clip(a.Scope))
		}
		out.Scope = scope
	}
	out.Budget.Slack = LocalAdmissionSlack
	if out.Scope == wire.ScopeGlobal {
		out.Budget.Slack = GlobalAdmissionSlack
	}
	kp := fieldPath(path, "key")
	switch {
	case a.Key == "" || a.Key == keyRoute:
	case strings.HasPrefix(a.Key, keyHeaderPrefix):
		out.KeyHeader = strings.TrimPrefix(a.Key, keyHeaderPrefix)
		c.headerName(kp, out.KeyHeader, false)
	default:
		c.add(kp, "must be %q or \"%s<header name>\" (got %q)", keyRoute, keyHeaderPrefix, clip(a.Key))
	}
	mp := fieldPath(path, "maxDelay")
	switch {
	case a.MaxDelay == nil:
		if out.Budget.Mode == admission.ModeDelay {
			c.add(mp, "required with mode delay: how long a request may be held, e.g. \"2m\"")
		}
	case a.MaxDelay.Duration <= 0 || a.MaxDelay.Duration > maxAdmissionDelay:
		c.add(mp, "must be greater than 0 and at most 1h (got %s)", a.MaxDelay.Duration)
	case out.Budget.Mode == admission.ModeReject:
		c.add(mp, "has no effect with mode reject (requests over the rate are refused at once); remove it or use mode delay")
	default:
		out.Budget.MaxDelay = a.MaxDelay.Duration
	}
	if c.found == before {
		c.admissionBudget(path, out)
	}
	return out
}

// Values of an admission block's key.
const (
	keyRoute        = "route"
	keyHeaderPrefix = "header:"
)

// admissionBudget checks what only the combination of an admission block's
// fields can make impossible, once each field is valid on its own (it is
// called only when admission found nothing else): a window
// shorter than any scope can release in (MinAdmissionWindow), and a maxDelay
// shorter than the spacing of admitted requests, which could never hold a
// request (every request over the rate would be refused).
func (c *checker) admissionBudget(path string, a *Admission) {
	b := a.Budget
	if b.Window < MinAdmissionWindow {
		c.add(fieldPath(path, "rate"), "window %s is shorter than %s: held requests cannot be released that precisely; use e.g. \"%d/%s\"",
			b.Window, MinAdmissionWindow, max(1, int(int64(b.Limit)*int64(MinAdmissionWindow)/int64(b.Window))), MinAdmissionWindow)
		return
	}
	if b.MaxDelay > 0 && b.Mode != admission.ModeReject {
		spacing := (b.Window + b.Slack + time.Duration(b.Limit) - 1) / time.Duration(b.Limit)
		if b.MaxDelay < spacing {
			c.add(fieldPath(path, "maxDelay"), "%s is shorter than the spacing of admitted requests at %s (%s): no request could ever be held; raise maxDelay or use mode reject",
				b.MaxDelay, a.Rate, spacing)
			return
		}
	}
	if err := b.Validate(); err != nil {
		c.add(path, "impossible admission budget: %v", err)
	}
}

// parseRate parses "N/W" (see admission).
func parseRate(s string) (int, time.Duration, error) {
	count, window, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, errors.New(`want "count/window", e.g. "100/s" or "10000/15m"`)
	}
	n, err := strconv.Atoi(count)
	if err != nil || !isDigits(count) || n < 1 || n > maxRateCount {
		return 0, 0, fmt.Errorf("count must be a whole number from 1 to %d (got %q)", maxRateCount, clip(count))
	}
	switch window {
	case "ms", "s", "m", "h":
		window = "1" + window
	}
	w, err := time.ParseDuration(window)
	if err != nil {
		return 0, 0, fmt.Errorf("window must be a unit (ms, s, m, h) or a Go duration such as \"15m\" (got %q)", clip(window))
	}
	if w < minRateWindow || w > maxRateWindow {
		return 0, 0, fmt.Errorf("window must be between 1ms and 24h (got %s)", w)
	}
	return n, w, nil
}
