package report

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Config sizes the reporter. Zero values mean the documented default;
// negative values are refused.
type Config struct {
	// DBPath is the SQLite file; "" keeps everything in memory only.
	DBPath string
	// MaxSamplesPerPath is how many samples are kept per route, pattern and
	// kind: the first ones seen. Default 5.
	MaxSamplesPerPath int
	// MaxPatternsPerRoute bounds the distinct (pattern, kind) pairs of a
	// route; differences on further patterns count as pattern "other".
	// Default 500.
	MaxPatternsPerRoute int
	// MaxSignatures bounds the distinct sets of differing patterns kept per
	// route for re-classification when noise is learned; pairs with a new set
	// past it are counted per pattern only and stay diffs (FoldedPairs).
	// Default 2000.
	MaxSignatures int
	// MaxMetricPatterns bounds the pattern label values of
	// shadowlab_differences_total per route; further patterns are labelled
	// "other". Default 50.
	MaxMetricPatterns int
	// MaxRecentPairs bounds the recent non-match pairs kept in the store;
	// the oldest are deleted. Default 100 000.
	MaxRecentPairs int
	// FlushInterval is how often changes are written to the store. Default 1s.
	FlushInterval time.Duration
	// QueueSize bounds the recent pairs waiting for the next flush; past it
	// they are dropped and counted (shadowlab_report_pairs_dropped_total).
	// Default 10 000.
	QueueSize int
	// MaxAdmissionKeys bounds the admission keys kept per scope and route;
	// further keys are counted as OtherKey. Default 1000.
	MaxAdmissionKeys int
	// MaxMetricKeys bounds the key label values of the admission metrics
	// per scope and route; further keys are labelled OtherKey. Default 50.
	MaxMetricKeys int
	// MaxExhibits bounds the recent non-match pairs whose responses
	// (redacted, see compare.Exhibit) are kept for their pair's page; the
	// oldest are deleted. Default 1000.
	MaxExhibits int
	// MaxPinnedExhibits bounds the responses kept, beyond MaxExhibits, of
	// pairs that are a difference's sample (the report links each sample
	// to its pair); past it a sample's responses age like the others.
	// Default 1000.
	MaxPinnedExhibits int
	// MaxExhibitBytes bounds the body text kept per side. Default 32 KiB.
	MaxExhibitBytes int
	// ExhibitsPerFlush bounds the recent pairs whose responses are
	// rendered per FlushInterval (samples' always are): rendering costs
	// serve CPU, and a flood of differences needs only some shown.
	// Default 100.
	ExhibitsPerFlush int
	// NoExhibits keeps no pair's responses: the pair page shows the
	// differences' excerpts only.
	NoExhibits bool
}

func (c Config) withDefaults() (Config, error) {
	var errs []error
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxSamplesPerPath", &c.MaxSamplesPerPath, 5},
		{"MaxPatternsPerRoute", &c.MaxPatternsPerRoute, 500},
		{"MaxSignatures", &c.MaxSignatures, 2000},
		{"MaxMetricPatterns", &c.MaxMetricPatterns, 50},
		{"MaxRecentPairs", &c.MaxRecentPairs, 100_000},
		{"QueueSize", &c.QueueSize, 10_000},
		{"MaxAdmissionKeys", &c.MaxAdmissionKeys, 1000},
		{"MaxMetricKeys", &c.MaxMetricKeys, 50},
		{"MaxExhibits", &c.MaxExhibits, 1000},
		{"MaxPinnedExhibits", &c.MaxPinnedExhibits, 1000},
		{"MaxExhibitBytes", &c.MaxExhibitBytes, 32 << 10},
		{"ExhibitsPerFlush", &c.ExhibitsPerFlush, 100},
	}
	for _, f := range ints {
		switch {
		case *f.v < 0:
			errs = append(errs, fmt.Errorf("report: %s: must not be negative (got %d)", f.name, *f.v))
		case *f.v == 0:
			*f.v = f.def
		}
	}
	switch {
	case c.FlushInterval < 0:
		errs = append(errs, fmt.Errorf("report: FlushInterval: must not be negative (got %v)", c.FlushInterval))
	case c.FlushInterval == 0:
		c.FlushInterval = time.Second
	}
	return c, errors.Join(errs...)
}

// ErrClosed is returned by Flush and Reset after Close.
var ErrClosed = errors.New("report: reporter closed")

// Log field keys.
const (
	logRoute       = "route"
	logRequestID   = "request_id"
	logOutcome     = "outcome"
	logReason      = "reason"
	logDifferences = "differences"
	logDiffCount   = "difference_count"
)

// maxLoggedPatterns bounds the patterns logged per diff pair.
const maxLoggedPatterns = 5

// Reporter aggregates pairs per route in memory, persists them in the
// background, and serves them as a Report, Prometheus metrics and an HTTP
// API. All methods are safe for concurrent use.
type Reporter struct {
	cfg   Config
	lim   limits
	log   *zap.Logger
	now   func() time.Time
	store *store

	mu     sync.RWMutex
	routes map[string]*routeState

	adm    *admissions
	health health
	// localRoutes are the routes with local admission of the policy in
	// use (UseLocalAdmission): the only routes a plugin report may count.
	localRoutes policy.PerRoute[struct{}]

	labelsMu sync.Mutex
	labels   map[string]map[string]struct{} // route → pattern label values in use; survives Reset

	queue chan pairRow
	reqs  chan writerReq
	stop  chan struct{}
	done  chan struct{} // closed when the writer has exited
	final error         // the writer's last flush, read after done

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	metrics *metrics
	rollout rollouts
	policy  policyRoutes
	// exhibitBudget is how many more recent pairs' responses may be
	// rendered until the next flush.
	exhibitBudget atomic.Int64
}

type writerReq struct {
	reset bool
	route string
	done  chan error
}

// New opens (or creates) the store, loads what it holds, and starts the
// background writer. An unreadable, corrupt, foreign or newer-schema store
// is an error wrapping ErrStore that names the file.
func New(cfg Config, log *zap.Logger) (*Reporter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	lim := limits{samples: cfg.MaxSamplesPerPath, patterns: cfg.MaxPatternsPerRoute, signatures: cfg.MaxSignatures}
	ctx := context.Background()
	st, routes, adm, pinned, err := openAndLoad(ctx, cfg.DBPath, lim)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r := &Reporter{
		cfg:    cfg,
		lim:    lim,
		log:    log,
		now:    time.Now,
		store:  st,
		routes: routes,
		adm:    newAdmissions(cfg.MaxAdmissionKeys, adm),
		labels: map[string]map[string]struct{}{},
		queue:  make(chan pairRow, cfg.QueueSize),
		reqs:   make(chan writerReq),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	r.health.pinned = pinned
	r.metrics = newMetrics(r)
	r.exhibitBudget.Store(int64(cfg.ExhibitsPerFlush))
	if pinned != nil {
		log.Error("report store cannot be written: its results were read and serve runs in memory until restarted",
			zap.String("path", cfg.DBPath), zap.Error(pinned))
	}
	log.Info("report store opened", zap.String("path", st.name), zap.Int("routes", len(routes)))
	go r.run()
	return r, nil
}

// openAndLoad opens the store at path and loads it. When a file that
// exists cannot be opened for writing but reads as an intact store (a full
// disk), what it holds is loaded and an in-memory store is returned with
// pinned, the reason.
func openAndLoad(ctx context.Context, path string, lim limits) (st *store, routes map[string]*routeState, adm map[admissionKey]wire.Counts, pinned, err error) {
	load := func(s *store) error {
		var err error
		if routes, err = s.load(ctx, lim); err == nil {
			adm, err = s.loadAdmission(ctx)
		}
		return err
	}
	st, err = openStore(ctx, path)
	if err == nil {
		if err = load(st); err != nil {
			_ = st.close()
			return nil, nil, nil, nil, err
		}
		return st, routes, adm, nil, nil
	}
	if fi, serr := os.Stat(path); path == "" || serr != nil || fi.Size() == 0 {
		return nil, nil, nil, nil, err
	}
	ro, rerr := openReadOnly(ctx, path)
	if rerr != nil {
		return nil, nil, nil, nil, err
	}
	lerr := load(ro)
	_ = ro.close()
	if lerr != nil {
		return nil, nil, nil, nil, err
	}
	if st, rerr = openStore(ctx, ""); rerr != nil {
		return nil, nil, nil, nil, errors.Join(err, rerr)
	}
	return st, routes, adm, err, nil
}

// Registry is the Prometheus registry holding the report's metrics; other
// packages register their collectors on it. Handler serves it.
func (r *Reporter) Registry() *prometheus.Registry { return r.metrics.reg }

// route returns the live state of a route, created on first use, locked.
func (r *Reporter) lockRoute(name string) *routeState {
	for {
		r.mu.RLock()
		rs := r.routes[name]
		r.mu.RUnlock()
		if rs == nil {
			r.mu.Lock()
			if rs = r.routes[name]; rs == nil {
				rs = newRouteState(name)
				r.routes[name] = rs
			}
			r.mu.Unlock()
		}
		rs.mu.Lock()
		if !rs.dead.Load() {
			return rs
		}
		rs.mu.Unlock() // lost a race with Reset: take the new state
	}
}

func knownOutcome(o Outcome) bool {
	switch o {
	case Match, Diff, PrimaryOnly, ShadowOnly, Ambiguous, Skipped:
		return true
	}
	return false
}

// Record adds one pair. It never waits on I/O: aggregates and metrics are
// updated in memory, and a non-match pair is queued for the store (dropped
// and counted when the queue is full). Match and Diff pairs are told apart
// by their Differences (none: match), the rest by Outcome; an unknown
// Outcome is recorded as skipped. Record after Close does nothing.
func (r *Reporter) Record(p Pair) {
	if r.closed.Load() {
		return
	}
	if p.Route == "" {
		p.Route = "unknown"
	}
	// Bound what is kept per pair, whatever the sender put in it.
	p.RequestID, p.Method, p.Path, p.Reason = clip(p.RequestID, 128), clip(p.Method, 16), clip(p.Path, 1024), clip(p.Reason, 256)
	p.Tenant = clip(p.Tenant, maxLabelLen)
	ev := p.Responses
	p.Responses = nil
	if !knownOutcome(p.Outcome) {
		p.Outcome, p.Reason = Skipped, fmt.Sprintf("unknown outcome %q", p.Outcome)
	}
	if compared(p.Outcome) {
		p.Outcome = Match
		if len(p.Differences) > 0 {
			p.Outcome = Diff
		}
	}
	at := p.At
	if at.IsZero() {
		at = r.now()
	}
	at = at.UTC().Round(0)

	rs := r.lockRoute(p.Route)
	rec := rs.recordLocked(&p, at, r.lim)
	rs.mu.Unlock()

	if compared(p.Outcome) {
		r.rollout.pair(&p, p.Outcome == Match || rec.allNoise, r.now())
	}
	r.metrics.record(&p, rec.keys, r.metricPattern)
	r.logPair(&p, rec)
	if p.Outcome == Match || rec.allNoise {
		return
	}
	row := pairRow{rs: rs, pair: p, at: at, diffCount: len(p.Differences)}
	if ev != nil && !r.cfg.NoExhibits && (rec.newSample || r.exhibitBudget.Add(-1) >= 0) {
		row.exhibit = r.newExhibitRow(&p, ev, rec.newSample)
	}
	row.pair.Differences = nil
	if len(rec.keys) > 0 {
		keys := rec.keys
		row.complete = len(keys) <= maxPairSignature
		if !row.complete {
			keys = keys[:maxPairSignature]
		}
		row.signature = encodeSignature(keys)
		for _, d := range p.Differences[:min(len(p.Differences), maxPairDifferences)] {
			row.diffs = append(row.diffs, storedDifference{Path: d.Path, Pattern: d.Pattern, Kind: d.Kind})
		}
	}
	select {
	case r.queue <- row:
	default:
		r.metrics.dropped.Inc()
	}
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// metricPattern maps a pattern to its label value, "other" past the cap.
func (r *Reporter) metricPattern(route, pattern string) string {
	r.labelsMu.Lock()
	defer r.labelsMu.Unlock()
	set := r.labels[route]
	if set == nil {
		set = map[string]struct{}{}
		r.labels[route] = set
	}
	if _, ok := set[pattern]; ok {
		return pattern
	}
	if len(set) >= r.cfg.MaxMetricPatterns {
		return OtherPattern
	}
	set[pattern] = struct{}{}
	return pattern
}

func (r *Reporter) logPair(p *Pair, rec recorded) {
	switch {
	case p.Outcome == Match:
		return
	case p.Outcome == Diff:
		lvl := zap.InfoLevel
		if rec.allNoise {
			lvl = zap.DebugLevel
		}
		ce := r.log.Check(lvl, "pair differs")
		if ce == nil {
			return
		}
		var pats []string
		for _, k := range rec.keys[:min(len(rec.keys), maxLoggedPatterns)] {
			pats = append(pats, k.pattern+" ("+string(k.kind)+")")
		}
		ce.Write(zap.String(logRoute, p.Route), zap.String(logRequestID, p.RequestID),
			zap.Strings(logDifferences, pats), zap.Int(logDiffCount, len(rec.keys)))
	default:
		if ce := r.log.Check(zap.InfoLevel, "pair not compared"); ce != nil {
			ce.Write(zap.String(logRoute, p.Route), zap.String(logRequestID, p.RequestID),
				zap.String(logOutcome, string(p.Outcome)), zap.String(logReason, p.Reason))
		}
	}
}

// SetNoise replaces the learned noise of a route.
func (r *Reporter) SetNoise(route string, noise []compare.NoisePath) {
	if r.closed.Load() {
		return
	}
	rs := r.lockRoute(route)
	rs.setNoiseLocked(noise)
	rs.mu.Unlock()
}

// Report is a snapshot of every route, sorted by name; each route is
// consistent in itself.
func (r *Reporter) Report() Report {
	rep := Report{GeneratedAt: r.now().UTC().Round(0), Routes: []RouteReport{}, Admission: r.Admission(),
		Policy: r.policyList(), DelayBucketBoundsMs: delayBounds()}
	for _, rs := range r.states() {
		rs.mu.Lock()
		if !rs.dead.Load() {
			rep.Routes = append(rep.Routes, rs.reportLocked(overviewHistory(rep.GeneratedAt)))
		}
		rs.mu.Unlock()
	}
	return rep
}

// RouteReport is the report of one route; false when the route has nothing.
func (r *Reporter) RouteReport(route string) (RouteReport, bool) {
	r.mu.RLock()
	rs := r.routes[route]
	r.mu.RUnlock()
	if rs == nil {
		return RouteReport{}, false
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.dead.Load() {
		return RouteReport{}, false
	}
	return rs.reportLocked(fullHistory), true
}

// states returns the live route states sorted by name.
func (r *Reporter) states() []*routeState {
	r.mu.RLock()
	out := make([]*routeState, 0, len(r.routes))
	for _, rs := range r.routes {
		out = append(out, rs)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *routeState) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return out
}

// Pairs lists recent non-match pairs from the store, newest first, with
// diff pairs re-classified by the route's current noise.
func (r *Reporter) Pairs(ctx context.Context, q PairsQuery) ([]PairRecord, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, 1000)
	if q.Outcome != "" && !knownOutcome(q.Outcome) {
		return nil, fmt.Errorf("report: unknown outcome %q", q.Outcome)
	}
	noise := map[string]map[string]compare.NoisePath{} // route → noise, read once
	out := []PairRecord{}
	err := r.store.pairs(ctx, pairFilter{route: q.Route, outcome: q.Outcome, requestID: q.RequestID}, func(sp storedPair) bool {
		set, ok := noise[sp.rec.Route]
		if !ok {
			set = r.noiseOf(sp.rec.Route)
			noise[sp.rec.Route] = set
		}
		rec := classify(sp, set)
		if q.Outcome != "" && rec.Outcome != q.Outcome {
			return true
		}
		out = append(out, rec)
		return len(out) < q.Limit
	})
	if err != nil {
		return nil, fmt.Errorf("report: reading recent pairs: %w", err)
	}
	return out, nil
}

// Reset forgets one route's results ("" = every route), in memory and in the
// store. Prometheus counters are monotonic and keep counting.
func (r *Reporter) Reset(route string) error {
	if r.closed.Load() {
		return ErrClosed
	}
	r.mu.Lock()
	for name, rs := range r.routes {
		if route == "" || name == route {
			rs.mu.Lock()
			rs.dead.Store(true)
			rs.mu.Unlock()
			delete(r.routes, name)
		}
	}
	r.mu.Unlock()
	return r.request(writerReq{reset: true, route: route})
}

// Flush writes everything recorded so far to the store and returns when it
// is written.
func (r *Reporter) Flush() error {
	return r.request(writerReq{})
}

func (r *Reporter) request(req writerReq) error {
	req.done = make(chan error, 1)
	select {
	case r.reqs <- req:
		return <-req.done
	case <-r.done:
		return ErrClosed
	}
}

// Close flushes, stops the writer and closes the store. Later calls return
// the first call's result.
func (r *Reporter) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		close(r.stop)
		<-r.done
		r.closeErr = errors.Join(r.final, r.store.close())
		if r.closeErr != nil {
			r.closeErr = fmt.Errorf("report: closing %s: %w", r.store.name, r.closeErr)
		}
	})
	return r.closeErr
}

// run is the writer: the only goroutine that writes to the store.
func (r *Reporter) run() {
	defer close(r.done)
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = r.flush() // a failure is logged (rate-limited) by noteWrite
		case req := <-r.reqs:
			var err error
			if req.reset {
				if err = r.store.reset(context.Background(), req.route); err != nil {
					err = fmt.Errorf("report: resetting %q in %s: %w", req.route, r.store.name, err)
				}
			} else {
				err = r.flush()
			}
			req.done <- err
		case <-r.stop:
			r.final = r.flush()
			return
		}
	}
}

// flush writes the dirty aggregates and the queued pairs in one
// transaction. On failure the aggregates stay dirty for the next flush; the
// pairs are dropped and counted.
func (r *Reporter) flush() error {
	var deltas []*routeDelta
	for _, rs := range r.states() {
		rs.mu.Lock()
		if d := rs.takeDeltaLocked(); d != nil {
			deltas = append(deltas, d)
		}
		rs.mu.Unlock()
	}
	var pairs []pairRow
	for n := len(r.queue); n > 0; n-- {
		pairs = append(pairs, <-r.queue)
	}
	r.exhibitBudget.Store(int64(r.cfg.ExhibitsPerFlush))
	adm := r.adm.takeDirty()
	if len(deltas) == 0 && len(pairs) == 0 && len(adm) == 0 {
		return nil
	}
	start := time.Now()
	err := r.store.write(context.Background(), deltas, pairs, adm, keep{pairs: r.cfg.MaxRecentPairs, exhibits: r.cfg.MaxExhibits, pinned: r.cfg.MaxPinnedExhibits})
	r.metrics.flushSeconds.Observe(time.Since(start).Seconds())
	r.noteWrite(err)
	if err == nil {
		return nil
	}
	r.metrics.flushErrors.Inc()
	r.metrics.dropped.Add(float64(len(pairs)))
	r.adm.restore(adm)
	for _, d := range deltas {
		d.rs.mu.Lock()
		if !d.rs.dead.Load() {
			d.rs.restoreDeltaLocked(d)
		}
		d.rs.mu.Unlock()
	}
	return fmt.Errorf("report: writing %s: %w", r.store.name, err)
}
