package extproc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/budget"
	"github.com/shadowlab/shadowlab/pair"
	"github.com/shadowlab/shadowlab/policy"
	"github.com/shadowlab/shadowlab/wire"
)

// Global admission. Envoy runs a second, non-observing ext_proc filter on
// the routes whose admission has scope global, and opens one stream per
// request with the initial metadata wire.MetadataRoute. The stream carries
// the request headers only (x-request-id and the route's key header); the
// Admitter answers once and returns:
//
//   - admit: CONTINUE, stamped x-shadowlab-admission: passed;
//   - delay: an override_message_timeout of the longest the hold may last
//     (MaxDelay) + policy.AdmissionHoldMargin (for holds of overrideFrom or
//     more), then, when the delay is over and the key's release window has
//     room, CONTINUE stamped held and x-shadowlab-held-ms (429 if room
//     comes only past MaxDelay);
//   - reject: an immediate 429 with a Retry-After;
//   - anything unexpected: CONTINUE, counted as fail_open.
//
// The budgets live in this process, so they are shared by every Envoy that
// uses it: one admission.Limiter per route, keyed by the key header's
// value. With AdmitterConfig.Shared they live in Redis instead, shared by
// every serve replica that uses the same Redis (package budget); Redis
// down or slow, the request passes, counted as fail_open.

// What global admission adds to its answers (the headers it sets are
// wire's, as the wasm plugin's).
const (
	// admissionDetails is the ImmediateResponse details of a 429: Envoy
	// logs it as the response code details.
	admissionDetails = "shadowlab_admission"
	rejectBody       = "too many requests\n"
)

// Defaults of AdmitterConfig.
const (
	DefaultMaxHeld = 5000
	DefaultMaxKeys = 10000
)

// overrideFrom is the shortest hold announced to Envoy with
// override_message_timeout. Shorter holds end well within the filter's
// message_timeout (1s, set by xds), so they spare the extra message.
const overrideFrom = 150 * time.Millisecond

// warnEvery spaces the warnings about requests passed unchecked: under load
// every request may fail open, and one warning per request would be a flood.
const warnEvery = 10 * time.Second

// Log field keys.
const (
	logRoute     = "route"
	logRequestID = "request_id"
	logKey       = "key"
	logReason    = "reason"
	logCount     = "count"
)

// AdmitterConfig bounds what the Admitter holds. Zero values take the
// defaults.
type AdmitterConfig struct {
	// MaxHeld is the number of requests held at once, across routes.
	// Default DefaultMaxHeld. Beyond it a request that would be held is
	// answered 429 (its slot stays taken, which is safe for the upstream)
	// and counted Rejected. Each held request is one open gRPC stream: the
	// circuit breakers of xds.AdmissionCluster (max_requests) and the gRPC
	// server's MaxConcurrentStreams must be above MaxHeld.
	MaxHeld int
	// MaxKeys is the number of keys each route's limiter keeps (see
	// admission.NewLimiter). Default DefaultMaxKeys.
	MaxKeys int
	// Shared, if set, keeps the budgets in Redis, shared by replicas,
	// instead of in this process.
	Shared *budget.Store
}

// AdmissionSink receives admission counts, each call one request's: once
// at its decision and, for a held request, again when it ends (released or
// abandoned). scope is wire.ScopeGlobal here. It is called on the request
// path and must not block (report.Reporter adds to a map under a mutex).
type AdmissionSink interface {
	AddAdmission(scope wire.Scope, route, key string, c wire.Counts)
}

// Admitter implements the ext_proc gRPC service for global admission.
type Admitter struct {
	extprocv3.UnimplementedExternalProcessorServer
	cfg  AdmitterConfig
	sink AdmissionSink
	now  pair.Clock
	rnd  func() admission.Source
	log  *zap.Logger

	gates  policy.PerRoute[*gate] // the routes of the policy in use with global admission
	policy atomic.Pointer[policy.Policy]

	held atomic.Int64

	failOpen atomic.Uint64 // requests passed unchecked, ever
	warned   atomic.Uint64 // failOpen at the last warning
	lastWarn atomic.Int64  // time of the last warning, ns
}

// gate is the admission of one route. A new policy keeps the gate (and the
// budgets spent so far) of every route whose admission did not change.
type gate struct {
	cfg       admission.Config // policy.Admission.Budget
	keyHeader string           // "" for key: route
	budget    Budget           // nil if cfg is invalid: the route fails open
}

// Budget is one route's budget: in this process (admission.Limiter) or in
// Redis, shared by replicas (budget.Budget). An error means nothing was
// decided (Redis down, slow or refusing): the request passes.
type Budget interface {
	Decide(ctx context.Context, key string, now time.Time) (admission.Decision, error)
	Release(ctx context.Context, key string, now time.Time) (time.Duration, error)
}

// localBudget is an admission.Limiter as a Budget: it never fails.
type localBudget struct{ lim *admission.Limiter }

func (b localBudget) Decide(_ context.Context, key string, now time.Time) (admission.Decision, error) {
	return b.lim.Decide(key, now), nil
}

func (b localBudget) Release(_ context.Context, key string, now time.Time) (time.Duration, error) {
	return b.lim.Release(key, now), nil
}

// NewAdmitter admits requests to the global-admission routes of the policy
// in use (Use). Decisions are taken at now(); holds are real timers. rnd
// returns a fresh random source for each limiter (nil: PCG seeded from
// math/rand/v2). Counts go to sink.
func NewAdmitter(cfg AdmitterConfig, sink AdmissionSink, now pair.Clock, rnd func() admission.Source, log *zap.Logger) (*Admitter, error) {
	var errs []error
	if cfg.MaxHeld < 0 {
		errs = append(errs, fmt.Errorf("max held: must be 0 (default %d) or more (got %d)", DefaultMaxHeld, cfg.MaxHeld))
	}
	if cfg.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("max keys: must be 0 (default %d) or more (got %d)", DefaultMaxKeys, cfg.MaxKeys))
	}
	if sink == nil {
		errs = append(errs, errors.New("sink: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("global admission: %w", err)
	}
	if cfg.MaxHeld == 0 {
		cfg.MaxHeld = DefaultMaxHeld
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = func() admission.Source { return rand.NewPCG(rand.Uint64(), rand.Uint64()) }
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Admitter{cfg: cfg, sink: sink, now: now, rnd: rnd, log: log}, nil
}

// Register adds the service to a gRPC server. The capture Server is the
// same gRPC service, so the two need separate gRPC servers (listeners).
func (a *Admitter) Register(g *grpc.Server) { extprocv3.RegisterExternalProcessorServer(g, a) }

// Held returns the number of requests held now.
func (a *Admitter) Held() int { return int(a.held.Load()) }

type processStream = grpc.BidiStreamingServer[extprocv3.ProcessingRequest, extprocv3.ProcessingResponse]

// Process owns one stream, that is one request: it reads the request
// headers, has them admitted, and returns. It never fails the stream: on
// bad input it lets the request through.
func (a *Admitter) Process(stream processStream) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	route := first(md, wire.MetadataRoute)
	req, err := stream.Recv()
	if err != nil { // Envoy closed or reset the stream before asking
		return nil
	}
	hs := req.GetRequestHeaders()
	if hs == nil {
		a.passUnchecked(route, "first message is not the request headers", "")
		if resp := continueFor(req); resp != nil {
			_ = stream.Send(resp)
		}
		return nil
	}
	if route == "" {
		route = a.routeOf(hs.GetHeaders().GetHeaders())
	}
	g, reason := a.gate(route)
	var requestID, key string
	for _, hv := range hs.GetHeaders().GetHeaders() {
		switch k := hv.GetKey(); {
		case k == wire.HeaderRequestID:
			requestID = headerValue(hv)
		case g != nil && g.keyHeader != "" && k == g.keyHeader:
			key = headerValue(hv)
		}
	}
	if g == nil || g.budget == nil {
		if g != nil {
			reason = "route admission config invalid"
		}
		a.passUnchecked(route, reason, requestID)
		_ = stream.Send(continueHeaders(nil))
		return nil
	}
	a.admit(stream, route, g, key, requestID)
	return nil
}

// admit decides on one request of route's budget key and answers it:
// CONTINUE, after a hold if need be, or 429. Each request is counted once
// at its decision, and a held one again when it ends.
func (a *Admitter) admit(stream processStream, route string, g *gate, key, requestID string) {
	d, err := g.budget.Decide(stream.Context(), key, a.now())
	if err != nil {
		a.passUnchecked(route, err.Error(), requestID)
		_ = stream.Send(continueHeaders(nil))
		return
	}
	if ce := a.log.Check(zapcore.DebugLevel, "admission decided"); ce != nil {
		ce.Write(zap.String(logRoute, route), zap.String(logKey, shorten(key)), zap.String(logRequestID, shorten(requestID)),
			zap.Stringer("outcome", d.Outcome), zap.Duration("delay", d.Delay), zap.Int("retry_after", d.RetryAfter), zap.Bool("observed", d.Observed))
	}
	var c wire.Counts
	switch d.Action {
	case admission.Delay:
		if a.held.Add(1) > int64(a.cfg.MaxHeld) {
			// Too many held: refuse, and leave the slot taken, which is
			// safe for the upstream. Come back when the slot would have been.
			a.held.Add(-1)
			c.Rejected = 1
			a.sink.AddAdmission(wire.ScopeGlobal, route, key, c)
			_ = stream.Send(rejectResponse(admission.Seconds(d.Delay)))
			return
		}
		c.Delayed = 1
		a.sink.AddAdmission(wire.ScopeGlobal, route, key, c)
		a.sink.AddAdmission(wire.ScopeGlobal, route, key, a.hold(stream, g, key, d.Delay))
	case admission.Reject:
		c.Rejected = 1
		a.sink.AddAdmission(wire.ScopeGlobal, route, key, c)
		_ = stream.Send(rejectResponse(d.RetryAfter))
	default:
		c.Admitted = 1
		if d.Observed {
			switch d.Outcome {
			case admission.Delay:
				c.ObservedDelay = 1
			case admission.Reject:
				c.ObservedReject = 1
			}
		}
		a.sink.AddAdmission(wire.ScopeGlobal, route, key, c)
		_ = stream.Send(continueHeaders(passedMutation()))
	}
}

// hold keeps the request for delay, on a timer in the stream's own
// goroutine, then lets it through; it returns the request's end as Counts:
// released (with its wait), abandoned (Envoy reset the stream: the client
// went away), or refused. The caller has taken the held slot; hold gives it
// back.
//
// The release is counted in the key's budget when the timer fires
// (Budget.Release), not only at the decision: a timer that
// fires late, or a process descheduled for a while, would otherwise let a
// backlog through at once. If the window is full the request waits for
// room, as long as MaxDelay since the decision allows, and is answered 429
// with a Retry-After past that (counted Rejected at its end).
func (a *Admitter) hold(stream processStream, g *gate, key string, delay time.Duration) wire.Counts {
	start := time.Now() // the hold is a real timer, measured on the monotonic clock
	t := time.NewTimer(delay)
	defer t.Stop()
	defer a.held.Add(-1)
	var c wire.Counts
	announced := false
	// announce tells Envoy, once, to wait until the hold can last at most:
	// its message timer restarts with this value, and the hold must end
	// before it or Envoy lets the request through.
	announce := func(hold time.Duration) bool {
		if announced || hold < overrideFrom {
			return true
		}
		announced = true
		left := g.cfg.MaxDelay - time.Since(start)
		return stream.Send(&extprocv3.ProcessingResponse{OverrideMessageTimeout: durationpb.New(max(left, hold) + policy.AdmissionHoldMargin)}) == nil
	}
	if !announce(delay) {
		c.Abandoned = 1
		return c
	}
	for {
		select {
		case <-t.C:
		case <-stream.Context().Done():
			c.Abandoned = 1 // the client went away while held
			return c
		}
		// An error lets the request go unchecked (the shared budget did not
		// answer; budget.Store counts it).
		wait, err := g.budget.Release(stream.Context(), key, a.now())
		if wait == 0 || err != nil {
			break
		}
		waited := time.Since(start)
		if waited+wait > g.cfg.MaxDelay {
			c.Rejected = 1
			_ = stream.Send(rejectResponse(admission.Seconds(wait)))
			return c
		}
		if !announce(waited + wait) {
			c.Abandoned = 1
			return c
		}
		t.Reset(wait)
	}
	waited := time.Since(start)
	if stream.Send(continueHeaders(heldMutation(waited))) != nil {
		c.Abandoned = 1 // the stream is gone: the request never went on
		return c
	}
	c.Released(waited)
	return c
}

// gate returns the admission of route under the policy in use, or nil and
// why the route is not admitted here.
// routeOf finds the policy route of a request that came without the route
// metadata (from a mesh whose control plane cannot set it per route): the
// first route of the policy that matches its method, :path and headers.
// "" when none does.
func (a *Admitter) routeOf(headers []*corev3.HeaderValue) string {
	p := a.policy.Load()
	if p == nil {
		return ""
	}
	var method, target string
	for _, hv := range headers {
		switch hv.GetKey() {
		case ":method":
			method = headerValue(hv)
		case ":path":
			target = headerValue(hv)
		}
	}
	r := p.RouteFor(policy.Request{Method: method, Target: target, Header: func(name string) []string {
		var vs []string
		for _, hv := range headers {
			if hv.GetKey() == name {
				vs = append(vs, headerValue(hv))
			}
		}
		return vs
	}})
	if r == nil {
		return ""
	}
	return r.Name
}

func (a *Admitter) gate(route string) (*gate, string) {
	if route == "" {
		return nil, "no " + wire.MetadataRoute + " metadata"
	}
	if g, ok := a.gates.Get(route); ok {
		return g, ""
	}
	return nil, "route without global admission"
}

// Use makes p the policy whose global-admission routes are admitted. It
// keeps the gate, and the budget spent so far, of every route whose budget
// and key did not change.
func (a *Admitter) Use(p *policy.Policy) {
	a.policy.Store(p)
	a.gates.Use(p, func(r *policy.Route, old *gate, had bool) (*gate, bool) {
		if r.Admission == nil || r.Admission.Scope != wire.ScopeGlobal {
			return nil, false
		}
		cfg, keyHeader := r.Admission.Budget, r.Admission.KeyHeader
		if had && old.cfg == cfg && old.keyHeader == keyHeader {
			return old, true
		}
		g := &gate{cfg: cfg, keyHeader: keyHeader}
		var err error
		if a.cfg.Shared != nil {
			var b *budget.Budget
			if b, err = a.cfg.Shared.Budget(r.Name, cfg); err == nil {
				g.budget = b
			}
		} else {
			var lim *admission.Limiter
			if lim, err = admission.NewLimiter(cfg, a.cfg.MaxKeys, a.rnd()); err == nil {
				g.budget = localBudget{lim}
			}
		}
		if err != nil {
			// Not expected: the policy was validated. Once per policy.
			a.log.Warn("global admission off for a route (requests pass unchecked)", zap.String(logRoute, r.Name), zap.Error(err))
		}
		return g, true
	})
}

// passUnchecked counts a request let through without a decision. Each is
// logged at debug; at most one warning per warnEvery says how many.
func (a *Admitter) passUnchecked(route, reason, requestID string) {
	a.sink.AddAdmission(wire.ScopeGlobal, route, "", wire.Counts{FailOpen: 1})
	n := a.failOpen.Add(1)
	if ce := a.log.Check(zapcore.DebugLevel, "admission failed open"); ce != nil {
		ce.Write(zap.String(logRoute, shorten(route)), zap.String(logReason, reason), zap.String(logRequestID, shorten(requestID)))
	}
	now := a.now().UnixNano()
	last := a.lastWarn.Load()
	if last != 0 && now-last < int64(warnEvery) || !a.lastWarn.CompareAndSwap(last, now) {
		return
	}
	a.log.Warn("global admission failing open: requests pass unchecked",
		zap.String(logRoute, shorten(route)), zap.String(logReason, reason), zap.Uint64(logCount, n-a.warned.Swap(n)))
}

// shorten clips a value for a log line: key header values and request ids
// come from clients.
func shorten(s string) string {
	const n = 24
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// The header mutations of requests let through. A client-supplied copy of
// the headers is overwritten or removed, never passed on.
func passedMutation() *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{
		SetHeaders:    []*corev3.HeaderValueOption{setHeader(wire.HeaderAdmission, wire.AdmissionPassed)},
		RemoveHeaders: []string{wire.HeaderHeldMs},
	}
}

func heldMutation(waited time.Duration) *extprocv3.HeaderMutation {
	return &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
		setHeader(wire.HeaderAdmission, wire.AdmissionHeld),
		setHeader(wire.HeaderHeldMs, strconv.FormatInt(waited.Milliseconds(), 10)),
	}}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, RawValue: []byte(v)},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// continueHeaders lets the request headers through with mutation (nil: as
// they are).
func continueHeaders(mutation *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{
			Status:         extprocv3.CommonResponse_CONTINUE,
			HeaderMutation: mutation,
		}},
	}}
}

// continueFor answers any message with CONTINUE and no change (nil if req
// is nothing Envoy waits an answer for).
func continueFor(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	cont := &extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE}
	switch req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return continueHeaders(nil)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: cont}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: cont}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: cont}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

// rejectResponse answers 429 with Retry-After: retryAfter seconds (at
// least 1).
func rejectResponse(retryAfter int) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode_TooManyRequests},
		Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
			setHeader(wire.HeaderRetryAfter, strconv.Itoa(max(retryAfter, 1))),
			setHeader(wire.HeaderAdmission, wire.AdmissionRejected),
		}},
		Body:    []byte(rejectBody),
		Details: admissionDetails,
	}}}
}
