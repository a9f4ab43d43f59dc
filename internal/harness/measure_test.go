package harness

import (
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms1 = time.Millisecond

const armBase, armTest = 0, 1

func TestPercentile(t *testing.T) {
	seq := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * ms1
		}
		return out
	}
	tests := map[string]struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		"empty":                    {sorted: nil, p: 50, want: 0},
		"one value, any p":         {sorted: seq(1), p: 99, want: ms1},
		"p50 of 1..100":            {sorted: seq(100), p: 50, want: 50 * ms1},
		"p90 of 1..100":            {sorted: seq(100), p: 90, want: 90 * ms1},
		"p99 of 1..100":            {sorted: seq(100), p: 99, want: 99 * ms1},
		"p100 is the max":          {sorted: seq(100), p: 100, want: 100 * ms1},
		"p50 of 1..4 (rank 2)":     {sorted: seq(4), p: 50, want: 2 * ms1},
		"p50 of 1..5 (rank 3)":     {sorted: seq(5), p: 50, want: 3 * ms1},
		"p99 of 1..10 rounds up":   {sorted: seq(10), p: 99, want: 10 * ms1},
		"p99 of 1..1000":           {sorted: seq(1000), p: 99, want: 990 * ms1},
		"tiny p is the minimum":    {sorted: seq(1000), p: 0.0001, want: ms1},
		"p99.9 of 1..1000":         {sorted: seq(1000), p: 99.9, want: 999 * ms1},
		"p90 of 1..11 (rank 9.9)":  {sorted: seq(11), p: 90, want: 10 * ms1},
		"p99 of 1..101 (rank 100)": {sorted: seq(101), p: 99, want: 100 * ms1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Percentile(tc.sorted, tc.p))
		})
	}
}

func TestSummarize(t *testing.T) {
	tests := map[string]struct {
		lat  []time.Duration
		want Latency
	}{
		"empty":    {lat: nil, want: Latency{}},
		"one":      {lat: []time.Duration{5 * ms1}, want: Latency{N: 1, P50: 5 * ms1, P90: 5 * ms1, P99: 5 * ms1, Max: 5 * ms1}},
		"unsorted": {lat: []time.Duration{9, 1, 5, 3, 7, 2, 8, 4, 10, 6}, want: Latency{N: 10, P50: 5, P90: 9, P99: 10, Max: 10}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, Summarize(tc.lat))
		})
	}
}

func TestSlicing(t *testing.T) {
	sl := Slicing{Slice: 500 * ms1, Settle: 100 * ms1, Order: []int{armTest, armBase, armBase, armTest}}
	tests := map[string]struct {
		off          time.Duration
		slice, arm   int
		recorded, ok bool
	}{
		"start, settling":           {off: 0, slice: 0, arm: armTest, recorded: false, ok: true},
		"just before settle ends":   {off: 100*ms1 - 1, slice: 0, arm: armTest, recorded: false, ok: true},
		"settle over":               {off: 100 * ms1, slice: 0, arm: armTest, recorded: true, ok: true},
		"end of the first slice":    {off: 500*ms1 - 1, slice: 0, arm: armTest, recorded: true, ok: true},
		"second slice, settling":    {off: 500 * ms1, slice: 1, arm: armBase, recorded: false, ok: true},
		"third slice, recorded":     {off: 1200 * ms1, slice: 2, arm: armBase, recorded: true, ok: true},
		"last nanosecond":           {off: 2*time.Second - 1, slice: 3, arm: armTest, recorded: true, ok: true},
		"end of the phase":          {off: 2 * time.Second, ok: false},
		"before the phase":          {off: -1, ok: false},
		"far past the end of phase": {off: time.Hour, ok: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			slice, arm, rec, ok := sl.At(tc.off)
			require.Equal(t, tc.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tc.slice, slice, "slice")
			assert.Equal(t, tc.arm, arm, "arm")
			assert.Equal(t, tc.recorded, rec, "recorded")
		})
	}
	assert.Equal(t, 2*time.Second, sl.Total())
	assert.Equal(t, 800*ms1, sl.Recorded(armBase))
	assert.Equal(t, 800*ms1, sl.Recorded(armTest))
}

func TestInterleave(t *testing.T) {
	tests := map[string]struct{ arms, rounds int }{
		"none":              {2, 0},
		"one arm":           {1, 5},
		"two arms, one":     {2, 1},
		"two arms, forty":   {2, 40},
		"four arms, ten":    {4, 10},
		"seven arms, three": {7, 3},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			order := Interleave(tc.arms, tc.rounds, rand.New(rand.NewPCG(1, 2)))
			require.Len(t, order, tc.arms*tc.rounds)
			all := make([]int, tc.arms)
			for a := range all {
				all[a] = a
			}
			for k := 0; k < len(order); k += tc.arms {
				assert.ElementsMatch(t, all, order[k:k+tc.arms], "round %d holds every arm once", k/tc.arms)
			}
			assert.Equal(t, order, Interleave(tc.arms, tc.rounds, rand.New(rand.NewPCG(1, 2))), "same seed, same order")
		})
	}
	// Over many rounds every arm comes first about as often as the others:
	// no arm is locked to a position.
	const arms, rounds = 4, 400
	order := Interleave(arms, rounds, rand.New(rand.NewPCG(7, 7)))
	first := make([]int, arms)
	for k := 0; k < len(order); k += arms {
		first[order[k]]++
	}
	for a, n := range first {
		assert.InDelta(t, rounds/arms, n, 40, "arm %d first in about a quarter of the rounds", a)
	}
}

func TestPeakRSS(t *testing.T) {
	n, err := PeakRSS(os.Getpid())
	if err != nil || n <= 0 {
		t.Fatalf("PeakRSS of this process = %d, %v", n, err)
	}
}
