package auth

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/internal/testpki"
)

func TestPeers(t *testing.T) {
	peers, err := ParsePeers("spiffe://mesh.test/ns/edge/sa/envoy, spiffe://other.test, spiffe://mesh.test/ns/ops/")
	require.NoError(t, err)
	tests := map[string]struct {
		id   string
		want bool
	}{
		"exact id":               {"spiffe://mesh.test/ns/edge/sa/envoy", true},
		"longer than exact":      {"spiffe://mesh.test/ns/edge/sa/envoy2", false},
		"trust domain prefix":    {"spiffe://other.test/ns/x/sa/y", true},
		"namespace prefix":       {"spiffe://mesh.test/ns/ops/sa/any", true},
		"prefix itself":          {"spiffe://mesh.test/ns/ops/", false},
		"lookalike trust domain": {"spiffe://other.test.evil/ns/x", false},
		"other namespace":        {"spiffe://mesh.test/ns/edgy/sa/envoy", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) { assert.Equal(t, tt.want, peers.Allow(tt.id)) })
	}
	_, err = ParsePeers("https://mesh.test/x,spiffe:///nohost")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "https://mesh.test/x")
	assert.Contains(t, err.Error(), "spiffe:///nohost")
}

// handshake dials a TLS server of cfg with client and reports the
// handshake's error (either side's).
func handshake(t *testing.T, cfg *tls.Config, client *tls.Config) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, cfg)
		err = tc.Handshake()
		srvErr <- err
		if err == nil {
			_, _ = tc.Write([]byte("x"))
		}
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), client)
	if err == nil {
		// TLS 1.3: the client learns of a refused certificate at its first read.
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if se := <-srvErr; se != nil {
		return se
	}
	return err
}

func TestServerVerifiesPeersAndReloads(t *testing.T) {
	dir := t.TempDir()
	ca, err := testpki.NewCA(dir, "mesh")
	require.NoError(t, err)
	rogue, err := testpki.NewCA(dir, "rogue")
	require.NoError(t, err)
	server, err := ca.Issue("server", "spiffe://mesh.test/shadowlab", "127.0.0.1")
	require.NoError(t, err)
	peers, err := ParsePeers("spiffe://mesh.test/ns/edge/")
	require.NoError(t, err)
	s, err := NewServer(TLSFiles{Cert: server.Cert, Key: server.Key, ClientCA: ca.File}, peers, zap.NewNop())
	require.NoError(t, err)

	client := func(ca *testpki.CA, name, id string) *tls.Config {
		p, err := ca.Issue(name, id)
		require.NoError(t, err)
		c, err := ca.TLS(p)
		require.NoError(t, err)
		c.RootCAs = nil
		c.InsecureSkipVerify = true // the server's side is checked below
		return c
	}
	tests := map[string]struct {
		client *tls.Config
		ok     bool
	}{
		"allowed id":          {client(ca, "envoy", "spiffe://mesh.test/ns/edge/sa/envoy"), true},
		"no certificate":      {&tls.Config{InsecureSkipVerify: true}, false},
		"another CA":          {client(rogue, "rogue", "spiffe://mesh.test/ns/edge/sa/envoy"), false},
		"wrong id":            {client(ca, "other", "spiffe://mesh.test/ns/batch/sa/job"), false},
		"no spiffe id":        {client(ca, "plain", ""), false},
		"id of another trust": {client(ca, "td", "spiffe://evil.test/ns/edge/sa/envoy"), false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := handshake(t, s.Config(false, "h2"), tt.client)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}

	// The server's certificate replaced on disk is served at the next
	// handshake; a broken file keeps the last good one.
	serial := func() string {
		var got string
		c := client(ca, "envoy", "spiffe://mesh.test/ns/edge/sa/envoy")
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			got = cs.PeerCertificates[0].SerialNumber.String()
			return nil
		}
		require.NoError(t, handshake(t, s.Config(false), c))
		return got
	}
	before := serial()
	_, err = ca.Issue("server", "spiffe://mesh.test/shadowlab", "127.0.0.1")
	require.NoError(t, err)
	after := serial()
	assert.NotEqual(t, before, after)
	require.NoError(t, os.WriteFile(server.Key, []byte("not a key"), 0o600))
	assert.Equal(t, after, serial(), "a broken key keeps the last good pair")
}

func TestAccess(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) *Token {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
		tok, err := NewToken(p, zap.NewNop())
		require.NoError(t, err)
		return tok
	}
	read, wr := write("read", "read-token-0123456789"), write("write", "write-token-0123456789")
	reg := prometheus.NewRegistry()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h, err := Access{Read: read, Write: wr, Open: []string{"GET /healthz"}}.Handler(ok, reg)
	require.NoError(t, err)

	tests := map[string]struct {
		method, path, auth string
		want               int
	}{
		"read with read token":    {"GET", "/api/v1/report", "Bearer read-token-0123456789", 204},
		"read, scheme any case":   {"GET", "/metrics", "bearer read-token-0123456789", 204},
		"read without token":      {"GET", "/api/v1/report", "", 401},
		"read with write token":   {"GET", "/api/v1/report", "Bearer write-token-0123456789", 401},
		"write with write token":  {"POST", "/api/v1/capture", "Bearer write-token-0123456789", 204},
		"write with read token":   {"POST", "/api/v1/capture", "Bearer read-token-0123456789", 401},
		"write with a prefix":     {"POST", "/api/v1/capture", "Bearer write-token-012345678", 401},
		"write with basic":        {"POST", "/api/v1/admission/local", "Basic d3JpdGU=", 401},
		"health is open":          {"GET", "/healthz", "", 204},
		"a post to health is not": {"POST", "/healthz", "", 401},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, tt.want, rec.Code)
			if tt.want == 401 {
				assert.Equal(t, "Unauthorized\n", rec.Body.String(), "no detail")
			}
		})
	}
	n, err := testutil.GatherAndCount(reg, "shadowlab_api_unauthorized_total")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "read and write series")

	// A token file rewritten is used at the next request.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "read"), []byte("rotated-read-token-0123"), 0o600))
	assert.True(t, read.Match("rotated-read-token-0123"))
	assert.False(t, read.Match("read-token-0123456789"))
}
