package main

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/shadowlab/shadowlab/wire"
)

// A ruleFile is a Prometheus rule file (rule_files in prometheus.yml).
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

// A rule is one alerting rule. Several rules may share an alert name (one
// per latency limit, one per drop counter): Alertmanager sees one alert.
type rule struct {
	Alert       string         `yaml:"alert"`
	Expr        string         `yaml:"expr"`
	For         model.Duration `yaml:"for"`
	Labels      labels         `yaml:"labels"`
	Annotations annotations    `yaml:"annotations"`
}

// labels are the alert's static labels. Rules sharing an alert name differ
// in one of them (promtool reports duplicates otherwise); route and reason
// then hold the value the series has too.
type labels struct {
	Severity string `yaml:"severity"`
	Route    string `yaml:"route,omitempty"`
	Reason   string `yaml:"reason,omitempty"`
}

// annotations may use Prometheus' alert templates: {{ $labels.route }},
// {{ $value }}.
type annotations struct {
	Summary     string `yaml:"summary"`
	Description string `yaml:"description"`
}

const (
	warning  = "warning"
	critical = "critical"
)

// Windows and holds of the alerts without a flag.
const (
	latencyWindow   = "5m"             // ShadowlabShadowSlow's rate window
	matchRateFor    = 10 * time.Minute // ShadowlabMatchRateDropping
	dropWindow      = "5m"             // ShadowlabCaptureDrops, ShadowlabAdmissionFailingOpen
	configWindow    = "10m"            // ShadowlabConfigRefused, ShadowlabXDSRejected
	matchRateOffset = "1h"
)

// immediately is a rule's for: fire at the first evaluation that sees it.
const immediately = model.Duration(0)

// rules are the alerting rules for cfg's thresholds, in one group.
func rules(cfg config) ruleFile {
	var rs []rule
	rs = append(rs, shadowSlow(cfg)...)
	rs = append(rs,
		rule{
			Alert: "ShadowlabMatchRateDropping",
			Expr: fmt.Sprintf("shadowlab_match_rate < %s or shadowlab_match_rate < (shadowlab_match_rate offset %s) - %s",
				number(cfg.matchRateMin), matchRateOffset, number(cfg.matchRateDrop)),
			For:    model.Duration(matchRateFor),
			Labels: labels{Severity: warning},
			Annotations: annotations{
				Summary: "Match rate of route {{ $labels.route }} is {{ $value | humanizePercentage }}",
				Description: fmt.Sprintf("The share of compared pairs of route {{ $labels.route }} whose shadow answered like the primary "+
					"is under %s, or %s lower than %s ago. See the dashboard's \"Differences by path\" and `shadowlab report`.",
					percent(cfg.matchRateMin), points(cfg.matchRateDrop), matchRateOffset),
			},
		},
		rule{
			Alert:  "ShadowlabCaptureDrops",
			Expr:   "increase(shadowlab_capture_dropped_total[" + dropWindow + "]) > 0",
			For:    immediately,
			Labels: labels{Severity: warning},
			Annotations: annotations{
				Summary: "shadowlab dropped mirrored responses before comparing them ({{ $labels.reason }})",
				Description: "serve's pairer dropped {{ $value | humanize }} halves or pairs in " + dropWindow + ", reason {{ $labels.reason }}: " +
					"they are missing from the comparison. queue_full, comparator_full: serve is short of CPU; " +
					"pending_full, pending_evicted: too many requests waiting for their other half; " +
					"unknown_route: captures of a route the policy in use does not mirror; no_request_id, malformed_batch: captures shadowlab cannot use.",
			},
		},
		rule{
			Alert:  "ShadowlabCaptureDrops",
			Expr:   "increase(shadowlab_report_pairs_dropped_total[" + dropWindow + "]) > 0",
			For:    immediately,
			Labels: labels{Severity: warning, Reason: "report_store"},
			Annotations: annotations{
				Summary: "shadowlab did not store compared pairs (report store)",
				Description: "{{ $value | humanize }} compared pairs were not written to the report store in " + dropWindow +
					" (queue full or write failed): they count in the metrics but are missing from `shadowlab report`'s recent pairs. " +
					"See shadowlab_report_store_degraded and shadowlab_report_flush_errors_total.",
			},
		},
		rule{
			Alert:  "ShadowlabConfigRefused",
			Expr:   "increase(shadowlab_policy_refused_total[" + configWindow + "]) > 0",
			For:    immediately,
			Labels: labels{Severity: warning},
			Annotations: annotations{
				Summary: "shadowlab refused a policy edit",
				Description: "serve refused an edit of the policy file in the last " + configWindow + " (invalid or untranslatable): " +
					"Envoy keeps the last good policy, so the edit is not in effect. serve's log names every problem with its line.",
			},
		},
		rule{
			Alert:  "ShadowlabXDSRejected",
			Expr:   "increase(shadowlab_xds_nacks_total[" + configWindow + "]) > 0",
			For:    immediately,
			Labels: labels{Severity: warning},
			Annotations: annotations{
				Summary: "Envoy rejected shadowlab's configuration (xDS NACK)",
				Description: "An Envoy NACKed a configuration serve sent in the last " + configWindow +
					": it keeps its last accepted one. serve's log (logger xds) has Envoy's error and the node.",
			},
		},
		rule{
			Alert:  "ShadowlabAdmissionFailingOpen",
			Expr:   `sum without (key) (increase(shadowlab_admission_requests_total{outcome="fail_open"}[` + dropWindow + `])) > 0`,
			For:    immediately,
			Labels: labels{Severity: critical},
			Annotations: annotations{
				Summary: "Admission on route {{ $labels.route }} ({{ $labels.scope }}) is failing open",
				Description: "{{ $value | humanize }} requests of route {{ $labels.route }} passed without an admission decision in " + dropWindow +
					" (scope {{ $labels.scope }}; local: the wasm plugin, global: the admission server): the route's upstream is not protected " +
					"by its admission rate. See Envoy's and serve's logs.",
			},
		},
	)
	return ruleFile{Groups: []ruleGroup{{Name: "shadowlab", Rules: rs}}}
}

// shadowSlow is ShadowlabShadowSlow: one rule per route with its own limit,
// and one for every other route with the default limit.
func shadowSlow(cfg config) []rule {
	p99 := func(matcher string) string {
		return fmt.Sprintf(`histogram_quantile(0.99, sum by (route, le) (rate(shadowlab_upstream_latency_seconds_bucket{side="%s"%s}[%s])))`,
			wire.SideShadow, matcher, latencyWindow)
	}
	slow := func(route, expr string, limit time.Duration) rule {
		return rule{
			Alert:  "ShadowlabShadowSlow",
			Expr:   expr + " > " + number(limit.Seconds()),
			For:    model.Duration(cfg.shadowSlowFor),
			Labels: labels{Severity: warning, Route: route},
			Annotations: annotations{
				Summary: "Shadow of route {{ $labels.route }} is slow: p99 {{ $value | humanizeDuration }} (limit " + limit.String() + ")",
				Description: "The shadow's p99 upstream latency on route {{ $labels.route }} has been over " + limit.String() +
					" for " + model.Duration(cfg.shadowSlowFor).String() + ". Compare with the primary on the dashboard's " +
					"\"Latency: primary vs shadow\": a slow shadow holds the shadow gateway's slots longer.",
			},
		}
	}
	overridden := slices.Sorted(maps.Keys(cfg.routeLatencyLimits))
	var rs []rule
	for _, r := range overridden {
		rs = append(rs, slow(r, p99(`,route="`+r+`"`), cfg.routeLatencyLimits[r]))
	}
	others := ""
	if len(overridden) > 0 {
		others = `,route!~"` + strings.Join(overridden, "|") + `"`
	}
	return append(rs, slow("", p99(others), cfg.shadowLatencyLimit))
}

// alertsYAML is the rule file for cfg, headed by a comment.
func alertsYAML(cfg config) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# shadowlab's alerting rules (Prometheus 2.42+).\n# %s\n", generatedBy)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(rules(cfg)); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// number is f as PromQL writes it: 0.5, not 5e-01.
func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// percent is a share as a percentage: 0.95 → "95%".
func percent(f float64) string { return strconv.FormatFloat(f*100, 'g', 6, 64) + "%" }

// points is a fall of a share in percentage points: 0.1 → "10 points".
func points(f float64) string { return strconv.FormatFloat(f*100, 'g', 6, 64) + " points" }
