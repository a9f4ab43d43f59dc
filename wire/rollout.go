package wire

import (
	"errors"
	"strconv"
	"strings"
)

// RolloutRootID is the root id of the plugin's rollout role: on a route in
// canary, it picks the users the candidate answers.
const RolloutRootID = "shadowlab_rollout"

// HeaderCanary names the policy route on a request the candidate answers
// (canary or promoted); the Envoy route that matches it sends the request
// to the candidate with fallback to the primary. Services see it too.
const HeaderCanary = "x-shadowlab-canary"

// RolloutConfig is the rollout role's configuration for one policy route in
// canary.
type RolloutConfig struct {
	// Route is the policy route: the value of HeaderCanary.
	Route string
	// PerMillion is the share of users in the canary, in millionths.
	PerMillion uint32
	// StickyHeader identifies a user; "" or absent: the client's address.
	StickyHeader string
	// TenantHeader with Tenants (one per line) limits the canary to these
	// tenants; "": every tenant.
	TenantHeader string
	Tenants      string
}

func (c *RolloutConfig) fields() []pluginField {
	return []pluginField{
		{name: "route", str: &c.Route},
		{name: "per_million", u32: &c.PerMillion},
		{name: "sticky_header", str: &c.StickyHeader, optional: true},
		{name: "tenant_header", str: &c.TenantHeader, optional: true},
		{name: "tenants", str: &c.Tenants, optional: true},
	}
}

// AppendJSON appends c as the plugin reads it.
func (c RolloutConfig) AppendJSON(b []byte) []byte { return appendFields(b, c.fields()) }

// ParseRolloutConfig reads a rollout configuration and reports every
// problem at once.
func ParseRolloutConfig(data []byte) (RolloutConfig, error) {
	var c RolloutConfig
	if err := parseFields(data, c.fields(), `{"route": "...", "per_million": 100000}`); err != nil {
		return c, err
	}
	var errs []error
	if c.Route == "" {
		errs = append(errs, errors.New("configuration.route: required"))
	}
	if c.PerMillion > 1_000_000 {
		errs = append(errs, errors.New("configuration.per_million: at most 1000000 (got "+strconv.FormatUint(uint64(c.PerMillion), 10)+")"))
	}
	for _, h := range []struct{ name, v string }{{"sticky_header", c.StickyHeader}, {"tenant_header", c.TenantHeader}} {
		if h.v != "" && (h.v != strings.ToLower(h.v) || strings.ContainsAny(h.v, " :,")) {
			errs = append(errs, errors.New("configuration."+h.name+": a lower-case header name (got "+strconv.Quote(h.v)+")"))
		}
	}
	return c, errors.Join(errs...)
}

// InCanary reports whether the user whose sticky key is key is answered by
// the candidate at perMillion: FNV-1a of the key, modulo a million, below
// perMillion. The same key is in or out on every Envoy, and raising
// perMillion only adds users.
func InCanary(key string, perMillion uint32) bool { return Sampled(key, perMillion) }

// Canary reports whether c puts a request in the canary. header reads a
// request header; addr is the client's address (host, or host:port).
func (c *RolloutConfig) Canary(header func(name string) (string, bool), addr string) bool {
	if c.TenantHeader != "" {
		v, ok := header(c.TenantHeader)
		if !ok || !inList(c.Tenants, "\n", v) {
			return false
		}
	}
	return InCanary(stickyKey("", c.StickyHeader, header, addr), c.PerMillion)
}

// stickyKey is the key of a user: salt, then "user:" and the value of
// header name, or when there is none "addr:" and the client's address
// without its port.
func stickyKey(salt, name string, header func(name string) (string, bool), addr string) string {
	if name != "" {
		if v, ok := header(name); ok && v != "" {
			return salt + "user:" + v
		}
	}
	return salt + "addr:" + hostOf(addr)
}

// hostOf is addr without its port: "[::1]:80" and "::1" are "::1",
// "10.0.0.1:80" is "10.0.0.1".
func hostOf(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if j := strings.IndexByte(addr, ']'); j > 0 {
			return addr[1:j]
		}
		return addr
	}
	if strings.Count(addr, ":") == 1 {
		return addr[:strings.IndexByte(addr, ':')]
	}
	return addr
}
