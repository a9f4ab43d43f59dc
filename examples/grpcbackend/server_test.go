package grpcbackend

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// start starts a Server for cfg and closes it when the test ends.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// dial returns a plaintext connection to addr, closed when the test ends.
func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// versionClient starts version and returns a Client using its descriptors.
func versionClient(t *testing.T, version string) (*Server, *Client) {
	t.Helper()
	s := start(t, Config{Version: version})
	c, err := NewVersionClient(dial(t, s.Addr()), version)
	require.NoError(t, err)
	return s, c
}

// object decodes a JSON object.
func object(t *testing.T, js string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(js), &m), js)
	return m
}

func TestBothVersionsAnswerEveryMethod(t *testing.T) {
	for _, version := range []string{VersionLegacy, VersionCandidate} {
		t.Run(version, func(t *testing.T) {
			_, c := versionClient(t, version)
			ctx := t.Context()

			for _, o := range orders {
				got := object(t, must(c.GetOrder(ctx, o.id)))
				assert.Equal(t, o.id, got["id"])
				assert.Equal(t, o.customer, got["customer"])
				assert.Len(t, got["items"], len(o.items))
				assert.Equal(t, "2026-03-01T"+o.placedAt.Format("15:04:05")+"Z", got["placed_at"])
			}
			_, err := c.GetOrder(ctx, "o-9")
			assert.Equal(t, codes.NotFound, status.Code(err))
			assert.Equal(t, `order "o-9" not found`, status.Convert(err).Message())
			_, err = c.GetOrder(ctx, "")
			assert.Equal(t, codes.InvalidArgument, status.Code(err))

			for customer, wantIDs := range map[string][]string{
				"acme": {"o-1", "o-2", "o-5"}, "globex": {"o-3", "o-4", "o-6"}, "nobody": nil,
			} {
				list, err := c.ListOrders(ctx, customer)
				require.NoError(t, err)
				var ids []string
				for _, js := range list {
					ids = append(ids, object(t, js)["id"].(string))
				}
				assert.Equal(t, wantIDs, ids, customer)
			}
			_, err = c.ListOrders(ctx, "")
			assert.Equal(t, codes.InvalidArgument, status.Code(err))

			assert.JSONEq(t, `{"cancelled":true}`, must(c.CancelOrder(ctx, "o-1")))
			assert.JSONEq(t, `{"reason":"already delivered"}`, must(c.CancelOrder(ctx, "o-3")))
			// CancelOrder changes nothing: the same answer again.
			assert.JSONEq(t, `{"cancelled":true}`, must(c.CancelOrder(ctx, "o-1")))
			_, err = c.CancelOrder(ctx, "o-9")
			assert.Equal(t, codes.NotFound, status.Code(err))
		})
	}
}

// must returns v, or err's text when there is an error (which then fails
// the test where the text is decoded or compared).
func must(v string, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return v
}

// observed is one difference the test found: Seeded without the prose.
type observed struct {
	Method, Request, Path, Kind string
}

// topLevel returns the differences between the top-level fields of two JSON
// objects. With unorderedItems, "items" arrays are compared as sets keyed
// by sku.
func topLevel(t *testing.T, legacy, candidate string, unorderedItems bool) map[string]string {
	t.Helper()
	l, c := object(t, legacy), object(t, candidate)
	diffs := map[string]string{}
	for k, lv := range l {
		cv, ok := c[k]
		switch {
		case !ok:
			diffs["$."+k] = "removed"
		case k == "items" && unorderedItems:
			if !assert.ObjectsAreEqual(bySKU(lv), bySKU(cv)) {
				diffs["$."+k] = "changed"
			}
		case !assert.ObjectsAreEqual(lv, cv):
			diffs["$."+k] = "changed"
		}
	}
	for k := range c {
		if _, ok := l[k]; !ok {
			diffs["$."+k] = "added"
		}
	}
	return diffs
}

// bySKU indexes a JSON items array by each item's sku.
func bySKU(items any) map[any]any {
	m := map[any]any{}
	for _, it := range items.([]any) {
		m[it.(map[string]any)["sku"]] = it
	}
	return m
}

// TestSeededDifferences calls both versions with every request, decodes each
// answer with its own version's descriptors, and checks that what differs is
// exactly SeededDifferences.
func TestSeededDifferences(t *testing.T) {
	_, legacy := versionClient(t, VersionLegacy)
	_, candidate := versionClient(t, VersionCandidate)
	ctx := t.Context()

	ids := []string{"o-9"}
	for _, o := range orders {
		ids = append(ids, o.id)
	}
	customers := []string{"acme", "globex", "nobody"}

	for _, unordered := range []bool{false, true} {
		found := map[observed]bool{}
		carriesOrder := map[observed]bool{} // {Method, Request} of answers with an Order
		compare := func(method, request, l, c string, lerr, cerr error) {
			if status.Code(lerr) != status.Code(cerr) {
				found[observed{method, request, "grpc-status", "status"}] = true
				return
			}
			require.Equal(t, status.Convert(lerr).Message(), status.Convert(cerr).Message(), "%s %s", method, request)
			if lerr != nil {
				return
			}
			for path, kind := range topLevel(t, l, c, unordered) {
				found[observed{method, request, path, kind}] = true
			}
		}
		for _, id := range ids {
			l, lerr := legacy.GetOrder(ctx, id)
			c, cerr := candidate.GetOrder(ctx, id)
			compare("GetOrder", id, l, c, lerr, cerr)
			if lerr == nil {
				carriesOrder[observed{Method: "GetOrder", Request: id}] = true
			}
			l, lerr = legacy.CancelOrder(ctx, id)
			c, cerr = candidate.CancelOrder(ctx, id)
			compare("CancelOrder", id, l, c, lerr, cerr)
		}
		for _, customer := range customers {
			l, lerr := legacy.ListOrders(ctx, customer)
			c, cerr := candidate.ListOrders(ctx, customer)
			require.NoError(t, lerr)
			require.NoError(t, cerr)
			require.Len(t, c, len(l), customer)
			for i := range l {
				compare("ListOrders", customer, l[i], c[i], nil, nil)
			}
			if len(l) > 0 {
				carriesOrder[observed{Method: "ListOrders", Request: customer}] = true
			}
		}

		want := map[observed]bool{}
		for _, sd := range SeededDifferences {
			if unordered && sd.HiddenBy != "" {
				require.Equal(t, "$.items by sku", sd.HiddenBy)
				continue
			}
			if sd.Request != "" {
				want[observed{sd.Method, sd.Request, sd.Path, sd.Kind}] = true
				continue
			}
			for k := range carriesOrder {
				if k.Method == sd.Method {
					want[observed{sd.Method, k.Request, sd.Path, sd.Kind}] = true
				}
			}
		}
		assert.Equal(t, want, found, "unordered items: %t", unordered)
	}
}

func TestSeededStatusDifference(t *testing.T) {
	_, legacy := versionClient(t, VersionLegacy)
	_, candidate := versionClient(t, VersionCandidate)

	got, err := legacy.CancelOrder(t.Context(), "o-2")
	require.NoError(t, err)
	assert.Equal(t, `{"reason":"already shipped"}`, got)

	_, err = candidate.CancelOrder(t.Context(), "o-2")
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Equal(t, "order o-2 already shipped", status.Convert(err).Message())

	got, err = candidate.GetOrder(t.Context(), "o-2")
	require.NoError(t, err)
	assert.Equal(t, "IN_TRANSIT", object(t, got)["status"])
}

// TestRenamedFieldSameWire reads the candidate's answer with the legacy
// descriptors: the renamed field is invisible there, IN_TRANSIT a number.
func TestRenamedFieldSameWire(t *testing.T) {
	s := start(t, Config{Version: VersionCandidate})
	c, err := NewClient(dial(t, s.Addr()))
	require.NoError(t, err)

	got := object(t, must(c.GetOrder(t.Context(), "o-2")))
	assert.Equal(t, "38700", got["total_cents"])
	assert.NotContains(t, got, "total")
	assert.Equal(t, 4.0, got["status"])
}

func TestInvoke(t *testing.T) {
	s := start(t, Config{Version: VersionLegacy})
	c, err := NewClient(dial(t, s.Addr()))
	require.NoError(t, err)

	got, err := c.Invoke(t.Context(), "GetOrder", `{"id":"o-3"}`)
	require.NoError(t, err)
	assert.Equal(t, must(c.GetOrder(t.Context(), "o-3")), got)

	tests := map[string]struct{ method, request, msg string }{
		"streaming method": {method: "ListOrders", request: `{}`, msg: "not a unary method"},
		"unknown method":   {method: "Nope", request: `{}`, msg: "not a unary method"},
		"bad request":      {method: "GetOrder", request: `{"nope":1}`, msg: "GetOrder request"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := c.Invoke(t.Context(), tc.method, tc.request)
			assert.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestRecording(t *testing.T) {
	s := start(t, Config{Version: VersionCandidate})
	c, err := NewClient(dial(t, s.Addr()))
	require.NoError(t, err)

	ctx := metadata.NewOutgoingContext(t.Context(), metadata.Pairs(
		"X-Request-Id", "req-1",
		"x-shadowlab-side", "shadow",
		"authorization", "Bearer secret",
		"trace-bin", "\x00\x01",
	))
	_, err = c.GetOrder(ctx, "o-1")
	require.NoError(t, err)
	_, err = c.ListOrders(ctx, "acme")
	require.NoError(t, err)
	_, err = c.CancelOrder(ctx, "o-9")
	require.Error(t, err)

	calls := s.Received()
	require.Len(t, calls, 3)
	assert.Equal(t, 3, s.Count())
	assert.Equal(t, MethodGetOrder, calls[0].Method)
	assert.Equal(t, `{"id":"o-1"}`, calls[0].Request)
	assert.Equal(t, MethodListOrders, calls[1].Method)
	assert.Equal(t, `{"customer":"acme"}`, calls[1].Request)
	assert.Equal(t, MethodCancelOrder, calls[2].Method)
	h := calls[0].Headers
	assert.Equal(t, "req-1", h["x-request-id"])
	assert.Equal(t, "shadow", h["x-shadowlab-side"])
	assert.Equal(t, Redacted, h["authorization"])
	assert.Equal(t, "AAE=", h["trace-bin"])
	assert.Equal(t, "application/grpc", h["content-type"])
	assert.False(t, calls[0].At.IsZero())

	calls[0].Headers["x-request-id"] = "changed"
	assert.Equal(t, "req-1", s.Received()[0].Headers["x-request-id"], "Received returns copies")

	s.Reset()
	assert.Zero(t, s.Count())
	assert.Empty(t, s.Received())
}

func TestFaults(t *testing.T) {
	s := start(t, Config{Version: VersionLegacy, Fault: Fault{Unavailable: true}})
	c, err := NewClient(dial(t, s.Addr()))
	require.NoError(t, err)
	ctx := t.Context()

	t.Run("unavailable", func(t *testing.T) {
		require.NoError(t, s.SetFault(Fault{Unavailable: true}))
		_, err := c.GetOrder(ctx, "o-1")
		assert.Equal(t, codes.Unavailable, status.Code(err))
		_, err = c.ListOrders(ctx, "acme")
		assert.Equal(t, codes.Unavailable, status.Code(err))
		_, err = c.CancelOrder(ctx, "o-1")
		assert.Equal(t, codes.Unavailable, status.Code(err))
	})
	t.Run("hang", func(t *testing.T) {
		require.NoError(t, s.SetFault(Fault{Hang: true, Unavailable: true}))
		for _, call := range []func(context.Context) error{
			func(ctx context.Context) error { _, err := c.GetOrder(ctx, "o-1"); return err },
			func(ctx context.Context) error { _, err := c.ListOrders(ctx, "acme"); return err },
		} {
			ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err := call(ctx)
			cancel()
			assert.Equal(t, codes.DeadlineExceeded, status.Code(err))
		}
	})
	t.Run("pad", func(t *testing.T) {
		const pad = 70_000
		require.NoError(t, s.SetFault(Fault{Pad: pad}))
		got := object(t, must(c.GetOrder(ctx, "o-1")))
		tags := got["tags"].([]any)
		require.Len(t, tags, 2)
		assert.Equal(t, "web", tags[0])
		assert.Equal(t, strings.Repeat("p", pad), tags[1])

		list, err := c.ListOrders(ctx, "globex")
		require.NoError(t, err)
		require.Len(t, list, 3)
		for _, js := range list {
			assert.Greater(t, len(js), pad)
		}
	})
	t.Run("healed", func(t *testing.T) {
		require.NoError(t, s.SetFault(Fault{}))
		_, err := c.GetOrder(ctx, "o-1")
		assert.NoError(t, err)
	})
	t.Run("negative pad", func(t *testing.T) {
		assert.ErrorContains(t, s.SetFault(Fault{Pad: -1}), "must not be negative")
	})
	// Faulted calls are recorded too: 3 unavailable, 2 hung, 2 padded, 1 healed.
	assert.Equal(t, 8, s.Count())
}

// TestCloseEndsHangingCalls checks that Close does not wait for a hanging
// call to give up.
func TestCloseEndsHangingCalls(t *testing.T) {
	s, err := Start(Config{Version: VersionLegacy, Fault: Fault{Hang: true}})
	require.NoError(t, err)
	c, err := NewClient(dial(t, s.Addr()))
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		_, err := c.GetOrder(t.Context(), "o-1")
		done <- err
	}()
	require.Eventually(t, func() bool { return s.Count() == 1 }, 5*time.Second, 10*time.Millisecond)
	began := time.Now()
	require.NoError(t, s.Close())
	assert.Less(t, time.Since(began), shutdownTimeout, "Close waited for the hanging call")
	select {
	case err := <-done:
		assert.Equal(t, codes.Unavailable, status.Code(err))
	case <-time.After(5 * time.Second):
		t.Fatal("hanging call did not end")
	}
	assert.NoError(t, s.Close(), "second Close")
}

// compression records the compression of the answers a client received.
type compression struct {
	mu  sync.Mutex
	got []string
}

func (c *compression) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *compression) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *compression) HandleConn(context.Context, stats.ConnStats) {}
func (c *compression) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok && h.Client {
		c.mu.Lock()
		c.got = append(c.got, h.Compression)
		c.mu.Unlock()
	}
}

func TestGzip(t *testing.T) {
	s := start(t, Config{Version: VersionLegacy})
	seen := &compression{}
	c, err := NewClient(dial(t, s.Addr(), grpc.WithStatsHandler(seen)))
	require.NoError(t, err)

	plain, err := c.GetOrder(t.Context(), "o-4")
	require.NoError(t, err)
	zipped, err := c.GetOrder(t.Context(), "o-4", grpc.UseCompressor("gzip"))
	require.NoError(t, err)
	assert.Equal(t, plain, zipped)
	_, err = c.ListOrders(t.Context(), "acme", grpc.UseCompressor("gzip"))
	require.NoError(t, err)

	seen.mu.Lock()
	defer seen.mu.Unlock()
	assert.Equal(t, []string{"", "gzip", "gzip"}, seen.got)
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := start(t, Config{Version: VersionCandidate, TLSCertFile: certFile, TLSKeyFile: keyFile})

	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "localhost")))
	require.NoError(t, err)
	defer conn.Close()
	c, err := NewVersionClient(conn, VersionCandidate)
	require.NoError(t, err)
	got, err := c.GetOrder(t.Context(), "o-1")
	require.NoError(t, err)
	assert.Equal(t, "2550", object(t, got)["total"])

	// A plaintext client gets nowhere.
	plain, err := NewClient(dial(t, s.Addr()))
	require.NoError(t, err)
	_, err = plain.GetOrder(t.Context(), "o-1")
	assert.Equal(t, codes.Unavailable, status.Code(err))
}

// selfSigned writes a self-signed certificate for localhost and 127.0.0.1
// and its key, and returns their files and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "grpcbackend test"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestStartErrors(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		want string
	}{
		"no version":      {cfg: Config{}, want: `version "": unknown version`},
		"unknown version": {cfg: Config{Version: "beta"}, want: `version "beta": unknown version (want legacy or candidate)`},
		"negative pad":    {cfg: Config{Version: VersionLegacy, Fault: Fault{Pad: -5}}, want: "fault pad: must not be negative (got -5)"},
		"cert only":       {cfg: Config{Version: VersionLegacy, TLSCertFile: "c.pem"}, want: "set both the cert and the key file"},
		"missing files":   {cfg: Config{Version: VersionLegacy, TLSCertFile: "/nonexistent/c", TLSKeyFile: "/nonexistent/k"}, want: "tls:"},
		"bad address":     {cfg: Config{Version: VersionLegacy, Addr: "not an address"}, want: `listen on "not an address"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Start(tc.cfg)
			assert.Nil(t, s)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err := Start(Config{Version: "beta"})
	assert.ErrorIs(t, err, ErrUnknownVersion)
}

func TestSeededDifferencesAreDocumented(t *testing.T) {
	for _, sd := range SeededDifferences {
		assert.Contains(t, []string{"GetOrder", "ListOrders", "CancelOrder"}, sd.Method)
		assert.Contains(t, []string{"added", "removed", "changed", "status"}, sd.Kind)
		assert.True(t, strings.HasPrefix(sd.Path, "$.") || sd.Path == "grpc-status", sd.Path)
		assert.NotEmpty(t, sd.What)
	}
	assert.True(t, slices.IsSortedFunc(orders, func(a, b order) int { return strings.Compare(a.id, b.id) }), "orders in id order")
}
