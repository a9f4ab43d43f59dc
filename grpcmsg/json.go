package grpcmsg

import (
	"cmp"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// writer appends messages as protobuf's JSON mapping writes them, with the
// options Decode documents (proto field names, enums by name, default
// values left out). It does what protojson does for everything but Any,
// FieldMask, extensions and the values protojson refuses (invalid UTF-8,
// timestamps out of range, ...): for those it sets fallback and the
// message is written by protojson instead. It writes what the direct
// decoder (wire.go) leaves alone, and the messages of descriptors that did
// not come from Files or Reflection, 2 to 3 times as fast as protojson
// (BenchmarkDecode).
//
// While writing it collects the numbers of unknown fields.
type writer struct {
	buf      []byte
	unknown  []int32
	fallback bool

	// The direct decoder's (wire.go) scratch: occs and entries are used
	// as stacks, counts and tmp by one sort at a time.
	occs    []occurrence
	entries []entry
	counts  []int32
	tmp     []occurrence
}

// Bounds of what protojson writes as a Timestamp (years 1 to 9999) and a
// Duration (10,000 years).
const (
	minTimestamp   = -62135596800
	maxTimestamp   = 253402300799
	maxDuration    = 315576000000
	maxNanos       = 999999999
	protobufPrefix = "google.protobuf"
)

func (w *writer) message(m protoreflect.Message) {
	md := m.Descriptor()
	if raw := m.GetUnknown(); len(raw) > 0 {
		w.unknown = appendUnknownNumbers(w.unknown, raw)
	}
	if md.FullName().Parent() == protobufPrefix && w.wellKnown(m) {
		return
	}
	if md.ExtensionRanges().Len() > 0 && hasExtension(m) {
		w.fallback = true
		return
	}
	w.buf = append(w.buf, '{')
	fields := md.Fields()
	first := true
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		if !first {
			w.buf = append(w.buf, ',')
		}
		first = false
		w.buf = append(w.buf, '"')
		w.buf = append(w.buf, fd.TextName()...)
		w.buf = append(w.buf, '"', ':')
		w.value(fd, m.Get(fd))
		if w.fallback {
			return
		}
	}
	w.buf = append(w.buf, '}')
}

// hasExtension reports whether an extension of m is set.
func hasExtension(m protoreflect.Message) bool {
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		found = fd.IsExtension()
		return !found
	})
	return found
}

// wellKnown writes the google.protobuf types whose JSON form is not an
// object of their fields, reporting false for the others.
func (w *writer) wellKnown(m protoreflect.Message) bool {
	md := m.Descriptor()
	first := md.Fields().ByNumber(1)
	switch md.Name() {
	case "Timestamp", "Duration":
		secs, nanos, ok := secondsNanos(m)
		switch {
		case !ok:
			w.fallback = true
		case md.Name() == "Timestamp":
			w.timestamp(secs, nanos)
		default:
			w.duration(secs, nanos)
		}
	case "BoolValue", "Int32Value", "Int64Value", "UInt32Value", "UInt64Value",
		"FloatValue", "DoubleValue", "StringValue", "BytesValue":
		if first == nil {
			w.fallback = true
			break
		}
		w.singular(first, m.Get(first)) // written even when it is the default
	case "Struct":
		if first == nil || !first.IsMap() {
			w.fallback = true
			break
		}
		w.mapValue(first, m.Get(first).Map())
	case "ListValue":
		if first == nil || !first.IsList() {
			w.fallback = true
			break
		}
		w.list(first, m.Get(first).List())
	case "Value":
		w.knownValue(m)
	case "Any", "FieldMask":
		w.fallback = true
	default:
		return false
	}
	return true
}

// secondsNanos reads a Timestamp's or a Duration's two fields.
func secondsNanos(m protoreflect.Message) (secs, nanos int64, ok bool) {
	fds := m.Descriptor().Fields()
	s, n := fds.ByNumber(1), fds.ByNumber(2)
	if s == nil || n == nil || s.Kind() != protoreflect.Int64Kind || n.Kind() != protoreflect.Int32Kind {
		return 0, 0, false
	}
	return m.Get(s).Int(), m.Get(n).Int(), true
}

// timestamp writes RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
func (w *writer) timestamp(secs, nanos int64) {
	if secs < minTimestamp || secs > maxTimestamp || nanos < 0 || nanos > maxNanos {
		w.fallback = true // protojson's error says what is wrong
		return
	}
	w.buf = append(w.buf, '"')
	w.buf = time.Unix(secs, 0).UTC().AppendFormat(w.buf, "2006-01-02T15:04:05")
	w.buf = appendFraction(w.buf, nanos)
	w.buf = append(w.buf, 'Z', '"')
}

// duration writes seconds with 0, 3, 6 or 9 fractional digits and "s".
func (w *writer) duration(secs, nanos int64) {
	if secs < -maxDuration || secs > maxDuration || nanos < -maxNanos || nanos > maxNanos ||
		secs > 0 && nanos < 0 || secs < 0 && nanos > 0 {
		w.fallback = true
		return
	}
	w.buf = append(w.buf, '"')
	if secs < 0 || nanos < 0 {
		w.buf = append(w.buf, '-')
		secs, nanos = -secs, -nanos
	}
	w.buf = strconv.AppendInt(w.buf, secs, 10)
	w.buf = appendFraction(w.buf, nanos)
	w.buf = append(w.buf, 's', '"')
}

// appendFraction appends nanos (0 to 999999999) as a fraction of a second
// in as few of 3, 6 or 9 digits as hold it, nothing for 0.
func appendFraction(b []byte, nanos int64) []byte {
	digits := 9
	switch {
	case nanos == 0:
		return b
	case nanos%1e6 == 0:
		digits, nanos = 3, nanos/1e6
	case nanos%1e3 == 0:
		digits, nanos = 6, nanos/1e3
	}
	var d [9]byte
	for i := digits - 1; i >= 0; i-- {
		d[i] = byte('0' + nanos%10)
		nanos /= 10
	}
	b = append(b, '.')
	return append(b, d[:digits]...)
}

// knownValue writes a google.protobuf.Value as the JSON value it holds.
func (w *writer) knownValue(m protoreflect.Message) {
	od := m.Descriptor().Oneofs().ByName("kind")
	if od == nil {
		w.fallback = true
		return
	}
	fd := m.WhichOneof(od)
	if fd == nil {
		w.fallback = true // protojson refuses a Value with nothing set
		return
	}
	v := m.Get(fd)
	if fd.Kind() == protoreflect.DoubleKind {
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			w.fallback = true // and one that holds no JSON number
			return
		}
	}
	w.singular(fd, v)
}

func (w *writer) value(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch {
	case fd.IsList():
		w.list(fd, v.List())
	case fd.IsMap():
		w.mapValue(fd, v.Map())
	default:
		w.singular(fd, v)
	}
}

func (w *writer) list(fd protoreflect.FieldDescriptor, l protoreflect.List) {
	w.buf = append(w.buf, '[')
	for i := range l.Len() {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.singular(fd, l.Get(i))
		if w.fallback {
			return
		}
	}
	w.buf = append(w.buf, ']')
}

// mapValue writes a map as an object, its keys as strings in protojson's
// order (false before true, numbers ascending, strings by their bytes), so
// that the text does not vary with map iteration.
func (w *writer) mapValue(fd protoreflect.FieldDescriptor, mp protoreflect.Map) {
	if mp.Len() == 0 {
		w.buf = append(w.buf, '{', '}')
		return
	}
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	kind := fd.MapKey().Kind()
	switch kind {
	case protoreflect.BoolKind:
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
			return cmp.Compare(b2i(a.Bool()), b2i(b.Bool()))
		})
	case protoreflect.StringKind:
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return cmp.Compare(a.Uint(), b.Uint()) })
	default:
		slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return cmp.Compare(a.Int(), b.Int()) })
	}
	vd := fd.MapValue()
	w.buf = append(w.buf, '{')
	for i, k := range keys {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		switch kind {
		case protoreflect.StringKind:
			w.string(k.String())
		case protoreflect.BoolKind:
			w.buf = append(w.buf, '"')
			w.buf = strconv.AppendBool(w.buf, k.Bool())
			w.buf = append(w.buf, '"')
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			w.buf = append(w.buf, '"')
			w.buf = strconv.AppendUint(w.buf, k.Uint(), 10)
			w.buf = append(w.buf, '"')
		default:
			w.buf = append(w.buf, '"')
			w.buf = strconv.AppendInt(w.buf, k.Int(), 10)
			w.buf = append(w.buf, '"')
		}
		w.buf = append(w.buf, ':')
		w.singular(vd, mp.Get(k))
		if w.fallback {
			return
		}
	}
	w.buf = append(w.buf, '}')
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// singular writes one value of fd's kind (an element, for a list).
func (w *writer) singular(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		w.buf = strconv.AppendBool(w.buf, v.Bool())
	case protoreflect.StringKind:
		w.string(v.String())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		w.buf = strconv.AppendInt(w.buf, v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		w.buf = strconv.AppendUint(w.buf, v.Uint(), 10)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		w.buf = append(w.buf, '"')
		w.buf = strconv.AppendInt(w.buf, v.Int(), 10)
		w.buf = append(w.buf, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		w.buf = append(w.buf, '"')
		w.buf = strconv.AppendUint(w.buf, v.Uint(), 10)
		w.buf = append(w.buf, '"')
	case protoreflect.FloatKind:
		w.buf = appendFloat(w.buf, v.Float(), 32)
	case protoreflect.DoubleKind:
		w.buf = appendFloat(w.buf, v.Float(), 64)
	case protoreflect.BytesKind:
		w.buf = append(w.buf, '"')
		w.buf = base64.StdEncoding.AppendEncode(w.buf, v.Bytes())
		w.buf = append(w.buf, '"')
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == protobufPrefix+".NullValue" {
			w.buf = append(w.buf, "null"...)
			break
		}
		if ev := ed.Values().ByNumber(v.Enum()); ev != nil {
			w.buf = append(w.buf, '"')
			w.buf = append(w.buf, ev.Name()...)
			w.buf = append(w.buf, '"')
			break
		}
		w.buf = strconv.AppendInt(w.buf, int64(v.Enum()), 10) // a value newer than the descriptor
	case protoreflect.MessageKind, protoreflect.GroupKind:
		w.message(v.Message())
	default:
		w.fallback = true
	}
}

// appendFloat writes a float as a JSON number: plain decimals from 1e-6
// up to 1e21 and exponents outside, the shortest digits that read back as
// the same float32 or float64. NaN and the infinities, which JSON has no
// numbers for, are the strings protobuf's JSON mapping names them by.
func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	a := math.Abs(f)
	plain := a == 0 || a >= 1e-6 && a < 1e21
	if bits == 32 {
		a32 := float32(a) // compared as a float32, so float32(1e-6) itself is plain
		plain = a32 == 0 || a32 >= 1e-6 && a32 < 1e21
	}
	if plain {
		return strconv.AppendFloat(b, f, 'f', -1, bits)
	}
	b = strconv.AppendFloat(b, f, 'e', -1, bits)
	// Go writes at least two exponent digits ("1e-07"); JSON needs none
	// of the padding, and protojson writes "1e-7".
	if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1]
		b = b[:n-1]
	}
	return b
}

// string writes s as a JSON string, escaping what JSON requires. Text
// that is not UTF-8 is left to protojson, which refuses it.
func (w *writer) string(s string) {
	if !utf8.ValidString(s) {
		w.fallback = true
		return
	}
	w.buf = appendString(w.buf, s)
}

// appendString appends s, valid UTF-8, as a JSON string.
func appendString[T string | []byte](buf []byte, s T) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
