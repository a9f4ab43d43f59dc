package report

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shadowlab/shadowlab/wire"
)

// Metric names; every one starts with shadowlab_.
const (
	metricPairs         = "shadowlab_pairs_total"
	metricDifferences   = "shadowlab_differences_total"
	metricLatency       = "shadowlab_upstream_latency_seconds"
	metricMatchRate     = "shadowlab_match_rate"
	metricNoisePaths    = "shadowlab_noise_paths"
	metricDropped       = "shadowlab_report_pairs_dropped_total"
	metricFlushErrors   = "shadowlab_report_flush_errors_total"
	metricFlushDuration = "shadowlab_report_flush_duration_seconds"
)

// metrics are the report's Prometheus series. Labels carry route names,
// outcomes, patterns (capped per route), kinds and sides: never request ids,
// values or concrete paths.
type metrics struct {
	reg          *prometheus.Registry
	pairs        *prometheus.CounterVec
	differences  *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	dropped      prometheus.Counter
	flushErrors  prometheus.Counter
	flushSeconds prometheus.Histogram

	admissionReports, admissionReportErrors prometheus.Counter
	admissionLinesDropped                   *prometheus.CounterVec

	candidates, fallbacks, candidateFailed *prometheus.CounterVec
}

func newMetrics(r *Reporter) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		pairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricPairs,
			Help: "Mirrored requests by outcome as recorded (noise not re-classified).",
		}, []string{"route", "outcome"}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricDifferences,
			Help: `Compared pairs with at least one difference at a pattern, noise included; patterns past the per-route cap are labelled "other".`,
		}, []string{"route", "pattern", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricLatency,
			Help:    "Upstream response latency of mirrored requests, per side.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "side"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricDropped,
			Help: "Recent pairs not written to the report store: queue full or write failed.",
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: metricFlushErrors,
			Help: "Failed writes to the report store.",
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    metricFlushDuration,
			Help:    "Time to write one batch to the report store.",
			Buckets: prometheus.ExponentialBuckets(.0005, 4, 8),
		}),
	}
	rc := &reportCollector{
		r: r,
		matchRate: prometheus.NewDesc(metricMatchRate,
			"Share of compared pairs that match, noise re-classified (absent until a pair is compared).", []string{"route"}, nil),
		noisePaths: prometheus.NewDesc(metricNoisePaths, "Patterns currently learned as noise.", []string{"route"}, nil),
	}
	m.admissionReports = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shadowlab_admission_plugin_reports_total",
		Help: "Admission reports received from wasm plugins.",
	})
	m.admissionLinesDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowlab_admission_plugin_lines_dropped_total",
		Help: "Lines of plugin admission reports dropped, by reason (unknown_route: not a route with local admission in the policy in use).",
	}, []string{"reason"})
	m.admissionReportErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shadowlab_admission_plugin_report_errors_total",
		Help: "Admission reports from wasm plugins refused as malformed.",
	})
	m.candidates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowlab_rollout_canary_requests_total",
		Help: "Requests the candidate was asked to answer (canary and promoted routes).",
	}, []string{"route"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowlab_rollout_fallbacks_total",
		Help: "Candidate requests answered by the primary instead, by why the candidate's attempt failed (5xx, reset, timeout, connect_failure).",
	}, []string{"route", "reason"})
	m.candidateFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowlab_rollout_failed_total",
		Help: "Candidate requests whose user got an error all the same (the fallback failed too, or the method could not fall back).",
	}, []string{"route"})
	degraded := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shadowlab_report_store_degraded",
		Help: "1 while the report store cannot be written and results are kept in memory only (failed writes: " + metricFlushErrors + ").",
	}, func() float64 {
		if r.Degraded() {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(degraded, m.pairs, m.differences, m.latency, m.dropped, m.flushErrors, m.flushSeconds, rc,
		m.admissionReports, m.admissionReportErrors, m.admissionLinesDropped, newAdmissionCollector(r, r.cfg.MaxMetricKeys),
		m.candidates, m.fallbacks, m.candidateFailed, newRolloutCollector(r))
	return m
}

// record counts one pair; label maps a pattern to its capped label value.
func (m *metrics) record(p *Pair, keys []patKey, label func(route, pattern string) string) {
	m.pairs.WithLabelValues(p.Route, string(p.Outcome)).Inc()
	for _, k := range keys {
		m.differences.WithLabelValues(p.Route, label(p.Route, k.pattern), string(k.kind)).Inc()
	}
	if p.PrimaryLatency > 0 {
		m.latency.WithLabelValues(p.Route, wire.SidePrimary.String()).Observe(p.PrimaryLatency.Seconds())
	}
	if p.ShadowLatency > 0 {
		m.latency.WithLabelValues(p.Route, wire.SideShadow.String()).Observe(p.ShadowLatency.Seconds())
	}
}

// reportCollector computes gauges from Report() at scrape time, so they
// follow noise re-classification and Reset.
type reportCollector struct {
	r                     *Reporter
	matchRate, noisePaths *prometheus.Desc
}

func (c *reportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.matchRate
	ch <- c.noisePaths
}

func (c *reportCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rr := range c.r.Report().Routes {
		if rr.MatchRate != nil {
			ch <- prometheus.MustNewConstMetric(c.matchRate, prometheus.GaugeValue, *rr.MatchRate, rr.Route)
		}
		ch <- prometheus.MustNewConstMetric(c.noisePaths, prometheus.GaugeValue, float64(len(rr.Noise)), rr.Route)
	}
}
