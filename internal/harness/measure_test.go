package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms1 = time.Millisecond

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

func TestBusyTicks(t *testing.T) {
	tests := map[string]struct {
		line              string
		wantBusy, wantSte uint64
		wantErr           bool
	}{
		"ten fields":      {line: "cpu  270598 0 26452 385327 1011 0 1782 19603 0 0", wantBusy: 270598 + 26452 + 1782, wantSte: 19603},
		"eight fields":    {line: "cpu 1 2 3 4 5 6 7 8", wantBusy: 1 + 2 + 3 + 6 + 7, wantSte: 8},
		"too few fields":  {line: "cpu 1 2 3", wantErr: true},
		"not the cpu row": {line: "cpu0 1 2 3 4 5 6 7 8", wantErr: true},
		"not a number":    {line: "cpu 1 2 x 4 5 6 7 8", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			busy, steal, err := busyTicks(tc.line)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantBusy, busy)
			assert.Equal(t, tc.wantSte, steal)
		})
	}
}

func TestProcessTicks(t *testing.T) {
	tests := map[string]struct {
		stat    string
		want    uint64
		wantErr bool
	}{
		"plain name": {
			stat: "13443 (envoy) S 1 13443 1 0 -1 4194560 30455 0 0 0 431 120 0 0 20 0 12 0 319420 3331792896 32912",
			want: 551,
		},
		"name with spaces and parentheses": {
			stat: "42 (a (b) c) R 1 42 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			want: 10,
		},
		"no name":    {stat: "42 R 1", wantErr: true},
		"truncated":  {stat: "42 (x) R 1 2 3", wantErr: true},
		"bad number": {stat: "42 (x) R 1 42 1 0 -1 0 0 0 0 0 x 3 0", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := processTicks(tc.stat)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
