package admission

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

// worker says when a worker that should act at due actually does: never
// before due, possibly much later (a stalled process, a late tick).
type worker func(due time.Duration) time.Duration

// stalled is a worker that does nothing from `from` for `for_`, then
// everything that came due meanwhile at once.
func stalled(from, for_ time.Duration) worker {
	return func(due time.Duration) time.Duration {
		if due >= from && due < from+for_ {
			return from + for_
		}
		return due
	}
}

// ticking is a worker that acts only on ticks of period tick (the wasm
// plugin's OnTick), except during the stall of stalled.
func ticking(tick time.Duration, w worker) worker {
	return func(due time.Duration) time.Duration {
		at := w(due)
		return (at + tick - 1) / tick * tick
	}
}

// randomlyLate is a worker late by up to most, uniformly.
func randomlyLate(r *rand.Rand, most time.Duration) worker {
	return func(due time.Duration) time.Duration { return due + time.Duration(r.Int64N(int64(most)+1)) }
}

// event is an arrival (decided is -1) or the release of a request held
// since decided, at when.
type event struct {
	when, decided time.Duration
	seq           int
}

type events []event

func (q events) Len() int { return len(q) }
func (q events) Less(i, j int) bool {
	if q[i].when != q[j].when {
		return q[i].when < q[j].when
	}
	return q[i].seq < q[j].seq
}
func (q events) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *events) Push(x any)   { *q = append(*q, x.(event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// lateRun drives one key as a scope does, on a fake clock: each arrival is
// decided when the worker gets to it; a held request is released through
// Release when the worker gets to its due time, held again when the window
// is full, and refused (429) when that would be past MaxDelay since its
// decision. It returns every release time and how many requests were
// refused at decision and after a hold.
func lateRun(c Config, arrivals []time.Duration, w worker, rnd Source) (releases []time.Duration, refused, refusedHeld int) {
	var s State
	var q events
	for i, at := range arrivals {
		heap.Push(&q, event{when: w(at), decided: -1, seq: i})
	}
	seq := len(arrivals)
	for q.Len() > 0 {
		e := heap.Pop(&q).(event)
		now := t0.Add(e.when)
		if e.decided < 0 {
			var d Decision
			s, d = Decide(s, now, rnd, c)
			switch d.Outcome {
			case Admit:
				releases = append(releases, e.when)
			case Delay:
				seq++
				heap.Push(&q, event{when: w(e.when + d.Delay), decided: e.when, seq: seq})
			case Reject:
				refused++
			}
			continue
		}
		var wait time.Duration
		s, wait = Release(s, now, c)
		switch {
		case wait == 0:
			releases = append(releases, e.when)
		case e.when+wait-e.decided > c.MaxDelay:
			refusedHeld++
		default:
			seq++
			heap.Push(&q, event{when: w(e.when + wait), decided: e.decided, seq: seq})
		}
	}
	return releases, refused, refusedHeld
}

// TestBoundAtRelease releases held requests adversarially late, far
// beyond Slack: the window bound holds at the release point, and nothing
// is lost (every request is released, or refused with a 429).
func TestBoundAtRelease(t *testing.T) {
	burst100 := Config{Limit: 100, Window: time.Second, MaxDelay: 15 * time.Second, Mode: ModeDelay, Slack: 50 * time.Millisecond}
	local := burst100
	local.Slack = 100 * time.Millisecond
	tight := Config{Limit: 10, Window: time.Second, MaxDelay: 2 * time.Second, Mode: ModeDelay}
	twoBursts := append(burst(1000, 0), burst(300, 2100*time.Millisecond)...)
	tests := map[string]struct {
		cfg      Config
		arrivals []time.Duration
		worker   func(r *rand.Rand) worker
		// refusals: whether some requests may be refused after a hold
		// (their MaxDelay cannot absorb the lateness).
		refusals bool
	}{
		"stalled 400ms, then everything at once": {burst100, burst(1000, 0),
			func(*rand.Rand) worker { return stalled(2*time.Second, 400*time.Millisecond) }, false},
		"stalled 400ms at the start": {burst100, burst(1000, 0),
			func(*rand.Rand) worker { return stalled(0, 400*time.Millisecond) }, false},
		"stalled 400ms three times": {burst100, burst(1000, 0),
			func(*rand.Rand) worker {
				return func(due time.Duration) time.Duration {
					for _, at := range []time.Duration{time.Second, 3 * time.Second, 3500 * time.Millisecond} {
						due = stalled(at, 400*time.Millisecond)(due)
					}
					return due
				}
			}, false},
		"arrivals during the stall": {burst100, twoBursts,
			func(*rand.Rand) worker { return stalled(2*time.Second, 400*time.Millisecond) }, false},
		"ticks of 100ms and a stall": {local, burst(1000, 0),
			func(*rand.Rand) worker {
				return ticking(100*time.Millisecond, stalled(5*time.Second, 400*time.Millisecond))
			}, false},
		"randomly late up to 400ms": {burst100, burst(1000, 0),
			func(r *rand.Rand) worker { return randomlyLate(r, 400*time.Millisecond) }, false},
		"short MaxDelay, late 1.5s": {tight, burst(40, 0),
			func(*rand.Rand) worker { return stalled(500*time.Millisecond, 1500*time.Millisecond) }, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 7))
				releases, refused, refusedHeld := lateRun(tc.cfg, tc.arrivals, tc.worker(r), rand.NewPCG(seed, 9))
				if n := maxInWindow(releases, tc.cfg.Window); n > tc.cfg.Limit {
					t.Fatalf("seed %d: %d releases in one window of %v, limit %d", seed, n, tc.cfg.Window, tc.cfg.Limit)
				}
				if got := len(releases) + refused + refusedHeld; got != len(tc.arrivals) {
					t.Fatalf("seed %d: %d released, %d refused, %d refused after a hold: %d of %d requests", seed, len(releases), refused, refusedHeld, got, len(tc.arrivals))
				}
				if !tc.refusals && refused+refusedHeld > 0 {
					t.Fatalf("seed %d: %d refused, %d refused after a hold: MaxDelay had room for all", seed, refused, refusedHeld)
				}
				if tc.refusals && refusedHeld == 0 {
					t.Fatalf("seed %d: nothing refused after a hold: the scenario does not push a release past MaxDelay", seed)
				}
			}
		})
	}
}

// TestWithoutReleaseTheStallOvershoots is the same stall without Release:
// the schedule alone lets the backlog of a stall through at once, over the
// limit. It shows what TestBoundAtRelease guards against.
func TestWithoutReleaseTheStallOvershoots(t *testing.T) {
	c := Config{Limit: 100, Window: time.Second, MaxDelay: 15 * time.Second, Mode: ModeDelay, Slack: 50 * time.Millisecond}
	w := stalled(2*time.Second, 400*time.Millisecond)
	steps := simulate(t, c, burst(1000, 0), rand.NewPCG(1, 2), false)
	var releases []time.Duration
	for _, s := range steps {
		if r, ok := s.release(); ok {
			releases = append(releases, w(r))
		}
	}
	if n := maxInWindow(releases, c.Window); n <= c.Limit {
		t.Fatalf("%d releases in the worst window: the stall does not overshoot, the scenario tests nothing", n)
	}
}

func TestReleaseSteps(t *testing.T) {
	c := Config{Limit: 3, Window: time.Second, MaxDelay: 10 * time.Second, Mode: ModeDelay}
	steps := []struct {
		at   time.Duration
		wait time.Duration // 0: released
	}{
		{0, 0},
		{100 * time.Millisecond, 0},
		{100 * time.Millisecond, 0},
		{200 * time.Millisecond, 800 * time.Millisecond}, // room when the first leaves the window
		{999 * time.Millisecond, time.Millisecond},
		{time.Second, 0},
		{time.Second, 100 * time.Millisecond},
	}
	var s State
	for i, st := range steps {
		var wait time.Duration
		s, wait = Release(s, t0.Add(st.at), c)
		// The window keeps times to the nanosecond, rounded up to the end
		// of their unit: room comes within a nanosecond of the exact time.
		if wait < st.wait || wait > st.wait+time.Nanosecond {
			t.Fatalf("step %d at %v: wait %v, want %v", i, st.at, wait, st.wait)
		}
	}
	// Other modes hold nothing: Release lets everything go.
	for _, c := range []Config{
		{Limit: 1, Window: time.Second, Mode: ModeReject},
		{Limit: 1, Window: time.Second, MaxDelay: time.Second, Mode: ModeObserve},
		{},
	} {
		var s State
		for range 3 {
			var wait time.Duration
			if s, wait = Release(s, t0, c); wait != 0 {
				t.Fatalf("%+v: Release waits %v", c, wait)
			}
		}
	}
}

// TestDecideCountsPassingAtOnce: a request the schedule lets pass at once
// is a release too; with the window full of late releases it is held until
// there is room, or refused when that is past MaxDelay.
func TestDecideCountsPassingAtOnce(t *testing.T) {
	for name, tc := range map[string]struct {
		maxDelay time.Duration
		want     Action
	}{
		"held until there is room": {time.Second, Delay},
		"refused past MaxDelay":    {100 * time.Millisecond, Reject},
	} {
		t.Run(name, func(t *testing.T) {
			c := Config{Limit: 2, Window: time.Second, MaxDelay: tc.maxDelay, Mode: ModeDelay}
			var s State
			for range 2 {
				s, _ = Release(s, t0, c) // two late releases of some earlier schedule
			}
			// Ten slots later the schedule is idle: it would pass at once.
			s, d := Decide(s, t0.Add(10*time.Millisecond), rand.NewPCG(1, 2), c)
			if d.Outcome != tc.want {
				t.Fatalf("decision %+v, want %v", d, tc.want)
			}
			if d.Outcome == Delay && d.Delay != 990*time.Millisecond+time.Nanosecond && d.Delay != 990*time.Millisecond {
				t.Fatalf("delay %v, want 990ms: when the window has room", d.Delay)
			}
			if _, wait := Release(s, t0.Add(10*time.Millisecond+d.Delay), c); d.Outcome == Delay && wait != 0 {
				t.Fatalf("released at its delay: still waits %v", wait)
			}
		})
	}
}
