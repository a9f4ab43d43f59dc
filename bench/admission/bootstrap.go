package main

import (
	"bytes"
	"text/template"
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

// wasmFilter is one instance of the plugin in the HTTP filter chain. It is
// on by default and turned off on every route but its own.
type wasmFilter struct {
	Name   string // filter name and plugin root id
	Route  string // the one route it runs on
	Config string // the plugin's flat JSON configuration
}

// rateLimit is envoy.filters.http.local_ratelimit on one route: a token
// bucket shared by Envoy's workers, 429 when it is empty.
type rateLimit struct {
	Route      string
	MaxTokens  int
	PerFill    int
	FillPeriod string // a proto Duration, "1s"
}

type bootstrapData struct {
	ListenerPort int
	UpstreamPort int
	AccessLog    string // file of one line per request carrying headerID
	WasmPath     string // empty: no wasm filter at all
	Plugins      []wasmFilter
	RateLimits   []rateLimit
	Routes       []string
}

// A request with headerID is logged with: id, route, start (downstream
// first byte, wall clock), the time from the downstream's first byte to
// Envoy sending the request upstream (µs; "-" when it never went upstream),
// the plugin's held-ms header, and the status.
const accessLogFormat = `%REQ(X-BENCH-ID)% %ROUTE_NAME% %START_TIME(%s.%6f)% %COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)% %REQ(X-SHADOWLAB-HELD-MS)% %RESPONSE_CODE%\n`

var bootstrapTmpl = template.Must(template.New("bootstrap").Parse(`
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: bench
    address: {socket_address: {address: 127.0.0.1, port_value: {{.ListenerPort}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          access_log:
          - name: envoy.access_loggers.file
            filter: {header_filter: {header: {name: {{.AccessLogHeader}}, present_match: true}}}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {{.AccessLog}}
              log_format: {text_format_source: {inline_string: "{{.AccessLogFormat}}"}}
          route_config:
            name: bench
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
{{- range .RouteList}}
              - name: {{.Name}}
                match: {prefix: /{{.Name}}/}
                route: {cluster: upstream, timeout: 60s}
{{- if or .Disabled .RateLimit}}
                typed_per_filter_config:
{{- range .Disabled}}
                  {{.}}: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}
{{- end}}
{{- with .RateLimit}}
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: {{.Route}}
                    token_bucket: {max_tokens: {{.MaxTokens}}, tokens_per_fill: {{.PerFill}}, fill_interval: {{.FillPeriod}}}
                    filter_enabled: {runtime_key: {{.Route}}_enabled, default_value: {numerator: 100, denominator: HUNDRED}}
                    filter_enforced: {runtime_key: {{.Route}}_enforced, default_value: {numerator: 100, denominator: HUNDRED}}
{{- end}}
{{- end}}
{{- end}}
          http_filters:
{{- if .WasmPath}}
{{- range .Plugins}}
          - name: {{.Name}}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {{.Name}}
                root_id: {{.Name}}
                configuration: {"@type": type.googleapis.com/google.protobuf.StringValue, value: '{{.Config}}'}
                failure_policy: FAIL_OPEN
                vm_config: {vm_id: shadowlab, runtime: envoy.wasm.runtime.v8, code: {local: {filename: {{$.WasmPath}}}}}
{{- end}}
{{- end}}
          # No token bucket here: only routes with a per-route config are limited.
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: none
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds: [{max_connections: 100000, max_pending_requests: 100000, max_requests: 100000}]
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: {{.UpstreamPort}}}}}
`))

// routeData is one route as the template writes it.
type routeData struct {
	Name      string
	Disabled  []string // filters turned off on this route
	RateLimit *rateLimit
}

// bootstrap renders the static bootstrap of d.
func bootstrap(d bootstrapData) ([]byte, error) {
	var routes []routeData
	for _, name := range d.Routes {
		r := routeData{Name: name}
		if d.WasmPath != "" {
			for _, p := range d.Plugins {
				if p.Route != name {
					r.Disabled = append(r.Disabled, p.Name)
				}
			}
		}
		for i := range d.RateLimits {
			if d.RateLimits[i].Route == name {
				r.RateLimit = &d.RateLimits[i]
			}
		}
		routes = append(routes, r)
	}
	var b bytes.Buffer
	err := bootstrapTmpl.Execute(&b, struct {
		bootstrapData
		RouteList                        []routeData
		AccessLogHeader, AccessLogFormat string
	}{d, routes, headerID, accessLogFormat})
	return b.Bytes(), err
}
