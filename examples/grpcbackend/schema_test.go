package grpcbackend

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestDescriptorSet(t *testing.T) {
	tests := map[string]struct {
		version    string
		field5     string
		lastStatus string
	}{
		"legacy":    {version: VersionLegacy, field5: "total_cents", lastStatus: "DELIVERED"},
		"candidate": {version: VersionCandidate, field5: "total", lastStatus: "IN_TRANSIT"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			set, err := DescriptorSet(tc.version)
			require.NoError(t, err)
			var paths []string
			for _, f := range set.GetFile() {
				paths = append(paths, f.GetName())
			}
			assert.Equal(t, []string{"google/protobuf/timestamp.proto", ProtoFile}, paths, "imports first")

			files, err := protodesc.NewFiles(set)
			require.NoError(t, err)
			d, err := files.FindDescriptorByName("shop.v1.Order")
			require.NoError(t, err)
			total := d.(protoreflect.MessageDescriptor).Fields().ByNumber(5)
			assert.Equal(t, tc.field5, string(total.Name()))
			assert.Equal(t, protoreflect.Int64Kind, total.Kind())
			d, err = files.FindDescriptorByName("shop.v1.OrderStatus")
			require.NoError(t, err)
			values := d.(protoreflect.EnumDescriptor).Values()
			assert.Equal(t, tc.lastStatus, string(values.Get(values.Len()-1).Name()))

			// The caller owns the set: changing it changes no later one.
			set.File = nil
			again, err := DescriptorSet(tc.version)
			require.NoError(t, err)
			assert.Len(t, again.GetFile(), 2)
		})
	}
	_, err := DescriptorSet("beta")
	assert.ErrorIs(t, err, ErrUnknownVersion)
}

// TestReflection asks each version's reflection services (v1 and v1alpha)
// for its services and its proto file: each answers its own.
func TestReflection(t *testing.T) {
	for _, version := range []string{VersionLegacy, VersionCandidate} {
		t.Run(version, func(t *testing.T) {
			s := start(t, Config{Version: version})
			conn := dial(t, s.Addr())
			set, err := DescriptorSet(version)
			require.NoError(t, err)
			wantServices := []string{
				"grpc.reflection.v1.ServerReflection",
				"grpc.reflection.v1alpha.ServerReflection",
				ServiceName,
			}

			stream, err := v1reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
			require.NoError(t, err)
			ask := func(req *v1reflectionpb.ServerReflectionRequest) *v1reflectionpb.ServerReflectionResponse {
				t.Helper()
				require.NoError(t, stream.Send(req))
				resp, err := stream.Recv()
				require.NoError(t, err)
				require.Nil(t, resp.GetErrorResponse(), "reflection error")
				return resp
			}

			resp := ask(&v1reflectionpb.ServerReflectionRequest{
				MessageRequest: &v1reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"},
			})
			var names []string
			for _, svc := range resp.GetListServicesResponse().GetService() {
				names = append(names, svc.GetName())
			}
			assert.ElementsMatch(t, wantServices, names)

			resp = ask(&v1reflectionpb.ServerReflectionRequest{
				MessageRequest: &v1reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: ServiceName},
			})
			got := map[string]*descriptorpb.FileDescriptorProto{}
			for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
				fd := &descriptorpb.FileDescriptorProto{}
				require.NoError(t, proto.Unmarshal(b, fd))
				got[fd.GetName()] = fd
			}
			want := map[string]*descriptorpb.FileDescriptorProto{}
			for _, fd := range set.GetFile() {
				want[fd.GetName()] = fd
			}
			assert.Empty(t, cmp.Diff(want, got, protocmp.Transform()), "files of %s", ServiceName)

			// The reflection service describes itself too.
			resp = ask(&v1reflectionpb.ServerReflectionRequest{
				MessageRequest: &v1reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "grpc.reflection.v1alpha.ServerReflection"},
			})
			assert.Len(t, resp.GetFileDescriptorResponse().GetFileDescriptorProto(), 1)
			require.NoError(t, stream.CloseSend())

			alpha, err := v1alphareflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
			require.NoError(t, err)
			require.NoError(t, alpha.Send(&v1alphareflectionpb.ServerReflectionRequest{
				MessageRequest: &v1alphareflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: ProtoFile},
			}))
			aresp, err := alpha.Recv()
			require.NoError(t, err)
			files := aresp.GetFileDescriptorResponse().GetFileDescriptorProto()
			require.NotEmpty(t, files)
			first := &descriptorpb.FileDescriptorProto{}
			require.NoError(t, proto.Unmarshal(files[0], first))
			assert.Empty(t, cmp.Diff(want[ProtoFile], first, protocmp.Transform()), "v1alpha %s", ProtoFile)
			require.NoError(t, alpha.CloseSend())
		})
	}
}

// TestRenamedFieldSameBytes checks the claim of the first seeded difference:
// the same order encodes to the same bytes with either version's
// descriptors, although field 5 has another name.
func TestRenamedFieldSameBytes(t *testing.T) {
	legacy, err := schemaOf(VersionLegacy)
	require.NoError(t, err)
	candidate, err := schemaOf(VersionCandidate)
	require.NoError(t, err)
	opts := proto.MarshalOptions{Deterministic: true}
	for _, o := range orders {
		l, err := opts.Marshal(legacy.orderMessage(o, 0))
		require.NoError(t, err)
		c, err := opts.Marshal(candidate.orderMessage(o, 0))
		require.NoError(t, err)
		assert.Equal(t, l, c, o.id)
	}
}
