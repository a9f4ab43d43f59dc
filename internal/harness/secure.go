package harness

import "github.com/shadowlab/shadowlab/xds"

// SecureBootstrap is DynamicBootstrap with Envoy's client certificate for
// serve's xDS port (mutual TLS; tls's paths are on this machine).
func SecureBootstrap(nodeID, xdsAddr string, tls *xds.ClientTLS) ([]byte, error) {
	b, err := xds.Bootstrap(xds.BootstrapConfig{NodeID: nodeID, XDSAddress: xdsAddr, AdminAddress: "127.0.0.1:0", TLS: tls})
	if err != nil {
		return nil, err
	}
	return xds.MessageYAML(b)
}
