package gateway

import (
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// record puts the shadow's status and the response headers the route
// needs into h.
func record(h *pair.Half, resp *http.Response, c policy.Compare) {
	h.Response.Status = resp.StatusCode
	h.Response.Headers = map[string]string{}
	for k, vs := range resp.Header {
		if k = strings.ToLower(k); len(vs) > 0 && recorded(k, c) {
			h.Response.Headers[k] = vs[0]
		}
	}
}

// readResponse reads the body, keeping at most limit bytes (a longer body
// is counted, marked TooLarge and not kept), then the trailers the route
// needs.
func readResponse(h *pair.Half, resp *http.Response, limit int64) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	h.BodyBytes = int64(len(body))
	if h.BodyBytes > limit {
		n, rest := io.Copy(io.Discard, resp.Body)
		h.BodyBytes += n
		h.TooLarge = true
		body, err = nil, rest
	}
	if err != nil {
		return err
	}
	h.Response.Body = body
	for k, vs := range resp.Trailer {
		if k = strings.ToLower(k); len(vs) > 0 && !slices.Contains(wire.SecretHeaders, k) {
			if h.Response.Trailers == nil {
				h.Response.Trailers = map[string]string{}
			}
			h.Response.Trailers[k] = vs[0]
		}
	}
	return nil
}
