package compare

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestNumbersEqual(t *testing.T) {
	tests := map[string]struct {
		a, b string
		tol  float64
		want bool
	}{
		"same text":                     {"1", "1", 0, true},
		"trailing zeros":                {"1", "1.000", 0, true},
		"exponent":                      {"100", "1e2", 0, true},
		"negative exponent":             {"0.5", "5E-1", 0, true},
		"leading zeros in fraction":     {"0.001", "1e-3", 0, true},
		"zeros":                         {"0", "-0.0e5", 0, true},
		"sign":                          {"1", "-1", 0, false},
		"big integers":                  {"123456789012345678901234567890", "123456789012345678901234567891", 0, false},
		"big integers equal":            {"123456789012345678901234567890", "12345678901234567890123456789e1", 0, true},
		"float64 would round":           {"9007199254740993", "9007199254740992", 0, false},
		"beyond float64":                {"1e400", "1e401", 0, false},
		"beyond float64 equal":          {"1e400", "0.1e401", 0, true},
		"huge exponents, same text":     {"1e9999999999999999999", "1e9999999999999999999", 0, true},
		"huge exponents, other text":    {"1e9999999999999999999", "10e9999999999999999998", 0, false},
		"within tolerance":              {"1.0", "1.05", 0.1, true},
		"tolerance edge is within":      {"1.1", "1.0", 0.1, true},
		"just past the edge":            {"1.1000000000000001", "1.0", 0.1, false},
		"past tolerance":                {"1.0", "1.2", 0.1, false},
		"tolerance 0.3 edge":            {"0.3", "0", 0.3, true},
		"tolerance on big integers":     {"12345678901234567890", "12345678901234567891", 0.5, false},
		"tolerance on big integers in":  {"12345678901234567890", "12345678901234567890.5", 0.5, true},
		"tolerance with tiny numbers":   {"1e-2000", "2e-2000", 0.01, true},
		"tolerance beyond float64":      {"1e400", "2e400", 1e300, false},
		"tolerance beyond float64 near": {"1." + strings.Repeat("0", 100) + "1e400", "1e400", 1e300, true},
		"tolerance beyond float64 far":  {"1." + strings.Repeat("0", 98) + "1e400", "1e400", 1e300, false},
		"tolerance, negative numbers":   {"-5", "-5.05", 0.05, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var s numScratch
			var scratch []byte
			tolDec := parseDecimal([]byte(strconv.FormatFloat(tc.tol, 'g', -1, 64)), &scratch)
			if got := numbersEqual([]byte(tc.a), []byte(tc.b), tc.tol, tolDec, &s); got != tc.want {
				t.Errorf("numbersEqual(%s, %s, %v) = %v, want %v", tc.a, tc.b, tc.tol, got, tc.want)
			}
			if got := numbersEqual([]byte(tc.b), []byte(tc.a), tc.tol, tolDec, &s); got != tc.want {
				t.Errorf("numbersEqual(%s, %s, %v) = %v, want %v (swapped)", tc.b, tc.a, tc.tol, got, tc.want)
			}
			ca := string(appendCanonNumber(nil, []byte(tc.a), &s))
			cb := string(appendCanonNumber(nil, []byte(tc.b), &s))
			if exact := numbersEqual([]byte(tc.a), []byte(tc.b), 0, decimal{}, &s); (ca == cb) != exact {
				t.Errorf("canonical forms %q, %q disagree with equality %v", ca, cb, exact)
			}
		})
	}
}

func TestBigObjectsInAnotherOrder(t *testing.T) {
	var a, b []string
	for i := range 50 {
		a = append(a, fmt.Sprintf(`"k%d":%d`, i, i))
		v := i
		if i == 7 {
			v = -7
		}
		b = append([]string{fmt.Sprintf(`"k%d":%d`, i, v)}, b...)
	}
	// duplicates: three "d" on one side, two on the other
	a = append(a, `"d":1`, `"d":2`, `"d":3`)
	b = append([]string{`"d":1`, `"d":5`}, b...)
	got := Compare(jsonResp("{"+strings.Join(a, ",")+"}"), jsonResp("{"+strings.Join(b, ",")+"}"), nil)
	want := []Difference{d("$.d", Removed, "3", ""), d("$.d", Changed, "2", "5"), d("$.k7", Changed, "7", "-7")}
	if fmt.Sprint(got.Differences) != fmt.Sprint(want) {
		t.Errorf("got %+v\nwant %+v", got.Differences, want)
	}
}
