package wire

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// DelayBucketsMs are the upper bounds, in milliseconds, of the delay
// histogram every admission reporter uses (the wasm plugin, the ext_proc
// server and the report), so counts from any of them add up. A delay d
// falls in the first bucket whose bound is >= d; beyond the last bound it
// falls in an extra, unbounded bucket (index len(DelayBucketsMs)).
//
// Above 10 ms no bound is more than 25 % above the one before (17 per
// decade), so a percentile interpolated within its bucket is off by less
// than a quarter of its value at worst and reads as "5.5 s", not "≤ 10 s".
// Every bound of CoarseDelayBucketsMs is one of them.
var DelayBucketsMs = [...]uint32{
	1, 2, 5, 10, 12, 14, 15, 16, 18, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 120, 140, 150,
	160, 180, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1500, 1600,
	1800, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 7000, 8000, 9000, 10000, 12000, 14000,
	15000, 16000, 18000, 20000, 25000, 30000, 35000, 40000, 45000, 50000, 60000, 70000, 80000, 90000,
	100000, 120000, 140000, 150000, 160000, 180000, 200000, 250000, 300000, 350000, 400000, 450000,
	500000, 600000, 700000, 800000, 900000, 1000000, 1200000, 1400000, 1500000, 1600000, 1800000,
	2000000, 2500000, 3000000, 3500000, 3600000,
}

// CoarseDelayBucketsMs are the bounds of the earlier, coarse histogram:
// the Prometheus histogram keeps them (fine buckets summed into them, so
// dashboards and series count stay as they were), and stores written with
// them are read into the fine layout by FromCoarse.
var CoarseDelayBucketsMs = [...]uint32{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000, 60000, 300000, 900000, 3600000}

// FromCoarse returns the fine bucket holding what coarse bucket i counted
// (the one with the same bound; the overflow bucket for the coarse
// overflow, i = len(CoarseDelayBucketsMs)), or -1 for an i out of range.
func FromCoarse(i int) int {
	switch {
	case i == len(CoarseDelayBucketsMs):
		return len(DelayBucketsMs)
	case i < 0 || i > len(CoarseDelayBucketsMs):
		return -1
	}
	for j, b := range DelayBucketsMs {
		if b == CoarseDelayBucketsMs[i] {
			return j
		}
	}
	return -1 // not reached: every coarse bound is a fine one (TestCoarseBoundsAreFine)
}

// DelayBucket is the index of d's bucket: 0..len(DelayBucketsMs).
func DelayBucket(d time.Duration) int {
	ms := d.Milliseconds()
	if d > time.Duration(ms)*time.Millisecond {
		ms++ // round up: a bucket's bound is inclusive
	}
	i, _ := slices.BinarySearch(DelayBucketsMs[:], uint32(min(max(ms, 0), math.MaxUint32)))
	return i
}

// Counts are the admission outcomes of one route and key over some period.
// Every request is counted once at its decision (Admitted, Delayed,
// Rejected, FailOpen; with observe, Admitted plus ObservedDelay or
// ObservedReject for what delay or reject mode would have done); a delayed
// request is counted again when it ends, either released (its wait in
// DelayBuckets and DelaySumMs) or Abandoned by its client while held.
type Counts struct {
	Admitted       uint64 `json:"admitted"`
	Delayed        uint64 `json:"delayed"`
	Rejected       uint64 `json:"rejected"`
	ObservedDelay  uint64 `json:"observed_delay"`
	ObservedReject uint64 `json:"observed_reject"`
	Abandoned      uint64 `json:"abandoned"`
	FailOpen       uint64 `json:"fail_open"`
	// DelayBuckets[i] counts released requests whose wait fell in bucket i
	// (see DelayBucketsMs); DelaySumMs is the sum of their waits.
	DelayBuckets [len(DelayBucketsMs) + 1]uint64 `json:"delay_buckets"`
	DelaySumMs   uint64                          `json:"delay_sum_ms"`
}

// Released records one held request released after waiting d.
func (c *Counts) Released(d time.Duration) {
	i := DelayBucket(d)
	c.DelayBuckets[i] = SatAdd(c.DelayBuckets[i], 1)
	c.DelaySumMs = SatAdd(c.DelaySumMs, uint64(max(d.Milliseconds(), 0)))
}

// Add adds o to c. Every field saturates at math.MaxUint64 instead of
// wrapping: counts come from peers, and a forged report must not turn a
// large count into a small one.
func (c *Counts) Add(o Counts) {
	dst := c.scalars()
	for i, n := range o.scalars() {
		*dst[i] = SatAdd(*dst[i], *n)
	}
	for i, n := range o.DelayBuckets {
		c.DelayBuckets[i] = SatAdd(c.DelayBuckets[i], n)
	}
	c.DelaySumMs = SatAdd(c.DelaySumMs, o.DelaySumMs)
}

// SatAdd is a+b, or math.MaxUint64 when that overflows.
func SatAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

// IsZero reports whether nothing was counted.
func (c Counts) IsZero() bool { return c == Counts{} }

// ReleasedTotal counts the requests released after a hold.
func (c Counts) ReleasedTotal() uint64 {
	var n uint64
	for _, b := range c.DelayBuckets {
		n = SatAdd(n, b)
	}
	return n
}

// DelayQuantile estimates quantile q (0 < q <= 1) of the released
// requests' waits from the histogram: linear within the bucket that holds
// it (between the bucket's lower and upper bound), the upper bound for
// q = 1 (the maximum lies in the highest non-empty bucket), and -1 when it
// falls in the overflow bucket (past an hour). 0 when nothing was
// released.
func (c *Counts) DelayQuantile(q float64) time.Duration {
	total := c.ReleasedTotal()
	if total == 0 {
		return 0
	}
	rank := q * float64(total) // the rank-th wait, 1-based, fractional
	var below uint64
	for i, n := range c.DelayBuckets {
		if n == 0 || float64(below)+float64(n) < rank {
			below = SatAdd(below, n)
			continue
		}
		if i == len(DelayBucketsMs) {
			return -1
		}
		hi := float64(DelayBucketsMs[i])
		if q >= 1 {
			return time.Duration(hi * float64(time.Millisecond))
		}
		lo := 0.0
		if i > 0 {
			lo = float64(DelayBucketsMs[i-1])
		}
		frac := (rank - float64(below)) / float64(n)
		return time.Duration((lo + frac*(hi-lo)) * float64(time.Millisecond))
	}
	return -1 // not reached: rank <= total
}
