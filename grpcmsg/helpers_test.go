package grpcmsg

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// compiled caches the descriptor sets of testdata/v1 and testdata/v2.
var compiled sync.Map // version -> *descriptorpb.FileDescriptorSet

// descriptorSet compiles testdata/<version>/shop.proto into a
// FileDescriptorSet with its imports, dependencies first, as protoc
// --include_imports writes it.
func descriptorSet(t testing.TB, version string) *descriptorpb.FileDescriptorSet {
	t.Helper()
	if set, ok := compiled.Load(version); ok {
		return set.(*descriptorpb.FileDescriptorSet)
	}
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		ImportPaths: []string{filepath.Join("testdata", version)},
	})}
	files, err := c.Compile(context.Background(), "shop.proto")
	require.NoError(t, err)
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(files[0])
	compiled.Store(version, set)
	return set
}

// writeSet writes set to a file in a temporary directory.
func writeSet(t testing.TB, set *descriptorpb.FileDescriptorSet) string {
	t.Helper()
	b, err := proto.Marshal(set)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "shop.binpb")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// registry builds the descriptors of set, as a server linking them has.
func registry(t testing.TB, set *descriptorpb.FileDescriptorSet) *protoregistry.Files {
	t.Helper()
	files, err := protodesc.NewFiles(set)
	require.NoError(t, err)
	return files
}

// loadFiles is version's descriptor set as Files, read from a file.
func loadFiles(t testing.TB, version string) *Files {
	t.Helper()
	f, err := LoadDescriptorSet(writeSet(t, descriptorSet(t, version)))
	require.NoError(t, err)
	return f
}

// methodOf resolves fullMethod in f.
func methodOf(t testing.TB, f *Files, fullMethod string) protoreflect.MethodDescriptor {
	t.Helper()
	md, err := f.Method(context.Background(), fullMethod)
	require.NoError(t, err)
	return md
}

// wire builds a message of md from JSON and returns its bytes: what a
// service with md would send.
func wire(t testing.TB, md protoreflect.MessageDescriptor, types *dynamicpb.Types, js string) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(md)
	require.NoError(t, protojson.UnmarshalOptions{Resolver: types}.Unmarshal([]byte(js), m))
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	require.NoError(t, err)
	return b
}

// frame prefixes msg as gRPC does, gzip-compressing it when gz.
func frame(t testing.TB, msg []byte, gz bool) []byte {
	t.Helper()
	flag := byte(0)
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err := zw.Write(msg)
		require.NoError(t, err)
		require.NoError(t, zw.Close())
		msg, flag = buf.Bytes(), 1
	}
	out := make([]byte, headerLen, headerLen+len(msg))
	out[0] = flag
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}
