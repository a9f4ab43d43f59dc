package grpcbackend

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/bufbuild/protocompile"
	v1reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// protoSources holds proto/<version>/shop/v1/orders.proto for each version.
//
//go:embed proto
var protoSources embed.FS

// ErrUnknownVersion is wrapped by the errors about a version that is
// neither VersionLegacy nor VersionCandidate.
var ErrUnknownVersion = errors.New("unknown version")

// schema is one version's compiled descriptors. It is never modified after
// compile, so servers and clients share it.
type schema struct {
	version string
	// set is the version's files with their imports, imports first.
	set *descriptorpb.FileDescriptorSet
	// files holds the files of set, nothing else.
	files *protoregistry.Files
	// reflected holds the files of set and those of the reflection
	// services: what the server's reflection service describes.
	reflected *protoregistry.Files
	service   protoreflect.ServiceDescriptor
	order     protoreflect.MessageDescriptor
}

// schemas compiles each version once, on first use.
var schemas = map[string]func() (*schema, error){
	VersionLegacy:    sync.OnceValues(func() (*schema, error) { return compile(VersionLegacy) }),
	VersionCandidate: sync.OnceValues(func() (*schema, error) { return compile(VersionCandidate) }),
}

// schemaOf returns version's compiled descriptors.
func schemaOf(version string) (*schema, error) {
	get, ok := schemas[version]
	if !ok {
		return nil, fmt.Errorf("version %q: %w (want %s or %s)", version, ErrUnknownVersion, VersionLegacy, VersionCandidate)
	}
	return get()
}

// DescriptorSet returns version's FileDescriptorSet: ProtoFile and the files
// it imports (google/protobuf/timestamp.proto), imports first, as a
// descriptor-set file holds them. The caller owns the returned message.
func DescriptorSet(version string) (*descriptorpb.FileDescriptorSet, error) {
	sc, err := schemaOf(version)
	if err != nil {
		return nil, err
	}
	return proto.CloneOf(sc.set), nil
}

// compile compiles version's embedded ProtoFile (the standard imports come
// from the protobuf runtime) and links the result again with protodesc, so
// that what the server uses is exactly what DescriptorSet hands out.
func compile(version string) (*schema, error) {
	root := "proto/" + version + "/"
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: func(path string) (io.ReadCloser, error) { return protoSources.Open(root + path) },
		}),
	}
	linked, err := c.Compile(context.Background(), ProtoFile)
	if err != nil {
		return nil, fmt.Errorf("compile %s %s: %w", version, ProtoFile, err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	addFile(set, linked[0], map[string]bool{})
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("link %s %s: %w", version, ProtoFile, err)
	}

	sc := &schema{version: version, set: set, files: files}
	if sc.service, err = findService(files); err != nil {
		return nil, fmt.Errorf("%s %s: %w", version, ProtoFile, err)
	}
	sc.order = sc.service.Methods().ByName("GetOrder").Output()
	if err := checkFields(sc.service); err != nil {
		return nil, fmt.Errorf("%s %s: %w", version, ProtoFile, err)
	}
	if sc.reflected, err = protodesc.NewFiles(set); err != nil {
		return nil, fmt.Errorf("link %s %s: %w", version, ProtoFile, err)
	}
	for _, fd := range []protoreflect.FileDescriptor{
		v1reflectionpb.File_grpc_reflection_v1_reflection_proto,
		v1alphareflectionpb.File_grpc_reflection_v1alpha_reflection_proto,
	} {
		if err := sc.reflected.RegisterFile(fd); err != nil {
			return nil, fmt.Errorf("%s: register %s: %w", version, fd.Path(), err)
		}
	}
	return sc, nil
}

// addFile appends fd to set after the files it imports, each file once.
func addFile(set *descriptorpb.FileDescriptorSet, fd protoreflect.FileDescriptor, seen map[string]bool) {
	if seen[fd.Path()] {
		return
	}
	seen[fd.Path()] = true
	imports := fd.Imports()
	for i := range imports.Len() {
		addFile(set, imports.Get(i).FileDescriptor, seen)
	}
	set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
}

// findService returns the Orders service of files after checking that it has
// the methods the server implements, with the streaming the server expects.
func findService(files *protoregistry.Files) (protoreflect.ServiceDescriptor, error) {
	d, err := files.FindDescriptorByName(ServiceName)
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", ServiceName, err)
	}
	svc, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", ServiceName)
	}
	want := []struct {
		name    protoreflect.Name
		streams bool
	}{{"GetOrder", false}, {"ListOrders", true}, {"CancelOrder", false}}
	var errs []error
	for _, w := range want {
		name, streams := w.name, w.streams
		m := svc.Methods().ByName(name)
		switch {
		case m == nil:
			errs = append(errs, fmt.Errorf("method %s: missing", name))
		case m.IsStreamingClient() || m.IsStreamingServer() != streams:
			errs = append(errs, fmt.Errorf("method %s: want server streaming %t, client streaming false", name, streams))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return svc, nil
}

// wantFields are the field numbers and kinds the server sets or reads, per
// message of the service (by method and side).
var wantFields = []struct {
	method string
	output bool
	fields map[protoreflect.FieldNumber]protoreflect.Kind
}{
	{method: "GetOrder", fields: map[protoreflect.FieldNumber]protoreflect.Kind{1: protoreflect.StringKind}},
	{method: "ListOrders", fields: map[protoreflect.FieldNumber]protoreflect.Kind{1: protoreflect.StringKind}},
	{method: "CancelOrder", fields: map[protoreflect.FieldNumber]protoreflect.Kind{1: protoreflect.StringKind}},
	{method: "CancelOrder", output: true, fields: map[protoreflect.FieldNumber]protoreflect.Kind{
		1: protoreflect.BoolKind, 2: protoreflect.StringKind,
	}},
	{method: "GetOrder", output: true, fields: map[protoreflect.FieldNumber]protoreflect.Kind{
		1: protoreflect.StringKind, 2: protoreflect.StringKind, 3: protoreflect.EnumKind,
		4: protoreflect.MessageKind, 5: protoreflect.Int64Kind, 6: protoreflect.StringKind,
		7: protoreflect.MessageKind,
	}},
}

// checkFields reports every field the server relies on that svc's messages
// lack or declare with another kind, so that a broken proto fails at start
// rather than panicking in a call.
func checkFields(svc protoreflect.ServiceDescriptor) error {
	var errs []error
	check := func(md protoreflect.MessageDescriptor, want map[protoreflect.FieldNumber]protoreflect.Kind) {
		for _, n := range slices.Sorted(maps.Keys(want)) {
			kind := want[n]
			fd := md.Fields().ByNumber(n)
			if fd == nil || fd.Kind() != kind {
				errs = append(errs, fmt.Errorf("message %s: want field %d of kind %s", md.FullName(), n, kind))
			}
		}
	}
	for _, w := range wantFields {
		m := svc.Methods().ByName(protoreflect.Name(w.method))
		md := m.Input()
		if w.output {
			md = m.Output()
		}
		check(md, w.fields)
	}
	order := svc.Methods().ByName("GetOrder").Output()
	if list := svc.Methods().ByName("ListOrders").Output(); list != order {
		errs = append(errs, fmt.Errorf("method ListOrders: want it to stream %s (got %s)", order.FullName(), list.FullName()))
	}
	if items := order.Fields().ByNumber(4); items != nil && items.Message() != nil {
		check(items.Message(), map[protoreflect.FieldNumber]protoreflect.Kind{
			1: protoreflect.StringKind, 2: protoreflect.Int32Kind, 3: protoreflect.Int64Kind,
		})
	}
	if ts := order.Fields().ByNumber(7); ts != nil && ts.Message() != nil && ts.Message().FullName() != "google.protobuf.Timestamp" {
		errs = append(errs, fmt.Errorf("message %s: want field 7 a google.protobuf.Timestamp", order.FullName()))
	}
	return errors.Join(errs...)
}
