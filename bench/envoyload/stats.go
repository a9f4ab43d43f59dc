package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// The pure parts of the load generator: the open-loop schedule, the
// interleaving of the arms in time, and the latency summary. Time is always
// an offset from the start of a phase, so tests are step tables.

// arm indexes the two routes a phase compares.
const (
	armBase = 0 // the plain route
	armTest = 1 // the mirrored (or shadow-fault) route
	numArms = 2
)

// schedule is an open-loop schedule: request i is due at offset i/rate,
// whatever happened to the requests before it.
type schedule struct {
	rate float64 // requests per second, > 0
}

// offset is when request i is due, from the start of the phase.
func (s schedule) offset(i int) time.Duration {
	return time.Duration(math.Round(float64(i) * float64(time.Second) / s.rate))
}

// count is how many requests are due before d: the i >= 0 with offset(i) < d.
func (s schedule) count(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	n := int(math.Ceil(d.Seconds() * s.rate))
	for n > 0 && s.offset(n-1) >= d { // float rounding at the edge
		n--
	}
	for s.offset(n) < d {
		n++
	}
	return n
}

// slicing interleaves the arms in time: the phase is cut into slices of
// equal length, each given to one arm (order[k] for slice k). Requests due
// in the first settle of a slice are sent but not recorded, so that what is
// still in flight from the previous slice (requests, mirrors, captures) is
// not charged to this one.
type slicing struct {
	slice  time.Duration
	settle time.Duration
	order  []int
}

// total is the length of the phase.
func (s slicing) total() time.Duration { return s.slice * time.Duration(len(s.order)) }

// at returns the slice that offset off falls in, its arm, and whether a
// request due at off is recorded; ok is false outside the phase.
func (s slicing) at(off time.Duration) (slice, arm int, recorded, ok bool) {
	if off < 0 || off >= s.total() {
		return 0, 0, false, false
	}
	k := int(off / s.slice)
	return k, s.order[k], off-time.Duration(k)*s.slice >= s.settle, true
}

// recordedTime is how long arm was recorded: its slices less their settle.
func (s slicing) recordedTime(arm int) time.Duration {
	var d time.Duration
	for _, a := range s.order {
		if a == arm {
			d += s.slice - s.settle
		}
	}
	return d
}

// interleave returns the arm of each of 2×pairs slices: each consecutive
// pair holds both arms, in an order drawn from rng, so that the arms share
// every stretch of the run (drift, GC, background work cancel out) and no
// arm is locked to a period of the system (a 1 s flush, say).
func interleave(pairs int, rng *rand.Rand) []int {
	order := make([]int, 0, 2*pairs)
	for range pairs {
		if rng.IntN(2) == 0 {
			order = append(order, armBase, armTest)
		} else {
			order = append(order, armTest, armBase)
		}
	}
	return order
}

// ratio is a/b, or 0 when b is 0 (no data is not a ratio).
func ratio[T ~int64 | ~float64](a, b T) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
