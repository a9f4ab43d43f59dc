package grpcmsg

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// testServer is a real gRPC server with the reflection service of the
// descriptors it is given (a redeploy swaps them), counting the
// reflection streams opened and the questions asked on them.
type testServer struct {
	addr      string
	srv       *grpc.Server
	files     atomic.Pointer[protoregistry.Files]
	delay     time.Duration // before answering each question
	streams   atomic.Int64
	questions atomic.Int64
}

// serve starts a server whose descriptors are files, serving reflection
// v1 and/or v1alpha; extra options are added to the server's.
func serve(t *testing.T, files *protoregistry.Files, v1, v1alpha bool, delay time.Duration, opts ...grpc.ServerOption) *testServer {
	t.Helper()
	ts := &testServer{delay: delay}
	ts.files.Store(files)
	opts = append(opts, grpc.ChainStreamInterceptor(ts.count))
	ts.srv = grpc.NewServer(opts...)
	// A service of that name, so that the server lists it; its methods
	// are never called.
	ts.srv.RegisterService(&grpc.ServiceDesc{ServiceName: "test.v1.Shop", HandlerType: (*any)(nil)}, struct{}{})
	ro := reflection.ServerOptions{Services: ts.srv, DescriptorResolver: ts}
	if v1 {
		reflectionv1.RegisterServerReflectionServer(ts.srv, reflection.NewServerV1(ro))
	}
	if v1alpha {
		reflectionv1alpha.RegisterServerReflectionServer(ts.srv, reflection.NewServer(ro))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts.addr = lis.Addr().String()
	go func() { _ = ts.srv.Serve(lis) }()
	t.Cleanup(ts.srv.Stop)
	return ts
}

func (ts *testServer) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	time.Sleep(ts.delay)
	return ts.files.Load().FindFileByPath(path)
}

func (ts *testServer) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	time.Sleep(ts.delay)
	return ts.files.Load().FindDescriptorByName(name)
}

func (ts *testServer) count(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if strings.Contains(info.FullMethod, "ServerReflectionInfo") {
		ts.streams.Add(1)
		ss = countingStream{ss, &ts.questions}
	}
	return h(srv, ss)
}

type countingStream struct {
	grpc.ServerStream
	n *atomic.Int64
}

func (s countingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.n.Add(1)
	}
	return err
}

// clock is a clock tests step.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newReflection(t *testing.T, target string, opts ReflectionOptions) *Reflection {
	t.Helper()
	r, err := NewReflection(target, insecure.NewCredentials(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// itemJSON decodes an Item written with v1's descriptors as md's answer.
func itemJSON(t *testing.T, md protoreflect.MethodDescriptor, js string) string {
	t.Helper()
	v1 := loadFiles(t, "v1")
	get := methodOf(t, v1, "/test.v1.Shop/Get")
	msg := wire(t, get.Output(), get.(*method).types, js)
	out, err := Decode(md, [][]byte{msg})
	require.NoError(t, err)
	return string(out)
}

func TestReflectionResolvesAndKeeps(t *testing.T) {
	ts := serve(t, registry(t, descriptorSet(t, "v1")), true, false, 0)
	clk := newClock()
	r := newReflection(t, ts.addr, ReflectionOptions{Now: clk.now})
	ctx := context.Background()

	get, err := r.Method(ctx, "/test.v1.Shop/Get")
	require.NoError(t, err)
	require.Equal(t, "test.v1.Item", string(get.Output().FullName()))
	require.JSONEq(t, `{"display_name": "mug", "updated_at": "2024-05-01T12:00:00Z", "attributes": {"a": [1]}}`,
		itemJSON(t, get, `{"display_name": "mug", "updated_at": "2024-05-01T12:00:00Z", "attributes": {"a": [1]}}`))

	list, err := r.Method(ctx, "/test.v1.Shop/List")
	require.NoError(t, err)
	require.True(t, list.IsStreamingServer())
	require.Equal(t, int64(1), ts.streams.Load(), "one lookup for the service")

	_, err = r.Method(ctx, "/test.v1.Shop/Watch")
	require.ErrorIs(t, err, ErrNoMethod)
	require.ErrorContains(t, err, "service test.v1.Shop has no method Watch (it has Get, List, GetOrder)")
	require.Equal(t, int64(1), ts.streams.Load(), "a method missing from a service just looked up is not asked for again")

	_, err = r.Method(ctx, "/test.v1.Stock/Get")
	require.ErrorIs(t, err, ErrNoMethod)
	require.ErrorContains(t, err, "method /test.v1.Stock/Get: reflection at "+ts.addr+": asking for the file declaring test.v1.Stock")
	require.Equal(t, int64(2), ts.streams.Load())

	ts.srv.Stop()
	order, err := r.Method(ctx, "/test.v1.Shop/GetOrder")
	require.NoError(t, err, "the service's descriptors are kept")
	require.Equal(t, "test.v1.Order", string(order.Output().FullName()))

	clk.add(10 * time.Second)
	_, err = r.Method(ctx, "/test.v1.Shop/Watch")
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrNoMethod), "the server is down: %v", err)
	require.Equal(t, int64(3), r.asked.Load(), "asked again after RefreshEvery")
	_, err = r.Method(ctx, "/test.v1.Shop/Get")
	require.NoError(t, err, "a failed refresh keeps what was known")
}

func TestReflectionUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())

	clk := newClock()
	r := newReflection(t, addr, ReflectionOptions{Now: clk.now})
	ctx := context.Background()
	start := time.Now()
	_, err = r.Method(ctx, "/test.v1.Shop/Get")
	require.ErrorContains(t, err, "method /test.v1.Shop/Get: reflection at "+addr+": asking for the file declaring test.v1.Shop")
	require.Less(t, time.Since(start), 2*time.Second, "a refused connection fails before the timeout")
	require.Equal(t, int64(1), r.asked.Load())

	_, again := r.Method(ctx, "/test.v1.Shop/List")
	require.Equal(t, err.Error(), strings.Replace(again.Error(), "/List", "/Get", 1), "the failure is remembered")
	clk.add(9 * time.Second)
	_, _ = r.Method(ctx, "/test.v1.Shop/Get")
	require.Equal(t, int64(1), r.asked.Load(), "not asked again within RefreshEvery")

	clk.add(time.Second)
	_, err = r.Method(ctx, "/test.v1.Shop/Get")
	require.Error(t, err)
	require.Equal(t, int64(2), r.asked.Load(), "asked again after RefreshEvery")
}

func TestReflectionRedeploy(t *testing.T) {
	ts := serve(t, registry(t, descriptorSet(t, "v1")), true, false, 0)
	clk := newClock()
	r := newReflection(t, ts.addr, ReflectionOptions{Now: clk.now, RefreshEvery: time.Minute})
	ctx := context.Background()

	_, err := r.Method(ctx, "/test.v1.Shop/Get")
	require.NoError(t, err)
	_, err = r.Method(ctx, "/test.v1.Shop/Watch")
	require.ErrorIs(t, err, ErrNoMethod)

	ts.files.Store(registry(t, descriptorSet(t, "v2"))) // redeployed with Watch
	clk.add(59 * time.Second)
	_, err = r.Method(ctx, "/test.v1.Shop/Watch")
	require.ErrorIs(t, err, ErrNoMethod, "not asked again within RefreshEvery")
	require.Equal(t, int64(1), ts.streams.Load())

	clk.add(time.Second)
	watch, err := r.Method(ctx, "/test.v1.Shop/Watch")
	require.NoError(t, err)
	require.True(t, watch.IsStreamingServer())
	require.Equal(t, int64(2), ts.streams.Load())

	get, err := r.Method(ctx, "/test.v1.Shop/Get")
	require.NoError(t, err)
	require.JSONEq(t, `{"title": "mug"}`, itemJSON(t, get, `{"display_name": "mug"}`), "the redeployed service's names")
	require.Equal(t, int64(2), ts.streams.Load())
}

// TestReflectionFollowsImports serves a file without its imports, which
// must then be asked for by name.
func TestReflectionFollowsImports(t *testing.T) {
	set := descriptorSet(t, "v1")
	full := registry(t, set)
	files := new(protoregistry.Files)
	for _, fdp := range set.File[:len(set.File)-1] {
		fd, err := full.FindFileByPath(fdp.GetName())
		require.NoError(t, err)
		require.NoError(t, files.RegisterFile(fd))
	}
	shop := set.File[len(set.File)-1]
	// Built alone, its imports are placeholders, which the server does
	// not send with it.
	alone, err := protodesc.FileOptions{AllowUnresolvable: true}.New(shop, new(protoregistry.Files))
	require.NoError(t, err)
	require.NoError(t, files.RegisterFile(alone))

	ts := serve(t, files, true, false, 0)
	r := newReflection(t, ts.addr, ReflectionOptions{})
	get, err := r.Method(context.Background(), "/test.v1.Shop/Get")
	require.NoError(t, err)
	require.Equal(t, int64(1+len(shop.GetDependency())), ts.questions.Load(), "the service's file, then each import")
	require.JSONEq(t, `{"updated_at": "2024-05-01T12:00:00Z", "ttl": "1s"}`,
		itemJSON(t, get, `{"updated_at": "2024-05-01T12:00:00Z", "ttl": "1s"}`))
}

func TestReflectionSharesLookups(t *testing.T) {
	ts := serve(t, registry(t, descriptorSet(t, "v1")), true, false, 100*time.Millisecond)
	r := newReflection(t, ts.addr, ReflectionOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			m := []string{"/test.v1.Shop/Get", "/test.v1.Shop/List", "/test.v1.Shop/GetOrder"}[i%3]
			md, err := r.Method(context.Background(), m)
			if err == nil && !strings.HasSuffix(m, "/"+string(md.Name())) {
				err = errors.New("wrong method " + string(md.FullName()))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), ts.streams.Load())
	require.Equal(t, int64(1), r.asked.Load())
}

func TestReflectionCallerGivesUp(t *testing.T) {
	ts := serve(t, registry(t, descriptorSet(t, "v1")), true, false, 200*time.Millisecond)
	r := newReflection(t, ts.addr, ReflectionOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := r.Method(ctx, "/test.v1.Shop/Get")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "method /test.v1.Shop/Get: waiting for reflection at "+ts.addr)

	_, err = r.Method(context.Background(), "/test.v1.Shop/Get")
	require.NoError(t, err, "the lookup went on without the caller")
	require.Equal(t, int64(1), r.asked.Load())
}

func TestReflectionV1AlphaOnly(t *testing.T) {
	var v1Asked atomic.Int64
	unimplemented := grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		m, _ := grpc.MethodFromServerStream(ss)
		if strings.HasPrefix(m, "/grpc.reflection.v1.") {
			v1Asked.Add(1)
		}
		return status.Error(codes.Unimplemented, "unknown service")
	})
	ts := serve(t, registry(t, descriptorSet(t, "v1")), false, true, 0, unimplemented)
	r := newReflection(t, ts.addr, ReflectionOptions{})
	get, err := r.Method(context.Background(), "/test.v1.Shop/Get")
	require.NoError(t, err)
	require.Equal(t, "test.v1.Item", string(get.Output().FullName()))
	require.True(t, r.alpha.Load(), "v1alpha is remembered")

	_, err = r.Method(context.Background(), "/test.v1.Stock/Get")
	require.ErrorIs(t, err, ErrNoMethod)
	require.Equal(t, int64(1), v1Asked.Load(), "v1 is tried once")
}

func TestReflectionFailures(t *testing.T) {
	blocking := grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		<-ss.Context().Done()
		return ss.Context().Err()
	})
	tests := map[string]struct {
		v1, v1alpha bool
		opts        []grpc.ServerOption
		err         string
	}{
		"no reflection service": {err: "the server has no reflection service (neither grpc.reflection.v1 nor v1alpha)"},
		"no answer":             {opts: []grpc.ServerOption{blocking}, err: "reflection at ADDR: no answer within 200ms"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ts := serve(t, registry(t, descriptorSet(t, "v1")), tt.v1, tt.v1alpha, 0, tt.opts...)
			r := newReflection(t, ts.addr, ReflectionOptions{Timeout: 200 * time.Millisecond})
			start := time.Now()
			_, err := r.Method(context.Background(), "/test.v1.Shop/Get")
			require.ErrorContains(t, err, strings.ReplaceAll(tt.err, "ADDR", ts.addr))
			require.Less(t, time.Since(start), 2*time.Second)
		})
	}
}

func TestReflectionClosed(t *testing.T) {
	ts := serve(t, registry(t, descriptorSet(t, "v1")), true, false, 0)
	r, err := NewReflection(ts.addr, insecure.NewCredentials(), ReflectionOptions{})
	require.NoError(t, err)
	_, err = r.Method(context.Background(), "/test.v1.Shop/Get")
	require.NoError(t, err)
	require.NoError(t, r.Close())
	_, err = r.Method(context.Background(), "/test.v1.Stock/Get")
	require.ErrorContains(t, err, "reflection at "+ts.addr+": closed")
}

func TestNewReflectionNeedsCredentials(t *testing.T) {
	_, err := NewReflection("127.0.0.1:1", nil, ReflectionOptions{})
	require.ErrorContains(t, err, "reflection at 127.0.0.1:1: no transport credentials")
}

// Decoding a message needs nothing else from the server than its
// descriptors: the types of an Any come from the files it sent.
func TestReflectionAny(t *testing.T) {
	ts := serve(t, registry(t, descriptorSet(t, "v1")), true, false, 0)
	r := newReflection(t, ts.addr, ReflectionOptions{})
	get, err := r.Method(context.Background(), "/test.v1.Shop/Get")
	require.NoError(t, err)
	js := `{"detail": {"@type": "type.googleapis.com/test.v1.Order", "id": "o-1", "lines": [{"sku": "s"}]}}`
	require.JSONEq(t, js, itemJSON(t, get, js))
}
