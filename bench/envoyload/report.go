package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// results is everything a run measured: the JSON of -json.
type results struct {
	Machine    harness.Machine  `json:"machine"`
	Params     params           `json:"parameters"`
	Throughput throughputResult `json:"throughput"`
	Latency    latencyResult    `json:"latency"`
	Faults     []faultResult    `json:"faults,omitempty"`
	// Pairs and Outcomes are the capture report of the mirrored route over
	// the whole run (warm-up included).
	Pairs    int            `json:"pairs"`
	Outcomes map[string]int `json:"outcomes"`
	Budgets  []budget       `json:"budgets"`
}

type params struct {
	Percent          float64 `json:"percent"`
	Workers          int     `json:"workers"`
	ClosedDurationS  float64 `json:"closed_duration_s"`
	DurationS        float64 `json:"duration_s"`
	SliceMs          float64 `json:"slice_ms"`
	SettleMs         float64 `json:"settle_ms"`
	Fraction         float64 `json:"fraction"`
	Inflight         int     `json:"inflight"`
	FaultDurationS   float64 `json:"fault_duration_s,omitempty"`
	SlowS            float64 `json:"slow_s,omitempty"`
	GraceMs          float64 `json:"grace_ms"`
	Seed             uint64  `json:"seed"`
	Capture          bool    `json:"capture"`
	EnvoyConcurrency int     `json:"envoy_concurrency"`
	EnvoyCPUs        string  `json:"envoy_cpus,omitempty"`
	Request          string  `json:"request"`
}

func paramsOf(c config) params {
	p := params{
		Percent: c.percent, Workers: c.workers, Fraction: c.fraction, Inflight: c.inflight, Seed: c.seed,
		ClosedDurationS: (c.closedDuration / (2 * c.slice) * 2 * c.slice).Seconds(),
		DurationS:       (c.duration / (2 * c.slice) * 2 * c.slice).Seconds(),
		SliceMs:         harness.Ms(c.slice), SettleMs: harness.Ms(c.settle), GraceMs: harness.Ms(c.grace),
		Capture: c.capture, EnvoyConcurrency: c.concurrency, EnvoyCPUs: c.cpus, Request: "GET, no body; answer 200 with a ~75-byte JSON body",
	}
	if c.faults {
		p.FaultDurationS = (c.faultDuration / (2 * c.slice) * 2 * c.slice).Seconds()
		p.SlowS = c.slow.Seconds()
	}
	return p
}

// testArm names the arm compared with plain.
func (p params) testArm() string {
	if p.Capture {
		return fmt.Sprintf("mirrored %g %% + capture", p.Percent)
	}
	return fmt.Sprintf("mirrored %g %%, no capture", p.Percent)
}

type closedArm struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"rps"`
	CPU      armCPU  `json:"cpu"`
}

type throughputResult struct {
	Plain    closedArm `json:"plain"`
	Mirrored closedArm `json:"mirrored"`
	Ratio    float64   `json:"ratio"` // mirrored / plain
	// Share is the fraction of the mirrored arm's requests Envoy mirrored.
	Share      float64        `json:"mirrored_share"`
	Shadow     shadowStats    `json:"shadow"`
	CPU        cpuUsage       `json:"cpu"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
}

// armLatency is one arm of an open-loop phase, durations in milliseconds.
type armLatency struct {
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	RPS      float64 `json:"achieved_rps"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	// Dispatch lag, sent − due: the load generator's own delay, included in
	// the latencies above.
	LagP50 float64 `json:"lag_p50_ms"`
	LagP99 float64 `json:"lag_p99_ms"`
	LagMax float64 `json:"lag_max_ms"`
	CPU    armCPU  `json:"cpu"`
}

func armLatencyOf(a openArm) armLatency {
	return armLatency{
		Requests: a.Requests, Errors: a.Errors, RPS: a.RPS,
		P50: harness.Ms(a.Latency.P50), P90: harness.Ms(a.Latency.P90), P99: harness.Ms(a.Latency.P99), Max: harness.Ms(a.Latency.Max),
		LagP50: harness.Ms(a.Lag.P50), LagP99: harness.Ms(a.Lag.P99), LagMax: harness.Ms(a.Lag.Max),
	}
}

type latencyResult struct {
	TargetRPS float64    `json:"target_rps"` // both arms together
	Plain     armLatency `json:"plain"`
	Test      armLatency `json:"test"` // the mirrored route, or the fault route
	P50Ratio  float64    `json:"p50_ratio"`
	P99Ratio  float64    `json:"p99_ratio"`
	// Share is the fraction of the test arm's requests Envoy mirrored.
	Share      float64        `json:"mirrored_share"`
	Shadow     shadowStats    `json:"shadow"`
	CPU        cpuUsage       `json:"cpu"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
}

type faultResult struct {
	Fault  string        `json:"fault"`
	Route  string        `json:"route"`
	Result latencyResult `json:"result"`
}

// budget is one DESIGN.md budget against what was measured.
type budget struct {
	Name     string  `json:"name"`
	Limit    string  `json:"limit"`
	Measured float64 `json:"measured"`
	Within   bool    `json:"within"`
}

// budgets fills r.Budgets from DESIGN.md's performance budgets.
func (r *results) budgets() {
	test := r.Params.testArm()
	r.Budgets = []budget{
		{test + ": p50 / plain p50", "≤ 1.05", r.Latency.P50Ratio, r.Latency.P50Ratio <= 1.05},
		{test + ": p99 / plain p99", "≤ 1.10", r.Latency.P99Ratio, r.Latency.P99Ratio <= 1.10},
		{test + ": max rps / plain max rps", "≥ 0.90", r.Throughput.Ratio, r.Throughput.Ratio >= 0.90},
	}
	for _, f := range r.Faults {
		r.Budgets = append(r.Budgets,
			budget{"shadow " + f.Fault + ": primary p99 / plain p99", "≤ 1.10", f.Result.P99Ratio, f.Result.P99Ratio <= 1.10},
			budget{"shadow " + f.Fault + ": primary errors", "= 0", float64(f.Result.Test.Errors), f.Result.Test.Errors == 0})
	}
}

// writeMarkdown writes the section for BENCHMARKS.md.
func writeMarkdown(w io.Writer, r *results) error {
	var b strings.Builder
	m, p := r.Machine, r.Params
	b.WriteString("## Envoy: plain route vs mirrored + captured route\n\n")
	pinned := ""
	if len(p.EnvoyCPUs) > 0 {
		pinned = ", pinned to CPUs " + p.EnvoyCPUs
	}
	fmt.Fprintf(&b, "`go run ./bench/envoyload` on %s: %d CPUs (%s), Linux %s, %s, Envoy %s (`--concurrency %d`%s).\n",
		m.Date, m.CPUs, m.CPUModel, m.Kernel, m.Go, m.Envoy, p.EnvoyConcurrency, pinned)
	b.WriteString("Everything on this one machine over loopback, sharing its CPUs: the load generator, Envoy, and in a\n")
	b.WriteString("second process the two example services and `shadowlab serve` (control plane, capture server, report).\n\n")
	if p.Capture {
		fmt.Fprintf(&b, "- Routes on one Envoy: `/plain/` (primary only) and `/mirrored/` (%g %% mirrored, capture on: ext_proc in\n", p.Percent)
		b.WriteString("  observability mode on the primary and on the shadow cluster, pairs compared by serve).\n")
	} else {
		fmt.Fprintf(&b, "- Routes on one Envoy: `/plain/` (primary only) and `/mirrored/` (%g %% mirrored; capture off: `-capture=false`).\n", p.Percent)
	}
	fmt.Fprintf(&b, "- Request: %s.\n", p.Request)
	fmt.Fprintf(&b, "- Arms interleaved in %g ms slices, each pair of slices in a random order (seed %d); the first %g ms\n",
		p.SliceMs, p.Seed, p.SettleMs)
	fmt.Fprintf(&b, "  of each slice are run but not recorded. Capture pairer grace %g ms.\n\n", p.GraceMs)
	test := p.testArm()

	t := r.Throughput
	fmt.Fprintf(&b, "### Throughput: closed loop, %d workers, %g s\n\n", p.Workers, p.ClosedDurationS)
	b.WriteString("| arm | requests | errors | rps |\n|---|--:|--:|--:|\n")
	fmt.Fprintf(&b, "| plain | %d | %d | %.0f |\n", t.Plain.Requests, t.Plain.Errors, t.Plain.RPS)
	fmt.Fprintf(&b, "| %s | %d | %d | %.0f |\n\n", test, t.Mirrored.Requests, t.Mirrored.Errors, t.Mirrored.RPS)
	fmt.Fprintf(&b, "Mirrored / plain throughput: **%.3f**. Envoy mirrored %.1f %% of the mirrored arm's requests (%d; %d shed).\n\n",
		t.Ratio, 100*t.Share, t.Shadow.Sent, t.Shadow.Shed)
	writeArmCPU(&b, test, t.Plain.CPU, t.Mirrored.CPU)
	writeCPU(&b, t.CPU)
	writeErrors(&b, t.ErrorKinds)

	l := r.Latency
	fmt.Fprintf(&b, "### Latency: open loop at %.0f rps (%g × plain's maximum), %g s\n\n", l.TargetRPS, p.Fraction, p.DurationS)
	b.WriteString("Each latency runs from the request's scheduled send time, so a stall of the load generator or of Envoy\n")
	b.WriteString("counts for every request it delays.\n\n")
	writeLatencyTable(&b, test, l)
	fmt.Fprintf(&b, "Mirrored / plain: p50 **%.3f**, p99 **%.3f**. Envoy mirrored %.1f %% of the mirrored arm's requests (%d; %d shed);\n",
		l.P50Ratio, l.P99Ratio, 100*l.Share, l.Shadow.Sent, l.Shadow.Shed)
	if p.Capture {
		fmt.Fprintf(&b, "the capture report holds %d pairs for the route over the whole run (%s).\n\n", r.Pairs, outcomes(r.Outcomes))
	} else {
		b.WriteString("capture was off.\n\n")
	}
	writeArmCPU(&b, test, l.Plain.CPU, l.Test.CPU)
	writeCPU(&b, l.CPU)
	writeErrors(&b, l.ErrorKinds)

	if len(r.Faults) > 0 {
		fmt.Fprintf(&b, "### Shadow faults: open loop at %.0f rps, %g s each, %g %% mirrored\n\n", l.TargetRPS, p.FaultDurationS, p.Percent)
		b.WriteString("| shadow | primary requests | primary errors | plain p50 | primary p50 | plain p99 | primary p99 | p99 ratio | mirrored | shed | connect fail | timeouts |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, f := range r.Faults {
			fr := f.Result
			fmt.Fprintf(&b, "| %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %d | %d | %d | %d |\n",
				f.Fault, fr.Test.Requests, fr.Test.Errors, fr.Plain.P50, fr.Test.P50, fr.Plain.P99, fr.Test.P99, fr.P99Ratio,
				fr.Shadow.Sent, fr.Shadow.Shed, fr.Shadow.ConnectFail, fr.Shadow.Timeouts)
		}
		b.WriteString("\nLatencies in ms. *mirrored*: requests Envoy sent to the shadow cluster; *shed*: mirrors dropped by the\n")
		b.WriteString("shadow's circuit breaker (maxConcurrent 100); counts cover the phase only.\n\n")
		for _, f := range r.Faults {
			fmt.Fprintf(&b, "%s: ", f.Fault)
			writeCPU(&b, f.Result.CPU)
			writeErrors(&b, f.Result.ErrorKinds)
		}
	}

	b.WriteString("### Against the budgets (DESIGN.md)\n\n| budget | limit | measured | |\n|---|---|--:|---|\n")
	for _, bg := range r.Budgets {
		verdict := "within"
		if !bg.Within {
			verdict = "**over**"
		}
		fmt.Fprintf(&b, "| %s | %s | %.3f | %s |\n", bg.Name, bg.Limit, bg.Measured, verdict)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeLatencyTable(b *strings.Builder, test string, l latencyResult) {
	b.WriteString("| arm | requests | errors | achieved rps | p50 ms | p90 ms | p99 ms | max ms | dispatch lag p50 / p99 / max ms |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range []struct {
		name string
		a    armLatency
	}{{"plain", l.Plain}, {test, l.Test}} {
		a := row.a
		fmt.Fprintf(b, "| %s | %d | %d | %.0f | %.3f | %.3f | %.3f | %.3f | %.3f / %.3f / %.3f |\n",
			row.name, a.Requests, a.Errors, a.RPS, a.P50, a.P90, a.P99, a.Max, a.LagP50, a.LagP99, a.LagMax)
	}
	b.WriteString("\n")
}

// writeArmCPU writes where each arm's CPU went.
func writeArmCPU(b *strings.Builder, test string, plain, other armCPU) {
	b.WriteString("CPU by arm, from /proc at every slice boundary (cores while the arm had its slices; CPU time per request):\n\n")
	b.WriteString("| arm | Envoy | services + serve | generator | other processes | Envoy µs/req | services + serve µs/req | generator µs/req | all µs/req |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range []struct {
		name string
		c    armCPU
	}{{"plain", plain}, {test, other}} {
		c := row.c
		fmt.Fprintf(b, "| %s | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f |\n",
			row.name, c.Envoy, c.SUT, c.Generator, c.Others, c.EnvoyUs, c.SUTUs, c.GeneratorUs, c.OursUs)
	}
	fmt.Fprintf(b, "\nCPU per request, %s / plain: Envoy %.2f, all %.2f.\n\n", test, ratio(other.EnvoyUs, plain.EnvoyUs), ratio(other.OursUs, plain.OursUs))
}

func writeCPU(b *strings.Builder, c cpuUsage) {
	fmt.Fprintf(b, "CPU during the phase, in cores: benchmark (generator, Envoy, services, serve) %.2f, other processes %.2f,\nstolen by the hypervisor %.2f.", c.Ours, c.Others, c.Steal)
	if c.Others+c.Steal > harness.QuietLimit {
		b.WriteString(" **The machine was not quiet: this phase's figures are disturbed.**")
	}
	b.WriteString("\n\n")
}

func writeErrors(b *strings.Builder, kinds map[string]int) {
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		fmt.Fprintf(b, "- error ×%d: %s\n", kinds[k], k)
	}
	if len(kinds) > 0 {
		b.WriteString("\n")
	}
}

func outcomes(o map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if o[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, o[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
