package main

// source is who exports a metric, and so which scrape job has it.
type source int

const (
	// serve: `shadowlab serve` on its API port (/metrics, job "shadowlab").
	// The name is a string literal in the code under serveDirs.
	serve source = iota + 1
	// plugin: the capture plugin inside Envoy (proxywasm.Define*Metric),
	// on Envoy's /stats/prometheus (job "envoy"). Envoy strips its
	// "wasmcustom." namespace and adds no "envoy_" prefix or "_total".
	plugin
	// envoy: Envoy's own statistics on /stats/prometheus (job "envoy").
	envoy
)

// serveDirs hold the code that defines serve's metrics and the plugin's.
var serveDirs = []string{"report", "pair", "xds", "gateway", "serve", "wasm"}

// metrics are every series the dashboard and the alerts read, by the name a
// selector uses: histograms by their _bucket series. TestMetricsExist checks
// that each expression selects only these and that the serve and plugin ones
// are defined in the code.
var metrics = map[string]source{
	"shadowlab_match_rate":                      serve,
	"shadowlab_pairs_total":                     serve,
	"shadowlab_differences_total":               serve,
	"shadowlab_upstream_latency_seconds_bucket": serve,
	"shadowlab_capture_dropped_total":           serve,
	"shadowlab_report_pairs_dropped_total":      serve,
	"shadowlab_policy_refused_total":            serve,
	"shadowlab_xds_nacks_total":                 serve,
	"shadowlab_gateway_requests_total":          serve,
	"shadowlab_admission_requests_total":        serve,
	"shadowlab_admission_delay_seconds_bucket":  serve,

	"shadowlab_capture_records":      plugin,
	"shadowlab_capture_batches":      plugin,
	"shadowlab_capture_dropped":      plugin,
	"shadowlab_capture_batch_failed": plugin,

	// Per cluster; shadowlab's shadow clusters are "shadow/<route>"
	// (xds.ShadowCluster), and they lead to the shadow gateway.
	"envoy_cluster_upstream_rq_total":            envoy,
	"envoy_cluster_upstream_rq_pending_overflow": envoy,
}
