package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// composeDir is where the generated files are committed, from this
// package's directory.
const composeDir = ".."

const regenerate = "run `go run ./examples/compose/dashboard -out examples/compose` after changing the generator"

func TestCommittedFilesAreGenerated(t *testing.T) {
	out := t.TempDir()
	require.NoError(t, run([]string{"-out", out}, os.Stderr))
	var names []string
	require.NoError(t, filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, path)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	}))
	assert.ElementsMatch(t, []string{dashboardFile, datasourceFile, providerFile, alertsFile}, names)
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(out, name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(composeDir, name))
		require.NoError(t, err, "%s missing: %s", name, regenerate)
		assert.True(t, bytes.Equal(want, got), "%s differs from the generator's output: %s", name, regenerate)
	}
}

// The dashboard JSON as the e2e test and Grafana read it.
type dashboardDoc struct {
	UID    string `json:"uid"`
	Panels []struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Multi      bool   `json:"multi"`
			IncludeAll bool   `json:"includeAll"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboardDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(composeDir, dashboardFile))
	require.NoError(t, err)
	var d dashboardDoc
	require.NoError(t, json.Unmarshal(raw, &d))
	return d
}

// panelExprs are the dashboard's queries by panel title.
func panelExprs(t *testing.T) map[string][]string {
	t.Helper()
	exprs := map[string][]string{}
	for _, p := range readDashboard(t).Panels {
		if p.Type == "row" {
			continue
		}
		for _, tg := range p.Targets {
			exprs[p.Title] = append(exprs[p.Title], tg.Expr)
		}
	}
	return exprs
}

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(composeDir, dashboardFile))
	require.NoError(t, err)
	plugins.RegisterDefaultPlugins()
	assert.NoError(t, strictSchema(raw), "the SDK's strict reading of the dashboard schema")

	d := readDashboard(t)
	assert.Equal(t, dashboardUID, d.UID)

	require.Len(t, d.Templating.List, 2)
	dsVar, routeV := d.Templating.List[0], d.Templating.List[1]
	assert.Equal(t, datasourceVar, dsVar.Name)
	assert.Equal(t, "datasource", dsVar.Type)
	assert.Equal(t, "prometheus", dsVar.Query)
	assert.Equal(t, routeVar, routeV.Name)
	assert.Equal(t, "query", routeV.Type)
	assert.Equal(t, routeQuery, routeV.Query)
	assert.Equal(t, "${datasource}", routeV.Datasource.UID)
	assert.True(t, routeV.Multi && routeV.IncludeAll, "route is multi-value with All")

	ids := map[int]bool{}
	panels := 0
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d used twice", p.ID)
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		panels++
		var nonEmpty bool
		for _, tg := range p.Targets {
			nonEmpty = nonEmpty || strings.TrimSpace(tg.Expr) != ""
		}
		assert.True(t, nonEmpty, "panel %q has no query", p.Title)
	}
	assert.GreaterOrEqual(t, panels, 10)
}

// strictSchema reads raw with the SDK's strict decoder: unknown fields and
// wrong types fail. It returns an empty cog.BuildErrors, not nil, when all
// is well.
func strictSchema(raw []byte) error {
	var d dashboard.Dashboard
	err := d.UnmarshalJSONStrict(raw)
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}

func TestStrictSchemaFails(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, err := os.ReadFile(filepath.Join(composeDir, dashboardFile))
	require.NoError(t, err)
	bad := bytes.Replace(raw, []byte(`"uid": "shadowlab",`), []byte(`"uid": "shadowlab", "bogus": 1,`), 1)
	assert.ErrorContains(t, strictSchema(bad), "unexpected field 'bogus'")
	bad = bytes.Replace(raw, []byte(`"legendFormat": "{{route}}",`), []byte(`"legendFormat": 7,`), 1)
	assert.Error(t, strictSchema(bad), "a panel's query is read strictly too")
}

// The e2e test runs every query with $route as .* and $__rate_interval as
// 1m: no other variable, and $route only inside a regex matcher's value.
var (
	variableRef = regexp.MustCompile(`\$\{?\w+\}?`)
	routeInside = regexp.MustCompile(`=~"[^"]*\$route[^"]*"`)
)

func TestExprVariables(t *testing.T) {
	for title, exprs := range panelExprs(t) {
		for _, e := range exprs {
			for _, v := range variableRef.FindAllString(e, -1) {
				assert.Contains(t, []string{"$route", "$__rate_interval"}, v, "%s: %s", title, e)
			}
			outside := routeInside.ReplaceAllString(e, "")
			assert.NotContains(t, outside, "$route", "%s: $route outside a =~ matcher: %s", title, e)
			assert.NotContains(t, e, "vector(", "%s: an empty result must mean a broken query: %s", title, e)
		}
	}
}

// metricNames are the metric names expr selects: what is left once strings,
// ranges, groupings, label matchers, function calls and keywords are gone.
func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{stringLit, rangeLit, grouping, matchers} {
		expr = re.ReplaceAllString(expr, " ")
	}
	var names []string
	for _, m := range identifier.FindAllStringIndex(expr, -1) {
		name, rest := expr[m[0]:m[1]], strings.TrimSpace(expr[m[1]:])
		if !keywords[name] && !strings.HasPrefix(rest, "(") {
			names = append(names, name)
		}
	}
	return names
}

var (
	stringLit  = regexp.MustCompile(`"[^"]*"`)
	rangeLit   = regexp.MustCompile(`\[[^\]]*\]`)
	grouping   = regexp.MustCompile(`\b(by|without)\s*\([^)]*\)`)
	matchers   = regexp.MustCompile(`\{[^}]*\}`)
	identifier = regexp.MustCompile(`\b[a-zA-Z_:][\w:]*`) // not 1h's h: \b is not between 1 and h
	keywords   = map[string]bool{"offset": true, "or": true, "and": true, "unless": true}
)

func TestMetricsExist(t *testing.T) {
	var exprs []string
	for _, es := range panelExprs(t) {
		exprs = append(exprs, es...)
	}
	for _, r := range rules(testConfig(t, "-route-latency-limit", "users=200ms")).Groups[0].Rules {
		exprs = append(exprs, r.Expr)
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		assert.NotEmpty(t, names, "no metric in %s", e)
		for _, name := range names {
			used[name] = true
			assert.Contains(t, metrics, name, "%s is not in the generator's metrics table: %s", name, e)
		}
	}
	for name := range metrics {
		assert.True(t, used[name], "%s is in the metrics table but no query uses it", name)
	}

	code := goSources(t)
	for name, src := range metrics {
		if src == envoy {
			continue // Envoy's own (seen on a real Envoy 1.40's /stats/prometheus)
		}
		defined := strings.TrimSuffix(name, "_bucket")
		assert.Contains(t, code, `"`+defined+`"`, "%s is not defined in %v", defined, serveDirs)
	}
}

// goSources is the non-test Go code under serveDirs, concatenated.
func goSources(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, dir := range serveDirs {
		files, err := filepath.Glob(filepath.Join("..", "..", "..", dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			b.Write(src)
		}
	}
	return b.String()
}

func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	cfg, err := parseFlags(args, os.Stderr)
	require.NoError(t, err)
	return cfg
}

func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: apt-get install prometheus")
	}
	return bin
}

func TestAlertsPromtool(t *testing.T) {
	bin := promtool(t)
	t.Run("committed rules check", func(t *testing.T) {
		out, err := exec.Command(bin, "check", "rules", filepath.Join(composeDir, alertsFile)).CombinedOutput()
		assert.NoError(t, err, "%s", out)
	})
	t.Run("rules with per-route limits check", func(t *testing.T) {
		cfg := testConfig(t, "-route-latency-limit", "users=200ms", "-route-latency-limit", "orders=2s")
		text, err := alertsYAML(cfg)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "alerts.yml")
		require.NoError(t, os.WriteFile(path, text, 0o644))
		out, err := exec.Command(bin, "check", "rules", path).CombinedOutput()
		assert.NoError(t, err, "%s", out)
	})
	t.Run("unit tests", func(t *testing.T) {
		out, err := exec.Command(bin, "test", "rules", filepath.Join(composeDir, "prometheus", "alerts_test.yml")).CombinedOutput()
		assert.NoError(t, err, "%s", out)
	})
}

func TestShadowSlowRules(t *testing.T) {
	tests := map[string]struct {
		args  []string
		exprs []string // ShadowlabShadowSlow's, in order
	}{
		"default limit only": {
			exprs: []string{`histogram_quantile(0.99, sum by (route, le) (rate(shadowlab_upstream_latency_seconds_bucket{side="shadow"}[5m]))) > 0.5`},
		},
		"overrides, then every other route": {
			args: []string{"-shadow-latency-limit", "1s", "-route-latency-limit", "users=200ms", "-route-latency-limit", "orders=2.5s"},
			exprs: []string{
				`histogram_quantile(0.99, sum by (route, le) (rate(shadowlab_upstream_latency_seconds_bucket{side="shadow",route="orders"}[5m]))) > 2.5`,
				`histogram_quantile(0.99, sum by (route, le) (rate(shadowlab_upstream_latency_seconds_bucket{side="shadow",route="users"}[5m]))) > 0.2`,
				`histogram_quantile(0.99, sum by (route, le) (rate(shadowlab_upstream_latency_seconds_bucket{side="shadow",route!~"orders|users"}[5m]))) > 1`,
			},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, r := range rules(testConfig(t, tt.args...)).Groups[0].Rules {
				if r.Alert == "ShadowlabShadowSlow" {
					got = append(got, r.Expr)
					assert.Contains(t, r.Annotations.Summary, "{{ $labels.route }}")
					assert.Equal(t, "5m", r.For.String())
				}
			}
			assert.Equal(t, tt.exprs, got)
		})
	}
}

func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(composeDir, alertsFile))
	require.NoError(t, err)
	var f ruleFile
	require.NoError(t, yaml.Unmarshal(raw, &f))
	require.Len(t, f.Groups, 1)
	byName := map[string][]rule{}
	for _, r := range f.Groups[0].Rules {
		byName[r.Alert] = append(byName[r.Alert], r)
		assert.NotEmpty(t, r.Labels.Severity, r.Alert)
		assert.NotEmpty(t, r.Annotations.Summary, r.Alert)
		assert.NotEmpty(t, r.Annotations.Description, r.Alert)
		if strings.Contains(r.Expr, "route") {
			assert.Contains(t, r.Annotations.Summary, "{{ $labels.route }}", "%s: its series have a route", r.Alert)
		}
	}
	assert.ElementsMatch(t, []string{
		"ShadowlabShadowSlow", "ShadowlabMatchRateDropping", "ShadowlabCaptureDrops",
		"ShadowlabConfigRefused", "ShadowlabXDSRejected", "ShadowlabAdmissionFailingOpen",
	}, slices.Collect(maps.Keys(byName)))
	refused := byName["ShadowlabConfigRefused"]
	require.Len(t, refused, 1)
	assert.Equal(t, "increase(shadowlab_policy_refused_total[10m]) > 0", refused[0].Expr)
	assert.Zero(t, refused[0].For, "fires at the first evaluation that sees a refused edit")
}

func TestFlags(t *testing.T) {
	tests := map[string]struct {
		args    []string
		wantErr string
	}{
		"defaults":              {},
		"route limit":           {args: []string{"-route-latency-limit", "billing-records=750ms"}},
		"no equals sign":        {args: []string{"-route-latency-limit", "users"}, wantErr: "want route=duration"},
		"not a route name":      {args: []string{"-route-latency-limit", `a"b=1s`}, wantErr: "not a policy route name"},
		"route twice":           {args: []string{"-route-latency-limit", "a=1s", "-route-latency-limit", "a=2s"}, wantErr: "given twice"},
		"zero route limit":      {args: []string{"-route-latency-limit", "a=0s"}, wantErr: "must be positive"},
		"zero default limit":    {args: []string{"-shadow-latency-limit", "0"}, wantErr: "-shadow-latency-limit: must be positive"},
		"match rate over 1":     {args: []string{"-match-rate-min", "1.5"}, wantErr: "-match-rate-min: must be in (0, 1]"},
		"match rate drop of 0":  {args: []string{"-match-rate-drop", "0"}, wantErr: "-match-rate-drop: must be in (0, 1)"},
		"positional argument":   {args: []string{"extra"}, wantErr: "unexpected arguments: extra"},
		"every problem at once": {args: []string{"-shadow-latency-limit", "0", "-match-rate-min", "2"}, wantErr: "-match-rate-min"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestMetricNames(t *testing.T) {
	tests := map[string]struct {
		expr string
		want []string
	}{
		"selector":      {`shadowlab_match_rate{route=~"$route"}`, []string{"shadowlab_match_rate"}},
		"no braces":     {`sum(rate(shadowlab_capture_records[$__rate_interval]))`, []string{"shadowlab_capture_records"}},
		"label names":   {`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total{envoy_cluster_name=~"shadow/$route"}[1m]))`, []string{"envoy_cluster_upstream_rq_total"}},
		"offset and or": {`a < 0.95 or a < (a offset 1h) - 0.1`, []string{"a", "a", "a"}},
		"histogram":     {`histogram_quantile(0.99, sum by (route, le) (rate(x_bucket{side="shadow"}[5m]))) > 0.5`, []string{"x_bucket"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tt.want, metricNames(tt.expr))
		})
	}
}
