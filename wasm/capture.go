package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/shadowlab/shadowlab/wire"
)

// The capture role (root id wire.CaptureRootID): on the sampled routes of
// mirrored policy routes, it records the primary's answer to each mirrored
// request — status, the headers the route compares, the body up to the
// route's limit, latency — and sends the records in batches
// (wire.AppendCaptureRecord) to shadowlab's API from the tick, one call per
// tick at most per worker. An instance configured without a route serves
// every route of its listener, each with the settings in its route
// metadata (wire.MetadataNamespace); one configured with a route serves
// that route, unless route metadata says otherwise. It never pauses a
// request or a response: each body chunk is copied as it passes. Measured
// on Envoy 1.40 (see BENCHMARKS.md), this costs Envoy about half of what
// one ext_proc stream per request did.
//
// Calls are made only from the tick, on the root context: a call made
// from a stream's context loses its callback once the stream is gone.

// captureContext is the capture role of one plugin instance in one VM.
type captureContext struct {
	types.DefaultPluginContext
	vm       *vmContext
	cfg      wire.CaptureConfig // the instance's: its per-route fields are fixed's
	dispatch dispatchFunc

	// fixed is the route of an instance configured with one; nil: every
	// route's settings come from its metadata.
	fixed *captureRoute
	// routes are the settings of the route metadata seen, by their raw
	// JSON; nil for settings that are not valid. Cleared when full.
	routes map[string]*captureRoute
	warned bool // about a route without settings (once per VM)

	buf      []byte // records not sent yet
	records  int
	inflight uint32

	m captureMetrics
}

type captureMetrics struct {
	records, batches, dropped, failed, noSettings proxywasm.MetricCounter
}

// captureRoute is what one route captures: its settings (the per-route
// fields of a wire.CaptureConfig) and the response headers they keep.
type captureRoute struct {
	cfg     wire.CaptureConfig
	headers []string
}

func newCaptureRoute(cfg wire.CaptureConfig) *captureRoute {
	return &captureRoute{cfg: cfg, headers: cfg.KeptHeaders()}
}

// maxCachedRoutes bounds captureContext.routes: the distinct settings of
// the routes one instance serves (a policy route's Envoy routes share
// theirs).
const maxCachedRoutes = 4096

// routeMetadataPath is the property of the route's capture settings: Envoy
// walks the route's Metadata message to the Struct's string and returns
// its bytes (a number there comes back as its 8-byte double; a route
// without them is NotFound).
var routeMetadataPath = []string{"xds", "route_metadata", "filter_metadata", wire.MetadataNamespace, wire.MetadataCapture}

func newCaptureContext(vm *vmContext) *captureContext {
	return &captureContext{vm: vm, dispatch: proxywasm.DispatchHttpCall, routes: map[string]*captureRoute{}}
}

func (c *captureContext) OnPluginStart(int) (status types.OnPluginStartStatus) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("capture start", r)
			status = types.OnPluginStartStatusFailed
		}
	}()
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCritical("shadowlab capture: reading plugin configuration: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	if c.cfg, err = wire.ParseCaptureConfig(data); err != nil {
		proxywasm.LogCritical("shadowlab capture: " + logConfigError(err))
		return types.OnPluginStartStatusFailed
	}
	if c.cfg.Route != "" {
		c.fixed = newCaptureRoute(c.cfg)
	}
	c.m = captureMetrics{
		records:    proxywasm.DefineCounterMetric("shadowlab_capture_records"),
		batches:    proxywasm.DefineCounterMetric("shadowlab_capture_batches"),
		dropped:    proxywasm.DefineCounterMetric("shadowlab_capture_dropped"),
		failed:     proxywasm.DefineCounterMetric("shadowlab_capture_batch_failed"),
		noSettings: proxywasm.DefineCounterMetric("shadowlab_capture_no_settings"),
	}
	if err := proxywasm.SetTickPeriodMilliSeconds(c.cfg.TickMs); err != nil {
		proxywasm.LogCritical("shadowlab capture: setting tick period: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (c *captureContext) NewHttpContext(uint32) types.HttpContext {
	return &captureStream{c: c}
}

// route is the capture settings of the request's route: its metadata's
// (parsed once per distinct value), else the instance's own; nil when
// there are none or they are not valid, counted (the request is not
// captured).
func (c *captureContext) route() *captureRoute {
	raw, err := proxywasm.GetProperty(routeMetadataPath)
	if err != nil || len(raw) == 0 {
		if c.fixed == nil {
			c.noSettings("no route metadata " + wire.MetadataNamespace + "." + wire.MetadataCapture)
		}
		return c.fixed
	}
	r, ok := c.routes[string(raw)]
	if !ok {
		if len(c.routes) >= maxCachedRoutes {
			clear(c.routes)
		}
		cfg, err := wire.ParseCaptureRoute(raw)
		if err == nil {
			r = newCaptureRoute(cfg)
		} else {
			proxywasm.LogWarn("shadowlab capture: Envoy route " + strconv.Quote(envoyRoute()) + ": " + logConfigError(err) + ": not captured")
		}
		c.routes[string(raw)] = r
	}
	if r == nil {
		inc(c.m.noSettings, 1)
	}
	return r
}

// noSettings counts a request on a route without settings, and warns at
// the first.
func (c *captureContext) noSettings(why string) {
	inc(c.m.noSettings, 1)
	if !c.warned {
		c.warned = true
		proxywasm.LogWarn("shadowlab capture: Envoy route " + strconv.Quote(envoyRoute()) + " has " + why + ": not captured (counted in shadowlab_capture_no_settings)")
	}
}

// OnTick sends the records gathered since the last batch, unless
// max_inflight batches are still out (they wait for the next tick, bounded
// by max_pending_bytes).
func (c *captureContext) OnTick() {
	defer func() {
		if r := recover(); r != nil {
			logPanic("capture tick", r)
		}
	}()
	c.vm.mem.sample(c.vm.now().UnixMilli())
	if c.records == 0 || c.inflight >= c.cfg.MaxInflight {
		return
	}
	n := c.records
	_, err := c.dispatch(c.cfg.ReportCluster, [][2]string{
		{":method", "POST"}, {":path", c.cfg.ReportPath}, {":authority", c.cfg.ReportAuthority},
		{"content-type", wire.CaptureContentType},
	}, c.buf, nil, reportTimeoutMs, func(numHeaders, _, _ int) { c.onBatchDone(numHeaders, n) })
	c.buf, c.records = c.buf[:0], 0 // the host copied the body
	if err != nil {
		inc(c.m.failed, 1)
		inc(c.m.dropped, uint64(n))
		return
	}
	c.inflight++
	inc(c.m.batches, 1)
}

// onBatchDone counts a batch that was not taken (its records are lost:
// the pair shows a missing primary half, and the counter says why).
func (c *captureContext) onBatchDone(numHeaders, records int) {
	c.inflight--
	status := ""
	if numHeaders > 0 {
		if hs, err := proxywasm.GetHttpCallResponseHeaders(); err == nil {
			for _, h := range hs {
				if h[0] == ":status" {
					status = h[1]
				}
			}
		}
	}
	if n, err := strconv.Atoi(status); err != nil || n < 200 || n > 299 {
		inc(c.m.failed, 1)
		inc(c.m.dropped, uint64(records))
	}
}

// captureStream is one request on a capturing route.
type captureStream struct {
	types.DefaultHttpContext
	c        *captureContext
	r        *captureRoute // the route's settings (set unless skip)
	start    time.Time     // request headers seen
	end      time.Time     // the response's last byte seen (zero until then)
	rec      wire.CaptureRecord
	sawResp  bool
	complete bool
	grpc     bool // the response is gRPC's: its status and encoding are kept too
	skip     bool // no settings, not this instance's route, or not in its sample: nothing recorded
}

func (s *captureStream) OnHttpRequestHeaders(int, bool) types.Action {
	defer recoverIn("capture request headers")
	s.r = s.c.route()
	if s.r == nil {
		s.skip = true
		return types.ActionContinue
	}
	cfg := &s.r.cfg
	if cfg.EnvoyRoutes != "" && !wire.InRoutes(cfg.EnvoyRoutes, envoyRoute()) { // the property is read only where needed: a host call per request
		s.skip = true
		return types.ActionContinue
	}
	s.start = s.c.vm.now()
	s.rec.RequestID, _ = proxywasm.GetHttpRequestHeader(wire.HeaderRequestID)
	s.rec.Method, _ = proxywasm.GetHttpRequestHeader(":method")
	if cfg.SampleHeader != "" {
		// Changing a request header makes Envoy pick the route again: the
		// sampled requests take the route that mirrors, the others (and
		// any client that sent the header itself) the one that does not.
		if s.rec.RequestID == "" || !wire.Sampled(cfg.SampleKey(s.rec.RequestID, requestHeader, stickyAddr(cfg)), cfg.SamplePerMillion) ||
			!cfg.SampleCandidate(s.rec.Method, requestHeader) {
			s.skip = true
			_ = proxywasm.RemoveHttpRequestHeader(cfg.SampleHeader)
			return types.ActionContinue
		}
		_ = proxywasm.ReplaceHttpRequestHeader(cfg.SampleHeader, wire.MarkOn)
	}
	s.rec.Target, _ = proxywasm.GetHttpRequestHeader(":path")
	return types.ActionContinue
}

func (s *captureStream) OnHttpResponseHeaders(_ int, endOfStream bool) types.Action {
	defer recoverIn("capture response headers")
	if s.skip {
		return types.ActionContinue
	}
	s.sawResp, s.complete = true, endOfStream
	if endOfStream {
		s.end = s.c.vm.now()
	}
	if st, err := proxywasm.GetHttpResponseHeader(":status"); err == nil {
		s.rec.Status, _ = strconv.Atoi(st)
	}
	for _, h := range s.r.headers {
		if v, err := proxywasm.GetHttpResponseHeader(h); err == nil {
			s.rec.Headers = append(s.rec.Headers, [2]string{h, v})
			s.grpc = s.grpc || h == "content-type" && strings.HasPrefix(v, "application/grpc")
		}
	}
	if s.grpc { // gRPC's own headers, read only for gRPC: a trailers-only answer carries its status here
		s.rec.Headers = appendFound(s.rec.Headers, proxywasm.GetHttpResponseHeader, wire.GRPCHeaders)
	}
	return types.ActionContinue
}

// OnHttpResponseTrailers ends the response: gRPC's status is in its
// trailers.
func (s *captureStream) OnHttpResponseTrailers(int) types.Action {
	defer recoverIn("capture response trailers")
	if s.skip {
		return types.ActionContinue
	}
	s.complete, s.end = true, s.c.vm.now()
	if s.grpc {
		s.rec.Trailers = appendFound(s.rec.Trailers, proxywasm.GetHttpResponseTrailer, wire.GRPCHeaders)
	}
	return types.ActionContinue
}

// appendFound appends the named fields that get finds.
func appendFound(out [][2]string, get func(string) (string, error), names []string) [][2]string {
	for _, n := range names {
		if v, err := get(n); err == nil {
			out = append(out, [2]string{n, v})
		}
	}
	return out
}

// OnHttpResponseBody copies each chunk as it passes (the response is never
// paused or buffered by the plugin).
func (s *captureStream) OnHttpResponseBody(size int, endOfStream bool) types.Action {
	defer recoverIn("capture response body")
	if s.skip {
		return types.ActionContinue
	}
	s.complete = endOfStream
	if endOfStream {
		s.end = s.c.vm.now()
	}
	if size == 0 {
		return types.ActionContinue
	}
	s.rec.BodyBytes += uint32(size)
	if s.rec.Flags&wire.FlagTooLarge != 0 {
		return types.ActionContinue
	}
	if uint64(len(s.rec.Body))+uint64(size) > uint64(s.r.cfg.MaxBodyBytes) {
		s.rec.Flags |= wire.FlagTooLarge
		s.rec.Body = nil
		return types.ActionContinue
	}
	if b, err := proxywasm.GetHttpResponseBody(0, size); err == nil {
		s.rec.Body = append(s.rec.Body, b...)
	}
	return types.ActionContinue
}

// OnHttpStreamDone adds the record to the next batch.
func (s *captureStream) OnHttpStreamDone() {
	defer recoverIn("capture stream done")
	c := s.c
	if s.skip || s.rec.RequestID == "" {
		return
	}
	if !s.sawResp || !s.complete {
		s.rec.Flags |= wire.FlagIncomplete
	}
	s.rec.Route = s.r.cfg.Route
	end := s.end
	if end.IsZero() {
		end = c.vm.now()
	}
	// Latency to the response's last byte through the filter, not to the
	// end of the stream (which waits for the client to take it all), as
	// the gateway measures the shadow's.
	s.rec.LatencyMicros = uint32(min(end.Sub(s.start).Microseconds(), 1<<32-1))
	if len(c.buf) >= int(c.cfg.MaxPendingBytes) {
		inc(c.m.dropped, 1)
		return
	}
	c.buf = wire.AppendCaptureRecord(c.buf, &s.rec)
	c.records++
	inc(c.m.records, 1)
}

// stickyAddr is the client's address when sampling is sticky and the
// request lacks the sticky header (the property is read only then).
func stickyAddr(cfg *wire.CaptureConfig) string {
	if cfg.SampleStickyHeader == "" || hasHeader(cfg.SampleStickyHeader) {
		return ""
	}
	return sourceAddress()
}

// sourceAddress is the client's address as Envoy saw it ("" if unknown).
func sourceAddress() string {
	b, err := proxywasm.GetProperty([]string{"source", "address"})
	if err != nil {
		return ""
	}
	return string(b)
}

// requestHeader reads a request header of the stream being decided on.
func requestHeader(name string) (string, bool) {
	v, err := proxywasm.GetHttpRequestHeader(name)
	return v, err == nil
}

// envoyRoute is the name of the Envoy route the request took ("" when
// Envoy does not say).
func envoyRoute() string {
	b, err := proxywasm.GetProperty([]string{"xds", "route_name"})
	if err != nil {
		return ""
	}
	return string(b)
}

// recoverIn keeps a panic in a callback from trapping the VM.
func recoverIn(where string) {
	if r := recover(); r != nil {
		logPanic(where, r)
	}
}
