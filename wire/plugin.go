package wire

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
)

// PluginConfig is the configuration of one instance of the admission
// plugin: Envoy passes it as PluginConfig.configuration, a
// google.protobuf.StringValue holding a flat JSON object. The control plane
// writes it with AppendJSON and the plugin reads it with ParsePluginConfig;
// field names are the JSON ones (wasm/README.md has the table).
type PluginConfig struct {
	// Route is the policy route, used in the budget key and the reports
	// instead of Envoy's route name: the Envoy routes a policy route expands
	// into share one budget. "": the plugin reads xds.route_name.
	Route string
	// Limit is the number of requests admitted per window and key.
	Limit uint32
	// WindowMs is the sliding window. Default 1000.
	WindowMs uint32
	// MaxDelayMs is the longest a request may be held (0 with mode reject).
	MaxDelayMs uint32
	// Mode is "delay", "reject" or "observe" (admission.ParseMode). Default
	// "delay".
	Mode string
	// KeyHeader splits the budget per value of this request header; "" is
	// one budget for the route.
	KeyHeader string
	// TickMs is the OnTick period that releases held requests. Default
	// DefaultTickMs.
	TickMs uint32
	// SlackMs is how late a held request may reach the upstream after its
	// delay (admission.Config.Slack), at least TickMs. Default TickMs.
	SlackMs uint32
	// MaxHeld bounds the requests held per worker VM. Default 10 000.
	MaxHeld uint32
	// MaxKeys bounds the distinct budget keys in shared data and the keys
	// one plugin context reports. Default 1 000.
	MaxKeys uint32
	// GCHeapBytes, if set, makes the plugin run the Go GC after a request
	// when its heap exceeds this.
	GCHeapBytes uint64
	// ReportCluster is the Envoy cluster that receives the outcome reports
	// (ReportLine); "" turns reports off.
	ReportCluster string
	// ReportPath is the :path of the report POST. Default ReportPath.
	ReportPath string
	// ReportAuthority is its :authority. Default ReportAuthority.
	ReportAuthority string
	// ReportMs is the shortest interval between two reports of one plugin
	// context, at least TickMs. Default 1000.
	ReportMs uint32
	// EnvoyRoutes, comma-separated, are the Envoy route names (the xds
	// route_name property) whose requests the instance handles; others it
	// lets through untouched. "" is every request the instance sees: where
	// the control plane enables the instance per route (shadowlab's, Envoy
	// Gateway's), not where one instance sees a whole workload (Istio).
	EnvoyRoutes string
}

// Defaults of the plugin configuration, and where reports go.
const (
	DefaultTickMs   = 20
	DefaultWindowMs = 1000
	DefaultMaxHeld  = 10_000
	DefaultMaxKeys  = 1_000
	DefaultReportMs = 1000
	DefaultMode     = "delay"

	// ReportPath is the API path that takes the plugin's reports.
	ReportPath = "/api/v1/admission/local"
	// ReportAuthority is the :authority of the plugin's report calls.
	ReportAuthority = "shadowlab"
	// ReportContentType is the content-type of a report body.
	ReportContentType = "application/x-ndjson"
)

// pluginField is one JSON field of PluginConfig: its name, and the field
// as a pointer to a string, a uint32 or a uint64. Written in this order;
// the fields before the first optional one are always written.
type pluginField struct {
	name     string
	str      *string
	u32      *uint32
	u64      *uint64
	optional bool
	// perRoute marks a CaptureConfig field set per Envoy route (route
	// metadata), not per instance.
	perRoute bool
}

func (c *PluginConfig) fields() []pluginField {
	return []pluginField{
		{name: "route", str: &c.Route, optional: true},
		{name: "limit", u32: &c.Limit},
		{name: "window_ms", u32: &c.WindowMs},
		{name: "max_delay_ms", u32: &c.MaxDelayMs},
		{name: "mode", str: &c.Mode},
		{name: "key_header", str: &c.KeyHeader, optional: true},
		{name: "tick_ms", u32: &c.TickMs},
		{name: "slack_ms", u32: &c.SlackMs},
		{name: "report_cluster", str: &c.ReportCluster, optional: true},
		{name: "report_path", str: &c.ReportPath, optional: true},
		{name: "report_authority", str: &c.ReportAuthority, optional: true},
		{name: "report_ms", u32: &c.ReportMs, optional: true},
		{name: "max_held", u32: &c.MaxHeld, optional: true},
		{name: "max_keys", u32: &c.MaxKeys, optional: true},
		{name: "gc_heap_bytes", u64: &c.GCHeapBytes, optional: true},
		{name: "envoy_routes", str: &c.EnvoyRoutes, optional: true},
	}
}

// AppendJSON appends c as the plugin reads it: the mandatory fields
// always, the optional ones when set, in a fixed order.
func (c PluginConfig) AppendJSON(b []byte) []byte { return appendFields(b, c.fields()) }

// appendFields writes fields as a flat JSON object.
func appendFields(b []byte, fields []pluginField) []byte {
	sep := byte('{')
	for _, f := range fields {
		switch {
		case f.str != nil && (*f.str != "" || !f.optional):
			b = append(b, sep)
			b = appendJSONString(b, f.name)
			b = appendJSONString(append(b, ':'), *f.str)
		case f.u32 != nil && (*f.u32 != 0 || !f.optional):
			b = append(b, sep)
			b = appendJSONString(b, f.name)
			b = strconv.AppendUint(append(b, ':'), uint64(*f.u32), 10)
		case f.u64 != nil && (*f.u64 != 0 || !f.optional):
			b = append(b, sep)
			b = appendJSONString(b, f.name)
			b = strconv.AppendUint(append(b, ':'), *f.u64, 10)
		default:
			continue
		}
		sep = ','
	}
	if sep == '{' {
		b = append(b, '{')
	}
	return append(b, '}')
}

// parseFields reads a flat JSON object into fields: every type problem and
// unknown field, each as "<at>.<field>: ..." (at is "configuration" for a
// plugin configuration).
func parseFields(data []byte, fields []pluginField, at, needs string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New(at + ": empty, need at least " + needs)
	}
	values, err := parseFlatObject(data)
	if err != nil {
		return errors.New(at + ": " + err.Error())
	}
	byName := map[string]pluginField{}
	for _, f := range fields {
		byName[f.name] = f
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	slices.Sort(names) // errors in a stable order
	var errs []error
	for _, k := range names {
		f, ok := byName[k]
		if !ok {
			errs = append(errs, errors.New(at+"."+k+": unknown field"))
			continue
		}
		if err := f.set(values[k]); err != nil {
			errs = append(errs, errors.New(at+"."+k+": "+err.Error()))
		}
	}
	return errors.Join(errs...)
}

// ParsePluginConfig reads a configuration written by AppendJSON (or by
// hand), applies the defaults and checks what does not depend on the
// admission algorithm: types, unknown fields, the tick and the report. It
// reports every problem at once, each as "configuration.<field>: ...".
// The budget itself (limit, window, delay, mode, slack) is checked by the
// plugin with admission.Config.Validate.
func ParsePluginConfig(data []byte) (PluginConfig, error) {
	var c PluginConfig
	if err := parseFields(data, c.fields(), "configuration", `{"limit": N, "max_delay_ms": N}`); err != nil {
		return c, err
	}
	var errs []error
	c.defaults()
	if c.SlackMs < c.TickMs {
		errs = append(errs, notBelowTick("slack_ms", c.SlackMs, c.TickMs))
	}
	if c.ReportMs < c.TickMs {
		errs = append(errs, notBelowTick("report_ms", c.ReportMs, c.TickMs))
	}
	if c.ReportPath[0] != '/' {
		errs = append(errs, errors.New("configuration.report_path: must start with / (got "+strconv.Quote(c.ReportPath)+")"))
	}
	return c, errors.Join(errs...)
}

func (c *PluginConfig) defaults() {
	if c.WindowMs == 0 {
		c.WindowMs = DefaultWindowMs
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.TickMs == 0 {
		c.TickMs = DefaultTickMs
	}
	if c.SlackMs == 0 {
		c.SlackMs = c.TickMs
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = DefaultMaxHeld
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.ReportPath == "" {
		c.ReportPath = ReportPath
	}
	if c.ReportAuthority == "" {
		c.ReportAuthority = ReportAuthority
	}
	if c.ReportMs == 0 {
		c.ReportMs = DefaultReportMs
	}
}

// zero reports whether f holds its zero value (is unset).
func (f pluginField) zero() bool {
	switch {
	case f.str != nil:
		return *f.str == ""
	case f.u32 != nil:
		return *f.u32 == 0
	}
	return *f.u64 == 0
}

func (f pluginField) set(v jsonValue) error {
	switch {
	case f.str != nil:
		if !v.isText {
			return errors.New("must be a string")
		}
		*f.str = v.str
	case f.u32 != nil:
		n, err := parseWhole(v.lit, 32)
		if v.isText || err != nil {
			return errors.New("must be a whole number between 0 and 4294967295")
		}
		*f.u32 = uint32(n)
	default:
		n, err := parseWhole(v.lit, 64)
		if v.isText || err != nil {
			return errors.New("must be a whole number >= 0")
		}
		*f.u64 = n
	}
	return nil
}

// notBelowTick is the error of a field that must be >= tick_ms.
func notBelowTick(name string, got, tick uint32) error {
	return errors.New("configuration." + name + ": must be >= tick_ms " + strconv.Itoa(int(tick)) +
		" (got " + strconv.Itoa(int(got)) + ")")
}

// parseWhole reads a whole number of at most bits bits, also written as a
// JSON number with a fraction or exponent ("1e+06", "20.0"): Istio passes a
// WasmPlugin's pluginConfig as a protobuf Struct, whose numbers are doubles.
func parseWhole(lit string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(lit, 10, bits)
	if err == nil {
		return n, nil
	}
	f, ferr := strconv.ParseFloat(lit, 64)
	if ferr != nil || f < 0 || f != math.Trunc(f) || f >= math.Ldexp(1, bits) {
		return 0, err
	}
	return uint64(f), nil
}
