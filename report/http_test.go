package report

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHandler(t *testing.T) {
	r := newTestReporter(t, Config{})
	recordMix(r)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(srv.Close)

	tests := map[string]struct {
		method string // default GET
		url    string
		status int
		check  func(t *testing.T, body []byte) // optional
		error  string                          // the JSON error, for non-200
	}{
		"report": {
			url: "/api/v1/report", status: 200,
			check: func(t *testing.T, body []byte) {
				var rep Report
				mustDecode(t, body, &rep)
				var names []string
				for _, rr := range rep.Routes {
					names = append(names, rr.Route)
				}
				if d := cmp.Diff([]string{"billing", "empty", "reminders"}, names); d != "" {
					t.Errorf("routes (-want +got):\n%s", d)
				}
				if d := cmp.Diff(r.Report(), rep); d != "" {
					t.Errorf("JSON round trip (-want +got):\n%s", d)
				}
			},
		},
		"report JSON shape": {
			url: "/api/v1/report", status: 200,
			check: func(t *testing.T, body []byte) {
				var raw struct {
					GeneratedAt string                       `json:"generated_at"`
					Routes      []map[string]json.RawMessage `json:"routes"`
				}
				mustDecode(t, body, &raw)
				if raw.GeneratedAt != "2026-03-01T17:00:00Z" {
					t.Errorf("generated_at %q", raw.GeneratedAt)
				}
				keys := []string{}
				for k := range raw.Routes[0] {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				want := []string{"differences", "folded_pairs", "history", "latency", "marks", "match_rate", "noise", "outcomes", "pairs", "reasons", "route", "tenants"}
				if d := cmp.Diff(want, keys); d != "" {
					t.Errorf("route keys (-want +got):\n%s", d)
				}
				// A route with nothing compared has a null match rate and
				// empty lists, not nulls.
				empty := raw.Routes[1]
				for k, want := range map[string]string{"match_rate": "null", "differences": "[]", "noise": `[{"pattern":"$.ts","varied":40,"compared":41,"suppressed":0}]`, "pairs": "0"} {
					if got := compact(t, empty[k]); got != want {
						t.Errorf("empty route %s = %s, want %s", k, got, want)
					}
				}
				if got := compact(t, empty["outcomes"]); got != `{"ambiguous":0,"diff":0,"match":0,"primary_only":0,"shadow_only":0,"skipped":0}` {
					t.Errorf("outcomes %s", got)
				}
				if got := compact(t, raw.Routes[0]["latency"]); !regexp.MustCompile(`^\{"primary":\{"count":\d+,"p50_ms":[\d.]+,"p90_ms":[\d.]+,"p99_ms":[\d.]+,"max_ms":[\d.]+\},"shadow":\{`).MatchString(got) {
					t.Errorf("latency %s", got)
				}
			},
		},
		"one route": {
			url: "/api/v1/routes/billing", status: 200,
			check: func(t *testing.T, body []byte) {
				var rr RouteReport
				mustDecode(t, body, &rr)
				if rr.Route != "billing" || rr.Pairs != 42 {
					t.Errorf("route %q with %d pairs", rr.Route, rr.Pairs)
				}
			},
		},
		"unknown route":             {url: "/api/v1/routes/nope", status: 404, error: `route "nope": no results (not in the policy, or no pair recorded yet)`},
		"report takes no parameter": {url: "/api/v1/report?route=x", status: 400, error: "route: unknown query parameter (this endpoint takes none)"},
		"wrong method":              {method: "POST", url: "/api/v1/report", status: 405},
		"pairs": {
			url: "/api/v1/pairs", status: 200,
			check: func(t *testing.T, body []byte) {
				var got struct{ Pairs []PairRecord }
				mustDecode(t, body, &got)
				if len(got.Pairs) != 35 || got.Pairs[0].RequestID != "req-0102" {
					t.Errorf("%d pairs, first %+v", len(got.Pairs), got.Pairs[0])
				}
			},
		},
		"pairs filtered": {
			url: "/api/v1/pairs?route=billing&outcome=primary_only&limit=5", status: 200,
			check: func(t *testing.T, body []byte) {
				if got := compact(t, body); !strings.HasPrefix(got, `{"pairs":[{"id":33,"route":"billing","request_id":"req-0100","method":"GET","path":"/x","outcome":"primary_only","reason":"shadow timed out","primary_status":200,"shadow_status":0,"primary_latency_ms":3,"shadow_latency_ms":0,"at":"2026-03-01T17:01:40Z","differences":[],"difference_count":0,"evidence":false}]}`) {
					t.Errorf("body %s", got)
				}
			},
		},
		"pairs limit": {
			url: "/api/v1/pairs?limit=2", status: 200,
			check: func(t *testing.T, body []byte) {
				var got struct{ Pairs []PairRecord }
				mustDecode(t, body, &got)
				if len(got.Pairs) != 2 {
					t.Errorf("%d pairs, want 2", len(got.Pairs))
				}
			},
		},
		"pairs of an unknown route": {url: "/api/v1/pairs?route=nope", status: 200, check: func(t *testing.T, body []byte) {
			if got := compact(t, body); got != `{"pairs":[]}` {
				t.Errorf("body %s", got)
			}
		}},
		"limit zero":        {url: "/api/v1/pairs?limit=0", status: 400, error: `limit: must be an integer from 1 to 1000 (got "0")`},
		"limit too large":   {url: "/api/v1/pairs?limit=1001", status: 400, error: `limit: must be an integer from 1 to 1000 (got "1001")`},
		"limit not numeric": {url: "/api/v1/pairs?limit=ten", status: 400, error: `limit: must be an integer from 1 to 1000 (got "ten")`},
		"unknown outcome":   {url: "/api/v1/pairs?outcome=bad", status: 400, error: `outcome: must be one of match, diff, primary_only, shadow_only, ambiguous, skipped (got "bad")`},
		"unknown parameter": {url: "/api/v1/pairs?rout=billing", status: 400, error: "rout: unknown query parameter (known: route, outcome, request_id, limit)"},
		"repeated":          {url: "/api/v1/pairs?limit=1&limit=2", status: 400, error: "limit: given 2 times"},
		"bad query":         {url: "/api/v1/pairs?limit=%zz", status: 400},
		"healthz":           {url: "/healthz", status: 200, check: func(t *testing.T, body []byte) { mustEqualJSON(t, body, `{"status":"ok"}`) }},
		"metrics": {
			url: "/metrics", status: 200,
			check: func(t *testing.T, body []byte) {
				for _, want := range []string{
					`shadowlab_pairs_total{outcome="diff",route="billing"} 32`,
					`shadowlab_pairs_total{outcome="primary_only",route="billing"} 1`,
					`shadowlab_differences_total{kind="changed",pattern="$.total",route="billing"} 8`,
					`shadowlab_differences_total{kind="added",pattern="$.items[*]",route="billing"} 8`,
					`shadowlab_upstream_latency_seconds_count{route="billing",side="primary"} 41`,
					`shadowlab_upstream_latency_seconds_bucket{route="billing",side="shadow",le="0.005"}`,
					`shadowlab_match_rate{route="billing"} 0.4`,
					`shadowlab_noise_paths{route="billing"} 1`,
					`shadowlab_noise_paths{route="empty"} 1`,
					`shadowlab_report_pairs_dropped_total 0`,
				} {
					if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want) {
						t.Errorf("metrics lack %s", want)
					}
				}
				if strings.Contains(string(body), `shadowlab_match_rate{route="empty"}`) {
					t.Error("match rate exported for a route with nothing compared")
				}
				if strings.Contains(string(body), "req-0") {
					t.Error("a request id is in the metrics")
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			if tc.status >= 400 && tc.status != 405 {
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
				var e struct{ Error string }
				mustDecode(t, body, &e)
				if tc.error != "" && e.Error != tc.error {
					t.Errorf("error %q, want %q", e.Error, tc.error)
				}
				if e.Error == "" {
					t.Errorf("no error message in %s", body)
				}
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

func mustDecode(t *testing.T, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

// compact removes the indentation, keeping field order.
func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compacting %s: %v", raw, err)
	}
	return b.String()
}

func mustEqualJSON(t *testing.T, body []byte, want string) {
	t.Helper()
	if got := compact(t, body); got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}
