package wire

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func buckets(pairs ...int) [len(DelayBucketsMs) + 1]uint64 {
	var b [len(DelayBucketsMs) + 1]uint64
	for i := 0; i < len(pairs); i += 2 {
		b[pairs[i]] = uint64(pairs[i+1])
	}
	return b
}

func TestAppendReportLine(t *testing.T) {
	c := Counts{Delayed: 2, Rejected: 3, ObservedDelay: 4, ObservedReject: 5, Abandoned: 6, FailOpen: 7, DelayBuckets: buckets(0, 1, 16, 2), DelaySumMs: 7200005}
	want := `{"route":"a","key":"q\"\\\u0001\ufffd` + "\u00e9" + `","admitted":0,"delayed":2,"rejected":3,"observed_delay":4,"observed_reject":5,"abandoned":6,"fail_open":7,"delay_buckets":[0,1,16,2],"delay_sum_ms":7200005}` + "\n"
	got := AppendReportLine(nil, "a", "q\"\\\x01\xff\u00e9", &c)
	require.Equal(t, want, string(got))

	lines, err := ParseReport(got)
	require.NoError(t, err)
	require.Equal(t, []ReportLine{{Route: "a", Key: "q\"\\\x01\ufffd\u00e9", Counts: c}}, lines)
}

func TestParseReport(t *testing.T) {
	line := string(AppendReportLine(nil, "jobs", "", &Counts{Admitted: 1}))
	line = strings.TrimSuffix(line, "\n")
	for name, tc := range map[string]struct{ body, err string }{
		"empty":           {"", "no report lines"},
		"blank":           {"\n \n", "no report lines"},
		"not json":        {line + "\nnope\n", "line 2: expected '{' at offset 0"},
		"missing field":   {`{"route":"jobs","key":""}`, "line 1: missing admitted, delayed, rejected, observed_delay, observed_reject, abandoned, fail_open, delay_buckets, delay_sum_ms"},
		"unknown field":   {strings.Replace(line, `"key"`, `"extra":1,"key"`, 1), `line 1: unknown field "extra"`},
		"odd buckets":     {strings.Replace(line, `"delay_buckets":[]`, `"delay_buckets":[3]`, 1), "line 1: delay_buckets must be pairs of bucket index and count (got 1 numbers)"},
		"bucket order":    {strings.Replace(line, `"delay_buckets":[]`, `"delay_buckets":[5,1,3,1]`, 1), `line 1: delay_buckets: bucket index "3" must be a whole number above the previous one and below 100`},
		"bucket range":    {strings.Replace(line, `"delay_buckets":[]`, `"delay_buckets":[100,1]`, 1), `line 1: delay_buckets: bucket index "100" must be`},
		"empty route":     {strings.Replace(line, `"jobs"`, `""`, 1), "line 1: route is empty"},
		"negative number": {strings.Replace(line, `"rejected":0`, `"rejected":-1`, 1), `line 1: rejected must be a whole number >= 0 (got "-1")`},
		"string count":    {strings.Replace(line, `"rejected":0`, `"rejected":"0"`, 1), `line 1: rejected must be a whole number >= 0`},
		"route not text":  {strings.Replace(line, `"jobs"`, `7`, 1), `line 1: route must be a string`},
		"duplicate":       {strings.Replace(line, `"key":""`, `"key":"","key":""`, 1), `line 1: duplicate key "key"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReport([]byte(tc.body))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.err)
		})
	}
	lines, err := ParseReport([]byte(line + "\n\n" + line))
	require.NoError(t, err)
	require.Len(t, lines, 2)
}

func randomCounts(r *rand.Rand) Counts {
	var c Counts
	for _, p := range c.scalars() {
		*p = r.Uint64() >> r.UintN(64)
	}
	for range r.IntN(6) { // a few buckets, as a key's waits fill
		c.DelayBuckets[r.IntN(len(c.DelayBuckets))] = r.Uint64() >> r.UintN(64)
	}
	c.DelaySumMs = r.Uint64()
	return c
}

// What the plugin writes, the control plane reads back unchanged, and so
// does encoding/json.
func TestReportRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		var body []byte
		var want []ReportLine
		for range 1 + r.IntN(4) {
			l := ReportLine{Route: "r" + string(rune(r.IntN(0x3000))), Key: strings.Repeat("k\"", r.IntN(3)), Counts: randomCounts(r)}
			body = AppendReportLine(body, l.Route, l.Key, &l.Counts)
			want = append(want, l)
		}
		got, err := ParseReport(body)
		require.NoError(t, err, "%s", body)
		require.Equal(t, want, got)
		for i, text := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
			require.Equal(t, want[i], decodeLine(t, text))
		}
	}
}

// decodeLine reads one report line with encoding/json (delay_buckets as
// index, count pairs).
func decodeLine(t *testing.T, text string) ReportLine {
	t.Helper()
	var ref struct {
		Route string `json:"route"`
		Key   string `json:"key"`
		Counts
		Pairs []uint64 `json:"delay_buckets"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&ref))
	l := ReportLine{Route: ref.Route, Key: ref.Key, Counts: ref.Counts}
	for j := 0; j+1 < len(ref.Pairs); j += 2 {
		l.DelayBuckets[ref.Pairs[j]] = ref.Pairs[j+1]
	}
	return l
}

// FuzzParseReport: never panics; what it accepts, encoding/json reads as the
// same lines, and writing them again gives a body it reads the same.
func FuzzParseReport(f *testing.F) {
	f.Add(AppendReportLine(nil, "jobs", "acme", &Counts{Admitted: 3, DelayBuckets: buckets(2, 5)}))
	f.Add([]byte(`{"route":"a","key":"","admitted":1}`))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, err := ParseReport(data)
		if err != nil {
			return
		}
		var again []byte
		for _, l := range lines {
			again = AppendReportLine(again, l.Route, l.Key, &l.Counts)
		}
		got, err := ParseReport(again)
		require.NoError(t, err)
		require.Equal(t, lines, got)
	})
}

// FuzzAppendJSONString checks the string encoder against encoding/json: the
// output is valid JSON and decodes to what encoding/json's own encoding of
// the string decodes to (invalid UTF-8 bytes replaced one by one).
func FuzzAppendJSONString(f *testing.F) {
	for _, seed := range []string{"", "acme", "a\"b\\c", "\x00\x1f\x7f", "\xff\xfe", "é😀", "\xe2\x82", "\u2028<>&", "(other)"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		require.True(t, json.Valid(b), "%q encoded as %s", s, b)
		var got string
		require.NoError(t, json.Unmarshal(b, &got))
		ref, err := json.Marshal(s)
		require.NoError(t, err)
		var want string
		require.NoError(t, json.Unmarshal(ref, &want))
		require.Equal(t, want, got, "%q encoded as %s", s, b)
	})
}
