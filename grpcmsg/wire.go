package grpcmsg

import (
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The direct decoder writes JSON straight from the wire bytes, without
// building a dynamicpb message first: that message, a map and a boxed
// value per field, is where Decode would otherwise spend most of its time.
// It reads what the protobuf runtime would (last value of a scalar wins,
// repeated fields gathered from wherever they appear, packed or not, a
// field of an unexpected wire type is unknown) and writes what the writer
// would from the parsed message. What it does not handle it leaves to
// that path, by setting fallback: a message field or oneof that appears
// more than once (the runtime merges them), a map key given twice, groups,
// extensions, closed enums' unknown values, invalid UTF-8, malformed
// bytes (the runtime's error then names the problem), nesting deeper than
// maxWireDepth, and whatever the writer itself leaves to protojson.

// maxWireDepth bounds the nesting the direct decoder follows; deeper
// messages go through the protobuf runtime, which has its own limit.
const maxWireDepth = 64

// plan is how the direct decoder reads one message type.
type plan struct {
	md     protoreflect.MessageDescriptor
	wkt    wellKnown
	fields []fieldPlan // as md.Fields(), in declaration order
	low    []int32     // 1 + index in fields, by field number below len(low); 0 for none
	high   map[protowire.Number]int
	// opaque messages (with a group field) are left to the runtime.
	opaque bool
}

// wellKnown says which google.protobuf type a plan's message is, if its
// JSON form is special.
type wellKnown uint8

const (
	notWellKnown wellKnown = iota
	wktTimestamp
	wktDuration
	wktWrapper
	wktStruct
	wktListValue
	wktValue
	wktOther // Any, FieldMask: written by protojson
)

// fieldPlan is one field of a plan, or the key or value of a map field's
// entries.
type fieldPlan struct {
	fd       protoreflect.FieldDescriptor
	name     string // `"text_name":`
	kind     protoreflect.Kind
	wire     protowire.Type // of one value
	list     bool
	packable bool // a repeated scalar, which may come packed
	isMap    bool
	presence bool // written when present even with the default value
	oneof    int  // index of its oneof among md's, -1 for none (and for proto3 optional)
	msg      *plan
	key, val *fieldPlan // of a map's entries
	enum     protoreflect.EnumDescriptor
	closed   bool // a closed enum: the runtime keeps unknown values as unknown fields
	null     bool // google.protobuf.NullValue
}

// methodPlan is the plan of a method's output type, built at the first
// Decode of its messages.
type methodPlan struct {
	once sync.Once
	p    *plan
}

func (mp *methodPlan) get(md protoreflect.MessageDescriptor) *plan {
	mp.once.Do(func() { mp.p = newPlan(md, map[protoreflect.FullName]*plan{}) })
	return mp.p
}

// newPlan builds the plan of md and of the messages it uses; memo holds
// those built so far, so that recursive messages share theirs.
func newPlan(md protoreflect.MessageDescriptor, memo map[protoreflect.FullName]*plan) *plan {
	if p := memo[md.FullName()]; p != nil {
		return p
	}
	p := &plan{md: md, wkt: wellKnownOf(md)}
	memo[md.FullName()] = p
	fds := md.Fields()
	p.fields = make([]fieldPlan, fds.Len())
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := &p.fields[i]
		f.plan(fd, memo)
		f.name = `"` + fd.TextName() + `":`
		f.list, f.isMap, f.presence = fd.IsList(), fd.IsMap(), fd.HasPresence()
		f.oneof = -1
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			f.oneof = od.Index()
		}
		switch {
		case f.isMap:
			f.key, f.val = &fieldPlan{}, &fieldPlan{}
			f.key.plan(fd.MapKey(), memo)
			f.val.plan(fd.MapValue(), memo)
			f.wire = protowire.BytesType
			if f.val.closed {
				p.opaque = true // an unknown value moves the whole entry to the unknown fields
			}
		case f.list:
			f.packable = f.wire == protowire.VarintType || f.wire == protowire.Fixed32Type || f.wire == protowire.Fixed64Type
		}
		if f.kind == protoreflect.GroupKind {
			p.opaque = true
		}
		n := fd.Number()
		switch {
		case n < 256:
			if int(n) >= len(p.low) {
				p.low = slices.Grow(p.low, int(n)+1-len(p.low))[:n+1]
			}
			p.low[n] = int32(i + 1)
		default:
			if p.high == nil {
				p.high = map[protowire.Number]int{}
			}
			p.high[n] = i
		}
	}
	return p
}

// plan fills in how one value of fd is read.
func (f *fieldPlan) plan(fd protoreflect.FieldDescriptor, memo map[protoreflect.FullName]*plan) {
	f.fd, f.kind = fd, fd.Kind()
	switch f.kind {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		f.wire = protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		f.wire = protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		f.wire = protowire.Fixed64Type
	case protoreflect.GroupKind:
		f.wire = protowire.StartGroupType
	default:
		f.wire = protowire.BytesType
	}
	if f.kind == protoreflect.EnumKind {
		f.enum = fd.Enum()
		f.closed = f.enum.IsClosed()
		f.null = f.enum.FullName() == protobufPrefix+".NullValue"
	}
	if f.kind == protoreflect.MessageKind && !fd.IsMap() { // a map's plan is of its key and value
		f.msg = newPlan(fd.Message(), memo)
	}
}

func wellKnownOf(md protoreflect.MessageDescriptor) wellKnown {
	if md.FullName().Parent() != protobufPrefix {
		return notWellKnown
	}
	switch md.Name() {
	case "Timestamp":
		return wktTimestamp
	case "Duration":
		return wktDuration
	case "BoolValue", "Int32Value", "Int64Value", "UInt32Value", "UInt64Value",
		"FloatValue", "DoubleValue", "StringValue", "BytesValue":
		return wktWrapper
	case "Struct":
		return wktStruct
	case "ListValue":
		return wktListValue
	case "Value":
		return wktValue
	case "Any", "FieldMask":
		return wktOther
	}
	return notWellKnown
}

// field is the index in p.fields of field number n, -1 when p has none.
func (p *plan) field(n protowire.Number) int {
	if int(n) < len(p.low) {
		return int(p.low[n]) - 1
	}
	if i, ok := p.high[n]; ok {
		return i
	}
	return -1
}

// occurrence is one field of a message as the wire has it: a varint or
// fixed value in v, or the bytes b[start:end].
type occurrence struct {
	field      int32
	wire       protowire.Type
	start, end int32 // messages are smaller than 2 GiB: wireMessage checks
	v          uint64
}

// consumeValue reads the value at b[i:] of field num, of wire type wt: its
// occurrence (a scalar's bits, or a length-delimited value's offsets, which
// are base + offsets in b) and its length, negative for malformed bytes or
// an invalid wire type. A group is skipped whole.
func consumeValue(num protowire.Number, wt protowire.Type, b []byte, i int, base int32) (occurrence, int) {
	o := occurrence{wire: wt}
	var n int
	switch wt {
	case protowire.VarintType:
		o.v, n = protowire.ConsumeVarint(b[i:])
	case protowire.Fixed32Type:
		var v uint32
		v, n = protowire.ConsumeFixed32(b[i:])
		o.v = uint64(v)
	case protowire.Fixed64Type:
		o.v, n = protowire.ConsumeFixed64(b[i:])
	case protowire.BytesType:
		var v []byte
		v, n = protowire.ConsumeBytes(b[i:])
		o.start, o.end = base+int32(i+n-len(v)), base+int32(i+n)
	default:
		n = protowire.ConsumeFieldValue(num, wt, b[i:])
	}
	return o, n
}

// wireMessage appends the JSON of b, a message of p.
func (w *writer) wireMessage(p *plan, b []byte, depth int) {
	if depth > maxWireDepth || p.opaque || p.wkt == wktOther || len(b) > math.MaxInt32 {
		w.fallback = true
		return
	}
	base := len(w.occs)
	defer func() { w.occs = w.occs[:base] }()
	if !w.scan(p, b) {
		w.fallback = true
		return
	}
	occs := w.occs[base:]
	if !sortedByField(occs) {
		w.sortByField(occs, len(p.fields))
	}
	if p.wkt != notWellKnown {
		w.wireWellKnown(p, b, occs, depth)
		return
	}
	w.buf = append(w.buf, '{')
	first := true
	var oneofs uint64
	for i := 0; i < len(occs) && !w.fallback; {
		j := i + 1
		for j < len(occs) && occs[j].field == occs[i].field {
			j++
		}
		f := &p.fields[occs[i].field]
		if f.oneof >= 0 {
			if f.oneof >= 64 || oneofs&(1<<f.oneof) != 0 {
				w.fallback = true // two members: the runtime keeps the last
				return
			}
			oneofs |= 1 << f.oneof
		}
		mark := len(w.buf)
		if !first {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, f.name...)
		if w.wireField(f, b, occs[i:j], depth) {
			first = false
		} else {
			w.buf = w.buf[:mark]
		}
		i = j
	}
	w.buf = append(w.buf, '}')
}

// sortByField sorts occs by field, stably (the order of a field's
// occurrences matters): a counting sort, as there are few fields and may
// be many occurrences (the elements of a long repeated field).
func (w *writer) sortByField(occs []occurrence, fields int) {
	counts := slices.Grow(w.counts[:0], fields+1)[:fields+1]
	clear(counts)
	for k := range occs {
		counts[occs[k].field+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	tmp := slices.Grow(w.tmp[:0], len(occs))[:len(occs)]
	for k := range occs {
		f := occs[k].field
		tmp[counts[f]] = occs[k]
		counts[f]++
	}
	copy(occs, tmp)
	w.counts, w.tmp = counts, tmp
}

// sortedByField reports whether occs are in field order already, as
// encoders write them when fields are declared in number order.
func sortedByField(occs []occurrence) bool {
	for k := 1; k < len(occs); k++ {
		if occs[k].field < occs[k-1].field {
			return false
		}
	}
	return true
}

// scan appends the occurrences of p's fields in b to w.occs, and the
// numbers of the fields p does not declare to w.unknown. It reports
// false for bytes the runtime would not parse, or that hold what the
// direct decoder leaves to it.
func (w *writer) scan(p *plan, b []byte) bool {
	for i := 0; i < len(b); {
		num, wt, n := protowire.ConsumeTag(b[i:])
		if n < 0 || num > protowire.MaxValidNumber {
			return false
		}
		i += n
		o, n := consumeValue(num, wt, b, i, 0)
		if n < 0 {
			return false
		}
		i += n
		fi := p.field(num)
		if fi < 0 || !p.fields[fi].accepts(wt) {
			if p.md.ExtensionRanges().Has(num) {
				return false // an extension, perhaps
			}
			w.unknown = append(w.unknown, int32(num))
			continue
		}
		if p.fields[fi].kind == protoreflect.StringKind && !utf8.Valid(b[o.start:o.end]) {
			return false
		}
		o.field = int32(fi)
		w.occs = append(w.occs, o)
	}
	return true
}

// accepts reports whether the runtime reads wt as a value of f (rather
// than an unknown field).
func (f *fieldPlan) accepts(wt protowire.Type) bool {
	return wt == f.wire || f.packable && wt == protowire.BytesType
}

// wireField writes the value of f from its occurrences, reporting false
// when f is to be left out: a repeated field without elements, a scalar
// without presence that has its default value.
func (w *writer) wireField(f *fieldPlan, b []byte, occs []occurrence, depth int) bool {
	switch {
	case f.isMap:
		w.wireMap(f, b, occs, depth)
		return true
	case f.list:
		return w.wireList(f, b, occs, depth)
	case f.kind == protoreflect.MessageKind:
		if len(occs) > 1 {
			w.fallback = true // the runtime merges them
			return false
		}
		w.wireMessage(f.msg, b[occs[0].start:occs[0].end], depth+1)
		return true
	}
	o := &occs[len(occs)-1] // the last one wins
	if !f.presence && isDefault(f, b, o) {
		return false
	}
	w.wireScalar(f, b, o)
	return true
}

// wireList writes a repeated field's elements, reporting false when it
// has none.
func (w *writer) wireList(f *fieldPlan, b []byte, occs []occurrence, depth int) bool {
	w.buf = append(w.buf, '[')
	n := 0
	for k := range occs {
		o := &occs[k]
		if o.wire == protowire.BytesType && f.packable {
			packed := b[o.start:o.end]
			for len(packed) > 0 && !w.fallback {
				e := occurrence{wire: f.wire}
				var m int
				switch f.wire {
				case protowire.VarintType:
					e.v, m = protowire.ConsumeVarint(packed)
				case protowire.Fixed32Type:
					var v uint32
					v, m = protowire.ConsumeFixed32(packed)
					e.v = uint64(v)
				default:
					e.v, m = protowire.ConsumeFixed64(packed)
				}
				if m < 0 {
					w.fallback = true
					return false
				}
				packed = packed[m:]
				if n > 0 {
					w.buf = append(w.buf, ',')
				}
				w.wireScalar(f, b, &e)
				n++
			}
			continue
		}
		if n > 0 {
			w.buf = append(w.buf, ',')
		}
		if f.kind == protoreflect.MessageKind {
			w.wireMessage(f.msg, b[o.start:o.end], depth+1)
		} else {
			w.wireScalar(f, b, o)
		}
		n++
		if w.fallback {
			return false
		}
	}
	w.buf = append(w.buf, ']')
	return n > 0
}

// isDefault reports whether o holds the default value of f's kind, which
// the runtime does not count as set for a field without presence.
func isDefault(f *fieldPlan, b []byte, o *occurrence) bool {
	switch f.kind {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return o.start == o.end
	case protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Sint32Kind, protoreflect.EnumKind:
		return uint32(o.v) == 0 // only the low 32 bits are read
	}
	return o.v == 0 // a float's bits: -0 is not the default
}

// wireScalar writes one value of a scalar or enum f.
func (w *writer) wireScalar(f *fieldPlan, b []byte, o *occurrence) {
	v := o.v
	switch f.kind {
	case protoreflect.BoolKind:
		w.buf = strconv.AppendBool(w.buf, v != 0)
	case protoreflect.StringKind:
		w.buf = appendString(w.buf, b[o.start:o.end]) // UTF-8: scan checked
	case protoreflect.BytesKind:
		w.buf = append(w.buf, '"')
		w.buf = base64.StdEncoding.AppendEncode(w.buf, b[o.start:o.end])
		w.buf = append(w.buf, '"')
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		w.buf = strconv.AppendInt(w.buf, int64(int32Of(f.kind, v)), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		w.buf = strconv.AppendUint(w.buf, uint64(uint32(v)), 10)
	case protoreflect.Int64Kind, protoreflect.Sfixed64Kind:
		w.buf = append(w.buf, '"')
		w.buf = strconv.AppendInt(w.buf, int64(v), 10)
		w.buf = append(w.buf, '"')
	case protoreflect.Sint64Kind:
		w.buf = append(w.buf, '"')
		w.buf = strconv.AppendInt(w.buf, protowire.DecodeZigZag(v), 10)
		w.buf = append(w.buf, '"')
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		w.buf = append(w.buf, '"')
		w.buf = strconv.AppendUint(w.buf, v, 10)
		w.buf = append(w.buf, '"')
	case protoreflect.FloatKind:
		w.buf = appendFloat(w.buf, float64(math.Float32frombits(uint32(v))), 32)
	case protoreflect.DoubleKind:
		w.buf = appendFloat(w.buf, math.Float64frombits(v), 64)
	case protoreflect.EnumKind:
		if f.null {
			w.buf = append(w.buf, "null"...)
			return
		}
		n := protoreflect.EnumNumber(int32(v))
		if ev := f.enum.Values().ByNumber(n); ev != nil {
			w.buf = append(w.buf, '"')
			w.buf = append(w.buf, ev.Name()...)
			w.buf = append(w.buf, '"')
			return
		}
		if f.closed {
			w.fallback = true // the runtime keeps it as an unknown field
			return
		}
		w.buf = strconv.AppendInt(w.buf, int64(n), 10)
	default:
		w.fallback = true
	}
}

// int32Of reads a 32-bit signed kind's value as the runtime does.
func int32Of(k protoreflect.Kind, v uint64) int32 {
	switch k {
	case protoreflect.Sint32Kind:
		return int32(protowire.DecodeZigZag(v & math.MaxUint32))
	case protoreflect.Sfixed32Kind:
		return int32(uint32(v))
	}
	return int32(v)
}

// entry is one map entry as the wire has it.
type entry struct {
	str    string // a string key
	num    uint64 // any other key: its bits, signed kinds sign-extended
	val    occurrence
	hasVal bool
}

// wireMap writes a map's entries as an object, keys ordered as protojson
// orders them.
func (w *writer) wireMap(f *fieldPlan, b []byte, occs []occurrence, depth int) {
	base := len(w.entries)
	defer func() { w.entries = w.entries[:base] }()
	for k := range occs {
		e, ok := w.readEntry(f, b, &occs[k])
		if !ok {
			w.fallback = true
			return
		}
		w.entries = append(w.entries, e)
	}
	es := w.entries[base:]
	cmpEntries := entryOrder(f.key.kind)
	slices.SortStableFunc(es, cmpEntries)
	w.buf = append(w.buf, '{')
	for i := range es {
		if i > 0 {
			if cmpEntries(es[i-1], es[i]) == 0 {
				w.fallback = true // a key given twice: the runtime keeps the last
				return
			}
			w.buf = append(w.buf, ',')
		}
		e := &es[i]
		switch f.key.kind {
		case protoreflect.StringKind:
			w.string(e.str)
		case protoreflect.BoolKind:
			w.buf = append(w.buf, '"')
			w.buf = strconv.AppendBool(w.buf, e.num != 0)
			w.buf = append(w.buf, '"')
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			w.buf = append(w.buf, '"')
			w.buf = strconv.AppendUint(w.buf, e.num, 10)
			w.buf = append(w.buf, '"')
		default:
			w.buf = append(w.buf, '"')
			w.buf = strconv.AppendInt(w.buf, int64(e.num), 10)
			w.buf = append(w.buf, '"')
		}
		w.buf = append(w.buf, ':')
		switch {
		case f.val.kind == protoreflect.MessageKind && e.hasVal:
			w.wireMessage(f.val.msg, b[e.val.start:e.val.end], depth+1)
		case f.val.kind == protoreflect.MessageKind:
			w.wireMessage(f.val.msg, nil, depth+1)
		default:
			w.wireScalar(f.val, b, &e.val) // absent: the zero occurrence, the default
		}
		if w.fallback {
			return
		}
	}
	w.buf = append(w.buf, '}')
}

// readEntry reads one map entry, reporting false for what the direct
// decoder leaves to the runtime (a message value given twice, which it
// merges; malformed bytes).
func (w *writer) readEntry(f *fieldPlan, b []byte, o *occurrence) (entry, bool) {
	var e entry
	e.val.wire = f.val.wire
	raw := b[o.start:o.end]
	for i := 0; i < len(raw); {
		num, wt, n := protowire.ConsumeTag(raw[i:])
		if n < 0 || num > protowire.MaxValidNumber {
			return e, false
		}
		i += n
		val, n := consumeValue(num, wt, raw, i, o.start)
		if n < 0 {
			return e, false
		}
		i += n
		switch {
		case num == 1 && wt == f.key.wire:
			if f.key.kind == protoreflect.StringKind {
				s := b[val.start:val.end]
				if !utf8.Valid(s) {
					return e, false
				}
				e.str = string(s)
			} else {
				e.num = keyBits(f.key.kind, val.v)
			}
		case num == 2 && wt == f.val.wire:
			if e.hasVal && f.val.kind == protoreflect.MessageKind {
				return e, false
			}
			if f.val.kind == protoreflect.StringKind && !utf8.Valid(b[val.start:val.end]) {
				return e, false
			}
			e.val, e.hasVal = val, true
		}
		// Anything else in an entry the runtime skips.
	}
	return e, true
}

// keyBits is a map key's value as the runtime reads it, signed kinds
// sign-extended to 64 bits.
func keyBits(k protoreflect.Kind, v uint64) uint64 {
	switch k {
	case protoreflect.BoolKind:
		if v != 0 {
			return 1
		}
		return 0
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return uint64(int64(int32Of(k, v)))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return uint64(uint32(v))
	case protoreflect.Sint64Kind:
		return uint64(protowire.DecodeZigZag(v))
	}
	return v
}

// entryOrder orders map entries by key as protojson writes them: false
// before true, numbers ascending, strings by their bytes.
func entryOrder(k protoreflect.Kind) func(a, b entry) int {
	switch k {
	case protoreflect.StringKind:
		return func(a, b entry) int { return strings.Compare(a.str, b.str) }
	case protoreflect.BoolKind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return func(a, b entry) int {
			switch {
			case a.num < b.num:
				return -1
			case a.num > b.num:
				return 1
			}
			return 0
		}
	}
	return func(a, b entry) int {
		switch {
		case int64(a.num) < int64(b.num):
			return -1
		case int64(a.num) > int64(b.num):
			return 1
		}
		return 0
	}
}

// wireWellKnown writes the google.protobuf types whose JSON form is not
// an object of their fields, from their occurrences (sorted by field).
func (w *writer) wireWellKnown(p *plan, b []byte, occs []occurrence, depth int) {
	last := func(num protowire.Number) (*fieldPlan, *occurrence) {
		fi := p.field(num)
		if fi < 0 {
			return nil, nil
		}
		var o *occurrence
		for k := range occs {
			if int(occs[k].field) == fi {
				o = &occs[k]
			}
		}
		return &p.fields[fi], o
	}
	switch p.wkt {
	case wktTimestamp, wktDuration:
		fs, s := last(1)
		fn, n := last(2)
		if fs == nil || fn == nil || fs.kind != protoreflect.Int64Kind || fn.kind != protoreflect.Int32Kind {
			w.fallback = true
			return
		}
		var secs, nanos int64
		if s != nil {
			secs = int64(s.v)
		}
		if n != nil {
			nanos = int64(int32(n.v))
		}
		if p.wkt == wktTimestamp {
			w.timestamp(secs, nanos)
		} else {
			w.duration(secs, nanos)
		}
	case wktWrapper:
		f, o := last(1)
		switch {
		case f == nil || f.list:
			w.fallback = true
		case o == nil:
			w.wireScalar(f, b, &occurrence{wire: f.wire}) // the default, written all the same
		default:
			w.wireScalar(f, b, o)
		}
	case wktStruct:
		f, o := last(1)
		switch {
		case f == nil || !f.isMap:
			w.fallback = true
		case o == nil:
			w.buf = append(w.buf, '{', '}')
		default:
			w.wireMap(f, b, occs, depth)
		}
	case wktListValue:
		f, o := last(1)
		switch {
		case f == nil || !f.list:
			w.fallback = true
		case o == nil:
			w.buf = append(w.buf, '[', ']')
		default:
			w.wireList(f, b, occs, depth)
		}
	case wktValue:
		if len(occs) == 0 || occs[0].field != occs[len(occs)-1].field {
			w.fallback = true // none set (protojson refuses it) or several (the runtime keeps the last)
			return
		}
		f := &p.fields[occs[0].field]
		if f.oneof < 0 || f.list || f.isMap {
			w.fallback = true
			return
		}
		if f.kind == protoreflect.DoubleKind {
			if v := math.Float64frombits(occs[len(occs)-1].v); math.IsNaN(v) || math.IsInf(v, 0) {
				w.fallback = true
				return
			}
		}
		if f.kind == protoreflect.MessageKind {
			if len(occs) > 1 {
				w.fallback = true
				return
			}
			w.wireMessage(f.msg, b[occs[0].start:occs[0].end], depth+1)
			return
		}
		w.wireScalar(f, b, &occs[len(occs)-1])
	default:
		w.fallback = true
	}
}
