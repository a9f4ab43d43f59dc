package main

import (
	"container/heap"
	"errors"
	"runtime"
	"strconv"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/wire"
)

// sharedKeyPrefix namespaces the plugin's states in the vm_id's shared data.
// Keys are sharedKeyPrefix + config hash + "/" + route [+ "/" + header value];
// the key count of a configuration is sharedKeyPrefix + config hash + "#keys".
const sharedKeyPrefix = "shadowlab/admission/"

// vmContext is created once per VM, that is once per Envoy worker thread
// (plus the main thread). now is injected so tests drive time; seed, if not
// zero, seeds the random source (tests), else the VM's start time does.
type vmContext struct {
	types.DefaultVMContext
	now  func() time.Time
	seed uint64
	mem  memSampler
}

// NewPluginContext is one plugin instance; its role (admission, or the
// capture of the primary's answers, the rollout) is its root id, read when
// it starts.
func (v *vmContext) NewPluginContext(contextID uint32) types.PluginContext {
	return &rootContext{vm: v, id: contextID}
}

// rootContext is a plugin instance in the role its root id names.
type rootContext struct {
	types.DefaultPluginContext
	vm   *vmContext
	id   uint32
	role types.PluginContext
}

func (r *rootContext) OnPluginStart(n int) types.OnPluginStartStatus {
	rootID, _ := proxywasm.GetProperty([]string{"plugin_root_id"})
	switch string(rootID) {
	case wire.CaptureRootID:
		r.role = newCaptureContext(r.vm)
	case wire.RolloutRootID:
		r.role = &rolloutContext{}
	default:
		r.role = r.vm.newAdmission(r.id)
	}
	return r.role.OnPluginStart(n)
}

func (r *rootContext) OnTick()            { r.role.OnTick() }
func (r *rootContext) OnPluginDone() bool { return r.role.OnPluginDone() }
func (r *rootContext) NewHttpContext(id uint32) types.HttpContext {
	return r.role.NewHttpContext(id)
}

// newAdmission is the admission role of plugin contextID.
func (v *vmContext) newAdmission(contextID uint32) *pluginContext {
	seed := v.seed
	if seed == 0 {
		// Workers start at different nanoseconds; the context id separates
		// plugins of one VM. (crypto/rand would add to the module size.)
		seed = uint64(time.Now().UnixNano()) ^ uint64(contextID)*0xd1b54a32d192ed03
	}
	return &pluginContext{
		now:  v.now,
		mem:  &v.mem,
		rnd:  &rng{s: seed},
		held: map[uint32]heldRequest{},

		reporter: reporter{dispatch: proxywasm.DispatchHttpCall},
	}
}

// memSampler publishes this VM's Go memory to Envoy stats, at most once a
// second, from whichever plugin ticks first. Gauges are shared by all VMs,
// so each VM adds the change of its own values: the gauges read as the sum
// over the VMs.
type memSampler struct {
	lastMs              int64
	heap, sys           int64
	numGC               uint32
	heapGauge, sysGauge proxywasm.MetricGauge
	gcCounter           proxywasm.MetricCounter
	defined             bool
}

func (m *memSampler) sample(nowMs int64) {
	if nowMs-m.lastMs < 1000 {
		return
	}
	m.lastMs = nowMs
	if !m.defined {
		m.heapGauge = proxywasm.DefineGaugeMetric("shadowlab_vm_heap_bytes")
		m.sysGauge = proxywasm.DefineGaugeMetric("shadowlab_vm_sys_bytes")
		m.gcCounter = proxywasm.DefineCounterMetric("shadowlab_vm_gc")
		m.defined = true
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	add(m.heapGauge, int64(ms.HeapAlloc)-m.heap)
	add(m.sysGauge, int64(ms.Sys)-m.sys)
	inc(m.gcCounter, uint64(ms.NumGC-m.numGC))
	m.heap, m.sys, m.numGC = int64(ms.HeapAlloc), int64(ms.Sys), ms.NumGC
}

// pluginContext is the root context of one plugin in one VM. The held
// requests are per VM (a worker resumes only its own streams); the budget
// states are in shared data, common to all workers.
type pluginContext struct {
	types.DefaultPluginContext
	now   func() time.Time
	mem   *memSampler
	rnd   *rng
	cfg   config
	store *store
	keys  string // sharedKeyPrefix + config hash + "/"

	held  map[uint32]heldRequest // by context id
	queue releaseQueue           // same requests ordered by release time; stale entries skipped

	// outcomes are the admission counts not yet reported; reporter sends
	// them (report.go).
	outcomes outcomes
	reporter reporter

	metrics metrics
}

// metrics are Envoy stats (custom metrics appear with the "wasmcustom."
// prefix). VMs that define the same name share one stat.
type metrics struct {
	passed         proxywasm.MetricCounter
	held           proxywasm.MetricCounter
	released       proxywasm.MetricCounter
	rejected       proxywasm.MetricCounter
	heldFull       proxywasm.MetricCounter
	observedDelay  proxywasm.MetricCounter
	observedReject proxywasm.MetricCounter
	abandoned      proxywasm.MetricCounter
	failOpen       proxywasm.MetricCounter
	keysFull       proxywasm.MetricCounter
	casRetries     proxywasm.MetricCounter
	gcRuns         proxywasm.MetricCounter
	reports        proxywasm.MetricCounter
	reportFailed   proxywasm.MetricCounter
	heldNow        proxywasm.MetricGauge
	delayMs        proxywasm.MetricHistogram
}

// inc and add skip zero: Envoy answers BadArgument to a zero increment, and
// the SDK panics on any metric error, which kills the VM.
func inc(c proxywasm.MetricCounter, n uint64) {
	if n > 0 {
		c.Increment(n)
	}
}

func add(g proxywasm.MetricGauge, d int64) {
	if d != 0 {
		g.Add(d)
	}
}

func defineMetrics() metrics {
	c := func(name string) proxywasm.MetricCounter {
		return proxywasm.DefineCounterMetric("shadowlab_admission_" + name)
	}
	return metrics{
		passed:         c("passed"),
		held:           c("held"),
		released:       c("released"),
		rejected:       c("rejected"),
		heldFull:       c("held_full"),
		observedDelay:  c("observed_delay"),
		observedReject: c("observed_reject"),
		abandoned:      c("abandoned"),
		failOpen:       c("fail_open"),
		keysFull:       c("fail_open_keys_full"),
		casRetries:     c("cas_retries"),
		gcRuns:         c("gc_runs"),
		reports:        c("reports"),
		reportFailed:   c("report_failed"),
		heldNow:        proxywasm.DefineGaugeMetric("shadowlab_admission_held_now"),
		delayMs:        proxywasm.DefineHistogramMetric("shadowlab_admission_delay_ms"),
	}
}

func (p *pluginContext) OnPluginStart(int) (status types.OnPluginStartStatus) {
	defer func() {
		if r := recover(); r != nil {
			p.onPanic("plugin start", r)
			status = types.OnPluginStartStatusFailed
		}
	}()
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCritical("shadowlab: reading plugin configuration: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	cfg, err := parseConfig(data)
	if err != nil {
		proxywasm.LogCritical("shadowlab: " + logConfigError(err))
		return types.OnPluginStartStatusFailed
	}
	p.cfg = cfg
	p.keys = sharedKeyPrefix + cfg.hash() + "/"
	p.store = &store{
		get:     proxywasm.GetSharedData,
		set:     proxywasm.SetSharedData,
		cfg:     cfg.adm,
		rnd:     p.rnd,
		keysKey: sharedKeyPrefix + cfg.hash() + "#keys",
		maxKeys: cfg.MaxKeys,
		known:   map[string]struct{}{},
	}
	if err := p.store.init(); err != nil {
		proxywasm.LogWarn("shadowlab: creating the key registry in shared data: " + err.Error())
	}
	p.outcomes = newOutcomes(cfg.ReportCluster != "", cfg.MaxKeys)
	p.metrics = defineMetrics()
	if err := proxywasm.SetTickPeriodMilliSeconds(cfg.TickMs); err != nil {
		proxywasm.LogCritical("shadowlab: setting tick period: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	return &httpContext{id: contextID, plugin: p}
}

// OnTick lets the held requests whose release time has come go, earliest
// first. Each release is counted in the key's budget when it happens
// (store.release): if the window is full (ticks came late, the worker was
// stalled) the request waits for room, as long as MaxDelay since it
// arrived allows, and is answered 429 past that. A request whose key
// another worker was creating is decided now. A stream that vanished
// without OnHttpStreamDone is counted as abandoned. First it reports the
// outcomes, if that is due.
func (p *pluginContext) OnTick() {
	defer func() {
		if r := recover(); r != nil {
			p.onPanic("tick", r)
		}
	}()
	now := p.now()
	p.mem.sample(now.UnixMilli())
	// Before the releases: they leave a stream as the effective context,
	// and the SDK's emulator would then file the report's callback under
	// that stream. (Envoy makes the call on the root context either way.)
	p.report(now.UnixMilli())
	nowNs := now.UnixNano()
	for p.queue.Len() > 0 && p.queue[0].releaseNs <= nowNs {
		r := heap.Pop(&p.queue).(heldRequest)
		if due, ok := p.held[r.id]; !ok || due.releaseNs != r.releaseNs {
			continue // dropped by OnHttpStreamDone, or rescheduled
		}
		counts := p.outcomes.at(r.route, r.key)
		wait, retryAfter := p.releaseWait(&r, now)
		if wait > 0 {
			r.releaseNs = nowNs + int64(wait)
			p.held[r.id] = r
			heap.Push(&p.queue, r)
			continue
		}
		delete(p.held, r.id)
		add(p.metrics.heldNow, -1)
		if err := proxywasm.SetEffectiveContext(r.id); err != nil {
			inc(p.metrics.abandoned, 1)
			counts.Abandoned++
			continue
		}
		if retryAfter > 0 && p.refuseHeld(counts, retryAfter) {
			continue
		}
		waited := time.Duration(nowNs - r.heldAtNs)
		heldMs := waited.Milliseconds()
		_ = proxywasm.ReplaceHttpRequestHeader(wire.HeaderHeldMs, strconv.FormatInt(heldMs, 10))
		if err := proxywasm.ResumeHttpRequest(); err != nil {
			inc(p.metrics.abandoned, 1)
			counts.Abandoned++
			proxywasm.LogWarn("shadowlab: resuming a held request: " + err.Error())
			continue
		}
		inc(p.metrics.released, 1)
		counts.Released(waited)
		p.metrics.delayMs.Record(uint64(max(heldMs, 0)))
	}
}

// maxCreatingTicks bounds how many ticks a request waits for another
// worker to create its key (a 64-bit hash collision would make it wait
// for ever): then it goes on unchecked, counted as failed open.
const maxCreatingTicks = 50

// releaseWait says what becomes of the due held request r at now: go now
// (0, 0); wait that long and ask again (wait > 0; r is updated); or be
// refused with that Retry-After (0, retryAfter > 0).
func (p *pluginContext) releaseWait(r *heldRequest, now time.Time) (wait time.Duration, retryAfter int) {
	tick := time.Duration(p.cfg.TickMs) * time.Millisecond
	if r.creating > 0 {
		d, retries, err := p.store.decide(r.budget, now)
		inc(p.metrics.casRetries, uint64(retries))
		switch {
		case errors.Is(err, errCreating) && r.creating < maxCreatingTicks:
			r.creating++
			return tick, 0
		case err != nil:
			inc(p.metrics.failOpen, 1)
			return 0, 0
		}
		r.creating = 0
		switch d.Action {
		case admission.Delay:
			if d.Delay >= tick {
				return d.Delay, 0
			}
			// A sub-tick delay: go now if the window has room.
		case admission.Reject:
			return 0, d.RetryAfter
		default:
			return 0, 0 // counted by Decide
		}
	}
	wait, retries, err := p.store.release(r.budget, now)
	inc(p.metrics.casRetries, uint64(retries))
	switch {
	case err != nil || wait == 0:
		return 0, 0 // an error lets it go: its slot was taken at its decision
	case now.UnixNano()+int64(wait)-r.heldAtNs > int64(p.cfg.adm.MaxDelay):
		return 0, admission.Seconds(wait)
	}
	return wait, 0
}

// refuseHeld answers the held request of the effective context 429 with a
// Retry-After, after its hold: counted Rejected at its end. It reports
// false if the answer could not be sent (the request then goes on).
func (p *pluginContext) refuseHeld(counts *wire.Counts, retryAfter int) bool {
	if err := sendReject(retryAfter); err != nil {
		proxywasm.LogWarn("shadowlab: sending 429 after a hold: " + err.Error())
		return false
	}
	inc(p.metrics.rejected, 1)
	counts.Rejected++
	return true
}

// budgetKey names the shared state of this request: per configuration,
// route, and value of the configured key header. It returns the route and
// header value too ("" when the budget is per route), which name the
// request's line in the reports. The route is the configured policy route,
// else Envoy's route name, else "-".
func (p *pluginContext) budgetKey() (budget, route, value string) {
	route = p.cfg.Route
	if route == "" {
		route = "-"
		if b, err := proxywasm.GetProperty([]string{"xds", "route_name"}); err == nil && len(b) > 0 {
			route = string(b)
		}
	}
	budget = p.keys + route
	if p.cfg.KeyHeader != "" {
		value, _ = proxywasm.GetHttpRequestHeader(p.cfg.KeyHeader)
		budget += "/" + value
	}
	return budget, route, value
}

// httpContext is one HTTP stream.
type httpContext struct {
	types.DefaultHttpContext
	id     uint32
	plugin *pluginContext
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) (action types.Action) {
	p := h.plugin
	defer func() {
		if r := recover(); r != nil {
			p.onPanic("request headers", r)
			action = types.ActionContinue // fail open
		}
	}()
	if p.cfg.EnvoyRoutes != "" && !wire.InRoutes(p.cfg.EnvoyRoutes, envoyRoute()) {
		return types.ActionContinue
	}
	now := p.now()
	h.stampRequestID()
	budget, route, value := p.budgetKey()
	counts := p.outcomes.at(route, value)
	d, retries, err := p.store.decide(budget, now)
	inc(p.metrics.casRetries, uint64(retries))
	if errors.Is(err, errCreating) {
		// Another worker is creating the key: decide on the next tick.
		if uint32(len(p.held)) >= p.cfg.MaxHeld {
			inc(p.metrics.heldFull, 1)
			return h.reject(counts, 1)
		}
		counts.Delayed++
		return h.hold(now, 0, heldRequest{budget: budget, route: route, key: value, creating: 1})
	}
	if err != nil {
		inc(p.metrics.failOpen, 1)
		counts.FailOpen++
		if errors.Is(err, errKeysFull) {
			inc(p.metrics.keysFull, 1)
		} else {
			proxywasm.LogWarn("shadowlab: deciding on a request, passing it: " + err.Error())
		}
		return h.pass()
	}
	if d.Observed {
		switch d.Outcome {
		case admission.Delay:
			inc(p.metrics.observedDelay, 1)
			counts.ObservedDelay++
		case admission.Reject:
			inc(p.metrics.observedReject, 1)
			counts.ObservedReject++
		}
	}
	switch d.Action {
	case admission.Delay:
		if uint32(len(p.held)) >= p.cfg.MaxHeld {
			// The slot stays taken: refusing is safe for the upstream.
			inc(p.metrics.heldFull, 1)
			return h.reject(counts, admission.Seconds(d.Delay))
		}
		if tick := time.Duration(p.cfg.TickMs) * time.Millisecond; d.Delay < tick {
			// Due before the next tick: go now if the window has room,
			// rather than a tick late.
			wait, retries, err := p.store.release(budget, now)
			inc(p.metrics.casRetries, uint64(retries))
			if err == nil && wait == 0 {
				counts.Admitted++
				return h.pass()
			}
		}
		counts.Delayed++
		return h.hold(now, d.Delay, heldRequest{budget: budget, route: route, key: value})
	case admission.Reject:
		return h.reject(counts, d.RetryAfter)
	}
	counts.Admitted++
	return h.pass()
}

// stampRequestID sets x-request-id on a request that has none (or an
// empty one): a random UUID-v4-shaped string from the plugin's rng.
func (h *httpContext) stampRequestID() {
	if v, err := proxywasm.GetHttpRequestHeader(wire.HeaderRequestID); err == nil && v != "" {
		return
	}
	_ = proxywasm.ReplaceHttpRequestHeader(wire.HeaderRequestID, newRequestID(h.plugin.rnd))
}

// newRequestID is a random UUID-v4-shaped string: 32 lowercase hex digits
// in groups of 8-4-4-4-12, version nibble 4, variant bits 10. Not
// cryptographic (SplitMix64; crypto/rand would add to the module).
func newRequestID(r *rng) string {
	const hex = "0123456789abcdef"
	hi := r.Uint64()&^(0xf<<12) | 0x4<<12
	lo := r.Uint64()&^(0x3<<62) | 0x2<<62
	var b [36]byte
	j := 0
	for i := range 32 {
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b[j] = '-'
			j++
		}
		var nibble uint64
		if i < 16 {
			nibble = hi >> (60 - 4*i) & 0xf
		} else {
			nibble = lo >> (60 - 4*(i-16)) & 0xf
		}
		b[j] = hex[nibble]
		j++
	}
	return string(b[:])
}

func (h *httpContext) pass() types.Action {
	_ = proxywasm.ReplaceHttpRequestHeader(wire.HeaderAdmission, wire.AdmissionPassed)
	inc(h.plugin.metrics.passed, 1)
	return types.ActionContinue
}

// hold pauses the request r (its budget and report line filled in) until
// OnTick releases it at now+delay, or decides on it then if r.creating.
func (h *httpContext) hold(now time.Time, delay time.Duration, r heldRequest) types.Action {
	p := h.plugin
	_ = proxywasm.ReplaceHttpRequestHeader(wire.HeaderAdmission, wire.AdmissionHeld)
	at := now.UnixNano()
	r.id, r.releaseNs, r.heldAtNs = h.id, at+int64(delay), at
	p.held[h.id] = r
	heap.Push(&p.queue, r)
	inc(p.metrics.held, 1)
	add(p.metrics.heldNow, 1)
	return types.ActionPause
}

// reject answers 429 with Retry-After in whole seconds (at least 1), and
// counts the request as rejected, or as failed open if the 429 could not
// be sent.
func (h *httpContext) reject(counts *wire.Counts, retryAfter int) types.Action {
	if err := sendReject(retryAfter); err != nil {
		proxywasm.LogWarn("shadowlab: sending 429: " + err.Error())
		inc(h.plugin.metrics.failOpen, 1)
		counts.FailOpen++
		return h.pass()
	}
	inc(h.plugin.metrics.rejected, 1)
	counts.Rejected++
	return types.ActionPause
}

// sendReject sends the effective context's request a 429 with Retry-After
// in whole seconds (at least 1).
func sendReject(retryAfter int) error {
	return proxywasm.SendHttpResponse(429, [][2]string{
		{wire.HeaderRetryAfter, strconv.Itoa(max(retryAfter, 1))},
		{wire.HeaderAdmission, wire.AdmissionRejected},
	}, []byte("too many requests\n"), -1)
}

// OnHttpRequestBody keeps a held request held while its body arrives. With
// allow_on_headers_stop_iteration Envoy keeps calling the filter with body
// data, and a Continue here would release the request at once (seen on
// Envoy 1.40). Envoy buffers the body meanwhile, up to the buffer limit.
func (h *httpContext) OnHttpRequestBody(int, bool) types.Action {
	if _, held := h.plugin.held[h.id]; held {
		return types.ActionPause
	}
	return types.ActionContinue
}

// OnHttpStreamDone drops the state of a request the client abandoned while
// it was held, and optionally runs the GC off the request path.
func (h *httpContext) OnHttpStreamDone() {
	p := h.plugin
	defer func() {
		if r := recover(); r != nil {
			p.onPanic("stream done", r)
		}
	}()
	if r, ok := p.held[h.id]; ok {
		delete(p.held, h.id)
		add(p.metrics.heldNow, -1)
		inc(p.metrics.abandoned, 1)
		p.outcomes.at(r.route, r.key).Abandoned++
	}
	if p.cfg.GCHeapBytes > 0 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc >= p.cfg.GCHeapBytes {
			runtime.GC()
			inc(p.metrics.gcRuns, 1)
		}
	}
}

// onPanic logs a panic recovered in a callback. An unrecovered panic traps
// the VM ("Uncaught RuntimeError: unreachable"): Envoy then fails every
// later request open or closed (failure_policy) until the VM is recreated.
func (p *pluginContext) onPanic(where string, r any) { logPanic(where, r) }

// logPanic logs a panic recovered in a callback.
func logPanic(where string, r any) {
	msg := "unknown value"
	switch v := r.(type) {
	case string:
		msg = v
	case error:
		msg = v.Error()
	}
	proxywasm.LogError("shadowlab: recovered panic in " + where + ": " + msg)
}

// heldRequest is one held request (an entry of the release queue).
type heldRequest struct {
	id                  uint32
	releaseNs, heldAtNs int64  // unix ns
	budget              string // its shared-data key
	route, key          string // its line in the reports
	// creating counts the ticks it has waited, undecided, for another
	// worker to create its key; 0 once decided.
	creating int
}

// releaseQueue is a min-heap of held requests by release time (then id, so
// the order is deterministic).
type releaseQueue []heldRequest

func (q releaseQueue) Len() int { return len(q) }
func (q releaseQueue) Less(i, j int) bool {
	if q[i].releaseNs != q[j].releaseNs {
		return q[i].releaseNs < q[j].releaseNs
	}
	return q[i].id < q[j].id
}
func (q releaseQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *releaseQueue) Push(x any)   { *q = append(*q, x.(heldRequest)) }
func (q *releaseQueue) Pop() any {
	old := *q
	r := old[len(old)-1]
	*q = old[:len(old)-1]
	return r
}
