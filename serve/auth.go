package serve

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shadowlab/shadowlab/auth"
	"github.com/shadowlab/shadowlab/ui"
	"github.com/shadowlab/shadowlab/xds"
)

// Credentials are how serve's ports authenticate their peers. With TLS
// files, every port speaks TLS with serve's certificate: xDS, the gateway
// and global admission require a client certificate signed by the client CA
// whose SPIFFE ID Peers allows; the API takes one if given (it lets the
// plugin write) and asks for the tokens. Without any, ports are plain, which
// serve allows on loopback only (see checkExposure).
type Credentials struct {
	TLS   auth.TLSFiles
	Peers auth.Peers
	// ReadTokenFile holds the bearer token for the API's reads (reports,
	// /metrics); WriteTokenFile the one for its writes (capture batches,
	// admission reports), which Envoy's plugin makes with its client
	// certificate instead when TLS is on. Distinct rights: neither token
	// does the other's job.
	ReadTokenFile, WriteTokenFile string
	// EnvoyTLS is Envoy's client certificate, key and the CA of serve's
	// certificate as paths on Envoy's machine, for the clusters serve
	// translates toward its own ports (the bootstrap gives the same to the
	// xDS cluster). Required with TLS.
	EnvoyTLS *xds.ClientTLS
	// InsecureBehindProxy lets ports without credentials bind non-loopback
	// addresses: something in front of them authenticates.
	InsecureBehindProxy bool
}

// Flag names, for the errors that tell an operator what to give.
const (
	flagsTLS    = "--tls-cert, --tls-key, --tls-client-ca and --tls-allowed-peers"
	flagsTokens = "--api-read-token-file (and --api-write-token-file, or TLS for the plugin's writes)"
	flagOptOut  = "--insecure-behind-authenticating-proxy"
)

// security is what Credentials become once their files are loaded.
type security struct {
	tls    *auth.Server // nil: plain ports
	access auth.Access
}

// newSecurity checks cfg's exposure and loads its credentials.
func newSecurity(cfg Config, log *zap.Logger) (*security, error) {
	c := cfg.Credentials
	if err := checkExposure(cfg); err != nil {
		return nil, err
	}
	s := &security{}
	var errs []error
	if c.TLS.Set() || len(c.Peers) > 0 {
		var err error
		if s.tls, err = auth.NewServer(c.TLS, c.Peers, log); err != nil {
			errs = append(errs, fmt.Errorf("%w (flags %s)", err, flagsTLS))
		}
		if e := c.EnvoyTLS; e == nil || e.Cert == "" || e.Key == "" || e.CA == "" {
			errs = append(errs, errors.New("tls: Envoy dials serve's ports with TLS: give Envoy's paths with --envoy-tls-cert, --envoy-tls-key and --envoy-tls-ca"))
		}
	}
	s.access.TLS = s.tls
	for _, t := range []struct {
		path string
		into **auth.Token
	}{{c.ReadTokenFile, &s.access.Read}, {c.WriteTokenFile, &s.access.Write}} {
		if t.path == "" {
			continue
		}
		tok, err := auth.NewToken(t.path, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*t.into = tok
	}
	if c.ReadTokenFile != "" && c.ReadTokenFile == c.WriteTokenFile {
		errs = append(errs, errors.New("the read and write tokens must be distinct files"))
	}
	// The operator's page holds no data: it reads the API with the token
	// its user gives it.
	s.access.Open = []string{"GET /healthz", "GET /readyz", "GET " + strings.TrimSuffix(xds.WasmCodePath(""), ".wasm"), "GET " + ui.Prefix, "GET /{$}"}
	return s, errors.Join(errs...)
}

// secure wraps the ports' listeners in TLS when it is on, and returns how
// Envoy authenticates to them (nil: plain).
func (in *Instance) secure(xdsLis, gwLis, admLis, apiLis *net.Listener) *xds.ClientTLS {
	s := in.sec
	*xdsLis, *admLis = s.wrap(*xdsLis, false, "h2"), s.wrap(*admLis, false, "h2")
	*gwLis, *apiLis = s.wrap(*gwLis, false, "http/1.1"), s.wrap(*apiLis, true, "http/1.1")
	if s.tls == nil {
		return nil
	}
	return in.cfg.Credentials.EnvoyTLS
}

// wrap makes l a TLS listener offering protos when TLS is on; optional
// client certificates for the API.
func (s *security) wrap(l net.Listener, optional bool, protos ...string) net.Listener {
	if l == nil || s.tls == nil {
		return l
	}
	return auth.Listener(l, s.tls.Config(optional, protos...))
}

// guard puts the API's handler behind its credentials (tokens, the
// plugin's certificate); /healthz, the operator's page (not the API it
// reads) and the plugin's code stay open: the code
// is public and Envoy checks it against the SHA-256 it got over
// authenticated xDS.
func (s *security) guard(srv *http.Server, reg prometheus.Registerer) error {
	h, err := s.access.Handler(srv.Handler, reg)
	srv.Handler = h
	return err
}

// checkExposure refuses a port bound beyond loopback without credentials,
// naming the port and the flags to give, unless InsecureBehindProxy.
func checkExposure(cfg Config) error {
	c := cfg.Credentials
	if c.InsecureBehindProxy {
		return nil
	}
	hasTLS := c.TLS.Cert != "" && c.TLS.Key != "" && c.TLS.ClientCA != "" && len(c.Peers) > 0
	var errs []error
	for _, p := range []struct{ what, addr string }{
		{"--xds-address", cfg.XDSAddress}, {"--gateway-address", cfg.GatewayAddress}, {"--admission-address", cfg.AdmissionAddress},
	} {
		if p.addr != "" && !loopback(p.addr) && !hasTLS {
			errs = append(errs, fmt.Errorf("%s %s is not loopback and has no credentials: give %s, or %s if something in front authenticates", p.what, p.addr, flagsTLS, flagOptOut))
		}
	}
	if a := cfg.APIAddress; a != "" && !loopback(a) && (!hasTLS || c.ReadTokenFile == "") {
		errs = append(errs, fmt.Errorf("--api-address %s is not loopback and has no credentials: give %s and %s, or %s if something in front authenticates", a, flagsTLS, flagsTokens, flagOptOut))
	}
	return errors.Join(errs...)
}

// loopback reports whether addr (host:port) binds loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
