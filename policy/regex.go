package policy

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Envoy compiles every regex it is given with RE2 and refuses, with the
// whole configuration, one whose program has more than
// MaxRegexProgramSize instructions (its runtime key
// re2.max_program_size.error_level, default 100). Go's regexp shares RE2's
// syntax but not its compiler, so a regex Go accepts can still be refused
// by Envoy. regexProgramSize estimates the size of RE2's program from the
// regex as Go parses and simplifies it (repetitions written out, as RE2
// does), erring high: a regex within MaxRegexProgramSize by this estimate
// is within it for Envoy. TestRegexProgramSize checks it against the sizes
// Envoy reported (testdata/re2_program_sizes.txt).
//
// Envoy 1.40 (the pinned version) behaves as if it read a regex as
// Latin-1: a character class costs one instruction per range of its part
// within \x00-\xFF, "." two ([\x00-\x09\x0B-\xFF]), a non-ASCII
// character written as such one per UTF-8 byte, and an escape above
// \x{FF} is refused. Every program has re2ProgramOverhead instructions
// more.
const re2ProgramOverhead = 4

// regexProgramSize is the estimated RE2 program size of expr, or 0 if Go
// does not compile it.
func regexProgramSize(expr string) int {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return 0
	}
	var e programEstimate
	for i := range len(expr) {
		if expr[i] >= utf8.RuneSelf {
			e.wide += 2
		}
	}
	e.hidden = 2 * (strings.Count(expr, `\p`) + strings.Count(expr, `\P`) + strings.Count(expr, "["))
	return re2ProgramOverhead + e.size(re.Simplify())
}

// programEstimate sizes the parts of an RE2 program. Go merges the
// branches of an alternation that each match one character into one
// class ("a|[0-9]|." is "."); RE2, reading Latin-1, may not:
//   - wide: a byte of non-ASCII text can be one more literal or range for
//     RE2 (it reads each byte as a character of its own); each counts 2
//     wherever Go sees one non-ASCII character or a class with some;
//   - hidden: a Unicode class or bracket with nothing within \x00-\xFF
//     (\p{Greek}) is no class for RE2 but a branch that never matches;
//     each could be one, 2, wherever Go sees a class reaching beyond
//     \xFF or any character.
//
// Both count the whole regex (at most MaxRegexBytes), for each such
// place: the estimate errs high for regexes that hold them.
type programEstimate struct {
	wide, hidden int
}

func (e programEstimate) size(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			switch {
			case re.Flags&syntax.FoldCase == 0 || unicode.SimpleFold(r) == r:
				n += utf8.RuneLen(r)
			case r < utf8.RuneSelf:
				n++ // RE2 folds an ASCII letter in one instruction
			default:
				n += 3 * utf8.RuneLen(r)
			}
			if r >= utf8.RuneSelf {
				n += e.wide
			}
		}
		return n
	case syntax.OpCharClass:
		n, nonASCII, beyond := 0, false, false
		for i := 0; i+1 < len(re.Rune); i += 2 {
			if re.Rune[i] <= 0xFF {
				n++
			}
			nonASCII = nonASCII || re.Rune[i+1] >= utf8.RuneSelf
			beyond = beyond || re.Rune[i] > 0xFF
		}
		if nonASCII {
			n += e.wide
		}
		if beyond {
			n += e.hidden
		}
		return max(n, 1)
	case syntax.OpAnyCharNotNL:
		return 2 + e.wide + e.hidden
	case syntax.OpAnyChar:
		return 1 + e.wide + e.hidden
	case syntax.OpCapture:
		return 2 + e.size(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		if nullable(re.Sub[0]) {
			return 4 + e.size(re.Sub[0]) // RE2 guards the empty loop
		}
		return 2 + e.size(re.Sub[0])
	case syntax.OpRepeat: // written out by Simplify; in case it is not
		return max(re.Min, re.Max, 1) * (4 + e.size(re.Sub[0]))
	case syntax.OpConcat, syntax.OpAlternate:
		n := 0
		if re.Op == syntax.OpAlternate {
			n = len(re.Sub) - 1 // the branches
		}
		for _, sub := range re.Sub {
			n += e.size(sub)
		}
		return max(n, 1)
	}
	return 1 // empty, no match, ^ $ \A \z \b \B
}

// nullable reports whether re can match the empty string.
func nullable(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpLiteral, syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL, syntax.OpNoMatch:
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return nullable(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || nullable(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !nullable(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if nullable(sub) {
				return true
			}
		}
		return false
	}
	return true // empty, star, quest, ^ $ \A \z \b \B
}

// wideEscape returns the first escape in expr of a character above \x{FF}
// (\x{100}, octal \777), which Envoy's RE2 refuses ("invalid escape
// sequence"), or "".
func wideEscape(expr string) string {
	for i := 0; i < len(expr); i++ {
		if expr[i] != '\\' || i+1 == len(expr) {
			continue
		}
		start := i
		i++
		switch c := expr[i]; {
		case c == 'Q': // literal text up to \E
			end := strings.Index(expr[i:], `\E`)
			if end < 0 {
				return ""
			}
			i += end + 1
		case c == 'x' && i+1 < len(expr) && expr[i+1] == '{':
			end := strings.IndexByte(expr[i:], '}')
			if end < 0 {
				return ""
			}
			if v, err := strconv.ParseUint(expr[i+2:i+end], 16, 32); err == nil && v > 0xFF {
				return expr[start : i+end+1]
			}
			i += end
		case c >= '0' && c <= '7':
			j := i + 1
			for j < len(expr) && j < i+3 && expr[j] >= '0' && expr[j] <= '7' {
				j++
			}
			if v, _ := strconv.ParseUint(expr[i:j], 8, 32); v > 0xFF {
				return expr[start:j]
			}
			i = j - 1
		}
	}
	return ""
}

// oneOfRegex is the regex Envoy matches a header against when it must
// equal one of several values (tenants, methods): an anchored alternation
// of the values quoted, as the translator writes it (xds oneOfHeader).
func oneOfRegex(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = regexp.QuoteMeta(v)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}

// regex checks that s compiles with Go's regexp, whose syntax is RE2's, the
// engine Envoy uses, and that Envoy will accept it: no escape above
// \x{FF}, and a program within MaxRegexProgramSize.
func (c *checker) regex(path, s string) bool {
	if _, err := regexp.Compile(s); err != nil {
		c.add(path, "invalid RE2 regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		return false
	}
	if e := wideEscape(s); e != "" {
		c.add(path, "Envoy's RE2 refuses escapes above \\x{FF} (got %s)", clip(e))
		return false
	}
	if n := regexProgramSize(s); n > MaxRegexProgramSize {
		c.add(path, "%s", programTooLarge(n, "simplify it: fewer characters, classes, alternatives or repetitions"))
		return false
	}
	return true
}

// oneOf checks that Envoy accepts the regex it is given for values (see
// oneOfRegex); values are valid and distinct, and more than one.
func (c *checker) oneOf(path string, values []string, what string) {
	if len(values) < 2 {
		return
	}
	if n := regexProgramSize(oneOfRegex(values)); n > MaxRegexProgramSize {
		c.add(path, "%d %s are matched by Envoy as one regex; %s", len(values), what,
			programTooLarge(n, "list fewer or shorter "+what))
	}
}

func programTooLarge(n int, hint string) string {
	return fmt.Sprintf("its RE2 program would have up to %d instructions, and Envoy refuses more than %d (runtime re2.max_program_size.error_level): %s",
		n, MaxRegexProgramSize, hint)
}
