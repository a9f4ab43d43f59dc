package report

import (
	"bytes"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/shadowlab/shadowlab/wire"
)

func delayed(n uint64, wait time.Duration) wire.Counts {
	c := wire.Counts{Delayed: n}
	for range n {
		c.Released(wait)
	}
	return c
}

func TestAddAdmission(t *testing.T) {
	r := newTestReporter(t, Config{MaxAdmissionKeys: 2})
	r.AddAdmission(wire.ScopeGlobal, "jobs", "a", wire.Counts{Admitted: 3})
	r.AddAdmission(wire.ScopeGlobal, "jobs", "a", delayed(2, 300*time.Millisecond))
	r.AddAdmission(wire.ScopeGlobal, "jobs", "b", wire.Counts{Rejected: 1})
	r.AddAdmission(wire.ScopeGlobal, "jobs", "c", wire.Counts{Rejected: 5}) // past the cap
	r.AddAdmission(wire.ScopeGlobal, "jobs", "d", wire.Counts{FailOpen: 1}) // past the cap
	r.AddAdmission(wire.ScopeLocal, "jobs", "c", wire.Counts{Admitted: 1})  // other scope: own cap
	r.AddAdmission(wire.ScopeLocal, "jobs", "z", wire.Counts{})             // nothing: not a key

	got := r.Admission()
	want := []struct {
		scope, key        string
		adm, del, rej, fo uint64
		released          uint64
		p50               float64
	}{
		{"global", "(other)", 0, 0, 5, 1, 0, 0},
		{"global", "a", 3, 2, 0, 0, 2, 275}, // both in (250, 300] ms: the median half-way
		{"global", "b", 0, 0, 1, 0, 0, 0},
		{"local", "c", 1, 0, 0, 0, 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Scope != w.scope || g.Key != w.key || g.Admitted != w.adm || g.Delayed != w.del || g.Rejected != w.rej ||
			g.FailOpen != w.fo || g.Released != w.released || g.DelayP50Ms != w.p50 {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	if rep := r.Report(); len(rep.Admission) != 4 {
		t.Errorf("Report().Admission has %d rows", len(rep.Admission))
	}
}

func TestAdmissionSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	r := newTestReporter(t, Config{DBPath: path})
	r.AddAdmission(wire.ScopeLocal, "jobs", "", delayed(4, 2*time.Second))
	r.AddAdmission(wire.ScopeLocal, "jobs", "", wire.Counts{Abandoned: 1})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := newTestReporter(t, Config{DBPath: path})
	r2.AddAdmission(wire.ScopeLocal, "jobs", "", wire.Counts{Admitted: 1})
	got := r2.Admission()
	if len(got) != 1 || got[0].Delayed != 4 || got[0].Abandoned != 1 || got[0].Admitted != 1 || got[0].Released != 4 || got[0].DelayMaxMs != 2000 {
		t.Fatalf("after restart: %+v", got)
	}
}

func pluginLine(route, key string, admitted int) string {
	return `{"route":"` + route + `","key":"` + key + `","admitted":` + itoa(admitted) +
		`,"delayed":2,"rejected":0,"observed_delay":0,"observed_reject":0,"abandoned":0,"fail_open":0,` +
		`"delay_buckets":[44,2],"delay_sum_ms":3000}` // bucket 44: (2 s, 2.5 s]
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLocalAdmissionEndpoint(t *testing.T) {
	r := newTestReporter(t, Config{})
	useLocalRoutes(t, r, "jobs")
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	post := func(body string) (int, string) {
		res, err := http.Post(srv.URL+"/api/v1/admission/local", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for name, tc := range map[string]struct{ body, err string }{
		"empty":           {"", "no report lines"},
		"not json":        {pluginLine("jobs", "", 1) + "\nnope\n", "line 2: expected '{' at offset 0"},
		"missing field":   {`{"route":"jobs","key":""}`, "line 1: missing admitted, delayed"},
		"unknown field":   {strings.Replace(pluginLine("jobs", "", 1), `"key"`, `"extra":1,"key"`, 1), `line 1: unknown field \"extra\"`},
		"odd buckets":     {strings.Replace(pluginLine("jobs", "", 1), "[44,2]", "[44]", 1), "line 1: delay_buckets must be pairs of bucket index and count"},
		"empty route":     {pluginLine("", "", 1), "line 1: route is empty"},
		"negative number": {strings.Replace(pluginLine("jobs", "", 1), `"rejected":0`, `"rejected":-1`, 1), "line 1: rejected must be a whole number"},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(tc.body)
			if code != 400 || !strings.Contains(body, tc.err) {
				t.Fatalf("got %d %s, want 400 with %q", code, body, tc.err)
			}
		})
	}
	if len(r.Admission()) != 0 {
		t.Fatalf("a refused report added counts: %+v", r.Admission())
	}
	if code, body := post(pluginLine("jobs", "t1", 1) + "\n" + pluginLine("jobs", "t2", 3) + "\n"); code != 204 {
		t.Fatalf("got %d %s", code, body)
	}
	got := r.Admission()
	if len(got) != 2 || got[0].Scope != "local" || got[0].Key != "t1" || got[1].Admitted != 3 || got[1].DelayMaxMs != 2500 {
		t.Fatalf("got %+v", got)
	}

	// Metrics and the text report.
	if n := testutil.CollectAndCount(r.Registry(), "shadowlab_admission_requests_total"); n != 14 {
		t.Errorf("%d admission request series, want 2 keys x 7 outcomes", n)
	}
	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`shadowlab_admission_requests_total{key="t2",outcome="admitted",route="jobs",scope="local"} 3`,
		`shadowlab_admission_delay_seconds_bucket{key="t1",route="jobs",scope="local",le="2.5"} 2`,
		`shadowlab_admission_plugin_reports_total 1`,
		`shadowlab_admission_plugin_report_errors_total 7`,
		`shadowlab_admission_metric_keys_folded 0`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var out bytes.Buffer
	if err := Render(&out, r.Report(), RenderOptions{Route: "jobs"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "admission (per scope, route and key)") || !strings.Contains(out.String(), "2.25s") {
		t.Errorf("render:\n%s", out.String())
	}
}

func TestAdmissionMetricKeysCapped(t *testing.T) {
	r := newTestReporter(t, Config{MaxMetricKeys: 2})
	for _, k := range []string{"a", "b", "c", "d"} {
		r.AddAdmission(wire.ScopeGlobal, "jobs", k, wire.Counts{Admitted: 1})
	}
	if n := testutil.CollectAndCount(r.Registry(), "shadowlab_admission_requests_total"); n != 3*7 {
		t.Errorf("%d series, want 3 keys (a, (other), b... capped at 2 + other) x 7", n)
	}
}

// A plugin report may only count routes with local admission in the policy
// in use: invented routes, routes without admission and reports before a
// policy are dropped and counted; counts never wrap; the keys of a route
// are capped.
func TestLocalAdmissionBounded(t *testing.T) {
	r := newTestReporter(t, Config{MaxAdmissionKeys: 3, MaxMetricKeys: 2})
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)
	post := func(body string) int {
		res, err := http.Post(srv.URL+"/api/v1/admission/local", "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := post(pluginLine("jobs", "", 1)); code != 204 {
		t.Fatalf("before a policy: %d", code)
	}
	if got := r.Admission(); len(got) != 0 {
		t.Fatalf("a report before any policy was counted: %+v", got)
	}
	useLocalRoutes(t, r, "jobs")
	var body strings.Builder
	for i := range 1000 {
		body.WriteString(pluginLine("invented-"+itoa(i), "", 1) + "\n")
	}
	body.WriteString(pluginLine("plain", "", 1) + "\n")
	for i := range 10 {
		body.WriteString(pluginLine("jobs", "k"+itoa(i), 1) + "\n")
	}
	huge := strings.Replace(pluginLine("jobs", "k0", 1), `"admitted":1`, `"admitted":18446744073709551615`, 1)
	body.WriteString(huge + "\n" + huge + "\n")
	if code := post(body.String()); code != 204 {
		t.Fatalf("got %d", code)
	}
	got := r.Admission()
	if len(got) != 4 {
		t.Fatalf("%d admission rows, want 3 keys of jobs + (other): %+v", len(got), got)
	}
	for _, ar := range got {
		if ar.Route != "jobs" {
			t.Errorf("route %q counted", ar.Route)
		}
		if ar.Key == "k0" && ar.Admitted != math.MaxUint64 {
			t.Errorf("k0 admitted %d, want saturated at MaxUint64", ar.Admitted)
		}
		if ar.Key == OtherKey && ar.Admitted != 7 {
			t.Errorf("(other) admitted %d, want 7", ar.Admitted)
		}
	}
	if n := testutil.ToFloat64(r.metrics.admissionLinesDropped.WithLabelValues(admissionNotLocal)); n != 1001+1 {
		t.Errorf("%v lines dropped, want 1002 (1 before the policy, 1000 invented, 1 without admission)", n)
	}
	if n := testutil.CollectAndCount(r.Registry(), "shadowlab_admission_requests_total"); n != 2*7 {
		t.Errorf("%d series, want MaxMetricKeys (2) key labels x 7 outcomes", n)
	}
	if n := testutil.CollectAndCount(r.Registry(), "shadowlab_admission_metric_keys_folded"); n != 1 {
		t.Errorf("no folded keys gauge")
	}
	var out bytes.Buffer
	if err := Render(&out, r.Report(), RenderOptions{Route: "jobs"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "18 446 744 073 709 551 615") {
		t.Errorf("render of a saturated count:\n%s", out.String())
	}
}

// Two replicas sharing a global budget, each with its own Envoys' local
// counts: per-replica and merged rows for the global scope, merged rows
// for the local scope, percentiles from the merged histogram.
func TestMergeAdmission(t *testing.T) {
	row := func(scope, route string, c wire.Counts) AdmissionReport {
		return admissionReport(admissionKey{scope, route, ""}, c)
	}
	a := []AdmissionReport{row("global", "jobs", delayed(3, 2*time.Second)), row("local", "jobs", wire.Counts{Admitted: 5})}
	b := []AdmissionReport{row("global", "jobs", delayed(1, 8*time.Second)), row("local", "jobs", wire.Counts{Admitted: 2})}
	got := MergeAdmission(map[string][]AdmissionReport{"10.0.0.1:18080": a, "10.0.0.2:18080": b})
	var names []string
	for _, r := range got {
		names = append(names, r.Scope+"/"+r.Replica)
	}
	want := []string{"global/10.0.0.1:18080", "global/10.0.0.2:18080", "global/", "local/"}
	if !slices.Equal(names, want) {
		t.Fatalf("rows %v, want %v", names, want)
	}
	if m := got[2]; m.Delayed != 4 || m.Released != 4 || m.DelayMaxMs != 8000 || m.DelayP50Ms < 1800 || m.DelayP50Ms > 2000 {
		t.Errorf("merged global row: %+v", m)
	}
	if m := got[3]; m.Admitted != 7 {
		t.Errorf("merged local row: %+v", m)
	}
	var out bytes.Buffer
	if err := Render(&out, Report{Admission: got}, RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"replica", "10.0.0.1:18080", " all "} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("render lacks %q:\n%s", s, out.String())
		}
	}
}
