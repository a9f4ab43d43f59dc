package compare

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/shadowlab/shadowlab/wire"
)

type observation struct {
	side, fp string
	resp     Response
}

var valueKinds = []Kind{Changed, TypeChanged}

func obs(side, fp, body string) observation { return observation{side, fp, jsonResp(body)} }

func TestLearner(t *testing.T) {
	tests := map[string]struct {
		cfg   LearnerConfig
		rules Spec
		seen  []observation
		want  []NoisePath
		stats LearnerStats
	}{
		"varying field is noise, stable field is not": {
			seen: []observation{
				obs("primary", "a", `{"ts":1,"v":1}`),
				obs("primary", "a", `{"ts":2,"v":1}`),
				obs("primary", "a", `{"ts":3,"v":1}`),
				obs("primary", "a", `{"ts":4,"v":1}`),
			},
			want:  []NoisePath{{Pattern: "$.ts", Varied: 3, Compared: 3, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 4, Comparisons: 3, Patterns: 3},
		},
		"too few comparisons": {
			seen: []observation{
				obs("primary", "a", `{"ts":1}`),
				obs("primary", "a", `{"ts":2}`),
				obs("primary", "a", `{"ts":3}`),
			},
			stats: LearnerStats{Observed: 3, Comparisons: 2, Patterns: 2},
		},
		"below the threshold": {
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "a", `{"v":2}`),
				obs("primary", "a", `{"v":2}`),
				obs("primary", "a", `{"v":2}`),
			},
			stats: LearnerStats{Observed: 4, Comparisons: 3, Patterns: 2},
		},
		"threshold is configurable": {
			cfg: LearnerConfig{Threshold: 0.3},
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "a", `{"v":2}`),
				obs("primary", "a", `{"v":2}`),
				obs("primary", "a", `{"v":2}`),
			},
			want:  []NoisePath{{Pattern: "$.v", Varied: 1, Compared: 3, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 4, Comparisons: 3, Patterns: 2},
		},
		"different fingerprints are never compared": {
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "b", `{"v":2}`),
				obs("primary", "c", `{"v":3}`),
				obs("primary", "d", `{"v":4}`),
			},
			stats: LearnerStats{Observed: 4, Patterns: 1},
		},
		"sides are never compared with each other": {
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("shadow", "a", `{"v":2}`),
				obs("primary", "a", `{"v":1}`),
				obs("shadow", "a", `{"v":2}`),
			},
			stats: LearnerStats{Observed: 4, Comparisons: 2, Patterns: 2},
		},
		"the primary decides when it knows": {
			cfg: LearnerConfig{MinComparisons: 2},
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "a", `{"v":1}`),
				obs("primary", "a", `{"v":1}`),
				obs("shadow", "a", `{"v":1}`),
				obs("shadow", "a", `{"v":2}`),
				obs("shadow", "a", `{"v":3}`),
			},
			stats: LearnerStats{Observed: 6, Comparisons: 4, Patterns: 2},
		},
		"the shadow decides what the primary has not seen enough of": {
			cfg: LearnerConfig{MinComparisons: 2},
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "a", `{"v":1}`),
				obs("shadow", "a", `{"v":1}`),
				obs("shadow", "a", `{"v":2}`),
				obs("shadow", "a", `{"v":3}`),
			},
			want:  []NoisePath{{Pattern: "$.v", Varied: 2, Compared: 2, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 5, Comparisons: 3, Patterns: 2},
		},
		"array patterns learn from any index": {
			cfg: LearnerConfig{MinComparisons: 2},
			seen: []observation{
				obs("primary", "a", `{"items":[{"id":1,"at":1},{"id":2,"at":1}]}`),
				obs("primary", "a", `{"items":[{"id":1,"at":1},{"id":2,"at":2}]}`),
				obs("primary", "a", `{"items":[{"id":1,"at":3},{"id":2,"at":2}]}`),
			},
			want:  []NoisePath{{Pattern: "$.items[*].at", Varied: 2, Compared: 2, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 3, Comparisons: 2, Patterns: 5},
		},
		"presence varies": {
			cfg: LearnerConfig{MinComparisons: 2},
			seen: []observation{
				obs("primary", "a", `{"warning":{"code":1}}`),
				obs("primary", "a", `{}`),
				obs("primary", "a", `{"warning":{"code":1}}`),
			},
			// the member varies; what is inside it was only ever seen on one side
			want:  []NoisePath{{Pattern: "$.warning", Varied: 2, Compared: 2, Kinds: []Kind{Added, Removed}}},
			stats: LearnerStats{Observed: 3, Comparisons: 2, Patterns: 3},
		},
		"ignored paths are not tracked": {
			cfg:   LearnerConfig{MinComparisons: 1},
			rules: Spec{Ignore: []string{"$.ts"}},
			seen: []observation{
				obs("primary", "a", `{"ts":1}`),
				obs("primary", "a", `{"ts":2}`),
			},
			stats: LearnerStats{Observed: 2, Comparisons: 1, Patterns: 1},
		},
		"tolerance applies": {
			cfg:   LearnerConfig{MinComparisons: 1},
			rules: Spec{NumericTolerance: 0.1},
			seen: []observation{
				obs("primary", "a", `{"x":1.0}`),
				obs("primary", "a", `{"x":1.05}`),
			},
			stats: LearnerStats{Observed: 2, Comparisons: 1, Patterns: 2},
		},
		"unordered arrays apply": {
			cfg:   LearnerConfig{MinComparisons: 1},
			rules: Spec{UnorderedArrays: []string{"$.tags"}},
			seen: []observation{
				obs("primary", "a", `{"tags":["a","b"]}`),
				obs("primary", "a", `{"tags":["b","a"]}`),
			},
			stats: LearnerStats{Observed: 2, Comparisons: 1, Patterns: 3},
		},
		"different statuses are not compared": {
			cfg: LearnerConfig{MinComparisons: 1},
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				{"primary", "a", Response{Status: 500, Headers: map[string]string{"content-type": "application/json"}, Body: []byte(`{"v":2}`)}},
			},
			stats: LearnerStats{Observed: 2, Patterns: 1},
		},
		"oversized bodies are not remembered": {
			cfg: LearnerConfig{MinComparisons: 1, MaxBodyBytes: 10},
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "a", `{"v":2,"pad":"xxxxxxxx"}`),
				obs("primary", "a", `{"v":3}`),
			},
			want:  []NoisePath{{Pattern: "$.v", Varied: 1, Compared: 1, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 3, Comparisons: 1, Oversized: 1, Patterns: 2},
		},
		"least recently used fingerprints are forgotten": {
			cfg: LearnerConfig{MinComparisons: 1, MaxFingerprints: 2},
			seen: []observation{
				obs("primary", "a", `{"v":1}`),
				obs("primary", "b", `{"v":1}`),
				obs("primary", "c", `{"v":1}`), // forgets a
				obs("primary", "a", `{"v":2}`), // forgets b
				obs("primary", "c", `{"v":3}`), // compared with c
			},
			want:  []NoisePath{{Pattern: "$.v", Varied: 1, Compared: 1, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 5, Comparisons: 1, Patterns: 2},
		},
		"headers the rules compare can be noise": {
			cfg:   LearnerConfig{MinComparisons: 2},
			rules: Spec{Headers: []string{"date", "etag", "x-absent"}},
			seen: []observation{
				{"primary", "a", Response{Status: 200, Headers: map[string]string{"date": "1", "etag": "e"}}},
				{"primary", "a", Response{Status: 200, Headers: map[string]string{"date": "2", "etag": "e"}}},
				{"primary", "a", Response{Status: 200, Headers: map[string]string{"date": "3", "etag": "e"}}},
			},
			want:  []NoisePath{{Pattern: "header:date", Varied: 2, Compared: 2, Kinds: []Kind{Header}}},
			stats: LearnerStats{Observed: 3, Comparisons: 2, Patterns: 3},
		},
		"encoded bodies": {
			cfg: LearnerConfig{MinComparisons: 1},
			seen: []observation{
				{"primary", "a", Response{Status: 200, Headers: map[string]string{"content-encoding": "gzip"}, Body: gzipBytes(t, []byte(`{"v":1}`))}},
				{"primary", "a", Response{Status: 200, Headers: map[string]string{"content-encoding": "br"}, Body: brBytes(t, []byte(`{"v":2}`))}},
			},
			want:  []NoisePath{{Pattern: "$.v", Varied: 1, Compared: 1, Kinds: valueKinds}},
			stats: LearnerStats{Observed: 2, Comparisons: 1, Patterns: 2},
		},
		"unknown side is ignored": {
			seen:  []observation{obs("candidate", "a", `{}`)},
			stats: LearnerStats{Patterns: 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l := NewLearner(tc.cfg, mustRules(t, tc.rules))
			for _, o := range tc.seen {
				side, _ := wire.ParseSide(o.side)
				l.Observe(side, o.fp, o.resp)
			}
			if diff := cmp.Diff(tc.want, l.Noise()); diff != "" {
				t.Errorf("Noise (-want +got):\n%s", diff)
			}
			for _, np := range tc.want {
				if !l.IsNoise(np.Pattern) {
					t.Errorf("IsNoise(%q) = false", np.Pattern)
				}
			}
			if l.IsNoise("$.never") {
				t.Error("IsNoise of an unknown pattern")
			}
			if diff := cmp.Diff(tc.stats, l.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLearnerIsNoiseDiff(t *testing.T) {
	l := NewLearner(LearnerConfig{MinComparisons: 2}, mustRules(t, Spec{Headers: []string{"date"}}))
	for i := range 3 {
		l.Observe(wire.SidePrimary, "a", Response{
			Status:  200,
			Headers: map[string]string{"content-type": "application/json", "date": fmt.Sprint(i)},
			Body:    []byte(fmt.Sprintf(`{"ts":%d,"list":[%s],"v":1}`, i, strings.Repeat("0,", i)+"0")),
		})
	}
	tests := map[string]struct {
		d    Difference
		want bool
	}{
		"noisy value changed":              {Difference{Pattern: "$.ts", Kind: Changed}, true},
		"noisy value changed type":         {Difference{Pattern: "$.ts", Kind: TypeChanged}, true},
		"field with a noisy value dropped": {Difference{Pattern: "$.ts", Kind: Removed}, false},
		"field with a noisy value added":   {Difference{Pattern: "$.ts", Kind: Added}, false},
		"element that comes and goes":      {Difference{Pattern: "$.list[*]", Kind: Added}, true},
		"elements are stable in value":     {Difference{Pattern: "$.list[*]", Kind: Changed}, false},
		"stable field":                     {Difference{Pattern: "$.v", Kind: Changed}, false},
		"noisy header":                     {Difference{Pattern: "header:date", Kind: Header}, true},
		"status is never noise":            {Difference{Pattern: "status", Kind: Status}, false},
		"unknown pattern":                  {Difference{Pattern: "$.x", Kind: Changed}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := l.IsNoiseDiff(tc.d); got != tc.want {
				t.Errorf("IsNoiseDiff(%+v) = %v, want %v", tc.d, got, tc.want)
			}
		})
	}
	if !l.IsNoise("$.ts") || !l.IsNoise("$.list[*]") || l.IsNoise("$.v") {
		t.Errorf("Noise = %+v", l.Noise())
	}
}

func TestLearnerPatternLimit(t *testing.T) {
	l := NewLearner(LearnerConfig{MaxBodyBytes: 1 << 20}, nil)
	var b strings.Builder
	b.WriteByte('{')
	for i := range MaxPatterns + 10 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":1`, i)
	}
	b.WriteByte('}')
	for range 2 {
		l.Observe(wire.SidePrimary, "a", jsonResp(b.String()))
	}
	st := l.Stats()
	if st.Patterns != MaxPatterns || st.Untracked != 11 {
		t.Errorf("Stats = %+v, want %d patterns and 11 untracked", st, MaxPatterns)
	}
}

func TestLearnerConcurrent(t *testing.T) {
	l := NewLearner(LearnerConfig{MaxFingerprints: 8}, nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				l.Observe([]wire.Side{wire.SidePrimary, wire.SideShadow}[i%2], fmt.Sprint(i%16), jsonResp(fmt.Sprintf(`{"g":%d,"i":%d,"v":1}`, g, i)))
				l.IsNoise("$.i")
			}
		})
	}
	wg.Wait()
	if !l.IsNoise("$.i") || l.IsNoise("$.v") {
		t.Errorf("Noise = %+v", l.Noise())
	}
}
