package admission

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// t0 is 17:00 sharp, when the scheduler fires.
var t0 = time.Date(2026, 1, 5, 17, 0, 0, 0, time.UTC)

// step is one decision of a simulated run.
type step struct {
	at time.Duration // arrival, since t0
	d  Decision
}

// release is when the request reaches the upstream (since t0), and whether
// it does (in ModeObserve: would).
func (s step) release() (time.Duration, bool) {
	switch s.d.Outcome {
	case Admit:
		return s.at, true
	case Delay:
		return s.at + s.d.Delay, true
	}
	return 0, false
}

// simulate decides on one key's arrivals in order. With roundTrip the
// state goes through AppendBinary and UnmarshalBinary between decisions,
// as it does in Envoy's shared data, and must come back equal.
func simulate(t testing.TB, c Config, arrivals []time.Duration, rnd Source, roundTrip bool) []step {
	t.Helper()
	var s State
	steps := make([]step, 0, len(arrivals))
	buf := make([]byte, 0, StateSize)
	for _, at := range arrivals {
		var d Decision
		s, d = Decide(s, t0.Add(at), rnd, c)
		steps = append(steps, step{at: at, d: d})
		if roundTrip {
			buf, _ = s.AppendBinary(buf[:0])
			var back State
			if err := back.UnmarshalBinary(buf); err != nil {
				t.Fatalf("state at %v does not decode: %v", at, err)
			}
			if back != s {
				t.Fatalf("state at %v: round trip changed it: %+v -> %+v", at, s, back)
			}
		}
	}
	return steps
}

// maxInWindow is MostInWindow of offsets (times need not be sorted).
func maxInWindow(times []time.Duration, w time.Duration) int {
	ts := make([]time.Time, len(times))
	for i, d := range times {
		ts[i] = time.Time{}.Add(d)
	}
	slices.SortFunc(ts, time.Time.Compare)
	most, _ := MostInWindow(ts, w)
	return most
}

// check verifies the guarantees on a run and returns the release times.
// late, if not nil, draws how late each held request is actually released
// (at most c.Slack): the window bound must hold for the late releases too.
func check(t *testing.T, c Config, steps []step, late func() time.Duration) []time.Duration {
	t.Helper()
	maxRA := c.MaxRetryAfter()
	var releases []time.Duration
	for i, s := range steps {
		d := s.d
		if c.Mode == ModeObserve {
			if d.Action != Admit || !d.Observed {
				t.Fatalf("step %d at %v: observe mode acted: %+v", i, s.at, d)
			}
		} else if d.Action != d.Outcome || d.Observed {
			t.Fatalf("step %d at %v: action %v differs from outcome %v", i, s.at, d.Action, d.Outcome)
		}
		switch d.Outcome {
		case Admit:
			if d.Delay != 0 || d.RetryAfter != 0 {
				t.Fatalf("step %d at %v: admit with delay or retry: %+v", i, s.at, d)
			}
		case Delay:
			if d.Delay <= 0 || d.Delay > c.MaxDelay || d.RetryAfter != 0 {
				t.Fatalf("step %d at %v: delay %v outside (0, %v]: %+v", i, s.at, d.Delay, c.MaxDelay, d)
			}
		case Reject:
			if d.Delay != 0 || d.RetryAfter < 1 || d.RetryAfter > maxRA {
				t.Fatalf("step %d at %v: Retry-After %d outside [1, %d]: %+v", i, s.at, d.RetryAfter, maxRA, d)
			}
		default:
			t.Fatalf("step %d: bad outcome %v", i, d.Outcome)
		}
		if r, ok := s.release(); ok {
			if late != nil && d.Outcome == Delay {
				r += late()
			}
			releases = append(releases, r)
		}
	}
	if n := maxInWindow(releases, c.Window); n > c.Limit {
		t.Fatalf("%d releases in one window of %v, limit %d", n, c.Window, c.Limit)
	}
	return releases
}

// burst returns n arrivals at the same instant at.
func burst(n int, at time.Duration) []time.Duration {
	return slices.Repeat([]time.Duration{at}, n)
}

func TestDecideSteps(t *testing.T) {
	const any = Action(255) // the outcome depends on the jitter
	type want struct {
		at         time.Duration
		outcome    Action
		minD, maxD time.Duration // delay bounds when outcome is Delay
		minRA      int           // Retry-After bounds when outcome is Reject
		maxRA      int           // (0: any within Config.MaxRetryAfter)
	}
	admit := func(at time.Duration) want { return want{at: at, outcome: Admit} }
	either := func(at time.Duration) want { return want{at: at, outcome: any} }
	delayed := func(at, lo, hi time.Duration) want { return want{at: at, outcome: Delay, minD: lo, maxD: hi} }
	refused := func(at time.Duration, lo, hi int) want { return want{at: at, outcome: Reject, minRA: lo, maxRA: hi} }
	delay := Config{Limit: 10, Window: time.Second, MaxDelay: 300 * time.Millisecond, Mode: ModeDelay}
	reject := Config{Limit: 3, Window: time.Second, Mode: ModeReject}
	ms := time.Millisecond
	tests := map[string]struct {
		cfg   Config
		steps []want
	}{
		"delay: an idle key passes at once": {
			cfg:   delay,
			steps: []want{{at: 0, outcome: Admit}},
		},
		"delay: the second of two at one instant waits less than three slots": {
			// One slot, plus the schedule's random phase, plus the
			// difference of two offsets: (0, 3T).
			cfg:   delay,
			steps: []want{admit(0), delayed(0, 1, 300*ms-1)},
		},
		"delay: a burst waits slot by slot and is refused past MaxDelay, never held then refused": {
			cfg: delay,
			steps: []want{
				admit(0),
				either(0), // slot k is (k-1)T to (k+2)T away: slot 1 within 300 ms
				either(0),
				either(0),
				// Slot 4 is 300-600 ms away: within MaxDelay from 300 ms at
				// the latest; Retry-After books one step (250 ms, as 400 ms
				// of hold take 4 of a clump) per refusal from there.
				refused(0, 1, 2),
				refused(0, 1, 2),
			},
		},
		"delay: arrivals three slots apart pass at once": {
			cfg: delay,
			steps: []want{
				admit(0), admit(300 * ms), admit(600 * ms), admit(900 * ms),
			},
		},
		"delay: a key idle for two slots starts afresh": {
			cfg: delay,
			steps: []want{
				admit(0), delayed(0, 1, 300*ms-1),
				admit(10 * time.Second), delayed(10*time.Second, 1, 300*ms-1),
			},
		},
		"reject: a burst gets the limit at once, the rest is refused": {
			cfg: reject,
			steps: []want{
				admit(0), admit(0), admit(0),
				// Room again at 1 s; booked steps of 1/3 s from there.
				refused(0, 1, 2), refused(0, 2, 2), refused(0, 2, 3), refused(0, 3, 3),
			},
		},
		"reject: room again exactly one window later": {
			cfg: reject,
			steps: []want{
				admit(0), admit(0), admit(0),
				refused(999*ms, 1, 1),
				admit(time.Second),
				admit(time.Second),
				admit(time.Second),
				refused(time.Second, 0, 0),
			},
		},
		"reject: a sub-window counts while its latest admission is in the window": {
			cfg: reject,
			steps: []want{
				admit(0), admit(10 * ms), admit(20 * ms), // one sub-window (62.5 ms)
				refused(1010*ms, 1, 1), // the one at 0 is out, but 20 ms is not
				admit(1020 * ms),
				admit(1020 * ms),
				admit(1020 * ms),
				refused(1021*ms, 0, 0),
			},
		},
		"reject: spaced arrivals are never refused": {
			cfg: reject,
			steps: []want{
				admit(0), admit(300 * ms), admit(600 * ms),
				admit(1200 * ms), admit(1500 * ms),
			},
		},
		"observe without MaxDelay decides like reject": {
			cfg: Config{Limit: 2, Window: time.Second, Mode: ModeObserve},
			steps: []want{
				admit(0), admit(0), refused(0, 0, 0),
			},
		},
		"observe with MaxDelay decides like delay": {
			cfg: Config{Limit: 10, Window: time.Second, MaxDelay: 150 * ms, Mode: ModeObserve},
			steps: []want{
				admit(0), either(0), either(0), // slot 2 is 100-300 ms away
				refused(0, 0, 0), // slot 3 is 200-400 ms away
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			for seed := range uint64(50) { // the bounds hold whatever the jitter
				rnd := rand.NewPCG(seed, 1)
				var s State
				var steps []step
				for i, w := range tc.steps {
					var d Decision
					s, d = Decide(s, t0.Add(w.at), rnd, tc.cfg)
					steps = append(steps, step{at: w.at, d: d})
					if w.outcome == any {
						continue
					}
					if d.Outcome != w.outcome {
						t.Fatalf("seed %d step %d at %v: outcome %v, want %v (%+v)", seed, i, w.at, d.Outcome, w.outcome, d)
					}
					if w.outcome == Delay && (d.Delay < w.minD || d.Delay > w.maxD) {
						t.Fatalf("seed %d step %d at %v: delay %v outside [%v, %v]", seed, i, w.at, d.Delay, w.minD, w.maxD)
					}
					if w.maxRA > 0 && (d.RetryAfter < w.minRA || d.RetryAfter > w.maxRA) {
						t.Fatalf("seed %d step %d at %v: Retry-After %d outside [%d, %d]", seed, i, w.at, d.RetryAfter, w.minRA, w.maxRA)
					}
				}
				check(t, tc.cfg, steps, nil)
			}
		})
	}
}

func TestDecideInvalidConfigAdmits(t *testing.T) {
	tests := map[string]Config{
		"zero":                   {},
		"limit 0":                {Window: time.Second, MaxDelay: time.Second, Mode: ModeDelay},
		"delay without MaxDelay": {Limit: 1, Window: time.Second, Mode: ModeDelay},
		"reject with MaxDelay":   {Limit: 1, Window: time.Second, MaxDelay: time.Second, Mode: ModeReject},
		"slack over window":      {Limit: 1, Window: time.Second, Mode: ModeReject, Slack: 2 * time.Second},
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			var s State
			for range 10 {
				var d Decision
				s, d = Decide(s, t0, rand.NewPCG(1, 2), c)
				if d != (Decision{}) {
					t.Fatalf("decision %+v, want the zero Decision (admit)", d)
				}
			}
			if s != (State{}) {
				t.Fatalf("state changed: %+v", s)
			}
		})
	}
}

func TestDecideNilSource(t *testing.T) {
	c := Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Second, Mode: ModeDelay}
	steps := simulate(t, c, burst(1000, 0), nil, false)
	check(t, c, steps, nil)
}

func TestIdle(t *testing.T) {
	delay := Config{Limit: 10, Window: time.Second, MaxDelay: time.Second, Mode: ModeDelay}
	reject := Config{Limit: 10, Window: time.Second, Mode: ModeReject}
	after := func(c Config, arrivals []time.Duration) State {
		var s State
		for _, at := range arrivals {
			s, _ = Decide(s, t0.Add(at), rand.NewPCG(1, 2), c)
		}
		return s
	}
	tests := map[string]struct {
		cfg  Config
		s    State
		at   time.Duration
		idle bool
	}{
		"zero state":                         {delay, State{}, 0, true},
		"delay: just admitted":               {delay, after(delay, burst(1, 0)), 0, false},
		"delay: release within the window":   {delay, after(delay, burst(1, 0)), 300 * time.Millisecond, false},
		"delay: a window after the release":  {delay, after(delay, burst(1, 0)), 1100 * time.Millisecond, true},
		"delay: holding a burst":             {delay, after(delay, burst(5, 0)), 400 * time.Millisecond, false},
		"delay: burst done":                  {delay, after(delay, burst(5, 0)), time.Second, true},
		"delay: refusals booked retries":     {delay, after(delay, burst(30, 0)), 1500 * time.Millisecond, false},
		"reject: admitted within the window": {reject, after(reject, burst(3, 0)), 900 * time.Millisecond, false},
		"reject: window passed":              {reject, after(reject, burst(3, 0)), 1100 * time.Millisecond, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.s.Idle(t0.Add(tc.at), tc.cfg); got != tc.idle {
				t.Fatalf("Idle = %v, want %v (state %+v)", got, tc.idle, tc.s)
			}
		})
	}
}

// A key whose stored state was lost mid-schedule (the zero State) resumes
// the remembered schedule: a burst decided on it is held after the old
// burst's slots, not beside them; an ended schedule, a stale one or an
// equal one is not preferred.
func TestLater(t *testing.T) {
	c := Config{Limit: 10, Window: time.Second, MaxDelay: 10 * time.Second, Mode: ModeDelay}
	var s State
	var releases []time.Duration
	for range 50 { // five windows' worth at t0
		var d Decision
		s, d = Decide(s, t0, rand.NewPCG(1, 2), c)
		releases = append(releases, d.Delay)
	}
	remembered := s
	at := 2 * time.Second // the store restarts empty; a new burst
	if got := Later(State{}, remembered, t0.Add(at)); got != remembered {
		t.Fatal("a running schedule not preferred to the zero State")
	}
	s = Later(State{}, remembered, t0.Add(at))
	for range 20 {
		var d Decision
		s, d = Decide(s, t0.Add(at), rand.NewPCG(3, 4), c)
		if d.Outcome != Delay {
			t.Fatalf("%v: the resumed schedule has no room before its slots", d.Outcome)
		}
		releases = append(releases, at+d.Delay)
	}
	if n := maxInWindow(releases, c.Window); n > c.Limit {
		t.Errorf("%d releases in one window, limit %d", n, c.Limit)
	}
	if got := Later(State{}, remembered, t0.Add(time.Minute)); got != (State{}) {
		t.Error("an ended schedule preferred")
	}
	if got := Later(s, remembered, t0.Add(at)); got != s {
		t.Error("an older state of the same schedule preferred to the newer")
	}
	if got := Later(remembered, remembered, t0); got != remembered {
		t.Error("equal states: a")
	}
}
