package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCPUUsage(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := map[string]struct {
		from, to CPUSample
		want     CPUUsage
		cores    []float64 // of each process
	}{
		"two cores, half ours": {
			from:  CPUSample{At: t0, Busy: 1000, Steal: 5, Procs: []uint64{10, 40, 50}},
			to:    CPUSample{At: t0.Add(2 * time.Second), Busy: 1400, Steal: 25, Procs: []uint64{30, 80, 190}},
			want:  CPUUsage{Ours: 1, Others: 1, Steal: 0.1},
			cores: []float64{0.1, 0.2, 0.7},
		},
		"others never negative": {
			from:  CPUSample{At: t0, Procs: []uint64{0}},
			to:    CPUSample{At: t0.Add(time.Second), Busy: 50, Procs: []uint64{52}},
			want:  CPUUsage{Ours: 0.52},
			cores: []float64{0.52},
		},
		"no time": {from: CPUSample{At: t0}, to: CPUSample{At: t0, Busy: 10}, want: CPUUsage{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := tc.from.Until(tc.to)
			got := d.Usage()
			assert.InDelta(t, tc.want.Ours, got.Ours, 1e-9, "ours")
			assert.InDelta(t, tc.want.Others, got.Others, 1e-9, "others")
			assert.InDelta(t, tc.want.Steal, got.Steal, 1e-9, "steal")
			for i, c := range tc.cores {
				assert.InDelta(t, c, d.Cores(d.Procs[i]), 1e-9, "process %d", i)
			}
			var sum CPUTime
			sum.Add(d)
			sum.Add(d)
			assert.Equal(t, 2*d.Ours(), sum.Ours(), "Add sums")
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
