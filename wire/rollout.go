package wire

import (
	"errors"
	"strconv"
	"strings"
)

// RolloutRootID is the root id of the plugin's rollout role: on the routes
// of a policy route in canary, it tells Envoy which user this is.
const RolloutRootID = "shadowlab_rollout"

// HeaderCanary names the policy route on a request the candidate was asked
// to answer (canary or promoted); Envoy's route adds it, its access logs
// select on it, and the services see it.
const HeaderCanary = "x-shadowlab-canary"

// HeaderCanaryBucket is the user's bucket, 0 to 999 999 (Bucket), that the
// rollout role sets on a canary route's requests: the Envoy route that
// sends the canary's users to the candidate matches it by range, [0,
// percent × 10 000). The percentage and the tenants live in the route
// configuration, so a percentage edit reaches the next request without
// touching the listener (whose update would drain connections).
const HeaderCanaryBucket = "x-shadowlab-canary-bucket"

// RolloutLogName is the gRPC access log of the candidate's requests: the
// translator names it, and serve counts only its entries.
const RolloutLogName = "shadowlab_rollout"

// Buckets is the number of canary buckets: a percentage's resolution is
// 100/Buckets.
const Buckets = 1_000_000

// RolloutConfig is the rollout role's configuration for one policy route.
type RolloutConfig struct {
	Route string // the policy route (for logs)
	// StickyHeader identifies a user; "" or absent: the client's address.
	StickyHeader string
}

func (c *RolloutConfig) fields() []pluginField {
	return []pluginField{
		{name: "route", str: &c.Route},
		{name: "sticky_header", str: &c.StickyHeader, optional: true},
	}
}

// AppendJSON appends c as the plugin reads it.
func (c RolloutConfig) AppendJSON(b []byte) []byte { return appendFields(b, c.fields()) }

// ParseRolloutConfig reads a rollout configuration and reports every
// problem at once.
func ParseRolloutConfig(data []byte) (RolloutConfig, error) {
	var c RolloutConfig
	if err := parseFields(data, c.fields(), "configuration", `{"route": "...", "sticky_header": "x-user-id"}`); err != nil {
		return c, err
	}
	var errs []error
	if c.Route == "" {
		errs = append(errs, errors.New("configuration.route: required"))
	}
	if h := c.StickyHeader; h != "" && (h != strings.ToLower(h) || strings.ContainsAny(h, " :,")) {
		errs = append(errs, errors.New("configuration.sticky_header: a lower-case header name (got "+strconv.Quote(h)+")"))
	}
	return c, errors.Join(errs...)
}

// Bucket is the user's bucket: the FNV-1a hash of its key (the sticky
// header's value, else the client's address addr without its port)
// modulo Buckets. The same user has the same bucket on every Envoy, so a
// canary of the buckets below a bound is sticky, and raising the bound
// only adds users.
func (c *RolloutConfig) Bucket(header func(name string) (string, bool), addr string) uint32 {
	// The hash of stickyKey's key, without building it: this runs on every
	// request of a route in canary, in the plugin, whose garbage is
	// collected on Envoy's worker.
	if c.StickyHeader != "" {
		if v, ok := header(c.StickyHeader); ok && v != "" {
			return uint32(fnv(fnv(fnvOffset, "user:"), v) % Buckets)
		}
	}
	return uint32(fnv(fnv(fnvOffset, "addr:"), hostOf(addr)) % Buckets)
}

// InCanary reports whether the user whose key is key (as Bucket makes it:
// "user:<value>" or "addr:<address>") is in a canary of perMillion.
func InCanary(key string, perMillion uint32) bool { return bucket(key) < perMillion }

// bucket is FNV-1a of key modulo Buckets.
func bucket(key string) uint32 { return uint32(fnv(fnvOffset, key) % Buckets) }

const fnvOffset = uint64(14695981039346656037)

// fnv continues the 64-bit FNV-1a hash h over s.
func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
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
