package main

import (
	"encoding/json"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"

	"github.com/shadowlab/shadowlab/xds"
)

// The dashboard's identity and its two template variables. Expressions use
// only $route, and only inside a regex matcher, so that `.*` can stand for
// it; $__rate_interval is Grafana's.
const (
	dashboardUID   = "shadowlab"
	dashboardTitle = "shadowlab"
	datasourceVar  = "datasource"
	routeVar       = "route"
	routeQuery     = "label_values(shadowlab_pairs_total, route)"
)

// datasource is every panel's and query's data source: the ${datasource}
// variable, so the dashboard imports into any Grafana with a Prometheus.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + datasourceVar + "}")}

// A row is a titled band of panels.
type row struct {
	title  string
	panels []panel
}

// A panel is one time series graph.
type panel struct {
	title, description string
	unit               string
	min, max           *float64
	targets            []target
}

// A target is one PromQL query of a panel and its legend.
type target struct{ expr, legend string }

// rows are the dashboard, top to bottom.
func rows() []row {
	shadowClusters := `envoy_cluster_name=~"` + xds.ShadowCluster("$"+routeVar) + `"`
	return []row{
		{title: "Comparison", panels: []panel{
			{
				title:       "Match rate",
				description: "Share of compared pairs that match, noise re-classified (shadowlab_match_rate). A route has none until one of its pairs is compared.",
				unit:        units.PercentUnit, min: cog.ToPtr(0.0), max: cog.ToPtr(1.0),
				targets: []target{{`shadowlab_match_rate{route=~"$route"}`, "{{route}}"}},
			},
			{
				title:       "Pair outcomes",
				description: "Mirrored requests by outcome: match, diff, primary_only, shadow_only, ambiguous, skipped.",
				unit:        units.RequestsPerSecond,
				targets: []target{{
					`sum by (route, outcome) (rate(shadowlab_pairs_total{route=~"$route"}[$__rate_interval]))`,
					"{{route}} {{outcome}}",
				}},
			},
			{
				title:       "Differences by path (top 10)",
				description: "Compared pairs with a difference, per JSON path pattern and kind of difference, noise included; patterns past the per-route cap are \"other\".",
				unit:        units.RequestsPerSecond,
				targets: []target{{
					`topk(10, sum by (route, pattern, kind) (rate(shadowlab_differences_total{route=~"$route"}[$__rate_interval])))`,
					"{{route}} {{pattern}} {{kind}}",
				}},
			},
			{
				title:       "Latency: primary vs shadow",
				description: "Upstream response latency of mirrored requests, p50 and p99, per route and side.",
				unit:        units.Seconds,
				targets: []target{
					{`histogram_quantile(0.5, sum by (route, side, le) (rate(shadowlab_upstream_latency_seconds_bucket{route=~"$route"}[$__rate_interval])))`, "{{route}} {{side}} p50"},
					{`histogram_quantile(0.99, sum by (route, side, le) (rate(shadowlab_upstream_latency_seconds_bucket{route=~"$route"}[$__rate_interval])))`, "{{route}} {{side}} p99"},
				},
			},
		}},
		{title: "Capture and configuration", panels: []panel{
			{
				title:       "Capture drops",
				description: "Halves or pairs dropped before comparison, by reason, and recent pairs not written to the report store. Any is alerted (ShadowlabCaptureDrops).",
				unit:        units.OpsPerSecond,
				targets: []target{
					{`sum by (reason) (rate(shadowlab_capture_dropped_total[$__rate_interval]))`, "pairer {{reason}}"},
					{`rate(shadowlab_report_pairs_dropped_total[$__rate_interval])`, "report store"},
				},
			},
			{
				title:       "Refused policy edits and xDS NACKs",
				description: "Policy edits serve refused (the last good policy kept serving) and configurations Envoy rejected. Alerted (ShadowlabConfigRefused, ShadowlabXDSRejected).",
				unit:        units.Short,
				targets: []target{
					{`increase(shadowlab_policy_refused_total[$__rate_interval])`, "policy edits refused"},
					{`increase(shadowlab_xds_nacks_total[$__rate_interval])`, "xDS NACKs"},
				},
			},
			{
				title:       "Shadow gateway",
				description: "Mirrored requests Envoy sent to serve's shadow gateway, by outcome: forwarded, or shed or refused (shed_busy, shed_memory, too_large, unknown_route, no_request_id, unsafe_refused, body_failed).",
				unit:        units.RequestsPerSecond,
				targets: []target{{
					`sum by (route, outcome) (rate(shadowlab_gateway_requests_total{route=~"$route"}[$__rate_interval]))`,
					"{{route}} {{outcome}}",
				}},
			},
		}},
		{title: "Admission", panels: []panel{
			{
				title:       "Admission outcomes",
				description: "Admission decisions by scope (local: wasm plugin, global: ext_proc), route and outcome; fail_open is alerted (ShadowlabAdmissionFailingOpen).",
				unit:        units.RequestsPerSecond,
				targets: []target{{
					`sum by (scope, route, outcome) (rate(shadowlab_admission_requests_total{route=~"$route"}[$__rate_interval]))`,
					"{{route}} {{scope}} {{outcome}}",
				}},
			},
			{
				title:       "Admission waits",
				description: "How long released requests were held, p50 and p99.",
				unit:        units.Seconds,
				targets: []target{
					{`histogram_quantile(0.5, sum by (scope, route, le) (rate(shadowlab_admission_delay_seconds_bucket{route=~"$route"}[$__rate_interval])))`, "{{route}} {{scope}} p50"},
					{`histogram_quantile(0.99, sum by (scope, route, le) (rate(shadowlab_admission_delay_seconds_bucket{route=~"$route"}[$__rate_interval])))`, "{{route}} {{scope}} p99"},
				},
			},
		}},
		{title: "Envoy", panels: []panel{
			{
				title:       "Envoy: mirrored requests to the shadow gateway",
				description: "Requests Envoy sent on each route's shadow cluster (shadow/<route>, to serve's shadow gateway), and those its circuit breaker shed.",
				unit:        units.RequestsPerSecond,
				targets: []target{
					{`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total{` + shadowClusters + `}[$__rate_interval]))`, "{{envoy_cluster_name}} sent"},
					{`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_pending_overflow{` + shadowClusters + `}[$__rate_interval]))`, "{{envoy_cluster_name}} shed"},
				},
			},
			{
				title:       "Envoy: capture plugin",
				description: "The wasm capture plugin in Envoy: primary answers recorded, batches posted to serve, records it dropped and batches that failed.",
				unit:        units.OpsPerSecond,
				targets: []target{
					{`sum(rate(shadowlab_capture_records[$__rate_interval]))`, "records"},
					{`sum(rate(shadowlab_capture_batches[$__rate_interval]))`, "batches"},
					{`sum(rate(shadowlab_capture_dropped[$__rate_interval]))`, "records dropped"},
					{`sum(rate(shadowlab_capture_batch_failed[$__rate_interval]))`, "batches failed"},
				},
			},
		}},
	}
}

// dashboardJSON builds the dashboard with the SDK's builders.
func dashboardJSON() ([]byte, error) {
	b := dashboard.NewDashboardBuilder(dashboardTitle).
		Uid(dashboardUID).
		Description(generatedBy).
		Tags([]string{"shadowlab"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("10s").
		Time("now-30m", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder(datasourceVar).
			Label("Data source").
			Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder(routeVar).
			Label("Route").
			Datasource(datasource).
			Query(dashboard.StringOrMap{String: cog.ToPtr(routeQuery)}).
			Definition(routeQuery).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
				Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
			}).
			AllValue(".*"))
	id := uint32(0)
	for _, r := range rows() {
		id++
		b.WithRow(dashboard.NewRowBuilder(r.title).Id(id))
		for _, p := range r.panels {
			id++
			b.WithPanel(timeseriesPanel(id, p))
		}
	}
	d, err := b.Build()
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// timeseriesPanel is p as a Grafana time series panel, half the width.
func timeseriesPanel(id uint32, p panel) *timeseries.PanelBuilder {
	b := timeseries.NewPanelBuilder().
		Id(id).
		Title(p.title).
		Description(p.description).
		Datasource(datasource).
		Unit(p.unit).
		Span(12).
		Height(8).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
	if p.min != nil {
		b.Min(*p.min)
	}
	if p.max != nil {
		b.Max(*p.max)
	}
	for i, t := range p.targets {
		b.WithTarget(prometheus.NewDataqueryBuilder().
			Datasource(datasource).
			RefId(string(rune('A' + i))).
			Expr(t.expr).
			LegendFormat(t.legend).
			Range())
	}
	return b
}
