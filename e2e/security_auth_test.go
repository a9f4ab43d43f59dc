package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shadowlab/shadowlab/auth"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/internal/testpki"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/report"
	"github.com/shadowlab/shadowlab/serve"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/shadowlab/shadowlab/xds"
)

// securePolicy mirrors /users through the gateway and has one route per
// admission scope that rejects past 5 requests a second.
const securePolicy = `
version: 1
listeners: [{name: edge, address: "{{.Listener}}"}]
services:
  legacy:    {endpoints: ["{{.Legacy}}"]}
  candidate: {endpoints: ["{{.Candidate}}"]}
routes:
  - name: users
    match: {pathPrefix: /users}
    primary: legacy
    shadow: {service: candidate, percent: 100}
  - name: global-reject
    match: {pathPrefix: /global}
    primary: legacy
    admission: {rate: 5/s, mode: reject, scope: global}
  - name: local-reject
    match: {pathPrefix: /local}
    primary: legacy
    admission: {rate: 5/s, mode: reject, scope: local}
  - name: rest
    match: {pathPrefix: /}
    primary: legacy
`

const (
	trustDomain = "spiffe://mesh.test"
	envoyID     = trustDomain + "/ns/edge/sa/envoy"
	serveID     = trustDomain + "/ns/shadowlab/sa/serve"
	readToken   = "read-token-3f9c2e71d0a84b6e"
	writeToken  = "write-token-8b1d4c07e2f95a36"
)

// secureEnv is an env whose serve authenticates every port: mutual TLS with
// SPIFFE IDs on all four, tokens on the API, on loopback but forced on by
// its credentials; Envoy is bootstrapped with its client certificate.
type secureEnv struct {
	*env
	ca, rogue *testpki.CA
	server    testpki.Pair
	envoyTLS  *tls.Config // a client as Envoy is
	https     *http.Client
}

func newSecureEnv(t *testing.T) *secureEnv {
	t.Helper()
	e := &env{t: t, lab: harness.Test(t), client: &http.Client{Timeout: 10 * time.Second}}
	s := &secureEnv{env: e}
	dir := e.lab.Dir
	var err error
	s.ca, err = testpki.NewCA(dir, "mesh")
	require.NoError(t, err)
	s.rogue, err = testpki.NewCA(dir, "rogue")
	require.NoError(t, err)
	s.server, err = s.ca.Issue("serve", serveID, "127.0.0.1")
	require.NoError(t, err)
	envoyPair, err := s.ca.Issue("envoy", envoyID)
	require.NoError(t, err)
	s.envoyTLS, err = s.ca.TLS(envoyPair)
	require.NoError(t, err)
	s.https = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}}}

	e.legacy, err = e.lab.Backend("legacy")
	require.NoError(t, err)
	e.candidate, err = e.lab.Backend("candidate")
	require.NoError(t, err)
	e.ports = ports{Listener: freeAddr(t), Legacy: e.legacy.Addr(), Candidate: e.candidate.Addr()}
	e.policyPath = filepath.Join(dir, "policy.yaml")
	e.writePolicy(securePolicy)
	e.cpAddrs = cpAddrs{xds: freeAddr(t), gateway: freeAddr(t), api: freeAddr(t), admission: freeAddr(t)}

	token := func(name, v string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
		return p
	}
	peers, err := auth.ParsePeers(trustDomain + "/ns/edge/")
	require.NoError(t, err)
	envoyFiles := &xds.ClientTLS{Cert: envoyPair.Cert, Key: envoyPair.Key, CA: s.ca.File, ServerID: serveID}
	cfg := serve.Config{
		PolicyPath: e.policyPath, XDSAddress: e.cpAddrs.xds, GatewayAddress: e.cpAddrs.gateway,
		APIAddress: e.cpAddrs.api, AdmissionAddress: e.cpAddrs.admission,
		Pairer: pair.Config{Grace: 200 * time.Millisecond},
		Credentials: serve.Credentials{
			TLS:   auth.TLSFiles{Cert: s.server.Cert, Key: s.server.Key, ClientCA: s.ca.File},
			Peers: peers, ReadTokenFile: token("read.token", readToken), WriteTokenFile: token("write.token", writeToken),
			EnvoyTLS: envoyFiles,
		},
	}
	cfg.WasmPath, err = harness.BuildPlugin()
	require.NoError(t, err)
	in, err := e.lab.Serve(context.Background(), cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	e.cp = &controlPlane{Instance: in, srv: in.XDS}

	boot, err := harness.SecureBootstrap("e2e-"+t.Name(), e.cpAddrs.xds, envoyFiles)
	require.NoError(t, err)
	e.envoy, err = e.lab.Envoy(context.Background(), harness.EnvoyConfig{Bootstrap: boot})
	require.NoError(t, err)
	e.waitServing()
	return s
}

// api sends method path to serve's API over TLS with the bearer token
// ("" for none) and returns the status and body.
func (s *secureEnv) api(method, path, token string, body []byte) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "https://"+s.cpAddrs.api+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.https.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, string(b)
}

// refused is shadowlab_api_unauthorized_total by access, read from
// /metrics with the read token.
func (s *secureEnv) refused() map[string]int {
	s.t.Helper()
	code, metrics := s.api("GET", "/metrics", readToken, nil)
	require.Equal(s.t, http.StatusOK, code)
	out := map[string]int{}
	for line := range strings.Lines(metrics) {
		var access string
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), `shadowlab_api_unauthorized_total{access=%q} %d`, &access, &n); err == nil {
			out[access] = n
		}
	}
	return out
}

// grpcClient dials addr with TLS, presenting cert (none when nil), trusting
// the mesh CA.
func (s *secureEnv) grpcClient(addr string, cert *tls.Config) *grpc.ClientConn {
	s.t.Helper()
	cfg := &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = cert.Certificates
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(s.t, err)
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

// askXDS asks for the listeners over ADS and returns what came back.
func askXDS(conn *grpc.ClientConn) (*discoveryv3.DiscoveryResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "rogue", Cluster: xds.NodeCluster},
		TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

// askAdmission asks global admission about one request of route.
func askAdmission(conn *grpc.ClientConn, route string) (*extprocv3.ProcessingResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, wire.MetadataRoute, route)
	stream, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
		Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: wire.HeaderRequestID, RawValue: []byte("rogue-1")}}},
	}}}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

// TestSecurityAuth runs serve with every port authenticated and the real
// Envoy bootstrapped with its client certificate: mirrored pairs are
// recorded and both admission scopes work through the authenticated ports;
// rogue gRPC clients, forged reports and wrong tokens are refused and change
// nothing; serve's certificate replaced on disk is served without restart.
func TestSecurityAuth(t *testing.T) {
	t.Parallel()
	s := newSecureEnv(t)

	// Envoy got its configuration over mutual TLS (it routes), and capture
	// works: the gateway took the shadow halves, the plugin wrote the
	// primary's halves to the API with its certificate.
	const n = 20
	for i := range n {
		s.mustPrimary("GET", fmt.Sprintf("/users/%d", i), nil)
	}
	users := s.routeReport("users", n)
	assert.Equal(t, n, users.Outcomes[report.Match]+users.Outcomes[report.Diff], "outcomes %v, reasons %v", users.Outcomes, users.Reasons)

	// Admission: 40 requests at once on each scope, 5/s allowed: some are
	// refused (a server that Envoy could not reach would let all through),
	// and the plugin's counts reached the API.
	for _, scope := range []string{"global", "local"} {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 40 {
			wg.Go(func() {
				resp, _ := s.do("GET", "/"+scope+"/x", nil)
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		assert.Positive(t, codes[http.StatusTooManyRequests], "%s: %v", scope, codes)
		assert.Positive(t, codes[http.StatusOK], "%s: %v", scope, codes)
		require.Eventually(t, func() bool {
			for _, a := range s.cp.Reporter.Admission() {
				if a.Scope == scope && a.Route == scope+"-reject" && a.Rejected > 0 {
					return true
				}
			}
			return false
		}, 20*time.Second, 50*time.Millisecond, "%s admission reported", scope)
	}

	t.Run("rogue gRPC clients are refused on xDS and admission", func(t *testing.T) {
		wrongID, err := s.ca.Issue("batch", trustDomain+"/ns/batch/sa/job")
		require.NoError(t, err)
		wrongIDTLS, err := s.ca.TLS(wrongID)
		require.NoError(t, err)
		rogue, err := s.rogue.Issue("rogue", envoyID)
		require.NoError(t, err)
		rogueTLS, err := s.rogue.TLS(rogue)
		require.NoError(t, err)
		clients := map[string]*tls.Config{"no certificate": nil, "another CA": rogueTLS, "wrong SPIFFE ID": wrongIDTLS}
		for name, cert := range clients {
			_, err := askXDS(s.grpcClient(s.cpAddrs.xds, cert))
			assert.Equal(t, codes.Unavailable, status.Code(err), "xDS, %s: %v", name, err)
			_, err = askAdmission(s.grpcClient(s.cpAddrs.admission, cert), "global-reject")
			assert.Equal(t, codes.Unavailable, status.Code(err), "admission, %s: %v", name, err)
		}
		// The same clients with Envoy's certificate are answered.
		resp, err := askXDS(s.grpcClient(s.cpAddrs.xds, s.envoyTLS))
		require.NoError(t, err)
		assert.NotEmpty(t, resp.GetResources())
		_, err = askAdmission(s.grpcClient(s.cpAddrs.admission, s.envoyTLS), "global-reject")
		require.NoError(t, err)
		// The gateway and the API's writes refuse the same certificates
		// (the API lets a client without one through to its tokens).
		for name, cert := range clients {
			cfg := &tls.Config{RootCAs: s.ca.Pool(), MinVersion: tls.VersionTLS12}
			if cert != nil {
				cfg.Certificates = cert.Certificates
			}
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			if resp, err := c.Get("https://" + s.cpAddrs.gateway + "/users/1"); err == nil {
				resp.Body.Close()
				t.Errorf("gateway, %s: answered %s", name, resp.Status)
			}
			resp, err := c.Post("https://"+s.cpAddrs.api+wire.CapturePath, wire.CaptureContentType, strings.NewReader("x"))
			if err == nil {
				resp.Body.Close()
				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "api, %s", name)
			}
		}
	})

	t.Run("forged reports and wrong tokens", func(t *testing.T) {
		var batch []byte
		for i := range 50 {
			batch = wire.AppendCaptureRecord(batch, &wire.CaptureRecord{Route: "users", RequestID: fmt.Sprintf("forged-%d", i),
				Method: "GET", Target: "/users/1", Status: 200, Body: []byte(`{"forged":true}`)})
		}
		forgedCounts := wire.AppendReportLine(nil, "forged-route", "", &wire.Counts{Admitted: 1000})
		before := s.refused()
		for _, tok := range []string{"", "wrong-token-00000000000", readToken} {
			code, body := s.api("POST", wire.CapturePath, tok, batch)
			assert.Equal(t, http.StatusUnauthorized, code, "capture with %q", tok)
			assert.Equal(t, "Unauthorized\n", body, "no detail")
			code, _ = s.api("POST", wire.ReportPath, tok, forgedCounts)
			assert.Equal(t, http.StatusUnauthorized, code, "admission report with %q", tok)
		}
		for _, path := range []string{"/api/v1/report", "/metrics"} {
			for _, tok := range []string{"", writeToken} {
				code, _ := s.api("GET", path, tok, nil)
				assert.Equal(t, http.StatusUnauthorized, code, "GET %s with %q", path, tok)
			}
			code, _ := s.api("GET", path, readToken, nil)
			assert.Equal(t, http.StatusOK, code, "GET %s with the read token", path)
		}
		code, _ := s.api("GET", "/healthz", "", nil)
		assert.Equal(t, http.StatusOK, code, "health needs no token")
		// The operator's page holds no data: open; what it reads is not.
		code, body := s.api("GET", "/ui/", "", nil)
		assert.Equal(t, http.StatusOK, code, "the page needs no token")
		assert.Contains(t, body, "<html")
		for _, path := range []string{"/api/v1/pairs/1", "/api/v1/pairs?request_id=x"} {
			code, _ = s.api("GET", path, "", nil)
			assert.Equal(t, http.StatusUnauthorized, code, "GET %s without a token", path)
		}

		// Nothing forged was recorded.
		pairs, err := s.cp.Reporter.Pairs(context.Background(), report.PairsQuery{Route: "users", Limit: 1000})
		require.NoError(t, err)
		for _, p := range pairs {
			assert.False(t, strings.HasPrefix(p.RequestID, "forged-"), "forged pair %s recorded", p.RequestID)
		}
		for _, a := range s.cp.Reporter.Admission() {
			assert.NotEqual(t, "forged-route", a.Route)
		}
		after := s.refused()
		assert.Equal(t, map[string]int{"read": before["read"] + 6, "write": before["write"] + 6}, after, "every refusal counted")

		// The write token writes.
		code, _ = s.api("POST", wire.ReportPath, writeToken, wire.AppendReportLine(nil, "token-writer", "", &wire.Counts{Admitted: 1}))
		assert.Less(t, code, 300)
	})

	t.Run("serve's certificate replaced on disk is served without restart", func(t *testing.T) {
		serial := func() string {
			cfg := s.envoyTLS.Clone()
			var got string
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				got = cs.PeerCertificates[0].SerialNumber.String()
				return nil
			}
			conn, err := tls.Dial("tcp", s.cpAddrs.xds, cfg)
			require.NoError(t, err)
			conn.Close()
			return got
		}
		before := serial()
		_, err := s.ca.Issue("serve", serveID, "127.0.0.1")
		require.NoError(t, err)
		require.Eventually(t, func() bool { return serial() != before }, 20*time.Second, 50*time.Millisecond)
		// Envoy still routes and mirrors over new connections.
		s.mustPrimary("GET", "/users/99", nil)
	})
}

// TestSecurityExposure: serve refuses to bind beyond loopback without
// credentials, naming the port and the flags, and starts with the opt-out.
func TestSecurityExposure(t *testing.T) {
	t.Parallel()
	lab := harness.Test(t)
	path := filepath.Join(lab.Dir, "policy.yaml")
	writePolicy(t, path, `
version: 1
listeners: [{name: edge, address: "{{.Listener}}"}]
services: {legacy: {endpoints: ["{{.Legacy}}"]}}
routes: [{name: rest, match: {pathPrefix: /}, primary: legacy}]
`, ports{Listener: freeAddr(t), Legacy: freeAddr(t)})
	cfg := serve.Config{PolicyPath: path, XDSAddress: "0.0.0.0:0", APIAddress: "127.0.0.1:0"}
	_, err := serve.Start(context.Background(), cfg, zaptest.NewLogger(t))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--xds-address 0.0.0.0:0 is not loopback")
	assert.Contains(t, err.Error(), "--tls-cert")
	assert.Contains(t, err.Error(), "--insecure-behind-authenticating-proxy")

	cfg.Credentials.InsecureBehindProxy = true
	in, err := lab.Serve(context.Background(), cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	in.Stop()
	require.NoError(t, in.Wait())
}
