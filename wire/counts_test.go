package wire

import (
	"math"
	"testing"
	"time"
)

func TestDelayBucket(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{time.Millisecond, 0},
		{time.Millisecond + 1, 1},
		{10 * time.Millisecond, 3},
		{10*time.Millisecond + 1, 4},
		{5500 * time.Millisecond, 50},
		{time.Second, 37},
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

func TestCountsAddSaturates(t *testing.T) {
	c := Counts{Admitted: math.MaxUint64 - 1, DelaySumMs: math.MaxUint64}
	c.DelayBuckets[0] = math.MaxUint64
	o := Counts{Admitted: 5, Rejected: 3, DelaySumMs: 1}
	o.DelayBuckets[0], o.DelayBuckets[1] = 1, math.MaxUint64
	c.Add(o)
	if c.Admitted != math.MaxUint64 || c.Rejected != 3 || c.DelaySumMs != math.MaxUint64 || c.DelayBuckets[0] != math.MaxUint64 {
		t.Fatalf("Add wrapped: %+v", c)
	}
	if got := c.ReleasedTotal(); got != math.MaxUint64 {
		t.Fatalf("ReleasedTotal = %d, want it saturated", got)
	}
}

// The coarse bounds of the Prometheus histogram and of old stores are
// fine bounds, and no two fine bounds above 10 ms are more than 25 % apart.
func TestCoarseBoundsAreFine(t *testing.T) {
	for i, b := range CoarseDelayBucketsMs {
		j := FromCoarse(i)
		if j < 0 || DelayBucketsMs[j] != b {
			t.Fatalf("coarse bound %d ms is not a fine bound", b)
		}
	}
	if FromCoarse(len(CoarseDelayBucketsMs)) != len(DelayBucketsMs) || FromCoarse(-1) != -1 || FromCoarse(99) != -1 {
		t.Fatal("FromCoarse: overflow or range")
	}
	for i := 1; i < len(DelayBucketsMs); i++ {
		lo, hi := DelayBucketsMs[i-1], DelayBucketsMs[i]
		if hi <= lo || lo >= 10 && float64(hi) > 1.25*float64(lo) {
			t.Fatalf("bounds %d, %d ms", lo, hi)
		}
	}
}

func TestDelayQuantile(t *testing.T) {
	var c Counts
	if c.DelayQuantile(0.5) != 0 {
		t.Fatal("no releases: 0")
	}
	// 1 000 waits spread evenly over 0.01 s .. 11 s, as a burst drains.
	for i := range 1000 {
		c.Released(10*time.Millisecond + time.Duration(i)*11*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5500 * time.Millisecond}, {0.99, 10890 * time.Millisecond}, {0.1, 1100 * time.Millisecond}} {
		got := c.DelayQuantile(tc.q)
		if d := float64(got-tc.want) / float64(tc.want); d > 0.1 || d < -0.1 {
			t.Errorf("q %.2f: %s, want %s ±10%%", tc.q, got, tc.want)
		}
	}
	if got := c.DelayQuantile(1); got != 12*time.Second {
		t.Errorf("max: %s, want the highest bucket's bound 12s", got)
	}
	c.Released(2 * time.Hour)
	if got := c.DelayQuantile(1); got != -1 {
		t.Errorf("past the last bound: %s, want -1", got)
	}
}
