package main

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
)

// config is the plugin configuration, passed by Envoy as
// PluginConfig.configuration (a google.protobuf.StringValue holding JSON).
//
// The schema is deliberately tiny: it proves the mechanics (shared counter,
// hold, resume, reject). The real admission algorithm lives in package
// admission and will replace the trivial fixed-window budget below.
type config struct {
	// Limit is the number of requests admitted per window and key before
	// the plugin holds or rejects. Required, at least 1.
	Limit uint32 `json:"limit"`
	// WindowMs is the budget window in milliseconds. Default 1000.
	WindowMs uint32 `json:"window_ms"`
	// HoldMs is how long a request over the budget is held. Default 200.
	HoldMs uint32 `json:"hold_ms"`
	// TickMs is the OnTick period that releases held requests. Default 20.
	TickMs uint32 `json:"tick_ms"`
	// MaxHeld bounds the requests held per worker VM; over it the plugin
	// answers 429. Default 10000.
	MaxHeld uint32 `json:"max_held"`
	// Mode is "delay" (hold, then admit) or "reject" (429 with Retry-After).
	// Default "delay".
	Mode string `json:"mode"`
	// KeyHeader, if set, splits the budget per value of this request header
	// (e.g. x-tenant); otherwise the budget is per route.
	KeyHeader string `json:"key_header"`
	// GCHeapBytes, if set, makes OnHttpStreamDone call runtime.GC() when the
	// heap in use exceeds it (a mitigation for GC pauses on the data path).
	GCHeapBytes uint64 `json:"gc_heap_bytes"`
}

const (
	modeDelay  = "delay"
	modeReject = "reject"
)

// parseConfig decodes and validates the plugin configuration, applies
// defaults, and reports every problem at once.
func parseConfig(data []byte) (config, error) {
	var c config
	if len(bytes.TrimSpace(data)) == 0 {
		return c, errors.New("configuration: empty, need at least {\"limit\": N}")
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
		case "hold_ms":
			c.HoldMs, err = uint32Field(v)
		case "tick_ms":
			c.TickMs, err = uint32Field(v)
		case "max_held":
			c.MaxHeld, err = uint32Field(v)
		case "gc_heap_bytes":
			c.GCHeapBytes, err = strconv.ParseUint(v.lit, 10, 64)
			if v.isText || err != nil {
				err = errNotUint
			}
		case "mode":
			c.Mode, err = stringField(v)
		case "key_header":
			c.KeyHeader, err = stringField(v)
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
	if c.HoldMs == 0 {
		c.HoldMs = 200
	}
	if c.TickMs == 0 {
		c.TickMs = 20
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = 10000
	}
	if c.Mode == "" {
		c.Mode = modeDelay
	}
	if c.Limit == 0 {
		errs = append(errs, errors.New("configuration.limit: must be at least 1"))
	}
	if c.Mode != modeDelay && c.Mode != modeReject {
		errs = append(errs, errors.New("configuration.mode: must be \"delay\" or \"reject\" (got "+strconv.Quote(c.Mode)+")"))
	}
	if c.TickMs > c.HoldMs {
		errs = append(errs, errors.New("configuration.tick_ms: must not exceed hold_ms ("+
			strconv.FormatUint(uint64(c.TickMs), 10)+" > "+strconv.FormatUint(uint64(c.HoldMs), 10)+")"))
	}
	return c, errors.Join(errs...)
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
