//go:build !wasm

// The SDK host emulator (proxytest) exists only for native builds.

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/wire"
	"github.com/stretchr/testify/require"
)

// fakeClock is the injected time source; tests move it by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// start is an arbitrary instant.
var start = time.UnixMilli(1_700_000_000_000)

// newHost starts the SDK's host emulator with the plugin and cfg as its
// plugin configuration. The emulator is process-global: no t.Parallel.
func newHost(t *testing.T, cfg string, clock *fakeClock) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: clock.now, seed: 42}).
		WithPluginConfiguration([]byte(cfg)).
		WithProperty([]string{"xds", "route_name"}, []byte("reminders"))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	require.Equal(t, types.OnPluginStartStatusOK, host.StartPlugin())
	return host
}

var requestHeaders = [][2]string{
	{":method", "GET"}, {":path", "/reminders"}, {":authority", "example"}, {"x-tenant", "acme"},
}

func header(headers [][2]string, name string) string {
	for _, h := range headers {
		if h[0] == name {
			return h[1]
		}
	}
	return ""
}

// pc is a config without its admission budget.
func pc(c wire.PluginConfig) config { return config{PluginConfig: c} }

// withReportDefaults fills in the defaults of the report fields.
func withReportDefaults(c config) config {
	c.ReportPath, c.ReportAuthority, c.ReportMs = wire.ReportPath, wire.ReportAuthority, wire.DefaultReportMs
	return c
}

func TestParseConfig(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    config // adm is checked separately
		wantAdm admission.Config
		wantErr []string
	}{
		"defaults": {
			in:      `{"limit": 100, "max_delay_ms": 15000}`,
			want:    withReportDefaults(pc(wire.PluginConfig{Limit: 100, WindowMs: 1000, MaxDelayMs: 15000, TickMs: 20, SlackMs: 20, MaxHeld: 10000, MaxKeys: 1000, Mode: "delay"})),
			wantAdm: admission.Config{Limit: 100, Window: time.Second, MaxDelay: 15 * time.Second, Mode: admission.ModeDelay, Slack: 20 * time.Millisecond},
		},
		"all fields": {
			in: `{"limit": 5, "window_ms": 60000, "tick_ms": 10, "max_held": 7, "max_keys": 9,
			      "mode": "reject", "key_header": "x-tenant", "gc_heap_bytes": 8388608}`,
			want: withReportDefaults(pc(wire.PluginConfig{Limit: 5, WindowMs: 60000, TickMs: 10, SlackMs: 10, MaxHeld: 7, MaxKeys: 9,
				Mode: "reject", KeyHeader: "x-tenant", GCHeapBytes: 8 << 20})),
			wantAdm: admission.Config{Limit: 5, Window: time.Minute, Mode: admission.ModeReject, Slack: 10 * time.Millisecond},
		},
		"observe without delay": {
			in:      `{"limit": 1, "mode": "observe"}`,
			want:    withReportDefaults(pc(wire.PluginConfig{Limit: 1, WindowMs: 1000, TickMs: 20, SlackMs: 20, MaxHeld: 10000, MaxKeys: 1000, Mode: "observe"})),
			wantAdm: admission.Config{Limit: 1, Window: time.Second, Mode: admission.ModeObserve, Slack: 20 * time.Millisecond},
		},
		"route, slack and reports": {
			in: `{"limit": 10, "max_delay_ms": 1000, "tick_ms": 10, "slack_ms": 25, "route": "reminders-policy",
			      "report_cluster": "shadowlab_control", "report_path": "/r", "report_authority": "cp", "report_ms": 500}`,
			want: pc(wire.PluginConfig{Limit: 10, WindowMs: 1000, MaxDelayMs: 1000, TickMs: 10, SlackMs: 25, MaxHeld: 10000, MaxKeys: 1000,
				Mode: "delay", Route: "reminders-policy", ReportCluster: "shadowlab_control", ReportPath: "/r", ReportAuthority: "cp", ReportMs: 500}),
			wantAdm: admission.Config{Limit: 10, Window: time.Second, MaxDelay: time.Second, Mode: admission.ModeDelay, Slack: 25 * time.Millisecond},
		},
		"slack_ms below tick_ms": {
			in:      `{"limit": 10, "max_delay_ms": 1000, "tick_ms": 20, "slack_ms": 10}`,
			wantErr: []string{"configuration.slack_ms: must be >= tick_ms 20 (got 10)"},
		},
		"slack_ms over the window": {
			in:      `{"limit": 10, "max_delay_ms": 1000, "window_ms": 100, "slack_ms": 200}`,
			wantErr: []string{"configuration.slack_ms: must be between 0 and the window 100ms (got 200ms)"},
		},
		"report fields": {
			in: `{"limit": 1, "max_delay_ms": 1000, "tick_ms": 50, "report_ms": 40, "report_path": "api", "report_cluster": 1}`,
			wantErr: []string{
				"configuration.report_cluster: must be a string",
			},
		},
		"report_ms and report_path": {
			in: `{"limit": 1, "max_delay_ms": 1000, "tick_ms": 50, "report_ms": 40, "report_path": "api"}`,
			wantErr: []string{
				"configuration.report_ms: must be >= tick_ms 50 (got 40)",
				`configuration.report_path: must start with / (got "api")`,
			},
		},
		"empty":         {in: " ", wantErr: []string{"configuration: empty"}},
		"not json":      {in: `limit=1`, wantErr: []string{"configuration: expected '{' at offset 0"}},
		"unknown field": {in: `{"limit": 1, "hold_ms": 3}`, wantErr: []string{"configuration.hold_ms: unknown field"}},
		"wrong types": {
			in: `{"limit": -1, "max_delay_ms": 1.5, "window_ms": "1000", "mode": 3, "gc_heap_bytes": true}`,
			wantErr: []string{
				"configuration.limit: must be a whole number", "configuration.max_delay_ms: must be a whole number",
				"configuration.window_ms: must be a whole number", "configuration.mode: must be a string",
				"configuration.gc_heap_bytes: must be a whole number",
			},
		},
		"too large": {in: `{"limit": 4294967296}`, wantErr: []string{"configuration.limit: must be a whole number between 0 and 4294967295"}},
		"nested":    {in: `{"limit": {"n": 1}}`, wantErr: []string{"nested objects are not supported"}},
		"duplicate": {in: `{"limit": 1, "limit": 2}`, wantErr: []string{`duplicate key "limit"`}},
		"trailing":  {in: `{"limit": 1} {}`, wantErr: []string{"unexpected data after the object"}},
		"escapes in strings": {
			in:      `{"limit": 1, "max_delay_ms": 5, "key_header": "x-t\u0065nant"}`,
			want:    withReportDefaults(pc(wire.PluginConfig{Limit: 1, WindowMs: 1000, MaxDelayMs: 5, TickMs: 20, SlackMs: 20, MaxHeld: 10000, MaxKeys: 1000, Mode: "delay", KeyHeader: "x-tenant"})),
			wantAdm: admission.Config{Limit: 1, Window: time.Second, MaxDelay: 5 * time.Millisecond, Mode: admission.ModeDelay, Slack: 20 * time.Millisecond},
		},
		"every problem reported": {
			in: `{"mode": "drop", "window_ms": 100, "tick_ms": 500}`,
			wantErr: []string{
				"configuration.limit: must be between 1 and 1000000000 (got 0)",
				`configuration.mode: must be delay, reject or observe (got "drop")`,
				"configuration.tick_ms: must be between 0 and the window 100ms (got 500ms)",
			},
		},
		"delay needs max_delay_ms": {
			in:      `{"limit": 10}`,
			wantErr: []string{"configuration.max_delay_ms: required with mode delay"},
		},
		"reject forbids max_delay_ms": {
			in:      `{"limit": 10, "mode": "reject", "max_delay_ms": 100}`,
			wantErr: []string{"configuration.max_delay_ms: must be 0 with mode reject"},
		},
		"limit too large": {
			in:      `{"limit": 2000000000, "mode": "reject"}`,
			wantErr: []string{"configuration.limit: must be between 1 and 1000000000"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseConfig([]byte(tc.in))
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					require.Contains(t, err.Error(), w)
				}
				require.Len(t, unjoin(err), len(tc.wantErr), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantAdm, got.adm)
			got.adm = admission.Config{}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestConfigHash(t *testing.T) {
	a, err := parseConfig([]byte(`{"limit": 100, "max_delay_ms": 15000}`))
	require.NoError(t, err)
	b, err := parseConfig([]byte(`{"limit": 101, "max_delay_ms": 15000}`))
	require.NoError(t, err)
	c, err := parseConfig([]byte(`{"max_delay_ms": 15000, "limit": 100, "max_held": 5}`))
	require.NoError(t, err)
	require.Len(t, a.hash(), 8)
	require.NotEqual(t, a.hash(), b.hash(), "a new limit must start fresh states")
	require.Equal(t, a.hash(), c.hash(), "max_held does not shape the state")
	for _, other := range []string{
		`{"limit": 100, "max_delay_ms": 15000, "route": "reminders-policy"}`,
		`{"limit": 100, "max_delay_ms": 15000, "slack_ms": 30}`,
	} {
		o, err := parseConfig([]byte(other))
		require.NoError(t, err)
		require.NotEqual(t, a.hash(), o.hash(), "%s", other)
	}
	r, err := parseConfig([]byte(`{"limit": 100, "max_delay_ms": 15000, "slack_ms": 20, "report_cluster": "cp", "report_ms": 5000}`))
	require.NoError(t, err)
	require.Equal(t, a.hash(), r.hash(), "an explicit default slack and the report fields do not shape the state")
}

func TestPluginStartRejectsBadConfig(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: time.Now}).
		WithPluginConfiguration([]byte(`{"limit": 0, "mode": "delay", "window_ms": 10, "tick_ms": 20}`))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	require.Equal(t, types.OnPluginStartStatusFailed, host.StartPlugin())
	logs := strings.Join(host.GetCriticalLogs(), "\n")
	for _, want := range []string{"configuration.limit: must be between", "configuration.max_delay_ms: required", "configuration.tick_ms: must be between"} {
		require.Contains(t, logs, want)
	}
}

// sent is what happened to one request at its headers.
type sent struct {
	id         uint32
	action     types.Action
	admission  string
	status     uint32 // local response, 0 if none
	retryAfter int
}

func send(t *testing.T, host proxytest.HostEmulator, headers [][2]string) sent {
	t.Helper()
	id := host.InitializeHttpContext()
	r := sent{id: id, action: host.CallOnRequestHeaders(id, headers, false)}
	r.admission = header(host.GetCurrentRequestHeaders(id), wire.HeaderAdmission)
	if resp := host.GetSentLocalResponse(id); resp != nil {
		r.status = resp.StatusCode
		r.admission = header(resp.Headers, wire.HeaderAdmission)
		r.retryAfter, _ = strconv.Atoi(header(resp.Headers, "retry-after"))
	}
	return r
}

func counter(t *testing.T, host proxytest.HostEmulator, name string) uint64 {
	t.Helper()
	v, err := host.GetCounterMetric("shadowlab_admission_" + name)
	require.NoError(t, err)
	return v
}

// TestBurst sends 1000 requests at one instant and ticks the emulator until
// every held request is released, recording when each reached the upstream.
func TestBurst(t *testing.T) {
	const n = 1000
	tests := map[string]struct {
		cfg string
		// checks on the release times (ns since start, sorted) and requests
		check func(t *testing.T, host proxytest.HostEmulator, released []time.Duration, res []sent)
	}{
		"delay: at most the limit per 1 s window, none over max delay": {
			cfg: `{"limit": 100, "window_ms": 1000, "max_delay_ms": 15000, "tick_ms": 20}`,
			check: func(t *testing.T, host proxytest.HostEmulator, released []time.Duration, res []sent) {
				require.Len(t, released, n, "every request reaches the upstream")
				for i := 0; i+100 < len(released); i++ {
					require.GreaterOrEqual(t, released[i+100]-released[i], time.Second,
						"releases %d..%d within one window", i, i+100)
				}
				require.LessOrEqual(t, released[n-1], 15*time.Second)
				perSecond := map[int]int{}
				for _, r := range released {
					perSecond[int(r/time.Second)]++
				}
				for s, c := range perSecond {
					require.LessOrEqual(t, c, 100, "second %d", s)
				}
				require.EqualValues(t, n, counter(t, host, "passed")+counter(t, host, "held"))
				require.Equal(t, counter(t, host, "held"), counter(t, host, "released"))
				require.Zero(t, counter(t, host, "rejected"))
				h, err := host.GetHistogramMetric("shadowlab_admission_delay_ms")
				require.NoError(t, err)
				require.Positive(t, h, "last recorded delay")
				g, err := host.GetGaugeMetric("shadowlab_admission_held_now")
				require.NoError(t, err)
				require.Zero(t, g)
			},
		},
		"delay with a short max delay rejects the rest at once": {
			cfg: `{"limit": 100, "window_ms": 1000, "max_delay_ms": 2000, "tick_ms": 20}`,
			check: func(t *testing.T, host proxytest.HostEmulator, released []time.Duration, res []sent) {
				rejected := 0
				for _, r := range res {
					if r.status == 429 {
						rejected++
						require.Positive(t, r.retryAfter)
					}
				}
				require.Equal(t, n, len(released)+rejected)
				require.InDelta(t, 200, len(released), 5)
				for i := 0; i+100 < len(released); i++ {
					require.GreaterOrEqual(t, released[i+100]-released[i], time.Second)
				}
				require.LessOrEqual(t, released[len(released)-1], 2*time.Second)
			},
		},
		"reject: the limit passes, the rest get 429 with spread Retry-After": {
			cfg: `{"limit": 100, "window_ms": 1000, "mode": "reject"}`,
			check: func(t *testing.T, host proxytest.HostEmulator, released []time.Duration, res []sent) {
				require.Len(t, released, 100)
				require.Zero(t, released[99], "all at once")
				values := map[int]int{}
				for _, r := range res {
					if r.status == 0 {
						continue
					}
					require.EqualValues(t, 429, r.status)
					require.Equal(t, wire.AdmissionRejected, r.admission)
					require.GreaterOrEqual(t, r.retryAfter, 1)
					require.LessOrEqual(t, r.retryAfter, 62)
					values[r.retryAfter]++
				}
				require.GreaterOrEqual(t, len(values), 5, "Retry-After values %v", values)
				for v, c := range values {
					require.LessOrEqual(t, c, 150, "Retry-After %d given %d times", v, c)
				}
				require.EqualValues(t, 900, counter(t, host, "rejected"))
			},
		},
		"observe (delay): everything passes at once, would-be delays counted": {
			cfg: `{"limit": 100, "window_ms": 1000, "max_delay_ms": 5000, "mode": "observe"}`,
			check: func(t *testing.T, host proxytest.HostEmulator, released []time.Duration, res []sent) {
				require.Len(t, released, n)
				require.Zero(t, released[n-1])
				for _, r := range res {
					require.Equal(t, wire.AdmissionPassed, r.admission)
				}
				od, or := counter(t, host, "observed_delay"), counter(t, host, "observed_reject")
				require.InDelta(t, 490, od, 10)
				require.EqualValues(t, n, od+or+1, "only the first would have passed at once")
				require.Zero(t, counter(t, host, "held")+counter(t, host, "rejected"))
			},
		},
		"observe (reject): everything passes, would-be 429s counted": {
			cfg: `{"limit": 100, "window_ms": 1000, "mode": "observe"}`,
			check: func(t *testing.T, host proxytest.HostEmulator, released []time.Duration, res []sent) {
				require.Len(t, released, n)
				require.Zero(t, released[n-1])
				require.EqualValues(t, 900, counter(t, host, "observed_reject"))
				require.Zero(t, counter(t, host, "observed_delay"))
				require.EqualValues(t, n, counter(t, host, "passed"))
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: start}
			host := newHost(t, tc.cfg, clock)
			var released []time.Duration
			var res []sent
			var held []uint32
			for range n {
				r := send(t, host, requestHeaders)
				res = append(res, r)
				switch {
				case r.action == types.ActionContinue:
					released = append(released, 0)
					host.CompleteHttpContext(r.id)
				case r.status != 0:
					host.CompleteHttpContext(r.id)
				default:
					require.Equal(t, wire.AdmissionHeld, r.admission)
					held = append(held, r.id)
				}
			}
			for len(held) > 0 && clock.t.Sub(start) < 30*time.Second {
				clock.advance(20 * time.Millisecond)
				host.Tick()
				held = slices.DeleteFunc(held, func(id uint32) bool {
					if host.GetCurrentHttpStreamAction(id) != types.ActionContinue {
						return false
					}
					released = append(released, clock.t.Sub(start))
					host.CompleteHttpContext(id)
					return true
				})
			}
			require.Empty(t, held, "still held after 30 s")
			slices.Sort(released)
			tc.check(t, host, released, res)
		})
	}
}

// TestAbandoned: held requests whose client goes away are dropped, never
// resumed, and leave nothing behind.
func TestAbandoned(t *testing.T) {
	clock := &fakeClock{t: start}
	vm := &recordingVM{vmContext: &vmContext{now: clock.now, seed: 7}}
	opt := proxytest.NewEmulatorOption().
		WithVMContext(vm).
		WithPluginConfiguration([]byte(`{"limit": 1, "window_ms": 1000, "max_delay_ms": 10000, "tick_ms": 10}`))
	host, reset := proxytest.NewHostEmulator(opt)
	t.Cleanup(reset)
	require.Equal(t, types.OnPluginStartStatusOK, host.StartPlugin())

	require.Equal(t, types.ActionContinue, send(t, host, requestHeaders).action)
	var held []uint32
	for range 5 {
		r := send(t, host, requestHeaders)
		require.Equal(t, types.ActionPause, r.action)
		require.Zero(t, r.status)
		held = append(held, r.id)
	}
	for _, id := range held[:4] {
		host.CompleteHttpContext(id)
	}
	g, err := host.GetGaugeMetric("shadowlab_admission_held_now")
	require.NoError(t, err)
	require.EqualValues(t, 1, g)
	require.EqualValues(t, 4, counter(t, host, "abandoned"))
	for range 1000 {
		clock.advance(10 * time.Millisecond)
		host.Tick()
	}
	require.Equal(t, types.ActionContinue, host.GetCurrentHttpStreamAction(held[4]))
	host.CompleteHttpContext(held[4])
	require.EqualValues(t, 1, counter(t, host, "released"), "abandoned requests are not resumed")
	require.EqualValues(t, 4, counter(t, host, "abandoned"))
	g, err = host.GetGaugeMetric("shadowlab_admission_held_now")
	require.NoError(t, err)
	require.Zero(t, g)
	require.Len(t, vm.plugins, 1)
	for _, pc := range vm.plugins {
		require.Empty(t, pc.held)
		require.Zero(t, pc.queue.Len())
	}
}

// recordingVM is the plugin's VM context, keeping the plugin contexts it
// creates so tests can look inside.
type recordingVM struct {
	*vmContext
	plugins []*pluginContext
}

func (v *recordingVM) NewPluginContext(id uint32) types.PluginContext {
	pc := v.vmContext.newAdmission(id)
	v.plugins = append(v.plugins, pc)
	return pc
}

func TestMaxHeld(t *testing.T) {
	host := newHost(t, `{"limit": 1, "max_delay_ms": 10000, "max_held": 2}`, &fakeClock{t: start})
	var got []string
	for range 5 {
		r := send(t, host, requestHeaders)
		got = append(got, fmt.Sprint(r.admission, r.status))
		if r.status == 429 {
			require.Positive(t, r.retryAfter)
		}
	}
	require.Equal(t, []string{"passed0", "held0", "held0", "rejected429", "rejected429"}, got)
	require.EqualValues(t, 2, counter(t, host, "held_full"))
}

func TestMaxKeys(t *testing.T) {
	host := newHost(t, `{"limit": 1, "mode": "reject", "key_header": "x-tenant", "max_keys": 2}`, &fakeClock{t: start})
	tenant := func(name string) [][2]string { return [][2]string{{":path", "/"}, {"x-tenant", name}} }
	for _, tc := range []struct {
		tenant string
		want   uint32
	}{{"a", 0}, {"b", 0}, {"a", 429}, {"c", 0}, {"c", 0}, {"b", 429}} {
		r := send(t, host, tenant(tc.tenant))
		require.Equal(t, tc.want, r.status, "tenant %s", tc.tenant)
	}
	require.EqualValues(t, 2, counter(t, host, "fail_open_keys_full"))
	require.EqualValues(t, 2, counter(t, host, "fail_open"))
}

func TestHeldHeaderRecordsWait(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 1, "max_delay_ms": 5000, "tick_ms": 20}`, clock)
	require.Equal(t, types.ActionContinue, send(t, host, requestHeaders).action)
	r := send(t, host, requestHeaders)
	require.Equal(t, types.ActionPause, r.action)
	for host.GetCurrentHttpStreamAction(r.id) != types.ActionContinue {
		require.Less(t, clock.t.Sub(start), 5*time.Second)
		clock.advance(20 * time.Millisecond)
		host.Tick()
	}
	ms, err := strconv.Atoi(header(host.GetCurrentRequestHeaders(r.id), wire.HeaderHeldMs))
	require.NoError(t, err)
	require.Equal(t, clock.t.Sub(start).Milliseconds(), int64(ms))
	require.LessOrEqual(t, ms, 5000)
}

func TestClientHeaderIsOverwritten(t *testing.T) {
	host := newHost(t, `{"limit": 10, "max_delay_ms": 1000}`, &fakeClock{t: start})
	spoofed := append([][2]string{{wire.HeaderAdmission, "held"}}, requestHeaders...)
	r := send(t, host, spoofed)
	require.Equal(t, types.ActionContinue, r.action)
	require.Equal(t, wire.AdmissionPassed, r.admission)
}

// TestBudgetKey checks that budgets are per route, and per key header when
// one is configured.
func TestBudgetKey(t *testing.T) {
	tests := map[string]struct {
		cfg     string
		tenants []string
		want    []uint32
	}{
		"per route: tenants share it": {
			cfg:     `{"limit": 1, "mode": "reject"}`,
			tenants: []string{"acme", "globex"},
			want:    []uint32{0, 429},
		},
		"per tenant: each has its own": {
			cfg:     `{"limit": 1, "mode": "reject", "key_header": "x-tenant"}`,
			tenants: []string{"acme", "globex", "acme"},
			want:    []uint32{0, 0, 429},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			host := newHost(t, tc.cfg, &fakeClock{t: start})
			for i, tenant := range tc.tenants {
				h := [][2]string{{":method", "GET"}, {":path", "/"}, {"x-tenant", tenant}}
				require.Equal(t, tc.want[i], send(t, host, h).status, "request %d (%s)", i, tenant)
			}
		})
	}
}

// racyStore is a shared-data store whose first `races` writes lose a CAS race.
type racyStore struct {
	data  map[string][]byte
	cas   map[string]uint32
	races int
	err   error // returned by get when set
}

func newRacyStore() *racyStore {
	return &racyStore{data: map[string][]byte{}, cas: map[string]uint32{}}
}

func (s *racyStore) get(k string) ([]byte, uint32, error) {
	if s.err != nil {
		return nil, 0, s.err
	}
	v, ok := s.data[k]
	if !ok {
		return nil, 0, types.ErrorStatusNotFound
	}
	return v, s.cas[k], nil
}

func (s *racyStore) set(k string, v []byte, cas uint32) error {
	if s.races > 0 {
		s.races--
		s.cas[k]++ // another worker wrote
		if _, ok := s.data[k]; !ok {
			s.data[k] = nil
		}
		return types.ErrorStatusCasMismatch
	}
	if _, ok := s.data[k]; ok && cas != s.cas[k] {
		return types.ErrorStatusCasMismatch
	}
	s.data[k] = slices.Clone(v)
	s.cas[k]++
	return nil
}

func TestStoreDecide(t *testing.T) {
	cfg := admission.Config{Limit: 2, Window: time.Second, Mode: admission.ModeReject}
	tests := map[string]struct {
		races       int
		err         error
		requests    int
		wantOutcome []admission.Action
		wantRetries int
		wantErr     error
	}{
		"fresh key admits and stores": {requests: 3, wantOutcome: []admission.Action{admission.Admit, admission.Admit, admission.Reject}},
		"cas races are retried":       {races: 3, requests: 1, wantOutcome: []admission.Action{admission.Admit}, wantRetries: 3},
		"too many races fail open":    {races: maxCASAttempts, requests: 1, wantRetries: maxCASAttempts, wantErr: errCASExhausted},
		"host error is returned":      {err: types.ErrorStatusBadArgument, requests: 1, wantErr: types.ErrorStatusBadArgument},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rs := newRacyStore()
			rs.races, rs.err = tc.races, tc.err
			if tc.races > 0 {
				rs.data["k"] = nil // the key exists: the races hit its state, not the key count
			}
			s := &store{get: rs.get, set: rs.set, cfg: cfg, rnd: &rng{s: 1}, keysKey: "k#keys", maxKeys: 10, known: map[string]struct{}{}}
			for i := range tc.requests {
				d, retries, err := s.decide("k", start)
				require.True(t, errors.Is(err, tc.wantErr), "err %v, want %v", err, tc.wantErr)
				if i == 0 {
					require.Equal(t, tc.wantRetries, retries)
				}
				if err == nil {
					require.Equal(t, tc.wantOutcome[i], d.Outcome, "request %d", i)
				}
			}
		})
	}
}

func TestStoreCorruptStateStartsFresh(t *testing.T) {
	rs := newRacyStore()
	rs.data["k"], rs.cas["k"] = []byte("garbage"), 5
	s := &store{get: rs.get, set: rs.set, cfg: admission.Config{Limit: 1, Window: time.Second, Mode: admission.ModeReject},
		rnd: &rng{s: 1}, keysKey: "k#keys", maxKeys: 10, known: map[string]struct{}{}}
	d, _, err := s.decide("k", start)
	require.NoError(t, err)
	require.Equal(t, admission.Admit, d.Outcome)
	require.Len(t, rs.data["k"], admission.StateSize)
}

// TestNoForbiddenImports keeps zap, grpc and go-control-plane out of the
// plugin build, directly or transitively (DESIGN.md, layout), and
// encoding/json (module size: see flatjson.go and report.go).
func TestNoForbiddenImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"go.uber.org/zap", "google.golang.org/grpc", "github.com/envoyproxy/go-control-plane", "encoding/json"} {
			require.False(t, strings.HasPrefix(dep, bad), "plugin build depends on %s", dep)
		}
	}
}

func TestTickPublishesVMMemory(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 1, "mode": "reject"}`, clock)
	host.Tick()
	sys, err := host.GetGaugeMetric("shadowlab_vm_sys_bytes")
	require.NoError(t, err)
	require.NotZero(t, sys)
	_, err = host.GetCounterMetric("shadowlab_vm_gc")
	require.NoError(t, err)
}

// TestHeldBodyStaysHeld: with allow_on_headers_stop_iteration Envoy keeps
// delivering body data to a held request; a Continue would release it.
func TestHeldBodyStaysHeld(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 1, "max_delay_ms": 5000, "tick_ms": 10}`, clock)
	passed := host.InitializeHttpContext()
	require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(passed, requestHeaders, false))
	require.Equal(t, types.ActionContinue, host.CallOnRequestBody(passed, []byte("a"), true))

	held := host.InitializeHttpContext()
	require.Equal(t, types.ActionPause, host.CallOnRequestHeaders(held, requestHeaders, false))
	require.Equal(t, types.ActionPause, host.CallOnRequestBody(held, []byte("b"), false))
	clock.advance(5 * time.Second) // max_delay_ms
	host.Tick()
	require.Equal(t, types.ActionContinue, host.GetCurrentHttpStreamAction(held))
	require.Equal(t, types.ActionContinue, host.CallOnRequestBody(held, []byte("c"), true))
}

// TestStalledTicks: the worker stalls for 400 ms every 2 s (ticks stop,
// then one tick finds everything due at once). Each release is counted
// when it happens, so the backlog waits for room: at most the limit per
// sliding second at the upstream, nothing lost.
func TestStalledTicks(t *testing.T) {
	const n, limit = 1000, 100
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 100, "window_ms": 1000, "max_delay_ms": 15000, "tick_ms": 20}`, clock)
	var released []time.Duration
	var held []uint32
	for range n {
		r := send(t, host, requestHeaders)
		if r.action == types.ActionContinue {
			released = append(released, 0)
			host.CompleteHttpContext(r.id)
			continue
		}
		require.Zero(t, r.status, "nothing refused within max delay")
		held = append(held, r.id)
	}
	refused := 0
	for len(held) > 0 && clock.t.Sub(start) < 30*time.Second {
		step := 20 * time.Millisecond
		if clock.t.Sub(start)%(2*time.Second) == 0 {
			step = 400 * time.Millisecond // stalled
		}
		clock.advance(step)
		host.Tick()
		held = slices.DeleteFunc(held, func(id uint32) bool {
			if resp := host.GetSentLocalResponse(id); resp != nil {
				refused++
				host.CompleteHttpContext(id)
				return true
			}
			if host.GetCurrentHttpStreamAction(id) != types.ActionContinue {
				return false
			}
			released = append(released, clock.t.Sub(start))
			host.CompleteHttpContext(id)
			return true
		})
	}
	require.Empty(t, held, "still held after 30 s")
	require.Zero(t, refused, "max delay has room for the stalls")
	require.Len(t, released, n)
	slices.Sort(released)
	most := 0
	for i, j := 0, 0; j < len(released); j++ {
		for released[j]-released[i] >= time.Second {
			i++
		}
		most = max(most, j-i+1)
	}
	t.Logf("most in one sliding second %d, last release %v", most, released[n-1])
	require.LessOrEqual(t, most, limit, "releases in one sliding second")
	require.LessOrEqual(t, released[n-1], 15*time.Second)
	require.Positive(t, counter(t, host, "released"))
}

// sharedData is Envoy's shared data for tests: one map for several
// workers' stores, with a hook run after each get, so a test can let
// another worker act between one worker's read and its write.
type sharedData struct {
	data     map[string][]byte
	cas      map[string]uint32
	next     uint32
	afterGet func(key string)
}

func (s *sharedData) get(k string) ([]byte, uint32, error) {
	v, ok := s.data[k]
	if s.afterGet != nil {
		defer s.afterGet(k)
	}
	if !ok {
		return nil, 0, types.ErrorStatusNotFound
	}
	return v, s.cas[k], nil
}

// set is the host's: cas 0 writes unconditionally, as does any write of a
// missing key; otherwise the cas must match.
func (s *sharedData) set(k string, v []byte, cas uint32) error {
	if _, ok := s.data[k]; ok && cas != 0 && cas != s.cas[k] {
		return types.ErrorStatusCasMismatch
	}
	s.next++
	s.data[k], s.cas[k] = slices.Clone(v), s.next
	return nil
}

func (s *sharedData) store() *store {
	return &store{get: s.get, set: s.set, cfg: admission.Config{Limit: 1, Window: time.Second, Mode: admission.ModeReject},
		rnd: &rng{s: 1}, keysKey: "k#keys", maxKeys: 10, known: map[string]struct{}{}}
}

// TestStoreNewKeyRace: two workers find a key missing at the same instant;
// one creates it, the other waits for it and then decides with a proper
// CAS. At 1 per window only one request passes, whichever order the
// workers' reads and writes interleave in.
func TestStoreNewKeyRace(t *testing.T) {
	for _, point := range []string{"k", "k#keys"} { // the other worker acts after this read
		t.Run("other worker after reading "+point, func(t *testing.T) {
			sd := &sharedData{data: map[string][]byte{}, cas: map[string]uint32{}}
			a, b := sd.store(), sd.store()
			require.NoError(t, a.init())
			require.NoError(t, b.init())
			var dB admission.Decision
			var errB error
			acted := false
			sd.afterGet = func(key string) {
				if key == point && !acted {
					acted = true
					dB, _, errB = b.decide("k", start)
				}
			}
			dA, _, errA := a.decide("k", start)
			passed := 0
			for _, r := range []struct {
				d   admission.Decision
				err error
			}{{dA, errA}, {dB, errB}} {
				if errors.Is(r.err, errCreating) {
					continue
				}
				require.NoError(t, r.err)
				if r.d.Outcome == admission.Admit {
					passed++
				}
			}
			require.Equal(t, 1, passed, "a: %+v %v; b: %+v %v", dA, errA, dB, errB)
			// The one that waited decides now, with a CAS: refused.
			for _, w := range []struct {
				s   *store
				err error
			}{{a, errA}, {b, errB}} {
				if errors.Is(w.err, errCreating) {
					d, _, err := w.s.decide("k", start)
					require.NoError(t, err)
					require.Equal(t, admission.Reject, d.Outcome)
				}
			}
		})
	}
}

// TestSubTickDelayPassesAtOnce: a delay shorter than the tick would be
// served a tick late; the request goes at once instead, when the window
// has room.
func TestSubTickDelayPassesAtOnce(t *testing.T) {
	host := newHost(t, `{"limit": 100, "window_ms": 1000, "max_delay_ms": 15000, "tick_ms": 100}`, &fakeClock{t: start})
	// At 100/s the first requests of a burst are due within a few 11 ms
	// slots: all before the first tick.
	for i := range 5 {
		r := send(t, host, requestHeaders)
		require.Equal(t, types.ActionContinue, r.action, "request %d", i)
		require.Equal(t, wire.AdmissionPassed, r.admission, "request %d", i)
	}
	require.Zero(t, counter(t, host, "held"))
}
