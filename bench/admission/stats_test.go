package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ms1 = time.Millisecond

func TestMostInWindow(t *testing.T) {
	tests := map[string]struct {
		at       []time.Duration
		w        time.Duration
		wantMost int
		wantFrom time.Duration
	}{
		"none":                    {w: time.Second},
		"one":                     {at: []time.Duration{5 * ms1}, w: time.Second, wantMost: 1, wantFrom: 5 * ms1},
		"window is half-open":     {at: []time.Duration{0, 1000 * ms1}, w: time.Second, wantMost: 1},
		"just inside":             {at: []time.Duration{0, 999 * ms1}, w: time.Second, wantMost: 2},
		"unsorted, densest later": {at: []time.Duration{2500 * ms1, 0, 2000 * ms1, 2999 * ms1, 1500 * ms1}, w: time.Second, wantMost: 3, wantFrom: 2000 * ms1},
		"across an aligned second": {
			at: []time.Duration{900 * ms1, 950 * ms1, 1050 * ms1, 1100 * ms1, 2500 * ms1}, w: time.Second, wantMost: 4, wantFrom: 900 * ms1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			most, from := mostInWindow(tc.at, tc.w)
			assert.Equal(t, tc.wantMost, most)
			assert.Equal(t, tc.wantFrom, from)
		})
	}
}

func TestPerSecond(t *testing.T) {
	tests := map[string]struct {
		at   []time.Duration
		want []int
	}{
		"none":                   {want: nil},
		"edges":                  {at: []time.Duration{0, 999 * ms1, 1000 * ms1}, want: []int{2, 1}},
		"empty seconds are kept": {at: []time.Duration{2500 * ms1}, want: []int{0, 0, 1}},
		"negative counts as 0":   {at: []time.Duration{-ms1, ms1}, want: []int{2}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, perSecond(tc.at))
		})
	}
}

func TestHistogram(t *testing.T) {
	got := histogram([]int{100, 50, 0}, 10)
	assert.Equal(t, "  0-1   s   100 ##########\n  1-2   s    50 #####\n  2-3   s     0 \n", got)
	assert.Empty(t, histogram(nil, 10))
}

func TestParseAccessLog(t *testing.T) {
	tests := map[string]struct {
		text    string
		want    map[string]logLine
		wantErr string
	}{
		"held, passed and rejected": {
			text: "delay/1/1 delay 1795321859.051487 14913 14 200\n" +
				"delay/0/1 delay 1795321859.000100 310 - 200\n" +
				"lrl/5/1 lrl 1795321859.000001 - - 429\n",
			want: map[string]logLine{
				"delay/1/1": {route: "delay", start: time.Unix(1795321859, 51487000), toSend: 14913 * time.Microsecond, heldMs: 14, status: 200},
				"delay/0/1": {route: "delay", start: time.Unix(1795321859, 100000), toSend: 310 * time.Microsecond, heldMs: -1, status: 200},
				"lrl/5/1":   {route: "lrl", start: time.Unix(1795321859, 1000), toSend: -1, heldMs: -1, status: 429},
			},
		},
		"empty":            {text: "", want: map[string]logLine{}},
		"too few fields":   {text: "a b c\n", wantErr: "3 fields"},
		"bad start":        {text: "a r 17953.12 1 - 200\n", wantErr: "line 1"},
		"bad held":         {text: "a r 1795321859.000001 1 x 200\n", wantErr: "line 1"},
		"bad on line two":  {text: "a r 1795321859.000001 1 - 200\nb r 1795321859.000001 1 - x\n", wantErr: "line 2"},
		"bad upstream dur": {text: "a r 1795321859.000001 zz - 200\n", wantErr: "line 1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseAccessLog(strings.NewReader(tc.text))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, got, len(tc.want))
			for id, w := range tc.want {
				g := got[id]
				assert.True(t, w.start.Equal(g.start), "%s start %v, want %v", id, g.start, w.start)
				w.start, g.start = time.Time{}, time.Time{}
				assert.Equal(t, w, g, id)
			}
		})
	}
}

func TestGroupGaps(t *testing.T) {
	tests := map[string]struct {
		at   []time.Duration
		want []time.Duration
	}{
		"none":              {want: nil},
		"one group":         {at: []time.Duration{0, 300 * time.Microsecond, 600 * time.Microsecond}, want: nil},
		"ticks 21 ms apart": {at: []time.Duration{21 * ms1, 0, 42 * ms1, 42*ms1 + 500*time.Microsecond}, want: []time.Duration{21 * ms1, 21 * ms1}},
		// A group is measured from its first offset, however long it is.
		"chained group": {at: []time.Duration{0, 900 * time.Microsecond, 1800 * time.Microsecond, 20 * ms1}, want: []time.Duration{20 * ms1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, groupGaps(tc.at, ms1))
		})
	}
}

func TestEdgeRows(t *testing.T) {
	var rows []releaseRow
	for i := range 20 {
		rows = append(rows, releaseRow{ID: fmt.Sprint(i), Sent: time.Duration(19-i) * 100 * ms1})
	}
	got := edgeRows(rows, 500*ms1, func(r releaseRow) time.Duration { return r.Sent })
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	// Sends 500 … 1400 ms are ids 14 … 5; the first and last 4 by send.
	assert.Equal(t, []string{"14", "13", "12", "11", "8", "7", "6", "5"}, ids)
}
