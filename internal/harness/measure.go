package harness

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/envoy"
)

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of sorted
// values: the smallest value with at least p % of the values at or below
// it. It is 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps float error from pushing an exact rank up by one
	// (99.9 % of 1000 is 999.0000000000001 in floating point).
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Latency is a latency distribution in a few numbers.
type Latency struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

// Summarize sorts lat in place and summarizes it.
func Summarize(lat []time.Duration) Latency {
	slices.Sort(lat)
	s := Latency{N: len(lat), P50: Percentile(lat, 50), P90: Percentile(lat, 90), P99: Percentile(lat, 99)}
	if len(lat) > 0 {
		s.Max = lat[len(lat)-1]
	}
	return s
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Slicing interleaves arms (0, 1, …) in time: a phase is cut into slices
// of equal length, slice k given to arm Order[k]. Requests started
// in the first Settle of a slice are sent but not recorded, so that what is
// still in flight from the previous slice is not charged to this one.
type Slicing struct {
	Slice, Settle time.Duration
	Order         []int
}

// Total is the length of the phase.
func (s Slicing) Total() time.Duration { return s.Slice * time.Duration(len(s.Order)) }

// At returns the slice that offset off falls in, its arm, and whether a
// request started at off is recorded; ok is false outside the phase.
func (s Slicing) At(off time.Duration) (slice, arm int, recorded, ok bool) {
	if off < 0 || off >= s.Total() {
		return 0, 0, false, false
	}
	k := int(off / s.Slice)
	return k, s.Order[k], off-time.Duration(k)*s.Slice >= s.Settle, true
}

// Recorded is how long arm was recorded: its slices less their settle.
func (s Slicing) Recorded(arm int) time.Duration {
	var d time.Duration
	for _, a := range s.Order {
		if a == arm {
			d += s.Slice - s.Settle
		}
	}
	return d
}

// Interleave returns the arm of each of arms×rounds slices: each round
// holds every arm once, in an order drawn from rng (a random permutation),
// so that the arms share every stretch of the run (drift, GC, background
// work cancel out) and no arm is locked to a period of the system (a 1 s
// flush, say).
func Interleave(arms, rounds int, rng *rand.Rand) []int {
	order := make([]int, 0, arms*rounds)
	for range rounds {
		order = append(order, rng.Perm(arms)...)
	}
	return order
}

// SampleAt calls sample at t0 + k×every for k = 0 … n and sends the n+1
// samples when done; nil if ctx ended or a sample failed.
func SampleAt[T any](ctx context.Context, t0 time.Time, every time.Duration, n int, sample func() (T, error)) <-chan []T {
	out := make(chan []T, 1)
	go func() {
		samples := make([]T, 0, n+1)
		for k := range n + 1 {
			t := time.NewTimer(time.Until(t0.Add(time.Duration(k) * every)))
			select {
			case <-ctx.Done():
				t.Stop()
				out <- nil
				return
			case <-t.C:
			}
			s, err := sample()
			if err != nil {
				out <- nil
				return
			}
			samples = append(samples, s)
		}
		out <- samples
	}()
	return out
}

// Machine describes where a run happened.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Envoy    string `json:"envoy"` // the release, e.g. 1.40.0; "unknown" if envoy --version failed
	Date     string `json:"date"`
}

// DescribeMachine describes this machine and its Envoy (EnvoyBin).
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Envoy: "unknown", Date: time.Now().UTC().Format(time.RFC3339)}
	if bin, err := EnvoyBin(); err == nil {
		if v, err := envoy.Version(bin); err == nil {
			m.Envoy = v
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// PeakRSS is the peak resident set size of process pid (VmHWM in
// /proc/PID/status), in bytes.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
