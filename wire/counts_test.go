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
