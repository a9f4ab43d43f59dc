package grpcbackend

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // answer gzip to clients that ask
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

const (
	// DefaultAddr is where Start listens when Config.Addr is empty.
	DefaultAddr = "127.0.0.1:0"
	// MaxRecorded is how many calls a Server keeps; older ones are dropped.
	MaxRecorded = 100_000
	// Redacted replaces the value of a sensitive header in a recorded Call.
	Redacted = "[redacted]"
)

// shutdownTimeout bounds how long Close waits for calls in flight.
const shutdownTimeout = 3 * time.Second

// Config says how to start a Server.
type Config struct {
	// Version is VersionLegacy or VersionCandidate (required).
	Version string
	// Addr is the host:port to listen on; "" means DefaultAddr (port 0 picks
	// a free port).
	Addr string
	// TLSCertFile and TLSKeyFile are PEM files: both set serves TLS, both
	// empty serves plaintext HTTP/2 (h2c).
	TLSCertFile, TLSKeyFile string
	// Fault is the fault the Server starts with (see SetFault).
	Fault Fault
}

// Fault makes a Server fail the calls of its service (reflection is never
// faulted). The zero Fault is none. Hang wins over Unavailable.
type Fault struct {
	// Unavailable answers every call UNAVAILABLE.
	Unavailable bool
	// Hang answers no call until its client gives up (its deadline or
	// cancellation) or the Server closes (then UNAVAILABLE).
	Hang bool
	// Pad, when positive, adds a tags entry of Pad bytes to every Order
	// answered, to make messages larger than a capture limit.
	Pad int
}

// Call is what a Server recorded about one call it received.
type Call struct {
	// Method is the full method name, "/shop.v1.Orders/GetOrder".
	Method string `json:"method"`
	// Request is the request message as compact protojson, proto field
	// names.
	Request string `json:"request"`
	// Headers maps the call's metadata keys (lower case, as gRPC has them,
	// pseudo-headers such as :authority included) to their first value.
	// Values of binary (-bin) keys are base64; those of authorization,
	// proxy-authorization and cookie are replaced by Redacted.
	Headers map[string]string `json:"headers"`
	// At is when the request message was read.
	At time.Time `json:"at"`
}

// Server is one running version of the Orders service. Its methods are safe
// for concurrent use.
type Server struct {
	sc      *schema
	grpc    *grpc.Server
	ln      net.Listener
	served  chan error    // receives Serve's result
	closing chan struct{} // closed by Close, to end hanging calls

	mu    sync.Mutex // guards fault and calls
	fault Fault
	calls []Call

	closeOnce sync.Once
	closeErr  error
}

// Start serves cfg.Version of the Orders service on cfg.Addr in the
// background, with reflection.
func Start(cfg Config) (*Server, error) {
	sc, err := schemaOf(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("grpcbackend: %w", err)
	}
	if err := cfg.Fault.validate(); err != nil {
		return nil, fmt.Errorf("grpcbackend %s: %w", cfg.Version, err)
	}
	var opts []grpc.ServerOption
	switch {
	case cfg.TLSCertFile != "" && cfg.TLSKeyFile != "":
		creds, err := credentials.NewServerTLSFromFile(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("grpcbackend %s: tls: %w", cfg.Version, err)
		}
		opts = append(opts, grpc.Creds(creds))
	case cfg.TLSCertFile != "" || cfg.TLSKeyFile != "":
		return nil, fmt.Errorf("grpcbackend %s: tls: set both the cert and the key file, or neither", cfg.Version)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("grpcbackend %s: listen on %q: %w", cfg.Version, addr, err)
	}

	s := &Server{
		sc:      sc,
		grpc:    grpc.NewServer(opts...),
		ln:      ln,
		served:  make(chan error, 1),
		closing: make(chan struct{}),
		fault:   cfg.Fault,
	}
	s.grpc.RegisterService(s.serviceDesc(), s)
	ro := reflection.ServerOptions{
		Services:           s.grpc,
		DescriptorResolver: sc.reflected,
		ExtensionResolver:  new(protoregistry.Types), // the service has no extensions
	}
	v1reflectiongrpc.RegisterServerReflectionServer(s.grpc, reflection.NewServerV1(ro))
	v1alphareflectiongrpc.RegisterServerReflectionServer(s.grpc, reflection.NewServer(ro))
	go func() { s.served <- s.grpc.Serve(ln) }()
	return s, nil
}

// Version returns the version the Server serves.
func (s *Server) Version() string { return s.sc.version }

// Addr returns the host:port the Server is bound to.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the Server: it ends hanging calls, stops accepting, waits a
// few seconds for calls in flight, then cuts off those still running. A
// second Close returns the first one's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		t := time.NewTimer(shutdownTimeout)
		defer t.Stop()
		select {
		case <-stopped:
		case <-t.C:
			s.grpc.Stop()
			<-stopped
		}
		if err := <-s.served; err != nil {
			s.closeErr = fmt.Errorf("grpcbackend %s: serve: %w", s.sc.version, err)
		}
	})
	return s.closeErr
}

// SetFault makes the Server fail as f says from now on (Fault{} heals it).
// A negative Pad is an error.
func (s *Server) SetFault(f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("grpcbackend %s: %w", s.sc.version, err)
	}
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
	return nil
}

func (f Fault) validate() error {
	if f.Pad < 0 {
		return fmt.Errorf("fault pad: must not be negative (got %d)", f.Pad)
	}
	return nil
}

// Received returns a copy of the recorded calls, oldest first.
func (s *Server) Received() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		c.Headers = maps.Clone(c.Headers)
		out[i] = c
	}
	return out
}

// Count returns how many calls are recorded now (len of Received).
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// Reset forgets every recorded call.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// begin records a call of method with request req, then applies the fault:
// it returns the call's error if the fault fails it, and the fault's Pad.
func (s *Server) begin(ctx context.Context, method string, req *dynamicpb.Message) (pad int, err error) {
	c := Call{Method: method, Request: mustJSON(req), Headers: recordedHeaders(ctx), At: time.Now()}
	s.mu.Lock()
	if len(s.calls) >= MaxRecorded {
		s.calls = s.calls[1:]
	}
	s.calls = append(s.calls, c)
	f := s.fault
	s.mu.Unlock()

	switch {
	case f.Hang:
		select {
		case <-ctx.Done():
			return 0, status.FromContextError(ctx.Err()).Err()
		case <-s.closing:
			return 0, status.Errorf(codes.Unavailable, "grpcbackend %s: closing", s.sc.version)
		}
	case f.Unavailable:
		return 0, status.Errorf(codes.Unavailable, "grpcbackend %s: unavailable (fault)", s.sc.version)
	}
	return f.Pad, nil
}

// recordedHeaders returns the incoming metadata of ctx as a Call records it.
func recordedHeaders(ctx context.Context) map[string]string {
	md, _ := metadata.FromIncomingContext(ctx)
	h := make(map[string]string, len(md))
	for k, vs := range md {
		if len(vs) == 0 {
			continue
		}
		k = strings.ToLower(k)
		switch {
		case k == "authorization" || k == "proxy-authorization" || k == "cookie":
			h[k] = Redacted
		case strings.HasSuffix(k, "-bin"):
			h[k] = base64.StdEncoding.EncodeToString([]byte(vs[0]))
		default:
			h[k] = vs[0]
		}
	}
	return h
}

// serviceDesc describes the Orders service to grpc, with handlers that
// decode and encode dynamic messages of the Server's version.
func (s *Server) serviceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			s.unary("GetOrder", MethodGetOrder, s.getOrder),
			s.unary("CancelOrder", MethodCancelOrder, s.cancelOrder),
		},
		Streams: []grpc.StreamDesc{{
			StreamName:    "ListOrders",
			ServerStreams: true,
			Handler:       func(_ any, stream grpc.ServerStream) error { return s.listOrders(stream) },
		}},
		Metadata: ProtoFile,
	}
}

// unary returns the MethodDesc of the unary method name, answered by answer
// once the call is recorded and not failed by the fault.
func (s *Server) unary(name, full string, answer func(req *dynamicpb.Message, pad int) (*dynamicpb.Message, error)) grpc.MethodDesc {
	in := s.sc.service.Methods().ByName(protoreflect.Name(name)).Input()
	handle := func(ctx context.Context, req any) (any, error) {
		m := req.(*dynamicpb.Message)
		pad, err := s.begin(ctx, full, m)
		if err != nil {
			return nil, err
		}
		return answer(m, pad)
	}
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			req := dynamicpb.NewMessage(in)
			if err := dec(req); err != nil {
				return nil, err
			}
			if icpt == nil {
				return handle(ctx, req)
			}
			return icpt(ctx, req, &grpc.UnaryServerInfo{Server: s, FullMethod: full}, handle)
		},
	}
}

func (s *Server) getOrder(req *dynamicpb.Message, pad int) (*dynamicpb.Message, error) {
	o, err := getOrder(s.sc.version, stringField(req, 1))
	if err != nil {
		return nil, err
	}
	return s.sc.orderMessage(o, pad), nil
}

func (s *Server) cancelOrder(req *dynamicpb.Message, _ int) (*dynamicpb.Message, error) {
	c, err := cancelOrder(s.sc.version, stringField(req, 1))
	if err != nil {
		return nil, err
	}
	out := s.sc.service.Methods().ByName("CancelOrder").Output()
	m := dynamicpb.NewMessage(out)
	setScalar(m, 1, protoreflect.ValueOfBool(c.cancelled))
	setScalar(m, 2, protoreflect.ValueOfString(c.reason))
	return m, nil
}

func (s *Server) listOrders(stream grpc.ServerStream) error {
	in := s.sc.service.Methods().ByName("ListOrders").Input()
	req := dynamicpb.NewMessage(in)
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	pad, err := s.begin(stream.Context(), MethodListOrders, req)
	if err != nil {
		return err
	}
	list, err := listOrders(s.sc.version, stringField(req, 1))
	if err != nil {
		return err
	}
	for _, o := range list {
		if err := stream.SendMsg(s.sc.orderMessage(o, pad)); err != nil {
			return err
		}
	}
	return nil
}

// orderMessage returns o as an Order of the schema's version, with a tags
// entry of pad bytes when pad > 0. Fields are set by number, which both
// versions share.
func (sc *schema) orderMessage(o order, pad int) *dynamicpb.Message {
	m := dynamicpb.NewMessage(sc.order)
	setScalar(m, 1, protoreflect.ValueOfString(o.id))
	setScalar(m, 2, protoreflect.ValueOfString(o.customer))
	setScalar(m, 3, protoreflect.ValueOfEnum(protoreflect.EnumNumber(o.status)))
	items := m.Mutable(field(m, 4)).List()
	for _, it := range o.items {
		v := items.NewElement()
		im := v.Message()
		setScalar(im, 1, protoreflect.ValueOfString(it.sku))
		setScalar(im, 2, protoreflect.ValueOfInt32(it.quantity))
		setScalar(im, 3, protoreflect.ValueOfInt64(it.priceCents))
		items.Append(v)
	}
	setScalar(m, 5, protoreflect.ValueOfInt64(o.totalCents()))
	tags := m.Mutable(field(m, 6)).List()
	for _, t := range o.tags {
		tags.Append(protoreflect.ValueOfString(t))
	}
	if pad > 0 {
		tags.Append(protoreflect.ValueOfString(strings.Repeat("p", pad)))
	}
	ts := m.Mutable(field(m, 7)).Message()
	setScalar(ts, 1, protoreflect.ValueOfInt64(o.placedAt.Unix()))
	return m
}

// field returns m's field number n, which checkFields made sure exists.
func field(m protoreflect.Message, n protoreflect.FieldNumber) protoreflect.FieldDescriptor {
	return m.Descriptor().Fields().ByNumber(n)
}

// setScalar sets m's field number n to v.
func setScalar(m protoreflect.Message, n protoreflect.FieldNumber, v protoreflect.Value) {
	m.Set(field(m, n), v)
}

// stringField returns m's string field number n.
func stringField(m protoreflect.Message, n protoreflect.FieldNumber) string {
	return m.Get(field(m, n)).String()
}
