package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"github.com/shadowlab/shadowlab/internal/harness"
)

// answer is the outcome of one request.
type answer struct {
	status    int // 0 when err is set
	err       error
	reused    bool   // sent on a connection that was open already
	admission string // the plugin's verdict as the upstream saw it
}

// get sends one GET, with headerID when id is set, and reads the answer to
// the end.
func get(ctx context.Context, c *http.Client, url, id string) answer {
	var a answer
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { a.reused = info.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		a.err = err
		return a
	}
	if id != "" {
		req.Header.Set(headerID, id)
	}
	resp, err := c.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	a.status, a.err, a.admission = resp.StatusCode, err, resp.Header.Get(headerEchoAdmission)
	return a
}

// costRun is what one cost phase measured, by arm (recorded slices only,
// except sent and envoyTicks, which cover every slice).
type costRun struct {
	lat        [numArms][]time.Duration
	notHeld    [numArms][]time.Duration // of the requests the plugin did not hold
	errors     [numArms]int
	sent       [numArms]int
	envoyTicks [numArms]uint64 // Envoy's CPU ticks during the arm's slices
	cpuOK      bool            // envoyTicks could be read at every boundary
}

// runCost sends requests from workers, each sending its next request when
// the previous one is answered and its next slot has come: worker w's slots
// are pace apart, offset by w×pace/workers, so the workers take turns (pace
// 0: no slots, at once). Each request goes to the arm of the slice
// it starts in; its latency runs from just before it is sent to the end of
// its answer. Envoy's CPU time is read at every slice boundary.
func runCost(ctx context.Context, c *http.Client, urls [numArms]string, workers int, pace time.Duration, sl harness.Slicing, envoyPid int) costRun {
	type count struct {
		lat     [numArms][]time.Duration
		notHeld [numArms][]time.Duration
		errors  [numArms]int
		sent    [numArms]int
	}
	counts := make([]count, workers)
	t0 := time.Now()
	// Envoy's CPU ticks at every slice boundary.
	ticks := harness.SampleAt(ctx, t0, sl.Slice, len(sl.Order), func() (uint64, error) { return harness.PidTicks(envoyPid) })
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			cnt := &counts[w]
			next := t0.Add(pace * time.Duration(w) / time.Duration(workers)) // workers staggered over one pace
			for ctx.Err() == nil {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				start := time.Now()
				_, arm, rec, ok := sl.At(start.Sub(t0))
				if !ok {
					return
				}
				a := get(ctx, c, urls[arm], "")
				took := time.Since(start)
				cnt.sent[arm]++
				switch {
				case !rec:
				case a.err != nil || a.status != http.StatusOK:
					cnt.errors[arm]++
				default:
					cnt.lat[arm] = append(cnt.lat[arm], took)
					if a.admission != "held" {
						cnt.notHeld[arm] = append(cnt.notHeld[arm], took)
					}
				}
				// The next slot of this worker's own pace that is not past:
				// no catching up after a stall, and the workers stay
				// staggered rather than falling into step.
				next = next.Add(pace)
				if behind := time.Since(next); pace > 0 && behind > 0 {
					next = next.Add((behind/pace + 1) * pace)
				}
			}
		})
	}
	wg.Wait()
	var run costRun
	for _, cnt := range counts {
		for a := range numArms {
			run.lat[a] = append(run.lat[a], cnt.lat[a]...)
			run.notHeld[a] = append(run.notHeld[a], cnt.notHeld[a]...)
			run.errors[a] += cnt.errors[a]
			run.sent[a] += cnt.sent[a]
		}
	}
	if samples := <-ticks; len(samples) == len(sl.Order)+1 {
		run.cpuOK = true
		for k, arm := range sl.Order {
			run.envoyTicks[arm] += samples[k+1] - samples[k]
		}
	}
	return run
}

// shot is one client of a burst: its attempts and its final answer.
type shot struct {
	answer
	done     time.Duration   // final answer, from the burst instant
	attempts []time.Duration // when each attempt was sent, from the burst instant
	reused   int             // attempts sent on an already open connection
}

// burst releases n clients at one instant (one channel close) against
// url. A client whose answer is 429 or an error tries again after backoff,
// up to attempts times in all (1: no retry). Request i's attempt j carries
// headerID "<name>/<i>/<j>".
func burst(ctx context.Context, c *http.Client, url, name string, n, attempts int, backoff time.Duration) (time.Time, []shot) {
	shots := make([]shot, n)
	start := make(chan struct{})
	var t0 time.Time // written before start is closed, read after
	var ready, wg sync.WaitGroup
	ready.Add(n)
	for i := range n {
		wg.Go(func() {
			s := &shots[i]
			ready.Done()
			<-start
			for j := range attempts {
				if j > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(backoff):
					}
				}
				s.attempts = append(s.attempts, time.Since(t0))
				s.answer = get(ctx, c, url, fmt.Sprintf("%s/%d/%d", name, i, j+1))
				s.done = time.Since(t0)
				if s.answer.reused {
					s.reused++
				}
				if s.err == nil && s.status != http.StatusTooManyRequests {
					return
				}
			}
		})
	}
	ready.Wait()
	t0 = time.Now()
	close(start)
	wg.Wait()
	return t0, shots
}

// warm opens n connections to url at once: the upstream holds each warm
// request until all n are in flight, so the client cannot reuse one for
// another. It reports how many failed.
func warm(ctx context.Context, c *http.Client, up *upstream, url string, n int) int {
	up.expectWarm(n)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if a := get(ctx, c, url, ""); a.err != nil || a.status != http.StatusOK {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return failed
}
