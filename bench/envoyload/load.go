package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shadowlab/shadowlab/examples/backend"
	"github.com/shadowlab/shadowlab/internal/harness"
)

// client sends the benchmark's requests: GET, keep-alive connections
// reused, nothing decompressed, every answer read to the end and checked to
// come from the primary.
type client struct {
	hc *http.Client

	mu     sync.Mutex // guards errors; taken only when a request fails
	errors map[string]int
}

// maxErrorKinds bounds the distinct error messages kept.
const maxErrorKinds = 8

func newClient(conns int, timeout time.Duration) *client {
	return &client{hc: harness.Client(conns, timeout), errors: map[string]int{}}
}

// get sends one request and reports whether the primary answered 200.
func (c *client) get(ctx context.Context, url string) bool {
	err := c.do(ctx, url)
	if err != nil {
		c.mu.Lock()
		msg := err.Error()
		if _, seen := c.errors[msg]; !seen && len(c.errors) >= maxErrorKinds {
			msg = "other"
		}
		c.errors[msg]++
		c.mu.Unlock()
	}
	return err == nil
}

func (c *client) do(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("reading the body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", resp.StatusCode)
	case resp.Header.Get(backend.HeaderBackend) != answerer(url):
		return fmt.Errorf("answered by %q, not the %s", resp.Header.Get(backend.HeaderBackend), answerer(url))
	}
	return nil
}

// takeErrors returns the errors seen since the last call and forgets them.
func (c *client) takeErrors() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errors
	c.errors = map[string]int{}
	return out
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// armRun is one arm's share of a phase's requests.
type armRun struct {
	Requests int     `json:"requests"` // recorded: started (closed loop) or due (open loop) after the settle of the arm's slices
	Errors   int     `json:"errors"`   // of those, failed (or, open loop, never sent)
	RPS      float64 `json:"rps"`      // answered recorded requests per second of recorded time
	Sent     int     `json:"sent"`     // every request sent to the arm, recorded or not
	// Open loop only: latency from the due time, and the dispatch lag
	// (sent − due) included in it, in ns.
	Latency harness.Latency `json:"latency,omitzero"`
	Lag     harness.Latency `json:"dispatch_lag,omitzero"`
}

// runClosed runs workers that each send the next request as soon as the
// previous one is answered, to the arm of the current slice. Requests are
// counted by the slice they started in. It returns the counts by arm and
// the CPU samples at each slice boundary (nil if unreadable).
func runClosed(ctx context.Context, c *client, urls []string, workers int, sl harness.Slicing, pids []int) ([]armRun, []harness.CPUSample) {
	counts := make([][]armRun, workers)
	t0 := time.Now()
	cpu := sampleSlices(ctx, t0, sl, pids)
	var wg sync.WaitGroup
	for w := range workers {
		counts[w] = make([]armRun, len(urls))
		wg.Go(func() {
			cnt := counts[w]
			for ctx.Err() == nil {
				_, arm, rec, ok := sl.At(time.Since(t0))
				if !ok {
					return
				}
				good := c.get(ctx, urls[arm])
				cnt[arm].Sent++
				if rec {
					cnt[arm].Requests++
					if !good {
						cnt[arm].Errors++
					}
				}
			}
		})
	}
	wg.Wait()
	arms := make([]armRun, len(urls))
	for _, cnt := range counts {
		for a, n := range cnt {
			arms[a].Requests += n.Requests
			arms[a].Errors += n.Errors
			arms[a].Sent += n.Sent
		}
	}
	for a := range arms {
		arms[a].RPS = float64(arms[a].Requests-arms[a].Errors) / sl.Recorded(a).Seconds()
	}
	return arms, <-cpu
}

// openRun is the raw outcome of an open-loop phase: for request i, due at
// sched.offset(i), when it was sent and when it ended (offsets from the
// start; end < 0: never sent), and whether it failed. Each request's slots
// are written by the one worker that sent it: no lock per request.
type openRun struct {
	sched      schedule
	sl         harness.Slicing
	start, end []time.Duration
	failed     []bool
	cpu        []harness.CPUSample // at each slice boundary; nil if unreadable
}

// runOpen sends requests at a fixed rate, each at its due time whether or
// not earlier ones have been answered (open loop), through a pool of
// inflight workers. Latency is measured from the due time, so a late
// dispatch or a queue in front of the workers is counted, not hidden.
func runOpen(ctx context.Context, c *client, urls []string, rate float64, sl harness.Slicing, inflight int, pids []int) *openRun {
	sched := schedule{rate: rate}
	n := sched.count(sl.Total())
	r := &openRun{sched: sched, sl: sl, start: make([]time.Duration, n), end: make([]time.Duration, n), failed: make([]bool, n)}
	for i := range r.end {
		r.end[i] = -1
	}
	jobs := make(chan int, inflight)
	t0 := time.Now()
	cpu := sampleSlices(ctx, t0, sl, pids)
	var wg sync.WaitGroup
	for range inflight {
		wg.Go(func() {
			for i := range jobs {
				_, arm, _, _ := sl.At(sched.offset(i))
				r.start[i] = time.Since(t0)
				r.failed[i] = !c.get(ctx, urls[arm])
				r.end[i] = time.Since(t0)
			}
		})
	}
	dispatch(ctx, t0, sched, n, jobs)
	wg.Wait()
	r.cpu = <-cpu
	return r
}

// dispatch hands request i to the workers at t0+sched.offset(i). It sleeps
// with nanosleep on its own OS thread with a 1 µs timer slack: Go's timers
// wake up to a millisecond late, which would add a millisecond to every
// latency of both arms.
func dispatch(ctx context.Context, t0 time.Time, sched schedule, n int, jobs chan<- int) {
	defer close(jobs)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setTimerSlack(1)
	defer setTimerSlack(0) // 0: back to the thread's default
	for i := range n {
		if wait := sched.offset(i) - time.Since(t0); wait > 0 {
			nanosleep(wait)
		}
		select {
		case jobs <- i:
		case <-ctx.Done():
			return
		}
	}
}

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK.
const prSetTimerSlack = 29

func setTimerSlack(ns uintptr) {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, ns, 0)
}

func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for errors.Is(syscall.Nanosleep(&ts, &ts), syscall.EINTR) {
	}
}

// writeCSV writes to path one line per request: due, sent and done
// offsets in ms (done -1: never sent), the arm, whether it was recorded,
// and ok.
func (r *openRun) writeCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	fmt.Fprintln(bw, "due_ms,sent_ms,done_ms,arm,recorded,ok")
	for i := range r.end {
		due := r.sched.offset(i)
		_, arm, rec, _ := r.sl.At(due)
		done := -1.0
		if r.end[i] >= 0 {
			done = harness.Ms(r.end[i])
		}
		fmt.Fprintf(bw, "%.3f,%.3f,%.3f,%d,%t,%t\n", harness.Ms(due), harness.Ms(r.start[i]), done, arm, rec, r.end[i] >= 0 && !r.failed[i])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// arms splits the run by arm, keeping the recorded requests only.
func (r *openRun) arms(n int) []armRun {
	lat, lag := make([][]time.Duration, n), make([][]time.Duration, n)
	out := make([]armRun, n)
	for i := range r.end {
		due := r.sched.offset(i)
		_, arm, rec, _ := r.sl.At(due)
		if r.end[i] >= 0 {
			out[arm].Sent++
		}
		if !rec {
			continue
		}
		out[arm].Requests++
		if r.end[i] < 0 || r.failed[i] {
			out[arm].Errors++
			continue
		}
		lat[arm] = append(lat[arm], r.end[i]-due)
		lag[arm] = append(lag[arm], r.start[i]-due)
	}
	for a := range out {
		out[a].Latency = harness.Summarize(lat[a])
		out[a].Lag = harness.Summarize(lag[a])
		out[a].RPS = float64(out[a].Latency.N) / r.sl.Recorded(a).Seconds()
	}
	return out
}

// answerer is the service that must answer url: the candidate on the
// promoted rollout route, the primary (legacy) everywhere else, the
// fallback route included.
func answerer(url string) string {
	if strings.Contains(url, "/rollout-promoted/") {
		return "candidate"
	}
	return "legacy"
}
