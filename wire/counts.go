package wire

import (
	"math"
	"math/bits"
	"time"
)

// DelayBucketsMs are the upper bounds, in milliseconds, of the delay
// histogram every admission reporter uses (the wasm plugin, the ext_proc
// server and the report), so counts from any of them add up. A delay d
// falls in the first bucket whose bound is >= d; beyond the last bound it
// falls in an extra, unbounded bucket (index len(DelayBucketsMs)).
var DelayBucketsMs = [...]uint32{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000, 30000, 60000, 300000, 900000, 3600000}

// DelayBucket is the index of d's bucket: 0..len(DelayBucketsMs).
func DelayBucket(d time.Duration) int {
	ms := d.Milliseconds()
	if d > time.Duration(ms)*time.Millisecond {
		ms++ // round up: a bucket's bound is inclusive
	}
	for i, b := range DelayBucketsMs {
		if ms <= int64(b) {
			return i
		}
	}
	return len(DelayBucketsMs)
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
