package grpcmsg

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/shadowlab/shadowlab/compare"
)

// benchSizes are the sizes of the Order messages benchmarked.
var benchSizes = []struct {
	name string
	size int
}{{"1KiB", 1 << 10}, {"16KiB", 16 << 10}}

// benchOrder is an Order of about size bytes on the wire: lines are added
// until it is that large. Line 3's price is changed by delta, so that two
// orders differ in one field.
func benchOrder(b *testing.B, md protoreflect.MethodDescriptor, size int, delta int64) []byte {
	b.Helper()
	od := md.Output()
	m := dynamicpb.NewMessage(od)
	fds := od.Fields()
	m.Set(fds.ByName("id"), protoreflect.ValueOfString("o-20260102-000042"))
	m.Set(fds.ByName("customer_id"), protoreflect.ValueOfString("c-7f3a9b"))
	m.Set(fds.ByName("state"), protoreflect.ValueOfEnum(1))
	m.Set(fds.ByName("total_cents"), protoreflect.ValueOfInt64(123456))
	m.Set(fds.ByName("note"), protoreflect.ValueOfString("leave at the door, \"ring twice\""))
	ts := m.Mutable(fds.ByName("created_at")).Message()
	ts.Set(ts.Descriptor().Fields().ByName("seconds"), protoreflect.ValueOfInt64(1767323045))
	ts.Set(ts.Descriptor().Fields().ByName("nanos"), protoreflect.ValueOfInt32(250000000))
	labels := m.Mutable(fds.ByName("labels")).Map()
	for _, kv := range [][2]string{{"channel", "web"}, {"region", "eu-central"}, {"tier", "gold"}} {
		labels.Set(protoreflect.ValueOfString(kv[0]).MapKey(), protoreflect.ValueOfString(kv[1]))
	}
	lines := m.Mutable(fds.ByName("lines")).List()
	for i := 0; proto.Size(m) < size; i++ {
		l := lines.NewElement().Message()
		lf := l.Descriptor().Fields()
		price := int64(100 + 37*i)
		if i == 3 {
			price += delta
		}
		l.Set(lf.ByName("sku"), protoreflect.ValueOfString(fmt.Sprintf("sku-%06d", i)))
		l.Set(lf.ByName("quantity"), protoreflect.ValueOfInt32(int32(1+i%5)))
		l.Set(lf.ByName("price_cents"), protoreflect.ValueOfInt64(price))
		lines.Append(protoreflect.ValueOfMessage(l))
	}
	out, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// decodeProtojson is Decode with protojson writing the JSON: what the
// hand-written writer is measured against.
func decodeProtojson(md protoreflect.MethodDescriptor, msgs [][]byte) ([]byte, error) {
	m := dynamicpb.NewMessage(md.Output())
	if err := proto.Unmarshal(msgs[0], m); err != nil {
		return nil, err
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
}

// BenchmarkDecode measures Decode (which reads the wire directly) against
// the ways it could have been written: a dynamicpb message written by the
// writer over protoreflect (what Decode falls back to, and does for a
// descriptor that is not from Files or Reflection), and written by
// protojson.
func BenchmarkDecode(b *testing.B) {
	f := loadFiles(b, "v1")
	md := methodOf(b, f, "/test.v1.Shop/GetOrder")
	plain := md.(*method).MethodDescriptor // no plan: the dynamicpb path
	for _, s := range benchSizes {
		msgs := [][]byte{benchOrder(b, md, s.size, 0)}
		for _, w := range []struct {
			name   string
			decode func(protoreflect.MethodDescriptor, [][]byte) ([]byte, error)
		}{
			{"path=direct", Decode},
			{"path=dynamicpb+writer", func(_ protoreflect.MethodDescriptor, msgs [][]byte) ([]byte, error) { return Decode(plain, msgs) }},
			{"path=dynamicpb+protojson", decodeProtojson},
		} {
			b.Run("size="+s.name+"/"+w.name, func(b *testing.B) {
				b.SetBytes(int64(len(msgs[0])))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := w.decode(md, msgs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkComparePairs measures whole pairs: a gRPC pair taken apart
// (Frames), decoded (Decode) and compared as JSON, against the same pair
// served as JSON and compared directly. The two sides differ in one
// field.
func BenchmarkComparePairs(b *testing.B) {
	f := loadFiles(b, "v1")
	const path = "/test.v1.Shop/GetOrder"
	md := methodOf(b, f, path)
	rules, err := compare.NewRules(compare.Spec{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range benchSizes {
		pm, sm := benchOrder(b, md, s.size, 0), benchOrder(b, md, s.size, 1)
		pBody, sBody := frame(b, pm, false), frame(b, sm, false)
		pJSON, err := Decode(md, [][]byte{pm})
		if err != nil {
			b.Fatal(err)
		}
		sJSON, err := Decode(md, [][]byte{sm})
		if err != nil {
			b.Fatal(err)
		}

		decodeWith := func(decode func([][]byte) ([]byte, error)) func(body []byte) []byte {
			return func(body []byte) []byte {
				msgs, err := Frames(body, "", 0)
				if err != nil {
					b.Fatal(err)
				}
				js, err := decode(msgs)
				if err != nil {
					b.Fatal(err)
				}
				return js
			}
		}
		direct := decodeWith(func(msgs [][]byte) ([]byte, error) {
			md, err := f.Method(ctx, path)
			if err != nil {
				return nil, err
			}
			return Decode(md, msgs)
		})
		b.Run("size="+s.name+"/path=grpc", func(b *testing.B) { benchPairs(b, rules, pBody, sBody, direct) })
		b.Run("size="+s.name+"/path=protojson", func(b *testing.B) {
			benchPairs(b, rules, pBody, sBody, decodeWith(func(msgs [][]byte) ([]byte, error) { return decodeProtojson(md, msgs) }))
		})
		b.Run("size="+s.name+"/path=json", func(b *testing.B) {
			benchPairs(b, rules, pJSON, sJSON, func(body []byte) []byte { return body })
		})
	}
}

// benchPairs compares the pair (p, s), each side first turned into JSON by
// toJSON, and reports pairs per second.
func benchPairs(b *testing.B, rules *compare.Rules, p, s []byte, toJSON func([]byte) []byte) {
	jsonHeaders := map[string]string{"content-type": "application/json"}
	b.SetBytes(int64(len(p) + len(s)))
	b.ReportAllocs()
	for b.Loop() {
		res := compare.Compare(compare.Response{Status: 200, Headers: jsonHeaders, Body: toJSON(p)},
			compare.Response{Status: 200, Headers: jsonHeaders, Body: toJSON(s)}, rules)
		if len(res.Differences) != 1 {
			b.Fatalf("%d differences, want 1: %+v", len(res.Differences), res.Differences)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
}
