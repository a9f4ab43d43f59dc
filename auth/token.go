package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// minTokenBytes is the shortest token accepted from a file.
const minTokenBytes = 16

// Token is a bearer token read from a file (surrounding white space
// ignored), re-read when the file changes.
type Token struct {
	path string
	log  *zap.Logger

	mu     sync.Mutex
	stamp  fileStamp
	failed fileStamp         // the file as it was when it last failed to load: logged once
	sum    [sha256.Size]byte // of the token: compared, never the token itself
}

// NewToken reads the token in path, which must hold at least 16 bytes.
func NewToken(path string, log *zap.Logger) (*Token, error) {
	t := &Token{path: path, log: log}
	if err := t.reloadLocked(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Token) reloadLocked() error {
	stamp := stampOf(t.path)
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < minTokenBytes {
		return fmt.Errorf("token file %s: want at least %d bytes", t.path, minTokenBytes)
	}
	t.sum, t.stamp = sha256.Sum256(b), stamp
	return nil
}

// Match reports whether got is the token, in time independent of both
// (their hashes are compared).
func (t *Token) Match(got string) bool {
	t.mu.Lock()
	if now := stampOf(t.path); now != t.stamp {
		if err := t.reloadLocked(); err != nil && now != t.failed {
			t.failed = now
			t.log.Warn("token file changed but does not load; the previous token stays in use", zap.Error(err))
		}
	}
	want := t.sum
	t.mu.Unlock()
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// bearer is the request's bearer token ("" if none).
func bearer(req *http.Request) string {
	h := req.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Access says who may use an HTTP API. Without Read, reads are open; without
// Write and TLS, writes are open (serve allows that on loopback only).
type Access struct {
	Read  *Token  // reads: GET and HEAD
	Write *Token  // writes: every other method
	TLS   *Server // a client certificate with an allowed ID may write
	// Open are the method+path patterns ("GET /healthz") nobody needs a
	// credential for.
	Open []string
}

// on reports whether any credential is required.
func (a Access) on() bool { return a.Read != nil || a.Write != nil || a.TLS != nil }

// Handler guards next: a read needs the read token, a write the write token
// or an allowed client certificate; anything else is 401 with no detail,
// counted in shadowlab_api_unauthorized_total by access (read or write).
// The tokens are distinct rights: the write token does not read.
func (a Access) Handler(next http.Handler, reg prometheus.Registerer) (http.Handler, error) {
	if !a.on() {
		return next, nil
	}
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shadowlab_api_unauthorized_total",
		Help: "API requests refused with 401, by the access they asked for (read or write).",
	}, []string{"access"})
	if err := reg.Register(refused); err != nil {
		return nil, err
	}
	open := http.NewServeMux()
	for _, p := range a.Open {
		open.Handle(p, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, pattern := open.Handler(req); pattern != "" {
			next.ServeHTTP(w, req)
			return
		}
		access, ok := "write", false
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			access = "read"
			ok = a.Read == nil || a.Read.Match(bearer(req))
		default:
			ok = (a.Write == nil && a.TLS == nil) ||
				(a.Write != nil && a.Write.Match(bearer(req))) || (a.TLS != nil && a.TLS.PeerAllowed(req.TLS))
		}
		if !ok {
			refused.WithLabelValues(access).Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="shadowlab"`)
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	}), nil
}
