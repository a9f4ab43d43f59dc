// Package extproc holds shadowlab's two ext_proc servers.
//
// Capture (Server): Envoy opens one gRPC stream per captured request half
// (the primary downstream, the shadow on the shadow cluster's upstream
// filter), in observability mode: it sends and never waits, so nothing here
// can slow a user request. Each finished half goes, without blocking, to
// the pairer, which pairs halves by route and request id, compares them,
// and hands the result to the report.
//
// Global admission (Admitter, admit.go): a non-observing filter on the
// routes with admission scope global; the answer to the request headers
// admits, holds (a delayed answer) or refuses (429) the request, against a
// budget shared by every Envoy that uses the server.
package extproc

import (
	"hash/fnv"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Server implements the ext_proc gRPC service for capture.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer
	policy atomic.Pointer[policy.Policy] // the current policy (Use)
	pairer halfSink
	now    pair.Clock
	log    *zap.Logger
}

// halfSink takes finished halves without blocking: *pair.Pairer.
type halfSink interface {
	Offer(pair.Half)
	Drop(reason string)
}

// NewServer captures halves for the routes of the policy in use (Use) and
// offers them to pairer.
func NewServer(pairer halfSink, now pair.Clock, log *zap.Logger) *Server {
	return &Server{pairer: pairer, now: now, log: log}
}

// Use makes p the policy whose routes are captured, from the next stream on.
func (s *Server) Use(p *policy.Policy) { s.policy.Store(p) }

// Register adds the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, s) }

// Process owns one stream: it reads until the half is complete, feeding
// each message to the stream's capture, then closes the stream (Envoy would
// otherwise hold it open for deferred_close_timeout, 5 s, per captured
// request). It never answers (observability mode ignores answers) and never
// fails the stream on bad input.
func (s *Server) Process(stream grpc.BidiStreamingServer[extprocv3.ProcessingRequest, extprocv3.ProcessingResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	c := s.newCapture(first(md, wire.MetadataRoute), first(md, wire.MetadataSide))
	for !c.finished && !c.ignored {
		req, err := stream.Recv()
		if err != nil { // Envoy closed or reset the stream: the request is over
			c.end(s.now())
			return nil
		}
		c.handle(req, s.now())
	}
	return nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// capture is the state of one stream: one half being assembled.
type capture struct {
	s        *Server
	half     pair.Half
	limit    int64
	start    time.Time
	ignored  bool // not a stream shadowlab configured; drained and dropped
	sawReq   bool
	sawResp  bool
	finished bool

	tenantHeader string // part of the request's fingerprint, when the route has one
}

func (s *Server) newCapture(route, sideName string) *capture {
	side, sideOK := wire.ParseSide(sideName)
	c := &capture{s: s, half: pair.Half{Route: route, Side: side}}
	var r *policy.Route
	if p := s.policy.Load(); p != nil {
		r = p.Route(route)
	}
	if r == nil || r.Shadow == nil || !sideOK {
		c.ignored = true
		s.pairer.Drop(pair.DropUnknown)
		return c
	}
	c.limit = r.Shadow.Compare.MaxBodyBytes
	if t := r.Shadow.Tenants; t != nil {
		c.tenantHeader = t.Header
	}
	return c
}

func (c *capture) handle(req *extprocv3.ProcessingRequest, now time.Time) {
	if c.ignored || c.finished {
		return
	}
	switch m := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		c.onRequestHeaders(m.RequestHeaders.GetHeaders(), now)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		c.onResponseHeaders(m.ResponseHeaders.GetHeaders(), now)
		if m.ResponseHeaders.GetEndOfStream() {
			c.finish(now)
		}
	case *extprocv3.ProcessingRequest_ResponseBody:
		c.onResponseBody(m.ResponseBody.GetBody())
		if m.ResponseBody.GetEndOfStream() {
			c.finish(now)
		}
	}
}

func (c *capture) onRequestHeaders(h *corev3.HeaderMap, now time.Time) {
	c.sawReq, c.start = true, now
	var fullPath, tenant string
	for _, hv := range h.GetHeaders() {
		switch k := hv.GetKey(); {
		case k == ":method":
			c.half.Method = headerValue(hv)
		case k == ":path":
			fullPath = headerValue(hv)
		case k == wire.HeaderRequestID:
			c.half.RequestID = headerValue(hv)
		case k == c.tenantHeader:
			tenant = headerValue(hv)
		}
	}
	c.half.Target = fullPath
	c.half.Path, _, _ = strings.Cut(fullPath, "?")
	// The fingerprint says which requests should get identical answers:
	// same method, path and query, same tenant.
	f := fnv.New64a()
	for _, part := range []string{c.half.Method, fullPath, tenant} {
		f.Write([]byte(part))
		f.Write([]byte{0})
	}
	c.half.Fingerprint = strconv.FormatUint(f.Sum64(), 16)
}

func (c *capture) onResponseHeaders(h *corev3.HeaderMap, now time.Time) {
	c.sawResp = true
	if c.sawReq {
		c.half.Latency = now.Sub(c.start)
	}
	headers := make(map[string]string, len(h.GetHeaders()))
	for _, hv := range h.GetHeaders() {
		k := hv.GetKey()
		if k == ":status" {
			c.half.Response.Status, _ = strconv.Atoi(headerValue(hv))
			continue
		}
		if strings.HasPrefix(k, ":") {
			continue
		}
		if _, dup := headers[k]; !dup {
			headers[k] = headerValue(hv)
		}
	}
	c.half.Response.Headers = headers
}

func (c *capture) onResponseBody(b []byte) {
	c.half.BodyBytes += int64(len(b))
	if c.half.TooLarge {
		return
	}
	if c.half.BodyBytes > c.limit {
		c.half.TooLarge, c.half.Response.Body = true, nil
		return
	}
	c.half.Response.Body = append(c.half.Response.Body, b...)
}

// finish hands the half to the pairer, once.
func (c *capture) finish(now time.Time) {
	if c.finished {
		return
	}
	c.finished = true
	c.half.At = now
	c.s.pairer.Offer(c.half)
}

// end is the stream closing: a half without its complete response is still
// offered (a shadow that never answered is a finding), marked incomplete.
func (c *capture) end(now time.Time) {
	if c.ignored || c.finished || !c.sawReq {
		return
	}
	if !c.sawResp {
		c.half.Incomplete = "no response (upstream reset, timed out or refused)"
	} else {
		c.half.Incomplete = "response body cut short"
	}
	c.finish(now)
}

// headerValue reads a header's value: Envoy sends raw_value, older versions
// value.
func headerValue(hv *corev3.HeaderValue) string {
	if rv := hv.GetRawValue(); len(rv) > 0 {
		return string(rv)
	}
	return hv.GetValue()
}
