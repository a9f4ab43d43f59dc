package main

import (
	"context"
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

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

// usageOf is d (of our numProcs processes) in cores.
func usageOf(d harness.CPUTime) cpuUsage {
	if d.Wall <= 0 {
		return cpuUsage{}
	}
	u := d.Usage()
	return cpuUsage{
		Generator: d.Cores(d.Procs[procGenerator]), SUT: d.Cores(d.Procs[procSUT]), Envoy: d.Cores(d.Procs[procEnvoy]),
		Ours: u.Ours, Others: u.Others, Steal: u.Steal,
	}
}

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
// and samples[len(Order)] when the phase ended; sent[a] is how many requests
// arm a was sent. Each slice's CPU is charged to its arm (the settle time
// too: what the previous slice left over costs about the same either way).
// It is the zero value when samples are missing.
func armsCPU(samples []harness.CPUSample, sl harness.Slicing, sent [numArms]int) [numArms]armCPU {
	var out [numArms]armCPU
	if len(samples) != len(sl.Order)+1 {
		return out
	}
	var d [numArms]harness.CPUTime
	for k, arm := range sl.Order {
		d[arm].Add(samples[k].Until(samples[k+1]))
	}
	for a := range numArms {
		out[a].cpuUsage = usageOf(d[a])
		if sent[a] == 0 || d[a].Procs == nil {
			continue
		}
		us := func(ticks uint64) float64 { return float64(ticks) * 1e6 / harness.UserHZ / float64(sent[a]) }
		out[a].GeneratorUs, out[a].SUTUs = us(d[a].Procs[procGenerator]), us(d[a].Procs[procSUT])
		out[a].EnvoyUs, out[a].OursUs = us(d[a].Procs[procEnvoy]), us(d[a].Ours())
	}
	return out
}

// sampleSlices samples CPU at t0 + k×slice for every slice boundary of sl
// (k = 0 … len(Order)) and sends the samples when done; nil if a sample
// failed or ctx ended.
func sampleSlices(ctx context.Context, t0 time.Time, sl harness.Slicing, pids []int) <-chan []harness.CPUSample {
	return harness.SampleAt(ctx, t0, sl.Slice, len(sl.Order), func() (harness.CPUSample, error) { return harness.SampleCPU(pids...) })
}
