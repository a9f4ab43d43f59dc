package grpcmsg

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestFilesMethod(t *testing.T) {
	f := loadFiles(t, "v1")
	tests := map[string]struct {
		method string
		output string // the method's output type; "" when it is not found
		stream bool
		err    string
	}{
		"unary":          {method: "/test.v1.Shop/Get", output: "test.v1.Item"},
		"server stream":  {method: "/test.v1.Shop/List", output: "test.v1.Item", stream: true},
		"another output": {method: "/test.v1.Shop/GetOrder", output: "test.v1.Order"},
		"no such method": {
			method: "/test.v1.Shop/Watch",
			err:    "method /test.v1.Shop/Watch: method not found: service test.v1.Shop has no method Watch (it has Get, List, GetOrder)",
		},
		"no such service": {
			method: "/test.v1.Stock/Get",
			err:    "method /test.v1.Stock/Get: method not found: no service test.v1.Stock in the descriptors",
		},
		"a message, not a service": {
			method: "/test.v1.Item/Get",
			err:    "no service test.v1.Item in the descriptors",
		},
		"not a request path": {method: "test.v1.Shop.Get", err: `method "test.v1.Shop.Get": method not found: not a gRPC request path`},
		"extra segment":      {method: "/test.v1.Shop/Get/x", err: "not a gRPC request path"},
		"empty":              {method: "", err: "not a gRPC request path"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			md, err := f.Method(context.Background(), tt.method)
			if tt.err != "" {
				require.ErrorIs(t, err, ErrNoMethod)
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.output, string(md.Output().FullName()))
			require.Equal(t, tt.stream, md.IsStreamingServer())
		})
	}
}

func TestLoadDescriptorSet(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		return path
	}
	marshal := func(set *descriptorpb.FileDescriptorSet) []byte {
		b, err := proto.Marshal(set)
		require.NoError(t, err)
		return b
	}
	full := descriptorSet(t, "v1")
	// Without --include_imports: only shop.proto.
	alone := &descriptorpb.FileDescriptorSet{File: full.File[len(full.File)-1:]}
	// A FileDescriptorProto written where a set was expected.
	single, err := proto.Marshal(alone.File[0])
	require.NoError(t, err)

	tests := map[string]struct {
		path string
		err  string // "" for none
	}{
		"with its imports": {path: write("ok.binpb", marshal(full))},
		"missing imports": {
			path: write("alone.binpb", marshal(alone)),
			err:  "alone.binpb: shop.proto imports google/protobuf/any.proto, which the set does not contain",
		},
		"no file":    {path: filepath.Join(dir, "absent.binpb"), err: "absent.binpb: no such file"},
		"empty file": {path: write("empty.binpb", nil), err: "empty.binpb: no files: not a FileDescriptorSet"},
		"text":       {path: write("shop.proto", []byte("syntax = \"proto3\";\n")), err: "shop.proto: not a FileDescriptorSet"},
		"a file descriptor, not a set": {
			path: write("single.binpb", single),
			err:  "single.binpb: not a FileDescriptorSet",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			f, err := LoadDescriptorSet(tt.path)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, methodOf(t, f, "/test.v1.Shop/Get"))
		})
	}
}

// TestNewFilesAnyOrder checks that a set need not list dependencies first.
func TestNewFilesAnyOrder(t *testing.T) {
	set := &descriptorpb.FileDescriptorSet{File: slices.Clone(descriptorSet(t, "v1").File)}
	slices.Reverse(set.File)
	f, err := NewFiles(set)
	require.NoError(t, err)
	require.NotNil(t, methodOf(t, f, "/test.v1.Shop/List"))
}
