// Package proof decodes examples/rollout's Flagger and Argo Rollouts objects
// strictly into those projects' own Go types and runs what it can of their
// own code on them: Argo's metric validation, argument resolution, condition
// evaluation and web provider; Flagger's query template functions. The
// Prometheus queries run on Prometheus's own PromQL engine.
//
// It is a module of its own so that Flagger's, Argo Rollouts' and
// Prometheus's dependency graphs stay out of shadowlab's go.mod.
package proof

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/webmetric"
	rollouts "github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	analysisutil "github.com/argoproj/argo-rollouts/utils/analysis"
	"github.com/argoproj/argo-rollouts/utils/evaluate"
	flagger "github.com/fluxcd/flagger/pkg/apis/flagger/v1beta1"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	log "github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	flaggerFile = "../flagger-metric-templates.yaml"
	argoFile    = "../argo-analysis-templates.yaml"

	// route is what the tests substitute for the route placeholder.
	route = "checkout"
)

// documents splits a YAML stream on its "---" lines and drops the documents
// that hold only comments and blank lines.
func documents(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		if hasContent(cur.Bytes()) {
			docs = append(docs, bytes.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	for line := range strings.Lines(string(data)) {
		if strings.TrimRight(line, " \t\r\n") == "---" {
			flush()
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

func hasContent(doc []byte) bool {
	for line := range strings.Lines(string(doc)) {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// decodeStrict decodes one document into out as the API server does with
// strict field validation: YAML to JSON, then sigs.k8s.io/json's strict
// decoding, which is case-sensitive (encoding/json, and so
// sigs.k8s.io/yaml.UnmarshalStrict, would take "jsonpath" for "jsonPath"),
// and makes an unknown or duplicated field an error. The document's
// apiVersion and kind must be want's.
func decodeStrict(doc []byte, want metav1.TypeMeta, out any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return err
	}
	if tm != want {
		return fmt.Errorf("apiVersion %q kind %q, want %q %q", tm.APIVersion, tm.Kind, want.APIVersion, want.Kind)
	}
	strict, err := kjson.UnmarshalStrict(j, out)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

var (
	metricTemplateType   = metav1.TypeMeta{APIVersion: "flagger.app/v1beta1", Kind: "MetricTemplate"}
	canaryType           = metav1.TypeMeta{APIVersion: "flagger.app/v1beta1", Kind: "Canary"}
	analysisTemplateType = metav1.TypeMeta{APIVersion: "argoproj.io/v1alpha1", Kind: "AnalysisTemplate"}
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func metricTemplates(t *testing.T, data []byte) map[string]flagger.MetricTemplate {
	t.Helper()
	out := map[string]flagger.MetricTemplate{}
	for i, doc := range documents(data) {
		var mt flagger.MetricTemplate
		if err := decodeStrict(doc, metricTemplateType, &mt); err != nil {
			t.Fatalf("%s document %d: %v", flaggerFile, i+1, err)
		}
		if _, dup := out[mt.Name]; dup {
			t.Fatalf("%s: MetricTemplate %q twice", flaggerFile, mt.Name)
		}
		out[mt.Name] = mt
	}
	return out
}

// canaryExcerpt is the commented Canary between "# BEGIN Canary" and
// "# END Canary", uncommented.
func canaryExcerpt(data []byte) ([]byte, error) {
	var out bytes.Buffer
	in := false
	found := false
	for line := range strings.Lines(string(data)) {
		switch strings.TrimSpace(line) {
		case "# BEGIN Canary":
			in, found = true, true
			continue
		case "# END Canary":
			in = false
			continue
		}
		if !in {
			continue
		}
		if t := strings.TrimRight(line, "\n"); t == "#" {
			out.WriteString("\n")
		} else if rest, ok := strings.CutPrefix(line, "# "); ok {
			out.WriteString(rest)
		} else {
			return nil, fmt.Errorf("line %q in the Canary excerpt is not commented with \"# \"", line)
		}
	}
	if !found || in {
		return nil, fmt.Errorf("no complete BEGIN Canary ... END Canary block")
	}
	return out.Bytes(), nil
}

func canary(t *testing.T, data []byte) flagger.Canary {
	t.Helper()
	doc, err := canaryExcerpt(data)
	if err != nil {
		t.Fatalf("%s: %v", flaggerFile, err)
	}
	var c flagger.Canary
	if err := decodeStrict(doc, canaryType, &c); err != nil {
		t.Fatalf("%s Canary excerpt: %v", flaggerFile, err)
	}
	return c
}

func analysisTemplates(t *testing.T, data []byte) map[string]rollouts.AnalysisTemplate {
	t.Helper()
	out := map[string]rollouts.AnalysisTemplate{}
	for i, doc := range documents(data) {
		var at rollouts.AnalysisTemplate
		if err := decodeStrict(doc, analysisTemplateType, &at); err != nil {
			t.Fatalf("%s document %d: %v", argoFile, i+1, err)
		}
		if _, dup := out[at.Name]; dup {
			t.Fatalf("%s: AnalysisTemplate %q twice", argoFile, at.Name)
		}
		out[at.Name] = at
	}
	return out
}

// renderFlagger renders a MetricTemplate query as Flagger does: this is
// pkg/metrics/observers.RenderQuery of Flagger, whose package is not imported
// because it brings in every metrics provider of Flagger (AWS, Google Cloud,
// InfluxDB SDKs). The template functions are Flagger's own.
func renderFlagger(query string, model flagger.MetricTemplateModel) (string, error) {
	tmpl, err := template.New("tmpl").Option("missingkey=error").Funcs(model.TemplateFunctions()).Parse(query)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// The metric each Flagger template must query, and its threshold's side in
// the Canary excerpt.
var flaggerWant = map[string]struct {
	metrics []string
	min     bool // thresholdRange.min (else max)
}{
	"shadowlab-gates-pass":    {[]string{"shadowlab_rollout_gates_pass"}, true},
	"shadowlab-match-rate":    {[]string{"shadowlab_rollout_match_rate", "shadowlab_rollout_verdict", `verdict="inconclusive"`}, true},
	"shadowlab-fallback-rate": {[]string{"shadowlab_rollout_fallbacks_total", "shadowlab_rollout_canary_requests_total"}, false},
}

func TestFlaggerMetricTemplates(t *testing.T) {
	mts := metricTemplates(t, read(t, flaggerFile))
	if got := slices.Sorted(maps.Keys(mts)); !slices.Equal(got, slices.Sorted(maps.Keys(flaggerWant))) {
		t.Fatalf("MetricTemplates %v, want %v", got, slices.Sorted(maps.Keys(flaggerWant)))
	}
	for name, mt := range mts {
		t.Run(name, func(t *testing.T) {
			p := mt.Spec.Provider
			if p.Type != "prometheus" {
				t.Errorf("provider.type %q, want prometheus", p.Type)
			}
			checkURL(t, "provider.address", p.Address)
			q := mt.Spec.Query
			if !strings.Contains(q, "{{ variables.route }}") {
				t.Errorf("query does not mention {{ variables.route }}:\n%s", q)
			}
			for _, m := range flaggerWant[name].metrics {
				if !strings.Contains(q, m) {
					t.Errorf("query does not mention %s:\n%s", m, q)
				}
			}
			// Every route selector is the placeholder: no route left hard-coded.
			for _, m := range regexp.MustCompile(`route="[^"]*"`).FindAllString(q, -1) {
				if m != `route="{{ variables.route }}"` {
					t.Errorf("query selects %s, want the placeholder", m)
				}
			}

			got, err := renderFlagger(q, flagger.MetricTemplateModel{
				Name: route, Namespace: "default", Target: route, Interval: "1m",
				Variables: map[string]string{"route": route},
			})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if strings.Contains(got, "{{") || !strings.Contains(got, `route="`+route+`"`) {
				t.Errorf("rendered query:\n%s", got)
			}
			// Without the variable Flagger refuses to render: the Canary must give it.
			if _, err := renderFlagger(q, flagger.MetricTemplateModel{Interval: "1m", Variables: map[string]string{}}); err == nil {
				t.Errorf("rendered without variables.route")
			}
		})
	}
}

func TestFlaggerCanaryExcerpt(t *testing.T) {
	data := read(t, flaggerFile)
	mts := metricTemplates(t, data)
	c := canary(t, data)
	a := c.Spec.Analysis
	if a == nil {
		t.Fatal("Canary has no spec.analysis")
	}
	if a.Threshold <= 0 {
		t.Errorf("analysis.threshold %d: must be > 0 (failed checks before rollback)", a.Threshold)
	}
	if _, err := time.ParseDuration(a.Interval); err != nil {
		t.Errorf("analysis.interval: %v", err)
	}
	used := map[string]bool{}
	for _, m := range a.Metrics {
		t.Run(m.Name, func(t *testing.T) {
			if m.TemplateRef == nil {
				t.Fatal("no templateRef")
			}
			mt, ok := mts[m.TemplateRef.Name]
			if !ok {
				t.Fatalf("templateRef %q is not a MetricTemplate of %s", m.TemplateRef.Name, flaggerFile)
			}
			used[m.TemplateRef.Name] = true
			if m.TemplateVariables["route"] == "" {
				t.Errorf("no templateVariables.route")
			}
			if m.Query != "" || m.Threshold != 0 {
				t.Errorf("deprecated query/threshold set")
			}
			if _, err := time.ParseDuration(m.Interval); err != nil {
				t.Errorf("interval: %v", err)
			}
			r := m.ThresholdRange
			if r == nil {
				t.Fatal("no thresholdRange")
			}
			if flaggerWant[m.TemplateRef.Name].min {
				if r.Min == nil || *r.Min <= 0 || *r.Min > 1 {
					t.Errorf("thresholdRange.min %v, want in (0, 1]", r.Min)
				}
				if m.TemplateRef.Name == "shadowlab-gates-pass" && (r.Min == nil || *r.Min != 1) {
					t.Errorf("gates pass needs thresholdRange.min 1")
				}
			} else if r.Max == nil || *r.Max < 0 || *r.Max >= 1 {
				t.Errorf("thresholdRange.max %v, want in [0, 1)", r.Max)
			}

			got, err := renderFlagger(mt.Spec.Query, flagger.MetricTemplateModel{
				Name: c.Name, Target: c.Spec.TargetRef.Name, Interval: m.Interval, Variables: m.TemplateVariables,
			})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if !strings.Contains(got, `route="`+m.TemplateVariables["route"]+`"`) {
				t.Errorf("rendered query does not select the route:\n%s", got)
			}
		})
	}
	for name := range mts {
		if !used[name] {
			t.Errorf("MetricTemplate %q is not used by the Canary excerpt", name)
		}
	}
}

func TestArgoAnalysisTemplates(t *testing.T) {
	ats := analysisTemplates(t, read(t, argoFile))
	var web, prom int
	for name, at := range ats {
		t.Run(name, func(t *testing.T) {
			if err := analysisutil.ValidateMetrics(at.Spec.Metrics); err != nil {
				t.Fatalf("Argo's ValidateMetrics: %v", err)
			}
			declared := map[string]bool{}
			for _, arg := range at.Spec.Args {
				declared[arg.Name] = true
				if arg.ValueFrom != nil {
					s := arg.ValueFrom.SecretKeyRef
					if s == nil || s.Name == "" || s.Key == "" {
						t.Errorf("args.%s: valueFrom without secretKeyRef name and key", arg.Name)
					}
				}
			}
			if !declared["route"] {
				t.Fatal("no args.route")
			}
			for _, arg := range at.Spec.Args {
				if arg.Name == "route" && (arg.Value != nil || arg.ValueFrom != nil) {
					t.Errorf("args.route has a default: the Rollout must give the route")
				}
			}
			for _, m := range at.Spec.Metrics {
				if m.SuccessCondition == "" || m.FailureCondition == "" {
					t.Errorf("metric %s: successCondition %q failureCondition %q: both needed, so that inconclusive is neither",
						m.Name, m.SuccessCondition, m.FailureCondition)
				}
				if m.InconclusiveLimit != nil && m.InconclusiveLimit.IntValue() != 0 {
					t.Errorf("metric %s: inconclusiveLimit %s: inconclusive measurements under it would let the run succeed", m.Name, m.InconclusiveLimit.String())
				}
				if m.Count == nil || m.Count.IntValue() <= 0 {
					t.Errorf("metric %s: no count", m.Name)
				}
				if _, err := m.Interval.Duration(); err != nil {
					t.Errorf("metric %s: interval: %v", m.Name, err)
				}

				mb, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				for _, tag := range regexp.MustCompile(`\{\{\s*([^}]*?)\s*\}\}`).FindAllStringSubmatch(string(mb), -1) {
					arg, ok := strings.CutPrefix(tag[1], "args.")
					if !ok || !declared[arg] {
						t.Errorf("metric %s: {{ %s }} is not a declared arg", m.Name, tag[1])
					}
				}

				var target string
				switch p := m.Provider; {
				case p.Web != nil && p.Prometheus == nil:
					web++
					target = p.Web.URL
					if p.Web.JSONPath == "" {
						t.Errorf("metric %s: no web.jsonPath", m.Name)
					} else if _, err := webmetric.NewWebMetricJsonParser(m); err != nil {
						t.Errorf("metric %s: jsonPath: %v", m.Name, err)
					}
				case p.Prometheus != nil && p.Web == nil:
					prom++
					target = p.Prometheus.Query
					checkURL(t, "prometheus.address", p.Prometheus.Address)
					if !strings.Contains(target, "shadowlab_rollout_gates_pass") {
						t.Errorf("metric %s: query is not on shadowlab_rollout_gates_pass:\n%s", m.Name, target)
					}
				default:
					t.Fatalf("metric %s: want exactly one of provider.web, provider.prometheus", m.Name)
				}
				if !regexp.MustCompile(`\{\{\s*args\.route\s*\}\}`).MatchString(target) {
					t.Errorf("metric %s: query/URL does not mention {{ args.route }}:\n%s", m.Name, target)
				}

				// Argo resolves the args as it does for an AnalysisRun; without
				// the route it refuses.
				resolved, err := analysisutil.ResolveMetricArgs(m, mustArgValues(t, at.Spec.Args, map[string]string{
					"route": route, "token": "t0ken", "shadowlab-url": "http://127.0.0.1:1",
				}))
				if err != nil {
					t.Fatalf("metric %s: resolve args: %v", m.Name, err)
				}
				rb, _ := json.Marshal(resolved)
				if strings.Contains(string(rb), "{{") || !strings.Contains(string(rb), route) {
					t.Errorf("metric %s resolved: %s", m.Name, rb)
				}
				if _, err := argValues(at.Spec.Args, map[string]string{"token": "t0ken"}); err == nil || !strings.Contains(err.Error(), "args.route") {
					t.Errorf("metric %s: without args.route Argo says %v, want an error about args.route", m.Name, err)
				}
			}
		})
	}
	if web == 0 || prom == 0 {
		t.Errorf("web metrics %d, prometheus metrics %d: want at least one of each", web, prom)
	}
}

// TestArgoVerdictWeb runs Argo's own web metric provider against a stand-in
// for serve's GET /api/v1/rollout/{route}.
func TestArgoVerdictWeb(t *testing.T) {
	m := onlyMetric(t, analysisTemplates(t, read(t, argoFile))["shadowlab-verdict"], "web")

	const token = "read-token-0123456789"
	var verdict string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/rollout/"+route {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shadowlab"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"route":%q,"stage":"canary","percent":10,"verdict":%q,
			"gates":[{"gate":"min_pairs","verdict":"pass","value":120,"threshold":100,"missing":""}],
			"tenants":[{"tenant":"acme","verdict":"pass","gates":[]}]}`, route, verdict)
	}))
	defer srv.Close()

	run := func(tok string) rollouts.Measurement {
		t.Helper()
		resolved, err := analysisutil.ResolveMetricArgs(m.metric, mustArgValues(t, m.args, map[string]string{
			"route": route, "shadowlab-url": srv.URL, "token": tok,
		}))
		if err != nil {
			t.Fatal(err)
		}
		client, err := webmetric.NewWebMetricHttpClient(*resolved)
		if err != nil {
			t.Fatal(err)
		}
		parser, err := webmetric.NewWebMetricJsonParser(*resolved)
		if err != nil {
			t.Fatal(err)
		}
		p := webmetric.NewWebMetricProvider(*log.NewEntry(log.New()), client, parser)
		return p.Run(&rollouts.AnalysisRun{}, *resolved)
	}
	for v, want := range map[string]rollouts.AnalysisPhase{
		"pass":         rollouts.AnalysisPhaseSuccessful,
		"fail":         rollouts.AnalysisPhaseFailed,
		"inconclusive": rollouts.AnalysisPhaseInconclusive,
	} {
		verdict = v
		if got := run(token); got.Phase != want {
			t.Errorf("verdict %s: phase %s (%s), want %s", v, got.Phase, got.Message, want)
		}
	}
	verdict = "pass"
	if got := run("wrong"); got.Phase != rollouts.AnalysisPhaseError {
		t.Errorf("wrong token: phase %s, want Error", got.Phase)
	}
}

// TestArgoGatesPassConditions evaluates the Prometheus metric's conditions
// with Argo's evaluator on what its Prometheus provider hands them for a
// vector: the samples' values as []float64.
func TestArgoGatesPassConditions(t *testing.T) {
	m := onlyMetric(t, analysisTemplates(t, read(t, argoFile))["shadowlab-gates-pass"], "prometheus")
	resolved, err := analysisutil.ResolveMetricArgs(m.metric, mustArgValues(t, m.args, map[string]string{"route": route}))
	if err != nil {
		t.Fatal(err)
	}
	q := resolved.Provider.Prometheus.Query
	for _, want := range []string{
		`shadowlab_rollout_gates_pass{route="` + route + `", tenant=""}`,
		`shadowlab_rollout_verdict{route="` + route + `", tenant="", verdict="fail"}`,
	} {
		if !strings.Contains(q, want) {
			t.Errorf("resolved query lacks %s:\n%s", want, q)
		}
	}
	for _, c := range []struct {
		name   string
		result []float64
		want   rollouts.AnalysisPhase
	}{
		{"pass", []float64{1}, rollouts.AnalysisPhaseSuccessful},
		{"fail", []float64{-1}, rollouts.AnalysisPhaseFailed},
		{"inconclusive", []float64{0}, rollouts.AnalysisPhaseInconclusive},
		{"no sample", []float64{}, rollouts.AnalysisPhaseInconclusive},
	} {
		got, err := evaluate.EvaluateResult(c.result, *resolved, *log.NewEntry(log.New()))
		if err != nil || got != c.want {
			t.Errorf("%s %v: phase %s, %v; want %s", c.name, c.result, got, err, c.want)
		}
	}
}

// TestStrictDecodingRejectsUnknownFields feeds mutated copies of the files
// through the same decoding as the tests above.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	flaggerData, argoData := read(t, flaggerFile), read(t, argoFile)
	cases := []struct {
		name, old, new string
		data           []byte
		decode         func([]byte) error
	}{
		{"MetricTemplate spec", "\nspec:\n", "\nspec:\n  querry: x\n", flaggerData, func(d []byte) error {
			return decodeEach(d, metricTemplateType, func() any { return &flagger.MetricTemplate{} })
		}},
		{"MetricTemplate provider", "    type: prometheus\n", "    type: prometheus\n    adress: x\n", flaggerData, func(d []byte) error {
			return decodeEach(d, metricTemplateType, func() any { return &flagger.MetricTemplate{} })
		}},
		{"MetricTemplate duplicate key", "    type: prometheus\n", "    type: prometheus\n    type: prometheus\n", flaggerData, func(d []byte) error {
			return decodeEach(d, metricTemplateType, func() any { return &flagger.MetricTemplate{} })
		}},
		{"Canary metric", "#         thresholdRange:\n", "#         tresholdRange:\n", flaggerData, func(d []byte) error {
			doc, err := canaryExcerpt(d)
			if err != nil {
				return err
			}
			return decodeStrict(doc, canaryType, &flagger.Canary{})
		}},
		{"AnalysisTemplate metric", "      successCondition:", "      succesCondition: x\n      successCondition:", argoData, func(d []byte) error {
			return decodeEach(d, analysisTemplateType, func() any { return &rollouts.AnalysisTemplate{} })
		}},
		{"AnalysisTemplate web", "          jsonPath:", "          jsonpath: x\n          jsonPath:", argoData, func(d []byte) error {
			return decodeEach(d, analysisTemplateType, func() any { return &rollouts.AnalysisTemplate{} })
		}},
		{"AnalysisTemplate kind", "kind: AnalysisTemplate", "kind: ClusterAnalysisTemplate", argoData, func(d []byte) error {
			return decodeEach(d, analysisTemplateType, func() any { return &rollouts.AnalysisTemplate{} })
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.decode(c.data); err != nil {
				t.Fatalf("the unmodified file does not decode: %v", err)
			}
			if !bytes.Contains(c.data, []byte(c.old)) {
				t.Fatalf("%q is not in the file", c.old)
			}
			mutated := bytes.Replace(c.data, []byte(c.old), []byte(c.new), 1)
			err := c.decode(mutated)
			if err == nil {
				t.Fatalf("the mutated copy (%q -> %q) decodes", c.old, c.new)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

func decodeEach(data []byte, tm metav1.TypeMeta, alloc func() any) error {
	docs := documents(data)
	if len(docs) == 0 {
		return fmt.Errorf("no document")
	}
	for i, doc := range docs {
		if err := decodeStrict(doc, tm, alloc()); err != nil {
			return fmt.Errorf("document %d: %w", i+1, err)
		}
	}
	return nil
}

type templateMetric struct {
	metric rollouts.Metric
	args   []rollouts.Argument
}

func onlyMetric(t *testing.T, at rollouts.AnalysisTemplate, provider string) templateMetric {
	t.Helper()
	if len(at.Spec.Metrics) != 1 {
		t.Fatalf("AnalysisTemplate %q: %d metrics, want 1", at.Name, len(at.Spec.Metrics))
	}
	m := at.Spec.Metrics[0]
	if (provider == "web" && m.Provider.Web == nil) || (provider == "prometheus" && m.Provider.Prometheus == nil) {
		t.Fatalf("AnalysisTemplate %q: metric %s has no %s provider", at.Name, m.Name, provider)
	}
	return templateMetric{m, at.Spec.Args}
}

// argValues is what Argo's controller makes of a template's args for a run:
// valueFrom resolved (values stands in for the cluster's Secrets too), then
// the Rollout's values over the template's defaults (Argo's MergeArgs).
func argValues(templateArgs []rollouts.Argument, values map[string]string) ([]rollouts.Argument, error) {
	var incoming []rollouts.Argument
	for _, a := range templateArgs {
		if v, ok := values[a.Name]; ok {
			incoming = append(incoming, rollouts.Argument{Name: a.Name, Value: &v})
		} else if a.ValueFrom != nil {
			return nil, fmt.Errorf("args.%s is from a secret and has no stand-in", a.Name)
		}
	}
	return analysisutil.MergeArgs(incoming, templateArgs)
}

func mustArgValues(t *testing.T, templateArgs []rollouts.Argument, values map[string]string) []rollouts.Argument {
	t.Helper()
	args, err := argValues(templateArgs, values)
	if err != nil {
		t.Fatal(err)
	}
	return args
}

func checkURL(t *testing.T, what, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Errorf("%s %q: want an http(s) URL", what, s)
	}
}

// The Prometheus queries run on Prometheus's own PromQL engine over series
// shaped like serve's /metrics, and their results go through what Flagger
// and Argo do with them.

// evalTime is when the queries run: 10m into the loaded series.
var evalTime = time.Unix(0, 0).UTC().Add(10 * time.Minute)

// promEval runs query at evalTime over the series of load (promqltest's load
// syntax, one sample every 15s, as a Prometheus scraping serve would have).
func promEval(t *testing.T, series []string, query string) promql.Vector {
	t.Helper()
	st := promqltest.LoadedStorage(t, "load 15s\n  "+strings.Join(series, "\n  ")+"\n")
	defer st.Close()
	engine := promqltest.NewTestEngine(t, false, 0, 100000)
	q, err := engine.NewInstantQuery(context.Background(), st, nil, query, evalTime)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%v\n%s", res.Err, query)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	return v
}

// gauge is a gauge series holding v over the loaded 10 minutes.
func gauge(name, labels string, v float64) string {
	return fmt.Sprintf("%s{%s} %g+0x40", name, labels, v)
}

// verdictSeries is serve's gauges for one route and tenant in a verdict
// state; pairs 0 leaves out the match rate (absent without a pair).
func verdictSeries(route, tenant, verdict string, matchRate float64, pairs int) []string {
	l := fmt.Sprintf("route=%q,tenant=%q", route, tenant)
	pass := 0.0
	if verdict == "pass" {
		pass = 1
	}
	out := []string{gauge("shadowlab_rollout_gates_pass", l, pass)}
	for _, v := range []string{"pass", "fail", "inconclusive"} {
		one := 0.0
		if v == verdict {
			one = 1
		}
		out = append(out, gauge("shadowlab_rollout_verdict", fmt.Sprintf("%s,verdict=%q", l, v), one))
	}
	out = append(out, gauge("shadowlab_rollout_pairs", l, float64(pairs)))
	if pairs > 0 {
		out = append(out, gauge("shadowlab_rollout_match_rate", l, matchRate))
	}
	return out
}

// counter is a counter series growing by perSecond over the loaded minutes.
func counter(name, labels string, perSecond float64) string {
	return fmt.Sprintf("%s{%s} 0+%gx40", name, labels, perSecond*15)
}

// flaggerValue is Flagger's Prometheus provider's reading of a result
// (providers.PrometheusProvider.RunQuery): the last sample's value; no
// sample, or NaN, is ErrNoValuesFound, which halts advancement.
func flaggerValue(v promql.Vector) (float64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	f := v[len(v)-1].F
	return f, !math.IsNaN(f)
}

// flaggerPasses is Flagger's check of a templateRef metric
// (controller.runMetricChecks): a value within thresholdRange.
func flaggerPasses(v promql.Vector, r flagger.CanaryThresholdRange) bool {
	val, ok := flaggerValue(v)
	if !ok {
		return false
	}
	return (r.Min == nil || val >= *r.Min) && (r.Max == nil || val <= *r.Max)
}

func TestFlaggerQueriesOnPrometheus(t *testing.T) {
	data := read(t, flaggerFile)
	mts := metricTemplates(t, data)
	c := canary(t, data)
	render := func(t *testing.T, name string) (string, flagger.CanaryThresholdRange) {
		t.Helper()
		for _, m := range c.Spec.Analysis.Metrics {
			if m.TemplateRef != nil && m.TemplateRef.Name == name {
				q, err := renderFlagger(mts[name].Spec.Query, flagger.MetricTemplateModel{
					Name: c.Name, Target: c.Spec.TargetRef.Name, Interval: m.Interval, Variables: m.TemplateVariables,
				})
				if err != nil {
					t.Fatal(err)
				}
				if m.TemplateVariables["route"] != route {
					t.Fatalf("the Canary excerpt's route is %q; this test loads series of %q", m.TemplateVariables["route"], route)
				}
				return q, *m.ThresholdRange
			}
		}
		t.Fatalf("the Canary excerpt does not use %s", name)
		return "", flagger.CanaryThresholdRange{}
	}

	// Another route and a tenant in the opposite state: the queries must
	// select the route as a whole.
	noise := func(verdict string) []string {
		other := map[string]string{"pass": "fail", "fail": "pass", "inconclusive": "pass"}[verdict]
		return append(verdictSeries("other", "", other, 0.5, 500), verdictSeries(route, "acme", other, 0.5, 500)...)
	}
	for _, c := range []struct {
		verdict   string
		matchRate float64
		pairs     int
		gates     bool // shadowlab-gates-pass passes
		match     bool // shadowlab-match-rate passes
	}{
		{"pass", 0.995, 150, true, true},
		{"fail", 0.90, 150, false, false},
		{"fail", 0.999, 150, false, true}, // another gate fails; the match rate alone is fine
		{"inconclusive", 1, 3, false, false},
		{"inconclusive", 0, 0, false, false},
	} {
		series := append(verdictSeries(route, "", c.verdict, c.matchRate, c.pairs), noise(c.verdict)...)
		name := fmt.Sprintf("%s/%g of %d", c.verdict, c.matchRate, c.pairs)
		t.Run(name, func(t *testing.T) {
			q, r := render(t, "shadowlab-gates-pass")
			if got := flaggerPasses(promEval(t, series, q), r); got != c.gates {
				t.Errorf("shadowlab-gates-pass passes: %v, want %v", got, c.gates)
			}
			q, r = render(t, "shadowlab-match-rate")
			if got := flaggerPasses(promEval(t, series, q), r); got != c.match {
				t.Errorf("shadowlab-match-rate passes: %v, want %v", got, c.match)
			}
		})
	}

	for _, c := range []struct {
		name   string
		series []string
		pass   bool
	}{
		{"no fallback yet", []string{counter("shadowlab_rollout_canary_requests_total", `route="checkout"`, 10)}, true},
		{"0.5%", []string{
			counter("shadowlab_rollout_canary_requests_total", `route="checkout"`, 10),
			counter("shadowlab_rollout_fallbacks_total", `route="checkout",reason="5xx"`, 0.05),
		}, true},
		{"2%", []string{
			counter("shadowlab_rollout_canary_requests_total", `route="checkout"`, 10),
			counter("shadowlab_rollout_fallbacks_total", `route="checkout",reason="5xx"`, 0.1),
			counter("shadowlab_rollout_fallbacks_total", `route="checkout",reason="reset"`, 0.1),
		}, false},
		{"no canary request in the interval", []string{
			counter("shadowlab_rollout_canary_requests_total", `route="checkout"`, 0),
		}, false},
		{"no canary request ever", nil, false},
	} {
		t.Run("fallback rate "+c.name, func(t *testing.T) {
			series := append(slices.Clone(c.series),
				counter("shadowlab_rollout_canary_requests_total", `route="other"`, 10),
				counter("shadowlab_rollout_fallbacks_total", `route="other",reason="timeout"`, 5))
			q, r := render(t, "shadowlab-fallback-rate")
			if got := flaggerPasses(promEval(t, series, q), r); got != c.pass {
				v, _ := flaggerValue(promEval(t, series, q))
				t.Errorf("passes: %v (value %g), want %v", got, v, c.pass)
			}
		})
	}
}

// TestArgoGatesPassOnPrometheus runs the Argo Prometheus metric's resolved
// query, and gives its result to Argo's evaluator as Argo's Prometheus
// provider does for a vector (processResponse: the samples' values).
func TestArgoGatesPassOnPrometheus(t *testing.T) {
	m := onlyMetric(t, analysisTemplates(t, read(t, argoFile))["shadowlab-gates-pass"], "prometheus")
	phase := func(t *testing.T, series []string, args map[string]string) rollouts.AnalysisPhase {
		t.Helper()
		resolved, err := analysisutil.ResolveMetricArgs(m.metric, mustArgValues(t, m.args, args))
		if err != nil {
			t.Fatal(err)
		}
		var result []float64
		for _, s := range promEval(t, series, resolved.Provider.Prometheus.Query) {
			result = append(result, s.F)
		}
		if result == nil {
			result = []float64{}
		}
		got, err := evaluate.EvaluateResult(result, *resolved, *log.NewEntry(log.New()))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := map[string]rollouts.AnalysisPhase{
		"pass":         rollouts.AnalysisPhaseSuccessful,
		"fail":         rollouts.AnalysisPhaseFailed,
		"inconclusive": rollouts.AnalysisPhaseInconclusive,
	}
	for verdict, w := range want {
		t.Run(verdict, func(t *testing.T) {
			other := map[string]string{"pass": "fail", "fail": "pass", "inconclusive": "fail"}[verdict]
			series := slices.Concat(
				verdictSeries(route, "", verdict, 0.99, 150),
				verdictSeries(route, "acme", other, 0.5, 150),
				verdictSeries("other", "", other, 0.5, 150),
			)
			if got := phase(t, series, map[string]string{"route": route}); got != w {
				t.Errorf("route: %s, want %s", got, w)
			}
			if got := phase(t, series, map[string]string{"route": route, "tenant": "acme"}); got != want[other] {
				t.Errorf("tenant acme (%s): %s, want %s", other, got, want[other])
			}
		})
	}
	t.Run("no series", func(t *testing.T) {
		series := verdictSeries("other", "", "pass", 1, 150)
		if got := phase(t, series, map[string]string{"route": route}); got != rollouts.AnalysisPhaseInconclusive {
			t.Errorf("%s, want Inconclusive", got)
		}
	})
}
