package wire

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPluginConfigAppendJSON(t *testing.T) {
	c := PluginConfig{Route: "jobs", Limit: 100, WindowMs: 1000, MaxDelayMs: 15000, Mode: "delay", KeyHeader: "x-tenant",
		TickMs: 20, SlackMs: 100, ReportCluster: "shadowlab_api", ReportPath: ReportPath, ReportAuthority: ReportAuthority}
	require.Equal(t, `{"route":"jobs","limit":100,"window_ms":1000,"max_delay_ms":15000,"mode":"delay","key_header":"x-tenant","tick_ms":20,"slack_ms":100,"report_cluster":"shadowlab_api","report_path":"/api/v1/admission/local","report_authority":"shadowlab"}`,
		string(c.AppendJSON(nil)))
	require.Equal(t, `{"limit":0,"window_ms":0,"max_delay_ms":0,"mode":"","tick_ms":0,"slack_ms":0}`, string(PluginConfig{}.AppendJSON(nil)))
}

func TestParsePluginConfig(t *testing.T) {
	defaults := func(c PluginConfig) PluginConfig { c.defaults(); return c }
	tests := map[string]struct {
		in      string
		want    PluginConfig
		wantErr string
	}{
		"minimal": {in: `{"limit": 5}`, want: defaults(PluginConfig{Limit: 5})},
		"all": {
			in: `{"route":"r","limit":1,"window_ms":500,"max_delay_ms":9,"mode":"observe","key_header":"x-t","tick_ms":10,"slack_ms":30,` +
				`"max_held":7,"max_keys":8,"gc_heap_bytes":1099511627776,"report_cluster":"c","report_path":"/p","report_authority":"a","report_ms":50}`,
			want: PluginConfig{Route: "r", Limit: 1, WindowMs: 500, MaxDelayMs: 9, Mode: "observe", KeyHeader: "x-t", TickMs: 10, SlackMs: 30,
				MaxHeld: 7, MaxKeys: 8, GCHeapBytes: 1 << 40, ReportCluster: "c", ReportPath: "/p", ReportAuthority: "a", ReportMs: 50},
		},
		"slack defaults to tick": {in: `{"limit":1,"tick_ms":40}`, want: defaults(PluginConfig{Limit: 1, TickMs: 40, SlackMs: 40})},
		"empty":                  {in: ``, wantErr: "configuration: empty"},
		"not json":               {in: `nope`, wantErr: "configuration: expected '{' at offset 0"},
		"every problem": {
			in:      `{"limit":"5","window_ms":-1,"bogus":1,"route":2,"gc_heap_bytes":1.5}`,
			wantErr: "configuration.bogus: unknown field\nconfiguration.gc_heap_bytes: must be a whole number >= 0\nconfiguration.limit: must be a whole number between 0 and 4294967295\nconfiguration.route: must be a string\nconfiguration.window_ms: must be a whole number between 0 and 4294967295",
		},
		"slack below tick":   {in: `{"limit":1,"tick_ms":20,"slack_ms":10}`, wantErr: "configuration.slack_ms: must be >= tick_ms 20 (got 10)"},
		"report below tick":  {in: `{"limit":1,"report_ms":5}`, wantErr: "configuration.report_ms: must be >= tick_ms 20 (got 5)"},
		"relative path":      {in: `{"limit":1,"report_path":"x"}`, wantErr: `configuration.report_path: must start with / (got "x")`},
		"limit out of range": {in: `{"limit":4294967296}`, wantErr: "configuration.limit: must be a whole number"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePluginConfig([]byte(tc.in))
			if tc.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// randomPluginConfig is a configuration ParsePluginConfig accepts as it is
// (defaults already applied).
func randomPluginConfig(r *rand.Rand) PluginConfig {
	str := func() string {
		return string([]rune{rune(r.IntN(0x2000)), '"', '\\', rune('a' + r.IntN(26))}[:1+r.IntN(4)])
	}
	c := PluginConfig{Route: str(), Limit: r.Uint32(), WindowMs: r.Uint32(), MaxDelayMs: r.Uint32(), Mode: str(), KeyHeader: str(),
		TickMs: 1 + r.Uint32N(100), MaxHeld: r.Uint32(), MaxKeys: r.Uint32(), GCHeapBytes: r.Uint64(),
		ReportCluster: str(), ReportPath: "/" + str(), ReportAuthority: str()}
	c.SlackMs = c.TickMs + r.Uint32N(1000)
	c.ReportMs = c.TickMs + r.Uint32N(1000)
	c.defaults()
	return c
}

// What the control plane writes, the plugin reads back unchanged.
func TestPluginConfigRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		c := randomPluginConfig(r)
		b := c.AppendJSON(nil)
		require.True(t, json.Valid(b), "%s", b)
		got, err := ParsePluginConfig(b)
		require.NoError(t, err, "%s", b)
		require.Equal(t, c, got, "%s", b)
	}
}

// FuzzParsePluginConfig: never panics, and whatever it accepts it writes
// back to something it reads as the same configuration.
func FuzzParsePluginConfig(f *testing.F) {
	for _, seed := range []string{`{"limit":1}`, `{"route":"jobs","limit":100,"window_ms":1000,"max_delay_ms":15000,"mode":"delay"}`, `{"limit":"x"}`, `{}`, `{"report_ms":1,"tick_ms":1}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParsePluginConfig(data)
		if err != nil {
			return
		}
		again, err := ParsePluginConfig(c.AppendJSON(nil))
		require.NoError(t, err)
		require.Equal(t, c, again)
	})
}
