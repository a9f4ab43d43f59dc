package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/admission"
)

// The pure parts: what a burst's arrival times say (the most in any window, the count per second).
// Times are offsets from the start of a phase, so tests are step tables.

// mostInWindow is admission.MostInWindow of offsets: the most in any
// half-open window [t, t+w), and the window's first offset. It sorts at in
// place.
func mostInWindow(at []time.Duration, w time.Duration) (most int, from time.Duration) {
	slices.Sort(at)
	ts := make([]time.Time, len(at))
	for i, d := range at {
		ts[i] = time.Time{}.Add(d)
	}
	most, start := admission.MostInWindow(ts, w)
	return most, start.Sub(time.Time{})
}

// inWindow counts the offsets in [from, from+w).
func inWindow(at []time.Duration, from, w time.Duration) int {
	n := 0
	for _, t := range at {
		if t >= from && t < from+w {
			n++
		}
	}
	return n
}

// groupGaps sorts at in place, groups offsets less than within apart (one
// group: one tick's releases), and returns the time from each group's first
// offset to the next group's.
func groupGaps(at []time.Duration, within time.Duration) []time.Duration {
	slices.Sort(at)
	var gaps []time.Duration
	for i, first := 1, 0; i < len(at); i++ {
		if at[i]-at[i-1] >= within {
			gaps = append(gaps, at[i]-at[first])
			first = i
		}
	}
	return gaps
}

// perSecond counts offsets per whole second from 0: out[k] is the number in
// [k s, k+1 s). Negative offsets count in second 0 (clock skew between
// processes is below a millisecond, see the callers).
func perSecond(at []time.Duration) []int {
	var out []int
	for _, t := range at {
		k := max(int(t/time.Second), 0)
		for len(out) <= k {
			out = append(out, 0)
		}
		out[k]++
	}
	return out
}

// histogram draws counts per second as text bars, the longest width
// characters wide.
func histogram(counts []int, width int) string {
	most := slices.Max(append([]int{1}, counts...))
	var b strings.Builder
	for k, n := range counts {
		bar := strings.Repeat("#", int(math.Ceil(float64(n)*float64(width)/float64(most))))
		fmt.Fprintf(&b, "%3d-%-3d s %5d %s\n", k, k+1, n, bar)
	}
	return b.String()
}

// Arms of the cost phase.
const (
	armPlain  = 0 // the plain route
	armPlugin = 1 // the route through the plugin
	numArms   = 2
)
