package compare

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SegmentKind says what one step of a JSON path selects.
type SegmentKind uint8

// Segment kinds.
const (
	SegmentField    SegmentKind = iota + 1 // .name or ['name']: one member of an object
	SegmentAnyField                        // .*: every member of an object
	SegmentIndex                           // [N]: one element of an array
	SegmentAnyIndex                        // [*]: every element of an array
)

// PathSegment is one step of a JSON path.
type PathSegment struct {
	Kind  SegmentKind
	Name  string // SegmentField
	Index int    // SegmentIndex, >= 0
}

// String renders the segment as it is written in a path.
func (s PathSegment) String() string {
	switch s.Kind {
	case SegmentField:
		if isDotName(s.Name) {
			return "." + s.Name
		}
		r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
		return "['" + r.Replace(s.Name) + "']"
	case SegmentAnyField:
		return ".*"
	case SegmentIndex:
		return "[" + strconv.Itoa(s.Index) + "]"
	case SegmentAnyIndex:
		return "[*]"
	}
	return "<invalid segment>"
}

// FormatPath renders segments as a path that ParsePath reads back.
func FormatPath(segs []PathSegment) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, s := range segs {
		b.WriteString(s.String())
	}
	return b.String()
}

// maxPathIndex bounds [N]; no JSON body shadowlab compares has more elements.
const maxPathIndex = 1<<31 - 1

// ParsePath parses a JSON path in the subset of JSONPath that compare rules
// use: "$" (the whole body) followed by any number of
//
//	.name          a member; name is letters, digits, '_', '-' and '$'
//	['any name']   a member, quoted; \' and \\ are the only escapes
//	.*             every member of an object
//	[N]            element N (0-based) of an array
//	[*]            every element of an array
//
// Filters, slices, unions, negative indexes and recursive descent (..) are
// not supported. Errors give the byte offset of the problem.
func ParsePath(s string) ([]PathSegment, error) {
	if s == "" {
		return nil, errors.New(`empty path (a path starts with "$")`)
	}
	if s[0] != '$' {
		return nil, errors.New(`must start with "$"`)
	}
	segs := []PathSegment{}
	i := 1
	for i < len(s) {
		switch s[i] {
		case '.':
			i++
			if i < len(s) && s[i] == '.' {
				return nil, fmt.Errorf("recursive descent (..) at offset %d is not supported", i-1)
			}
			if i < len(s) && s[i] == '*' {
				segs = append(segs, PathSegment{Kind: SegmentAnyField})
				i++
				continue
			}
			start := i
			for i < len(s) {
				r, size := utf8.DecodeRuneInString(s[i:])
				if !isNameRune(r) {
					break
				}
				i += size
			}
			if i == start {
				return nil, fmt.Errorf("expected a name or * after '.' at offset %d%s", start-1, found(s, i))
			}
			segs = append(segs, PathSegment{Kind: SegmentField, Name: s[start:i]})
		case '[':
			seg, next, err := parseBracket(s, i)
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
			i = next
		default:
			return nil, fmt.Errorf("expected '.' or '[' at offset %d%s", i, found(s, i))
		}
	}
	return segs, nil
}

// parseBracket parses the [...] segment that starts at s[open].
func parseBracket(s string, open int) (PathSegment, int, error) {
	i := open + 1
	if i >= len(s) {
		return PathSegment{}, 0, fmt.Errorf("unclosed '[' at offset %d", open)
	}
	var seg PathSegment
	switch c := s[i]; {
	case c == '*':
		seg = PathSegment{Kind: SegmentAnyIndex}
		i++
	case c == '\'':
		var name strings.Builder
		i++
		for {
			if i >= len(s) {
				return PathSegment{}, 0, fmt.Errorf("unclosed quote at offset %d", open+1)
			}
			if s[i] == '\'' {
				i++
				break
			}
			if s[i] == '\\' {
				if i+1 >= len(s) || s[i+1] != '\'' && s[i+1] != '\\' {
					return PathSegment{}, 0, fmt.Errorf(`invalid escape at offset %d (only \' and \\ are allowed)`, i)
				}
				i++
			}
			name.WriteByte(s[i])
			i++
		}
		seg = PathSegment{Kind: SegmentField, Name: name.String()}
	case c >= '0' && c <= '9':
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		digits := s[start:i]
		if len(digits) > 1 && digits[0] == '0' {
			return PathSegment{}, 0, fmt.Errorf("index %s at offset %d has a leading zero", digits, start)
		}
		n, err := strconv.Atoi(digits)
		if err != nil || n > maxPathIndex {
			if len(digits) > 12 {
				digits = digits[:12] + "…"
			}
			return PathSegment{}, 0, fmt.Errorf("index %s at offset %d is too large (at most %d)", digits, start, maxPathIndex)
		}
		seg = PathSegment{Kind: SegmentIndex, Index: n}
	case c == '"':
		return PathSegment{}, 0, fmt.Errorf(`use single quotes for names in brackets, ['name'] (offset %d)`, i)
	case c == '-':
		return PathSegment{}, 0, fmt.Errorf("negative index at offset %d is not supported", i)
	default:
		return PathSegment{}, 0, fmt.Errorf("expected an index, * or a 'quoted name' after '[' at offset %d%s", open, found(s, i))
	}
	if i >= len(s) || s[i] != ']' {
		return PathSegment{}, 0, fmt.Errorf("expected ']' at offset %d%s", i, found(s, i))
	}
	return seg, i + 1, nil
}

// found describes what is at s[i] for an error message.
func found(s string, i int) string {
	if i >= len(s) {
		return " (got the end of the path)"
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Sprintf(" (got %q)", r)
}

func isNameRune(r rune) bool {
	return r == '_' || r == '-' || r == '$' || r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

// isDotName reports whether name can be written after a dot.
func isDotName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !isNameRune(r) {
			return false
		}
	}
	return true
}
