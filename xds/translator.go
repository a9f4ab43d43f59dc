package xds

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"runtime"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	runtimev3 "github.com/envoyproxy/go-control-plane/envoy/service/runtime/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Translator turns policies into Envoy resources incrementally: what it
// builds for a route (its Envoy routes, its shadow cluster, validated, with
// their content versions) is kept by the route's content hash, and a route
// configuration by the versions of the routes in it, so a policy edit
// rebuilds only the routes that changed and the resources that hold them,
// and a snapshot is assembled from the kept pieces. What is kept is what
// the last policy used: memory follows the policy, not its history.
//
// Given the same Options, a Translator gives the same resources for the
// same policy as a new one does (TestTranslatorIncremental). Safe for
// concurrent use, but a translator and those made from it by WithScopeAt
// read each other's pieces: use them from one goroutine.
type Translator struct {
	opts    Options
	sibling *Translator // whose pieces this one may reuse (WithScopeAt)

	mu       sync.Mutex
	routes   map[pieceKey]*routePiece      // the last policy's
	tables   map[string]*tablePiece        // by name and routes' versions
	runtimes map[string]*runtimev3.Runtime // by version
}

// pieceKey is a route's content (policy.Route.Hash) and whether its
// percentage is written in its routes (a scoped listener's) or served over
// RTDS.
type pieceKey struct {
	hash   string
	inline bool
}

// routePiece is what one policy route contributes, built once per content.
type routePiece struct {
	envoy   []*routev3.Route
	version string // of envoy's wire form
	shadow  *clusterv3.Cluster
	shadowV string
	percent *percent // mirrored routes only
	errs    []error
}

// tablePiece is a route configuration assembled from route pieces and,
// when its listener is scoped, the scope that points at it.
type tablePiece struct {
	rc      *routev3.RouteConfiguration
	version string
	scope   *routev3.ScopedRouteConfiguration
	scopeV  string
}

// NewTranslator returns a translator with nothing kept yet.
func NewTranslator(opts Options) *Translator {
	return &Translator{opts: opts, routes: map[pieceKey]*routePiece{}, tables: map[string]*tablePiece{}, runtimes: map[string]*runtimev3.Runtime{}}
}

// WithScopeAt is a translator like t whose Options.ScopeAt is at, sharing
// t's route pieces: the same policy translated by both builds each route
// once (serve translates each policy for state-of-the-world Envoys, in one
// table, and for delta ones, scoped).
func (t *Translator) WithScopeAt(at int) *Translator {
	opts := t.opts
	opts.ScopeAt = at
	u := NewTranslator(opts)
	u.sibling, t.sibling = t, u
	return u
}

// Translate builds the Envoy resources for p from scratch. It is pure and
// deterministic. It returns every problem it finds (joined); a policy that
// passed policy.Load should always translate, so an error here is a bug to
// report.
func Translate(p *policy.Policy, opts Options) (*Resources, error) {
	return NewTranslator(opts).Translate(p)
}

// Translate builds the Envoy resources for p, reusing the pieces of routes
// that have not changed since the last call.
func (t *Translator) Translate(p *policy.Policy) (*Resources, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	opts := t.opts
	errs := append(checkAdmission(p, opts), checkCapture(p, opts)...)
	errs = append(errs, checkRollout(p, opts)...)
	n := len(p.Routes)
	res := &Resources{versions: map[types.ResponseType]map[string]string{
		types.Listener: {}, types.Route: make(map[string]string, n), types.ScopedRoute: make(map[string]string, n),
		types.Cluster: make(map[string]string, n), types.Runtime: make(map[string]string, RuntimeShards+1),
	}}
	add := func(typ types.ResponseType, name, version string) { res.versions[typ][name] = version }

	// Which listeners are scoped, and so which pieces each route needs:
	// its percentage inline (in a scoped listener) or over RTDS.
	scoped := make(map[string]bool, len(p.Listeners))
	needs := make(map[*policy.Route][2]bool, n) // [runtime, inline]
	for _, l := range p.Listeners {
		scoped[l.Name] = opts.scopedListener(l)
		for _, r := range l.Routes {
			v := needs[r]
			v[b2i(scoped[l.Name])] = true
			needs[r] = v
		}
	}
	var wants []want
	for _, r := range p.Routes {
		for i, need := range needs[r] {
			if need {
				wants = append(wants, want{r, i == 1})
			}
		}
	}
	pieces := t.pieces(wants)
	byRoute := make(map[*policy.Route][2]*routePiece, n)
	var percents []*percent
	for _, r := range p.Routes {
		var both [2]*routePiece
		for i, need := range needs[r] {
			if need {
				both[i] = pieces[want{r, i == 1}]
			}
		}
		byRoute[r] = both
		pc := both[0]
		if pc == nil {
			pc = both[1]
		}
		if pc == nil {
			continue // on no listener: refused by policy.Load
		}
		errs = append(errs, pc.errs...)
		if both[0] != nil && both[0].percent != nil {
			percents = append(percents, both[0].percent)
		}
		if pc.shadow != nil {
			res.Clusters = append(res.Clusters, pc.shadow)
			add(types.Cluster, pc.shadow.GetName(), pc.shadowV)
		}
	}

	tables := make(map[string]*tablePiece, len(t.tables))
	// table adds the route configuration of listener l holding routes (of
	// first segment seg when scoped, with its scope). It is kept by its
	// name and its routes' versions.
	var key []byte
	table := func(l, seg string, routes []*policy.Route, scoped bool) {
		name := RouteConfigName(l)
		if scoped {
			name = SegmentRouteConfigName(l, seg)
		}
		key = append(append(key[:0], name...), 0)
		for _, r := range routes {
			key = append(key, byRoute[r][b2i(scoped)].version...)
		}
		tp, ok := t.tables[string(key)]
		if !ok {
			var envoy []*routev3.Route
			for _, r := range routes {
				envoy = append(envoy, byRoute[r][b2i(scoped)].envoy...)
			}
			h := sha256.New()
			h.Write(key)
			tp = &tablePiece{rc: routeTable(name, envoy, scoped), version: shortHash(h)}
			if scoped {
				tp.scope = scope(l, seg)
				tp.scopeV = hashOf(tp.scope)
			}
		}
		tables[string(key)] = tp
		res.Routes = append(res.Routes, tp.rc)
		add(types.Route, name, tp.version)
		if tp.scope != nil {
			res.Scopes = append(res.Scopes, tp.scope)
			add(types.ScopedRoute, tp.scope.GetName(), tp.scopeV)
		}
	}
	for _, l := range p.Listeners {
		scoped := scoped[l.Name]
		lis, err := listener(l, p, opts, scoped)
		if err == nil {
			err = valid("listener", lis)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", l.Name, err))
			continue
		}
		res.Listeners = append(res.Listeners, lis)
		add(types.Listener, lis.GetName(), hashOf(lis))
		if !scoped {
			table(l.Name, "", l.Routes, false)
			continue
		}
		var segs []string
		members := map[string][]*policy.Route{}
		for _, r := range l.Routes {
			seg, _ := Segment(r.Match)
			if _, ok := members[seg]; !ok {
				segs = append(segs, seg)
			}
			members[seg] = append(members[seg], r)
		}
		for _, seg := range segs {
			table(l.Name, seg, members[seg], true)
		}
	}

	cluster := func(c *clusterv3.Cluster, err error, what string) {
		if err == nil {
			err = valid("cluster", c)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return
		}
		res.Clusters = append(res.Clusters, c)
		add(types.Cluster, c.GetName(), hashOf(c))
	}
	for _, s := range p.Services {
		c, err := serviceCluster(s)
		if err == nil && candidateService(p, s) {
			unlimitRetries(c)
		}
		cluster(c, err, fmt.Sprintf("service %q", s.Name))
	}
	if opts.AdmissionAddress != "" && len(p.AdmissionRoutes(wire.ScopeGlobal)) > 0 {
		c, err := admissionCluster(opts.AdmissionAddress, opts.TLS)
		cluster(c, err, "admission server")
	}
	if opts.APIAddress != "" && (len(p.AdmissionRoutes(wire.ScopeLocal)) > 0 || opts.captured(p, captureGateway)) {
		c, err := apiCluster(opts.APIAddress, opts.TLS)
		cluster(c, err, "api")
	}
	runtimes, versions := runtimeLayers(percents, t.runtimes)
	keptRuntimes := make(map[string]*runtimev3.Runtime, len(runtimes))
	for i, rt := range runtimes {
		if _, ok := t.runtimes[versions[i]]; !ok {
			if err := valid("runtime", rt); err != nil {
				errs = append(errs, err)
			}
		}
		keptRuntimes[versions[i]] = rt
		add(types.Runtime, rt.GetName(), versions[i])
	}
	res.Runtimes = runtimes

	kept := make(map[pieceKey]*routePiece, len(pieces))
	for w, pc := range pieces {
		if w.r.Hash != "" { // a route not from policy.Load has no content hash: never kept
			kept[w.key()] = pc
		}
	}
	t.routes, t.tables, t.runtimes = kept, tables, keptRuntimes
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}

// want is a piece a translation needs: route r's, its percentage inline
// or not.
type want struct {
	r      *policy.Route
	inline bool
}

func (w want) key() pieceKey { return pieceKey{w.r.Hash, w.inline} }

// pieces are the route pieces wanted: kept by t or its sibling, or built
// now on every core (a cold translation of 10 000 routes is mostly this).
func (t *Translator) pieces(wants []want) map[want]*routePiece {
	out := make(map[want]*routePiece, len(wants))
	var todo []want
	for _, w := range wants {
		pc, ok := t.routes[w.key()]
		if !ok && t.sibling != nil {
			pc, ok = t.sibling.routes[w.key()]
		}
		if ok && w.r.Hash != "" {
			out[w] = pc
		} else {
			todo = append(todo, w)
		}
	}
	built := make([]*routePiece, len(todo))
	workers := min(runtime.GOMAXPROCS(0), len(todo)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(todo); j += workers {
				built[j] = buildRoute(todo[j].r, t.opts, todo[j].inline)
			}
		})
	}
	wg.Wait()
	for j, w := range todo {
		out[w] = built[j]
	}
	return out
}

// buildRoute translates route r: its Envoy routes and, when mirrored, its
// shadow cluster, each validated by Envoy's rules (PGV) and versioned.
func buildRoute(r *policy.Route, opts Options, inline bool) *routePiece {
	pc := &routePiece{envoy: envoyRoutes(r, opts, inline)}
	h := sha256.New()
	for _, rt := range pc.envoy {
		if err := valid("route", rt); err != nil {
			pc.errs = append(pc.errs, fmt.Errorf("route %q: %w", r.Name, err))
		}
		writeWire(h, rt)
	}
	pc.version = shortHash(h)
	if r.Mirrored() {
		pc.percent = newPercent(r)
		c, err := shadowCluster(r, opts)
		if err == nil {
			err = valid("cluster", c)
		}
		if err != nil {
			pc.errs = append(pc.errs, fmt.Errorf("route %q: shadow: %w", r.Name, err))
		} else {
			pc.shadow, pc.shadowV = c, hashOf(c)
		}
	}
	return pc
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

type named interface{ GetName() string }

// valid runs Envoy's own proto validation (PGV) on m.
func valid(kind string, m interface {
	named
	ValidateAll() error
}) error {
	if err := m.ValidateAll(); err != nil {
		return fmt.Errorf("%s %q fails Envoy validation: %w", kind, m.GetName(), err)
	}
	return nil
}

var wireForm = proto.MarshalOptions{Deterministic: true}

// writeWire writes m's deterministic wire form to h, length first.
func writeWire(h hash.Hash, m proto.Message) {
	b, err := wireForm.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("xds: marshalling %T: %v", m, err)) // a built message always marshals
	}
	fmt.Fprintf(h, "%d:", len(b))
	h.Write(b)
}

// hashOf is the content version of one message: a short hash of its
// deterministic wire form.
func hashOf(m proto.Message) string {
	h := sha256.New()
	writeWire(h, m)
	return shortHash(h)
}
