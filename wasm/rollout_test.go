//go:build !wasm

package main

import (
	"fmt"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/wire"
)

func newRolloutHost(t *testing.T, cfg wire.RolloutConfig, addr string) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: (&fakeClock{}).now, seed: 1}).
		WithPluginConfiguration(cfg.AppendJSON(nil)).
		WithProperty([]string{"plugin_root_id"}, []byte(wire.RolloutRootID)).
		WithProperty([]string{"source", "address"}, []byte(addr))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	require.Equal(t, types.OnPluginStartStatusOK, host.StartPlugin())
	return host
}

// The plugin marks exactly the users wire.RolloutConfig.Canary picks, by
// header, else by the client's address.
func TestRolloutMarksTheCanaryUsers(t *testing.T) {
	cfg := wire.RolloutConfig{Route: "orders", PerMillion: 300_000, StickyHeader: "x-user"}
	host := newRolloutHost(t, cfg, "10.0.0.7:5555")
	marked := 0
	for i := range 200 {
		user := fmt.Sprintf("u%d", i)
		ctx := host.InitializeHttpContext()
		require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(ctx, [][2]string{{":method", "GET"}, {"x-user", user}}, true))
		got := header(host.GetCurrentRequestHeaders(ctx), wire.HeaderCanary)
		want := wire.InCanary("user:"+user, cfg.PerMillion)
		require.Equal(t, want, got == "orders", user)
		if want {
			marked++
		}
		host.CompleteHttpContext(ctx)
	}
	require.InDelta(t, 60, marked, 25)

	ctx := host.InitializeHttpContext()
	host.CallOnRequestHeaders(ctx, [][2]string{{":method", "GET"}}, true)
	require.Equal(t, wire.InCanary("addr:10.0.0.7", cfg.PerMillion), header(host.GetCurrentRequestHeaders(ctx), wire.HeaderCanary) == "orders")
}

func TestRolloutRefusesABadConfiguration(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: (&fakeClock{}).now, seed: 1}).
		WithPluginConfiguration([]byte(`{"route": "x", "per_million": 5000000}`)).
		WithProperty([]string{"plugin_root_id"}, []byte(wire.RolloutRootID))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	require.Equal(t, types.OnPluginStartStatusFailed, host.StartPlugin())
}
