package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The machine may be shared: what else ran during a phase is reported next
// to what was measured. Linux counts CPU time in USER_HZ ticks (100 a
// second) in both /proc/stat and /proc/<pid>/stat.
const userHZ = 100

// cpuUsage is the CPU used during a phase, in cores (1 = one core busy for
// the whole phase).
type cpuUsage struct {
	Ours   float64 `json:"ours_cores"`   // this program, the system under test and Envoy
	Others float64 `json:"others_cores"` // everything else on the machine
	// Steal is time the hypervisor gave this machine's CPUs to others.
	Steal float64 `json:"steal_cores"`
}

// cpuSample is the machine's busy and stolen ticks and ours at one instant.
type cpuSample struct {
	at                time.Time
	busy, steal, ours uint64
}

// sampleCPU reads the machine's busy ticks and those of pids.
func sampleCPU(pids []int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if s.busy, s.steal, err = busyTicks(line); err != nil {
		return s, err
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return s, err
		}
		t, err := processTicks(string(b))
		if err != nil {
			return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		s.ours += t
	}
	return s, nil
}

// usage is the CPU used from s to later.
func (s cpuSample) usage(later cpuSample) cpuUsage {
	wall := later.at.Sub(s.at).Seconds()
	if wall <= 0 {
		return cpuUsage{}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / userHZ / wall }
	busy, ours := cores(later.busy-s.busy), cores(later.ours-s.ours)
	return cpuUsage{Ours: ours, Others: max(busy-ours, 0), Steal: cores(later.steal - s.steal)}
}

// busyTicks reads /proc/stat's aggregate "cpu" line: busy is user, nice,
// system, irq and softirq (guest time is already in user); steal is steal.
func busyTicks(line string) (busy, steal uint64, err error) {
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

// processTicks is utime + stime of a /proc/<pid>/stat line. The command
// name, in parentheses, may hold spaces and parentheses: fields are counted
// after the last ')'.
func processTicks(stat string) (uint64, error) {
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
