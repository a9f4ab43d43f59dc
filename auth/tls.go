// Package auth holds the credentials of serve's ports: a server TLS
// configuration that requires a client certificate signed by a CA file and
// checks the peer's SPIFFE ID (its URI SAN), with the certificate, key and
// CA re-read when their files change; and bearer tokens read from files,
// compared in constant time.
//
// Every file is checked (stat) when it is used: on each TLS handshake for
// the certificates, on each request for the tokens. A file that changed is
// read again; one that does not load (a rotation half done, a key that does
// not match its certificate) keeps the last good value in use and is
// retried at the next use. Nothing here logs a key or a token.
package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// TLSFiles are a server's certificate and key, and the CA that signs its
// peers' client certificates (PEM files).
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// Set reports whether any file is given.
func (f TLSFiles) Set() bool { return f.Cert != "" || f.Key != "" || f.ClientCA != "" }

// Peers are the SPIFFE IDs allowed to connect: each entry is a whole ID
// (spiffe://example.org/ns/mesh/sa/envoy) or a prefix ending in "/"
// (spiffe://example.org/ for a whole trust domain,
// spiffe://example.org/ns/mesh/ for a namespace).
type Peers []string

// ParsePeers reads a comma-separated list of Peers, checking each entry.
func ParsePeers(list string) (Peers, error) {
	var out Peers
	var errs []error
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		u, err := url.Parse(p)
		if err != nil || u.Scheme != "spiffe" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			errs = append(errs, fmt.Errorf("peer %q: want spiffe://TRUST-DOMAIN/PATH, or a prefix of one ending in /", p))
			continue
		}
		if u.Path == "" {
			p += "/" // a bare trust domain means all of it
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// Allow reports whether id is allowed.
func (ps Peers) Allow(id string) bool {
	for _, p := range ps {
		prefix := strings.HasSuffix(p, "/")
		if (prefix && strings.HasPrefix(id, p) && len(id) > len(p)) || (!prefix && id == p) {
			return true
		}
	}
	return false
}

// ErrPeer is wrapped by every refusal of a peer's identity.
var ErrPeer = errors.New("peer identity refused")

// SPIFFEID is the certificate's one spiffe:// URI SAN.
func SPIFFEID(cert *x509.Certificate) (string, error) {
	var ids []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			ids = append(ids, u.String())
		}
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("%w: want exactly one spiffe:// URI SAN, the certificate has %d", ErrPeer, len(ids))
	}
	return ids[0], nil
}

// checkPeer allows a verified chain whose leaf has an allowed SPIFFE ID.
func (ps Peers) checkPeer(chains [][]*x509.Certificate) error {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return fmt.Errorf("%w: no verified client certificate", ErrPeer)
	}
	id, err := SPIFFEID(chains[0][0])
	if err != nil {
		return err
	}
	if !ps.Allow(id) {
		return fmt.Errorf("%w: %q is not allowed", ErrPeer, clip(id))
	}
	return nil
}

// clip bounds what a peer sent before it is logged.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "…"
	}
	return s
}

// Server is a server's TLS identity and its peers' trust, from files.
type Server struct {
	files TLSFiles
	peers Peers
	log   *zap.Logger

	mu      sync.Mutex
	stamp   [3]fileStamp
	failed  [3]fileStamp // the files as they were when they last failed to load: logged once
	cert    *tls.Certificate
	clients *x509.CertPool
}

// NewServer loads files (every one is required) once, failing on any
// problem; later changes are picked up at the next handshake.
func NewServer(files TLSFiles, peers Peers, log *zap.Logger) (*Server, error) {
	var errs []error
	for _, f := range [][2]string{{"certificate", files.Cert}, {"key", files.Key}, {"client CA", files.ClientCA}} {
		if f[1] == "" {
			errs = append(errs, fmt.Errorf("tls: %s file: required", f[0]))
		}
	}
	if len(peers) == 0 {
		errs = append(errs, errors.New("tls: no allowed peer (SPIFFE IDs or trust-domain prefixes)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Server{files: files, peers: peers, log: log}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config is a TLS server configuration offering protos over ALPN ("h2" for
// gRPC, "http/1.1" for HTTP). With optional, a client without a certificate
// is let through (the HTTP API: its handlers decide, see PeerAllowed); one
// with a certificate must still present a verified chain and an allowed ID.
func (s *Server) Config(optional bool, protos ...string) *tls.Config {
	auth := tls.RequireAndVerifyClientCert
	if optional {
		auth = tls.VerifyClientCertIfGiven
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, clients := s.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    clients,
				ClientAuth:   auth,
				NextProtos:   protos,
				// VerifyConnection runs on every handshake, resumed ones
				// included.
				VerifyConnection: func(cs tls.ConnectionState) error {
					if optional && len(cs.PeerCertificates) == 0 {
						return nil
					}
					return s.peers.checkPeer(cs.VerifiedChains)
				},
			}, nil
		},
	}
}

// Listener wraps l: every connection is a TLS server connection of cfg.
func Listener(l net.Listener, cfg *tls.Config) net.Listener { return tls.NewListener(l, cfg) }

// PeerAllowed reports whether a TLS connection's state carries a verified
// client certificate with an allowed SPIFFE ID.
func (s *Server) PeerAllowed(cs *tls.ConnectionState) bool {
	return cs != nil && s.peers.checkPeer(cs.VerifiedChains) == nil
}

// current is the certificate and client CAs to use now, re-read first if a
// file changed.
func (s *Server) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed() {
		if err := s.reloadLocked(); err != nil {
			if now := s.stamps(); now != s.failed {
				s.failed = now
				s.log.Warn("tls files changed but do not load; the previous ones stay in use", zap.Error(err))
			}
		} else {
			s.log.Info("tls files reloaded", zap.String("cert", s.files.Cert), zap.String("client_ca", s.files.ClientCA))
		}
	}
	return s.cert, s.clients
}

func (s *Server) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *Server) changed() bool { return s.stamps() != s.stamp }

func (s *Server) stamps() [3]fileStamp {
	var out [3]fileStamp
	for i, f := range []string{s.files.Cert, s.files.Key, s.files.ClientCA} {
		out[i] = stampOf(f)
	}
	return out
}

// reloadLocked reads the three files; on error nothing changes, and the
// stamps stay old so that the next handshake tries again.
func (s *Server) reloadLocked() error {
	stamps := s.stamps()
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("tls: certificate %s and key %s: %w", s.files.Cert, s.files.Key, err)
	}
	pem, err := os.ReadFile(s.files.ClientCA)
	if err != nil {
		return fmt.Errorf("tls: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("tls: client CA %s: no PEM certificate", s.files.ClientCA)
	}
	s.cert, s.clients, s.stamp = &cert, pool, stamps
	return nil
}

// fileStamp tells a changed file from an unchanged one without reading it:
// a rewrite changes its time or size, a rename its inode.
type fileStamp struct {
	mod   time.Time
	size  int64
	inode uint64
	ok    bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size(), inode: inode(fi), ok: true}
}
