package main

import (
	"slices"
	"strconv"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/shadowlab/shadowlab/wire"
)

// Outcome reports. Each plugin context (one per worker VM and plugin)
// aggregates wire.Counts per route and key and, from OnTick, POSTs
// them to the control plane as NDJSON, one line per route and key (see
// appendReport). One call at a time; a batch that was not delivered is
// merged back into the pending counts, so nothing is lost while the
// control plane is down, and nothing about it touches the requests.

const (
	// otherKey aggregates the keys beyond max_keys of one route.
	otherKey = "(other)"
	// reportTimeoutMs is the timeout of the report call.
	reportTimeoutMs = 2000
)

// outcomeCounts are wire.Counts by route (of the budget key) and key
// (the key header value, "" when the budget is per route): one report line
// each.
// Nested maps keyed by strings use the runtime's string-key fast paths; a
// struct key would add the generic map code to the module.
type outcomeCounts map[string]map[string]*wire.Counts

// lines is the number of route and key pairs.
func (cs outcomeCounts) lines() int {
	n := 0
	for _, keys := range cs {
		n += len(keys)
	}
	return n
}

// outcomes are the counts not yet delivered. At most maxKeys distinct keys;
// beyond that a route's new keys count under otherKey. Not safe for
// concurrent use, like a VM.
type outcomes struct {
	maxKeys int
	pending outcomeCounts // nil: reporting is off
	keys    int           // lines of pending whose key is not otherKey
	discard wire.Counts   // where counts go when reporting is off
}

func newOutcomes(on bool, maxKeys uint32) outcomes {
	o := outcomes{maxKeys: int(maxKeys)}
	if on {
		o.pending = outcomeCounts{}
	}
	return o
}

// at returns the counts of route and key, created if needed.
func (o *outcomes) at(route, key string) *wire.Counts {
	if o.pending == nil {
		return &o.discard
	}
	keys := o.pending[route]
	if keys == nil {
		keys = map[string]*wire.Counts{}
		o.pending[route] = keys
	}
	c := keys[key]
	if c == nil && key != otherKey && o.keys >= o.maxKeys {
		key = otherKey
		c = keys[key]
	}
	if c == nil {
		if key != otherKey {
			o.keys++
		}
		c = new(wire.Counts)
		keys[key] = c
	}
	return c
}

// take returns the pending counts and starts afresh.
func (o *outcomes) take() outcomeCounts {
	batch := o.pending
	o.pending = outcomeCounts{}
	o.keys = 0
	return batch
}

// merge adds an undelivered batch back into the pending counts, under the
// same key bound.
func (o *outcomes) merge(batch outcomeCounts) {
	for route, keys := range batch {
		for key, c := range keys {
			o.at(route, key).Add(*c)
		}
	}
}

// appendReport appends batch as a report body (wire.AppendReportLine), one
// line per route and key sorted by route then key.
func appendReport(b []byte, batch outcomeCounts) []byte {
	routes := make([]string, 0, len(batch))
	for route := range batch {
		routes = append(routes, route)
	}
	slices.Sort(routes)
	var keys []string
	for _, route := range routes {
		keys = keys[:0]
		for key := range batch[route] {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		for _, key := range keys {
			b = wire.AppendReportLine(b, route, key, batch[route][key])
		}
	}
	return b
}

// dispatchFunc is proxywasm.DispatchHttpCall; tests pass one that fails
// (the emulator's never does).
type dispatchFunc func(cluster string, headers [][2]string, body []byte, trailers [][2]string,
	timeoutMs uint32, callback func(numHeaders, bodySize, numTrailers int)) (calloutID uint32, err error)

// reporter is the state of the report calls of one plugin context.
type reporter struct {
	dispatch dispatchFunc
	lastMs   int64         // when the last call was attempted, unix ms
	inflight outcomeCounts // the batch of the call in flight, nil if none
	failing  bool          // the last call failed (logged once per outage)
}

// report sends the pending counts to the control plane if reporting is on,
// no call is in flight, report_ms have passed since the last attempt and
// something was counted. Called from OnTick.
func (p *pluginContext) report(nowMs int64) {
	r := &p.reporter
	if p.cfg.ReportCluster == "" || r.inflight != nil || p.outcomes.pending.lines() == 0 ||
		nowMs-r.lastMs < int64(p.cfg.ReportMs) {
		return
	}
	r.lastMs = nowMs
	batch := p.outcomes.take()
	body := appendReport(nil, batch)
	headers := [][2]string{
		{":method", "POST"},
		{":path", p.cfg.ReportPath},
		{":authority", p.cfg.ReportAuthority},
		{"content-type", wire.ReportContentType},
	}
	r.inflight = batch
	_, err := r.dispatch(p.cfg.ReportCluster, headers, body, nil, reportTimeoutMs,
		func(numHeaders, _, _ int) { p.onReportResponse(numHeaders) })
	if err != nil {
		p.reportFailed("dispatch: " + err.Error())
	}
}

// onReportResponse ends the call in flight: delivered on a 2xx, else (an
// error status, or no headers: timeout or reset) merged back.
func (p *pluginContext) onReportResponse(numHeaders int) {
	defer func() {
		if r := recover(); r != nil {
			p.onPanic("report response", r)
			p.outcomes.merge(p.reporter.inflight)
			p.reporter.inflight = nil
		}
	}()
	if p.reporter.inflight == nil {
		return
	}
	status := ""
	if numHeaders > 0 {
		headers, err := proxywasm.GetHttpCallResponseHeaders()
		if err == nil {
			for _, h := range headers {
				if h[0] == ":status" {
					status = h[1]
				}
			}
		}
	}
	if n, err := strconv.Atoi(status); err != nil || n < 200 || n > 299 {
		if status == "" {
			status = "none (timeout or reset)"
		}
		p.reportFailed("status " + status)
		return
	}
	p.reporter.inflight = nil
	p.reporter.failing = false
	inc(p.metrics.reports, 1)
}

// reportFailed merges the batch in flight back into the pending counts and
// counts the failure; the first failure since start or since the last
// delivery is logged.
func (p *pluginContext) reportFailed(why string) {
	r := &p.reporter
	p.outcomes.merge(r.inflight)
	r.inflight = nil
	inc(p.metrics.reportFailed, 1)
	if !r.failing {
		r.failing = true
		proxywasm.LogWarn("shadowlab: admission outcomes not delivered to cluster " + p.cfg.ReportCluster +
			" (kept for the next report): " + why)
	}
}
