package report

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/compare"
)

func noise(patterns ...string) []compare.NoisePath {
	out := make([]compare.NoisePath, len(patterns))
	for i, p := range patterns {
		out[i] = compare.NoisePath{Pattern: p, Varied: 40, Compared: 41}
	}
	return out
}

// The pairs of the re-classification cases: 3 with only $.generated_at, 2
// with $.generated_at and $.total, 1 identical.
func reclassifyPairs() []Pair {
	gen := changed("$.generated_at", `"17:00:01"`, `"17:00:02"`)
	total := changed("$.total", "10.5", "10.51")
	return []Pair{
		comparedPair("billing", 1, gen),
		comparedPair("billing", 2, gen),
		comparedPair("billing", 3, gen),
		comparedPair("billing", 4, gen, total),
		comparedPair("billing", 5, total, gen),
		comparedPair("billing", 6),
	}
}

func TestReclassification(t *testing.T) {
	tests := map[string]struct {
		before     [][]compare.NoisePath // SetNoise calls before the pairs
		after      [][]compare.NoisePath // SetNoise calls after them
		match      int
		diff       int
		diffs      map[string]int
		suppressed map[string]int
	}{
		"no noise": {
			match: 1, diff: 5,
			diffs:      map[string]int{"$.generated_at changed": 5, "$.total changed": 2},
			suppressed: map[string]int{},
		},
		"noise learned after the pairs": {
			after: [][]compare.NoisePath{noise("$.generated_at")},
			match: 4, diff: 2,
			diffs:      map[string]int{"$.total changed": 2},
			suppressed: map[string]int{"$.generated_at": 3},
		},
		"noise known before the pairs": {
			before: [][]compare.NoisePath{noise("$.generated_at")},
			match:  4, diff: 2,
			diffs:      map[string]int{"$.total changed": 2},
			suppressed: map[string]int{"$.generated_at": 3},
		},
		"noise replaced": {
			before: [][]compare.NoisePath{noise("$.generated_at")},
			after:  [][]compare.NoisePath{noise("$.total")},
			match:  1, diff: 5,
			diffs:      map[string]int{"$.generated_at changed": 5},
			suppressed: map[string]int{"$.total": 0},
		},
		"everything noise": {
			after: [][]compare.NoisePath{noise("$.total", "$.generated_at")},
			match: 6, diff: 0,
			diffs:      map[string]int{},
			suppressed: map[string]int{"$.generated_at": 5, "$.total": 2},
		},
		"noise withdrawn": {
			after: [][]compare.NoisePath{noise("$.generated_at"), nil},
			match: 1, diff: 5,
			diffs:      map[string]int{"$.generated_at changed": 5, "$.total changed": 2},
			suppressed: map[string]int{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := newTestReporter(t, Config{})
			for _, n := range tc.before {
				r.SetNoise("billing", n)
			}
			for _, p := range reclassifyPairs() {
				r.Record(p)
			}
			for _, n := range tc.after {
				r.SetNoise("billing", n)
			}
			rr := mustRoute(t, r, "billing")
			if rr.Outcomes[Match] != tc.match || rr.Outcomes[Diff] != tc.diff || rr.Pairs != 6 {
				t.Errorf("pairs %d, match %d, diff %d; want 6, %d, %d", rr.Pairs, rr.Outcomes[Match], rr.Outcomes[Diff], tc.match, tc.diff)
			}
			if len(rr.Outcomes) != 6 {
				t.Errorf("outcomes %v: want all six keys", rr.Outcomes)
			}
			wantRate := float64(tc.match) / 6
			if rr.MatchRate == nil || *rr.MatchRate != wantRate {
				t.Errorf("match rate %v, want %v", rr.MatchRate, wantRate)
			}
			if d := cmp.Diff(tc.diffs, counts(rr)); d != "" {
				t.Errorf("differences (-want +got):\n%s", d)
			}
			gotSup := map[string]int{}
			for _, n := range rr.Noise {
				gotSup[n.Pattern] = n.Suppressed
			}
			if d := cmp.Diff(tc.suppressed, gotSup); d != "" {
				t.Errorf("suppressed (-want +got):\n%s", d)
			}
		})
	}
}

func TestMatchRateWithoutComparedPairs(t *testing.T) {
	r := newTestReporter(t, Config{})
	r.Record(otherPair("billing", 1, PrimaryOnly, "shadow timed out"))
	r.Record(otherPair("billing", 2, PrimaryOnly, ""))
	r.Record(otherPair("billing", 3, Outcome("bogus"), ""))
	rr := mustRoute(t, r, "billing")
	if rr.MatchRate != nil {
		t.Errorf("match rate %v, want nil", *rr.MatchRate)
	}
	want := map[Outcome]map[string]int{
		PrimaryOnly: {"shadow timed out": 1, unspecifiedReason: 1},
		Skipped:     {`unknown outcome "bogus"`: 1},
	}
	if d := cmp.Diff(want, rr.Reasons); d != "" {
		t.Errorf("reasons (-want +got):\n%s", d)
	}
}

func TestCaps(t *testing.T) {
	a, b, c, d := changed("$.a", "1", "2"), changed("$.b", "1", "2"), changed("$.c", "1", "2"), changed("$.d", "1", "2")
	tests := map[string]struct {
		cfg   Config
		pairs []Pair
		noise []compare.NoisePath
		check func(t *testing.T, r *Reporter, rr RouteReport)
	}{
		"patterns past the cap count as other": {
			cfg:   Config{MaxPatternsPerRoute: 2},
			pairs: []Pair{comparedPair("r", 1, a), comparedPair("r", 2, b), comparedPair("r", 3, c), comparedPair("r", 4, c, d), comparedPair("r", 5, a)},
			check: func(t *testing.T, r *Reporter, rr RouteReport) {
				want := map[string]int{"$.a changed": 2, "$.b changed": 1, "other changed": 2}
				if d := cmp.Diff(want, counts(rr)); d != "" {
					t.Errorf("differences (-want +got):\n%s", d)
				}
				// The sample of "other" names the concrete path.
				for _, pr := range rr.Differences {
					if pr.Pattern == OtherPattern && pr.Samples[0].Path != "$.c" {
						t.Errorf("other's first sample is at %q, want $.c", pr.Samples[0].Path)
					}
				}
			},
		},
		"signatures past the cap fold and stay diffs": {
			cfg:   Config{MaxSignatures: 3},
			pairs: []Pair{comparedPair("r", 1), comparedPair("r", 2, a), comparedPair("r", 3, b), comparedPair("r", 4, a, b), comparedPair("r", 5, c), comparedPair("r", 6, a)},
			noise: noise("$.a", "$.b", "$.c"),
			check: func(t *testing.T, r *Reporter, rr RouteReport) {
				// {}, {a}, {b} are kept and re-classified; {a,b} and {c} folded.
				if rr.Outcomes[Match] != 4 || rr.Outcomes[Diff] != 2 || rr.FoldedPairs != 2 {
					t.Errorf("match %d diff %d folded %d; want 4, 2, 2", rr.Outcomes[Match], rr.Outcomes[Diff], rr.FoldedPairs)
				}
				if len(rr.Differences) != 0 {
					t.Errorf("differences %v: noise patterns must stay hidden", rr.Differences)
				}
				r.SetNoise("r", nil)
				rr = mustRoute(t, r, "r")
				want := map[string]int{"$.a changed": 3, "$.b changed": 2, "$.c changed": 1}
				if d := cmp.Diff(want, counts(rr)); d != "" {
					t.Errorf("differences without noise (-want +got):\n%s", d)
				}
			},
		},
		"first samples only": {
			cfg:   Config{MaxSamplesPerPath: 2},
			pairs: []Pair{comparedPair("r", 1, a), comparedPair("r", 2, a), comparedPair("r", 3, a)},
			check: func(t *testing.T, r *Reporter, rr RouteReport) {
				var ids []string
				for _, s := range rr.Differences[0].Samples {
					ids = append(ids, s.RequestID)
				}
				if d := cmp.Diff([]string{"req-0001", "req-0002"}, ids); d != "" {
					t.Errorf("sample ids (-want +got):\n%s", d)
				}
			},
		},
		"one count and sample per pattern and pair": {
			pairs: []Pair{comparedPair("r", 1,
				compare.Difference{Path: "$.items[0].price", Pattern: "$.items[*].price", Kind: compare.Changed, Primary: "1", Shadow: "2"},
				compare.Difference{Path: "$.items[3].price", Pattern: "$.items[*].price", Kind: compare.Changed, Primary: "3", Shadow: "4"})},
			check: func(t *testing.T, r *Reporter, rr RouteReport) {
				want := []PathReport{{Pattern: "$.items[*].price", Kind: compare.Changed, Count: 1, Samples: []Sample{
					{RequestID: "req-0001", Path: "$.items[0].price", Primary: "1", Shadow: "2", At: t0.Add(time.Second)},
				}}}
				if d := cmp.Diff(want, rr.Differences); d != "" {
					t.Errorf("differences (-want +got):\n%s", d)
				}
			},
		},
		"metric pattern labels past the cap are other": {
			cfg:   Config{MaxMetricPatterns: 2},
			pairs: []Pair{comparedPair("r", 1, a), comparedPair("r", 2, b), comparedPair("r", 3, c), comparedPair("r", 4, d), comparedPair("r", 5, a), comparedPair("x", 6, d)},
			check: func(t *testing.T, r *Reporter, rr RouteReport) {
				m := r.metrics.differences
				for _, tc := range []struct {
					route, pattern string
					want           float64
				}{{"r", "$.a", 2}, {"r", "$.b", 1}, {"r", OtherPattern, 2}, {"x", "$.d", 1}} {
					if got := testutil.ToFloat64(m.WithLabelValues(tc.route, tc.pattern, "changed")); got != tc.want {
						t.Errorf("differences_total{route=%s,pattern=%s} = %v, want %v", tc.route, tc.pattern, got, tc.want)
					}
				}
				if n := testutil.CollectAndCount(m); n != 4 {
					t.Errorf("%d differences_total series, want 4", n)
				}
				// The report itself keeps every pattern.
				if n := len(rr.Differences); n != 4 {
					t.Errorf("%d differences in the report, want 4", n)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := newTestReporter(t, tc.cfg)
			for _, p := range tc.pairs {
				r.Record(p)
			}
			if tc.noise != nil {
				r.SetNoise("r", tc.noise)
			}
			tc.check(t, r, mustRoute(t, r, "r"))
		})
	}
}

func TestConfigRefusesNegatives(t *testing.T) {
	_, err := New(Config{MaxSamplesPerPath: -1, FlushInterval: -1}, nil)
	if err == nil {
		t.Fatal("New accepted negative limits")
	}
	for _, want := range []string{"MaxSamplesPerPath", "FlushInterval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestReset(t *testing.T) {
	tests := map[string]struct {
		route string
		want  []string
	}{
		"one route":  {route: "a", want: []string{"b"}},
		"all routes": {route: "", want: []string{}},
		"unknown":    {route: "zzz", want: []string{"a", "b"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := t.TempDir() + "/report.db"
			r := newTestReporter(t, Config{DBPath: path})
			for i, route := range []string{"a", "b", "a"} {
				r.Record(comparedPair(route, i, changed("$.x", "1", "2")))
				r.Record(otherPair(route, 10+i, PrimaryOnly, "timeout"))
			}
			r.SetNoise("a", noise("$.y"))
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := r.Reset(tc.route); err != nil {
				t.Fatal(err)
			}
			names := func(rep Report) []string {
				out := []string{}
				for _, rr := range rep.Routes {
					out = append(out, rr.Route)
				}
				return out
			}
			if d := cmp.Diff(tc.want, names(r.Report())); d != "" {
				t.Errorf("routes after reset (-want +got):\n%s", d)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			r2 := newTestReporter(t, Config{DBPath: path})
			if d := cmp.Diff(tc.want, names(r2.Report())); d != "" {
				t.Errorf("routes after reopening (-want +got):\n%s", d)
			}
			pairs, err := r2.Pairs(t.Context(), PairsQuery{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, p := range pairs {
				got[p.Route] = true
			}
			for route := range got {
				if !strings.Contains(strings.Join(tc.want, ","), route) {
					t.Errorf("recent pairs of reset route %q survive", route)
				}
			}
			// A reset route records afresh.
			r2.Record(comparedPair("a", 99))
			if rr := mustRoute(t, r2, "a"); rr.Pairs != 1 && tc.route != "zzz" {
				t.Errorf("route a after reset has %d pairs, want 1", rr.Pairs)
			}
		})
	}
}

func TestQueueFullDropsAndCounts(t *testing.T) {
	r := newTestReporter(t, Config{QueueSize: 2})
	for i := range 5 {
		r.Record(otherPair("r", i, ShadowOnly, "primary reset"))
	}
	if got := testutil.ToFloat64(r.metrics.dropped); got != 3 {
		t.Errorf("dropped %v, want 3", got)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	pairs, err := r.Pairs(t.Context(), PairsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 2 {
		t.Errorf("%d pairs stored, want 2", len(pairs))
	}
	// The aggregates count every pair whatever the queue did.
	if rr := mustRoute(t, r, "r"); rr.Outcomes[ShadowOnly] != 5 {
		t.Errorf("shadow_only %d, want 5", rr.Outcomes[ShadowOnly])
	}
}

func TestRecentPairs(t *testing.T) {
	gen := changed("$.generated_at", "1", "2")
	total := changed("$.total", "1", "2")
	tests := map[string]struct {
		query PairsQuery
		want  []string // request id and outcome
	}{
		"newest first, bounded by MaxRecentPairs": {
			query: PairsQuery{},
			want:  []string{"req-0006 primary_only", "req-0005 diff", "req-0004 match"},
		},
		"limit":                 {query: PairsQuery{Limit: 1}, want: []string{"req-0006 primary_only"}},
		"diff after noise":      {query: PairsQuery{Outcome: Diff}, want: []string{"req-0005 diff"}},
		"re-classified matches": {query: PairsQuery{Outcome: Match}, want: []string{"req-0004 match"}},
		"other route":           {query: PairsQuery{Route: "nope"}, want: nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := newTestReporter(t, Config{MaxRecentPairs: 3})
			r.Record(otherPair("r", 1, Skipped, "too large"))
			r.Record(comparedPair("r", 2)) // a match: not stored
			r.Record(comparedPair("r", 3, total))
			r.Record(comparedPair("r", 4, gen))
			r.Record(comparedPair("r", 5, gen, total))
			r.Record(otherPair("r", 6, PrimaryOnly, "timeout"))
			r.SetNoise("r", noise("$.generated_at"))
			r.Record(comparedPair("r", 7, gen)) // noise already: a match, not stored
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			pairs, err := r.Pairs(t.Context(), tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pairs {
				got = append(got, p.RequestID+" "+string(p.Outcome))
				for _, d := range p.Differences {
					if d.Noise != (d.Pattern == "$.generated_at") {
						t.Errorf("%s: difference %s noise %v", p.RequestID, d.Pattern, d.Noise)
					}
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("pairs (-want +got):\n%s", d)
			}
		})
	}
}

func TestSignatureEncoding(t *testing.T) {
	tests := map[string][]patKey{
		"none":     nil,
		"one":      {{"$.total", compare.Changed}},
		"odd keys": {{"$.b", compare.Removed}, {`$["a:1"]`, compare.Added}, {"header:x-12", compare.Header}},
	}
	for name, keys := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := decodeSignature(encodeSignature(keys))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(keys, got, cmp.AllowUnexported(patKey{})); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		})
	}
	for _, bad := range []string{"x", "3:ab", "7:$.total", "-1:", "2:$.7:changed1:$.7:changed"} {
		if _, err := decodeSignature(bad); err == nil {
			t.Errorf("decodeSignature(%q) accepted", bad)
		}
	}
}

func TestClosed(t *testing.T) {
	r := newTestReporter(t, Config{})
	r.Record(comparedPair("r", 1))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r.Record(comparedPair("r", 2)) // ignored, no panic
	r.SetNoise("r", noise("$.a"))
	for name, err := range map[string]error{"Flush": r.Flush(), "Reset": r.Reset("r"), "Close": r.Close()} {
		want := ErrClosed
		if name == "Close" {
			want = nil
		}
		if !errors.Is(err, want) && err != want {
			t.Errorf("%s after Close: %v, want %v", name, err, want)
		}
	}
	if rr := mustRoute(t, r, "r"); rr.Pairs != 1 {
		t.Errorf("%d pairs after Close, want 1", rr.Pairs)
	}
}

func BenchmarkRecord(b *testing.B) {
	r, err := New(Config{FlushInterval: time.Hour}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	diffs := []compare.Difference{changed("$.generated_at", "1", "2"), changed("$.total", "1", "2"), changed("$.items[3].price", "1", "2")}
	r.SetNoise("r", noise("$.generated_at"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			p := comparedPair("r", i, diffs[:i%4]...)
			r.Record(p)
		}
	})
}

// TestNoiseByKind: a pattern learned as noise for changing values still
// reports the field going missing.
func TestNoiseByKind(t *testing.T) {
	r := newTestReporter(t, Config{})
	removed := compare.Difference{Path: "$.ts", Pattern: "$.ts", Kind: compare.Removed, Primary: `"x"`}
	r.Record(comparedPair("r", 1, changed("$.ts", `"a"`, `"b"`)))
	r.Record(comparedPair("r", 2, removed))
	r.SetNoise("r", []compare.NoisePath{{Pattern: "$.ts", Varied: 5, Compared: 5, Kinds: []compare.Kind{compare.Changed}}})
	rr := mustRoute(t, r, "r")
	if rr.Outcomes[Match] != 1 || rr.Outcomes[Diff] != 1 {
		t.Errorf("outcomes %v: the changed value is noise, the missing field is not", rr.Outcomes)
	}
	if got := counts(rr); len(got) != 1 || got["$.ts removed"] != 1 {
		t.Errorf("differences %v, want only $.ts removed once", got)
	}
}

func TestMarksExplainedNotCounted(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "marks.db")
	r := newTestReporter(t, Config{DBPath: db})
	mark := compare.Difference{Path: "$.headers.X-Shadowlab-Shadow", Pattern: "$.headers.X-Shadowlab-Shadow", Kind: compare.Added, Shadow: `"1"`}
	for i := range 3 {
		r.Record(Pair{Route: "r", RequestID: strconv.Itoa(i), Outcome: Match, Marks: []compare.Difference{mark, mark}, At: time.Unix(1, 0)})
	}
	rr := r.Report().Routes[0]
	if rr.Outcomes[Match] != 3 || len(rr.Differences) != 0 {
		t.Fatalf("marks must not be differences: %+v", rr)
	}
	if len(rr.Marks) != 1 || rr.Marks[0] != (MarkReport{Pattern: mark.Pattern, Count: 3}) {
		t.Fatalf("marks %+v", rr.Marks)
	}
	var out bytes.Buffer
	if err := Render(&out, r.Report(), RenderOptions{}); err != nil || !strings.Contains(out.String(), "marks echoed by the shadow") {
		t.Fatalf("render (%v):\n%s", err, out.String())
	}
	require.NoError(t, r.Close())
	r2 := newTestReporter(t, Config{DBPath: db})
	if got := r2.Report().Routes[0].Marks; len(got) != 1 || got[0].Count != 3 {
		t.Fatalf("after a restart: %+v", got)
	}
}
