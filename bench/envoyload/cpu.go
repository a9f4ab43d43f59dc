package main

import (
	"context"
	"github.com/shadowlab/shadowlab/bench/internal/measure"
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
	var err error
	if s.busy, s.steal, err = measure.SystemTicks(); err != nil {
		return s, err
	}
	for i, pid := range pids {
		if s.procs[i], err = measure.PidTicks(pid); err != nil {
			return s, err
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
	return measure.SampleAt(ctx, t0, sl.slice, len(sl.order), func() (cpuSample, error) { return sampleCPU(pids) })
}
