package admission

import (
	"testing"
	"time"
)

func TestDelayBucket(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{10 * time.Millisecond, 0},
		{10*time.Millisecond + 1, 1},
		{time.Second, 6},
		{time.Hour, len(DelayBucketsMs) - 1},
		{time.Hour + time.Millisecond, len(DelayBucketsMs)},
	} {
		if got := DelayBucket(tc.d); got != tc.want {
			t.Errorf("DelayBucket(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestCountsAdd(t *testing.T) {
	var a, b Counts
	a.Admitted, b.Delayed = 2, 3
	b.Released(40 * time.Millisecond)
	b.Released(2 * time.Second)
	a.Add(b)
	if a.Admitted != 2 || a.Delayed != 3 || a.ReleasedTotal() != 2 || a.DelaySumMs != 2040 || a.IsZero() {
		t.Fatalf("got %+v", a)
	}
}

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
