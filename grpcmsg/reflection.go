package grpcmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	// Deprecated, and still all that older servers have.
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// ReflectionOptions tune a Reflection; the zero value is the defaults.
type ReflectionOptions struct {
	// Timeout bounds each exchange with the server, connecting included
	// (0: 2s).
	Timeout time.Duration
	// RefreshEvery is how long a failed lookup, or a method its service
	// did not have, is remembered before the server is asked again
	// (0: 10s): long enough that a service without reflection costs one
	// request per interval rather than one per pair, short enough that a
	// redeployed service is seen soon.
	RefreshEvery time.Duration
	// Now is the clock (nil: time.Now); tests step it.
	Now func() time.Time
}

// Reflection resolves methods through a service's gRPC server reflection
// (grpc.reflection.v1, or v1alpha for servers that only have it). It asks
// once per service for the file that declares it and the files that file
// imports, and keeps the service's descriptors: a method it has is
// answered without asking again, even when the server is down later.
// A failed lookup, or a method the service did not have, is answered from
// memory until RefreshEvery has passed, then the server is asked again.
// Concurrent lookups of one service share one request. Safe for
// concurrent use.
type Reflection struct {
	target  string
	conn    *grpc.ClientConn
	timeout time.Duration
	refresh time.Duration
	now     func() time.Time

	ctx    context.Context // ends the lookups under way at Close
	cancel context.CancelFunc
	alpha  atomic.Bool  // the server has only v1alpha
	asked  atomic.Int64 // lookups started, for tests

	mu       sync.Mutex
	closed   bool
	services map[string]*service // by full name
}

// service is what Reflection knows of one service.
type service struct {
	// methods are the service's as the last successful lookup found them
	// (nil before one succeeded): a later failed lookup does not forget
	// them.
	methods map[string]*method
	desc    protoreflect.ServiceDescriptor
	// looked, at, err: whether a lookup finished, when, and how it failed
	// (nil: it did not).
	looked bool
	at     time.Time
	err    error
	// flight is closed when the lookup under way ends; nil when none is.
	flight chan struct{}
}

// maxServices bounds the services a Reflection remembers.
const maxServices = 1024

// maxReflectionFiles bounds the files of one service's lookup, against a
// server that keeps naming new ones.
const maxReflectionFiles = 10000

// maxReflectionAnswer bounds one reflection answer (descriptors of large
// APIs exceed gRPC's default 4 MiB); as large as a descriptor set file may
// be in a policy.
const maxReflectionAnswer = 64 << 20

// NewReflection returns a Reflection asking the server at target (a gRPC
// target: "host:port", "dns:///host:port"). It does not connect until the
// first lookup.
func NewReflection(target string, creds credentials.TransportCredentials, opts ReflectionOptions) (*Reflection, error) {
	if creds == nil {
		return nil, fmt.Errorf("reflection at %s: no transport credentials (insecure.NewCredentials() for plaintext)", target)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxReflectionAnswer)))
	if err != nil {
		return nil, fmt.Errorf("reflection at %s: %w", target, err)
	}
	r := &Reflection{
		target: target, conn: conn,
		timeout: opts.Timeout, refresh: opts.RefreshEvery, now: opts.Now,
		services: map[string]*service{},
	}
	if r.timeout <= 0 {
		r.timeout = 2 * time.Second
	}
	if r.refresh <= 0 {
		r.refresh = 10 * time.Second
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Close ends the lookups under way and closes the connection; later
// lookups fail.
func (r *Reflection) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	return r.conn.Close()
}

// Method returns the descriptor of fullMethod ("/package.Service/Method"),
// asking the server for its service's descriptors when they are not known
// yet, or when the method was not among them RefreshEvery ago. ctx bounds
// only the wait of this call: a lookup it started goes on for the others.
func (r *Reflection) Method(ctx context.Context, fullMethod string) (protoreflect.MethodDescriptor, error) {
	name, mname, err := splitMethod(fullMethod)
	if err != nil {
		return nil, err
	}
	waited := false
	for {
		r.mu.Lock()
		s := r.services[name]
		if s == nil {
			if !r.room() {
				r.mu.Unlock()
				return nil, fmt.Errorf("method %s: reflection at %s: more than %d services asked for, most of them unknown; not asking for another", clip(fullMethod), r.target, maxServices)
			}
			s = &service{}
			r.services[name] = s
		}
		if m := s.methods[mname]; m != nil {
			r.mu.Unlock()
			return m, nil
		}
		if s.flight == nil && s.looked && (waited || r.now().Sub(s.at) < r.refresh) {
			err, desc := s.err, s.desc
			r.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("method %s: %w", clip(fullMethod), err)
			}
			return nil, noMethod(fullMethod, desc, mname)
		}
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("method %s: reflection at %s: closed", clip(fullMethod), r.target)
		}
		if s.flight == nil {
			s.flight = make(chan struct{})
			r.asked.Add(1)
			go r.lookup(name, s, s.flight)
		}
		flight := s.flight
		r.mu.Unlock()
		select {
		case <-flight:
			waited = true
		case <-ctx.Done():
			return nil, fmt.Errorf("method %s: waiting for reflection at %s: %w", clip(fullMethod), r.target, ctx.Err())
		}
	}
}

// room makes room for one more service when there are maxServices: it
// forgets those no lookup found (request paths come from clients, so
// they may name any number of services that do not exist). It reports
// whether there is room. r.mu is held.
func (r *Reflection) room() bool {
	if len(r.services) < maxServices {
		return true
	}
	for name, s := range r.services {
		if s.flight == nil && s.methods == nil {
			delete(r.services, name)
		}
	}
	return len(r.services) < maxServices
}

// lookup asks the server for service name and records what it answered
// in s, then closes flight.
func (r *Reflection) lookup(name string, s *service, flight chan struct{}) {
	sd, types, err := r.fetch(name)
	r.mu.Lock()
	s.looked, s.at, s.err, s.flight = true, r.now(), err, nil
	if err == nil {
		s.desc = sd
		s.methods = make(map[string]*method, sd.Methods().Len())
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			s.methods[string(md.Name())] = &method{MethodDescriptor: md, types: types}
		}
	}
	r.mu.Unlock()
	close(flight)
}

// fetch asks for the file declaring service name, then for every file it
// imports that the server did not send with it, and builds them.
func (r *Reflection) fetch(name string) (protoreflect.ServiceDescriptor, *dynamicpb.Types, error) {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	x := &exchanger{r: r, ctx: ctx, cancel: cancel}
	defer x.close()

	got := map[string]*descriptorpb.FileDescriptorProto{}
	var files []*descriptorpb.FileDescriptorProto
	add := func(raw [][]byte) error {
		for _, b := range raw {
			fd := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(b, fd); err != nil {
				return fmt.Errorf("reflection at %s: service %s: the server sent a file descriptor that does not parse: %v", r.target, name, err)
			}
			if got[fd.GetName()] == nil {
				got[fd.GetName()] = fd
				files = append(files, fd)
			}
		}
		if len(files) > maxReflectionFiles {
			return fmt.Errorf("reflection at %s: service %s: more than %d files", r.target, name, maxReflectionFiles)
		}
		return nil
	}
	raw, err := x.ask(request{symbol: name})
	if err == nil {
		err = add(raw)
	}
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < len(files); i++ { // files grows as imports come
		for _, dep := range files[i].GetDependency() {
			if got[dep] != nil {
				continue
			}
			raw, err := x.ask(request{file: dep})
			if err == nil {
				err = add(raw)
			}
			if err != nil {
				return nil, nil, err
			}
			if got[dep] == nil {
				return nil, nil, fmt.Errorf("reflection at %s: service %s: asked for %s (imported by %s), the server sent other files", r.target, name, dep, files[i].GetName())
			}
		}
	}
	reg, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		return nil, nil, fmt.Errorf("reflection at %s: service %s: the server's descriptors do not build: %v", r.target, name, err)
	}
	d, err := reg.FindDescriptorByName(protoreflect.FullName(name))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		return nil, nil, fmt.Errorf("reflection at %s: %w: %s is not a service in the files the server sent", r.target, ErrNoMethod, name)
	}
	return sd, dynamicpb.NewTypes(reg), nil
}

// request is one question to the reflection service: the file declaring a
// symbol, or a file by name.
type request struct{ symbol, file string }

// exchanger asks one lookup's questions on one reflection stream, opened
// at the first, each question and its answer bounded by the timeout.
type exchanger struct {
	r      *Reflection
	ctx    context.Context
	cancel context.CancelFunc // of ctx: ends the stream on a timeout
	stream reflectionStream
}

// reflectionStream is a ServerReflectionInfo stream of either version.
type reflectionStream interface {
	ask(q request) ([][]byte, error)
	close()
}

func (x *exchanger) ask(q request) ([][]byte, error) {
	t := time.AfterFunc(x.r.timeout, x.cancel)
	files, err := x.askVersions(q)
	if !t.Stop() {
		return nil, fmt.Errorf("reflection at %s: no answer within %v", x.r.target, x.r.timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("reflection at %s: asking for %s: %w", x.r.target, q, err)
	}
	return files, nil
}

// askVersions asks on the stream, opening it at the first question: v1,
// or v1alpha when the server answers v1 with Unimplemented (remembered).
func (x *exchanger) askVersions(q request) ([][]byte, error) {
	if x.stream != nil {
		return x.stream.ask(q)
	}
	if !x.r.alpha.Load() {
		s, err := reflectionv1.NewServerReflectionClient(x.r.conn).ServerReflectionInfo(x.ctx)
		if err != nil {
			return nil, err
		}
		x.stream = v1Stream{s}
		files, err := x.stream.ask(q)
		if status.Code(err) != codes.Unimplemented {
			return files, err
		}
		x.stream.close()
	}
	s, err := reflectionv1alpha.NewServerReflectionClient(x.r.conn).ServerReflectionInfo(x.ctx)
	if err != nil {
		return nil, err
	}
	x.stream = v1alphaStream{s}
	files, err := x.stream.ask(q)
	if status.Code(err) == codes.Unimplemented {
		return nil, fmt.Errorf("the server has no reflection service (neither grpc.reflection.v1 nor v1alpha): %w", err)
	}
	if err == nil {
		x.r.alpha.Store(true)
	}
	return files, err
}

func (x *exchanger) close() {
	if x.stream != nil {
		x.stream.close()
	}
}

func (q request) String() string {
	if q.symbol != "" {
		return "the file declaring " + q.symbol
	}
	return "file " + q.file
}

// answerError is the error of a reflection answer that reports one: a
// symbol or file the server does not know wraps ErrNoMethod.
func answerError(code int32, msg string) error {
	c := codes.Code(code)
	if c == codes.NotFound {
		return fmt.Errorf("%w: the server's reflection does not know it (%s)", ErrNoMethod, clip(msg))
	}
	return fmt.Errorf("the server's reflection answered %s: %s", CodeName(strconv.Itoa(int(code))), clip(msg))
}

// errUnexpected is the error of an answer of another kind than asked for.
var errUnexpected = errors.New("the server's reflection answered something else than file descriptors")

type v1Stream struct {
	s grpc.BidiStreamingClient[reflectionv1.ServerReflectionRequest, reflectionv1.ServerReflectionResponse]
}

func (v v1Stream) ask(q request) ([][]byte, error) {
	req := &reflectionv1.ServerReflectionRequest{}
	if q.symbol != "" {
		req.MessageRequest = &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: q.symbol}
	} else {
		req.MessageRequest = &reflectionv1.ServerReflectionRequest_FileByFilename{FileByFilename: q.file}
	}
	// A stream the server ended fails Send with io.EOF; Recv has why.
	if err := v.s.Send(req); err != nil && err != io.EOF {
		return nil, err
	}
	resp, err := v.s.Recv()
	if err != nil {
		return nil, err
	}
	switch a := resp.GetMessageResponse().(type) {
	case *reflectionv1.ServerReflectionResponse_FileDescriptorResponse:
		return a.FileDescriptorResponse.GetFileDescriptorProto(), nil
	case *reflectionv1.ServerReflectionResponse_ErrorResponse:
		return nil, answerError(a.ErrorResponse.GetErrorCode(), a.ErrorResponse.GetErrorMessage())
	}
	return nil, errUnexpected
}

func (v v1Stream) close() { _ = v.s.CloseSend() }

type v1alphaStream struct {
	s grpc.BidiStreamingClient[reflectionv1alpha.ServerReflectionRequest, reflectionv1alpha.ServerReflectionResponse]
}

func (v v1alphaStream) ask(q request) ([][]byte, error) {
	req := &reflectionv1alpha.ServerReflectionRequest{}
	if q.symbol != "" {
		req.MessageRequest = &reflectionv1alpha.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: q.symbol}
	} else {
		req.MessageRequest = &reflectionv1alpha.ServerReflectionRequest_FileByFilename{FileByFilename: q.file}
	}
	if err := v.s.Send(req); err != nil && err != io.EOF {
		return nil, err
	}
	resp, err := v.s.Recv()
	if err != nil {
		return nil, err
	}
	switch a := resp.GetMessageResponse().(type) {
	case *reflectionv1alpha.ServerReflectionResponse_FileDescriptorResponse:
		return a.FileDescriptorResponse.GetFileDescriptorProto(), nil
	case *reflectionv1alpha.ServerReflectionResponse_ErrorResponse:
		return nil, answerError(a.ErrorResponse.GetErrorCode(), a.ErrorResponse.GetErrorMessage())
	}
	return nil, errUnexpected
}

func (v v1alphaStream) close() { _ = v.s.CloseSend() }
