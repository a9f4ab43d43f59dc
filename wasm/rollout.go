package main

import (
	"strconv"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/shadowlab/shadowlab/wire"
)

// The rollout role (root id wire.RolloutRootID): on the routes of a policy
// route in canary, it sets the user's bucket (wire.RolloutConfig.Bucket:
// by a user header or the client's address) in x-shadowlab-canary-bucket.
// Changing a request header makes Envoy pick the route again: the route
// that matches the buckets of the canary's share (and its tenants) sends
// the request to the candidate, with Envoy's retry falling back to the
// primary. Everything else (the share, the tenants, the fallback, its
// counting) is Envoy's configuration.

type rolloutContext struct {
	types.DefaultPluginContext
	cfg wire.RolloutConfig
}

func (c *rolloutContext) OnPluginStart(int) (status types.OnPluginStartStatus) {
	defer func() {
		if r := recover(); r != nil {
			logPanic("rollout start", r)
			status = types.OnPluginStartStatusFailed
		}
	}()
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogCritical("shadowlab rollout: reading plugin configuration: " + err.Error())
		return types.OnPluginStartStatusFailed
	}
	if c.cfg, err = wire.ParseRolloutConfig(data); err != nil {
		proxywasm.LogCritical("shadowlab rollout: " + logConfigError(err))
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (c *rolloutContext) NewHttpContext(uint32) types.HttpContext { return &rolloutStream{c: c} }

type rolloutStream struct {
	types.DefaultHttpContext
	c *rolloutContext
}

func (s *rolloutStream) OnHttpRequestHeaders(int, bool) types.Action {
	defer recoverIn("rollout request headers")
	addr := ""
	if s.c.cfg.StickyHeader == "" || !hasHeader(s.c.cfg.StickyHeader) {
		addr = sourceAddress()
	}
	var buf [8]byte
	b := strconv.AppendUint(buf[:0], uint64(s.c.cfg.Bucket(requestHeader, addr)), 10)
	_ = proxywasm.ReplaceHttpRequestHeader(wire.HeaderCanaryBucket, string(b))
	return types.ActionContinue
}

// hasHeader reports whether the request has a non-empty header name.
func hasHeader(name string) bool {
	v, ok := requestHeader(name)
	return ok && v != ""
}
