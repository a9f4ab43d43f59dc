package policy

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// limitPolicy writes a valid policy with that many listeners, services
// besides a and b, endpoints of service a and routes (at least one of
// each). Route r0 has match (default path: /r0), shadow and extra: YAML
// flow-mapping fields, "" for none.
type limitPolicy struct {
	listeners, services, endpoints, routes int
	match, shadow, extra                   string
}

func (lp limitPolicy) yaml() []byte {
	var b strings.Builder
	b.WriteString("version: 1\nlisteners:\n")
	for i := range max(lp.listeners, 1) {
		fmt.Fprintf(&b, "  - {name: l%d, address: \"127.0.0.1:%d\"}\n", i, 10000+i)
	}
	b.WriteString("services:\n  a: {endpoints: [")
	for i := range max(lp.endpoints, 1) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "\"127.0.0.1:%d\"", 20000+i)
	}
	b.WriteString("]}\n  b: {endpoints: [\"127.0.0.1:2\"]}\n")
	for i := range lp.services {
		fmt.Fprintf(&b, "  s%d: {endpoints: [\"127.0.0.1:3\"]}\n", i)
	}
	b.WriteString("routes:\n")
	match := "path: /r0"
	if lp.match != "" {
		match = lp.match
	}
	fmt.Fprintf(&b, "  - {name: r0, match: {%s}, primary: a", match)
	if lp.shadow != "" {
		fmt.Fprintf(&b, ", shadow: {service: b, percent: 1, %s}", lp.shadow)
	}
	if lp.extra != "" {
		b.WriteString(", " + lp.extra)
	}
	b.WriteString("}\n")
	for i := 1; i < max(lp.routes, 1); i++ {
		fmt.Fprintf(&b, "  - {name: r%d, match: {path: /r%d}, primary: a}\n", i, i)
	}
	return []byte(b.String())
}

// list is "[p0, p1, …]" with n items.
func list(n int, item string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(item, i)
	}
	return "[" + strings.Join(items, ", ") + "]"
}

// TestLimits: a policy at each limit is accepted, and one over it is
// refused with one problem at the path and line of the list, naming the
// count and the limit; nothing under the list is checked, and what refers
// to it is not reported again.
func TestLimits(t *testing.T) {
	listeners := func(n int) string { return "listeners: " + list(n, "l%d") }
	tests := map[string]struct {
		policy limitPolicy
		path   string // "": accepted
		line   int
		msg    string // a regexp
	}{
		"routes at the limit": {policy: limitPolicy{routes: MaxRoutes}},
		"routes over":         {policy: limitPolicy{routes: MaxRoutes + 1}, path: "routes", line: 7, msg: `^50001 routes \(at most 50000\)$`},

		"listeners at the limit": {policy: limitPolicy{listeners: MaxListeners}},
		"listeners over":         {policy: limitPolicy{listeners: MaxListeners + 1}, path: "listeners", line: 2, msg: `^65 listeners \(at most 64\)$`},
		"listeners over, routes name them": {policy: limitPolicy{listeners: MaxListeners + 1, extra: listeners(2)},
			path: "listeners", line: 2, msg: `^65 listeners \(at most 64\)$`},
		"route listeners at the limit": {policy: limitPolicy{listeners: MaxListeners, extra: listeners(MaxListeners)}},
		"route listeners over": {policy: limitPolicy{listeners: MaxListeners, extra: listeners(MaxListeners + 1)},
			path: "routes[0].listeners", line: 71, msg: `^65 listeners \(at most 64\)$`},

		"services at the limit":  {policy: limitPolicy{services: MaxServices - 2}},
		"services over":          {policy: limitPolicy{services: MaxServices - 1, routes: 3}, path: "services", line: 4, msg: `^10001 services \(at most 10000\)$`},
		"endpoints at the limit": {policy: limitPolicy{endpoints: MaxEndpoints}},
		"endpoints over":         {policy: limitPolicy{endpoints: MaxEndpoints + 1}, path: "services.a.endpoints", line: 5, msg: `^1001 endpoints \(at most 1000\)$`},

		"match headers at the limit": {policy: limitPolicy{match: "path: /, headers: " + list(MaxListItems, "{name: x-h%d, present: true}")}},
		"match headers over": {policy: limitPolicy{match: "path: /, headers: " + list(MaxListItems+1, "{name: x-h%d, present: true}")},
			path: "routes[0].match.headers", line: 8, msg: `^257 items \(at most 256\)$`},
		"methods over": {policy: limitPolicy{match: "path: /, methods: " + list(MaxListItems+1, "M%d")},
			path: "routes[0].match.methods", line: 8, msg: `^257 items \(at most 256\)$`},
		"tenants over": {policy: limitPolicy{shadow: "tenants: {header: x-t, values: " + list(MaxListItems+1, "t%d") + "}"},
			path: "routes[0].shadow.tenants.values", line: 8, msg: `^257 items \(at most 256\)$`},
		"compare list at the limit": {policy: limitPolicy{shadow: "maxConcurrent: 1", extra: "compare: {varyOn: " + list(MaxListItems, "x-h%d") + "}"}},
		"compare list over": {policy: limitPolicy{shadow: "maxConcurrent: 1", extra: "compare: {ignore: " + list(MaxListItems+1, "$.f%d") + "}"},
			path: "routes[0].compare.ignore", line: 8, msg: `^257 items \(at most 256\)$`},

		// Lists Envoy matches as one regex: the program size bounds them
		// before the list limit does.
		"methods as one regex": {policy: limitPolicy{match: "path: /, methods: " + list(20, "%dMETHOD")},
			path: "routes[0].match.methods", line: 8, msg: `^20 methods are matched by Envoy as one regex; its RE2 program would have up to \d+ instructions, and Envoy refuses more than 100 \(runtime re2.max_program_size.error_level\): list fewer or shorter methods$`},
		"ten tenants": {policy: limitPolicy{shadow: "tenants: {header: x-t, values: [acme, globex, initech, umbrella, hooli, stark, wayne, wonka, tyrell, cyberdyne]}"}},
		"fourteen tenants": {policy: limitPolicy{shadow: "tenants: {header: x-t, values: [acme0, globex0, initech0, umbrella0, hooli0, stark0, wayne0, wonka0, tyrell0, cyberdyne0, soylent0, oscorp0, aperture0, blackmesa0]}"},
			path: "routes[0].shadow.tenants.values", line: 8, msg: `^14 values are matched by Envoy as one regex; its RE2 program would have up to 1\d\d instructions`},
		"rollout tenants": {policy: limitPolicy{shadow: "maxConcurrent: 1", extra: "rollout: {tenants: {header: x-t, values: " + list(MaxListItems, "%dtenant") + "}}"},
			path: "routes[0].rollout.tenants.values", line: 8, msg: `^256 values are matched by Envoy as one regex`},

		// Regexes: Envoy refuses a program over 100 instructions; a path
		// regex of 96 characters is 100 (Envoy 1.40 agrees, see
		// testdata/re2_program_sizes.txt), one more is refused.
		"path regex at the limit": {policy: limitPolicy{match: "pathRegex: /" + strings.Repeat("a", 95)}},
		"path regex over": {policy: limitPolicy{match: "pathRegex: /" + strings.Repeat("a", 96)}, path: "routes[0].match.pathRegex", line: 8,
			msg: `^its RE2 program would have up to 101 instructions, and Envoy refuses more than 100 \(runtime re2.max_program_size.error_level\): simplify it`},
		"path regex of classes": {policy: limitPolicy{match: `pathRegex: "/[a-z0-9_-]{24}"`}, path: "routes[0].match.pathRegex", line: 8, msg: `up to 101 instructions`},
		"header regex over": {policy: limitPolicy{match: "path: /, headers: [{name: x, regex: '" + strings.Repeat(`\pL`, 20) + "'}]"},
			path: "routes[0].match.headers[0].regex", line: 8, msg: `Envoy refuses more than 100`},
		"escape at \\xFF":       {policy: limitPolicy{match: `pathRegex: '/\x{FF}\377'`}},
		"escape above \\xFF":    {policy: limitPolicy{match: `pathRegex: '/a\x{100}'`}, path: "routes[0].match.pathRegex", line: 8, msg: `^Envoy's RE2 refuses escapes above \\x\{FF\} \(got \\x\{100\}\)$`},
		"octal above \\xFF":     {policy: limitPolicy{match: `pathRegex: '/[\400]'`}, path: "routes[0].match.pathRegex", line: 8, msg: `\(got \\400\)$`},
		"escaped backslash":     {policy: limitPolicy{match: `pathRegex: '/[\\x{100}]'`}},
		"quoted text":           {policy: limitPolicy{match: `pathRegex: '/\Q\x{100}\E'`}},
		"regex that is invalid": {policy: limitPolicy{match: `pathRegex: '/(a'`}, path: "routes[0].match.pathRegex", line: 8, msg: `^invalid RE2 regular expression: missing closing \)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := Parse(tc.policy.yaml(), "f")
			if tc.path == "" {
				require.NoError(t, err)
				require.NotNil(t, p)
				return
			}
			var perr *Error
			require.ErrorAs(t, err, &perr)
			require.Len(t, perr.Problems, 1, "%v", err)
			pr := perr.Problems[0]
			assert.Equal(t, tc.path, pr.Path)
			assert.Equal(t, tc.line, pr.Line)
			assert.Regexp(t, tc.msg, pr.Msg)
		})
	}
}

// TestYAMLNodeBound: yamlNodeBound is never below the nodes yaml.v3
// builds, for the test policies and for texts made of nothing but
// indicators.
func TestYAMLNodeBound(t *testing.T) {
	texts := []string{
		"", "a", "---\n", "--- a\n--- b\n", "- \n- \n-\n", "-\n-\n-", "- - - - a\n", "? \n? \n", "? ? ? a\n", ": \n: \n",
		"[[[[]]]]\n", "[a, b, c,]\n", "{a, b, c}\n", "{a: b, c: d}\n", "[a: b, c: d]\n", "[: , : , :]\n", "[?, ?, ?]\n", "{?, ?}\n",
		"a:\n  - b\n  - c: d\n    e: [f, {g: h}]\n", "x: &a [1, 2]\ny: *a\n", `{"a":b, "c":[1,2]}` + "\n", "- |\n  text: [a, b]\n- >\n  x\n",
		"a: 'b: [c, d]'\n", "- -a\n- b-\n", "a:\u0085- b\n",
		string(limitPolicy{routes: 3, shadow: "tenants: {header: x-t, values: [a, b]}"}.yaml()),
	}
	for _, name := range []string{"testdata/valid.policy.yaml", "testdata/broken.policy.yaml"} {
		data, err := readTestdata(name)
		require.NoError(t, err)
		texts = append(texts, data)
	}
	for _, text := range texts {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
			continue // yaml.v3 stops at the error: fewer nodes
		}
		n := countNodes(&doc)
		assert.LessOrEqual(t, n, yamlNodeBound([]byte(text)), "%q", text)
	}
}

func readTestdata(name string) (string, error) {
	data, err := os.ReadFile(name)
	return string(data), err
}

func countNodes(n *yaml.Node) int {
	c := 1
	for _, sub := range n.Content {
		c += countNodes(sub)
	}
	return c
}

// TestMaxProblems: past MaxProblems, problems are counted, not listed.
func TestMaxProblems(t *testing.T) {
	data := "version: 1\nlisteners: [{name: l, address: \"127.0.0.1:1\"}]\nservices: {a: {endpoints: [\"127.0.0.1:2\"]}}\n" +
		"routes: [{name: r, match: {path: /}, primary: a, " + strings.Trim(list(MaxProblems+500, "x%d: 1"), "[]") + "}]\n"
	_, err := Parse([]byte(data), "f")
	var perr *Error
	require.ErrorAs(t, err, &perr)
	assert.Len(t, perr.Problems, MaxProblems)
	assert.Equal(t, 500, perr.More)
	assert.True(t, strings.HasSuffix(err.Error(), "\nf: … and 500 more problems (only the first 1000 found are listed)"), "%.200s…", err)
	assert.Equal(t, MaxProblems, strings.Count(err.Error(), "\n")) // and the last line
}

// TestRegexProgramSize: the estimate is never below the program size Envoy
// reported, and common regexes are estimated close to it.
func TestRegexProgramSize(t *testing.T) {
	data, err := readTestdata("testdata/re2_program_sizes.txt")
	require.NoError(t, err)
	n := 0
	for line := range strings.Lines(data) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		size, expr, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		require.True(t, ok, "%q", line)
		want, err := strconv.Atoi(size)
		require.NoError(t, err)
		_, err = regexp.Compile(expr)
		require.NoError(t, err, "%q", expr)
		assert.GreaterOrEqual(t, regexProgramSize(expr), want, "%q", expr)
		n++
	}
	require.Greater(t, n, 300)

	for expr, want := range map[string]int{ // Envoy, after 101 literal characters: 23, 29, 17, 21, 84
		`^/api/v[0-9]+/users/[^/]+$`:        26,
		`^/billing/(v1|v2)/records/[0-9]+$`: 31,
		`^(acme|globex)$`:                   19,
		`^(GET|HEAD|OPTIONS)$`:              24,
		`^/v1/orders/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`: 85,
	} {
		assert.Equal(t, want, regexProgramSize(expr), expr)
	}
}
