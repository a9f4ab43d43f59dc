package wire

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Capture records: the primary's answers to mirrored requests, captured by
// the plugin's capture role in Envoy and posted in batches (POST
// CapturePath, content-type CaptureContentType) to shadowlab, which pairs
// them with the shadow's. A batch is records one after another; a record
// is, little endian:
//
//	u32 length of the rest of the record
//	u8  version (1)
//	u8  flags: FlagTooLarge, FlagIncomplete
//	u16 status (0: no response)
//	u32 latency, µs (request headers seen → response done)
//	u32 response body bytes seen
//	str8 route · str8 request id · str8 method · str16 target (path and query)
//	u8 n, then n × (str8 name · str16 value): response headers
//	u32 n, then n bytes: the body kept (none when FlagTooLarge)
//	with FlagTrailers: u8 n, then n × (str8 name · str16 value): response trailers
//
// where strN is a uN length then that many bytes. Encoding is by hand, not
// encoding/binary's reflection, to keep the plugin small and fast.
const (
	// CapturePath is the API path that takes the plugin's capture batches.
	CapturePath = "/api/v1/capture"
	// CaptureContentType is the content-type of a batch.
	CaptureContentType = "application/x-shadowlab-capture"

	captureVersion = 1
)

// Flags of a capture record.
const (
	FlagTooLarge   = 1 << 0 // the body went over the route's limit and is not in the record
	FlagIncomplete = 1 << 1 // the response ended before its last byte (reset, timeout)
	// FlagTrailers: response trailers follow the body (gRPC's grpc-status
	// and grpc-message). Set by AppendCaptureRecord when there are any; a
	// record without it reads as before trailers existed.
	FlagTrailers = 1 << 2
)

// CaptureRecord is one captured answer.
type CaptureRecord struct {
	Route, RequestID, Method, Target string
	Status                           int // 0: no response
	LatencyMicros                    uint32
	BodyBytes                        uint32
	Flags                            uint8
	Headers                          [][2]string // lower-case names
	Body                             []byte
	Trailers                         [][2]string // lower-case names
}

// Limits of what a record can carry; AppendCaptureRecord clips longer
// values (a request ID or route longer than 255 bytes cannot be paired).
const (
	maxStr8  = 1<<8 - 1
	maxStr16 = 1<<16 - 1
)

// AppendCaptureRecord appends r to a batch.
func AppendCaptureRecord(b []byte, r *CaptureRecord) []byte {
	start := len(b)
	flags := r.Flags &^ FlagTrailers
	if len(r.Trailers) > 0 {
		flags |= FlagTrailers
	}
	b = append(b, 0, 0, 0, 0, captureVersion, flags)
	b = binary.LittleEndian.AppendUint16(b, uint16(min(max(r.Status, 0), 1<<16-1)))
	b = binary.LittleEndian.AppendUint32(b, r.LatencyMicros)
	b = binary.LittleEndian.AppendUint32(b, r.BodyBytes)
	b = appendStr8(b, r.Route)
	b = appendStr8(b, r.RequestID)
	b = appendStr8(b, r.Method)
	b = appendStr16(b, r.Target)
	b = appendHeaderList(b, r.Headers)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.Body)))
	b = append(b, r.Body...)
	if len(r.Trailers) > 0 {
		b = appendHeaderList(b, r.Trailers)
	}
	binary.LittleEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// appendHeaderList appends a header or trailer list: u8 n, then n × (str8 ·
// str16), clipped to 255 fields.
func appendHeaderList(b []byte, fs [][2]string) []byte {
	n := min(len(fs), maxStr8)
	b = append(b, byte(n))
	for _, f := range fs[:n] {
		b = appendStr8(b, f[0])
		b = appendStr16(b, f[1])
	}
	return b
}

func appendStr8(b []byte, s string) []byte {
	s = s[:min(len(s), maxStr8)]
	return append(append(b, byte(len(s))), s...)
}

func appendStr16(b []byte, s string) []byte {
	s = s[:min(len(s), maxStr16)]
	return append(binary.LittleEndian.AppendUint16(b, uint16(len(s))), s...)
}

// ParseCaptureBatch reads a batch. It is all or nothing: the first
// malformed record is an error naming its offset.
func ParseCaptureBatch(b []byte) ([]CaptureRecord, error) {
	var out []CaptureRecord
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, errors.New("record at offset " + strconv.Itoa(off) + ": truncated length")
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n > len(b)-off-4 {
			return nil, errors.New("record at offset " + strconv.Itoa(off) + ": length " + strconv.Itoa(n) + " past the end of the batch")
		}
		r, err := parseCaptureRecord(b[off+4 : off+4+n])
		if err != nil {
			return nil, errors.New("record at offset " + strconv.Itoa(off) + ": " + err.Error())
		}
		out = append(out, r)
		off += 4 + n
	}
	return out, nil
}

// reader reads a record's fields; the first short read sticks.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u16() int {
	if v := r.take(2); v != nil {
		return int(binary.LittleEndian.Uint16(v))
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) str8() string  { return string(r.take(r.byte())) }
func (r *reader) str16() string { return string(r.take(r.u16())) }

func (r *reader) fields() [][2]string {
	var out [][2]string
	for n := r.byte(); n > 0 && !r.bad; n-- {
		out = append(out, [2]string{r.str8(), r.str16()})
	}
	return out
}

func (r *reader) byte() int {
	if v := r.take(1); v != nil {
		return int(v[0])
	}
	return 0
}

func parseCaptureRecord(b []byte) (CaptureRecord, error) {
	r := &reader{b: b}
	var c CaptureRecord
	if v := r.byte(); v != captureVersion {
		return c, errors.New("unknown version " + strconv.Itoa(v))
	}
	c.Flags = uint8(r.byte())
	c.Status = r.u16()
	c.LatencyMicros = r.u32()
	c.BodyBytes = r.u32()
	c.Route, c.RequestID, c.Method, c.Target = r.str8(), r.str8(), r.str8(), r.str16()
	c.Headers = r.fields()
	if body := r.take(int(r.u32())); len(body) > 0 {
		c.Body = append([]byte(nil), body...)
	}
	if c.Flags&FlagTrailers != 0 {
		c.Trailers = r.fields()
	}
	switch {
	case r.bad:
		return c, errors.New("truncated")
	case len(r.b) > 0:
		return c, errors.New(strconv.Itoa(len(r.b)) + " bytes after the body")
	case c.Flags&^(FlagTooLarge|FlagIncomplete|FlagTrailers) != 0:
		return c, errors.New("unknown flags " + strconv.Itoa(int(c.Flags)))
	case c.Route == "" || c.RequestID == "":
		return c, errors.New("no route or request id")
	}
	return c, nil
}

// Root IDs of the plugin's two roles in one module (and one VM per
// worker): admission, and the capture of the primary's answers.
const (
	AdmissionRootID = "shadowlab"
	CaptureRootID   = "shadowlab_capture"
)

// Route metadata of a capturing Envoy route, for a capture instance
// configured without a route: metadata.filter_metadata[MetadataNamespace]
// is a Struct whose field MetadataCapture is a string, the route's
// settings as CaptureConfig.AppendRouteJSON writes them. The plugin reads
// it as the property xds.route_metadata.filter_metadata.shadowlab.capture.
const (
	MetadataNamespace = "shadowlab"
	MetadataCapture   = "capture"
)

// CaptureConfig configures the capture, a flat JSON object like
// PluginConfig's. Its fields are of two kinds:
//
//   - per route (Route, MaxBodyBytes, Headers, EnvoyRoutes and the Sample
//     fields): what is captured on an Envoy route, and for which policy
//     route;
//   - per instance (ReportCluster, ReportPath, ReportAuthority, TickMs,
//     MaxPendingBytes, MaxInflight): how each worker sends the batches of
//     every route the instance captures, and their bounds.
//
// An instance configured with a Route captures that policy route wherever
// it is switched on (one instance per policy route: the manifests of
// package render). An instance configured without one (ParseCaptureConfig
// then refuses the per-route fields) takes the settings of each Envoy
// route from its route metadata (MetadataNamespace, AppendRouteJSON,
// ParseCaptureRoute): one instance per listener serves every route, and
// does not capture a route without them. Route metadata, when an Envoy
// route has it, wins in both cases.
type CaptureConfig struct {
	// Route is the policy route the captured answers belong to. Required
	// in route metadata; "" in an instance's configuration: the settings
	// come from route metadata.
	Route string
	// MaxBodyBytes is the most of a body kept; a longer one is recorded as
	// FlagTooLarge without its bytes. Default 1 MiB.
	MaxBodyBytes uint32
	// Headers are the response headers kept, lower case, comma-separated
	// (content-type and content-encoding are always kept).
	Headers string
	// ReportCluster is the Envoy cluster of shadowlab's API. Required.
	ReportCluster string
	// ReportPath is the :path of the batch POST. Default CapturePath.
	ReportPath string
	// ReportAuthority is its :authority. Default ReportAuthority.
	ReportAuthority string
	// TickMs is how often a batch is sent. Default DefaultTickMs.
	TickMs uint32
	// MaxPendingBytes bounds the records waiting to be sent per worker;
	// beyond it records are dropped and counted. Default 8 MiB.
	MaxPendingBytes uint32
	// MaxInflight bounds the batch calls in flight per worker. Default 4.
	MaxInflight uint32
	// EnvoyRoutes is as PluginConfig.EnvoyRoutes.
	EnvoyRoutes string
	// SampleHeader, when set, makes the instance sample: it keeps
	// SamplePerMillion of the requests it sees (by a hash of their
	// x-request-id), sets this request header to MarkOn on them and
	// removes it from the others, before the router picks the route. A
	// route that matches the header and mirrors every request then mirrors
	// exactly the captured ones. For control planes whose mirror samples
	// at random (Istio, the Gateway API): the capture could not know
	// which requests were mirrored.
	SampleHeader string
	// SamplePerMillion is the share sampled with SampleHeader, in
	// millionths (0–1 000 000).
	SamplePerMillion uint32
	// SampleMethods (comma-separated) and SampleTenantHeader with
	// SampleTenants (one value per line) narrow the sample to what the
	// mirroring route matches besides the sample mark: a request of
	// another method or tenant is neither marked nor captured, as it will
	// not be mirrored. Empty: any method, any tenant.
	SampleMethods      string
	SampleTenantHeader string
	SampleTenants      string
	// SampleStickyHeader samples users instead of requests: the key is
	// this request header's value, else the client's address (SampleKey).
	SampleStickyHeader string
}

// SampleKey is what a request is sampled by: its x-request-id, or with
// SampleStickyHeader its user (the header's value, else the client's
// address addr), salted apart from a canary's users (RolloutConfig.Canary)
// so that the two samples are independent.
func (c *CaptureConfig) SampleKey(requestID string, header func(name string) (string, bool), addr string) string {
	if c.SampleStickyHeader == "" {
		return requestID
	}
	return stickyKey("shadow-", c.SampleStickyHeader, header, addr)
}

// SampleCandidate reports whether a request of this method, whose tenant
// header has these values, can be mirrored under c's narrowing.
func (c *CaptureConfig) SampleCandidate(method string, tenant func(name string) (string, bool)) bool {
	if c.SampleMethods != "" && !inList(c.SampleMethods, ",", method) {
		return false
	}
	if c.SampleTenantHeader == "" {
		return true
	}
	v, ok := tenant(c.SampleTenantHeader)
	return ok && inList(c.SampleTenants, "\n", v)
}

func inList(list, sep, v string) bool {
	for e := range strings.SplitSeq(list, sep) {
		if e == v {
			return true
		}
	}
	return false
}

// Defaults of CaptureConfig.
const (
	DefaultCaptureBodyBytes = 1 << 20
	DefaultCapturePending   = 8 << 20
	DefaultCaptureInflight  = 4
)

func (c *CaptureConfig) fields() []pluginField {
	return []pluginField{
		{name: "route", str: &c.Route, optional: true, perRoute: true},
		{name: "max_body_bytes", u32: &c.MaxBodyBytes, optional: true, perRoute: true},
		{name: "headers", str: &c.Headers, optional: true, perRoute: true},
		{name: "report_cluster", str: &c.ReportCluster},
		{name: "report_path", str: &c.ReportPath, optional: true},
		{name: "report_authority", str: &c.ReportAuthority, optional: true},
		{name: "tick_ms", u32: &c.TickMs, optional: true},
		{name: "max_pending_bytes", u32: &c.MaxPendingBytes, optional: true},
		{name: "max_inflight", u32: &c.MaxInflight, optional: true},
		{name: "envoy_routes", str: &c.EnvoyRoutes, optional: true, perRoute: true},
		{name: "sample_header", str: &c.SampleHeader, optional: true, perRoute: true},
		{name: "sample_per_million", u32: &c.SamplePerMillion, optional: true, perRoute: true},
		{name: "sample_methods", str: &c.SampleMethods, optional: true, perRoute: true},
		{name: "sample_tenant_header", str: &c.SampleTenantHeader, optional: true, perRoute: true},
		{name: "sample_tenants", str: &c.SampleTenants, optional: true, perRoute: true},
		{name: "sample_sticky_header", str: &c.SampleStickyHeader, optional: true, perRoute: true},
	}
}

// routeFields are c's per-route fields.
func (c *CaptureConfig) routeFields() []pluginField {
	var out []pluginField
	for _, f := range c.fields() {
		if f.perRoute {
			out = append(out, f)
		}
	}
	return out
}

// AppendJSON appends c as the plugin reads it.
func (c CaptureConfig) AppendJSON(b []byte) []byte { return appendFields(b, c.fields()) }

// AppendRouteJSON appends c's per-route fields as route metadata carries
// them (MetadataCapture); the instance's fields are left out.
func (c CaptureConfig) AppendRouteJSON(b []byte) []byte { return appendFields(b, c.routeFields()) }

// metadataAt names route metadata's settings in errors.
const metadataAt = MetadataNamespace + "." + MetadataCapture

// ParseCaptureConfig reads an instance's configuration, applies the
// defaults and reports every problem at once. Without a route, the
// per-route fields are refused: they come from route metadata.
func ParseCaptureConfig(data []byte) (CaptureConfig, error) {
	var c CaptureConfig
	const at = "configuration"
	if err := parseFields(data, c.fields(), at, `{"report_cluster": "..."}`); err != nil {
		return c, err
	}
	var errs []error
	if c.Route != "" {
		errs = c.routeDefaults(at)
	} else {
		for _, f := range c.routeFields() {
			if !f.zero() {
				errs = append(errs, errors.New(at+"."+f.name+": set per route, in route metadata "+metadataAt+", when route is empty"))
			}
		}
	}
	if c.ReportCluster == "" {
		errs = append(errs, errors.New(at+".report_cluster: required"))
	}
	if c.ReportPath == "" {
		c.ReportPath = CapturePath
	} else if c.ReportPath[0] != '/' {
		errs = append(errs, errors.New(at+".report_path: must start with / (got "+strconv.Quote(c.ReportPath)+")"))
	}
	if c.ReportAuthority == "" {
		c.ReportAuthority = ReportAuthority
	}
	if c.TickMs == 0 {
		c.TickMs = DefaultTickMs
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = DefaultCapturePending
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultCaptureInflight
	}
	return c, errors.Join(errs...)
}

// ParseCaptureRoute reads the settings of an Envoy route's metadata
// (AppendRouteJSON), applies the defaults as ParseCaptureConfig does and
// reports every problem at once, each as "shadowlab.capture.<field>: ...".
// The instance's fields are unknown here; they are zero in the result.
func ParseCaptureRoute(data []byte) (CaptureConfig, error) {
	var c CaptureConfig
	if err := parseFields(data, c.routeFields(), metadataAt, `{"route": "..."}`); err != nil {
		return c, err
	}
	return c, errors.Join(c.routeDefaults(metadataAt)...)
}

// routeDefaults checks c's per-route fields and applies their defaults;
// at names the configuration in errors.
func (c *CaptureConfig) routeDefaults(at string) []error {
	var errs []error
	if c.Route == "" {
		errs = append(errs, errors.New(at+".route: required"))
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultCaptureBodyBytes
	}
	if c.SamplePerMillion > 1_000_000 {
		errs = append(errs, errors.New(at+".sample_per_million: at most 1000000 (got "+strconv.FormatUint(uint64(c.SamplePerMillion), 10)+")"))
	}
	for _, h := range []struct{ name, v string }{{"sample_header", c.SampleHeader}, {"sample_sticky_header", c.SampleStickyHeader}} {
		if h.v != "" && (h.v != strings.ToLower(h.v) || strings.ContainsAny(h.v, " :,")) {
			errs = append(errs, errors.New(at+"."+h.name+": a lower-case header name (got "+strconv.Quote(h.v)+")"))
		}
	}
	return errs
}

// Sampled reports whether a request with this x-request-id is in a sample
// of perMillion millionths: FNV-1a of the ID, modulo a million. Stable: a
// request ID is in or out whatever instance asks.
func Sampled(requestID string, perMillion uint32) bool { return bucket(requestID) < perMillion }

// InRoutes reports whether the Envoy route name is one of routes (comma
// separated); "" holds every route.
func InRoutes(routes, name string) bool {
	return routes == "" || inList(routes, ",", name)
}

// HeaderSample is the request header the capture plugin sets on the
// requests it sampled, where the control plane's mirror cannot sample by
// request ID (CaptureConfig.SampleHeader).
const HeaderSample = "x-shadowlab-sample"

// KeptHeaders are the response headers a capture keeps: content-type,
// content-encoding and those of Headers, never a secret one.
func (c CaptureConfig) KeptHeaders() []string {
	out := []string{"content-type", "content-encoding"}
	for _, h := range strings.Split(c.Headers, ",") {
		if h != "" && !slices.Contains(out, h) && !slices.Contains(SecretHeaders, h) {
			out = append(out, h)
		}
	}
	return out
}

// GRPCHeaders are the gRPC response fields kept from a gRPC answer besides
// the route's compared headers: how its messages are compressed, and its
// status (in the trailers, or in the headers of a trailers-only answer).
var GRPCHeaders = []string{"grpc-encoding", "grpc-status", "grpc-message"}
