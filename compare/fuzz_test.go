package compare

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// fuzzRules are the rule sets FuzzCompare runs every input under.
func fuzzRules(t testing.TB) []*Rules {
	return []*Rules{
		mustRules(t, Spec{}),
		mustRules(t, Spec{
			Ignore:           []string{"$.ts", "$.items[*].id", "$.*.nonce", "$[0]"},
			NumericTolerance: 0.01,
			UnorderedArrays:  []string{"$.tags", "$.items by id", "$", "$.*[*].b"},
			Headers:          []string{"content-type", "etag"},
			Redact:           []string{"password", "a"},
		}),
	}
}

var fuzzContentTypes = []string{"application/json", "", "text/plain"}

func FuzzCompare(f *testing.F) {
	seeds := [][2]string{
		{`{"a":1}`, `{"a":2}`},
		{`{"a":1,"b":[1,2,3]}`, `{"b":[3,2,1],"a":1.0}`},
		{`[1,2,3]`, `[3,2,1,1]`},
		{`{"items":[{"id":1,"v":1},{"id":2,"v":2}]}`, `{"items":[{"id":2,"v":2},{"id":1,"v":3},{"v":1}]}`},
		{`{"tags":["a","b"],"ts":1}`, `{"tags":["b","a","c"],"ts":2}`},
		{`{"x":{"nonce":"n1","password":"p"}}`, `{"x":{"nonce":"n2","password":"q"}}`},
		{`{"n":1e400,"m":-0,"k":12345678901234567890}`, `{"n":10e399,"m":0,"k":12345678901234567891}`},
		{`{"s":"\u00e9\ud83d\ude00\ud800"}`, `{"s":"é😀"}`},
		{`{"a":{"a":{"a":[[],{}]}}}`, `{"a":{"a":{"a":[{},[]]}}}`},
		{`{"a":1,"a":2}`, `{"a":2,"a":1}`},
		{`"text"`, `text`},
		{"\x00\x01\xff", "\x00\x02"},
		{`{"a":[1,2]} `, `{"a":[1,2],}`},
		{`[{"b":[1,2]},{"b":[2,1]}]`, `[{"b":[2,1]},{"b":[1,2]}]`},
	}
	for _, s := range seeds {
		f.Add([]byte(s[0]), []byte(s[1]), uint8(0))
		f.Add([]byte(s[0]), []byte(s[1]), uint8(4))
	}
	rules := fuzzRules(f)
	f.Fuzz(func(t *testing.T, a, b []byte, mode uint8) {
		pa := Response{Status: 200, Headers: map[string]string{"content-type": fuzzContentTypes[int(mode)%3], "etag": "1"}, Body: a}
		pb := Response{Status: 200 + int(mode>>6), Headers: map[string]string{"content-type": fuzzContentTypes[int(mode/3)%3], "etag": string(a[:min(len(a), 3)])}, Body: b}
		for i, r := range rules {
			for _, x := range []Response{pa, pb} {
				if got := Compare(x, x, r); got.Differences != nil || got.Skipped != "" {
					t.Fatalf("rules %d: Compare(x, x) = %+v", i, got)
				}
				if y, ok := reencoded(x.Body); ok {
					xy := x
					xy.Body = y
					xy.Headers = map[string]string{"content-type": "application/json"}
					xx := x
					xx.Headers = xy.Headers
					if got := Compare(xx, xy, r); got.Differences != nil {
						t.Fatalf("rules %d: re-encoded JSON differs:\n%s\n%s\n%+v", i, x.Body, y, got.Differences)
					}
				}
			}
			ab := Compare(pa, pb, r)
			ba := Compare(pb, pa, r)
			// Marks are only ever added by the shadow: symmetric with them.
			all := func(r Result) []Difference {
				ds := append(slices.Clone(r.Differences), r.Marks...)
				slices.SortFunc(ds, cmpDiff)
				return ds
			}
			if diff := cmp.Diff(swapped(all(ab)), all(ba)); diff != "" {
				t.Fatalf("rules %d: not symmetric (-swapped(a,b) +(b,a)):\n%s", i, diff)
			}
			if (ab.Skipped == "") != (ba.Skipped == "") {
				t.Fatalf("rules %d: Skipped %q vs %q", i, ab.Skipped, ba.Skipped)
			}
			checkResult(t, ab)
		}
	})
}

// reencoded returns body decoded and encoded again by encoding/json
// (numbers kept as written, keys sorted, strings re-escaped, whitespace
// changed): the same JSON value in other bytes. ok is false when body is
// not JSON, or when re-encoding would change its value (duplicate keys,
// invalid UTF-8).
func reencoded(body []byte) ([]byte, bool) {
	var d doc
	if !d.parse(body) || !utf8.Valid(body) || hasDuplicateKeys(&d) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	out, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return nil, false
	}
	return out, true
}

func hasDuplicateKeys(d *doc) bool {
	for t := range d.tape {
		n := &d.tape[t]
		if n.kind != kindObject {
			continue
		}
		seen := map[string]bool{}
		k := uint32(t) + 1
		for range n.n {
			var buf []byte
			name := string(key(d, k, &buf))
			if seen[name] {
				return true
			}
			seen[name] = true
			k = d.tape[k+1].next
		}
	}
	return false
}

func checkResult(t *testing.T, r Result) {
	t.Helper()
	if !slices.IsSortedFunc(r.Differences, func(x, y Difference) int { return strings.Compare(x.Path, y.Path) }) {
		t.Fatalf("not sorted by path: %+v", r.Differences)
	}
	for _, d := range r.Differences {
		if len(d.Primary) > MaxExcerpt || len(d.Shadow) > MaxExcerpt || !utf8.ValidString(d.Primary) || !utf8.ValidString(d.Shadow) {
			t.Fatalf("bad excerpt: %+v", d)
		}
		if d.Path == "" || d.Pattern == "" || d.Kind == "" {
			t.Fatalf("incomplete difference: %+v", d)
		}
		if strings.HasPrefix(d.Path, "$") && d.Path != Truncated {
			if _, err := ParsePath(d.Path); err != nil {
				t.Fatalf("path %q does not parse: %v", d.Path, err)
			}
			if _, err := ParsePath(d.Pattern); err != nil {
				t.Fatalf("pattern %q does not parse: %v", d.Pattern, err)
			}
		}
	}
}

// FuzzParse checks the tokenizer against encoding/json: the same texts
// are JSON.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,-2.5e+3,true,false,null,"x\u0041\n"]}`, `01`, `1.`, `"\x01"`, `[1,]`, `{"a" 1}`, ` 1 `, `"\ud800"`, `-`, `1e`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d doc
		if got, want := d.parse(b), json.Valid(b) && nesting(b) <= maxDepth; got != want {
			t.Fatalf("parse(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}

// nesting returns the deepest nesting of brackets in b outside strings.
func nesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

func TestMaxDepth(t *testing.T) {
	var d doc
	ok := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if !d.parse([]byte(ok)) {
		t.Errorf("%d levels: not JSON", maxDepth)
	}
	deeper := "[" + ok + "]"
	if d.parse([]byte(deeper)) {
		t.Errorf("%d levels: JSON", maxDepth+1)
	}
	got := Compare(jsonResp(deeper), jsonResp("["+ok+",1]"), nil).Differences
	if len(got) != 1 || got[0].Kind != Body {
		t.Errorf("too deep to be JSON: got %+v, want one body difference", got)
	}
}
