package admission

import (
	"testing"
	"time"
)

func TestMostInWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	for _, tc := range []struct {
		times    []time.Time
		want     int
		fromMs   int
		wantZero bool
	}{
		{times: nil, want: 0, wantZero: true},
		{times: at(0), want: 1},
		{times: at(0, 999), want: 2},
		{times: at(0, 1000), want: 1}, // half-open: 1000 is the next window
		{times: at(0, 500, 1200, 1300, 1400), want: 4, fromMs: 500},
	} {
		most, from := MostInWindow(tc.times, time.Second)
		if most != tc.want {
			t.Errorf("MostInWindow(%v) = %d, want %d", tc.times, most, tc.want)
		}
		if tc.wantZero != from.IsZero() || (!tc.wantZero && !from.Equal(t0.Add(time.Duration(tc.fromMs)*time.Millisecond))) {
			t.Errorf("MostInWindow(%v) from %v, want +%dms", tc.times, from, tc.fromMs)
		}
	}
}
