package compare

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

func TestParsePath(t *testing.T) {
	field := func(name string) PathSegment { return PathSegment{Kind: SegmentField, Name: name} }
	index := func(i int) PathSegment { return PathSegment{Kind: SegmentIndex, Index: i} }
	anyField := PathSegment{Kind: SegmentAnyField}
	anyIndex := PathSegment{Kind: SegmentAnyIndex}

	tests := map[string]struct {
		path   string
		want   []PathSegment
		format string // FormatPath of the result; the input when empty
		err    string
	}{
		"root":              {path: "$", want: []PathSegment{}},
		"field":             {path: "$.generated_at", want: []PathSegment{field("generated_at")}},
		"nested":            {path: "$.a.b-c.d$", want: []PathSegment{field("a"), field("b-c"), field("d$")}},
		"every element":     {path: "$.items[*].id", want: []PathSegment{field("items"), anyIndex, field("id")}},
		"every member":      {path: "$.*.id", want: []PathSegment{anyField, field("id")}},
		"index":             {path: "$[0][12]", want: []PathSegment{index(0), index(12)}},
		"largest index":     {path: "$[2147483647]", want: []PathSegment{index(2147483647)}},
		"quoted":            {path: "$['generated at']", want: []PathSegment{field("generated at")}},
		"quoted plain name": {path: "$['a']", want: []PathSegment{field("a")}, format: "$.a"},
		"quoted star":       {path: "$['*']", want: []PathSegment{field("*")}},
		"quoted escapes":    {path: `$['it\'s a \\ b']`, want: []PathSegment{field(`it's a \ b`)}},
		"quoted empty":      {path: "$['']", want: []PathSegment{field("")}},
		"quoted brackets":   {path: "$['a]['].b", want: []PathSegment{field("a]["), field("b")}},
		"unicode name":      {path: "$.prix_ü", want: []PathSegment{field("prix_ü")}},

		"empty":             {path: "", err: `empty path (a path starts with "$")`},
		"no dollar":         {path: "items", err: `must start with "$"`},
		"name after dollar": {path: "$items", err: `expected '.' or '[' at offset 1 (got 'i')`},
		"trailing dot":      {path: "$.a.", err: "expected a name or * after '.' at offset 3 (got the end of the path)"},
		"dot bracket":       {path: "$.['a']", err: "expected a name or * after '.' at offset 1 (got '[')"},
		"recursive":         {path: "$..a", err: "recursive descent (..) at offset 1 is not supported"},
		"unclosed bracket":  {path: "$.a[", err: "unclosed '[' at offset 3"},
		"unclosed star":     {path: "$[*", err: "expected ']' at offset 3 (got the end of the path)"},
		"leading zero":      {path: "$[01]", err: "index 01 at offset 2 has a leading zero"},
		"negative":          {path: "$[-1]", err: "negative index at offset 2 is not supported"},
		"too large":         {path: "$[2147483648]", err: "index 2147483648 at offset 2 is too large"},
		"double quotes":     {path: `$["a"]`, err: "use single quotes"},
		"unclosed quote":    {path: "$['a", err: "unclosed quote at offset 2"},
		"bad escape":        {path: `$['a\n']`, err: `invalid escape at offset 4`},
		"filter":            {path: "$[?(@.a)]", err: "expected an index, * or a 'quoted name' after '[' at offset 1 (got '?')"},
		"slice":             {path: "$[1:2]", err: "expected ']' at offset 3 (got ':')"},
		"star then name":    {path: "$.*a", err: "expected '.' or '[' at offset 3 (got 'a')"},
		"space":             {path: "$.a b", err: "expected '.' or '[' at offset 3 (got ' ')"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePath(tc.path)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("segments (-want +got):\n%s", diff)
			}
			format := tc.format
			if format == "" {
				format = tc.path
			}
			require.Equal(t, format, FormatPath(got))
		})
	}
}

// FuzzJSONPath checks that ParsePath never panics and that whatever it
// accepts formats back to a path that parses to the same segments.
func FuzzJSONPath(f *testing.F) {
	for _, s := range []string{"$", "$.a", "$.items[*].id", "$.*", "$[0]", `$['a\'b']`, "$['']", "$..a", "$[", "$['"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		segs, err := ParsePath(s)
		if err != nil {
			return
		}
		formatted := FormatPath(segs)
		again, err := ParsePath(formatted)
		if err != nil {
			t.Fatalf("ParsePath(%q) = %v, but its format %q does not parse: %v", s, segs, formatted, err)
		}
		if diff := cmp.Diff(segs, again); diff != "" {
			t.Fatalf("round trip of %q through %q (-first +second):\n%s", s, formatted, diff)
		}
		if FormatPath(again) != formatted {
			t.Fatalf("format of %q is not stable", s)
		}
	})
}
