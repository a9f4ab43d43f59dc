//go:build !wasm

// The SDK host emulator (proxytest) exists only for native builds.

package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
	"github.com/stretchr/testify/require"
)

// fakeClock is the injected time source; tests move it by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// start is the beginning of a 1 s window, so window arithmetic is exact.
var start = time.UnixMilli(1_700_000_000_000)

// newHost starts the SDK's host emulator with the plugin and cfg as its
// plugin configuration. The emulator is process-global: no t.Parallel.
func newHost(t *testing.T, cfg string, clock *fakeClock) proxytest.HostEmulator {
	t.Helper()
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: clock.now}).
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

func TestParseConfig(t *testing.T) {
	tests := map[string]struct {
		in      string
		want    config
		wantErr []string
	}{
		"defaults": {
			in:   `{"limit": 100}`,
			want: config{Limit: 100, WindowMs: 1000, HoldMs: 200, TickMs: 20, MaxHeld: 10000, Mode: modeDelay},
		},
		"all fields": {
			in: `{"limit": 5, "window_ms": 60000, "hold_ms": 500, "tick_ms": 10, "max_held": 7,
			      "mode": "reject", "key_header": "x-tenant", "gc_heap_bytes": 8388608}`,
			want: config{Limit: 5, WindowMs: 60000, HoldMs: 500, TickMs: 10, MaxHeld: 7,
				Mode: modeReject, KeyHeader: "x-tenant", GCHeapBytes: 8 << 20},
		},
		"empty":         {in: " ", wantErr: []string{"configuration: empty"}},
		"not json":      {in: `limit=1`, wantErr: []string{"configuration: expected '{' at offset 0"}},
		"unknown field": {in: `{"limit": 1, "rate": 3}`, wantErr: []string{"configuration.rate: unknown field"}},
		"wrong types": {
			in: `{"limit": -1, "hold_ms": 1.5, "window_ms": "1000", "mode": 3, "gc_heap_bytes": true}`,
			wantErr: []string{
				"configuration.limit: must be a whole number", "configuration.hold_ms: must be a whole number",
				"configuration.window_ms: must be a whole number", "configuration.mode: must be a string",
				"configuration.gc_heap_bytes: must be a whole number",
			},
		},
		"too large": {in: `{"limit": 4294967296}`, wantErr: []string{"configuration.limit: must be a whole number between 0 and 4294967295"}},
		"nested":    {in: `{"limit": {"n": 1}}`, wantErr: []string{"nested objects and arrays are not supported"}},
		"duplicate": {in: `{"limit": 1, "limit": 2}`, wantErr: []string{`duplicate key "limit"`}},
		"trailing":  {in: `{"limit": 1} {}`, wantErr: []string{"unexpected data after the object"}},
		"escapes in strings": {
			in:   `{"limit": 1, "key_header": "x-t\u0065nant"}`,
			want: config{Limit: 1, WindowMs: 1000, HoldMs: 200, TickMs: 20, MaxHeld: 10000, Mode: modeDelay, KeyHeader: "x-tenant"},
		},
		"every problem reported": {
			in:      `{"mode": "drop", "hold_ms": 5, "tick_ms": 50}`,
			wantErr: []string{"limit: must be at least 1", `mode: must be "delay" or "reject" (got "drop")`, "tick_ms: must not exceed hold_ms (50 > 5)"},
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
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestPluginStartRejectsBadConfig(t *testing.T) {
	opt := proxytest.NewEmulatorOption().
		WithVMContext(&vmContext{now: time.Now}).
		WithPluginConfiguration([]byte(`{"limit": 0}`))
	host, reset := proxytest.NewHostEmulator(opt)
	defer reset()
	require.Equal(t, types.OnPluginStartStatusFailed, host.StartPlugin())
	require.Contains(t, strings.Join(host.GetCriticalLogs(), "\n"), "limit: must be at least 1")
}

// TestAdmission sends a sequence of requests inside one window and checks
// what happens to each, what the tick releases and what stream-done drops.
func TestAdmission(t *testing.T) {
	type step struct {
		requests  int           // new requests at this instant
		abandon   int           // held requests whose client goes away (oldest first)
		advance   time.Duration // then move the clock and tick
		wantPaus  int           // of the new requests, how many are paused (held or rejected)
		want429   int           // of the new requests, how many got 429
		wantFreed int           // held requests resumed by the tick after advance
	}
	tests := map[string]struct {
		cfg         string
		steps       []step
		wantMetrics map[string]uint64
	}{
		"under the limit everything passes": {
			cfg:         `{"limit": 3}`,
			steps:       []step{{requests: 3, advance: time.Millisecond}},
			wantMetrics: map[string]uint64{"passed": 3, "held": 0, "rejected": 0},
		},
		"over the limit is held then released by the tick": {
			cfg: `{"limit": 2, "hold_ms": 200, "tick_ms": 20}`,
			steps: []step{
				{requests: 5, wantPaus: 3, advance: 199 * time.Millisecond},
				{advance: time.Millisecond, wantFreed: 3},
			},
			wantMetrics: map[string]uint64{"passed": 2, "held": 3, "released": 3, "abandoned": 0},
		},
		"abandoned held requests are dropped, not resumed": {
			cfg: `{"limit": 1, "hold_ms": 100, "tick_ms": 10}`,
			steps: []step{
				{requests: 4, wantPaus: 3, abandon: 2, advance: 100 * time.Millisecond, wantFreed: 1},
			},
			wantMetrics: map[string]uint64{"passed": 1, "held": 3, "released": 1, "abandoned": 2},
		},
		"a new window restarts the budget": {
			cfg: `{"limit": 2, "window_ms": 1000, "hold_ms": 100, "tick_ms": 10}`,
			steps: []step{
				{requests: 3, wantPaus: 1, advance: time.Second, wantFreed: 1},
				{requests: 2, wantPaus: 0},
			},
			wantMetrics: map[string]uint64{"passed": 4, "held": 1, "released": 1},
		},
		"reject mode answers 429": {
			cfg:         `{"limit": 1, "mode": "reject"}`,
			steps:       []step{{requests: 3, wantPaus: 2, want429: 2}},
			wantMetrics: map[string]uint64{"passed": 1, "rejected": 2, "held": 0},
		},
		"max_held bounds the held requests, the rest get 429": {
			cfg:         `{"limit": 1, "max_held": 2}`,
			steps:       []step{{requests: 5, wantPaus: 4, want429: 2}},
			wantMetrics: map[string]uint64{"passed": 1, "held": 2, "rejected": 2},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: start}
			host := newHost(t, tc.cfg, clock)
			var held []uint32 // paused, not rejected, not yet released or abandoned
			for i, s := range tc.steps {
				paused, rejected := 0, 0
				for range s.requests {
					id := host.InitializeHttpContext()
					action := host.CallOnRequestHeaders(id, requestHeaders, false)
					got := header(host.GetCurrentRequestHeaders(id), headerAdmission)
					if action == types.ActionContinue {
						require.Equal(t, admissionPassed, got, "step %d", i)
						host.CompleteHttpContext(id)
						continue
					}
					paused++
					if resp := host.GetSentLocalResponse(id); resp != nil {
						rejected++
						require.EqualValues(t, 429, resp.StatusCode)
						require.Equal(t, "1", header(resp.Headers, "retry-after"))
						host.CompleteHttpContext(id)
						continue
					}
					require.Equal(t, admissionHeld, got, "step %d", i)
					held = append(held, id)
				}
				require.Equal(t, s.wantPaus, paused, "step %d: paused", i)
				require.Equal(t, s.want429, rejected, "step %d: rejected", i)

				for _, id := range held[:s.abandon] {
					host.CompleteHttpContext(id)
				}
				held = held[s.abandon:]

				clock.advance(s.advance)
				host.Tick()
				var still []uint32
				freed := 0
				for _, id := range held {
					if host.GetCurrentHttpStreamAction(id) == types.ActionContinue {
						freed++
						require.NotEmpty(t, header(host.GetCurrentRequestHeaders(id), headerHeldMs))
						host.CompleteHttpContext(id)
						continue
					}
					still = append(still, id)
				}
				held = still
				require.Equal(t, s.wantFreed, freed, "step %d: released", i)
			}
			for name, want := range tc.wantMetrics {
				got, err := host.GetCounterMetric("shadowlab_admission_" + name)
				require.NoError(t, err)
				require.Equal(t, want, got, "metric %s", name)
			}
		})
	}
}

func TestHeldHeaderRecordsWait(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 1, "hold_ms": 200, "tick_ms": 20}`, clock)
	first := host.InitializeHttpContext()
	require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(first, requestHeaders, false))
	id := host.InitializeHttpContext()
	require.Equal(t, types.ActionPause, host.CallOnRequestHeaders(id, requestHeaders, false))
	clock.advance(230 * time.Millisecond)
	host.Tick()
	require.Equal(t, types.ActionContinue, host.GetCurrentHttpStreamAction(id))
	require.Equal(t, "230", header(host.GetCurrentRequestHeaders(id), headerHeldMs))
}

func TestClientHeaderIsOverwritten(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 10}`, clock)
	id := host.InitializeHttpContext()
	spoofed := append([][2]string{{headerAdmission, "held"}}, requestHeaders...)
	require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(id, spoofed, false))
	require.Equal(t, admissionPassed, header(host.GetCurrentRequestHeaders(id), headerAdmission))
}

// TestBudgetKey checks that budgets are per route, and per key header when
// one is configured.
func TestBudgetKey(t *testing.T) {
	tests := map[string]struct {
		cfg     string
		tenants []string
		want    []types.Action
	}{
		"per route: tenants share it": {
			cfg:     `{"limit": 1}`,
			tenants: []string{"acme", "globex"},
			want:    []types.Action{types.ActionContinue, types.ActionPause},
		},
		"per tenant: each has its own": {
			cfg:     `{"limit": 1, "key_header": "x-tenant"}`,
			tenants: []string{"acme", "globex", "acme"},
			want:    []types.Action{types.ActionContinue, types.ActionContinue, types.ActionPause},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			host := newHost(t, tc.cfg, &fakeClock{t: start})
			for i, tenant := range tc.tenants {
				id := host.InitializeHttpContext()
				h := [][2]string{{":method", "GET"}, {":path", "/"}, {"x-tenant", tenant}}
				require.Equal(t, tc.want[i], host.CallOnRequestHeaders(id, h, false), "request %d (%s)", i, tenant)
			}
		})
	}
}

// racyStore is a shared-data store whose first `races` writes lose a CAS race.
type racyStore struct {
	value []byte
	cas   uint32
	races int
	err   error // returned by get when set
}

func (s *racyStore) get(string) ([]byte, uint32, error) {
	if s.err != nil {
		return nil, 0, s.err
	}
	if s.value == nil {
		return nil, 0, types.ErrorStatusNotFound
	}
	return s.value, s.cas, nil
}

func (s *racyStore) set(_ string, v []byte, cas uint32) error {
	if s.races > 0 {
		s.races--
		w, n := decodeCounter(s.value)
		s.value, s.cas = encodeCounter(max(w, 7), n+1), s.cas+1 // another worker counted
		return types.ErrorStatusCasMismatch
	}
	if s.value != nil && cas != s.cas {
		return types.ErrorStatusCasMismatch
	}
	s.value, s.cas = v, s.cas+1
	return nil
}

func TestCountInWindow(t *testing.T) {
	tests := map[string]struct {
		store       racyStore
		window      int64
		wantN       uint32
		wantRetries int
		wantErr     error
	}{
		"first request creates the key": {window: 7, wantN: 1},
		"same window increments":        {store: racyStore{value: encodeCounter(7, 41), cas: 3}, window: 7, wantN: 42},
		"older window restarts":         {store: racyStore{value: encodeCounter(6, 41), cas: 3}, window: 7, wantN: 1},
		"malformed value restarts":      {store: racyStore{value: []byte("x"), cas: 3}, window: 7, wantN: 1},
		"cas races are retried":         {store: racyStore{value: encodeCounter(7, 10), cas: 1, races: 3}, window: 7, wantN: 14, wantRetries: 3},
		"too many races fail open": {
			store: racyStore{value: encodeCounter(7, 0), cas: 1, races: maxCASAttempts}, window: 7,
			wantRetries: maxCASAttempts, wantErr: errCASExhausted,
		},
		"host error is returned": {store: racyStore{err: types.ErrorStatusBadArgument}, window: 7, wantErr: types.ErrorStatusBadArgument},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := tc.store
			n, retries, err := countInWindow(s.get, s.set, "k", tc.window)
			require.True(t, errors.Is(err, tc.wantErr), "err %v, want %v", err, tc.wantErr)
			require.Equal(t, tc.wantN, n)
			require.Equal(t, tc.wantRetries, retries)
		})
	}
}

// TestNoForbiddenImports keeps zap, grpc and go-control-plane out of the
// plugin build, directly or transitively (DESIGN.md, layout).
func TestNoForbiddenImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"go.uber.org/zap", "google.golang.org/grpc", "github.com/envoyproxy/go-control-plane"} {
			require.False(t, strings.HasPrefix(dep, bad), "plugin build depends on %s", dep)
		}
	}
}

func TestTickPublishesVMMemory(t *testing.T) {
	clock := &fakeClock{t: start}
	host := newHost(t, `{"limit": 1}`, clock)
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
	host := newHost(t, `{"limit": 1, "hold_ms": 100, "tick_ms": 10}`, clock)
	passed := host.InitializeHttpContext()
	require.Equal(t, types.ActionContinue, host.CallOnRequestHeaders(passed, requestHeaders, false))
	require.Equal(t, types.ActionContinue, host.CallOnRequestBody(passed, []byte("a"), true))

	held := host.InitializeHttpContext()
	require.Equal(t, types.ActionPause, host.CallOnRequestHeaders(held, requestHeaders, false))
	require.Equal(t, types.ActionPause, host.CallOnRequestBody(held, []byte("b"), false))
	clock.advance(100 * time.Millisecond)
	host.Tick()
	require.Equal(t, types.ActionContinue, host.GetCurrentHttpStreamAction(held))
	require.Equal(t, types.ActionContinue, host.CallOnRequestBody(held, []byte("c"), true))
}
