package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// writeMarkdown writes the section for BENCHMARKS.md.
func writeMarkdown(w io.Writer, r *results) error {
	var b strings.Builder
	m := r.Machine
	b.WriteString("## Admission: shadowlab delay mode vs Envoy local_ratelimit, and the plugin's cost\n\n")
	fmt.Fprintf(&b, "`go run ./bench/admission` on %s: %d CPUs (%s), Linux %s, %s, Envoy %s (`--concurrency 2`).\n",
		m.Date, m.CPUs, m.CPUModel, m.Kernel, m.Go, m.Envoy)
	b.WriteString("One Envoy with a static bootstrap: one listener, one route per arm, each admission filter on its own route\n")
	b.WriteString("only. The client (Go, HTTP/1.1, keep-alive) and the upstream (Go, records every arrival) run in this\n")
	b.WriteString("process; everything shares the machine's CPUs over loopback.\n")
	fmt.Fprintf(&b, "Plugin module: %d bytes (%.2f MiB, sha256 %s), from %s", r.Module.Bytes, float64(r.Module.Bytes)/(1<<20), r.Module.SHA256, r.Module.Source)
	if r.Module.Build > 0 {
		fmt.Fprintf(&b, ", built with `-trimpath -ldflags='-s -w'` in %.1f s", r.Module.Build.Seconds())
	}
	b.WriteString(".\n\n")

	writeStartup(&b, r)
	writeCost(&b, r)
	writeBursts(&b, r)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeStartup(b *strings.Builder, r *results) {
	b.WriteString("### Start-up and memory\n\n")
	b.WriteString("The same bootstrap without and with the two wasm filters (one VM per worker plus the main thread's),\n")
	b.WriteString("started in turn; time from exec to `/ready` LIVE, RSS at that moment. /proc counts CPU in 10 ms ticks: over a\n")
	b.WriteString("start of 0.1 s the other processes' share is good to ±0.2 core only.\n\n")
	b.WriteString("| Envoy | start → ready, each start | fastest | RSS at ready, each start | other processes + stolen, cores, each start |\n|---|--:|--:|--:|--:|\n")
	for _, row := range []struct {
		name string
		s    []startSample
	}{{"without the plugin", r.Startup.Plain}, {"with the plugin", r.Startup.Plugin}} {
		var ready, rss, noise []string
		var d []time.Duration
		for _, s := range row.s {
			ready = append(ready, fmt.Sprintf("%.2f s", s.Ready.Seconds()))
			rss = append(rss, fmt.Sprintf("%.0f MiB", float64(s.RSSKiB)/1024))
			noise = append(noise, fmt.Sprintf("%.2f", s.CPU.Others+s.CPU.Steal))
			d = append(d, s.Ready)
		}
		fmt.Fprintf(b, "| %s | %s | %.2f s | %s | %s |\n", row.name, strings.Join(ready, ", "), slices.Min(d).Seconds(),
			strings.Join(rss, ", "), strings.Join(noise, ", "))
	}
	fmt.Fprintf(b, "\nThe Envoy with the plugin after every phase below: RSS %.0f MiB (peak %.0f MiB).\n\n",
		float64(r.RSSAfterKiB)/1024, float64(r.HWMKiB)/1024)
}

func writeCost(b *strings.Builder, r *results) {
	p := r.Params
	b.WriteString("### Plugin cost per request\n\n")
	fmt.Fprintf(b, "`/plain/` (no admission) against `/cost/`, the plugin with `%s`: it decides on every request\n", p.costConfig)
	fmt.Fprintf(b, "and never needs to hold one. Arms interleaved in %s slices, each pair in a random order (seed %d); the first\n", p.slice, p.seed)
	fmt.Fprintf(b, "%s of each slice run but not recorded. Latency from just before the client sends to the end of the answer\n", p.settle)
	b.WriteString("(closed loop: each worker waits for its answer). Envoy CPU per request from /proc at every slice boundary.\n\n")
	b.WriteString("| phase | arm | requests | errors | p50 µs | p90 µs | p99 µs | max µs | Envoy CPU µs/req |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, c := range r.Cost {
		pl, pg := c.Arms[armPlain], c.Arms[armPlugin]
		for _, row := range []struct {
			name string
			a    costArm
		}{{"plain", pl}, {"plugin", pg}} {
			a := row.a
			fmt.Fprintf(b, "| %s, %g s | %s | %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
				c.Name, c.Seconds, row.name, a.Requests, a.Errors, us(a.Lat.P50), us(a.Lat.P90), us(a.Lat.P99), us(a.Lat.Max), a.EnvoyUs)
		}
		fmt.Fprintf(b, "| | **plugin − plain** | | | **%+.0f** | %+.0f | **%+.0f** | | **%+.0f** |\n",
			us(pg.Lat.P50-pl.Lat.P50), us(pg.Lat.P90-pl.Lat.P90), us(pg.Lat.P99-pl.Lat.P99), pg.EnvoyUs-pl.EnvoyUs)
	}
	b.WriteString("\n")
	for _, c := range r.Cost {
		fmt.Fprintf(b, "- %s: the plugin decided on %d requests (%d compare-and-swap retries) and held %d until a tick",
			c.Name, c.Decided, c.CASRetries, c.Held)
		if pg, pl := c.Arms[armPlugin], c.Arms[armPlain]; pg.NotHeld.N < pg.Lat.N {
			fmt.Fprintf(b, "; without the %d recorded held ones, plugin p50 %.0f µs, p99 %.0f µs, max %.0f µs (plugin − plain p50 %+.0f µs, p99 %+.0f µs)",
				pg.Lat.N-pg.NotHeld.N, us(pg.NotHeld.P50), us(pg.NotHeld.P99), us(pg.NotHeld.Max), us(pg.NotHeld.P50-pl.Lat.P50), us(pg.NotHeld.P99-pl.Lat.P99))
		}
		b.WriteString(". ")
		writeCPU(b, c.CPU, c.Quiet)
	}
	b.WriteString("\n")
}

func writeBursts(b *strings.Builder, r *results) {
	p := r.Params
	fmt.Fprintf(b, "### The same burst of %d through each arm\n\n", p.burst)
	fmt.Fprintf(b, "%d clients released at one instant (one channel close), each on an HTTP/1.1 connection opened beforehand\n", p.burst)
	fmt.Fprintf(b, "(a warm-up holds %d requests open at once in the upstream). One arm after another, each after a quiet\n", p.burst)
	b.WriteString("second. Arms: `/plain/`; `/lrl/`, `envoy.filters.http.local_ratelimit` with a token bucket of\n")
	fmt.Fprintf(b, "max_tokens %d, tokens_per_fill %d, fill_interval 1s, enabled and enforced 100 %% (429 when empty); `/delay/`,\n", p.limit, p.limit)
	fmt.Fprintf(b, "the plugin with `%s`; `/retry/`, local_ratelimit again (its own bucket) with clients\n", p.delayConfig)
	fmt.Fprintf(b, "that retry %s after a 429 or an error, %d attempts at most.\n\n", p.backoff, p.attempts)
	b.WriteString("Latencies are raw, from the release instant to the end of the client's final answer (the plain arm shows\n")
	b.WriteString("what client, Envoy and upstream alone take for the burst). *Most in 1 s*: the most requests in any 1 s\n")
	b.WriteString("window (sliding), as they arrived at the upstream and as Envoy sent them upstream (`%START_TIME%` +\n")
	b.WriteString("`%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)%` in its access log); the upstream shares this process with the\n")
	fmt.Fprintf(b, "%d clients, so arrivals in the first ~100 ms of a burst lag Envoy's sends by tens of ms. *Most in a\n", p.burst)
	b.WriteString("second*: arrivals per whole second counted from the burst instant.\n\n")
	b.WriteString("| arm | reached upstream | 200 | 429 | errors, other | most in 1 s: arrivals | most in 1 s: Envoy's sends | most in a second | last arrival s | 200s: p50 / p90 / p99 / max ms | attempts | on open connections |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, br := range r.Bursts {
		sent := "—"
		if br.PeakSent >= 0 {
			sent = fmt.Sprint(br.PeakSent)
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d | %s | %d | %.2f | %s | %d | %d |\n",
			br.Name, br.Reached, br.OK, br.TooMany, br.Errors+br.Other, br.PeakSliding, sent, br.peakAligned(), br.LastArrival.Seconds(),
			latencyMs(br.Lat), br.Attempts, br.Reused)
	}
	b.WriteString("\n")
	for _, br := range r.Bursts {
		if br.WarmFailed > 0 {
			fmt.Fprintf(b, "- %s: the warm-up could not open %d of the %d connections.\n", br.Name, br.WarmFailed, br.N)
		}
		if br.TooMany > 0 {
			fmt.Fprintf(b, "- %s: final 429s answered in p50 %.1f ms, max %.1f ms.\n", br.Name, harness.Ms(br.RejectLat.P50), harness.Ms(br.RejectLat.Max))
		}
		if br.Attempts > br.N {
			fmt.Fprintf(b, "- %s: %d attempts for %d clients (%.1f each); most attempts sent in any 1 s window %d; %d clients gave up after %d attempts.\n",
				br.Name, br.Attempts, br.N, float64(br.Attempts)/float64(br.N), br.PeakAttempts, br.N-br.OK, p.attempts)
		}
	}
	for _, br := range r.Bursts {
		fmt.Fprintf(b, "- %s: ", br.Name)
		writeCPU(b, br.CPU, br.Quiet)
	}
	b.WriteString("\nUpstream arrivals per second from the burst instant:\n\n```\n")
	for _, br := range r.Bursts {
		fmt.Fprintf(b, "%s\n%s", br.Name, histogram(br.PerSecond, 40))
		if br.Attempts > br.N {
			fmt.Fprintf(b, "  attempts sent by the clients per second: %v\n", br.AttemptsPerSecond)
		}
		b.WriteString("\n")
	}
	b.WriteString("```\n\n")
	if d := r.Release; d != nil {
		writeRelease(b, d)
	}
}

func writeRelease(b *strings.Builder, d *releaseDetail) {
	b.WriteString("#### Delay arm: release by Envoy vs arrival at the upstream\n\n")
	if d.Joined == 0 {
		fmt.Fprintf(b, "Envoy's access log had no line for the delay arm's %d arrivals: not available.\n\n", d.Missing)
		return
	}
	b.WriteString("From Envoy's access log (`%START_TIME%` and `%COMMON_DURATION(DS_RX_BEG:US_TX_BEG:us)%`: when Envoy saw\n")
	b.WriteString("the request and when its router started the upstream request) joined by request id with the upstream's\n")
	b.WriteString("arrival times and the plugin's `x-shadowlab-held-ms`; wall clock, offsets from the burst instant.\n\n")
	fmt.Fprintf(b, "- %d requests joined (%d arrivals without a log line): %d passed at once, %d held by the plugin.\n", d.Joined, d.Missing, d.Joined-d.Held, d.Held)
	fmt.Fprintf(b, "- Envoy saw the burst's requests within %s ms of the release instant (p50 %s ms).\n", fmtMs(d.Decided.Max), fmtMs(d.Decided.P50))
	fmt.Fprintf(b, "- Most sends by Envoy in any 1 s window: **%d** (from %.3f s); most arrivals at the upstream: **%d** (from %.3f s),\n",
		d.PeakSent, d.PeakSentFrom.Seconds(), d.PeakArrived, d.PeakArrivedFrom.Seconds())
	fmt.Fprintf(b, "  a window in which Envoy sent %d.\n", d.SentInPeak)
	fmt.Fprintf(b, "- Held requests are sent in groups, one per tick that released them (sends less than 1 ms apart): time between\n")
	fmt.Fprintf(b, "  groups p50 %s ms, p90 %s ms, p99 %s ms, max %s ms (%d groups); most sent within 1 ms: %d.\n",
		fmtMs(d.BetweenTicks.P50), fmtMs(d.BetweenTicks.P90), fmtMs(d.BetweenTicks.P99), fmtMs(d.BetweenTicks.Max), d.BetweenTicks.N+1, d.MostAtOnce)
	fmt.Fprintf(b, "- Envoy's send to upstream arrival: p50 %s ms, p99 %s ms, max %s ms.\n", fmtMs(d.Lag.P50), fmtMs(d.Lag.P99), fmtMs(d.Lag.Max))
	fmt.Fprintf(b, "- Held requests, Envoy's send − (Envoy saw it + held-ms): p50 %s ms, p99 %s ms, max %s ms (held-ms is whole ms,\n",
		fmtMs(d.ResumeToSend.P50), fmtMs(d.ResumeToSend.P99), fmtMs(d.ResumeToSend.Max))
	b.WriteString("  truncated: up to 1 ms of this is rounding; the rest is the plugin's decision and the resume).\n\n")
	switch {
	case d.PeakSent > d.Limit:
		fmt.Fprintf(b, "Envoy itself sent more than %d within 1 s: the excess is already in Envoy's sends (the plugin's releases\n", d.Limit)
		b.WriteString("and the router), not only in forwarding to the upstream.")
		if d.PeakArrived > d.SentInPeak {
			b.WriteString(" Forwarding jitter adds to the densest arrival window.")
		}
		b.WriteString("\n\n")
	case d.PeakArrived > d.Limit:
		fmt.Fprintf(b, "Envoy sent at most %d within 1 s; only the arrivals exceed it: the excess is forwarding jitter between\n", d.Limit)
		b.WriteString("Envoy and the upstream.\n\n")
	}
	writeEdge(b, "sends", d.SendEdge)
	writeEdge(b, "arrivals", d.ArrivalEdge)
}

// writeEdge lists the first and last requests of a 1 s window that holds
// more than the limit.
func writeEdge(b *strings.Builder, what string, rows []releaseRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "The densest 1 s window of %s: its first and last 4 %s (offsets in ms):\n\n", what, what)
	b.WriteString("| id | admission | Envoy saw it | held ms | Envoy sent it | arrived | send → arrival |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %.1f | %d | %.1f | %.1f | %.2f |\n", r.ID, r.Admission, harness.Ms(r.Decided), r.HeldMs, harness.Ms(r.Sent), harness.Ms(r.Arrived), harness.Ms(r.Arrived-r.Sent))
	}
	b.WriteString("\n")
}

func writeCPU(b *strings.Builder, c harness.CPUUsage, quiet bool) {
	fmt.Fprintf(b, "CPU meanwhile, in cores: this benchmark (client, upstream, Envoy) %.2f, other processes %.2f, stolen %.2f.", c.Ours, c.Others, c.Steal)
	if c.Disturbed() {
		b.WriteString(" **Not quiet: disturbed.**")
	} else if !quiet {
		b.WriteString(" (No quiet second before it.)")
	}
	b.WriteString("\n")
}

func latencyMs(s harness.Latency) string {
	if s.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s / %s", fmtMs(s.P50), fmtMs(s.P90), fmtMs(s.P99), fmtMs(s.Max))
}

// fmtMs prints a duration in ms with precision to match its size.
func fmtMs(d time.Duration) string {
	v := harness.Ms(d)
	switch {
	case v >= 100 || v <= -100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10 || v <= -10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
