package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/shadowlab/shadowlab/internal/harness"
	"github.com/shadowlab/shadowlab/report"
)

// results is everything a run measured: the JSON of -json.
type results struct {
	Machine harness.Machine `json:"machine"`
	Params  config          `json:"parameters"`
	// CPUs are the CPUs the kernel lets each of our processes run on.
	CPUs     map[string]string `json:"cpus_allowed"`
	Percents []percentResult   `json:"percents"`
	Faults   *phaseResult      `json:"faults,omitempty"`
	Serve    *serveResult      `json:"serve,omitempty"`
	Rollout  *phaseResult      `json:"rollout,omitempty"`
	// Routes are serve's pairs per captured route over the whole run,
	// warm-up included.
	Routes  []routeCounts `json:"routes"`
	Budgets []budget      `json:"budgets"`
}

// phaseResult is one phase: its arms interleaved.
type phaseResult struct {
	Name       string         `json:"name"`
	Workers    int            `json:"workers,omitempty"`    // closed loop
	TargetRPS  float64        `json:"target_rps,omitempty"` // open loop
	DurationS  float64        `json:"duration_s"`           // all arms together
	Arms       []armResult    `json:"arms"`
	CPU        cpuUsage       `json:"cpu"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
}

// armResult is one arm of a phase.
type armResult struct {
	arm
	armRun
	CPU    armCPU      `json:"cpu"`
	Shadow shadowStats `json:"shadow"`
	// Share is the fraction of the arm's requests Envoy mirrored.
	Share float64 `json:"mirrored_share"`
	// Report is serve's pairs of the route during the phase.
	Report captureCounts `json:"report"`
}

// percentResult is the closed and the open phase at one percent, and what
// a pair cost in each.
type percentResult struct {
	Percent    float64     `json:"percent"`
	Throughput phaseResult `json:"throughput"`
	Latency    phaseResult `json:"latency"`
	ClosedCost pairCost    `json:"closed_loop_cost_per_pair"`
	Cost       pairCost    `json:"open_loop_cost_per_pair"`
}

// floor is the arm the captured arm's latency is held against: plain, or
// at 100 % mirroring itself.
func (p percentResult) floor() int {
	if p.Percent == 100 {
		return armMirror
	}
	return armPlain
}

// overCapacity names the arms whose closed-loop maximum is below the
// open-loop rate: their requests queue, and the backlog runs into the
// other arms' slices.
func (p percentResult) overCapacity() []string {
	var over []string
	for _, a := range p.Throughput.Arms {
		if a.RPS < p.Latency.TargetRPS {
			over = append(over, fmt.Sprintf("%s (%.0f rps)", a.Name, a.RPS))
		}
	}
	return over
}

type serveResult struct {
	Phase phaseResult `json:"phase"`
	Sizes []serveSize `json:"sizes"`
}

// serveSize is serve's cost per pair at one answer size.
type serveSize struct {
	Bytes        int     `json:"body_bytes"`
	ServeUs      float64 `json:"serve_us_per_pair"`
	PairsPerCore float64 `json:"pairs_per_serve_core_s"`
}

type routeCounts struct {
	Route string `json:"route"`
	captureCounts
}

// budget is one budget of the tracker's issue against what was measured.
type budget struct {
	Name     string  `json:"name"`
	Limit    string  `json:"limit"`
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"`
}

// latencyRatios are a's p50 and p99 over those of floor (0: no data).
func latencyRatios(a, floor armResult) (p50, p99 float64) {
	return ratio(a.Latency.P50, floor.Latency.P50), ratio(a.Latency.P99, floor.Latency.P99)
}

// budgets fills r.Budgets. A ratio of 0 is no data, and a latency ratio
// of a phase over capacity is an overload's: never met.
func (r *results) budgets() {
	add := func(name, limit string, v float64, met bool) {
		r.Budgets = append(r.Budgets, budget{name, limit, v, met})
	}
	for _, pr := range r.Percents {
		pct := fmt.Sprintf("%g %%", pr.Percent)
		c := pr.ClosedCost.Capture
		add("capture's own Envoy µs per pair (gateway + plugin), "+pct+", closed loop", "≤ 80", c, c <= 80)
		lat, floor := pr.Latency.Arms, pr.floor()
		p50, p99 := latencyRatios(lat[armCaptured], lat[floor])
		against := fmt.Sprintf("captured %s / %s at the open-loop rate", pct, lat[floor].Name)
		ok := len(pr.overCapacity()) == 0
		if !ok {
			against += " (over capacity: latency is queueing)"
		}
		add(against+": p50", "≤ 1.05", p50, ok && p50 > 0 && p50 <= 1.05)
		add(against+": p99", "≤ 1.10", p99, ok && p99 > 0 && p99 <= 1.10)
		if pr.Percent < 100 {
			t := pr.Throughput.Arms
			tr := ratio(t[armCaptured].RPS, t[armPlain].RPS)
			add("captured "+pct+" / plain: max rps", "≥ 0.90", tr, tr >= 0.90)
		}
	}
	if f := r.Faults; f != nil {
		for _, a := range f.Arms[1:] {
			_, p99 := latencyRatios(a, f.Arms[armPlain])
			add(a.Name+": primary p99 / plain p99", "≤ 1.10", p99, p99 > 0 && p99 <= 1.10)
			add(a.Name+": primary errors", "= 0", float64(a.Errors), a.Errors == 0)
		}
	}
	if s := r.Serve; s != nil && len(s.Sizes) > 0 {
		v := s.Sizes[0].PairsPerCore
		add(fmt.Sprintf("serve pairs/s per core, %d KiB answers, end to end", s.Sizes[0].Bytes>>10), "≥ 10 000", v, v >= 10_000)
	}
}

// writeMarkdown writes the section for BENCHMARKS.md.
func writeMarkdown(w io.Writer, r *results) error {
	var b strings.Builder
	m, p := r.Machine, r.Params
	b.WriteString("## Envoy and serve: plain, mirror only, mirror + capture (gateway + plugin)\n\n")
	fmt.Fprintf(&b, "`go run ./bench/envoyload` on %s: %d CPUs (%s), Linux %s, %s, Envoy %s.\n\n", m.Date, m.CPUs, m.CPUModel, m.Kernel, m.Go, m.Envoy)
	fmt.Fprintf(&b, "- Processes, over loopback: Envoy (`--concurrency %d`, pinned to CPUs %q), the load generator, the example\n", p.EnvoyConcurrency, p.EnvoyCPUs)
	fmt.Fprintf(&b, "  services (a child process) and `shadowlab serve` (its own process: xDS, shadow gateway, API,\n")
	fmt.Fprintf(&b, "  pairer, compare, report in SQLite) pinned to CPUs %q. Envoy is started from a thread pinned with\n", p.LoadCPUs)
	b.WriteString("  sched_setaffinity; the generator pins every one of its threads with sched_setaffinity and the services\n")
	var allowed []string
	for _, name := range slices.Sorted(maps.Keys(r.CPUs)) {
		allowed = append(allowed, name+" "+r.CPUs[name])
	}
	fmt.Fprintf(&b, "  and serve inherit it. The kernel's Cpus_allowed_list: %s.\n", strings.Join(allowed, ", "))
	b.WriteString("- Arms, one route each on one Envoy, all answered by the primary: *plain* (primary only); *mirror* (mirrored\n")
	b.WriteString("  straight to the shadow, `shadow.capture: false`); *captured* (mirrored to serve's shadow gateway, which\n")
	b.WriteString("  forwards to the shadow and records its answer, while the plugin captures the primary's and posts it in\n")
	b.WriteString("  batches to serve).\n")
	b.WriteString("- Request: GET, no body; answer 200 with a ~75-byte JSON body (serve phase: 1 KiB and 16 KiB).\n")
	fmt.Fprintf(&b, "- Arms interleaved in %v slices, each round holding every arm once in a random order (seed %d); the\n", p.Slice, p.Seed)
	fmt.Fprintf(&b, "  first %v of each slice are run but not recorded. Pairer grace %v. CPU time per process from /proc\n", p.Settle, p.Grace)
	b.WriteString("  at every slice boundary, charged to the slice's arm; µs/req is per request sent to the arm.\n\n")

	fraction := p.Fraction
	if p.Rate > 0 {
		fraction = 0 // the rate was given
	}
	for _, pr := range r.Percents {
		writePercent(&b, pr, fraction)
	}
	if f := r.Faults; f != nil {
		fmt.Fprintf(&b, "### Shadow faults: open loop at %.0f rps, %g %% mirrored and captured through the gateway, %g s\n\n", f.TargetRPS, p.FaultPercent, f.DurationS)
		writeLatency(&b, *f, armPlain)
		b.WriteString("*mirrored*: requests Envoy sent to the shadow cluster (the gateway, which answers at once and calls the shadow\n")
		b.WriteString("after); *pairs*: recorded by serve during the phase; why the rest were not compared: below.\n\n")
		writePhaseEnd(&b, *f)
	}
	if s := r.Serve; s != nil {
		fmt.Fprintf(&b, "### serve: captured at 100 %%, closed loop, %d workers, %g s\n\n", s.Phase.Workers, s.Phase.DurationS)
		var rows [][]string
		for i, a := range s.Phase.Arms {
			sz := s.Sizes[i]
			rows = append(rows, []string{a.Name, fmt.Sprint(a.Requests), fmt.Sprintf("%.0f", a.RPS), pairs(a.Report),
				fmt.Sprintf("%.2f", a.CPU.Serve), fmt.Sprintf("%.0f", sz.ServeUs), fmt.Sprintf("%.0f", sz.PairsPerCore), fmt.Sprintf("%.0f", a.CPU.EnvoyUs)})
		}
		table(&b, []string{"answer", "requests", "rps", "pairs", "serve cores", "serve µs/pair", "pairs/s per serve core", "Envoy µs/req"}, rows)
		b.WriteString("serve µs/pair: serve's CPU time in the arm's slices over the pairs it compared for the route, end to end (gateway:\n")
		b.WriteString("receive and forward; API: the plugin's batches; pair, compare, store). Pairs/s per serve core = 10⁶ / µs per pair.\n\n")
		writePhaseEnd(&b, s.Phase)
	}

	if ro := r.Rollout; ro != nil {
		fmt.Fprintf(&b, "### Rollout: open loop at %.0f rps, %g s\n\n", ro.TargetRPS, ro.DurationS)
		b.WriteString("*canary 0 %*: the route in canary at a share of 0 %: the plugin computes each request's bucket and Envoy\n")
		b.WriteString("picks the route again, the primary answers (mirroring at 0 %): what the canary's decision costs everyone;\n")
		b.WriteString("*promoted*: the candidate (the example service's second instance, as fast as the primary) answers every\n")
		b.WriteString("request, the route's cluster picked by Envoy's priority_group specifier (the candidate's, then the primary's on\n")
		b.WriteString("the retry) with the fallback retry policy, each request logged to serve over gRPC;\n")
		b.WriteString("*fallback*: the candidate refuses connections, so every request fails on it and is retried on the primary\n")
		b.WriteString("(one connection attempt, then the retry; 1 ms back-off), and the failed attempt is logged too.\n\n")
		writeLatency(&b, *ro, armPlain)
		writePhaseEnd(&b, *ro)
	}
	b.WriteString("### Pairs per route (serve's report, whole run, warm-up included)\n\n")
	var rows [][]string
	for _, rc := range r.Routes {
		rows = append(rows, []string{rc.Route, fmt.Sprint(rc.Pairs), outcomes(rc.Outcomes), topReasons(rc.Reasons)})
	}
	table(&b, []string{"route", "pairs", "outcomes", "why not compared (most frequent)"}, rows)

	b.WriteString("### Against the budgets\n\n")
	rows = nil
	for _, bg := range r.Budgets {
		verdict, v := "met", fmt.Sprintf("%.3f", bg.Measured)
		if !bg.Met {
			verdict = "**not met**"
		}
		if bg.Measured >= 100 || bg.Measured <= -100 {
			v = fmt.Sprintf("%.0f", bg.Measured)
		}
		rows = append(rows, []string{bg.Name, bg.Limit, v, verdict})
	}
	table(&b, []string{"budget", "limit", "measured", ""}, rows)
	_, err := io.WriteString(w, b.String())
	return err
}

// writePercent writes the closed and open phase of one percent and the
// cost per pair.
func writePercent(b *strings.Builder, pr percentResult, fraction float64) {
	fmt.Fprintf(b, "### %g %% mirrored\n\n", pr.Percent)
	t := pr.Throughput
	fmt.Fprintf(b, "#### Throughput: closed loop, %d workers, %g s\n\n", t.Workers, t.DurationS)
	var rows [][]string
	for _, a := range t.Arms {
		rows = append(rows, append([]string{a.Name, fmt.Sprint(a.Requests), fmt.Sprint(a.Errors), fmt.Sprintf("%.0f", a.RPS),
			fmt.Sprintf("%.3f", ratio(a.RPS, t.Arms[armPlain].RPS))}, cpuCells(a)...))
	}
	table(b, append([]string{"arm", "requests", "errors", "rps", "rps / plain"}, cpuHead...), rows)
	writePhaseEnd(b, t)

	l := pr.Latency
	how := fmt.Sprintf("%g × plain's maximum", fraction)
	if fraction == 0 {
		how = "-rate"
	}
	fmt.Fprintf(b, "#### Latency: open loop at %.0f rps (%s), %g s\n\n", l.TargetRPS, how, l.DurationS)
	b.WriteString("Each latency runs from the request's scheduled send time, so a stall of the generator or of Envoy counts\n")
	b.WriteString("for every request it delays.\n\n")
	floor := pr.floor()
	writeLatency(b, l, floor)
	if over := pr.overCapacity(); len(over) > 0 {
		fmt.Fprintf(b, "**Over capacity:** %.0f rps is above the closed-loop maximum of %s: their requests queue, and the\n", l.TargetRPS, strings.Join(over, ", "))
		b.WriteString("backlog runs into the next slices, so this phase's latencies (every arm's) and CPU per request are\nthose of an overload.\n\n")
	}
	p50, p99 := latencyRatios(l.Arms[armCaptured], l.Arms[floor])
	fmt.Fprintf(b, "Captured / %s: p50 **%.3f**, p99 **%.3f**.\n\n", l.Arms[floor].Name, p50, p99)
	writePhaseEnd(b, l)

	b.WriteString("#### CPU per pair\n\n")
	cell := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	c, o := pr.ClosedCost, pr.Cost
	rows = [][]string{
		{"Envoy: mirroring, (mirror − plain) / share", cell(c.Mirroring), cell(o.Mirroring)},
		{"Envoy: capture by gateway + plugin, (captured − plain) / share − mirroring", cell(c.Capture), cell(o.Capture)},
		{"serve, captured: forward, receive, pair, compare, store", cell(c.Serve), cell(o.Serve)},
	}
	table(b, []string{"µs of CPU per pair", "closed loop", "open loop"}, rows)
	b.WriteString("*share*: the fraction of the arm's requests Envoy mirrored (its shadow cluster's requests). serve: its CPU\n")
	b.WriteString("time in the arm's slices over the pairs it compared for the route. The budget takes the closed loop: every\n")
	b.WriteString("arm at its own maximum, no queue, the most requests.\n\n")
}

var cpuHead = []string{"mirrored", "pairs", "Envoy cores", "Envoy µs/req", "serve µs/req", "services µs/req", "generator µs/req"}

func cpuCells(a armResult) []string {
	mirrored := "—"
	if a.Shadow.Sent > 0 {
		mirrored = fmt.Sprintf("%d (%.1f %%)", a.Shadow.Sent, 100*a.Share)
	}
	if a.Shadow.Shed > 0 {
		mirrored += fmt.Sprintf(", %d shed", a.Shadow.Shed)
	}
	return []string{mirrored, pairs(a.Report), fmt.Sprintf("%.2f", a.CPU.Envoy), fmt.Sprintf("%.0f", a.CPU.EnvoyUs),
		fmt.Sprintf("%.0f", a.CPU.ServeUs), fmt.Sprintf("%.0f", a.CPU.ServicesUs), fmt.Sprintf("%.0f", a.CPU.GeneratorUs)}
}

// writeLatency writes an open-loop phase's arms, ratios against arm floor.
func writeLatency(b *strings.Builder, l phaseResult, floor int) {
	var rows [][]string
	for _, a := range l.Arms {
		x, ms := a.Latency, harness.Ms
		p50, p99 := latencyRatios(a, l.Arms[floor])
		rows = append(rows, append([]string{a.Name, fmt.Sprint(a.Requests), fmt.Sprint(a.Errors),
			fmt.Sprintf("%.3f", ms(x.P50)), fmt.Sprintf("%.3f", ms(x.P90)), fmt.Sprintf("%.3f", ms(x.P99)), fmt.Sprintf("%.3f", ms(x.Max)),
			fmt.Sprintf("%.3f / %.3f", p50, p99), fmt.Sprintf("%.3f / %.3f", ms(a.Lag.P99), ms(a.Lag.Max))}, cpuCells(a)...))
	}
	head := []string{"arm", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms",
		"p50 / p99 vs " + l.Arms[floor].Name, "dispatch lag p99 / max ms"}
	table(b, append(head, cpuHead...), rows)
}

// writePhaseEnd writes the phase's CPU and its errors.
func writePhaseEnd(b *strings.Builder, ph phaseResult) {
	c := ph.CPU
	fmt.Fprintf(b, "CPU during the phase, in cores: Envoy %.2f, serve %.2f, services %.2f, generator %.2f; other processes %.2f,\nstolen by the hypervisor %.2f.",
		c.Envoy, c.Serve, c.Services, c.Generator, c.Others, c.Steal)
	if c.Others+c.Steal > harness.QuietLimit {
		b.WriteString(" **The machine was not quiet: this phase's figures are disturbed.**")
	}
	b.WriteString("\n\n")
	for _, k := range slices.Sorted(maps.Keys(ph.ErrorKinds)) {
		fmt.Fprintf(b, "- error ×%d: %s\n", ph.ErrorKinds[k], k)
	}
	if len(ph.ErrorKinds) > 0 {
		b.WriteString("\n")
	}
}

// table writes a markdown table, the first column left-aligned.
func table(b *strings.Builder, head []string, rows [][]string) {
	b.WriteString("| " + strings.Join(head, " | ") + " |\n|---|")
	b.WriteString(strings.Repeat("--:|", len(head)-1) + "\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// pairs is c as "N (outcome n, …)", or "—" for a route that captures
// nothing.
func pairs(c captureCounts) string {
	if c.Outcomes == nil {
		return "—"
	}
	return fmt.Sprintf("%d (%s)", c.Pairs, outcomes(c.Outcomes))
}

// topReasons is the most frequent reason of each outcome not compared.
func topReasons(rs map[report.Outcome]map[string]int) string {
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(rs)) {
		top := ""
		for r, n := range rs[o] {
			if top == "" || n > rs[o][top] || n == rs[o][top] && r < top {
				top = r
			}
		}
		if top != "" {
			parts = append(parts, fmt.Sprintf("%s: %s ×%d", o, top, rs[o][top]))
		}
	}
	return strings.Join(parts, "; ")
}

func outcomes(o map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, o[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
