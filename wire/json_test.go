package wire

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseFlatObject(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    map[string]jsonValue
		wantErr string
	}{
		"empty object": {in: " {} ", want: map[string]jsonValue{}},
		"scalars": {
			in: `{"a": 1, "b": -2.5e3, "c": "x\"y\\n\u00e9\ud83d\ude00", "d": true, "e": false, "f": null, "g": 0}`,
			want: map[string]jsonValue{
				"a": {lit: "1"}, "b": {lit: "-2.5e3"}, "c": {str: "x\"y\\n\u00e9\U0001F600", isText: true},
				"d": {lit: "true"}, "e": {lit: "false"}, "f": {lit: "null"}, "g": {lit: "0"},
			},
		},
		"leading zero":       {in: `{"a": 01}`, wantErr: "expected ',' or '}' at offset 7"},
		"bare minus":         {in: `{"a": -}`, wantErr: "malformed number"},
		"missing exponent":   {in: `{"a": 1e}`, wantErr: "malformed number"},
		"unterminated":       {in: `{"a": "x`, wantErr: "unterminated string"},
		"control char":       {in: "{\"a\": \"x\ny\"}", wantErr: "control character"},
		"bad escape":         {in: `{"a": "\q"}`, wantErr: "invalid escape"},
		"array of numbers":   {in: `{"a": [1, -2.5 ,3e2], "b": []}`, want: map[string]jsonValue{"a": {list: []string{"1", "-2.5", "3e2"}, isList: true}, "b": {list: []string{}, isList: true}}},
		"array of strings":   {in: `{"a": ["x"]}`, wantErr: "arrays may hold numbers only"},
		"object":             {in: `{"a": {}}`, wantErr: "nested objects are not supported"},
		"not an object":      {in: `[1]`, wantErr: "expected '{'"},
		"trailing comma":     {in: `{"a": 1,}`, wantErr: "expected a string"},
		"missing colon":      {in: `{"a" 1}`, wantErr: "expected ':'"},
		"truncated":          {in: `{"a": 1`, wantErr: "expected ',' or '}'"},
		"invalid utf8":       {in: "{\"a\": \"\xff\"}", wantErr: "invalid UTF-8"},
		"truncated literal":  {in: `{"a": tru}`, wantErr: "expected a value"},
		"short unicode":      {in: `{"a": "\u12"}`, wantErr: "invalid \\u escape"},
		"lone surrogate ok":  {in: `{"a": "\ud800"}`, want: map[string]jsonValue{"a": {str: "\uFFFD", isText: true}}},
		"data after closing": {in: `{}x`, wantErr: "unexpected data after the object"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseFlatObject([]byte(tc.in))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// FuzzParseFlatObject checks the hand parser against encoding/json: it never
// panics, it accepts only valid JSON, and its strings and number texts are
// the ones encoding/json decodes.
func FuzzParseFlatObject(f *testing.F) {
	for _, seed := range []string{
		`{"limit": 100, "window_ms": 1000, "hold_ms": 200}`, `{}`, `{"a": "\u00e9\ud83d\ude00"}`,
		`{"a": -0.5e+3, "b": null, "c": true}`, `{"a": [1, 2.5]}`, `{"a": ["x"]}`, `{"a": 1,}`, `{"a":"\ud800x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseFlatObject(data)
		if err != nil {
			return
		}
		var ref map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(data, &ref), "accepted invalid JSON %q", data)
		require.Len(t, got, len(ref))
		for k, v := range got {
			raw, ok := ref[k]
			require.True(t, ok, "key %q", k)
			switch {
			case v.isText:
				var s string
				require.NoError(t, json.Unmarshal(raw, &s))
				require.Equal(t, s, v.str, "key %q", k)
			case v.isList:
				var nums []json.Number
				require.NoError(t, json.Unmarshal(raw, &nums))
				require.Len(t, v.list, len(nums), "key %q", k)
				for i, n := range nums {
					require.Equal(t, string(n), v.list[i], "key %q [%d]", k, i)
				}
			default:
				require.Equal(t, string(raw), v.lit, "key %q", k)
			}
		}
	})
}
