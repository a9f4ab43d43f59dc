package compare

import (
	"strings"
	"testing"
)

// TestPathologicalInputs runs inputs built to hit the expensive corners
// (deep paths with many differences, duplicate keys out of order, numbers
// beyond float64, big unordered arrays). Timing never gates a test: this
// checks the results, and `go test -v` shows how long each took.
func TestPathologicalInputs(t *testing.T) {
	r := mustRules(t, Spec{UnorderedArrays: []string{"$"}, Redact: []string{"x"}, NumericTolerance: 0.01})
	deep := func(n int, leaf string) string {
		return strings.Repeat(`{"b":1,"a":`, n) + leaf + strings.Repeat("}", n)
	}
	nested := func(n int, inner string) string { return strings.Repeat("[", n) + inner + strings.Repeat("]", n) }
	tests := map[string]struct {
		primary, shadow string
		diffs           int
	}{
		"deep objects in an unordered array": {"[" + deep(maxDepth-2, "1") + "]", "[" + deep(maxDepth-2, "2") + "]", 1},
		"deep path, many differences":        {nested(maxDepth-1, strings.Repeat("1,", 100000)+"1"), nested(maxDepth-1, strings.Repeat("2,", 100000)+"2"), MaxDifferences + 1},
		"duplicate keys out of order":        {"{" + strings.Repeat(`"a":1,`, 100000) + `"b":1}`, `{"b":2,` + strings.Repeat(`"a":1,`, 100000) + `"c":1}`, 2},
		"numbers beyond float64":             {"[" + strings.Repeat("1e999,", 100000) + "1]", "[" + strings.Repeat("2e999,", 100000) + "1]", MaxDifferences + 1},
		"big unordered array":                {"[" + strings.Repeat(`{"k":1,"v":[1,2,3]},`, 50000) + "1]", "[" + strings.Repeat(`{"v":[1,2,4],"k":1},`, 50000) + "1]", MaxDifferences + 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Compare(jsonResp(tc.primary), jsonResp(tc.shadow), r).Differences
			if len(got) != tc.diffs {
				t.Errorf("%d differences, want %d", len(got), tc.diffs)
			}
		})
	}
}
