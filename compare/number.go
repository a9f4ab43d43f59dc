package compare

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/big"
	"strconv"
)

// decimal is a JSON number in normal form: ±0.d₁d₂…dₙ × 10^exp with d₁ ≠ 0
// and dₙ ≠ 0, so that equal numbers have equal forms (1, 1.0, 10e-1 and
// 0.1e1 are one number). Zero has no digits and no sign.
type decimal struct {
	neg    bool
	digits []byte // significant digits as ASCII
	exp    int64
	huge   bool // the exponent has more than 15 digits: compared as text
}

// maxExpDigits bounds the exponent digits parseDecimal reads as a number.
const maxExpDigits = 15

// parseDecimal normalizes a valid JSON number. The digits are appended to
// *scratch, which the result's digits alias.
func parseDecimal(raw []byte, scratch *[]byte) decimal {
	var d decimal
	buf := (*scratch)[:0]
	i := 0
	if i < len(raw) && raw[i] == '-' {
		d.neg = true
		i++
	}
	intDigits := int64(0)
	for ; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
		buf = append(buf, raw[i])
		intDigits++
	}
	if i < len(raw) && raw[i] == '.' {
		for i++; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
			buf = append(buf, raw[i])
		}
	}
	var e int64
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		eneg := false
		if raw[i] == '+' || raw[i] == '-' {
			eneg = raw[i] == '-'
			i++
		}
		for i < len(raw) && raw[i] == '0' {
			i++
		}
		if len(raw)-i > maxExpDigits {
			d.huge = true
		}
		for ; i < len(raw) && !d.huge; i++ {
			e = e*10 + int64(raw[i]-'0')
		}
		if eneg {
			e = -e
		}
	}
	lead := 0
	for lead < len(buf) && buf[lead] == '0' {
		lead++
	}
	end := len(buf)
	for end > lead && buf[end-1] == '0' {
		end--
	}
	*scratch = buf
	if lead == end { // zero, whatever its exponent
		return decimal{}
	}
	d.digits = buf[lead:end]
	d.exp = intDigits - int64(lead) + e
	return d
}

func (a decimal) equal(b decimal) bool {
	return a.neg == b.neg && a.exp == b.exp && a.huge == b.huge && bytes.Equal(a.digits, b.digits)
}

// numScratch holds buffers for number comparisons.
type numScratch struct{ a, b []byte }

// numbersEqual reports whether two valid JSON numbers are equal, or at most
// tol apart. Equality is exact (big integers and long fractions included).
// Within a tolerance the decision is exact too, tol taken as the shortest
// decimal that rounds to it (0.1 means one tenth), except for numbers so
// far apart in scale or so long that exact arithmetic would need more than
// 1 000 digits: those are decided in float64 (beyond its range, different).
func numbersEqual(a, b []byte, tol float64, tolDec decimal, s *numScratch) bool {
	if bytes.Equal(a, b) {
		return true
	}
	da := parseDecimal(a, &s.a)
	db := parseDecimal(b, &s.b)
	if da.huge || db.huge {
		return false // different texts of numbers beyond any float: different
	}
	if da.equal(db) {
		return true
	}
	if tol <= 0 {
		return false
	}
	fa, erra := strconv.ParseFloat(string(a), 64)
	fb, errb := strconv.ParseFloat(string(b), 64)
	if erra == nil && errb == nil {
		d := math.Abs(fa - fb)
		slack := (math.Max(math.Abs(fa), math.Abs(fb)) + tol) * 0x1p-48
		if d+slack < tol {
			return true
		}
		if d-slack > tol {
			return false
		}
	}
	if r, ok := withinExact(da, db, tolDec); ok {
		return r
	}
	return erra == nil && errb == nil && math.Abs(fa-fb) <= tol
}

// maxExactDigits bounds the big-integer arithmetic of withinExact.
const maxExactDigits = 1000

// withinExact decides |a-b| <= tol exactly; ok is false when the numbers
// are out of its range.
func withinExact(a, b, tol decimal) (within, ok bool) {
	// value = D × 10^(exp-len(D)) with D the digits as an integer.
	ua := a.exp - int64(len(a.digits))
	ub := b.exp - int64(len(b.digits))
	ut := tol.exp - int64(len(tol.digits))
	lo := min(ua, ub, ut)
	hi := max(ua+int64(len(a.digits)), ub+int64(len(b.digits)), ut+int64(len(tol.digits)))
	if hi-lo > maxExactDigits {
		return false, false
	}
	scaled := func(d decimal, u int64) *big.Int {
		v := new(big.Int)
		if len(d.digits) > 0 {
			v.SetString(string(d.digits), 10)
		}
		if u > lo {
			v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(u-lo), nil))
		}
		if d.neg {
			v.Neg(v)
		}
		return v
	}
	diff := new(big.Int).Sub(scaled(a, ua), scaled(b, ub))
	return diff.Abs(diff).Cmp(scaled(tol, ut)) <= 0, true
}

// appendCanonNumber appends the canonical form of a valid JSON number:
// equal numbers give equal bytes.
func appendCanonNumber(buf, raw []byte, s *numScratch) []byte {
	d := parseDecimal(raw, &s.a)
	if d.huge {
		buf = append(buf, 'D')
		buf = binary.AppendUvarint(buf, uint64(len(raw)))
		return append(buf, raw...)
	}
	if len(d.digits) == 0 {
		return append(buf, 'd', '0')
	}
	sign := byte('+')
	if d.neg {
		sign = '-'
	}
	buf = append(buf, 'd', sign)
	buf = binary.AppendVarint(buf, d.exp)
	buf = binary.AppendUvarint(buf, uint64(len(d.digits)))
	return append(buf, d.digits...)
}
