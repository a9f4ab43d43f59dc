package main

import (
	"math"
	"time"
)

// The pure parts of the load generator: the open-loop schedule and ratios. Time is always
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

// ratio is a/b, or 0 when b is 0 (no data is not a ratio).
func ratio[T ~int64 | ~float64](a, b T) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
