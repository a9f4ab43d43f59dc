package grpcmsg

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// matchesRuntime checks Decode of b, one message of md, against what the
// protobuf runtime makes of it: its parse error, its unknown fields, or
// protojson's text (or error) for the message it parsed.
func matchesRuntime(t *testing.T, md protoreflect.MethodDescriptor, b []byte, what string) {
	t.Helper()
	types := md.(*method).types
	got, err := Decode(md, [][]byte{b})

	m := dynamicpb.NewMessage(md.Output())
	perr := unmarshal(proto.UnmarshalOptions{AllowPartial: true, Resolver: types}, b, m)
	if perr != nil && strings.Contains(perr.Error(), "runtime failed") {
		return // the runtime has no answer to compare with; Decode did not panic
	}
	if perr != nil {
		require.Error(t, err, "%s: the runtime does not parse it (%v); Decode: %s", what, perr, got)
		require.ErrorContains(t, err, "does not parse as", what)
		return
	}
	if nums := appendUnknown(nil, m); len(nums) > 0 {
		slices.Sort(nums)
		var ue *UnknownFieldsError
		require.True(t, errors.As(err, &ue), "%s: unknown fields %v; Decode: %v %s", what, nums, err, got)
		require.Equal(t, slices.Compact(nums), ue.Numbers, what)
		return
	}
	want, werr := protojson.MarshalOptions{UseProtoNames: true, AllowPartial: true, Resolver: types}.Marshal(m)
	if werr != nil {
		require.Error(t, err, "%s: protojson: %v; Decode: %s", what, werr, got)
		return
	}
	require.NoError(t, err, "%s: %s", what, want)
	require.True(t, json.Valid(got), "%s: %s", what, got)
	require.JSONEq(t, string(want), string(got), what)
}

// TestDirectDecoderMatchesRuntime decodes random messages re-encoded the
// ways the wire allows and canonical encoders do not use: fields out of
// order and repeated (the last scalar wins, messages merge), repeated
// scalars unpacked, unknown numbers, mismatched wire types, truncations.
func TestDirectDecoderMatchesRuntime(t *testing.T) {
	f := loadFiles(t, "v1")
	get := methodOf(t, f, "/test.v1.Shop/Get")
	order := methodOf(t, f, "/test.v1.Shop/GetOrder")
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 4000 {
		md := get
		if i%4 == 3 {
			md = order
		}
		m := dynamicpb.NewMessage(md.Output())
		randomMessage(r, m, 0)
		b, err := proto.Marshal(m)
		require.NoError(t, err)
		if i%5 > 0 {
			b = mutate(r, md.Output(), b, 0)
		}
		matchesRuntime(t, md, b, "message "+strconv.Itoa(i))
	}
}

// record is one field of an encoded message.
type record struct {
	num protowire.Number
	wt  protowire.Type
	val []byte // the value as encoded, without the tag
}

func records(b []byte) ([]record, bool) {
	var rs []record
	for len(b) > 0 {
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, wt, b)
		if m < 0 {
			return nil, false
		}
		rs = append(rs, record{num, wt, b[:m]})
		b = b[m:]
	}
	return rs, true
}

func encode(rs []record) []byte {
	var out []byte
	for _, r := range rs {
		out = protowire.AppendTag(out, r.num, r.wt)
		out = append(out, r.val...)
	}
	return out
}

// mutate re-encodes b, a message of md, in a random non-canonical way
// that may or may not mean the same message.
func mutate(r *rand.Rand, md protoreflect.MessageDescriptor, b []byte, depth int) []byte {
	rs, ok := records(b)
	if !ok {
		return b
	}
	var out []record
	for _, rec := range rs {
		fd := md.Fields().ByNumber(rec.num)
		switch {
		case fd != nil && rec.wt == protowire.BytesType && fd.Kind() == protoreflect.MessageKind && depth < 3 && r.IntN(3) == 0:
			inner, _ := protowire.ConsumeBytes(rec.val)
			// (A map's entries are messages too: key 1, value 2.)
			rec.val = protowire.AppendBytes(nil, mutate(r, fd.Message(), inner, depth+1))
		case fd != nil && fd.IsList() && rec.wt == protowire.BytesType && fd.Kind() != protoreflect.StringKind &&
			fd.Kind() != protoreflect.BytesKind && fd.Kind() != protoreflect.MessageKind && r.IntN(2) == 0:
			out = append(out, unpack(fd, rec)...) // unpacked, as proto2 writes them
			continue
		}
		out = append(out, rec)
	}
	switch r.IntN(9) {
	case 0: // shuffled
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	case 1: // a field given twice
		if len(out) > 0 {
			k := r.IntN(len(out))
			out = slices.Insert(out, r.IntN(len(out)+1), out[k])
		}
	case 2: // a number not declared
		out = append(out, record{num: protowire.Number(100 + r.IntN(3)), wt: protowire.VarintType, val: protowire.AppendVarint(nil, 7)})
	case 3: // a declared number with another wire type
		if len(out) > 0 {
			k := r.IntN(len(out))
			out[k] = record{num: out[k].num, wt: protowire.Fixed32Type, val: []byte{1, 2, 3, 4}}
		}
	case 4: // merged with another encoding of part of it
		if len(out) > 1 {
			out = append(out, out[:r.IntN(len(out))]...)
		}
	case 5: // cut short
		enc := encode(out)
		if len(enc) > 0 {
			return enc[:r.IntN(len(enc))]
		}
	case 6: // an empty packed run
		for k := range out {
			if fd := md.Fields().ByNumber(out[k].num); fd != nil && fd.IsList() && fd.Kind() == protoreflect.DoubleKind {
				out = append(out, record{num: out[k].num, wt: protowire.BytesType, val: []byte{0}})
				break
			}
		}
	}
	return encode(out)
}

// unpack splits a packed run into one record per element.
func unpack(fd protoreflect.FieldDescriptor, rec record) []record {
	packed, n := protowire.ConsumeBytes(rec.val)
	if n < 0 {
		return []record{rec}
	}
	var wt protowire.Type
	switch fd.Kind() {
	case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
		wt = protowire.Fixed32Type
	case protoreflect.DoubleKind, protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind:
		wt = protowire.Fixed64Type
	default:
		wt = protowire.VarintType
	}
	var out []record
	for len(packed) > 0 {
		m := protowire.ConsumeFieldValue(fd.Number(), wt, packed)
		if m < 0 {
			return []record{rec}
		}
		out = append(out, record{fd.Number(), wt, packed[:m]})
		packed = packed[m:]
	}
	return out
}

func TestDirectDecoderCases(t *testing.T) {
	f := loadFiles(t, "v1")
	get := methodOf(t, f, "/test.v1.Shop/Get")
	tag := func(num protowire.Number, wt protowire.Type) []byte { return protowire.AppendTag(nil, num, wt) }
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), []byte(s))
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(tag(num, protowire.VarintType), v)
	}
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), slices.Concat(parts...))
	}
	tests := map[string][]byte{
		"the last scalar wins":           slices.Concat(str(1, "a"), varint(3, 1), str(1, "b")),
		"a default after a value":        slices.Concat(str(1, "a"), str(1, "")),
		"int32 from a 64-bit varint":     varint(29, 1<<32|5),
		"int32 zero in its low bits":     varint(29, 1<<32),
		"a message given twice merges":   slices.Concat(msg(6, varint(1, 5)), msg(6, varint(2, 7))),
		"two members of a oneof":         slices.Concat(str(15, "x"), varint(16, 10)),
		"one member of a oneof twice":    slices.Concat(varint(16, 9), varint(16, 10)),
		"repeated, apart":                slices.Concat(msg(4, str(1, "a")), str(1, "x"), msg(4, str(1, "b"))),
		"a map key given twice":          slices.Concat(msg(5, str(1, "k"), varint(2, 1)), msg(5, str(1, "k"), varint(2, 2))),
		"a map entry without key":        msg(5, varint(2, 3)),
		"a map entry without value":      msg(17, varint(1, 3)),
		"a map entry with another field": msg(5, str(1, "k"), varint(3, 1), varint(2, 4)),
		"a map entry's value twice":      msg(17, varint(1, 3), msg(2, str(1, "a")), msg(2, varint(2, 1))),
		"invalid UTF-8":                  str(1, "\xff"),
		"invalid UTF-8, overwritten":     slices.Concat(str(1, "\xff"), str(1, "ok")),
		"a group":                        slices.Concat(tag(40, protowire.StartGroupType), varint(1, 1), tag(40, protowire.EndGroupType)),
		"an end group alone":             tag(40, protowire.EndGroupType),
		"field number 0":                 varint(0, 1)[1:],
		"a value with two kinds":         msg(23, varint(4, 1), str(3, "s")),
		"a value's number twice":         msg(23, protowire.AppendFixed64(tag(2, protowire.Fixed64Type), 1), protowire.AppendFixed64(tag(2, protowire.Fixed64Type), 0)),
		"a timestamp's fields twice":     msg(6, varint(1, 5), varint(1, 6), varint(2, 1000)),
		"a negative nanos":               msg(6, varint(2, uint64(1<<64-1))),
		"a wrapper without value":        msg(19),
		"a struct field twice":           msg(20, msg(1, str(1, "a"), msg(2, varint(4, 1))), msg(1, str(1, "b"), msg(2, varint(1, 0)))),
		"deep values": func() []byte {
			v := varint(4, 1) // a Value: true
			for range 100 {
				v = msg(5, msg(1, str(1, "k"), msg(2, v))) // a Value: {"k": v}
			}
			return msg(23, v)
		}(),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			matchesRuntime(t, get, b, name)
		})
	}
}

// TestDecodeSurvivesRuntimePanic: the protobuf runtime panics on a map
// entry whose key comes again with another wire type. The direct decoder
// reads it (the runtime means to skip such a field); when the message
// must go through the runtime (here for its Any), Decode fails instead.
func TestDecodeSurvivesRuntimePanic(t *testing.T) {
	f := loadFiles(t, "v1")
	get := methodOf(t, f, "/test.v1.Shop/Get")
	entry := protowire.AppendTag(nil, 5, protowire.BytesType)               // stock_by_site
	entry = protowire.AppendBytes(entry, []byte("\n\x01k\x08\x01\x10\x07")) // key "k", key 1 (a varint), value 7
	got, err := Decode(get, [][]byte{entry})
	require.NoError(t, err)
	require.JSONEq(t, `{"stock_by_site": {"k": "7"}}`, string(got))

	anyField := protowire.AppendBytes(protowire.AppendTag(nil, 24, protowire.BytesType), nil)
	_, err = Decode(get, [][]byte{slices.Concat(entry, anyField)})
	require.ErrorContains(t, err, "message 0 does not parse as test.v1.Item: the protobuf runtime failed on it")
}

// FuzzDecode checks Decode against the protobuf runtime on any bytes.
func FuzzDecode(f *testing.F) {
	files := loadFiles(f, "v1")
	get := methodOf(f, files, "/test.v1.Shop/Get")
	types := get.(*method).types
	f.Add(wire(f, get.Output(), types, everyKind))
	f.Add(wire(f, get.Output(), types, `{"lines_by_no": {"1": {"sku": "a"}}, "attributes": {"x": [1, {"y": null}]}}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		matchesRuntime(t, get, b, "fuzz")
	})
}
