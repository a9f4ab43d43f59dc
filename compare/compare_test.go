package compare

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

func jsonResp(body string) Response {
	return Response{Status: 200, Headers: map[string]string{"content-type": "application/json"}, Body: []byte(body)}
}

func mustRules(t testing.TB, c Spec) *Rules {
	t.Helper()
	r, err := NewRules(c)
	if err != nil {
		t.Fatalf("NewRules: %v", err)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

// swapped returns what Compare(shadow, primary) must return given
// Compare(primary, shadow): Added and Removed swapped, excerpts swapped,
// Paths kept, in Compare's order.
func swapped(ds []Difference) []Difference {
	if ds == nil {
		return nil
	}
	out := make([]Difference, len(ds))
	for i, d := range ds {
		switch d.Kind {
		case Added:
			d.Kind = Removed
		case Removed:
			d.Kind = Added
		}
		d.Primary, d.Shadow = d.Shadow, d.Primary
		out[i] = d
	}
	slices.SortFunc(out, cmpDiff)
	return out
}

// d is shorthand for a JSON difference whose pattern is its path with
// indices replaced.
func d(path string, k Kind, primary, shadow string) Difference {
	return Difference{Path: path, Pattern: patternOf(path), Kind: k, Primary: primary, Shadow: shadow}
}

// patternOf replaces [N] by [*] (test helper; paths here quote no digits).
func patternOf(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '[' && i+1 < len(path) && path[i+1] >= '0' && path[i+1] <= '9' {
			j := strings.IndexByte(path[i:], ']')
			b.WriteString("[*]")
			i += j
			continue
		}
		b.WriteByte(path[i])
	}
	return b.String()
}

func TestCompare(t *testing.T) {
	tests := map[string]struct {
		rules          Spec
		primary        Response
		shadow         Response
		want           []Difference
		skipped        string // substring of Result.Skipped
		notSymmetrical bool
	}{
		"identical": {
			primary: jsonResp(`{"a":1}`), shadow: jsonResp(`{"a":1}`),
		},
		"status": {
			primary: Response{Status: 200}, shadow: Response{Status: 503},
			want: []Difference{{Path: "status", Pattern: "status", Kind: Status, Primary: "200", Shadow: "503"}},
		},
		"headers not compared by default": {
			primary: Response{Status: 200, Headers: map[string]string{"etag": "1"}},
			shadow:  Response{Status: 200, Headers: map[string]string{"etag": "2"}},
		},
		"header compared": {
			rules:   Spec{Headers: []string{"etag", "x-gone", "x-same"}},
			primary: Response{Status: 200, Headers: map[string]string{"etag": "1", "x-gone": "v", "x-same": "s"}},
			shadow:  Response{Status: 200, Headers: map[string]string{"etag": "2", "x-same": "s"}},
			want: []Difference{
				{Path: "header:etag", Pattern: "header:etag", Kind: Header, Primary: "1", Shadow: "2"},
				{Path: "header:x-gone", Pattern: "header:x-gone", Kind: Header, Primary: "v"},
			},
		},
		"header names are lower-cased": {
			rules:   Spec{Headers: []string{"ETag"}},
			primary: Response{Status: 200, Headers: map[string]string{"etag": "1"}},
			shadow:  Response{Status: 200, Headers: map[string]string{"etag": "2"}},
			want:    []Difference{{Path: "header:etag", Pattern: "header:etag", Kind: Header, Primary: "1", Shadow: "2"}},
		},
		"sensitive headers redacted": {
			rules:   Spec{Headers: []string{"authorization", "cookie", "set-cookie", "x-api-key"}, Redact: []string{"X-Api-Key"}},
			primary: Response{Status: 200, Headers: map[string]string{"authorization": "Bearer a", "cookie": "a=1", "set-cookie": "s=1", "x-api-key": "k1"}},
			shadow:  Response{Status: 200, Headers: map[string]string{"authorization": "Bearer b", "set-cookie": "s=2", "x-api-key": "k2"}},
			want: []Difference{
				{Path: "header:authorization", Pattern: "header:authorization", Kind: Header, Primary: Redacted, Shadow: Redacted},
				{Path: "header:cookie", Pattern: "header:cookie", Kind: Header, Primary: Redacted},
				{Path: "header:set-cookie", Pattern: "header:set-cookie", Kind: Header, Primary: Redacted, Shadow: Redacted},
				{Path: "header:x-api-key", Pattern: "header:x-api-key", Kind: Header, Primary: Redacted, Shadow: Redacted},
			},
		},
		"changed scalar": {
			primary: jsonResp(`{"a":1,"b":"x"}`), shadow: jsonResp(`{"a":2,"b":"x"}`),
			want: []Difference{d("$.a", Changed, "1", "2")},
		},
		"added and removed members": {
			primary: jsonResp(`{"a":1,"gone":{"x":[1,2]}}`), shadow: jsonResp(`{"a":1,"new":null}`),
			want: []Difference{d("$.gone", Removed, `{"x":[1,2]}`, ""), d("$.new", Added, "", "null")},
		},
		"type changed": {
			primary: jsonResp(`{"n":1,"s":"1","z":null,"o":{},"b":true}`), shadow: jsonResp(`{"n":"1","s":1,"z":0,"o":[],"b":"true"}`),
			want: []Difference{
				d("$.b", TypeChanged, "true", `"true"`),
				d("$.n", TypeChanged, "1", `"1"`),
				d("$.o", TypeChanged, "{}", "[]"),
				d("$.s", TypeChanged, `"1"`, "1"),
				d("$.z", TypeChanged, "null", "0"),
			},
		},
		"bool changed": {
			primary: jsonResp(`{"ok":true}`), shadow: jsonResp(`{"ok":false}`),
			want: []Difference{d("$.ok", Changed, "true", "false")},
		},
		"key order and whitespace do not matter": {
			primary: jsonResp(`{"a":1,"b":{"c":[1,2],"d":"x"}}`), shadow: jsonResp("{ \"b\" : {\"d\":\"x\",\n\t\"c\":[ 1, 2 ]}, \"a\" : 1 }"),
		},
		"numbers compared as numbers": {
			primary: jsonResp(`[1, 1.0, 100, 0, 0.5, 12345678901234567890, 1e400, 0.1]`),
			shadow:  jsonResp(`[1.0, 1, 1e2, -0, 5e-1, 12345678901234567890.0, 10e399, 0.10]`),
		},
		"big integers exactly": {
			primary: jsonResp(`{"id":12345678901234567890,"f":0.30000000000000000001}`),
			shadow:  jsonResp(`{"id":12345678901234567891,"f":0.3}`),
			want: []Difference{
				d("$.f", Changed, "0.30000000000000000001", "0.3"),
				d("$.id", Changed, "12345678901234567890", "12345678901234567891"),
			},
		},
		"string escapes do not matter": {
			primary: jsonResp(`{"s":"A\u00e9\n","\u006b":1}`), shadow: jsonResp("{\"s\":\"Aé\\n\",\"k\":1}"),
		},
		"escaped string changed": {
			primary: jsonResp(`{"s":"a\"b"}`), shadow: jsonResp(`{"s":"a\"c"}`),
			want: []Difference{d("$.s", Changed, `"a\"b"`, `"a\"c"`)},
		},
		"arrays by position": {
			primary: jsonResp(`{"a":[1,2,3]}`), shadow: jsonResp(`{"a":[1,5]}`),
			want: []Difference{d("$.a[1]", Changed, "2", "5"), d("$.a[2]", Removed, "3", "")},
		},
		"odd keys are quoted": {
			primary: jsonResp(`{"a b":1,"it's":1,"":1,"x.y":{"ü":1},"9":1}`),
			shadow:  jsonResp(`{"a b":2,"it's":2,"":2,"x.y":{"ü":2},"9":2}`),
			want: []Difference{
				{Path: "$.9", Pattern: "$.9", Kind: Changed, Primary: "1", Shadow: "2"},
				d("$['']", Changed, "1", "2"),
				d("$['a b']", Changed, "1", "2"),
				d(`$['it\'s']`, Changed, "1", "2"),
				d("$['x.y'].ü", Changed, "1", "2"),
			},
		},
		"root scalar": {
			primary: jsonResp(`"a"`), shadow: jsonResp(`"b"`),
			want: []Difference{d("$", Changed, `"a"`, `"b"`)},
		},
		"root type": {
			primary: jsonResp(`[]`), shadow: jsonResp(`{}`),
			want: []Difference{d("$", TypeChanged, "[]", "{}")},
		},
		"nested paths and patterns": {
			primary: jsonResp(`{"items":[{"p":1},{"p":2,"tags":["a"]}]}`),
			shadow:  jsonResp(`{"items":[{"p":1},{"p":3,"tags":["b"]}]}`),
			want:    []Difference{d("$.items[1].p", Changed, "2", "3"), d("$.items[1].tags[0]", Changed, `"a"`, `"b"`)},
		},
		"tolerance": {
			rules:   Spec{NumericTolerance: 0.1},
			primary: jsonResp(`{"in":1.0,"edge":1.1,"out":1.0,"neg":-5,"big":1e300,"int":10,"str":"1.0"}`),
			shadow:  jsonResp(`{"in":1.05,"edge":1.0,"out":1.2,"neg":-5.1,"big":1.0000000000000001e300,"int":11,"str":"1.05"}`),
			want: []Difference{
				d("$.big", Changed, "1e300", "1.0000000000000001e300"),
				d("$.int", Changed, "10", "11"),
				d("$.out", Changed, "1.0", "1.2"),
				d("$.str", Changed, `"1.0"`, `"1.05"`),
			},
		},
		"tolerance on big integers is exact": {
			rules:   Spec{NumericTolerance: 0.5},
			primary: jsonResp(`[12345678901234567890, 12345678901234567890]`),
			shadow:  jsonResp(`[12345678901234567891, 12345678901234567890.4]`),
			want:    []Difference{d("$[0]", Changed, "12345678901234567890", "12345678901234567891")},
		},
		"ignore": {
			rules:   Spec{Ignore: []string{"$.ts", "$.items[*].id", "$.meta.*", "$.list[0]", "$['odd key']"}},
			primary: jsonResp(`{"ts":1,"items":[{"id":1,"v":1},{"id":2,"v":2}],"meta":{"a":1,"b":{"c":1}},"list":[1,2],"odd key":1,"keep":1}`),
			shadow:  jsonResp(`{"ts":2,"items":[{"id":3,"v":1},{"id":4,"v":3}],"meta":{"a":2,"d":1},"list":[9,2],"odd key":2,"keep":2}`),
			want:    []Difference{d("$.items[1].v", Changed, "2", "3"), d("$.keep", Changed, "1", "2")},
		},
		"ignored member present on one side": {
			rules:   Spec{Ignore: []string{"$.ts", "$.a.b"}},
			primary: jsonResp(`{"ts":1,"a":{"b":{"deep":1}}}`), shadow: jsonResp(`{"a":{}}`),
		},
		"wildcards select objects and arrays alike": {
			rules:   Spec{Ignore: []string{"$.*.x", "$.arr[*]"}},
			primary: jsonResp(`{"o":{"x":1,"y":1},"a":[{"x":1}],"arr":{"k":1}}`),
			shadow:  jsonResp(`{"o":{"x":2,"y":1},"a":[{"x":2}],"arr":{"k":2}}`),
			want:    []Difference{d("$.a[0].x", Changed, "1", "2")},
		},
		"unordered multiset": {
			rules:   Spec{UnorderedArrays: []string{"$.tags", "$.n"}},
			primary: jsonResp(`{"tags":["a","b","c","c"],"n":[1,2,3]}`),
			shadow:  jsonResp(`{"tags":["c","a","c","b"],"n":[3.0,1,2]}`),
		},
		"unordered multiset with differences": {
			rules:   Spec{UnorderedArrays: []string{"$.tags"}},
			primary: jsonResp(`{"tags":["a","b","x","x"]}`),
			shadow:  jsonResp(`{"tags":["b","y","a"]}`),
			// leftovers: primary x@2, x@3; shadow y@1: x@2 pairs with y@1 (path [1]), x@3 is removed.
			want: []Difference{d("$.tags[1]", Changed, `"x"`, `"y"`), d("$.tags[3]", Removed, `"x"`, "")},
		},
		"unordered objects pair in canonical order": {
			rules:   Spec{UnorderedArrays: []string{"$"}},
			primary: jsonResp(`[{"id":1,"v":"a"},{"id":2,"v":"b"},{"id":3,"v":"c"}]`),
			shadow:  jsonResp(`[{"v":"c","id":3},{"id":2,"v":"B"},{"id":1,"v":"A"}]`),
			want:    []Difference{d("$[0].v", Changed, `"a"`, `"A"`), d("$[1].v", Changed, `"b"`, `"B"`)},
		},
		"unordered by key": {
			rules:   Spec{UnorderedArrays: []string{"$.users by id"}},
			primary: jsonResp(`{"users":[{"id":1,"n":"a"},{"id":2,"n":"b"},{"id":4,"n":"d"},"loose",{"n":"nokey"}]}`),
			shadow:  jsonResp(`{"users":[{"id":3,"n":"c"},{"n":"b","id":2.0},{"id":1,"n":"A"},"loose",{"n":"nokey2"}]}`),
			want: []Difference{
				d("$.users[0]", Added, "", `{"id":3,"n":"c"}`),
				d("$.users[0].n", Changed, `"a"`, `"A"`),
				d("$.users[2]", Removed, `{"id":4,"n":"d"}`, ""),
				d("$.users[4].n", Changed, `"nokey"`, `"nokey2"`),
			},
		},
		"unordered by key with duplicate keys": {
			rules:   Spec{UnorderedArrays: []string{"$ by k"}},
			primary: jsonResp(`[{"k":"a","v":1},{"k":"a","v":2},{"k":"a","v":3}]`),
			shadow:  jsonResp(`[{"k":"a","v":1},{"k":"a","v":5}]`),
			want:    []Difference{d("$[1].v", Changed, "2", "5"), d("$[2]", Removed, `{"k":"a","v":3}`, "")},
		},
		"unordered with ignored fields inside": {
			rules:   Spec{UnorderedArrays: []string{"$.items"}, Ignore: []string{"$.items[*].ts"}},
			primary: jsonResp(`{"items":[{"v":1,"ts":1},{"v":2,"ts":2}]}`),
			shadow:  jsonResp(`{"items":[{"v":2,"ts":8},{"v":1,"ts":9}]}`),
		},
		"nested unordered": {
			rules:   Spec{UnorderedArrays: []string{"$.a", "$.a[*].b"}},
			primary: jsonResp(`{"a":[{"b":[1,2]},{"b":[3,4]}]}`),
			shadow:  jsonResp(`{"a":[{"b":[4,3]},{"b":[2,1]}]}`),
		},
		"unordered with tolerance pairs leftovers": {
			rules:   Spec{UnorderedArrays: []string{"$"}, NumericTolerance: 0.01},
			primary: jsonResp(`[3, 1.001, 2]`),
			shadow:  jsonResp(`[2, 3, 1]`),
		},
		"redact": {
			rules:   Spec{Redact: []string{"password", "Token"}},
			primary: jsonResp(`{"user":{"name":"a","password":"p1","token":{"v":1}},"x":1}`),
			shadow:  jsonResp(`{"user":{"name":"b","password":"p2","token":{"v":2}}}`),
			want: []Difference{
				d("$.user.name", Changed, `"a"`, `"b"`),
				d("$.user.password", Changed, Redacted, Redacted),
				d("$.user.token.v", Changed, Redacted, Redacted),
				d("$.x", Removed, "1", ""),
			},
		},
		"redact inside excerpts": {
			rules:   Spec{Redact: []string{"password"}},
			primary: jsonResp(`{"users":[{"name":"a","password":"p1"}]}`),
			shadow:  jsonResp(`{"users":[]}`),
			want:    []Difference{d("$.users[0]", Removed, `{"name":"a","password":"[redacted]"}`, "")},
		},
		"json against text": {
			primary: jsonResp(`{"a":1}`),
			shadow:  Response{Status: 200, Headers: map[string]string{"content-type": "text/html"}, Body: []byte("<html>oops</html>")},
			want:    []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: `{"a":1}`, Shadow: "at byte 0: <html>oops</html>"}},
		},
		"invalid json declared json is compared as bytes": {
			primary: jsonResp(`{"a":1`), shadow: jsonResp(`{"a":2`),
			want: []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 5: 1", Shadow: "at byte 5: 2"}},
		},
		"sniffed json without content type": {
			primary: Response{Status: 200, Body: []byte(` {"a":1}`)}, shadow: Response{Status: 200, Body: []byte(`{"a":2}`)},
			want: []Difference{d("$.a", Changed, "1", "2")},
		},
		"JSON served as text/plain is JSON": {
			primary: Response{Status: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: []byte(`{"a":1}`)},
			shadow:  Response{Status: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: []byte(`{ "a":2}`)},
			want:    []Difference{d("$.a", Changed, "1", "2")},
		},
		"text/plain that only looks like JSON is bytes": {
			primary: Response{Status: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: []byte(`{a:1}`)},
			shadow:  Response{Status: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: []byte(`{a:2}`)},
			want:    []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: `at byte 3: 1}`, Shadow: `at byte 3: 2}`}},
		},
		"content type case and parameters": {
			primary: Response{Status: 200, Headers: map[string]string{"content-type": "Application/Problem+JSON; charset=utf-8"}, Body: []byte(`{"a":1}`)},
			shadow:  jsonResp(`{"a":2}`),
			want:    []Difference{d("$.a", Changed, "1", "2")},
		},
		"text bodies": {
			primary: Response{Status: 200, Body: []byte("hello wörld")}, shadow: Response{Status: 200, Body: []byte("hello wärld")},
			// the first differing byte is inside "ö": the excerpt starts at its first byte.
			want: []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 7: örld", Shadow: "at byte 7: ärld"}},
		},
		"text body prefix": {
			primary: Response{Status: 200, Body: []byte("abc")}, shadow: Response{Status: 200, Body: []byte("abcdef")},
			want: []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 3: (end of body)", Shadow: "at byte 3: def"}},
		},
		"binary bodies": {
			primary: Response{Status: 200, Body: []byte{0, 1, 2, 0xff}}, shadow: Response{Status: 200, Body: []byte{0, 1, 3, 0xfe}},
			want: []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 2: hex 02 ff", Shadow: "at byte 2: hex 03 fe"}},
		},
		"text bodies mentioning redacted names are not shown": {
			rules:   Spec{Redact: []string{"password"}},
			primary: Response{Status: 200, Body: []byte("user=a&PASSWORD=x")}, shadow: Response{Status: 200, Body: []byte("user=a&PASSWORD=y")},
			want: []Difference{{Path: "body", Pattern: "body", Kind: Body, Primary: "at byte 16: " + Redacted, Shadow: "at byte 16: " + Redacted}},
		},
		"long excerpts are cut on a rune boundary": {
			primary: jsonResp(`{"s":"` + strings.Repeat("é", 100) + `"}`), shadow: jsonResp(`{"s":"x"}`),
			want: []Difference{d("$.s", Changed, `"`+strings.Repeat("é", 58)+"…", `"x"`)},
		},
		"unsupported encoding skips the body only": {
			primary: Response{Status: 200, Headers: map[string]string{"content-encoding": "zstd"}, Body: []byte("x")},
			shadow:  Response{Status: 200, Headers: map[string]string{"x": "1"}, Body: []byte("y")},
			rules:   Spec{Headers: []string{"x"}},
			want:    []Difference{{Path: "header:x", Pattern: "header:x", Kind: Header, Primary: "", Shadow: "1"}},
			skipped: `primary body: content-encoding "zstd" is not supported`,
		},
		"different statuses: bodies are not compared": {
			primary: Response{Status: 200, Body: []byte(`{"user":{"id":7}}`)},
			shadow:  Response{Status: 404, Body: []byte(`{"error":"not found"}`)},
			want:    []Difference{{Path: "status", Pattern: "status", Kind: Status, Primary: "200", Shadow: "404"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := mustRules(t, tc.rules)
			got := Compare(tc.primary, tc.shadow, r)
			if diff := cmp.Diff(tc.want, got.Differences); diff != "" {
				t.Errorf("Compare differences (-want +got):\n%s", diff)
			}
			if !strings.Contains(got.Skipped, tc.skipped) || (tc.skipped == "") != (got.Skipped == "") {
				t.Errorf("Skipped = %q, want it to contain %q", got.Skipped, tc.skipped)
			}
			back := Compare(tc.shadow, tc.primary, r)
			if diff := cmp.Diff(swapped(tc.want), back.Differences); diff != "" {
				t.Errorf("swapped Compare differences (-want +got):\n%s", diff)
			}
			for _, x := range got.Differences {
				if len(x.Primary) > MaxExcerpt || len(x.Shadow) > MaxExcerpt || !utf8.ValidString(x.Primary) || !utf8.ValidString(x.Shadow) {
					t.Errorf("bad excerpt in %+v", x)
				}
			}
		})
	}
}

func TestCompareNilRules(t *testing.T) {
	got := Compare(jsonResp(`{"a":1}`), jsonResp(`{"a":2}`), nil)
	if diff := cmp.Diff([]Difference{d("$.a", Changed, "1", "2")}, got.Differences); diff != "" {
		t.Error(diff)
	}
}

func TestCompareCap(t *testing.T) {
	var a, b strings.Builder
	a.WriteByte('[')
	b.WriteByte('[')
	for i := range 2500 {
		if i > 0 {
			a.WriteByte(',')
			b.WriteByte(',')
		}
		fmt.Fprintf(&a, "%d", i)
		fmt.Fprintf(&b, "%d", -i-1)
	}
	a.WriteByte(']')
	b.WriteByte(']')
	got := Compare(jsonResp(a.String()), jsonResp(b.String()), nil).Differences
	if len(got) != MaxDifferences+1 {
		t.Fatalf("got %d differences, want %d", len(got), MaxDifferences+1)
	}
	if !slices.IsSortedFunc(got, func(x, y Difference) int { return strings.Compare(x.Path, y.Path) }) {
		t.Error("differences not sorted by path")
	}
	last := got[len(got)-1]
	want := Difference{Path: Truncated, Pattern: Truncated, Kind: Changed, Primary: "1500 more differences", Shadow: "1500 more differences"}
	if last != want {
		t.Errorf("last = %+v, want %+v", last, want)
	}
	// The kept ones are the first in Path order, the same as a full sort.
	if got[0].Path != "$[0]" || got[1].Path != "$[1000]" {
		t.Errorf("first paths %q, %q", got[0].Path, got[1].Path)
	}
}

func TestNewRulesErrors(t *testing.T) {
	tests := map[string]struct {
		c    Spec
		want []string
	}{
		"bad ignore": {
			c:    Spec{Ignore: []string{"$.ok", "$.a[", "$"}},
			want: []string{`ignore[1]: invalid JSON path "$.a["`, `ignore[2]: ignoring "$" would ignore the whole body`},
		},
		"bad unordered": {
			c:    Spec{UnorderedArrays: []string{"items", "$.x by ", "$.y by id"}},
			want: []string{`unorderedArrays[0]: invalid JSON path "items"`, `unorderedArrays[1]: "$.x by ": name the member after "by"`},
		},
		"bad tolerance": {
			c:    Spec{NumericTolerance: -1.0},
			want: []string{"numericTolerance: must be a number of at least 0 (got -1)"},
		},
		"empty redact": {
			c:    Spec{Redact: []string{""}},
			want: []string{"redact[0]: must not be empty"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewRules(tc.c)
			if err == nil {
				t.Fatal("NewRules: no error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("errors:\n%v\nwant %d", err, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestMarksEchoedAreExplained(t *testing.T) {
	primary := jsonResp(`{"headers":{"Host":"a","X-Request-Id":"1"},"origin":"10.0.0.1"}`)
	shadow := jsonResp(`{"headers":{"Host":"a","X-Request-Id":"1","X-Shadowlab-Shadow":"1","x-shadowlab-route":["r"]},"origin":"10.0.0.1","extra":1}`)
	got := Compare(primary, shadow, mustRules(t, Spec{}))
	require.Equal(t, []string{"$.extra"}, paths(got.Differences), "a real difference stays")
	require.Equal(t, []string{"$.headers.X-Shadowlab-Shadow", "$.headers.x-shadowlab-route"}, paths(got.Marks))

	// A mark the primary also has, or that changed, is not an echo.
	got = Compare(jsonResp(`{"x-shadowlab-shadow":"0"}`), jsonResp(`{"x-shadowlab-shadow":"1"}`), mustRules(t, Spec{}))
	require.Len(t, got.Differences, 1)
	require.Empty(t, got.Marks)
}

func paths(ds []Difference) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Path)
	}
	return out
}

// A differing gRPC status is the finding: the bodies are not compared.
func TestGRPCStatus(t *testing.T) {
	ok := Response{Status: 200, GRPCStatus: "OK", Headers: map[string]string{"content-type": "application/json"}, Body: []byte(`{"a":1}`)}
	failed := Response{Status: 200, GRPCStatus: "FAILED_PRECONDITION", GRPCMessage: "order o-2 already shipped"}
	res := Compare(ok, failed, nil)
	require.Equal(t, []Difference{{Path: "grpc-status", Pattern: "grpc-status", Kind: Status,
		Primary: "OK", Shadow: "FAILED_PRECONDITION: order o-2 already shipped"}}, res.Differences)
	require.Empty(t, Compare(ok, ok, nil).Differences)
	other := ok
	other.Body = []byte(`{"a":2}`)
	require.Equal(t, "$.a", Compare(ok, other, nil).Differences[0].Path, "same status: bodies compared")
}
