// Package measure holds what shadowlab's benchmark commands share:
// latency percentiles, CPU sampling on a schedule, and a description of the
// machine a run happened on.
package measure

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// DescribeMachine describes this machine and the Envoy at envoyBin.
func DescribeMachine(envoyBin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Envoy: "unknown", Date: time.Now().UTC().Format(time.RFC3339)}
	if v, err := envoy.Version(envoyBin); err == nil {
		m.Envoy = v
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

// BusyTicks reads /proc/stat's aggregate "cpu" line: busy is user, nice,
// system, irq and softirq (guest time is already in user); steal is steal.
func BusyTicks(line string) (busy, steal uint64, err error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			steal = n
		default:
			busy += n
		}
	}
	return busy, steal, nil
}

// ProcessTicks is utime + stime of a /proc/<pid>/stat line. The command
// name, in parentheses, may hold spaces and parentheses: fields are counted
// after the last ')'.
func ProcessTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// SystemTicks is BusyTicks of this machine now.
func SystemTicks() (busy, steal uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return BusyTicks(line)
}

// PidTicks is ProcessTicks of process pid now.
func PidTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	n, err := ProcessTicks(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return n, nil
}
