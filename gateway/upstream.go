package gateway

import (
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/shadowlab/shadowlab/policy"
)

// upstream is one shadow service: its connections and endpoints.
type upstream struct {
	svc    *policy.Service
	client *http.Client
	scheme string
	next   atomic.Uint32 // round robin over svc.Endpoints
	err    error         // the service's TLS files could not be loaded
}

// newUpstream is a pooled client for svc, in its protocol: HTTP/1.1, h2c,
// or TLS (optionally mutual) with ALPN. It never asks for compression and
// never follows redirects: the shadow's answer is recorded as it comes.
func newUpstream(svc *policy.Service, maxConns uint32) *upstream {
	up := &upstream{svc: svc, scheme: "http"}
	t := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: svc.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: int(maxConns),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	switch svc.Protocol {
	case policy.ProtocolHTTP2:
		if svc.TLS == nil {
			t.Protocols.SetUnencryptedHTTP2(true)
		} else {
			t.Protocols.SetHTTP2(true)
		}
	case policy.ProtocolHTTP1:
		t.Protocols.SetHTTP1(true)
	default:
		t.Protocols.SetHTTP1(true)
		t.Protocols.SetHTTP2(svc.TLS != nil)
	}
	if svc.TLS != nil {
		up.scheme = "https"
		t.TLSClientConfig, up.err = svc.TLS.ClientConfig()
	}
	up.client = &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return up
}

// sameUpstream returns the upstream of a service equal to svc, if there is
// one among ups.
func sameUpstream(ups []*upstream, svc *policy.Service) *upstream {
	for _, up := range ups {
		if sameService(up.svc, svc) {
			return up
		}
	}
	return nil
}

func sameService(a, b *policy.Service) bool {
	sameTLS := a.TLS == b.TLS || a.TLS != nil && b.TLS != nil && *a.TLS == *b.TLS
	return slices.Equal(a.Endpoints, b.Endpoints) && a.ConnectTimeout == b.ConnectTimeout && a.Protocol == b.Protocol && sameTLS
}

// endpoint is the next endpoint, round robin.
func (up *upstream) endpoint() string {
	eps := up.svc.Endpoints
	return eps[int(up.next.Add(1)-1)%len(eps)]
}

func (up *upstream) close() { up.client.CloseIdleConnections() }
