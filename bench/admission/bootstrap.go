package main

import (
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// Routes of the benchmark's one listener, by path prefix. Each is also the
// Envoy route name, which the plugin uses as its budget key.
const (
	routeWarm  = "warm"  // no admission: opens the client's connections before a burst
	routePlain = "plain" // no admission
	routeCost  = "cost"  // the plugin with a limit it never reaches
	routeLRL   = "lrl"   // envoy.filters.http.local_ratelimit, 429 over the limit
	routeDelay = "delay" // the plugin in delay mode
	routeRetry = "retry" // local_ratelimit again (its own bucket), for clients that retry
)

// headerID carries a burst request's id (arm/index/attempt); the upstream
// and Envoy's access log record it, so both sides can be joined.
const headerID = "x-bench-id"

// Headers the plugin sets on the requests it forwards (wasm/plugin.go),
// and the upstream's echo of the first on its answer.
const (
	headerAdmission     = "x-shadowlab-admission"
	headerHeldMs        = "x-shadowlab-held-ms"
	headerEchoAdmission = "x-bench-admission"
)

// pluginStat prefixes the plugin's counters in Envoy's stats (summed over
// its VMs).
const pluginStat = "wasmcustom.shadowlab_admission_"

// A request with headerID is logged with: id, route, start (downstream
// first byte, wall clock), the time from the downstream's first byte to
// Envoy sending the request upstream (µs; "-" when it never went upstream),
// the plugin's held-ms header, and the status.
const accessLogFormat = `%REQ(X-BENCH-ID)% %ROUTE_NAME% %START_TIME(%s.%6f)% %COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)% %REQ(X-SHADOWLAB-HELD-MS)% %RESPONSE_CODE%` + "\n"

// staticConfig is the benchmark's Envoy: one listener at addr, one route
// per arm to the upstream at upstream, the plugin's two instances and
// local_ratelimit each on its own routes, and the access log.
func staticConfig(cfg config, addr, upstream, accessLog string) harness.StaticConfig {
	limit := &harness.RateLimit{MaxTokens: cfg.limit, PerFill: cfg.limit, Fill: time.Second}
	route := func(name string) harness.Route {
		return harness.Route{Name: name, Prefix: "/" + name + "/", Cluster: "upstream"}
	}
	cost, delay, lrl, retry := route(routeCost), route(routeDelay), route(routeLRL), route(routeRetry)
	cost.Plugin = &harness.Plugin{Name: "shadowlab-cost", Config: cfg.costConfig}
	delay.Plugin = &harness.Plugin{Name: "shadowlab-delay", Config: cfg.delayConfig}
	lrl.RateLimit, retry.RateLimit = limit, limit
	return harness.StaticConfig{
		Listeners: []harness.Listener{{
			Name: "bench", Address: addr,
			Routes:    []harness.Route{route(routeWarm), route(routePlain), cost, lrl, delay, retry},
			AccessLog: &harness.AccessLog{Path: accessLog, Header: headerID, Format: accessLogFormat},
		}},
		Clusters: []harness.Cluster{{Name: "upstream", Address: upstream}},
	}
}
