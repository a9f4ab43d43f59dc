package grpcbackend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Client calls the Orders service with dynamic messages of one version's
// descriptors and returns the answers as compact protojson with proto field
// names (values at their defaults are left out, int64 values are strings).
// Outgoing metadata of the context (metadata.NewOutgoingContext) is sent
// with each call; opts are passed to grpc as they are (grpc.UseCompressor,
// grpc.Header, ...). A Client is safe for concurrent use.
type Client struct {
	conn grpc.ClientConnInterface
	sc   *schema
}

// NewClient returns a Client that decodes answers with the legacy
// descriptors: a candidate's field 5 reads as total_cents there, and its
// IN_TRANSIT status as the number 4.
func NewClient(conn grpc.ClientConnInterface) (*Client, error) {
	return NewVersionClient(conn, VersionLegacy)
}

// NewVersionClient returns a Client that uses version's descriptors, to
// decode a version's answers with its own.
func NewVersionClient(conn grpc.ClientConnInterface, version string) (*Client, error) {
	sc, err := schemaOf(version)
	if err != nil {
		return nil, fmt.Errorf("grpcbackend client: %w", err)
	}
	return &Client{conn: conn, sc: sc}, nil
}

// GetOrder returns the order id as JSON.
func (c *Client) GetOrder(ctx context.Context, id string, opts ...grpc.CallOption) (string, error) {
	return c.call(ctx, "GetOrder", id, opts)
}

// CancelOrder cancels the order id and returns the CancelOrderResponse as
// JSON.
func (c *Client) CancelOrder(ctx context.Context, id string, opts ...grpc.CallOption) (string, error) {
	return c.call(ctx, "CancelOrder", id, opts)
}

// call calls the unary method whose request holds only an id.
func (c *Client) call(ctx context.Context, method, id string, opts []grpc.CallOption) (string, error) {
	m := c.sc.service.Methods().ByName(protoreflect.Name(method))
	req := dynamicpb.NewMessage(m.Input())
	req.Set(field(req, 1), protoreflect.ValueOfString(id))
	return c.invoke(ctx, m, req, opts)
}

// ListOrders returns the orders of customer as JSON, in the order received.
// When the stream fails midway it returns the orders received so far and the
// error.
func (c *Client) ListOrders(ctx context.Context, customer string, opts ...grpc.CallOption) ([]string, error) {
	m := c.sc.service.Methods().ByName("ListOrders")
	req := dynamicpb.NewMessage(m.Input())
	req.Set(field(req, 1), protoreflect.ValueOfString(customer))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if it is left early
	desc := &grpc.StreamDesc{StreamName: "ListOrders", ServerStreams: true}
	stream, err := c.conn.NewStream(ctx, desc, MethodListOrders, opts...)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(req); err != nil {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	var out []string
	for {
		resp := dynamicpb.NewMessage(m.Output())
		err := stream.RecvMsg(resp)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		js, err := toJSON(resp)
		if err != nil {
			return out, err
		}
		out = append(out, js)
	}
}

// Invoke calls the unary method ("GetOrder" or "CancelOrder") with the
// request given as protojson and returns the answer as JSON. The error of a
// failed call is grpc's (status.Code reads it).
func (c *Client) Invoke(ctx context.Context, method, requestJSON string, opts ...grpc.CallOption) (string, error) {
	m := c.sc.service.Methods().ByName(protoreflect.Name(method))
	if m == nil || m.IsStreamingServer() || m.IsStreamingClient() {
		return "", fmt.Errorf("grpcbackend client: %q is not a unary method of %s", method, ServiceName)
	}
	req := dynamicpb.NewMessage(m.Input())
	if err := protojson.Unmarshal([]byte(requestJSON), req); err != nil {
		return "", fmt.Errorf("grpcbackend client: %s request: %w", method, err)
	}
	return c.invoke(ctx, m, req, opts)
}

// invoke calls the unary method m with req.
func (c *Client) invoke(ctx context.Context, m protoreflect.MethodDescriptor, req *dynamicpb.Message, opts []grpc.CallOption) (string, error) {
	resp := dynamicpb.NewMessage(m.Output())
	full := "/" + ServiceName + "/" + string(m.Name())
	if err := c.conn.Invoke(ctx, full, req, resp, opts...); err != nil {
		return "", err
	}
	return toJSON(resp)
}

// toJSON returns m as compact protojson with proto field names. (protojson
// varies its whitespace on purpose; compacting makes the text stable.)
func toJSON(m proto.Message) (string, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("grpcbackend: encode %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return "", fmt.Errorf("grpcbackend: compact JSON: %w", err)
	}
	return out.String(), nil
}

// mustJSON is toJSON for messages that always encode (the requests of the
// service hold only strings); a failure is spelled out instead.
func mustJSON(m proto.Message) string {
	s, err := toJSON(m)
	if err != nil {
		return fmt.Sprintf("(not JSON: %v)", err)
	}
	return s
}
