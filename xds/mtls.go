package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// ClientTLS is how Envoy authenticates to shadowlab's own ports (xDS, the
// gateway, global admission, the API): its client certificate and key, and
// the CA that signs shadowlab's certificate, as paths on Envoy's machine.
// ServerID, if set, is the URI SAN (a SPIFFE ID) shadowlab's certificate
// must carry. A nil *ClientTLS is plain TCP, as on loopback.
type ClientTLS struct {
	Cert, Key, CA string
	ServerID      string
}

// toShadowlab makes cluster c speak TLS to shadowlab with Envoy's client
// certificate, offering alpn ("h2" for the gRPC ports, "http/1.1" for the
// HTTP ones). Nothing for a nil t.
func toShadowlab(c *clusterv3.Cluster, t *ClientTLS, alpn string) {
	if t == nil {
		return
	}
	validation := &tlsv3.CertificateValidationContext{TrustedCa: fileSource(t.CA)}
	if t.ServerID != "" {
		validation.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.ServerID}}}}
	}
	c.TransportSocket = &corev3.TransportSocket{
		Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:         []string{alpn},
			TlsCertificates:       []*tlsv3.TlsCertificate{{CertificateChain: fileSource(t.Cert), PrivateKey: fileSource(t.Key)}},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: validation},
		}})},
	}
}
