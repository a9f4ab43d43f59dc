package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStaticBootstrapTurnsFiltersOnPerRoute(t *testing.T) {
	limit := &RateLimit{MaxTokens: 100, PerFill: 100, Fill: time.Second}
	cfg := StaticConfig{
		Listeners: []Listener{{
			Name: "bench", Address: "127.0.0.1:10000",
			Routes: []Route{
				{Name: "plain", Prefix: "/plain/", Cluster: "upstream"},
				{Name: "cost", Prefix: "/cost/", Cluster: "upstream", Plugin: &Plugin{Name: "p-cost", Config: `{"limit": 1}`}},
				{Name: "delay", Prefix: "/delay/", Cluster: "upstream", Plugin: &Plugin{Name: "p-delay", Config: `{"limit": 2}`}},
				{Name: "lrl", Prefix: "/lrl/", Cluster: "upstream", RateLimit: limit},
			},
			AccessLog: &AccessLog{Path: "/tmp/x.log", Header: "x-id", Format: "%REQ(X-ID)%\n"},
		}},
		Clusters: []Cluster{{Name: "upstream", Address: "127.0.0.1:10001"}},
	}
	plain, err := StaticBootstrap(cfg)
	require.NoError(t, err)
	assert.NotContains(t, string(plain), "wasm")
	assert.NotContains(t, string(plain), "disabled")
	assert.Contains(t, string(plain), "max_tokens: 100")
	assert.Contains(t, string(plain), "x-id")

	cfg.WasmPath = "/tmp/p.wasm"
	withPlugin, err := StaticBootstrap(cfg)
	require.NoError(t, err)
	text := string(withPlugin)
	// Each plugin is turned off on every route but its own: 3 + 3.
	assert.Equal(t, 6, strings.Count(text, "disabled: true"), text)
	assert.Equal(t, 2, strings.Count(text, "filename: /tmp/p.wasm"), text)
	assert.Contains(t, text, `'{"limit": 2}'`)
	assert.Less(t, strings.Index(text, "name: p-delay"), strings.Index(text, "name: envoy.filters.http.router"), "the plugins come before the router")
}

func TestStaticBootstrapRefusesWhatEnvoyWould(t *testing.T) {
	tests := map[string]StaticConfig{
		"bad address":     {Listeners: []Listener{{Name: "l", Address: "nowhere"}}},
		"no cluster name": {Clusters: []Cluster{{Address: "127.0.0.1:1"}}},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := StaticBootstrap(cfg)
			assert.Error(t, err)
		})
	}
}
