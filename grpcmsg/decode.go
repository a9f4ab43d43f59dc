package grpcmsg

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// UnknownFieldsError reports a message with fields its descriptor does
// not declare, at any depth: the descriptor is older than the service that
// wrote the message, and its JSON form would silently lack them. The
// caller compares the bytes instead.
type UnknownFieldsError struct {
	Message int     // index of the message among the response's
	Numbers []int32 // the undeclared field numbers, sorted, unique
}

func (e *UnknownFieldsError) Error() string {
	nums := make([]string, len(e.Numbers))
	for i, n := range e.Numbers {
		nums[i] = strconv.Itoa(int(n))
	}
	return fmt.Sprintf("message %d has fields its descriptor does not declare (numbers %s): the descriptor is out of date",
		e.Message, strings.Join(nums, ", "))
}

// emptyTypes resolves nothing: the messages of a descriptor that did not
// come from Files or Reflection have their extensions kept as unknown
// fields rather than matched against types linked into shadowlab that
// merely share a name.
var emptyTypes = new(protoregistry.Types)

// Decode turns the messages of one response of md into JSON text, the
// form protobuf's JSON mapping gives them: field names as written in the
// .proto, enums by name, fields with default values left out, 64-bit
// integers as strings. A unary response is its one message's object; a
// server stream is the array of its messages' objects, [] when there are
// none.
//
// A message with fields md does not declare gives *UnknownFieldsError
// (the contents of an Any are not checked); one that does not parse as
// md's output type, an error naming its index and the type.
func Decode(md protoreflect.MethodDescriptor, msgs [][]byte) ([]byte, error) {
	stream := md.IsStreamingServer()
	switch {
	case !stream && len(msgs) == 0:
		return nil, fmt.Errorf("%s: no message (a unary method answers one)", md.FullName())
	case !stream && len(msgs) > 1:
		return nil, fmt.Errorf("%s: %d messages (a unary method answers one)", md.FullName(), len(msgs))
	}
	in := 0
	for _, b := range msgs {
		in += len(b)
	}
	types, jsonTypes := typesOf(md)
	uo := proto.UnmarshalOptions{AllowPartial: true, Resolver: types}
	out := md.Output()
	var p *plan
	if m, ok := md.(*method); ok {
		p = m.plan.get(out)
	}
	w := writers.Get().(*writer)
	defer w.release()
	w.buf = make([]byte, 0, 3*in+16) // JSON names and digits take about three times the wire's bytes
	if stream {
		w.buf = append(w.buf, '[')
	}
	for i, b := range msgs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		if p != nil {
			start := len(w.buf)
			w.unknown, w.fallback = w.unknown[:0], false
			w.wireMessage(p, b, 0)
			if !w.fallback {
				if err := w.unknownError(i); err != nil {
					return nil, err
				}
				continue
			}
			w.buf = w.buf[:start]
		}
		m := dynamicpb.NewMessage(out)
		if err := unmarshal(uo, b, m); err != nil {
			return nil, fmt.Errorf("message %d does not parse as %s: %v", i, out.FullName(), err)
		}
		if err := w.top(m, i, jsonTypes); err != nil {
			return nil, err
		}
	}
	if stream {
		w.buf = append(w.buf, ']')
	}
	return w.buf, nil
}

// writers keep the scratch of writers between calls.
var writers = sync.Pool{New: func() any { return new(writer) }}

// release puts w back in writers, but for its output (the caller's now)
// and scratch grown too large to keep.
func (w *writer) release() {
	const keep = 1 << 14 // occurrences, entries, ... of a message of a few hundred KiB
	if cap(w.occs) > keep || cap(w.tmp) > keep || cap(w.entries) > keep || cap(w.unknown) > keep {
		return
	}
	w.buf, w.fallback = nil, false
	w.occs, w.entries, w.unknown, w.tmp = w.occs[:0], w.entries[:0], w.unknown[:0], w.tmp[:0]
	writers.Put(w)
}

// unmarshal parses b into m, turning a panic of the protobuf runtime into
// an error: its reflective parser, which dynamic messages use, panics on
// some malformed map entries (v1.36.12: a key given again with another
// wire type), and a service's answer must not bring shadowlab down.
func unmarshal(uo proto.UnmarshalOptions, b []byte, m *dynamicpb.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the protobuf runtime failed on it: %v", r)
		}
	}()
	return uo.Unmarshal(b, m)
}

// typesOf are the types decoding md's messages resolves extensions and
// Any contents with: those of the files md came from, when it came from
// Files or Reflection.
func typesOf(md protoreflect.MethodDescriptor) (protoregistry.ExtensionTypeResolver, protojsonResolver) {
	if m, ok := md.(*method); ok && m.types != nil {
		return m.types, m.types
	}
	return emptyTypes, protoregistry.GlobalTypes
}

// protojsonResolver is what protojson resolves Any contents and extensions
// with.
type protojsonResolver interface {
	protoregistry.ExtensionTypeResolver
	protoregistry.MessageTypeResolver
}

// top appends message i's JSON object. What the writer leaves to protojson
// (Any, FieldMask, extensions, values protojson refuses) makes the whole
// message go through protojson, so that its output and errors are
// protojson's.
func (w *writer) top(m protoreflect.Message, i int, types protojsonResolver) error {
	start := len(w.buf)
	w.unknown, w.fallback = w.unknown[:0], false
	w.message(m)
	if w.fallback {
		w.buf = w.buf[:start]
		w.unknown = appendUnknown(w.unknown[:0], m)
	}
	if err := w.unknownError(i); err != nil {
		return err
	}
	if !w.fallback {
		return nil
	}
	var err error
	w.buf, err = protojson.MarshalOptions{UseProtoNames: true, AllowPartial: true, Resolver: types}.MarshalAppend(w.buf, m.Interface())
	if err != nil {
		return fmt.Errorf("message %d (%s): %v", i, m.Descriptor().FullName(), err)
	}
	return nil
}

// unknownError is the error of message i when unknown fields were found
// in it, nil otherwise.
func (w *writer) unknownError(i int) error {
	if len(w.unknown) == 0 {
		return nil
	}
	slices.Sort(w.unknown)
	return &UnknownFieldsError{Message: i, Numbers: slices.Compact(slices.Clone(w.unknown))}
}

// appendUnknown appends the numbers of the unknown fields of m and of the
// messages in it.
func appendUnknown(nums []int32, m protoreflect.Message) []int32 {
	nums = appendUnknownNumbers(nums, m.GetUnknown())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if isMessage(fd.MapValue()) {
				v.Map().Range(func(_ protoreflect.MapKey, v protoreflect.Value) bool {
					nums = appendUnknown(nums, v.Message())
					return true
				})
			}
		case !isMessage(fd):
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				nums = appendUnknown(nums, l.Get(i).Message())
			}
		default:
			nums = appendUnknown(nums, v.Message())
		}
		return true
	})
	return nums
}

func isMessage(fd protoreflect.FieldDescriptor) bool {
	k := fd.Kind()
	return k == protoreflect.MessageKind || k == protoreflect.GroupKind
}

// appendUnknownNumbers appends the field numbers of raw, a message's
// unknown fields as the wire had them.
func appendUnknownNumbers(nums []int32, raw protoreflect.RawFields) []int32 {
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			break
		}
		raw = raw[n:]
		n = protowire.ConsumeFieldValue(num, typ, raw)
		if n < 0 {
			break
		}
		raw = raw[n:]
		nums = append(nums, int32(num))
	}
	return nums
}
