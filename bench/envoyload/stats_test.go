package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	// 10 rps over two 1 s slices (plain, then test) with a 200 ms settle:
	// requests 0-1 and 10-11 are settling; request 4 failed, 15 was never sent.
	sl := harness.Slicing{Slice: time.Second, Settle: 200 * ms1, Order: []int{armBase, armTest}}
	r := &openRun{sched: schedule{rate: 10}, sl: sl}
	n := r.sched.count(sl.Total())
	require.Equal(t, 20, n)
	r.start, r.end, r.failed = make([]time.Duration, n), make([]time.Duration, n), make([]bool, n)
	for i := range n {
		due := r.sched.offset(i)
		lat := time.Duration(i+1) * ms1
		if i >= 10 {
			lat *= 2 // the test arm is slower
		}
		r.start[i], r.end[i] = due+ms1/10, due+lat
	}
	r.failed[4] = true
	r.end[15] = -1

	arms := r.arms()
	base, test := arms[armBase], arms[armTest]
	assert.Equal(t, 8, base.Requests)
	assert.Equal(t, 1, base.Errors)
	assert.Equal(t, 10, base.Sent)
	assert.Equal(t, 7, base.Latency.N)
	assert.InDelta(t, 7/0.8, base.RPS, 1e-9)
	// plain's recorded latencies: 3,4,6,7,8,9,10 ms
	assert.Equal(t, harness.Latency{N: 7, P50: 7 * ms1, P90: 10 * ms1, P99: 10 * ms1, Max: 10 * ms1}, base.Latency)
	assert.Equal(t, ms1/10, base.Lag.Max)

	assert.Equal(t, 8, test.Requests)
	assert.Equal(t, 1, test.Errors)
	assert.Equal(t, 9, test.Sent)
	// test's recorded latencies: 26,28,30,34,36,38,40 ms
	assert.Equal(t, harness.Latency{N: 7, P50: 34 * ms1, P90: 40 * ms1, P99: 40 * ms1, Max: 40 * ms1}, test.Latency)
}

func TestArmsCPU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	sl := harness.Slicing{Slice: time.Second, Settle: 100 * ms1, Order: []int{armTest, armBase, armBase, armTest}}
	// Cumulative ticks at each slice boundary: plain slices cost envoy 50
	// ticks a second, test slices 80, and serve 10 more.
	samples := []harness.CPUSample{
		{At: t0, Busy: 0, Procs: []uint64{0, 0, 0}},
		{At: t0.Add(1 * time.Second), Busy: 120, Procs: []uint64{10, 20, 80}},
		{At: t0.Add(2 * time.Second), Busy: 190, Procs: []uint64{20, 30, 130}},
		{At: t0.Add(3 * time.Second), Busy: 260, Procs: []uint64{30, 40, 180}},
		{At: t0.Add(4 * time.Second), Busy: 380, Procs: []uint64{40, 60, 260}},
	}
	tests := map[string]struct {
		samples []harness.CPUSample
		sent    [numArms]int
		want    [numArms]armCPU
	}{
		"split by arm": {
			samples: samples,
			sent:    [numArms]int{armBase: 2000, armTest: 2000},
			want: [numArms]armCPU{
				armBase: {
					cpuUsage: cpuUsage{Generator: 0.1, SUT: 0.1, Envoy: 0.5, Ours: 0.7},
					// 20+20+100 ticks = 1.4 s of CPU over 2000 requests
					GeneratorUs: 100, SUTUs: 100, EnvoyUs: 500, OursUs: 700,
				},
				armTest: {
					cpuUsage:    cpuUsage{Generator: 0.1, SUT: 0.2, Envoy: 0.8, Ours: 1.1, Others: 0.1},
					GeneratorUs: 100, SUTUs: 200, EnvoyUs: 800, OursUs: 1100,
				},
			},
		},
		"no requests: cores only": {
			samples: samples,
			want: [numArms]armCPU{
				armBase: {cpuUsage: cpuUsage{Generator: 0.1, SUT: 0.1, Envoy: 0.5, Ours: 0.7}},
				armTest: {cpuUsage: cpuUsage{Generator: 0.1, SUT: 0.2, Envoy: 0.8, Ours: 1.1, Others: 0.1}},
			},
		},
		"missing samples": {samples: samples[:3], sent: [numArms]int{1, 1}},
		"no samples":      {samples: nil, sent: [numArms]int{1, 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := armsCPU(tc.samples, sl, tc.sent)
			for a := range numArms {
				w, g := tc.want[a], got[a]
				for _, v := range [][2]float64{
					{w.Generator, g.Generator}, {w.SUT, g.SUT}, {w.Envoy, g.Envoy}, {w.Ours, g.Ours}, {w.Others, g.Others}, {w.Steal, g.Steal},
					{w.GeneratorUs, g.GeneratorUs}, {w.SUTUs, g.SUTUs}, {w.EnvoyUs, g.EnvoyUs}, {w.OursUs, g.OursUs},
				} {
					assert.InDelta(t, v[0], v[1], 1e-9, "arm %d: want %+v, got %+v", a, w, g)
				}
			}
		})
	}
}

func TestPolicyTextLoads(t *testing.T) {
	services := map[string]string{
		"legacy": "127.0.0.1:1001", "candidate": "127.0.0.1:1002",
		"blackhole": "127.0.0.1:1003", "slow": "127.0.0.1:1004", "refused": "127.0.0.1:1005",
	}
	tests := map[string]struct {
		percent float64
		faults  bool
		routes  []string
	}{
		"default":     {percent: 10, routes: []string{"plain", "mirrored"}},
		"with faults": {percent: 10, faults: true, routes: []string{"plain", "mirrored", "shadow-blackholed", "shadow-slow", "shadow-refused"}},
		"fractional":  {percent: 0.5, routes: []string{"plain", "mirrored"}},
		"everything":  {percent: 100, routes: []string{"plain", "mirrored"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p, err := policy.Parse([]byte(policyText("127.0.0.1:1000", services, tc.percent, tc.faults)), "policy.yaml")
			require.NoError(t, err)
			var names []string
			for _, r := range p.Routes {
				names = append(names, r.Name)
				if r.Name == "plain" {
					assert.Nil(t, r.Shadow, "the plain route mirrors nothing")
					continue
				}
				require.NotNil(t, r.Shadow, r.Name)
				assert.InDelta(t, tc.percent, r.Shadow.Percent, 1e-9, r.Name)
				assert.Equal(t, "legacy", r.Primary.Name, r.Name)
			}
			assert.Equal(t, tc.routes, names)
		})
	}
}
