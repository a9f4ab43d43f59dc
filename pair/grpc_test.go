package pair

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shadowlab/shadowlab/compare"
	"github.com/shadowlab/shadowlab/examples/grpcbackend"
	"github.com/shadowlab/shadowlab/grpcmsg"
)

// frame is one gRPC message as it travels: uncompressed, length prefixed.
func frame(msg []byte) []byte {
	b := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

func grpcAnswer(body []byte, status string) compare.Response {
	return compare.Response{Status: 200, Headers: map[string]string{"content-type": "application/grpc"}, Body: body,
		Trailers: map[string]string{"grpc-status": status}}
}

func files(t *testing.T, version string) *grpcmsg.Files {
	set, err := grpcbackend.DescriptorSet(version)
	require.NoError(t, err)
	f, err := grpcmsg.NewFiles(set)
	require.NoError(t, err)
	return f
}

// An Order with id and a field number no version of the proto has.
func orderWithUnknown(id string) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, id)
	b = protowire.AppendTag(b, 99, protowire.VarintType)
	return protowire.AppendVarint(b, 7)
}

func TestGRPCAsJSON(t *testing.T) {
	ctx := context.Background()
	route := grpcRoute{primary: files(t, grpcbackend.VersionLegacy), shadow: files(t, grpcbackend.VersionCandidate)}
	order := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "o-1")
	order = protowire.AppendVarint(protowire.AppendTag(order, 5, protowire.VarintType), 1234)

	// Each side decoded with its own descriptors: field 5 is total_cents
	// in the legacy's proto, total in the candidate's.
	p, s, undecoded := route.asJSON(ctx, grpcbackend.MethodGetOrder, grpcAnswer(frame(order), "0"), grpcAnswer(frame(order), "0"), 1<<20)
	require.Nil(t, undecoded)
	require.Equal(t, "OK", p.GRPCStatus)
	require.JSONEq(t, `{"id":"o-1","total_cents":"1234"}`, string(p.Body))
	require.JSONEq(t, `{"id":"o-1","total":"1234"}`, string(s.Body))
	res := compare.Compare(p, s, nil)
	require.Len(t, res.Differences, 2)

	// A server stream is the array of its messages.
	p, _, undecoded = route.asJSON(ctx, grpcbackend.MethodListOrders, grpcAnswer(append(frame(order), frame(order)...), "0"), grpcAnswer(nil, "0"), 1<<20)
	require.Nil(t, undecoded)
	require.JSONEq(t, `[{"id":"o-1","total_cents":"1234"},{"id":"o-1","total_cents":"1234"}]`, string(p.Body))

	// Unknown fields: compared as bytes; equal bytes match, different
	// ones are an undecodable difference saying why.
	unknown := frame(orderWithUnknown("o-1"))
	p, s, undecoded = route.asJSON(ctx, grpcbackend.MethodGetOrder, grpcAnswer(unknown, "0"), grpcAnswer(unknown, "0"), 1<<20)
	require.NotNil(t, undecoded)
	require.Empty(t, explainBytes(compare.Compare(p, s, nil).Differences, undecoded), "same bytes: a match")
	p, s, undecoded = route.asJSON(ctx, grpcbackend.MethodGetOrder, grpcAnswer(unknown, "0"), grpcAnswer(frame(order), "0"), 1<<20)
	ds := explainBytes(compare.Compare(p, s, nil).Differences, undecoded)
	require.Len(t, ds, 1)
	require.Equal(t, compare.Undecodable, ds[0].Kind)
	require.Contains(t, ds[0].Primary, "99")
	require.Equal(t, "(decodes)", ds[0].Shadow)

	// A service without descriptors, and a truncated message.
	bare := grpcRoute{shadow: route.shadow}
	_, _, undecoded = bare.asJSON(ctx, grpcbackend.MethodGetOrder, grpcAnswer(frame(order), "0"), grpcAnswer(frame(order), "0"), 1<<20)
	require.Contains(t, undecoded.Primary, "no descriptors")
	_, _, undecoded = route.asJSON(ctx, grpcbackend.MethodGetOrder, grpcAnswer(frame(order)[:8], "0"), grpcAnswer(frame(order), "0"), 1<<20)
	require.NotEqual(t, "(decodes)", undecoded.Primary)

	// An error status with no message: the status is what is compared.
	p, s, undecoded = route.asJSON(ctx, grpcbackend.MethodCancelOrder, grpcAnswer(frame(nil), "0"), grpcAnswer(nil, "9"), 1<<20)
	require.Nil(t, undecoded)
	res = compare.Compare(p, s, nil)
	require.Equal(t, []compare.Difference{{Path: "grpc-status", Pattern: "grpc-status", Kind: compare.Status, Primary: "OK", Shadow: "FAILED_PRECONDITION"}}, res.Differences)
}
