package grpcmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Resolver finds the descriptor of a method, so that its messages can be
// decoded. Files and Reflection are the two sources.
type Resolver interface {
	// Method returns the descriptor of fullMethod, the request path
	// "/package.Service/Method". Its error wraps ErrNoMethod when the
	// service or the method is not known.
	Method(ctx context.Context, fullMethod string) (protoreflect.MethodDescriptor, error)
}

// ErrNoMethod is wrapped by the errors of a Resolver that does not know
// the method asked for (or its service).
var ErrNoMethod = errors.New("method not found")

// Files are the descriptors of a FileDescriptorSet: the files a service's
// protos compile to, with their imports. A Files is read-only once built
// and safe for concurrent use.
type Files struct {
	files   *protoregistry.Files
	methods map[string]*method // by request path, "/package.Service/Method"
}

// method is a method's descriptor with the types of the files it came
// from, which decoding needs besides: an Any's content and extensions are
// looked up there, not in the types linked into shadowlab.
type method struct {
	protoreflect.MethodDescriptor
	types *dynamicpb.Types
	plan  methodPlan // of the output type, for the direct decoder
}

// LoadDescriptorSet reads a FileDescriptorSet file, as protoc
// --include_imports --descriptor_set_out or buf build -o write it.
func LoadDescriptorSet(path string) (*Files, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("descriptor set: %w", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("descriptor set %s: not a FileDescriptorSet (write one with protoc --include_imports --descriptor_set_out, or buf build -o): %v", path, err)
	}
	f, err := NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("descriptor set %s: %w", path, err)
	}
	return f, nil
}

// NewFiles builds the descriptors of set. Every import of every file must
// be in the set: without them the messages that use imported types cannot
// be decoded.
func NewFiles(set *descriptorpb.FileDescriptorSet) (*Files, error) {
	if len(set.GetFile()) == 0 {
		return nil, errors.New("no files: not a FileDescriptorSet, or an empty one")
	}
	have := make(map[string]bool, len(set.GetFile()))
	for i, fd := range set.GetFile() {
		if fd.GetName() == "" {
			return nil, fmt.Errorf("file %d has no name: not a FileDescriptorSet", i)
		}
		have[fd.GetName()] = true
	}
	for _, fd := range set.GetFile() {
		for _, dep := range fd.GetDependency() {
			if !have[dep] {
				return nil, fmt.Errorf("%s imports %s, which the set does not contain (write the set with its imports: protoc --include_imports, or buf build)", fd.GetName(), dep)
			}
		}
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, err
	}
	f := &Files{files: files, methods: map[string]*method{}}
	types := dynamicpb.NewTypes(files)
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		addMethods(f.methods, fd, types)
		return true
	})
	return f, nil
}

// addMethods adds the methods of fd's services to byPath.
func addMethods(byPath map[string]*method, fd protoreflect.FileDescriptor, types *dynamicpb.Types) {
	for i := range fd.Services().Len() {
		sd := fd.Services().Get(i)
		for j := range sd.Methods().Len() {
			md := sd.Methods().Get(j)
			byPath["/"+string(sd.FullName())+"/"+string(md.Name())] = &method{MethodDescriptor: md, types: types}
		}
	}
}

// Method returns the descriptor of fullMethod ("/package.Service/Method").
func (f *Files) Method(_ context.Context, fullMethod string) (protoreflect.MethodDescriptor, error) {
	if m, ok := f.methods[fullMethod]; ok {
		return m, nil
	}
	service, name, err := splitMethod(fullMethod)
	if err != nil {
		return nil, err
	}
	d, err := f.files.FindDescriptorByName(protoreflect.FullName(service))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		return nil, fmt.Errorf("method %s: %w: no service %s in the descriptors", clip(fullMethod), ErrNoMethod, service)
	}
	return nil, noMethod(fullMethod, sd, name)
}

// noMethod is the error of a service that has no method name, naming the
// methods it has.
func noMethod(fullMethod string, sd protoreflect.ServiceDescriptor, name string) error {
	var have []string
	for i := range sd.Methods().Len() {
		have = append(have, string(sd.Methods().Get(i).Name()))
	}
	return fmt.Errorf("method %s: %w: service %s has no method %s (it has %s)",
		clip(fullMethod), ErrNoMethod, sd.FullName(), clip(name), strings.Join(have, ", "))
}

// splitMethod takes a request path "/package.Service/Method" apart.
func splitMethod(fullMethod string) (service, name string, err error) {
	rest, ok := strings.CutPrefix(fullMethod, "/")
	service, name, found := strings.Cut(rest, "/")
	if !ok || !found || service == "" || name == "" || strings.Contains(name, "/") ||
		!protoreflect.FullName(service).IsValid() || !protoreflect.Name(name).IsValid() {
		return "", "", fmt.Errorf("method %q: %w: not a gRPC request path (/package.Service/Method)", clip(fullMethod), ErrNoMethod)
	}
	return service, name, nil
}
