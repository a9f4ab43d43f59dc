package xds

import (
	"cmp"
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
// concurrent use.
type Translator struct {
	opts Options

	mu       sync.Mutex
	pieces   *keptRoutes                   // shared with the translators made by WithScopeAt
	tables   map[string]*tablePiece        // by name and routes' versions
	runtimes map[string]*runtimev3.Runtime // by version
}

// keptRoutes are the route pieces of the last policy translated.
type keptRoutes struct {
	mu     sync.Mutex
	routes map[string]*routePiece // by policy.Route.Hash
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
	return &Translator{opts: opts, pieces: &keptRoutes{routes: map[string]*routePiece{}}, tables: map[string]*tablePiece{}, runtimes: map[string]*runtimev3.Runtime{}}
}

// WithScopeAt is a translator like t whose Options.ScopeAt is at, sharing
// t's route pieces: the same policy translated by both builds each route
// once (serve translates each policy for state-of-the-world Envoys, in one
// table, and for delta ones, scoped).
func (t *Translator) WithScopeAt(at int) *Translator {
	opts := t.opts
	opts.ScopeAt = at
	return &Translator{opts: opts, pieces: t.pieces, tables: map[string]*tablePiece{}, runtimes: map[string]*runtimev3.Runtime{}}
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
	t.pieces.mu.Lock()
	defer t.pieces.mu.Unlock()
	opts := t.opts
	errs := append(checkAdmission(p, opts), checkCapture(p, opts)...)
	errs = append(errs, checkRollout(p, opts)...)
	n := len(p.Routes)
	res := &Resources{versions: map[types.ResponseType]map[string]string{
		types.Listener: {}, types.Route: make(map[string]string, n), types.ScopedRoute: make(map[string]string, n),
		types.Cluster: make(map[string]string, n), types.Runtime: make(map[string]string, RuntimeShards+1),
	}}
	add := func(typ types.ResponseType, name, version string) { res.versions[typ][name] = version }

	pieces := make(map[string]*routePiece, n)
	byRoute := make(map[*policy.Route]*routePiece, n)
	built := t.buildMissing(p.Routes)
	var percents []*percent
	for i, r := range p.Routes {
		pc := built[i]
		if pc == nil {
			pc = t.pieces.routes[r.Hash]
		}
		pieces[r.Hash], byRoute[r] = pc, pc
		errs = append(errs, pc.errs...)
		if pc.percent != nil {
			percents = append(percents, pc.percent)
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
			key = append(key, byRoute[r].version...)
		}
		tp, ok := t.tables[string(key)]
		if !ok {
			var envoy []*routev3.Route
			for _, r := range routes {
				envoy = append(envoy, byRoute[r].envoy...)
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
		scoped := opts.scopedListener(l)
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

	t.pieces.routes, t.tables, t.runtimes = pieces, tables, keptRuntimes
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}

// buildMissing builds the pieces of the routes that have none kept (by
// index; nil for a kept one), on every core: a cold translation of 10 000
// routes is mostly this.
func (t *Translator) buildMissing(routes []*policy.Route) []*routePiece {
	var todo []int
	for i, r := range routes {
		if _, ok := t.pieces.routes[r.Hash]; !ok || r.Hash == "" {
			todo = append(todo, i)
		}
	}
	out := make([]*routePiece, len(routes))
	workers := min(runtime.GOMAXPROCS(0), len(todo)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(todo); j += workers {
				out[todo[j]] = buildRoute(routes[todo[j]], t.opts)
			}
		})
	}
	wg.Wait()
	return out
}

// buildRoute translates route r: its Envoy routes and, when mirrored, its
// shadow cluster, each validated by Envoy's rules (PGV) and versioned.
func buildRoute(r *policy.Route, opts Options) *routePiece {
	pc := &routePiece{envoy: envoyRoutes(r, opts)}
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

type named interface{ GetName() string }

func byName[T named](a, b T) int { return cmp.Compare(a.GetName(), b.GetName()) }

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
