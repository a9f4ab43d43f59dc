package auth

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/internal/testpki"
)

// BenchmarkAccessWrite is the guard's cost on one write with the write
// token: a stat of the token file, two SHA-256 and a compare.
func BenchmarkAccessWrite(b *testing.B) {
	p := filepath.Join(b.TempDir(), "write")
	if err := os.WriteFile(p, []byte("write-token-0123456789"), 0o600); err != nil {
		b.Fatal(err)
	}
	tok, err := NewToken(p, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	h, err := Access{Write: tok}.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/api/v1/capture", nil)
	req.Header.Set("Authorization", "Bearer write-token-0123456789")
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// BenchmarkServerConfig is what each handshake adds before TLS itself:
// three stats and the per-client configuration.
func BenchmarkServerConfig(b *testing.B) {
	dir := b.TempDir()
	ca, err := testpki.NewCA(dir, "mesh")
	if err != nil {
		b.Fatal(err)
	}
	pair, err := ca.Issue("serve", "spiffe://td/serve")
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewServer(TLSFiles{Cert: pair.Cert, Key: pair.Key, ClientCA: ca.File}, Peers{"spiffe://td/"}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	cfg := s.Config(false, "h2")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{}); err != nil {
			b.Fatal(err)
		}
	}
}
