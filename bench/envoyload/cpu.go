package main

import (
	"context"
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// Our processes, in the order of bench.pids.
const (
	procGenerator = iota // this program
	procServices         // the example services (the "sut" child)
	procServe            // shadowlab serve
	procEnvoy
	numProcs
)

// cpuUsage is the CPU used during a span, in cores (1 = one core busy for
// the whole span).
type cpuUsage struct {
	Generator float64 `json:"generator_cores"`
	Services  float64 `json:"services_cores"`
	Serve     float64 `json:"serve_cores"`
	Envoy     float64 `json:"envoy_cores"`
	Ours      float64 `json:"ours_cores"`   // the four above
	Others    float64 `json:"others_cores"` // every other process on the machine
	// Steal is time the hypervisor gave this machine's CPUs to others.
	Steal float64 `json:"steal_cores"`
}

// usageOf is d (of our numProcs processes) in cores.
func usageOf(d harness.CPUTime) cpuUsage {
	if d.Wall <= 0 || len(d.Procs) != numProcs {
		return cpuUsage{}
	}
	u := d.Usage()
	return cpuUsage{
		Generator: d.Cores(d.Procs[procGenerator]), Services: d.Cores(d.Procs[procServices]),
		Serve: d.Cores(d.Procs[procServe]), Envoy: d.Cores(d.Procs[procEnvoy]),
		Ours: u.Ours, Others: u.Others, Steal: u.Steal,
	}
}

// phaseUsage is the CPU used from the first to the last of samples.
func phaseUsage(samples []harness.CPUSample) cpuUsage {
	if len(samples) < 2 {
		return cpuUsage{}
	}
	return usageOf(samples[0].Until(samples[len(samples)-1]))
}

// armCPU is the CPU one arm cost: the cores used while it had its slices,
// and the CPU time per request sent to it, by process.
type armCPU struct {
	cpuUsage
	GeneratorUs float64 `json:"generator_us_per_request"`
	ServicesUs  float64 `json:"services_us_per_request"`
	ServeUs     float64 `json:"serve_us_per_request"`
	EnvoyUs     float64 `json:"envoy_us_per_request"`
	OursUs      float64 `json:"ours_us_per_request"`
}

// armsCPU splits CPU time by arm: samples[k] was taken when slice k began
// and samples[len(Order)] when the phase ended; sent[a] is how many requests
// arm a was sent. Each slice's CPU is charged to its arm (the settle time
// too: what the previous slice left over costs about the same either way).
// It is all zero values when samples are missing.
func armsCPU(samples []harness.CPUSample, sl harness.Slicing, sent []int) []armCPU {
	out := make([]armCPU, len(sent))
	if len(samples) != len(sl.Order)+1 {
		return out
	}
	d := make([]harness.CPUTime, len(sent))
	for k, arm := range sl.Order {
		d[arm].Add(samples[k].Until(samples[k+1]))
	}
	for a := range out {
		out[a].cpuUsage = usageOf(d[a])
		if sent[a] == 0 || len(d[a].Procs) != numProcs {
			continue
		}
		us := func(ticks uint64) float64 { return float64(ticks) * 1e6 / harness.UserHZ / float64(sent[a]) }
		p := d[a].Procs
		out[a].GeneratorUs, out[a].ServicesUs, out[a].ServeUs = us(p[procGenerator]), us(p[procServices]), us(p[procServe])
		out[a].EnvoyUs, out[a].OursUs = us(p[procEnvoy]), us(d[a].Ours())
	}
	return out
}

// sampleSlices samples CPU at t0 + k×slice for every slice boundary of sl
// (k = 0 … len(Order)) and sends the samples when done; nil if a sample
// failed or ctx ended.
func sampleSlices(ctx context.Context, t0 time.Time, sl harness.Slicing, pids []int) <-chan []harness.CPUSample {
	return harness.SampleAt(ctx, t0, sl.Slice, len(sl.Order), func() (harness.CPUSample, error) { return harness.SampleCPU(pids...) })
}
