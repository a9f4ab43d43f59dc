package main

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/shadowlab/shadowlab/admission"
)

// config is the plugin configuration, passed by Envoy as
// PluginConfig.configuration (a google.protobuf.StringValue holding a flat
// JSON object). The budget itself is package admission's Config.
type config struct {
	// Limit is the number of requests admitted per window and key.
	// Required, 1 to admission.MaxLimit.
	Limit uint32 `json:"limit"`
	// WindowMs is the sliding window in milliseconds. Default 1000.
	WindowMs uint32 `json:"window_ms"`
	// MaxDelayMs is the longest a request may be held. Required with mode
	// delay, must be 0 with mode reject; with mode observe it simulates
	// delay (> 0) or reject (0).
	MaxDelayMs uint32 `json:"max_delay_ms"`
	// Mode is "delay" (hold, then admit), "reject" (429 with Retry-After)
	// or "observe" (decide and count, change nothing). Default "delay".
	Mode string `json:"mode"`
	// KeyHeader, if set, splits the budget per value of this request header
	// (e.g. x-tenant); otherwise the budget is per route.
	KeyHeader string `json:"key_header"`
	// Route, if set, is the policy route name, used in the budget key (and
	// the reports) instead of Envoy's route name (property xds.route_name).
	// The control plane runs one plugin instance per policy route, and a
	// policy route expands into several Envoy routes with different names
	// that must share one budget.
	Route string `json:"route"`
	// TickMs is the OnTick period that releases held requests. Default 20.
	TickMs uint32 `json:"tick_ms"`
	// SlackMs is admission.Config.Slack: how late a held request may reach
	// the upstream after its delay. Held requests are released up to one
	// tick late, plus the forwarding jitter between the release and the
	// upstream seeing the request, so it must be >= tick_ms. Default
	// tick_ms.
	SlackMs uint32 `json:"slack_ms"`
	// MaxHeld bounds the requests held per worker VM; a request that would
	// be held beyond it gets 429. Default 10000.
	MaxHeld uint32 `json:"max_held"`
	// MaxKeys bounds the distinct budget keys (route [+ header value]) in
	// shared data, which has no delete: requests of new keys beyond it are
	// admitted and counted as fail_open (keys_full). Default 1000.
	MaxKeys uint32 `json:"max_keys"`
	// GCHeapBytes, if set, makes OnHttpStreamDone call runtime.GC() when the
	// heap in use exceeds it (a mitigation for GC pauses on the data path).
	GCHeapBytes uint64 `json:"gc_heap_bytes"`

	// ReportCluster, if set, is the Envoy cluster of the control plane that
	// receives the admission outcomes (see report.go). Empty: no reports.
	ReportCluster string `json:"report_cluster"`
	// ReportPath is the :path of the report POST. Default
	// "/api/v1/admission/local".
	ReportPath string `json:"report_path"`
	// ReportAuthority is the :authority of the report POST. Default
	// "shadowlab".
	ReportAuthority string `json:"report_authority"`
	// ReportMs is the shortest interval between two reports of one plugin
	// context, at least tick_ms (reports are sent from OnTick). Default 1000.
	ReportMs uint32 `json:"report_ms"`

	// adm is the validated admission configuration built from the above.
	adm admission.Config
}

// configFieldName maps admission.ConfigError fields to the plugin's names.
// Slack is slack_ms, or tick_ms when slack_ms is not set (its default).
var configFieldName = map[string]string{
	"limit":    "limit",
	"window":   "window_ms",
	"maxDelay": "max_delay_ms",
	"mode":     "mode",
	"slack":    "slack_ms",
}

// Defaults of the report fields.
const (
	defaultReportPath      = "/api/v1/admission/local"
	defaultReportAuthority = "shadowlab"
	defaultReportMs        = 1000
)

// parseConfig decodes and validates the plugin configuration, applies
// defaults, and reports every problem at once.
func parseConfig(data []byte) (config, error) {
	var c config
	if len(bytes.TrimSpace(data)) == 0 {
		return c, errors.New("configuration: empty, need at least {\"limit\": N, \"max_delay_ms\": N}")
	}
	fields, err := parseFlatObject(data)
	if err != nil {
		return c, errors.New("configuration: " + err.Error())
	}
	var errs []error
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys) // errors in a stable order
	for _, k := range keys {
		v := fields[k]
		var err error
		switch k {
		case "limit":
			c.Limit, err = uint32Field(v)
		case "window_ms":
			c.WindowMs, err = uint32Field(v)
		case "max_delay_ms":
			c.MaxDelayMs, err = uint32Field(v)
		case "tick_ms":
			c.TickMs, err = uint32Field(v)
		case "slack_ms":
			c.SlackMs, err = uint32Field(v)
		case "report_ms":
			c.ReportMs, err = uint32Field(v)
		case "max_held":
			c.MaxHeld, err = uint32Field(v)
		case "max_keys":
			c.MaxKeys, err = uint32Field(v)
		case "gc_heap_bytes":
			c.GCHeapBytes, err = strconv.ParseUint(v.lit, 10, 64)
			if v.isText || err != nil {
				err = errNotUint
			}
		case "mode":
			c.Mode, err = stringField(v)
		case "key_header":
			c.KeyHeader, err = stringField(v)
		case "route":
			c.Route, err = stringField(v)
		case "report_cluster":
			c.ReportCluster, err = stringField(v)
		case "report_path":
			c.ReportPath, err = stringField(v)
		case "report_authority":
			c.ReportAuthority, err = stringField(v)
		default:
			err = errors.New("unknown field")
		}
		if err != nil {
			errs = append(errs, errors.New("configuration."+k+": "+err.Error()))
		}
	}
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	if c.WindowMs == 0 {
		c.WindowMs = 1000
	}
	if c.TickMs == 0 {
		c.TickMs = 20
	}
	slackName := "slack_ms"
	if c.SlackMs == 0 {
		// The default: the admission error about it is tick_ms's.
		c.SlackMs, slackName = c.TickMs, "tick_ms"
	}
	if c.SlackMs < c.TickMs {
		errs = append(errs, notBelowTick("slack_ms", c.SlackMs, c.TickMs))
	}
	if c.ReportPath == "" {
		c.ReportPath = defaultReportPath
	} else if c.ReportPath[0] != '/' {
		errs = append(errs, errors.New("configuration.report_path: must start with / (got "+strconv.Quote(c.ReportPath)+")"))
	}
	if c.ReportAuthority == "" {
		c.ReportAuthority = defaultReportAuthority
	}
	if c.ReportMs == 0 {
		c.ReportMs = defaultReportMs
	}
	if c.ReportMs < c.TickMs {
		errs = append(errs, notBelowTick("report_ms", c.ReportMs, c.TickMs))
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = 10000
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 1000
	}
	if c.Mode == "" {
		c.Mode = "delay"
	}
	mode, modeErr := admission.ParseMode(c.Mode)
	if modeErr != nil {
		errs = append(errs, errors.New("configuration.mode: must be delay, reject or observe (got "+strconv.Quote(c.Mode)+")"))
	}
	c.adm = admission.Config{
		Limit:    int(c.Limit),
		Window:   time.Duration(c.WindowMs) * time.Millisecond,
		MaxDelay: time.Duration(c.MaxDelayMs) * time.Millisecond,
		Mode:     mode,
		Slack:    time.Duration(c.SlackMs) * time.Millisecond,
	}
	if modeErr != nil {
		// Validate the rest as if the mode were right: the maxDelay rules
		// depend on it and would only add noise.
		c.adm.Mode = admission.ModeObserve
	}
	for _, err := range unjoin(c.adm.Validate()) {
		var ce *admission.ConfigError
		if errors.As(err, &ce) {
			name := configFieldName[ce.Field]
			if ce.Field == "slack" {
				name = slackName
			}
			if name == "" {
				name = ce.Field
			}
			errs = append(errs, errors.New("configuration."+name+": "+ce.Problem))
			continue
		}
		errs = append(errs, errors.New("configuration: "+err.Error()))
	}
	c.adm.Mode = mode
	return c, errors.Join(errs...)
}

// notBelowTick is the error of a field that must be >= tick_ms.
func notBelowTick(name string, got, tick uint32) error {
	return errors.New("configuration." + name + ": must be >= tick_ms " + strconv.Itoa(int(tick)) +
		" (got " + strconv.Itoa(int(got)) + ")")
}

// unjoin returns the errors joined in err (errors.Join), or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// hash is a short FNV-1a hash of everything that shapes a key's state (the
// admission config, the key header and the policy route), in hex. It is
// part of every shared data key, so a changed configuration starts from
// fresh states instead of reading ones another configuration wrote.
func (c *config) hash() string {
	h := uint32(2166136261)
	write := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint32(s[i])
			h *= 16777619
		}
		h ^= 0xff // field separator
		h *= 16777619
	}
	write(strconv.Itoa(c.adm.Limit))
	write(strconv.FormatInt(int64(c.adm.Window), 10))
	write(strconv.FormatInt(int64(c.adm.MaxDelay), 10))
	write(c.adm.Mode.String())
	write(strconv.FormatInt(int64(c.adm.Slack), 10))
	write(c.KeyHeader)
	write(c.Route)
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := range b {
		b[7-i] = digits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

var errNotUint = errors.New("must be a whole number >= 0")

func uint32Field(v jsonValue) (uint32, error) {
	n, err := strconv.ParseUint(v.lit, 10, 32)
	if v.isText || err != nil {
		return 0, errors.New("must be a whole number between 0 and 4294967295")
	}
	return uint32(n), nil
}

func stringField(v jsonValue) (string, error) {
	if !v.isText {
		return "", errors.New("must be a string")
	}
	return v.str, nil
}
