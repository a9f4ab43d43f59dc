package grpcmsg

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// everyKind is an Item with a value in every field but detail (an Any).
const everyKind = `{
	"id": "i-1",
	"display_name": "Red \"mug\"\n\t\u0001 é 😀 \u2028 <b>",
	"state": "STATE_ACTIVE",
	"lines": [{"sku": "m-1", "quantity": 2, "price_cents": "1299"}, {"sku": "m-2"}],
	"stock_by_site": {"ber": "12", "ams": "0"},
	"updated_at": "2024-05-01T12:00:00.500Z",
	"thumbnail": "AAEC/w==",
	"rating": 4.5,
	"weight_kg": 0.25,
	"in_stock": true,
	"views": "18446744073709551615",
	"delta": -3,
	"checksum": "42",
	"min_order": 0,
	"coupon": "SPRING",
	"lines_by_no": {"2": {"sku": "m-2"}, "-1": {"sku": "m-0"}},
	"ttl": "-1.500s",
	"note": "",
	"attributes": {"a": 1, "b": [true, null, "x"], "c": {"d": "e"}},
	"history": ["STATE_RETIRED", "STATE_ACTIVE"],
	"flags": {"true": "yes", "false": "no"},
	"extra": null,
	"rank": 7,
	"shelf": 8,
	"aisle": -9,
	"serial": "-9223372036854775808",
	"offset": -2147483648,
	"samples": [0, -0.5, 1e-7, 1e21, 123456789.125, "NaN", "Infinity", "-Infinity"],
	"seen": {"18446744073709551615": true, "0": false},
	"counts": ["0", "-5"],
	"tags": ["a", 1.5, {"b": false}]
}`

func TestDecode(t *testing.T) {
	v1, v2 := loadFiles(t, "v1"), loadFiles(t, "v2")
	get, list := methodOf(t, v1, "/test.v1.Shop/Get"), methodOf(t, v1, "/test.v1.Shop/List")
	item := get.Output()
	types := get.(*method).types
	msg := func(js string) []byte { return wire(t, item, types, js) }
	get2 := methodOf(t, v2, "/test.v1.Shop/Get")
	msg2 := func(js string) []byte { return wire(t, get2.Output(), get2.(*method).types, js) }

	tests := map[string]struct {
		md   protoreflect.MethodDescriptor
		msgs [][]byte
		want string // JSON
	}{
		"every kind": {md: get, msgs: [][]byte{msg(everyKind)}, want: `{
			"id": "i-1",
			"display_name": "Red \"mug\"\n\t\u0001 é 😀 \u2028 <b>",
			"state": "STATE_ACTIVE",
			"lines": [{"sku": "m-1", "quantity": 2, "price_cents": "1299"}, {"sku": "m-2"}],
			"stock_by_site": {"ams": "0", "ber": "12"},
			"updated_at": "2024-05-01T12:00:00.500Z",
			"thumbnail": "AAEC/w==",
			"rating": 4.5,
			"weight_kg": 0.25,
			"in_stock": true,
			"views": "18446744073709551615",
			"delta": -3,
			"checksum": "42",
			"min_order": 0,
			"coupon": "SPRING",
			"lines_by_no": {"-1": {"sku": "m-0"}, "2": {"sku": "m-2"}},
			"ttl": "-1.500s",
			"note": "",
			"attributes": {"a": 1, "b": [true, null, "x"], "c": {"d": "e"}},
			"history": ["STATE_RETIRED", "STATE_ACTIVE"],
			"flags": {"false": "no", "true": "yes"},
			"extra": null,
			"rank": 7,
			"shelf": 8,
			"aisle": -9,
			"serial": "-9223372036854775808",
			"offset": -2147483648,
			"samples": [0, -0.5, 1e-7, 1e21, 123456789.125, "NaN", "Infinity", "-Infinity"],
			"seen": {"0": false, "18446744073709551615": true},
			"counts": ["0", "-5"],
			"tags": ["a", 1.5, {"b": false}]
		}`},
		"defaults left out": {
			md:   get,
			msgs: [][]byte{msg(`{"id": "", "state": "STATE_UNSPECIFIED", "lines": [], "rating": 0, "in_stock": false}`)},
			want: `{}`,
		},
		"empty message": {md: get, msgs: [][]byte{{}}, want: `{}`},
		"an enum value newer than the descriptor": {
			md:   get,
			msgs: [][]byte{msg(`{"state": 7, "history": [1, 9]}`)},
			want: `{"state": 7, "history": ["STATE_ACTIVE", 9]}`,
		},
		"any": {
			md:   get,
			msgs: [][]byte{msg(`{"id": "i-2", "detail": {"@type": "type.googleapis.com/test.v1.Line", "sku": "in-any"}}`)},
			want: `{"id": "i-2", "detail": {"@type": "type.googleapis.com/test.v1.Line", "sku": "in-any"}}`,
		},
		"timestamps and durations": {
			md: get,
			msgs: [][]byte{msg(`{"updated_at": "0001-01-01T00:00:00Z", "ttl": "0.000000001s",
				"attributes": {}, "tags": [], "extra": {"x": []}}`)},
			want: `{"updated_at": "0001-01-01T00:00:00Z", "ttl": "0.000000001s",
				"attributes": {}, "tags": [], "extra": {"x": []}}`,
		},
		"stream": {
			md:   list,
			msgs: [][]byte{msg(`{"id": "a"}`), msg(`{"id": "b", "lines": [{"sku": "s"}]}`), {}},
			want: `[{"id": "a"}, {"id": "b", "lines": [{"sku": "s"}]}, {}]`,
		},
		"empty stream":     {md: list, msgs: nil, want: `[]`},
		"stream of one":    {md: list, msgs: [][]byte{msg(`{"id": "a"}`)}, want: `[{"id": "a"}]`},
		"names of its own": {md: get2, msgs: [][]byte{msg(`{"id": "i-1", "display_name": "mug"}`)}, want: `{"id": "i-1", "title": "mug"}`},
		"a newer service's fields in a message it does not use": {
			md:   get,
			msgs: [][]byte{msg2(`{"id": "i-1", "title": "mug"}`)},
			want: `{"id": "i-1", "display_name": "mug"}`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(tt.md, tt.msgs)
			require.NoError(t, err)
			require.True(t, json.Valid(got), "%s", got)
			require.JSONEq(t, tt.want, string(got))
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	v1, v2 := loadFiles(t, "v1"), loadFiles(t, "v2")
	get, list := methodOf(t, v1, "/test.v1.Shop/Get"), methodOf(t, v1, "/test.v1.Shop/List")
	msg := func(js string) []byte { return wire(t, get.Output(), get.(*method).types, js) }
	get2 := methodOf(t, v2, "/test.v1.Shop/Get")
	msg2 := func(js string) []byte { return wire(t, get2.Output(), get2.(*method).types, js) }
	bad := []byte{0x0a, 0x05, 'a'} // field 1, 5 bytes, 1 there

	tests := map[string]struct {
		md      protoreflect.MethodDescriptor
		msgs    [][]byte
		err     string              // part of the error
		unknown *UnknownFieldsError // the error, when it is one
	}{
		"unary without a message": {md: get, msgs: nil, err: "test.v1.Shop.Get: no message"},
		"unary with two":          {md: get, msgs: [][]byte{{}, {}}, err: "test.v1.Shop.Get: 2 messages (a unary method answers one)"},
		"bytes that do not parse": {md: get, msgs: [][]byte{bad}, err: "message 0 does not parse as test.v1.Item"},
		"the second of a stream":  {md: list, msgs: [][]byte{{}, bad}, err: "message 1 does not parse as test.v1.Item"},
		"a field whose type changed": { // the parser keeps a field of another wire type as unknown
			md: get, msgs: [][]byte{{0x08, 0x01}}, // id (a string) as a varint
			unknown: &UnknownFieldsError{Message: 0, Numbers: []int32{1}},
		},
		"unknown fields at the top and nested": {
			md: get,
			msgs: [][]byte{msg2(`{"id": "i-1", "color": "red", "lines": [{"sku": "a"}, {"sku": "b", "discount_cents": "5"}],
				"lines_by_no": {"1": {"discount_cents": "1"}}}`)},
			unknown: &UnknownFieldsError{Message: 0, Numbers: []int32{4, 30}},
		},
		"unknown fields in a map value only": {
			md:      get,
			msgs:    [][]byte{msg2(`{"lines_by_no": {"1": {"discount_cents": "1"}}}`)},
			unknown: &UnknownFieldsError{Message: 0, Numbers: []int32{4}},
		},
		"unknown fields in a stream's second message": {
			md:      list,
			msgs:    [][]byte{msg(`{"id": "a"}`), msg2(`{"lines": [{"discount_cents": "1"}]}`)},
			unknown: &UnknownFieldsError{Message: 1, Numbers: []int32{4}},
		},
		"unknown fields next to an any": {
			md: get,
			msgs: [][]byte{msg2(`{"color": "red", "lines": [{"discount_cents": "1"}],
				"detail": {"@type": "type.googleapis.com/test.v1.Line", "sku": "in-any"}}`)},
			unknown: &UnknownFieldsError{Message: 0, Numbers: []int32{4, 30}},
		},
		"a timestamp out of range": {
			md:   get,
			msgs: [][]byte{timestampOutOfRange(t, get.Output())},
			err:  "seconds out of range",
		},
		"a value with nothing set": {
			md:   get,
			msgs: [][]byte{{0xba, 0x01, 0x00}}, // extra (23): an empty Value
			err:  "none of the oneof fields is set",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Decode(tt.md, tt.msgs)
			require.Error(t, err, "%s", got)
			if tt.unknown != nil {
				var ue *UnknownFieldsError
				require.True(t, errors.As(err, &ue), "%v", err)
				require.Equal(t, tt.unknown, ue)
				return
			}
			require.ErrorContains(t, err, tt.err)
			require.True(t, strings.HasPrefix(err.Error(), "message ") || strings.HasPrefix(err.Error(), "test.v1.Shop."), "%v", err)
		})
	}
}

// timestampOutOfRange is an Item whose updated_at is past year 9999,
// which the wire carries and JSON cannot.
func timestampOutOfRange(t *testing.T, item protoreflect.MessageDescriptor) []byte {
	m := dynamicpb.NewMessage(item)
	fd := item.Fields().ByName("updated_at")
	ts := m.Mutable(fd).Message()
	ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1e12))
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestUnknownFieldsErrorText(t *testing.T) {
	err := &UnknownFieldsError{Message: 2, Numbers: []int32{4, 30}}
	require.Equal(t, "message 2 has fields its descriptor does not declare (numbers 4, 30): the descriptor is out of date", err.Error())
}

// TestWriterMatchesProtojson checks the JSON of both of Decode's paths
// against protojson's on random messages: the same JSON values in the
// same order, and an error from both or neither. The direct path reads
// the wire; the other (for descriptors from elsewhere, and what the direct
// path falls back to) writes a dynamicpb message.
func TestWriterMatchesProtojson(t *testing.T) {
	f := loadFiles(t, "v1")
	get := methodOf(t, f, "/test.v1.Shop/Get")
	order := methodOf(t, f, "/test.v1.Shop/GetOrder")
	types := get.(*method).types
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		md := get
		if i%4 == 3 {
			md = order
		}
		m := dynamicpb.NewMessage(md.Output())
		randomMessage(r, m, 0)
		b, err := proto.Marshal(m)
		require.NoError(t, err)
		want, werr := protojson.MarshalOptions{UseProtoNames: true, Resolver: types}.Marshal(m)

		for path, md := range map[string]protoreflect.MethodDescriptor{
			"direct":           md,
			"dynamicpb+writer": md.(*method).MethodDescriptor,
		} {
			got, err := Decode(md, [][]byte{b})
			if werr != nil {
				require.Error(t, err, "message %d, %s: protojson: %v; Decode: %s", i, path, werr, got)
				continue
			}
			require.NoError(t, err, "message %d, %s: %s", i, path, want)
			require.True(t, json.Valid(got), "message %d, %s: %s", i, path, got)
			require.JSONEq(t, string(want), string(got), "message %d, %s", i, path)
			require.Equal(t, keys(t, want), keys(t, got), "message %d, %s: member order", i, path)
		}
	}
}

// keys are the member names of a JSON object in the order written.
func keys(t *testing.T, js []byte) []string {
	dec := json.NewDecoder(strings.NewReader(string(js)))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var names []string
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		names = append(names, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return names
}

// randomMessage sets about half the fields of m to random values, nested
// messages up to depth 3, well-known types mostly within the ranges JSON
// can write.
func randomMessage(r *rand.Rand, m protoreflect.Message, depth int) {
	md := m.Descriptor()
	fds := md.Fields()
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		m.Set(fds.ByName("seconds"), protoreflect.ValueOfInt64(minTimestamp+r.Int64N(maxTimestamp-minTimestamp+1)+outOfRange(r)))
		m.Set(fds.ByName("nanos"), protoreflect.ValueOfInt32(int32(randomNanos(r))))
		return
	case "google.protobuf.Duration":
		secs, nanos := r.Int64N(maxDuration+1)+outOfRange(r), randomNanos(r)
		if r.IntN(2) == 0 {
			secs, nanos = -secs, -nanos
		}
		m.Set(fds.ByName("seconds"), protoreflect.ValueOfInt64(secs))
		m.Set(fds.ByName("nanos"), protoreflect.ValueOfInt32(int32(nanos)))
		return
	case "google.protobuf.Any":
		return // an empty Any, which protojson refuses
	}
	for i := range fds.Len() {
		fd := fds.Get(i)
		if r.IntN(2) == 0 || depth > 2 && fd.Kind() == protoreflect.MessageKind {
			continue
		}
		if fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Any" && r.IntN(10) > 0 {
			continue // an Any is written by protojson: rarely, to test the writer
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range r.IntN(4) {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					randomMessage(r, e.Message(), depth+1)
					l.Append(e)
				} else {
					l.Append(randomScalar(r, fd))
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for range r.IntN(4) {
				k := randomScalar(r, fd.MapKey()).MapKey()
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v := mp.NewValue()
					randomMessage(r, v.Message(), depth+1)
					mp.Set(k, v)
				} else {
					mp.Set(k, randomScalar(r, fd.MapValue()))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			randomMessage(r, m.Mutable(fd).Message(), depth+1)
		default:
			m.Set(fd, randomScalar(r, fd))
		}
	}
}

// outOfRange is mostly 0, sometimes enough to put a Timestamp or a
// Duration past what JSON can write.
func outOfRange(r *rand.Rand) int64 {
	if r.IntN(50) == 0 {
		return 1e12
	}
	return 0
}

func randomNanos(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return r.Int64N(1000) * 1e6
	case 2:
		return r.Int64N(1e6) * 1e3
	}
	return r.Int64N(1e9)
}

func randomScalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(randomString(r))
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(8))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(r.Uint32()) >> r.IntN(32))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(r.Uint32() >> r.IntN(32))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(r.Uint64()) >> r.IntN(64))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(r.Uint64() >> r.IntN(64))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(randomFloat(r)))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(randomFloat(r))
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(42) // not declared
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	}
	panic("no random " + fd.Kind().String())
}

func randomFloat(r *rand.Rand) float64 {
	special := []float64{0, math.Copysign(0, -1), 1e-6, 9.999999e-7, 1e-7, 1e21, 9.99e20, 0.1, -2.5,
		math.MaxFloat64, math.SmallestNonzeroFloat64, math.MaxFloat32, math.NaN(), math.Inf(1), math.Inf(-1)}
	if r.IntN(3) == 0 {
		return special[r.IntN(len(special))]
	}
	f := math.Float64frombits(r.Uint64())
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return r.NormFloat64()
	}
	return f
}

func randomString(r *rand.Rand) string {
	parts := []string{"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "😀",
		"\u2028", "\ufffd", "<", ">", "&", "'", "ab cd"}
	var sb strings.Builder
	for range r.IntN(6) {
		sb.WriteString(parts[r.IntN(len(parts))])
	}
	return sb.String()
}
