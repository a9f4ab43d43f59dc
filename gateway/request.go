package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// What Envoy 1.40's mirror adds to the primary's request (measured with an
// echo upstream behind the connection manager settings the translator
// uses, for GET, 4 MiB and chunked POSTs and HTTP/2 clients): its async
// client appends one X-Forwarded-For hop (Envoy's own address) and sets
// x-envoy-internal: true; everything else, x-request-id, Host (the shadow
// host suffix is off) and the body included, is the primary's, plus the
// marks the route's mirror policy sets (wire.Marks). The gateway undoes
// the two additions, keeps the marks, and drops the hop-by-hop headers of
// its own connection from Envoy.
const headerEnvoyInternal = "x-envoy-internal"

// hopByHop are the headers of one connection, never forwarded; the
// framing headers (content-length, transfer-encoding) are the client's to
// write from the body.
var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length", "trailer"}

// outgoing is the request the shadow service gets: the mirrored request
// as the primary received it, plus the marks, to one of the route's shadow
// endpoints. Header names are written in lower case, as Envoy writes them.
func (g *Gateway) outgoing(in *http.Request, rt *route, body []byte) *http.Request {
	out := &http.Request{
		Method:     in.Method,
		URL:        &url.URL{Scheme: rt.up.scheme, Host: rt.up.endpoint(), Opaque: in.RequestURI},
		Host:       in.Host,
		Header:     make(http.Header, len(in.Header)),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}
	for k, vs := range in.Header {
		k = strings.ToLower(k)
		switch {
		case k == headerEnvoyInternal || slices.Contains(hopByHop, k):
			continue
		case k == "x-forwarded-for":
			vs = dropLastHop(vs)
			if len(vs) == 0 {
				continue
			}
		}
		out.Header[k] = vs
	}
	// Go's client writes a User-Agent of its own unless the canonical key
	// is there; an empty value is written by no one, the real one (if any)
	// goes out under its lower-case key.
	out.Header["User-Agent"] = []string{""}
	if len(body) > 0 || in.ContentLength == 0 && in.Method != http.MethodGet && in.Method != http.MethodHead {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	out.ContentLength = int64(len(body))
	if in.ContentLength < 0 { // the primary got the body chunked, so does the shadow
		out.ContentLength = -1
		out.TransferEncoding = []string{"chunked"}
	}
	return out
}

// dropLastHop removes the last address of X-Forwarded-For: the hop Envoy's
// mirror appended.
func dropLastHop(vs []string) []string {
	if len(vs) == 0 {
		return vs
	}
	last := vs[len(vs)-1]
	i := strings.LastIndexByte(last, ',')
	if i < 0 {
		return vs[:len(vs)-1]
	}
	out := append([]string(nil), vs[:len(vs)-1]...)
	return append(out, last[:i])
}

// identityHeaders always enter a fingerprint, keyed: answers that depend
// on who asks must not be learned as noise.
var identityHeaders = []string{"authorization", "cookie"}

// fingerprint identifies what selects the answer to a request, so that
// noise is learned only between answers to equal requests: a keyed
// HMAC-SHA256 of the method, path and query, the tenant header's value, a
// hash of the body, and the values of Authorization, Cookie and the
// route's varyOn headers. Only the hash leaves the gateway; the key never
// does.
func (g *Gateway) fingerprint(in *http.Request, r *policy.Route, body []byte) string {
	m := hmac.New(sha256.New, g.cfg.FingerprintKey)
	part := func(s string) {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	part(in.Method)
	part(in.RequestURI)
	if t := r.Shadow.Tenants; t != nil {
		part(in.Header.Get(t.Header))
	}
	sum := sha256.Sum256(body)
	m.Write(sum[:])
	for _, list := range [][]string{identityHeaders, r.Shadow.Compare.VaryOn} {
		for _, h := range list {
			part(h)
			part(strings.Join(in.Header.Values(h), "\x00"))
		}
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// recorded reports whether a response header is kept in a half: what
// decoding the body needs and what the route compares, never a secret.
func recorded(name string, c policy.Compare) bool {
	switch name {
	case "content-type", "content-encoding":
		return true
	}
	if slices.Contains(wire.GRPCHeaders, name) {
		return true
	}
	return slices.Contains(c.Spec.Headers, name) && !slices.Contains(wire.SecretHeaders, name)
}
