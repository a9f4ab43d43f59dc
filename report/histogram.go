package report

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The latency histogram is log-linear: each power of two above histMin is
// split into histSub equal buckets, so a bucket's midpoint is within
// 1/(2·histSub) < 1 % of any value in it. histOctaves powers of two reach
// histMin·2^26 ≈ 671 s. Bucket 0 holds everything below histMin; values
// above the range land in the last bucket (Max stays exact).
const (
	histMin     = 10 * time.Microsecond
	histSub     = 64
	histOctaves = 26
	histBuckets = 1 + histOctaves*histSub
)

// histogram counts durations in histBuckets buckets; the zero value is
// empty and allocates on the first observation.
type histogram struct {
	counts []uint64
	count  uint64
	max    time.Duration
}

func histIndex(d time.Duration) int {
	if d < histMin {
		return 0
	}
	frac, exp := math.Frexp(float64(d) / float64(histMin)) // x = frac·2^exp, frac in [0.5, 1)
	octave := exp - 1
	if octave >= histOctaves {
		return histBuckets - 1
	}
	sub := int((frac*2 - 1) * histSub)
	if sub >= histSub { // rounding at the top of an octave
		sub = histSub - 1
	}
	return 1 + octave*histSub + sub
}

// histMid is the representative value of bucket i: its midpoint.
func histMid(i int) float64 {
	if i == 0 {
		return float64(histMin)
	}
	octave, sub := (i-1)/histSub, (i-1)%histSub
	base := float64(histMin) * math.Ldexp(1, octave)
	return base * (1 + (float64(sub)+0.5)/histSub)
}

func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[histIndex(d)]++
	h.count++
	if d > h.max {
		h.max = d
	}
}

// quantile returns the q-quantile (0 < q ≤ 1) as a duration in nanoseconds,
// never above the exact maximum.
func (h *histogram) quantile(q float64) float64 {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return math.Min(histMid(i), float64(h.max))
		}
	}
	return float64(h.max)
}

func (h *histogram) summary() SideLatency {
	if h.count == 0 {
		return SideLatency{}
	}
	ms := func(ns float64) float64 { return math.Round(ns/1e3) / 1e3 } // µs precision
	return SideLatency{
		Count: int(h.count),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   ms(float64(h.max)),
	}
}

func (h *histogram) clone() histogram {
	c := *h
	if h.counts != nil {
		c.counts = append([]uint64(nil), h.counts...)
	}
	return c
}

// encodeBuckets writes the non-empty buckets as uvarint pairs (gap from the
// previous index, count): a few hundred bytes for a typical route.
func (h *histogram) encodeBuckets() []byte {
	var b []byte
	prev := -1
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(i-prev))
		b = binary.AppendUvarint(b, c)
		prev = i
	}
	return b
}

var errBadHistogram = errors.New("bad latency histogram")

func decodeHistogram(count uint64, maxNS int64, b []byte) (histogram, error) {
	h := histogram{count: count, max: time.Duration(maxNS)}
	if len(b) == 0 {
		if count != 0 {
			return h, fmt.Errorf("%w: %d observations but no buckets", errBadHistogram, count)
		}
		return h, nil
	}
	h.counts = make([]uint64, histBuckets)
	var sum uint64
	i := -1
	for len(b) > 0 {
		gap, n := binary.Uvarint(b)
		if n <= 0 || gap == 0 || gap > histBuckets {
			return h, fmt.Errorf("%w: bad bucket index", errBadHistogram)
		}
		b = b[n:]
		c, n := binary.Uvarint(b)
		if n <= 0 {
			return h, fmt.Errorf("%w: bad bucket count", errBadHistogram)
		}
		b = b[n:]
		i += int(gap)
		if i >= histBuckets {
			return h, fmt.Errorf("%w: bucket %d out of range", errBadHistogram, i)
		}
		h.counts[i] = c
		sum += c
	}
	if sum != count {
		return h, fmt.Errorf("%w: buckets hold %d observations, expected %d", errBadHistogram, sum, count)
	}
	return h, nil
}
