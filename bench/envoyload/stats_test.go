package main

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/policy"
)

const ms1 = time.Millisecond

func TestScheduleOffset(t *testing.T) {
	tests := map[string]struct {
		rate float64
		i    int
		want time.Duration
	}{
		"first request at zero":       {rate: 1000, i: 0, want: 0},
		"1000 rps, second request":    {rate: 1000, i: 1, want: ms1},
		"1000 rps, 1001st request":    {rate: 1000, i: 1000, want: time.Second},
		"3 rps rounds to nanoseconds": {rate: 3, i: 1, want: 333_333_333},
		"3 rps, no drift at 3000":     {rate: 3, i: 3000, want: 1000 * time.Second},
		"fractional rate":             {rate: 2.5, i: 5, want: 2 * time.Second},
		"high rate":                   {rate: 40_000, i: 40_000 * 20, want: 20 * time.Second},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, schedule{rate: tc.rate}.offset(tc.i))
		})
	}
}

func TestScheduleCount(t *testing.T) {
	tests := map[string]struct {
		rate float64
		d    time.Duration
		want int
	}{
		"nothing in no time":                  {rate: 1000, d: 0, want: 0},
		"negative duration":                   {rate: 1000, d: -time.Second, want: 0},
		"the request at zero is due":          {rate: 1000, d: 1, want: 1},
		"exact edge excluded":                 {rate: 1000, d: time.Second, want: 1000},
		"just past the edge":                  {rate: 1000, d: time.Second + 1, want: 1001},
		"3 rps over 1 s: 0, 1/3, 2/3":         {rate: 3, d: time.Second, want: 3},
		"3 rps over 10 s":                     {rate: 3, d: 10 * time.Second, want: 30},
		"fractional rate, partial period":     {rate: 2.5, d: 1100 * ms1, want: 3},
		"rounded offset at the edge excluded": {rate: 3, d: 333_333_333, want: 1},
		"rounded offset just past the edge":   {rate: 3, d: 333_333_334, want: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := schedule{rate: tc.rate}
			n := s.count(tc.d)
			assert.Equal(t, tc.want, n)
			if n > 0 {
				assert.Less(t, s.offset(n-1), tc.d, "the last counted request is due before d")
			}
			assert.GreaterOrEqual(t, s.offset(n), tc.d, "the first uncounted request is due at or after d")
		})
	}
}

func TestOpenRunArms(t *testing.T) {
	// 10 rps over three 1 s slices (arm 0, 2, 1) with a 200 ms settle:
	// requests 0-1, 10-11 and 20-21 are settling; request 4 failed, 15 was
	// never sent.
	sl := harness.Slicing{Slice: time.Second, Settle: 200 * ms1, Order: []int{0, 2, 1}}
	r := &openRun{sched: schedule{rate: 10}, sl: sl}
	n := r.sched.count(sl.Total())
	require.Equal(t, 30, n)
	r.start, r.end, r.failed = make([]time.Duration, n), make([]time.Duration, n), make([]bool, n)
	for i := range n {
		due := r.sched.offset(i)
		lat := time.Duration(i%10+1) * ms1 * time.Duration(1+i/10) // each slice slower than the last
		r.start[i], r.end[i] = due+ms1/10, due+lat
	}
	r.failed[4] = true
	r.end[15] = -1

	arms := r.arms(3)
	require.Len(t, arms, 3)
	want := []struct {
		requests, errors, sent int
		lat                    harness.Latency
	}{
		// slice 0: latencies 3,4,6,7,8,9,10 ms recorded (5 failed)
		0: {8, 1, 10, harness.Latency{N: 7, P50: 7 * ms1, P90: 10 * ms1, P99: 10 * ms1, Max: 10 * ms1}},
		// slice 2 (requests 20-29, ×3): 9,12,…,30 ms
		1: {8, 0, 10, harness.Latency{N: 8, P50: 18 * ms1, P90: 30 * ms1, P99: 30 * ms1, Max: 30 * ms1}},
		// slice 1 (requests 10-19, ×2): 6,8,10,14,16,18,20 ms (12 never sent)
		2: {8, 1, 9, harness.Latency{N: 7, P50: 14 * ms1, P90: 20 * ms1, P99: 20 * ms1, Max: 20 * ms1}},
	}
	for a, w := range want {
		assert.Equal(t, w.requests, arms[a].Requests, "arm %d requests", a)
		assert.Equal(t, w.errors, arms[a].Errors, "arm %d errors", a)
		assert.Equal(t, w.sent, arms[a].Sent, "arm %d sent", a)
		assert.Equal(t, w.lat, arms[a].Latency, "arm %d latency", a)
		assert.InDelta(t, float64(w.lat.N)/0.8, arms[a].RPS, 1e-9, "arm %d rps", a)
		assert.Equal(t, ms1/10, arms[a].Lag.Max, "arm %d lag", a)
	}
}

func TestArmsCPU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sl := harness.Slicing{Slice: time.Second, Settle: 100 * ms1, Order: []int{1, 0, 2, 0, 1, 2}}
	// Cumulative ticks of generator, services, serve, Envoy at each slice
	// boundary: arm 0's slices cost Envoy 50 ticks a second, arm 1's 80
	// and serve 10 more, arm 2's 90 and serve 30 more; 10 ticks a second
	// each for the generator and the services.
	per := [][]uint64{0: {10, 10, 0, 50}, 1: {10, 10, 10, 80}, 2: {10, 10, 30, 90}}
	samples := []harness.CPUSample{{At: t0, Procs: make([]uint64, numProcs)}}
	for k, a := range sl.Order {
		prev := samples[k]
		s := harness.CPUSample{At: prev.At.Add(time.Second), Procs: slices.Clone(prev.Procs), Busy: prev.Busy}
		for i, v := range per[a] {
			s.Procs[i] += v
			s.Busy += v
		}
		samples = append(samples, s)
	}
	got := armsCPU(samples, sl, []int{2000, 1000, 4000})
	require.Len(t, got, 3)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"arm 0 Envoy µs/req: 100 ticks = 1 s over 2000", got[0].EnvoyUs, 500}, {"arm 0 serve µs/req", got[0].ServeUs, 0},
		{"arm 0 Envoy cores", got[0].Envoy, 0.5}, {"arm 0 our cores", got[0].Ours, 0.7},
		{"arm 1 Envoy µs/req: 160 ticks over 1000", got[1].EnvoyUs, 1600}, {"arm 1 serve µs/req", got[1].ServeUs, 200},
		{"arm 1 generator µs/req", got[1].GeneratorUs, 200}, {"arm 1 services µs/req", got[1].ServicesUs, 200},
		{"arm 1 our µs/req", got[1].OursUs, 2200},
		{"arm 2 serve µs/req: 60 ticks over 4000", got[2].ServeUs, 150}, {"arm 2 serve cores", got[2].Serve, 0.3},
	} {
		assert.InDelta(t, c.want, c.got, 1e-9, c.name)
	}
	assert.Equal(t, make([]armCPU, 3), armsCPU(samples[:3], sl, []int{1, 1, 1}), "missing samples: zero values")
	none := armsCPU(samples, sl, []int{0, 0, 0})
	assert.Zero(t, none[1].EnvoyUs, "no requests: no µs per request")
	assert.InDelta(t, 0.8, none[1].Envoy, 1e-9, "no requests: cores still")
}

func TestCostOf(t *testing.T) {
	arm := func(envoyUs, share, serveUs float64, sent, pairs int) armResult {
		return armResult{CPU: armCPU{EnvoyUs: envoyUs, ServeUs: serveUs}, Share: share, armRun: armRun{Sent: sent}, Report: captureCounts{Pairs: pairs + 7, Outcomes: map[string]int{"match": pairs - pairs/3, "diff": pairs / 3, "primary_only": 7}}}
	}
	tests := map[string]struct {
		arms []armResult
		want pairCost
	}{
		"10 %, equal shares: (captured − mirror) / share": {
			// plain 100 µs; mirroring adds 30 µs per mirrored request, capture 40 more.
			arms: []armResult{arm(100, 0, 0, 1000, 0), arm(103, 0.1, 0, 1000, 0), arm(107, 0.1, 5, 1000, 100)},
			want: pairCost{Mirroring: 30, Capture: 40, Serve: 50},
		},
		"shares differ: each arm by its own share": {
			// mirror mirrored 8 %, captured 12 %: 30 × 0.12 + 40 × 0.12 = 8.4 µs more than plain.
			arms: []armResult{arm(100, 0, 0, 1000, 0), arm(102.4, 0.08, 0, 1000, 0), arm(108.4, 0.12, 6, 1000, 120)},
			want: pairCost{Mirroring: 30, Capture: 40, Serve: 50},
		},
		"100 %": {
			arms: []armResult{arm(100, 0, 0, 500, 0), arm(130, 1, 0, 500, 0), arm(170, 1, 49, 500, 490)},
			want: pairCost{Mirroring: 30, Capture: 40, Serve: 50},
		},
		"nothing mirrored or paired: zeros, no division by zero": {
			arms: []armResult{arm(100, 0, 0, 10, 0), arm(100, 0, 0, 10, 0), arm(120, 0, 3, 10, 0)},
			want: pairCost{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := costOf(tc.arms)
			for _, v := range [][2]float64{
				{tc.want.Mirroring, got.Mirroring}, {tc.want.Capture, got.Capture}, {tc.want.Serve, got.Serve},
			} {
				assert.InDelta(t, v[0], v[1], 1e-9, "want %+v, got %+v", tc.want, got)
			}
		})
	}
	assert.InDelta(t, 10_000, pairsPerCore(100), 1e-9, "1e6 / µs per pair")
	assert.Zero(t, pairsPerCore(0), "no measurement")
}

func TestPolicyTextLoads(t *testing.T) {
	services := map[string]string{
		"legacy": "127.0.0.1:1001", "candidate": "127.0.0.1:1002",
		"blackhole": "127.0.0.1:1003", "slow": "127.0.0.1:1004", "refused": "127.0.0.1:1005",
	}
	tests := map[string]struct {
		arms   []arm
		routes []string
	}{
		"10 and 100 %, faults, serve": {
			arms: slices.Concat(percentArms(10), percentArms(100), faultArms(10, "5s"), serveArms()),
			routes: []string{"plain", "mirror-10", "captured-10", "mirror-100", "captured-100",
				"fault-blackholed", "fault-slow", "fault-refused", "serve-1k", "serve-16k"},
		},
		"fractional": {
			arms:   percentArms(0.5),
			routes: []string{"plain", "mirror-0_5", "captured-0_5"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := policy.Parse([]byte(policyText("127.0.0.1:1000", services, tc.arms)), "policy.yaml")
			require.NoError(t, err)
			var names []string
			for _, r := range p.Routes {
				names = append(names, r.Name)
				assert.Equal(t, "legacy", r.Primary.Name, r.Name)
				a := tc.arms[slices.IndexFunc(tc.arms, func(a arm) bool { return a.Route == r.Name })]
				if a.Shadow == "" {
					assert.Nil(t, r.Shadow, "the plain route mirrors nothing")
					continue
				}
				require.NotNil(t, r.Shadow, r.Name)
				assert.InDelta(t, a.Percent, r.Shadow.Percent, 1e-9, r.Name)
				assert.Equal(t, a.Capture, r.Shadow.Capture, r.Name)
				assert.Equal(t, a.Shadow, r.Shadow.Service.Name, r.Name)
			}
			assert.Equal(t, tc.routes, names)
		})
	}
}

// The serve phase relies on the example API answering /large/ alike from
// the primary and the shadow, so that every pair is compared in full.
func TestServeBodiesMatch(t *testing.T) {
	now := time.Now()
	for _, a := range serveArms() {
		legacy := backend.API{}.Answer("GET", a.Path, now)
		candidate := backend.API{Candidate: true}.Answer("GET", a.Path, now.Add(time.Second))
		assert.Equal(t, legacy, candidate, a.Path)
		assert.Greater(t, len(legacy.Body), 1000, a.Path)
	}
}
