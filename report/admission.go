package report

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Admission outcomes are kept per scope (local: the wasm plugin in each
// Envoy, which reports to POST wire.ReportPath; global: the ext_proc
// admission server, in process), route and key (the key header's value, ""
// for a route-wide budget), as cumulative wire.Counts.
const (
	// OtherKey gathers the keys of a route past MaxAdmissionKeys (and, in
	// metric labels, past MaxMetricKeys).
	OtherKey = "(other)"

	// maxAdmissionBody bounds one plugin report: a plugin reports each
	// route and key it counted since its last report (at most
	// Config.MaxAdmissionKeys per route plus one OtherKey line, about
	// 250 bytes a line), so 4 MiB holds well over 10 000 lines.
	maxAdmissionBody = 4 << 20
)

// Reasons a line of a plugin report is dropped (label values of
// shadowlab_admission_plugin_lines_dropped_total).
const (
	// admissionNotLocal: the route is not a route of the policy in use
	// with local admission (an invented or stale route).
	admissionNotLocal = "unknown_route"
)

// AdmissionReport is one scope, route and key's admission outcomes.
type AdmissionReport struct {
	Scope string `json:"scope"`
	Route string `json:"route"`
	Key   string `json:"key"` // "" for a route-wide budget
	// Replica names the serve replica the row is from, in a report merged
	// from several (MergeAdmission); "" in one serve's report and for
	// merged rows.
	Replica string `json:"replica,omitempty"`
	wire.Counts
	// Released is how many held requests were let through, and
	// DelayP50Ms/DelayP99Ms estimate the median and 99th percentile of
	// their waits from the delay histogram (interpolated within the
	// bucket, whose bounds are at most 25 % apart: see
	// wire.DelayBucketsMs), DelayMaxMs bounds the longest (the upper bound
	// of the highest non-empty bucket); -1 past the last bound (an hour),
	// 0 when none was released.
	Released   uint64  `json:"released"`
	DelayP50Ms float64 `json:"delay_p50_ms"`
	DelayP99Ms float64 `json:"delay_p99_ms"`
	DelayMaxMs float64 `json:"delay_max_ms"`
	// Arrivals are the last maxArrivalSeconds seconds that saw decisions,
	// oldest first, in memory only (since serve started). A local scope's
	// counts arrive with the plugin's reports (about one a second), so its
	// seconds are when a report came in.
	Arrivals []Arrival `json:"arrivals,omitempty"`
}

// Arrival is one second of a scope, route and key's admission decisions.
type Arrival struct {
	At int64 `json:"at"` // unix seconds
	// N counts the requests decided in that second (admitted, delayed,
	// rejected or passed failing open); Released the held requests let
	// through.
	N        uint64 `json:"n"`
	Released uint64 `json:"released"`
}

// maxArrivalSeconds bounds the seconds of arrivals kept per scope, route
// and key.
const maxArrivalSeconds = 300

type admissionKey struct{ scope, route, key string }

type admissionEntry struct {
	counts   wire.Counts
	dirty    bool
	arrivals []Arrival
}

// arrive counts c's decisions and releases in second at.
func (e *admissionEntry) arrive(at int64, c wire.Counts) {
	n := wire.SatAdd(wire.SatAdd(c.Admitted, c.Delayed), wire.SatAdd(c.Rejected, c.FailOpen))
	rel := c.ReleasedTotal()
	if n == 0 && rel == 0 {
		return
	}
	if k := len(e.arrivals); k > 0 && e.arrivals[k-1].At == at {
		e.arrivals[k-1].N = wire.SatAdd(e.arrivals[k-1].N, n)
		e.arrivals[k-1].Released = wire.SatAdd(e.arrivals[k-1].Released, rel)
		return
	}
	if len(e.arrivals) >= maxArrivalSeconds {
		e.arrivals = append(e.arrivals[:0], e.arrivals[1:]...)
	}
	e.arrivals = append(e.arrivals, Arrival{At: at, N: n, Released: rel})
}

// admissions holds the counts; its own lock, independent of the routes'.
type admissions struct {
	mu      sync.Mutex
	entries map[admissionKey]*admissionEntry
	keys    map[admissionKey]int // (scope, route, "") → distinct keys
	maxKeys int
}

func newAdmissions(maxKeys int, loaded map[admissionKey]wire.Counts) *admissions {
	a := &admissions{entries: map[admissionKey]*admissionEntry{}, keys: map[admissionKey]int{}, maxKeys: maxKeys}
	for k, c := range loaded {
		a.entries[k] = &admissionEntry{counts: c}
		a.keys[admissionKey{k.scope, k.route, ""}]++
	}
	return a
}

// AddAdmission adds c to the counts of scope, route and key. Keys past
// Config.MaxAdmissionKeys for the route are counted under OtherKey. It
// never blocks on I/O: the store is written by the background writer.
func (r *Reporter) AddAdmission(scope wire.Scope, route, key string, c wire.Counts) {
	if c.IsZero() {
		return
	}
	a := r.adm
	a.mu.Lock()
	defer a.mu.Unlock()
	a.addLocked(admissionKey{scope.String(), clip(route, maxLabelLen), clip(key, maxLabelLen)}, c, r.now().Unix())
}

const maxLabelLen = 200

func (a *admissions) addLocked(k admissionKey, c wire.Counts, at int64) {
	e := a.entries[k]
	if e == nil {
		rk := admissionKey{k.scope, k.route, ""}
		if a.keys[rk] >= a.maxKeys {
			k.key = OtherKey
			e = a.entries[k]
		}
		if e == nil {
			e = &admissionEntry{}
			a.entries[k] = e
			a.keys[rk]++
		}
	}
	e.counts.Add(c)
	e.dirty = true
	e.arrive(at, c)
}

// Admission returns the admission outcomes, sorted by scope, route and key.
func (r *Reporter) Admission() []AdmissionReport {
	a := r.adm
	a.mu.Lock()
	out := make([]AdmissionReport, 0, len(a.entries))
	for k, e := range a.entries {
		ar := admissionReport(k, e.counts)
		ar.Arrivals = slices.Clone(e.arrivals)
		out = append(out, ar)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y AdmissionReport) int {
		return cmp.Or(cmp.Compare(x.Scope, y.Scope), cmp.Compare(x.Route, y.Route), cmp.Compare(x.Key, y.Key))
	})
	return out
}

func admissionReport(k admissionKey, c wire.Counts) AdmissionReport {
	ar := AdmissionReport{Scope: k.scope, Route: k.route, Key: k.key, Counts: c, Released: c.ReleasedTotal()}
	if ar.Released > 0 {
		ar.DelayP50Ms = delayMs(c.DelayQuantile(0.5))
		ar.DelayP99Ms = delayMs(c.DelayQuantile(0.99))
		ar.DelayMaxMs = delayMs(c.DelayQuantile(1))
	}
	return ar
}

// delayMs is d in milliseconds, rounded to the microsecond; -1 stays -1.
func delayMs(d time.Duration) float64 {
	if d < 0 {
		return -1
	}
	return float64(d.Round(time.Microsecond)) / float64(time.Millisecond)
}

// takeDirty returns the rows changed since the last flush and marks them
// clean; restore marks them dirty again after a failed write.
func (a *admissions) takeDirty() []admissionRow {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rows []admissionRow
	for k, e := range a.entries {
		if e.dirty {
			rows = append(rows, admissionRow{k, e.counts})
			e.dirty = false
		}
	}
	return rows
}

func (a *admissions) restore(rows []admissionRow) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, row := range rows {
		if e := a.entries[row.k]; e != nil {
			e.dirty = true
		}
	}
}

type admissionRow struct {
	k admissionKey
	c wire.Counts
}

// serveLocalAdmission takes a wasm plugin's report (wire.ParseReport):
// counts since its previous report, one line per route and key. A bad line
// is a 400 naming the line, and nothing is added. Lines of routes that are
// not routes with local admission in the policy in use (Use) are dropped
// and counted, so a peer cannot grow the counts (or /metrics) by inventing
// routes: what is kept is bounded by the policy's local routes times
// Config.MaxAdmissionKeys + 1.
func (r *Reporter) serveLocalAdmission(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxAdmissionBody+1))
	if err != nil {
		r.writeError(w, http.StatusBadRequest, fmt.Errorf("reading the body: %w", err))
		return
	}
	if len(body) > maxAdmissionBody {
		r.writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body over %d bytes", maxAdmissionBody))
		return
	}
	lines, err := wire.ParseReport(body)
	if err != nil {
		r.metrics.admissionReportErrors.Inc()
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	local := r.localRoutes.All()
	at := r.now().Unix()
	a := r.adm
	a.mu.Lock()
	var dropped int
	for _, l := range lines {
		if _, ok := local[l.Route]; !ok {
			dropped++
			continue
		}
		a.addLocked(admissionKey{wire.ScopeLocal.String(), l.Route, clip(l.Key, maxLabelLen)}, l.Counts, at)
	}
	a.mu.Unlock()
	if dropped > 0 {
		r.metrics.admissionLinesDropped.WithLabelValues(admissionNotLocal).Add(float64(dropped))
	}
	r.metrics.admissionReports.Inc()
	w.WriteHeader(http.StatusNoContent)
}

func (r *Reporter) serveAdmission(w http.ResponseWriter, req *http.Request) {
	if _, err := queryParams(req); err != nil {
		r.writeError(w, http.StatusBadRequest, err)
		return
	}
	r.writeJSON(w, http.StatusOK, r.Admission())
}

// admissionCollector exports the counts at scrape time:
// shadowlab_admission_requests_total{scope,route,key,outcome} and the
// histogram shadowlab_admission_delay_seconds{scope,route,key}. Past
// Config.MaxMetricKeys keys per route, keys are labelled OtherKey.
type admissionCollector struct {
	r               *Reporter
	maxKeys         int
	requests, delay *prometheus.Desc
	folded          *prometheus.Desc
}

func newAdmissionCollector(r *Reporter, maxKeys int) *admissionCollector {
	return &admissionCollector{
		r:       r,
		maxKeys: maxKeys,
		requests: prometheus.NewDesc("shadowlab_admission_requests_total",
			"Admission decisions by scope (local: wasm plugin, global: ext_proc), route, key and outcome: admitted, delayed, rejected, observed_delay, observed_reject (observe mode), abandoned (client left while held), fail_open (passed unadmitted).",
			[]string{"scope", "route", "key", "outcome"}, nil),
		delay: prometheus.NewDesc("shadowlab_admission_delay_seconds",
			"How long released requests were held.", []string{"scope", "route", "key"}, nil),
		folded: prometheus.NewDesc("shadowlab_admission_metric_keys_folded",
			"Admission keys exported under the key label "+OtherKey+" because their route already has Config.MaxMetricKeys key labels.", nil, nil),
	}
}

func (c *admissionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.delay
	ch <- c.folded
}

func (c *admissionCollector) Collect(ch chan<- prometheus.Metric) {
	merged := map[admissionKey]wire.Counts{}
	perRoute := map[admissionKey]int{}
	var order []admissionKey
	var folded int
	for _, ar := range c.r.Admission() { // sorted: the first keys keep their label
		k := admissionKey{ar.Scope, ar.Route, ar.Key}
		rk := admissionKey{ar.Scope, ar.Route, ""}
		if _, seen := merged[k]; !seen {
			if perRoute[rk] >= c.maxKeys {
				k.key = OtherKey
				folded++
			}
		}
		if _, seen := merged[k]; !seen {
			perRoute[rk]++
			order = append(order, k)
		}
		m := merged[k]
		m.Add(ar.Counts)
		merged[k] = m
	}
	for _, k := range order {
		m := merged[k]
		for _, o := range []struct {
			name string
			n    uint64
		}{
			{"admitted", m.Admitted}, {"delayed", m.Delayed}, {"rejected", m.Rejected},
			{"observed_delay", m.ObservedDelay}, {"observed_reject", m.ObservedReject},
			{"abandoned", m.Abandoned}, {"fail_open", m.FailOpen},
		} {
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(o.n), k.scope, k.route, k.key, o.name)
		}
		// The fine buckets summed into the coarse bounds (each one of the
		// fine bounds): the series a dashboard knows, no more of them.
		buckets := make(map[float64]uint64, len(wire.CoarseDelayBucketsMs))
		var cum uint64
		next := 0
		for i, b := range wire.CoarseDelayBucketsMs {
			for j := wire.FromCoarse(i); next <= j; next++ {
				cum = wire.SatAdd(cum, m.DelayBuckets[next])
			}
			buckets[float64(b)/1000] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.delay, m.ReleasedTotal(), float64(m.DelaySumMs)/1000, buckets, k.scope, k.route, k.key)
	}
	ch <- prometheus.MustNewConstMetric(c.folded, prometheus.GaugeValue, float64(folded))
}

// MergeAdmission merges the admission rows of several serve replicas
// (name → its report's Admission): one row per scope, route and key with
// the counts summed (and the percentiles taken from the summed
// histogram), preceded, for the global scope, by each replica's own row
// (Replica set) when more than one replica has the key. A local budget is
// per Envoy and each serve hears only its own Envoys' plugins, so the
// local rows are sums too. Sorted by scope, route, key, then replica.
func MergeAdmission(replicas map[string][]AdmissionReport) []AdmissionReport {
	sums := map[admissionKey]wire.Counts{}
	per := map[admissionKey][]AdmissionReport{}
	arrivals := map[admissionKey]map[int64]Arrival{}
	for name, rows := range replicas {
		for _, r := range rows {
			k := admissionKey{r.Scope, r.Route, r.Key}
			c := sums[k]
			c.Add(r.Counts)
			sums[k] = c
			own := admissionReport(k, r.Counts) // its figures from its counts, as the merged row's
			own.Replica, own.Arrivals = name, r.Arrivals
			per[k] = append(per[k], own)
			if arrivals[k] == nil {
				arrivals[k] = map[int64]Arrival{}
			}
			for _, a := range r.Arrivals {
				m := arrivals[k][a.At]
				arrivals[k][a.At] = Arrival{At: a.At, N: wire.SatAdd(m.N, a.N), Released: wire.SatAdd(m.Released, a.Released)}
			}
		}
	}
	var out []AdmissionReport
	for k, c := range sums {
		if k.scope == wire.ScopeGlobal.String() && len(per[k]) > 1 {
			out = append(out, per[k]...)
		}
		merged := admissionReport(k, c)
		for _, a := range arrivals[k] {
			merged.Arrivals = append(merged.Arrivals, a)
		}
		slices.SortFunc(merged.Arrivals, func(x, y Arrival) int { return cmp.Compare(x.At, y.At) })
		merged.Arrivals = merged.Arrivals[max(0, len(merged.Arrivals)-maxArrivalSeconds):]
		out = append(out, merged)
	}
	last := func(a AdmissionReport) int { // within a key, the merged row comes after the replicas'
		if a.Replica == "" {
			return 1
		}
		return 0
	}
	slices.SortFunc(out, func(x, y AdmissionReport) int {
		return cmp.Or(cmp.Compare(x.Scope, y.Scope), cmp.Compare(x.Route, y.Route), cmp.Compare(x.Key, y.Key),
			cmp.Compare(last(x), last(y)), cmp.Compare(x.Replica, y.Replica))
	})
	return out
}

// renderAdmission writes the admission table of `shadowlab report`; with
// rows from several replicas (MergeAdmission) it has a replica column,
// "all" on the merged rows.
func renderAdmission(w io.Writer, rows []AdmissionReport) {
	merged := slices.ContainsFunc(rows, func(a AdmissionReport) bool { return a.Replica != "" })
	fmt.Fprintln(w, "admission (per scope, route and key)")
	replica := func(name string) string {
		if !merged {
			return ""
		}
		if name == "" {
			name = "all"
		}
		return fmt.Sprintf(" %-21s", shorten(name, 21))
	}
	fmt.Fprintf(w, "  %-7s %-16s %-16s%s %9s %9s %9s %9s %9s %9s %10s %10s\n",
		"scope", "route", "key", replica("replica"), "admitted", "delayed", "rejected", "observed", "abandoned", "fail-open", "delay p50", "delay p99")
	for _, a := range rows {
		key := a.Key
		if key == "" {
			key = "-"
		}
		fmt.Fprintf(w, "  %-7s %-16s %-16s%s %9s %9s %9s %9s %9s %9s %10s %10s\n",
			a.Scope, shorten(a.Route, 16), shorten(key, 16), replica(a.Replica),
			thousandsU(a.Admitted), thousandsU(a.Delayed), thousandsU(a.Rejected),
			thousandsU(wire.SatAdd(a.ObservedDelay, a.ObservedReject)), thousandsU(a.Abandoned), thousandsU(a.FailOpen),
			delayText(a.Released, a.DelayP50Ms), delayText(a.Released, a.DelayP99Ms))
	}
}

// delayText prints an estimated wait readably: "820ms", "5.5s", "1m05s";
// "-" with no releases, "> 1h" past the histogram.
func delayText(released uint64, ms float64) string {
	switch {
	case released == 0:
		return "-"
	case ms < 0:
		return "> 1h"
	case ms < 1:
		return "< 1ms"
	case ms < 1000:
		return strconv.FormatFloat(ms, 'f', 0, 64) + "ms"
	case ms < 10_000:
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + "s"
	case ms < 60_000:
		return strconv.FormatFloat(ms/1000, 'f', 1, 64) + "s"
	}
	d := time.Duration(ms * float64(time.Millisecond)).Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// UseLocalAdmission takes the routes with local admission of pol as the
// only routes plugin reports may count (serveLocalAdmission). Until it is
// first called, every plugin report line is dropped.
func (r *Reporter) UseLocalAdmission(pol *policy.Policy) {
	r.localRoutes.Use(pol, func(rt *policy.Route, _ struct{}, _ bool) (struct{}, bool) {
		return struct{}{}, rt.Admission != nil && rt.Admission.Scope == wire.ScopeLocal
	})
}

// delayBounds is wire.DelayBucketsMs as the report lists it.
func delayBounds() []float64 {
	out := make([]float64, len(wire.DelayBucketsMs))
	for i, b := range wire.DelayBucketsMs {
		out[i] = float64(b)
	}
	return out
}
