package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/policy"
)

// The burst scene's routes (see policy.yaml.tmpl): the same service, with
// and without admission.
const (
	burstRoute    = "jobs"
	burstPath     = "/jobs/run"
	rawBurstPath  = "/batch/run"
	burstDeadline = 40 * time.Second
)

// burstOutcome is what one burst did, seen by the clients and the upstream.
type burstOutcome struct {
	ok, rejected, failed int
	latencies            []time.Duration
	arrivals             []time.Time // at the upstream, sorted
	start                time.Time
}

// burst fires n requests at one instant on the admission route and on the
// same service without admission, one after the other, and prints the
// upstream's arrivals per second side by side. It fails if admission let
// more than the limit + 10 % through in any second, or lost a request.
func (d *demo) burst(ctx context.Context, pol *policy.Policy, n int) error {
	r := pol.Route(burstRoute)
	if r == nil || r.Admission == nil {
		return fmt.Errorf("demo policy has no admission route %q", burstRoute)
	}
	adm, b := r.Admission, r.Admission.Budget
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, IdleConnTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	// Open the connections first, so that the burst is requests, not
	// connection set-ups, arriving at one instant.
	if _, err := d.fire(ctx, client, "/static/warm", n); err != nil {
		return err
	}
	raw, err := d.fire(ctx, client, rawBurstPath, n)
	if err != nil {
		return err
	}
	held, err := d.fire(ctx, client, burstPath, n)
	if err != nil {
		return err
	}
	d.burstSent = n
	d.say("  %d requests at one instant, twice: on %s (no admission), then on %s (admission %s, %s, max delay %s, %s scope)",
		n, rawBurstPath, burstPath, adm.Rate, b.Mode, b.MaxDelay, adm.Scope)
	renderProfiles(d.out, raw, held)

	limit := b.Limit * 110 / 100
	peakRaw, _ := admission.MostInWindow(raw.arrivals, b.Window)
	peak, _ := admission.MostInWindow(held.arrivals, b.Window)
	d.say("  without admission: peak %d per %s at the upstream, all %d answered within %s",
		peakRaw, b.Window, raw.ok, pct(raw.latencies, 1).Round(time.Millisecond))
	d.say("  with admission:    peak %d per %s (any sliding window), %d answered 200, %d refused, %d failed; waits p50 %s, p99 %s, max %s",
		peak, b.Window, held.ok, held.rejected, held.failed,
		pct(held.latencies, 0.5).Round(time.Millisecond), pct(held.latencies, 0.99).Round(time.Millisecond), pct(held.latencies, 1).Round(time.Millisecond))
	var problems []string
	if peak > limit {
		problems = append(problems, fmt.Sprintf("the upstream saw %d requests within %s, over the limit %d + 10 %%", peak, b.Window, b.Limit))
	}
	if held.ok != n || len(held.arrivals) != n {
		problems = append(problems, fmt.Sprintf("%d of %d held requests answered 200 and %d reached the upstream: every one should", held.ok, n, len(held.arrivals)))
	}
	if w := pct(held.latencies, 1); w > b.MaxDelay+time.Second {
		problems = append(problems, fmt.Sprintf("a request waited %s, over the max delay %s", w, b.MaxDelay))
	}
	return d.verdict(problems, "the burst was spread under the limit, and nothing was lost")
}

// fire sends n GETs to path released at one instant and returns what the
// clients and the primary (legacy) saw.
func (d *demo) fire(ctx context.Context, client *http.Client, path string, n int) (burstOutcome, error) {
	before, err := received(ctx, d.client, d.addrs["legacy"])
	if err != nil {
		return burstOutcome{}, err
	}
	out := burstOutcome{latencies: make([]time.Duration, n)}
	status := make([]int, n)
	ctx, cancel := context.WithTimeout(ctx, burstDeadline)
	defer cancel()
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.listener+path, nil)
			<-gate
			t0 := time.Now()
			resp, err := client.Do(req)
			out.latencies[i] = time.Since(t0)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status[i] = resp.StatusCode
		})
	}
	time.Sleep(50 * time.Millisecond) // every client waiting at the gate
	out.start = time.Now()
	close(gate)
	wg.Wait()
	if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
		return out, ctx.Err()
	}
	for _, s := range status {
		switch s {
		case http.StatusOK:
			out.ok++
		case http.StatusTooManyRequests:
			out.rejected++
		default:
			out.failed++
		}
	}
	after, err := received(ctx, d.client, d.addrs["legacy"])
	if err != nil {
		return out, err
	}
	out.arrivals = arrivalTimes(after[min(len(before), len(after)):], path)
	return out, nil
}

func arrivalTimes(reqs []backend.Request, path string) []time.Time {
	var out []time.Time
	for _, r := range reqs {
		if r.Path == path {
			out = append(out, r.At)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// renderProfiles prints the arrivals per second since each burst's start,
// side by side, as bars.
func renderProfiles(w io.Writer, raw, held burstOutcome) {
	a, b := perSecond(raw), perSecond(held)
	peak := max(slices.Max(append(a, 1)), slices.Max(append(b, 1)))
	const width = 30
	bar := func(n int) string {
		if n == 0 {
			return ""
		}
		return strings.Repeat("█", max(1, n*width/peak))
	}
	fmt.Fprintf(w, "  %6s  %-*s  %s\n", "second", width+6, "upstream arrivals without admission", "with shadowlab admission")
	for s := range max(len(a), len(b)) {
		var x, y int
		if s < len(a) {
			x = a[s]
		}
		if s < len(b) {
			y = b[s]
		}
		fmt.Fprintf(w, "  %6d  %5d %-*s  %5d %s\n", s, x, width, bar(x), y, bar(y))
	}
}

// perSecond counts o's arrivals in each second since its start.
func perSecond(o burstOutcome) []int {
	var counts []int
	for _, t := range o.arrivals {
		s := max(int(t.Sub(o.start)/time.Second), 0)
		for len(counts) <= s {
			counts = append(counts, 0)
		}
		counts[s]++
	}
	return counts
}

// pct is the q-quantile of ds (0 when empty).
func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
