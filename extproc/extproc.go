// Package extproc holds shadowlab's global admission server (Admitter): a
// non-observing ext_proc filter on the routes with admission scope global;
// the answer to the request headers admits, holds (a delayed answer) or
// refuses (429) the request, against a budget shared by every Envoy that
// uses the server.
//
// Capture no longer goes through ext_proc: an ext_proc stream per half cost
// Envoy about 100 µs per pair, the plugin's capture role and the shadow
// gateway a third of that (BENCHMARKS.md).
package extproc

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/metadata"
)

// first is the first value of key in md, or "".
func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// headerValue reads a header's value: Envoy sends raw_value, older versions
// value.
func headerValue(hv *corev3.HeaderValue) string {
	if rv := hv.GetRawValue(); len(rv) > 0 {
		return string(rv)
	}
	return hv.GetValue()
}
