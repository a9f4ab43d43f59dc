package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shadowlab/shadowlab/examples/grpcbackend"
	"github.com/shadowlab/shadowlab/internal/testpki"
	"github.com/shadowlab/shadowlab/report"
)

// grpcPolicy mirrors every call of the example Orders service: the legacy
// version (h2c) decoded through its server reflection, the candidate (TLS)
// decoded with a descriptor set file. Items are compared by sku whatever
// their order, in a unary answer and in each streamed one.
const grpcPolicy = `
version: 1
listeners: [{name: ingress, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  orders-v1:
    endpoints: ["{{.GRPCLegacy}}"]
    grpc: {reflection: true}
  orders-v2:
    endpoints: ["{{.GRPCCandidate}}"]
    tls: {ca: "{{.CA}}", serverName: localhost}
    grpc: {descriptors: "{{.Descriptors}}"}
routes:
  - name: orders-grpc
    match: {grpc: shop.v1.Orders}
    primary: orders-v1
    timeout: 3s
    shadow: {service: orders-v2, percent: 100, unsafeMethods: true}
    compare: {unorderedArrays: ["$.items by sku", "$[*].items by sku"], maxBodyBytes: 65536}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

// startGRPC runs the two versions of the example gRPC service, the
// candidate over TLS, and writes the candidate's descriptor set.
func (e *env) startGRPC() {
	t := e.t
	ca, err := testpki.NewCA(e.lab.Dir, "grpc")
	require.NoError(t, err)
	cert, err := ca.Issue("orders-v2", "", "localhost", "127.0.0.1")
	require.NoError(t, err)
	for i, cfg := range []grpcbackend.Config{
		{Version: grpcbackend.VersionLegacy, Addr: "127.0.0.1:0"},
		{Version: grpcbackend.VersionCandidate, Addr: "127.0.0.1:0", TLSCertFile: cert.Cert, TLSKeyFile: cert.Key},
	} {
		s, err := grpcbackend.Start(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		e.grpc[i] = s
	}
	set, err := grpcbackend.DescriptorSet(grpcbackend.VersionCandidate)
	require.NoError(t, err)
	b, err := proto.Marshal(set)
	require.NoError(t, err)
	e.ports.Descriptors = filepath.Join(e.lab.Dir, "orders-v2.binpb")
	require.NoError(t, os.WriteFile(e.ports.Descriptors, b, 0o600))
	e.ports.GRPCLegacy, e.ports.GRPCCandidate, e.ports.CA = e.grpc[0].Addr(), e.grpc[1].Addr(), ca.File
}

// grpcClients are a client through Envoy and one straight to the legacy
// service, for the answers the clients must get.
func (e *env) grpcClients() (viaEnvoy, direct *grpcbackend.Client) {
	e.t.Helper()
	dial := func(addr string) *grpcbackend.Client {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(e.t, err)
		e.t.Cleanup(func() { _ = conn.Close() })
		c, err := grpcbackend.NewClient(conn)
		require.NoError(e.t, err)
		return c
	}
	return dial(e.ports.Listener), dial(e.ports.GRPCLegacy)
}

// TestGRPCCompared mirrors unary and server-streaming calls of a real gRPC
// service through Envoy to its candidate and checks that every client got
// the legacy's answer and that the report holds exactly the candidate's
// seeded differences: a field renamed in its proto (same number, so the
// same bytes: seen only because each side is decoded with its own
// descriptors, the legacy's through server reflection, the candidate's
// from a descriptor set file), an enum value changed, a gRPC status
// changed, and items reordered, which the rules say do not count.
func TestGRPCCompared(t *testing.T) {
	t.Parallel()
	e := newEnv(t, grpcPolicy, envOptions{grpc: true})
	viaEnvoy, direct := e.grpcClients()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const rounds = 3
	for range rounds {
		for _, c := range grpcbackend.Requests {
			got, err := viaEnvoy.Do(ctx, c)
			want, wantErr := direct.Do(ctx, c)
			require.Equal(t, status.Code(wantErr), status.Code(err), "%v", c)
			require.JSONEq(t, want, got, "%v: the client gets the legacy's answer", c)
		}
	}
	for _, call := range e.grpc[1].Received() {
		assert.Equal(t, "1", call.Headers["x-shadowlab-shadow"], "%s: marked", call.Method)
		assert.Equal(t, "1", call.Headers["x-shadowlab-dry-run"], "%s: every gRPC call is a POST", call.Method)
	}

	n := rounds * len(grpcbackend.Requests)
	r := e.routeReport("orders-grpc", n)
	want := grpcbackend.WantDifferences(rounds)
	require.Eventually(t, func() bool {
		r = e.routeReport("orders-grpc", n)
		return assert.ObjectsAreEqual(want, differences(r))
	}, 10*time.Second, 50*time.Millisecond, "differences")
	assert.Equal(t, want, differences(r))
	assert.Equal(t, n, r.Outcomes[report.Match]+r.Outcomes[report.Diff], "every pair compared: %v %v", r.Outcomes, r.Reasons)
	t.Logf("orders-grpc: %v, match rate %.3f, differences %v, latency p50 primary %.2f ms shadow %.2f ms",
		r.Outcomes, *r.MatchRate, differences(r), r.Latency.Primary.P50, r.Latency.Shadow.P50)
}

// TestGRPCShadowFaults: a candidate that answers UNAVAILABLE, hangs past
// the route's timeout, or answers messages over the route's limit never
// fails or delays a client; the pairs say what happened.
func TestGRPCShadowFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, grpcPolicy, envOptions{grpc: true})
	viaEnvoy, _ := e.grpcClients()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	pairs := 0
	drive := func(name string, n int) {
		t.Helper()
		for i := range n {
			start := time.Now()
			_, err := viaEnvoy.Do(ctx, faultCall(i))
			require.NoError(t, err, "%s: call %d", name, i)
			// The shadow's timeout is 3 s; the client must never wait for it.
			require.Less(t, time.Since(start), time.Second, "%s: call %d waited for the shadow", name, i)
		}
		pairs += n
	}

	require.NoError(t, e.grpc[1].SetFault(grpcbackend.Fault{Unavailable: true}))
	drive("unavailable", 6)
	r := e.routeReport("orders-grpc", pairs)
	assert.Equal(t, 6, differences(r)["grpc-status status"], "UNAVAILABLE is the finding: %v", differences(r))

	require.NoError(t, e.grpc[1].SetFault(grpcbackend.Fault{Hang: true}))
	drive("hang", 4)
	r = e.routeReport("orders-grpc", pairs)
	assert.Equal(t, 4, r.Outcomes[report.PrimaryOnly], "a hung shadow is a primary-only pair: %v", r.Reasons)

	require.NoError(t, e.grpc[1].SetFault(grpcbackend.Fault{Pad: 100 << 10}))
	require.NoError(t, e.grpc[0].SetFault(grpcbackend.Fault{Pad: 100 << 10}))
	drive("large", 5)
	r = e.routeReport("orders-grpc", pairs)
	assert.Equal(t, 5, r.Outcomes[report.Skipped], "messages over maxBodyBytes are skipped: %v", r.Reasons)
	t.Logf("orders-grpc: %v, reasons %v", r.Outcomes, r.Reasons)
}

// faultCall is the i-th successful call of a fault scene: a unary and a
// streaming call in turn.
func faultCall(i int) grpcbackend.Request {
	if i%2 == 0 {
		return grpcbackend.Request{Method: "GetOrder", Arg: "o-1"}
	}
	return grpcbackend.Request{Method: "ListOrders", Arg: "acme"}
}
