package wire

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON is read and written by hand here instead of with encoding/json: the
// reflection-based decoder adds ~0.75 MB to the plugin, which on Envoy 1.40
// costs ~0.9 s of V8 compilation on the main thread and ~15 MB of RSS for
// every load of the module (measured, see wasm/README.md). What crosses the
// boundary is flat: objects of scalars, and arrays of numbers.

// jsonValue is one value of a flat JSON object: a string, the literal text
// of a number, true, false or null, or an array of numbers.
type jsonValue struct {
	str    string
	lit    string   // number or literal, as written
	list   []string // the numbers of an array, as written
	isText bool
	isList bool
}

// parseFlatObject parses a JSON object whose values are scalars (strings,
// numbers, true, false, null) or arrays of numbers. Nested objects, other
// arrays, duplicate keys and trailing data are errors.
func parseFlatObject(data []byte) (map[string]jsonValue, error) {
	s := scanner{data: data}
	s.ws()
	if !s.eat('{') {
		return nil, s.fail("expected '{'")
	}
	out := map[string]jsonValue{}
	s.ws()
	if s.eat('}') {
		return out, s.end()
	}
	for {
		s.ws()
		key, err := s.str()
		if err != nil {
			return nil, err
		}
		if _, dup := out[key]; dup {
			return nil, s.fail("duplicate key " + strconv.Quote(key))
		}
		s.ws()
		if !s.eat(':') {
			return nil, s.fail("expected ':'")
		}
		s.ws()
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		out[key] = v
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return out, s.end()
		}
		return nil, s.fail("expected ',' or '}'")
	}
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) fail(msg string) error {
	return errors.New(msg + " at offset " + strconv.Itoa(s.pos))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *scanner) end() error {
	s.ws()
	if s.pos != len(s.data) {
		return s.fail("unexpected data after the object")
	}
	return nil
}

func (s *scanner) value() (jsonValue, error) {
	if s.pos >= len(s.data) {
		return jsonValue{}, s.fail("expected a value")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		str, err := s.str()
		return jsonValue{str: str, isText: true}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == '[':
		return s.numbers()
	case c == '{':
		return jsonValue{}, s.fail("nested objects are not supported")
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
			s.pos += len(lit)
			return jsonValue{lit: lit}, nil
		}
	}
	return jsonValue{}, s.fail("expected a value")
}

// number scans the JSON number grammar and keeps its text.
func (s *scanner) number() (jsonValue, error) {
	start := s.pos
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.digits() == 0:
		return jsonValue{}, s.fail("malformed number")
	}
	if s.eat('.') && s.digits() == 0 {
		return jsonValue{}, s.fail("malformed number")
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return jsonValue{}, s.fail("malformed number")
		}
	}
	return jsonValue{lit: string(s.data[start:s.pos])}, nil
}

// numbers scans an array of numbers.
func (s *scanner) numbers() (jsonValue, error) {
	s.pos++ // the '['
	v := jsonValue{isList: true, list: []string{}}
	s.ws()
	if s.eat(']') {
		return v, nil
	}
	for {
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != '-' && (s.data[s.pos] < '0' || s.data[s.pos] > '9') {
			return jsonValue{}, s.fail("arrays may hold numbers only")
		}
		n, err := s.number()
		if err != nil {
			return jsonValue{}, err
		}
		v.list = append(v.list, n.lit)
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat(']') {
			return v, nil
		}
		return jsonValue{}, s.fail("expected ',' or ']'")
	}
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

// str scans a JSON string and decodes its escapes.
func (s *scanner) str() (string, error) {
	if !s.eat('"') {
		return "", s.fail("expected a string")
	}
	var b []byte
	for {
		if s.pos >= len(s.data) {
			return "", s.fail("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return string(b), nil
		case c < 0x20:
			return "", s.fail("control character in string")
		case c == '\\':
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			b = utf8.AppendRune(b, r)
		default:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", s.fail("invalid UTF-8 in string")
			}
			b = append(b, s.data[s.pos:s.pos+size]...)
			s.pos += size
		}
	}
}

func (s *scanner) escape() (rune, error) {
	s.pos++ // the backslash
	if s.pos >= len(s.data) {
		return 0, s.fail("unterminated escape")
	}
	c := s.data[s.pos]
	s.pos++
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return 0, err
		}
		if utf16.IsSurrogate(r) {
			if len(s.data)-s.pos >= 6 && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
				save := s.pos
				s.pos += 2
				r2, err := s.hex4()
				if err == nil {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						return d, nil
					}
				}
				s.pos = save
			}
			return utf8.RuneError, nil // a lone surrogate, as encoding/json does
		}
		return r, nil
	}
	return 0, s.fail("invalid escape")
}

func (s *scanner) hex4() (rune, error) {
	if len(s.data)-s.pos < 4 {
		return 0, s.fail("short \\u escape")
	}
	n, err := strconv.ParseUint(string(s.data[s.pos:s.pos+4]), 16, 32)
	if err != nil {
		return 0, s.fail("invalid \\u escape")
	}
	s.pos += 4
	return rune(n), nil
}

// appendJSONString appends s as a JSON string. Header values are bytes:
// valid UTF-8 is kept as is, every byte of invalid UTF-8 becomes \ufffd
// (as encoding/json does); quote, backslash and control characters are
// escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
			i++
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			i++
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return append(b, '"')
}
