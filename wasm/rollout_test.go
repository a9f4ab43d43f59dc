//go:build !wasm

package main

import (
	"fmt"
	"strconv"
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

// The plugin sets each user's bucket, by header, else by the client's
// address, replacing whatever was there.
func TestRolloutSetsTheBucket(t *testing.T) {
	cfg := wire.RolloutConfig{Route: "orders", StickyHeader: "x-user"}
	host := newRolloutHost(t, cfg, "10.0.0.7:5555")
	for i := range 200 {
		user := fmt.Sprintf("u%d", i)
		ctx := host.InitializeHttpContext()
		require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(ctx, [][2]string{{":method", "GET"}, {"x-user", user},
			{wire.HeaderCanaryBucket, "0"}}, true))
		got, err := strconv.Atoi(header(host.GetCurrentRequestHeaders(ctx), wire.HeaderCanaryBucket))
		require.NoError(t, err)
		require.Equal(t, uint32(got) < 300_000, wire.InCanary("user:"+user, 300_000), user)
		host.CompleteHttpContext(ctx)
	}
	ctx := host.InitializeHttpContext()
	host.CallOnRequestHeaders(ctx, [][2]string{{":method", "GET"}}, true)
	got, err := strconv.Atoi(header(host.GetCurrentRequestHeaders(ctx), wire.HeaderCanaryBucket))
	require.NoError(t, err)
	require.Equal(t, uint32(got) < 300_000, wire.InCanary("addr:10.0.0.7", 300_000))
}

func TestRolloutRefusesABadConfiguration(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: (&fakeClock{}).now, seed: 1}).
		WithPluginConfiguration([]byte(`{"route": "x", "sticky_header": "X-User"}`)).
		WithProperty([]string{"plugin_root_id"}, []byte(wire.RolloutRootID))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	require.Equal(t, types.OnPluginStartStatusFailed, host.StartPlugin())
}
