package compare

import (
	"encoding/binary"
	"math"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// kind is the JSON type of a node. true and false are separate kinds so
// that a node never needs its bytes re-read to know its value; sameType
// treats them as one type.
type kind uint8

const (
	kindNull kind = iota + 1
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

// sameType reports whether two kinds are the same JSON type.
func sameType(a, b kind) bool {
	return a == b || (a == kindFalse || a == kindTrue) && (b == kindFalse || b == kindTrue)
}

// node is one JSON value in a document's tape. Values are laid out in
// document order: an object is followed by its members, each a key (a
// string node) then the value's nodes; an array by its elements.
type node struct {
	start, end uint32 // the value's bytes in the source; strings keep their quotes
	next       uint32 // tape index just after this value and everything in it
	n          uint32 // members of an object, elements of an array
	kind       kind
	esc        bool // a string with at least one backslash escape
}

// doc is a parsed JSON text: the source and its tape. A doc is reused
// between parses to spare allocations.
type doc struct {
	src   []byte
	tape  []node
	stack []uint32
}

// maxDepth bounds nesting; deeper texts are treated as not JSON (and
// compared as bytes). encoding/json allows 10 000; APIs nest a few dozen
// levels, and every level lengthens every path rendered below it.
const maxDepth = 1000

// maxJSONBytes bounds what parse accepts, so that offsets fit a uint32.
const maxJSONBytes = math.MaxUint32 - 1

// strSafe marks the bytes that need no attention inside a JSON string.
var strSafe = func() (t [256]bool) {
	for i := range t {
		t[i] = i >= 0x20 && i != '"' && i != '\\'
	}
	return t
}()

// isSpace marks JSON whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func skipSpace(src []byte, i int) int {
	if i < len(src) && src[i] > ' ' {
		return i
	}
	for i < len(src) && isSpace(src[i]) {
		i++
	}
	return i
}

// parse reads src as one JSON text (RFC 8259; strings are not checked for
// valid UTF-8, as encoding/json does not). It reports whether src is JSON.
func (d *doc) parse(src []byte) bool {
	d.src = src
	if len(src) > maxJSONBytes {
		return false
	}
	tape := d.tape[:0]
	if cap(tape) < len(src)/8 {
		tape = make([]node, 0, len(src)/8+16)
	}
	var ok bool
	d.tape, d.stack, ok = parseTape(src, tape, d.stack[:0])
	return ok
}

// parseTape is parse on locals, not d's fields, so that the slice headers
// stay in registers.
func parseTape(src []byte, tape []node, stack []uint32) ([]node, []uint32, bool) {
	i := skipSpace(src, 0)
	var ok bool
	for {
		// A value starts at i.
		if i >= len(src) {
			return tape, stack, false
		}
		at := uint32(i)
		t := uint32(len(tape))
		switch c := src[i]; c {
		case '{', '[':
			k := kindObject
			closer := byte('}')
			if c == '[' {
				k, closer = kindArray, ']'
			}
			if len(stack) >= maxDepth {
				return tape, stack, false
			}
			tape = append(tape, node{start: at, kind: k})
			i = skipSpace(src, i+1)
			if i < len(src) && src[i] == closer {
				i++
				tape[t].end, tape[t].next = uint32(i), t+1
				break
			}
			stack = append(stack, t)
			if k == kindObject {
				if tape, i, ok = parseKey(src, tape, i); !ok {
					return tape, stack, false
				}
			}
			continue
		case '"':
			end, esc, ok := scanString(src, i)
			if !ok {
				return tape, stack, false
			}
			tape = append(tape, node{start: at, end: uint32(end), next: t + 1, kind: kindString, esc: esc})
			i = end
		case 't', 'f', 'n':
			lit, k := "null", kindNull
			if c == 't' {
				lit, k = "true", kindTrue
			} else if c == 'f' {
				lit, k = "false", kindFalse
			}
			if len(src)-i < len(lit) || string(src[i:i+len(lit)]) != lit {
				return tape, stack, false
			}
			i += len(lit)
			tape = append(tape, node{start: at, end: uint32(i), next: t + 1, kind: k})
		default:
			end, ok := scanNumber(src, i)
			if !ok {
				return tape, stack, false
			}
			i = end
			tape = append(tape, node{start: at, end: uint32(i), next: t + 1, kind: kindNumber})
		}
		// A value ended at i: close the containers it completes.
		for {
			i = skipSpace(src, i)
			if len(stack) == 0 {
				return tape, stack, i == len(src)
			}
			if i >= len(src) {
				return tape, stack, false
			}
			top := &tape[stack[len(stack)-1]]
			top.n++
			c := src[i]
			if c == ',' {
				i = skipSpace(src, i+1)
				if top.kind == kindObject {
					if tape, i, ok = parseKey(src, tape, i); !ok {
						return tape, stack, false
					}
				}
				break
			}
			if c == '}' && top.kind == kindObject || c == ']' && top.kind == kindArray {
				i++
				top.end, top.next = uint32(i), uint32(len(tape))
				stack = stack[:len(stack)-1]
				continue
			}
			return tape, stack, false
		}
	}
}

// parseKey reads an object key and its colon at src[i]; it returns where
// the value starts.
func parseKey(src []byte, tape []node, i int) ([]node, int, bool) {
	if i >= len(src) || src[i] != '"' {
		return tape, 0, false
	}
	end, esc, ok := scanString(src, i)
	if !ok {
		return tape, 0, false
	}
	t := uint32(len(tape))
	tape = append(tape, node{start: uint32(i), end: uint32(end), next: t + 1, kind: kindString, esc: esc})
	i = end
	if i < len(src) && src[i] == ':' {
		i++
	} else {
		i = skipSpace(src, i)
		if i >= len(src) || src[i] != ':' {
			return tape, 0, false
		}
		i++
	}
	return tape, skipSpace(src, i), true
}

// scanString checks the string whose opening quote is src[i] and returns
// the index just past its closing quote.
func scanString(src []byte, i int) (end int, esc, ok bool) {
	j := i + 1
	for {
		j = skipStringSafe(src, j)
		if j >= len(src) {
			return 0, false, false
		}
		switch src[j] {
		case '"':
			return j + 1, esc, true
		case '\\':
			esc = true
			if j+1 >= len(src) {
				return 0, false, false
			}
			switch src[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(src) {
					return 0, false, false
				}
				for _, h := range src[j+2 : j+6] {
					if hexVal(h) < 0 {
						return 0, false, false
					}
				}
				j += 6
			default:
				return 0, false, false
			}
		default: // a control character
			return 0, false, false
		}
	}
}

// skipStringSafe returns the index of the first byte at or after j that
// is a quote, a backslash or a control character (or len(src)), eight
// bytes at a time with the classic has-zero-byte and has-less-than tricks:
// the lowest flagged byte of a word is always a true match.
func skipStringSafe(src []byte, j int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; j+8 <= len(src); j += 8 {
		x := binary.LittleEndian.Uint64(src[j:])
		q := x ^ (ones * '"')
		b := x ^ (ones * '\\')
		m := (q-ones)&^q | (b-ones)&^b | (x-ones*0x20)&^x
		if m &= highs; m != 0 {
			return j + bits.TrailingZeros64(m)>>3
		}
	}
	for j < len(src) && strSafe[src[j]] {
		j++
	}
	return j
}

// scanNumber checks the number that starts at src[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(src []byte, i int) (int, bool) {
	if i < len(src) && src[i] == '-' {
		i++
	}
	switch {
	case i >= len(src):
		return 0, false
	case src[i] == '0':
		i++
	case src[i] >= '1' && src[i] <= '9':
		i = digits(src, i+1)
	default:
		return 0, false
	}
	if i < len(src) && src[i] == '.' {
		j := digits(src, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		j := digits(src, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(src []byte, i int) int {
	for i < len(src) && src[i] >= '0' && src[i] <= '9' {
		i++
	}
	return i
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// raw returns the source bytes of tape node t.
func (d *doc) raw(t uint32) []byte {
	n := &d.tape[t]
	return d.src[n.start:n.end]
}

// str returns the content of string node t: the bytes between the quotes
// when it has no escapes, else its decoded value appended to buf.
func (d *doc) str(t uint32, buf []byte) []byte {
	n := &d.tape[t]
	inner := d.src[n.start+1 : n.end-1]
	if !n.esc {
		return inner
	}
	return unescape(inner, buf[:0])
}

// unescape appends the decoded value of a valid JSON string's content to
// buf. Lone surrogates become U+FFFD, as in encoding/json.
func unescape(s, buf []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < len(s) && s[j] != '\\' {
				j++
			}
			buf = append(buf, s[i:j]...)
			i = j
			continue
		}
		e := s[i+1]
		i += 2
		switch e {
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r := rune(hex4(s[i:]))
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = utf16.DecodeRune(r, rune(hex4(s[i+2:])))
					if r2 != utf8.RuneError {
						i += 6
					}
				}
				r = r2
			}
			buf = utf8.AppendRune(buf, r)
		default: // '"', '\\', '/'
			buf = append(buf, e)
		}
	}
	return buf
}

func hex4(s []byte) int {
	return hexVal(s[0])<<12 | hexVal(s[1])<<8 | hexVal(s[2])<<4 | hexVal(s[3])
}

// looksJSON reports whether a body without a content type starts like a
// JSON object or array.
func looksJSON(b []byte) bool {
	i := skipSpace(b, 0)
	return i < len(b) && (b[i] == '{' || b[i] == '[')
}
