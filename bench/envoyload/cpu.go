package main

import (
	"context"
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

// Our processes, in the order of bench.pids.
const (
	procGenerator = iota // this program
	procSUT              // the example services and shadowlab serve
	procEnvoy
	numProcs
)

// cpuUsage is the CPU used during a phase, in cores (1 = one core busy for
// the whole phase).
type cpuUsage struct {
	Generator float64 `json:"generator_cores"`
	SUT       float64 `json:"services_serve_cores"`
	Envoy     float64 `json:"envoy_cores"`
	Ours      float64 `json:"ours_cores"`   // the three above
	Others    float64 `json:"others_cores"` // every other process on the machine
	// Steal is time the hypervisor gave this machine's CPUs to others.
	Steal float64 `json:"steal_cores"`
}

// cpuSample is the machine's busy and stolen ticks and those of our
// processes at one instant.
type cpuSample struct {
	at          time.Time
	busy, steal uint64
	procs       [numProcs]uint64
}

// sampleCPU reads the machine's busy ticks and those of pids (in the order
// procGenerator, procSUT, procEnvoy).
func sampleCPU(pids [numProcs]int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if s.busy, s.steal, err = busyTicks(line); err != nil {
		return s, err
	}
	for i, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return s, err
		}
		if s.procs[i], err = processTicks(string(b)); err != nil {
			return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
	}
	return s, nil
}

// cpuDelta is what was used between two samples, in ticks and seconds.
type cpuDelta struct {
	wall        float64
	busy, steal uint64
	procs       [numProcs]uint64
}

func (s cpuSample) delta(later cpuSample) cpuDelta {
	d := cpuDelta{wall: later.at.Sub(s.at).Seconds(), busy: later.busy - s.busy, steal: later.steal - s.steal}
	for i := range d.procs {
		d.procs[i] = later.procs[i] - s.procs[i]
	}
	return d
}

func (d *cpuDelta) add(o cpuDelta) {
	d.wall += o.wall
	d.busy += o.busy
	d.steal += o.steal
	for i := range d.procs {
		d.procs[i] += o.procs[i]
	}
}

func (d cpuDelta) ours() uint64 {
	var t uint64
	for _, p := range d.procs {
		t += p
	}
	return t
}

// usage is d in cores.
func (d cpuDelta) usage() cpuUsage {
	if d.wall <= 0 {
		return cpuUsage{}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / userHZ / d.wall }
	u := cpuUsage{
		Generator: cores(d.procs[procGenerator]), SUT: cores(d.procs[procSUT]), Envoy: cores(d.procs[procEnvoy]),
		Ours: cores(d.ours()), Steal: cores(d.steal),
	}
	u.Others = max(cores(d.busy)-u.Ours, 0)
	return u
}

// usage is the CPU used from s to later.
func (s cpuSample) usage(later cpuSample) cpuUsage { return s.delta(later).usage() }

// armCPU is the CPU one arm cost: the cores used while it had its slices,
// and our CPU time per request sent to it, by process.
type armCPU struct {
	cpuUsage
	GeneratorUs float64 `json:"generator_us_per_request"`
	SUTUs       float64 `json:"services_serve_us_per_request"`
	EnvoyUs     float64 `json:"envoy_us_per_request"`
	OursUs      float64 `json:"ours_us_per_request"`
}

// armsCPU splits CPU time by arm: samples[k] was taken when slice k began
// and samples[len(order)] when the phase ended; sent[a] is how many requests
// arm a was sent. Each slice's CPU is charged to its arm (the settle time
// too: what the previous slice left over costs about the same either way).
// It is the zero value when samples are missing.
func armsCPU(samples []cpuSample, sl slicing, sent [numArms]int) [numArms]armCPU {
	var out [numArms]armCPU
	if len(samples) != len(sl.order)+1 {
		return out
	}
	var d [numArms]cpuDelta
	for k, arm := range sl.order {
		d[arm].add(samples[k].delta(samples[k+1]))
	}
	for a := range numArms {
		out[a].cpuUsage = d[a].usage()
		if sent[a] == 0 {
			continue
		}
		us := func(ticks uint64) float64 { return float64(ticks) * 1e6 / userHZ / float64(sent[a]) }
		out[a].GeneratorUs, out[a].SUTUs = us(d[a].procs[procGenerator]), us(d[a].procs[procSUT])
		out[a].EnvoyUs, out[a].OursUs = us(d[a].procs[procEnvoy]), us(d[a].ours())
	}
	return out
}

// sampleSlices samples CPU at t0 + k×slice for every slice boundary of sl
// (k = 0 … len(order)) and sends the samples when done; nil if a sample
// failed or ctx ended.
func sampleSlices(ctx context.Context, t0 time.Time, sl slicing, pids [numProcs]int) <-chan []cpuSample {
	out := make(chan []cpuSample, 1)
	go func() {
		samples := make([]cpuSample, 0, len(sl.order)+1)
		for k := range len(sl.order) + 1 {
			t := time.NewTimer(time.Until(t0.Add(time.Duration(k) * sl.slice)))
			select {
			case <-ctx.Done():
				t.Stop()
				out <- nil
				return
			case <-t.C:
			}
			s, err := sampleCPU(pids)
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
