// Package gateway is the shadow leg through shadowlab. Envoy mirrors a
// sampled request to it (each mirrored route's shadow cluster points here);
// the gateway forwards the request to the route's shadow service exactly as
// the primary received it plus the documented marks, records the shadow's
// answer itself (status, headers, trailers, body up to the route's limit,
// latency to the last byte), fingerprints the whole request for noise
// learning, and offers the half to the pairer.
//
// Envoy is answered as soon as the request is read (202), before the shadow
// is called: a slow, failing or blackholed shadow costs Envoy nothing and
// cannot hold its streams or connections. The gateway bounds itself
// instead: per route, at most shadow.maxConcurrent requests in flight, and
// over all routes at most Config.MaxBufferedBytes of request bodies held;
// beyond either it sheds (503 to Envoy, counted, reported on the pair), it
// never queues.
package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Config bounds the gateway. Zero values take the defaults.
type Config struct {
	// MaxBufferedBytes bounds the request bodies held at once, over all
	// routes. Default 256 MiB.
	MaxBufferedBytes int64
	// FingerprintKey keys the hash of identity headers (Cookie,
	// Authorization, varyOn) in fingerprints. Default: 32 random bytes,
	// new at every start; it is never stored, logged or exported.
	FingerprintKey []byte
	// Unmarked takes mirrors that carry no marks, as the mirrors of Istio
	// and the Gateway API do (they cannot add headers to the mirror
	// alone): the route of a request is the policy's first route that
	// matches it (policy.RouteFor), any mark on it is the client's and is
	// replaced, the gateway marks what it forwards (x-shadowlab-shadow,
	// the route, the dry-run mark on unsafe methods of routes that mirror
	// them), and the "-shadow" suffix Envoy's mirror appends to the Host
	// is taken off. For `serve` without xDS.
	Unmarked bool
}

// Sink takes finished halves without blocking: *pair.Pairer.
type Sink interface {
	Offer(pair.Half)
}

// Gateway is an http.Handler for Envoy's mirrored requests.
type Gateway struct {
	cfg  Config
	sink Sink
	now  pair.Clock
	log  *zap.Logger

	routes   policy.PerRoute[*route] // the mirrored and captured routes of the policy in use
	policy   atomic.Pointer[policy.Policy]
	buffered atomic.Int64   // request body bytes held
	wg       sync.WaitGroup // forwards in flight

	requests *prometheus.CounterVec
	inflight prometheus.GaugeFunc
	busy     atomic.Int64
}

// Outcomes of a mirrored request at the gateway (label values of
// shadowlab_gateway_requests_total).
const (
	outcomeForwarded   = "forwarded"      // sent to the shadow; the half tells how it went
	outcomeShedBusy    = "shed_busy"      // the route had maxConcurrent in flight
	outcomeShedMemory  = "shed_memory"    // MaxBufferedBytes were held
	outcomeTooLarge    = "too_large"      // body over shadow.maxRequestBytes: not mirrored
	outcomeUnknown     = "unknown_route"  // no mirrored route of that name, or no marks
	outcomeNoID        = "no_request_id"  // nothing to pair it by
	outcomeUnsafe      = "unsafe_refused" // an unsafe method the route does not opt in to
	outcomeBodyFailed  = "body_failed"    // Envoy's request body broke off
	defaultMaxBuffered = 256 << 20
)

// route is what forwarding one policy route needs.
type route struct {
	r    *policy.Route
	up   *upstream
	slot chan struct{} // one per request in flight, maxConcurrent of them
}

// New returns a gateway offering halves to sink; Use gives it a policy.
// Its metrics are registered on reg.
func New(cfg Config, sink Sink, now pair.Clock, reg prometheus.Registerer, log *zap.Logger) (*Gateway, error) {
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = defaultMaxBuffered
	}
	if len(cfg.FingerprintKey) == 0 {
		cfg.FingerprintKey = make([]byte, 32)
		if _, err := rand.Read(cfg.FingerprintKey); err != nil {
			return nil, fmt.Errorf("gateway: fingerprint key: %w", err)
		}
	}
	g := &Gateway{cfg: cfg, sink: sink, now: now, log: log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shadowlab_gateway_requests_total",
			Help: "Mirrored requests Envoy sent to the shadow gateway, by route and outcome: forwarded, shed_busy, shed_memory, too_large, unknown_route, no_request_id, unsafe_refused, body_failed.",
		}, []string{"route", "outcome"}),
	}
	g.inflight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shadowlab_gateway_inflight", Help: "Requests the shadow gateway is forwarding now.",
	}, func() float64 { return float64(g.busy.Load()) })
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shadowlab_gateway_buffered_bytes", Help: "Request body bytes the shadow gateway holds now, bodies still being received included (bounded by --gateway-max-buffered).",
	}, func() float64 { return float64(g.buffered.Load()) })
	for _, c := range []prometheus.Collector{g.requests, g.inflight, buffered} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering gateway metrics: %w", err)
		}
	}
	return g, nil
}

// Use makes p the policy whose mirrored routes are forwarded. A route keeps
// its slots, and a service its connections, while unchanged.
func (g *Gateway) Use(p *policy.Policy) {
	g.policy.Store(p)
	old := g.routes.All()
	var ups []*upstream
	for _, rt := range old {
		if !slices.Contains(ups, rt.up) {
			ups = append(ups, rt.up)
		}
	}
	g.routes.Use(p, func(r *policy.Route, prev *route, had bool) (*route, bool) {
		if r.Shadow == nil || !r.Shadow.Capture {
			return nil, false
		}
		up := sameUpstream(ups, r.Shadow.Service)
		if up == nil {
			up = newUpstream(r.Shadow.Service, r.Shadow.MaxConcurrent)
			ups = append(ups, up)
		}
		rt := &route{r: r, up: up, slot: make(chan struct{}, r.Shadow.MaxConcurrent)}
		if had && cap(prev.slot) == cap(rt.slot) {
			rt.slot = prev.slot // requests in flight keep counting
		}
		return rt, true
	})
	for _, up := range ups {
		if !usedBy(g.routes.All(), up) {
			up.close()
		}
	}
}

func usedBy(routes map[string]*route, up *upstream) bool {
	for _, rt := range routes {
		if rt.up == up {
			return true
		}
	}
	return false
}

// Wait blocks until the forwards in flight are done (their halves offered).
func (g *Gateway) Wait() { g.wg.Wait() }

// ServeHTTP takes one mirrored request from Envoy. It answers Envoy at
// once: 202 when the request is being forwarded, or an error status when
// it is not (which Envoy counts and discards). Whatever happens to a
// request that carries a route and an ID, a half says so to the pairer.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name := req.Header.Get(wire.HeaderRoute)
	if g.cfg.Unmarked {
		name = g.unmarked(req)
	}
	rt := g.route(name)
	if rt == nil || req.Header.Get(wire.HeaderShadow) != wire.MarkOn {
		g.count(name, outcomeUnknown)
		http.Error(w, "not a mirrored request of a shadowed route", http.StatusNotFound)
		return
	}
	id := req.Header.Get(wire.HeaderRequestID)
	if id == "" {
		g.count(name, outcomeNoID)
		http.Error(w, "no "+wire.HeaderRequestID, http.StatusBadRequest)
		return
	}
	h := pair.Half{Route: name, Side: wire.SideShadow, RequestID: id, Method: req.Method, Target: req.RequestURI}
	if th := rt.r.TenantHeader(); th != "" {
		h.Tenant = rt.r.TenantOf(req.Header.Get(th))
	}
	h.Path, _, _ = strings.Cut(h.Target, "?")
	if !slices.Contains(policy.SafeMethods, req.Method) && (!rt.r.Shadow.UnsafeMethods || req.Header.Get(wire.HeaderDryRun) != wire.MarkOn) {
		g.count(name, outcomeUnsafe)
		h.Skip = "not mirrored: " + req.Method + " is not a safe method and the route does not mirror unsafe methods"
		g.offer(h)
		http.Error(w, "unsafe method not mirrored", http.StatusForbidden)
		return
	}
	select {
	case rt.slot <- struct{}{}:
	default:
		g.count(name, outcomeShedBusy)
		h.Incomplete = fmt.Sprintf("shed by the gateway: %d requests to the shadow already in flight (shadow.maxConcurrent)", cap(rt.slot))
		g.offer(h)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	body, problem, err := g.readBody(req, rt.r.Shadow.MaxRequestBytes)
	if problem != "" {
		<-rt.slot
		switch problem {
		case outcomeTooLarge:
			h.Skip = fmt.Sprintf("not mirrored: request body over shadow.maxRequestBytes (%d bytes)", rt.r.Shadow.MaxRequestBytes)
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		case outcomeShedMemory:
			h.Incomplete = "shed by the gateway: its buffer for request bodies is full"
			http.Error(w, "busy", http.StatusServiceUnavailable)
		default:
			h.Incomplete = "the mirrored request's body broke off before the gateway had it: " + err.Error()
			http.Error(w, "body failed", http.StatusBadRequest)
		}
		g.count(name, problem)
		g.offer(h)
		return
	}
	out := g.outgoing(req, rt, body)
	h.Fingerprint = g.fingerprint(req, rt.r, body)
	g.count(name, outcomeForwarded)
	w.WriteHeader(http.StatusAccepted)
	g.busy.Add(1)
	g.wg.Go(func() {
		defer func() {
			g.buffered.Add(-int64(len(body)))
			g.busy.Add(-1)
			<-rt.slot
		}()
		g.offer(g.forward(rt, out, h))
	})
}

// unmarked readies a mirror that came without marks (Config.Unmarked):
// it finds the request's policy route and marks the request as Envoy's
// mirror policy would have. It returns the route's name, "" when no route
// matches.
func (g *Gateway) unmarked(req *http.Request) string {
	for _, h := range append([]string{wire.HeaderSample}, wire.Marks...) {
		req.Header.Del(h)
	}
	if host, ok := strings.CutSuffix(req.Host, "-shadow"); ok {
		req.Host = host
	} else if h, port, err := net.SplitHostPort(req.Host); err == nil && strings.HasSuffix(h, "-shadow") {
		req.Host = net.JoinHostPort(strings.TrimSuffix(h, "-shadow"), port)
	}
	p := g.policy.Load()
	if p == nil {
		return ""
	}
	r := p.RouteFor(policy.Request{Method: req.Method, Target: req.RequestURI, Header: func(name string) []string { return req.Header.Values(name) }})
	if r == nil || r.Shadow == nil {
		return ""
	}
	req.Header.Set(wire.HeaderShadow, wire.MarkOn)
	req.Header.Set(wire.HeaderRoute, r.Name)
	if r.Shadow.UnsafeMethods && !slices.Contains(policy.SafeMethods, req.Method) {
		req.Header.Set(wire.HeaderDryRun, wire.MarkOn)
	}
	return r.Name
}

func (g *Gateway) route(name string) *route {
	rt, _ := g.routes.Get(name)
	return rt
}

func (g *Gateway) count(route, outcome string) {
	if g.route(route) == nil {
		route = "" // names from the wire are bounded by the policy
	}
	g.requests.WithLabelValues(route, outcome).Inc()
}

func (g *Gateway) offer(h pair.Half) {
	h.At = g.now()
	g.sink.Offer(h)
}

// readBody reads a request body of at most limit bytes, holding it in
// the buffer budget as it arrives: the bytes of a body still being
// received count against MaxBufferedBytes (its declared Content-Length at
// once, else its buffer as it grows), so slow uploads cannot hold more
// than the budget. problem is outcomeTooLarge, outcomeShedMemory or
// outcomeBodyFailed (with err) when there is no body to forward; then
// nothing stays held. On success len(body) bytes stay held until released.
func (g *Gateway) readBody(req *http.Request, limit int64) (body []byte, problem string, err error) {
	if req.ContentLength > limit {
		return nil, outcomeTooLarge, nil
	}
	var held int64
	hold := func(n int64) bool {
		if g.buffered.Add(n) > g.cfg.MaxBufferedBytes {
			g.buffered.Add(-n)
			return false
		}
		held += n
		return true
	}
	size := min(limit+1, bodyChunk)
	if req.ContentLength >= 0 {
		size = req.ContentLength + 1 // +1: a body longer than it declared is seen
	}
	if !hold(size) {
		return nil, outcomeShedMemory, nil
	}
	body = make([]byte, 0, size)
	for {
		if len(body) == cap(body) {
			grown := min(2*int64(cap(body)), limit+1)
			if grown <= int64(cap(body)) {
				break // limit+1 bytes read: too large
			}
			if !hold(grown - int64(cap(body))) {
				g.buffered.Add(-held)
				return nil, outcomeShedMemory, nil
			}
			body = append(make([]byte, 0, grown), body...)
		}
		var n int
		n, err = req.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err == io.EOF {
			err = nil
			break
		}
		if err != nil {
			g.buffered.Add(-held)
			return nil, outcomeBodyFailed, err
		}
	}
	if int64(len(body)) > limit {
		g.buffered.Add(-held)
		return nil, outcomeTooLarge, nil
	}
	g.buffered.Add(int64(len(body)) - held)
	return body, "", nil
}

// bodyChunk is the first buffer of a body of unknown length.
const bodyChunk = 32 << 10

// forward sends out to the route's shadow service and records the answer
// into h.
func (g *Gateway) forward(rt *route, out *http.Request, h pair.Half) pair.Half {
	ctx, cancel := context.WithTimeout(context.Background(), rt.r.Timeout)
	defer cancel()
	out = out.WithContext(ctx)
	start := time.Now()
	resp, err := rt.up.client.Do(out)
	if err != nil {
		h.Incomplete = "no response: " + describe(err, rt.r.Timeout)
		h.Latency = time.Since(start)
		g.debug("shadow failed", h, err)
		return h
	}
	defer resp.Body.Close()
	record(&h, resp, rt.r.Shadow.Compare)
	if err := readResponse(&h, resp, rt.r.Shadow.Compare.MaxBodyBytes); err != nil {
		h.Incomplete = "response body cut short: " + describe(err, rt.r.Timeout)
	}
	h.Latency = time.Since(start)
	return h
}

func (g *Gateway) debug(msg string, h pair.Half, err error) {
	if ce := g.log.Check(zapcore.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("route", h.Route), zap.String("request_id", h.RequestID), zap.Error(err))
	}
}

// describe says briefly why a call to the shadow failed.
func describe(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("timed out after %s (the route's timeout)", timeout)
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection reset"
	}
	return err.Error()
}
