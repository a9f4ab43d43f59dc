// Package pair pairs the halves of mirrored requests (the primary's answer
// and the shadow's) by route and request ID, compares each pair under the
// route's compiled rules, learns the route's noise, and hands the result to
// the report. Offer never blocks; everything pending is bounded.
package pair

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/wire"
)

// Half is one side of one mirrored request, as captured.
type Half struct {
	Route     string
	Side      wire.Side
	RequestID string
	Method    string
	Target    string // the request's path and query, as sent
	Path      string // Target without the query string (what reports keep)
	// Tenant is the request's tenant as the route counts it
	// (policy.Route.TenantOf); "" when the route has none. Set on the
	// shadow half, which sees the whole request.
	Tenant string

	// Fingerprint identifies what selects the answer, for noise learning:
	// the shadow gateway's hash of the whole request (method, target,
	// tenant, body, and a keyed hash of identity and varyOn headers). The
	// primary half has none: a pair is learned under its shadow's.
	Fingerprint string

	Response   compare.Response
	Latency    time.Duration // from the request to the response, as measured where captured
	BodyBytes  int64         // response body bytes seen, kept or not
	TooLarge   bool          // the body went over the route's limit and was not kept
	Incomplete string        // why there is no complete response; "" when there is
	// Skip says why this request was deliberately not mirrored (say its
	// body was over the route's limit): the pair is skipped, not a finding.
	Skip string
	At   time.Time
}

// size is roughly what a half holds in memory.
func (h *Half) size() int { return len(h.Response.Body) + 512 }

// Clock is the time source (tests inject one).
type Clock func() time.Time

// Recorder receives what the pairer concludes. *report.Reporter is the one
// in use.
type Recorder interface {
	Record(report.Pair)
	SetNoise(route string, noise []compare.NoisePath)
}

// Config bounds the pairer. Zero values take the defaults.
type Config struct {
	TTL             time.Duration // how long a half waits for its other side; default 30s
	Grace           time.Duration // how long a complete pair waits for a duplicate half before it is compared; default 1s
	MaxPending      int           // request ids waiting; default 10 000
	MaxPendingBytes int           // bytes they hold; default 256 MiB
	QueueSize       int           // halves waiting to be paired; default 4096
	Workers         int           // comparators; default 2
	Learner         compare.LearnerConfig
}

func (c *Config) defaults() {
	if c.TTL <= 0 {
		c.TTL = 30 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 10_000
	}
	if c.MaxPendingBytes <= 0 {
		c.MaxPendingBytes = 256 << 20
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
}

// Reasons a half is dropped before pairing (label values of
// shadowlab_capture_dropped_total).
const (
	dropQueueFull   = "queue_full"
	dropPendingFull = "pending_full"
	DropUnknown     = "unknown_route" // a half of no mirrored route of the policy in use
	dropNoID        = "no_request_id"
	dropCompareFull = "comparator_full"
	dropEvicted     = "pending_evicted" // a lone half evicted, oldest first, from the route holding the most, to make room
	dropMalformed   = "malformed_batch" // a capture batch that did not parse (counted once per batch)
)

// dropReasons are exported at 0 from the start, so that a dashboard shows
// them and an alert on their increase sees the first drop.
var dropReasons = []string{dropQueueFull, dropPendingFull, DropUnknown, dropNoID, dropCompareFull, dropEvicted, dropMalformed}

// Pairer pairs halves by (route, request id). A half waits TTL for its
// other side; a complete pair waits Grace more, so that a third half
// claiming the same id (a forged or reused id) makes the id ambiguous
// instead of being mis-paired. Memory is bounded by MaxPending and
// MaxPendingBytes, shared fairly between routes: when full, room for a new
// id is made by evicting the oldest lone half (or ambiguous id) of the
// route that holds the most ids (or bytes), counted as pending_evicted; so
// a flood of lone halves or invented ids on one route evicts its own
// halves and cannot keep the pairs of other routes out (each route keeps
// at least its share, MaxPending over the routes pending). A half is
// dropped (pending_full) only when nothing can be evicted. Offer never
// blocks.
type Pairer struct {
	cfg Config
	rec Recorder
	now Clock
	log *zap.Logger

	// routes are what comparing each route of the policy in use needs.
	routes policy.PerRoute[*routeState]
	refl   reflections // server-reflection clients of gRPC services

	in   chan Half
	work chan job

	// owned by the pairing loop
	pending map[pairKey]*pending
	bytes   int
	byRoute map[string]*routePending

	mu      sync.Mutex // guards size
	halves  *prometheus.CounterVec
	dropped *prometheus.CounterVec
	waiting prometheus.GaugeFunc
	size    int64 // pending count, for the gauge (atomic via mu)
}

type pairKey struct{ route, id string }

// routePending is what one route holds in pending: its ids oldest first
// (list of pairKey) and their bytes.
type routePending struct {
	ids   list.List
	bytes int
}

type pending struct {
	halves    [2]*Half // primary, shadow
	ambiguous string   // why, once more than one half claimed a side
	deadline  time.Time
	emitAt    time.Time // set once both sides are here, or once ambiguous
	emitted   bool      // an ambiguous id already reported; kept until deadline to absorb late halves
	bytes     int
	elem      *list.Element // in its route's routePending.ids
}

// evictable: a lone half or an ambiguous id; a complete pair waiting for
// its grace is about to be compared and is kept.
func (pe *pending) evictable() bool {
	return pe.ambiguous != "" || pe.halves[0] == nil || pe.halves[1] == nil
}

type job struct {
	primary, shadow *Half
}

// routeState is what comparing a route needs: its compiled compare block
// and its learner, kept across policies while the block is unchanged.
type routeState struct {
	compare policy.Compare
	learner *compare.Learner // nil when learnNoise is off
	grpc    grpcRoute        // the services' descriptors (none when neither is gRPC)
}

// New returns a pairer; Use gives it a policy and Run starts it. Its
// metrics are registered on reg.
func New(cfg Config, rec Recorder, now Clock, reg prometheus.Registerer, log *zap.Logger) (*Pairer, error) {
	cfg.defaults()
	p := &Pairer{
		cfg: cfg, rec: rec, now: now, log: log,
		in:      make(chan Half, cfg.QueueSize),
		work:    make(chan job, cfg.QueueSize),
		pending: map[pairKey]*pending{},
		byRoute: map[string]*routePending{},
		halves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowlab_capture_halves_total", Help: "Response halves captured, by side.",
		}, []string{"side"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowlab_capture_dropped_total", Help: "Halves or pairs dropped before comparison, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range dropReasons {
		p.dropped.WithLabelValues(r)
	}
	p.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shadowlab_capture_pending", Help: "Request ids waiting for their other half.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(p.size)
	})
	for _, c := range []prometheus.Collector{p.halves, p.dropped, p.waiting} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering capture metrics: %w", err)
		}
	}
	return p, nil
}

func (p *Pairer) count(reason string) { p.dropped.WithLabelValues(reason).Inc() }

// Drop counts a half dropped before it reached the pairer, for reason.
func (p *Pairer) Drop(reason string) { p.count(reason) }

// Offer queues a finished half for pairing; when the queue is full the half
// is dropped and counted. It never blocks.
func (p *Pairer) Offer(h Half) {
	if h.Side != wire.SidePrimary && h.Side != wire.SideShadow {
		p.Drop(DropUnknown)
		return
	}
	p.halves.WithLabelValues(h.Side.String()).Inc()
	if h.RequestID == "" {
		p.count(dropNoID)
		return
	}
	select {
	case p.in <- h:
	default:
		p.count(dropQueueFull)
	}
}

// Run pairs and compares until ctx is done.
func (p *Pairer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.work:
					p.compare(j)
				}
			}
		})
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	noise := time.NewTicker(500 * time.Millisecond)
	defer noise.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case h := <-p.in:
			p.add(&h)
		case <-tick.C:
			p.sweep(p.now())
		case <-noise.C:
			p.publishNoise()
		}
	}
}

// add places a half; a second half for the same side makes the id
// ambiguous, as does a half that disagrees with its other side on the
// request.
func (p *Pairer) add(h *Half) {
	k := pairKey{h.Route, h.RequestID}
	pe, ok := p.pending[k]
	if !ok {
		if !p.makeRoom(h.size()) {
			p.count(dropPendingFull)
			return
		}
		rp := p.byRoute[k.route]
		if rp == nil {
			rp = &routePending{}
			p.byRoute[k.route] = rp
		}
		pe = &pending{deadline: h.At.Add(p.cfg.TTL), elem: rp.ids.PushBack(k)}
		p.pending[k] = pe
		p.setSize()
	} else if pe.ambiguous == "" && pe.halves[h.Side.Index()] == nil && !p.evictFor(k, h.size()) {
		p.count(dropPendingFull)
		return
	}
	i := h.Side.Index()
	switch {
	case pe.ambiguous != "":
		return
	case pe.halves[i] != nil:
		pe.ambiguous = fmt.Sprintf("more than one %s half claimed this request id", h.Side)
	case pe.halves[1-i] != nil && !sameRequest(pe.halves[1-i], h):
		pe.ambiguous = "the primary and shadow halves are of different requests"
	default:
		pe.halves[i] = h
		p.charge(k.route, pe, h.size())
		if pe.halves[0] != nil && pe.halves[1] != nil {
			pe.emitAt = h.At.Add(p.cfg.Grace)
		}
		return
	}
	p.charge(k.route, pe, -pe.bytes)
	pe.halves = [2]*Half{} // an ambiguous id keeps no body
	pe.emitAt = h.At.Add(p.cfg.Grace)
}

// charge adds n bytes to what pe (of route) holds.
func (p *Pairer) charge(route string, pe *pending, n int) {
	pe.bytes += n
	p.bytes += n
	p.byRoute[route].bytes += n
}

// remove forgets k.
func (p *Pairer) remove(k pairKey, pe *pending) {
	rp := p.byRoute[k.route]
	p.charge(k.route, pe, -pe.bytes)
	rp.ids.Remove(pe.elem)
	if rp.ids.Len() == 0 {
		delete(p.byRoute, k.route)
	}
	delete(p.pending, k)
}

// makeRoom evicts until a new id of size bytes fits under MaxPending and
// MaxPendingBytes, from the route holding the most ids (or, for bytes, the
// most bytes) that has something to evict, oldest first; false when
// nothing can be evicted.
func (p *Pairer) makeRoom(size int) bool {
	for len(p.pending) >= p.cfg.MaxPending {
		if !p.evictLargest(func(rp *routePending) int { return rp.ids.Len() }, pairKey{}) {
			return false
		}
	}
	return p.evictFor(pairKey{}, size)
}

// evictFor evicts until size more bytes fit, never evicting keep.
func (p *Pairer) evictFor(keep pairKey, size int) bool {
	for p.bytes+size > p.cfg.MaxPendingBytes {
		if !p.evictLargest(func(rp *routePending) int { return rp.bytes }, keep) {
			return false
		}
	}
	return true
}

// evictLargest evicts one id from the heaviest route by weight that has
// one to evict (ties: the smaller name, so the choice is deterministic).
func (p *Pairer) evictLargest(weight func(*routePending) int, keep pairKey) bool {
	routes := make([]string, 0, len(p.byRoute))
	for route := range p.byRoute {
		routes = append(routes, route)
	}
	slices.SortFunc(routes, func(a, b string) int {
		return cmp.Or(cmp.Compare(weight(p.byRoute[b]), weight(p.byRoute[a])), cmp.Compare(a, b))
	})
	for _, route := range routes {
		if p.evictFrom(route, keep) {
			return true
		}
	}
	return false
}

// evictFrom evicts route's oldest evictable id other than keep; false
// when it has none.
func (p *Pairer) evictFrom(route string, keep pairKey) bool {
	rp := p.byRoute[route]
	if rp == nil {
		return false
	}
	for e := rp.ids.Front(); e != nil; e = e.Next() {
		k := e.Value.(pairKey)
		if pe := p.pending[k]; k != keep && pe.evictable() {
			p.remove(k, pe)
			p.count(dropEvicted)
			return true
		}
	}
	return false
}

func sameRequest(a, b *Half) bool { return a.Method == b.Method && a.Target == b.Target }

// sweep emits what is due: compared pairs and ambiguous ids after their
// grace, lone halves after their TTL. An ambiguous id stays (empty) until
// its TTL so that its late halves are absorbed, not paired.
func (p *Pairer) sweep(now time.Time) {
	for k, pe := range p.pending {
		due := !pe.emitAt.IsZero() && !now.Before(pe.emitAt)
		switch {
		case pe.ambiguous != "" && due && !pe.emitted:
			pe.emitted = true
			p.rec.Record(report.Pair{Route: k.route, RequestID: k.id, Outcome: report.Ambiguous, Reason: pe.ambiguous, At: now})
			continue
		case pe.ambiguous == "" && due:
			select {
			case p.work <- job{pe.halves[0], pe.halves[1]}:
			default:
				p.count(dropCompareFull)
				p.rec.Record(p.pair(k, pe.halves[0], pe.halves[1], report.Skipped, "comparator saturated"))
			}
		case !now.Before(pe.deadline):
			p.expire(k, pe)
		default:
			continue
		}
		p.remove(k, pe)
	}
	p.setSize()
}

func (p *Pairer) expire(k pairKey, pe *pending) {
	switch {
	case pe.ambiguous != "":
		if !pe.emitted { // cannot happen: grace < TTL; kept for safety
			p.rec.Record(report.Pair{Route: k.route, RequestID: k.id, Outcome: report.Ambiguous, Reason: pe.ambiguous, At: pe.deadline})
		}
	case pe.halves[0] != nil:
		p.rec.Record(p.pair(k, pe.halves[0], nil, report.PrimaryOnly, fmt.Sprintf("no shadow half within %v (shed, lost or not mirrored)", p.cfg.TTL)))
	case pe.halves[1] != nil:
		p.rec.Record(p.pair(k, nil, pe.halves[1], report.ShadowOnly, fmt.Sprintf("no primary half within %v", p.cfg.TTL)))
	}
}

func (p *Pairer) setSize() {
	p.mu.Lock()
	p.size = int64(len(p.pending))
	p.mu.Unlock()
}

// pair builds the report entry for whatever halves there are.
func (p *Pairer) pair(k pairKey, primary, shadow *Half, outcome report.Outcome, reason string) report.Pair {
	out := report.Pair{Route: k.route, RequestID: k.id, Outcome: outcome, Reason: reason}
	for _, h := range []*Half{primary, shadow} {
		if h == nil {
			continue
		}
		out.Method, out.Path = h.Method, h.Path
		if h.At.After(out.At) {
			out.At = h.At
		}
	}
	if primary != nil {
		out.PrimaryStatus, out.PrimaryLatency = primary.Response.Status, primary.Latency
	}
	if shadow != nil {
		out.ShadowStatus, out.ShadowLatency = shadow.Response.Status, shadow.Latency
		out.Tenant = shadow.Tenant
	}
	if outcome == report.Match || primary == nil && shadow == nil {
		return out // a match's responses are never shown
	}
	if st := p.state(k.route); st != nil {
		ev := &report.Responses{Rules: st.compare.Rules}
		if primary != nil {
			ev.Primary = &primary.Response
		}
		if shadow != nil {
			ev.Shadow = &shadow.Response
		}
		out.Responses = ev
	}
	return out
}

// compare runs on a worker: it decides the outcome of a complete pair.
func (p *Pairer) compare(j job) {
	k := pairKey{j.primary.Route, j.primary.RequestID}
	switch {
	case j.shadow.Skip != "":
		p.rec.Record(p.pair(k, j.primary, j.shadow, report.Skipped, j.shadow.Skip))
		return
	case j.shadow.Incomplete != "":
		p.rec.Record(p.pair(k, j.primary, nil, report.PrimaryOnly, "shadow: "+j.shadow.Incomplete))
		return
	case j.primary.Incomplete != "":
		p.rec.Record(p.pair(k, nil, j.shadow, report.ShadowOnly, "primary: "+j.primary.Incomplete))
		return
	case j.primary.TooLarge || j.shadow.TooLarge:
		p.rec.Record(p.pair(k, j.primary, j.shadow, report.Skipped, tooLarge(j.primary, j.shadow)))
		return
	}
	st := p.state(k.route)
	if st == nil { // the route left the policy while its pair waited
		p.rec.Record(p.pair(k, j.primary, j.shadow, report.Skipped, "route no longer in the policy"))
		return
	}
	primary, shadow := j.primary.Response, j.shadow.Response
	var undecoded *compare.Difference
	if isGRPC(&primary, &shadow) {
		ctx, cancel := context.WithTimeout(context.Background(), grpcResolveTimeout)
		primary, shadow, undecoded = st.grpc.asJSON(ctx, j.primary.Path, primary, shadow, st.compare.Rules.DecodeLimit())
		cancel()
	}
	if st.learner != nil {
		fp := cmp.Or(j.shadow.Fingerprint, j.primary.Fingerprint) // one request: one fingerprint
		st.learner.Observe(wire.SidePrimary, fp, primary)
		st.learner.Observe(wire.SideShadow, fp, shadow)
	}
	res := compare.Compare(primary, shadow, st.compare.Rules)
	res.Differences = explainBytes(res.Differences, undecoded)
	outcome := report.Match
	switch {
	case len(res.Differences) > 0: // an undecodable body is one
		outcome = report.Diff
	case res.Skipped != "": // bodies not compared: never a match
		outcome = report.Skipped
	}
	pr := p.pair(k, j.primary, j.shadow, outcome, res.Skipped)
	pr.Differences = res.Differences
	pr.Marks = res.Marks
	if pr.Responses != nil { // what the pair's page shows: the responses as compared (gRPC as JSON)
		pr.Responses.Primary, pr.Responses.Shadow = new(primary), new(shadow)
	}
	p.rec.Record(pr)
}

func tooLarge(primary, shadow *Half) string {
	var sides []string
	for _, h := range []*Half{primary, shadow} {
		if h.TooLarge {
			sides = append(sides, fmt.Sprintf("%s %d bytes", h.Side, h.BodyBytes))
		}
	}
	return fmt.Sprintf("body over the limit (%v)", sides)
}

// Use makes p the policy pairs are compared under. Each mirrored route
// keeps its learner (and what it learned) while its compare block is
// unchanged (same hash); a route whose block changed starts learning anew.
func (p *Pairer) Use(pol *policy.Policy) {
	used := map[string]bool{}
	p.routes.Use(pol, func(r *policy.Route, old *routeState, had bool) (*routeState, bool) {
		if r.Shadow == nil || !r.Shadow.Capture {
			return nil, false
		}
		st := &routeState{compare: r.Shadow.Compare}
		if had && old.compare.Hash == r.Shadow.Compare.Hash {
			st.learner = old.learner
		} else if st.compare.LearnNoise {
			st.learner = compare.NewLearner(p.cfg.Learner, st.compare.Rules)
		}
		st.grpc = grpcRoute{primary: p.refl.resolver(r.Primary, used), shadow: p.refl.resolver(r.Shadow.Service, used)}
		return st, true
	})
	p.refl.retire(used)
}

// state returns what comparing route needs under the policy in use; nil
// when the route is not compared there.
func (p *Pairer) state(route string) *routeState {
	st, _ := p.routes.Get(route)
	return st
}

// publishNoise hands each route's learned noise to the recorder.
func (p *Pairer) publishNoise() {
	for route, st := range p.routes.All() {
		if st.learner != nil {
			p.rec.SetNoise(route, st.learner.Noise())
		}
	}
}
