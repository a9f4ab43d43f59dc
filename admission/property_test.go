package admission

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Property tests: seeded random scenarios, each checked by check (every
// delay within MaxDelay, every Retry-After within bounds, at most Limit
// releases in any sliding window of length Window).

// TestBurstAtOneInstant is the 17:00 scheduler: 1 000 requests at one
// instant, limit 100/s.
func TestBurstAtOneInstant(t *testing.T) {
	for seed := range uint64(20) {
		rnd := rand.NewPCG(seed, 17)

		// Delay mode with room to hold everything: nothing is lost, the
		// burst is spread over 10 s at 100/s.
		c := Config{Limit: 100, Window: time.Second, MaxDelay: 15 * time.Second, Mode: ModeDelay}
		steps := simulate(t, c, burst(1000, 0), rnd, true)
		releases := check(t, c, steps, nil)
		if len(releases) != 1000 {
			t.Fatalf("seed %d: %d of 1000 admitted", seed, len(releases))
		}
		// 999 slots of 10 ms, plus the phase (< 1 slot), plus an offset.
		if last := releases[len(releases)-1]; last < 9980*time.Millisecond || last > 10010*time.Millisecond {
			t.Fatalf("seed %d: last release at %v, want 10s ± 1 slot", seed, last)
		}
		perSecond := make([]int, 11)
		for _, r := range releases {
			perSecond[r/time.Second]++
		}
		for s, n := range perSecond {
			if n > 100 {
				t.Fatalf("seed %d: %d releases in second %d", seed, n, s)
			}
		}
		checkJitter(t, releases, c)

		// Delay mode holding at most 2 s: about 200 are held, the rest
		// refused at once with spread Retry-After values.
		c.MaxDelay = 2 * time.Second
		steps = simulate(t, c, burst(1000, 0), rnd, true)
		releases = check(t, c, steps, nil)
		if n := len(releases); n < 195 || n > 205 {
			t.Fatalf("seed %d: %d admitted within 2s at 100/s, want about 200", seed, n)
		}
		checkRetrySpread(t, c, steps, 7)

		// Reject mode: the limit passes at once, the rest is refused.
		c = Config{Limit: 100, Window: time.Second, Mode: ModeReject}
		steps = simulate(t, c, burst(1000, 0), rnd, true)
		if releases = check(t, c, steps, nil); len(releases) != 100 {
			t.Fatalf("seed %d: reject mode admitted %d, want 100", seed, len(releases))
		}
		checkRetrySpread(t, c, steps, 9)
	}
}

// checkJitter verifies that a burst's releases are not lock-step: all at
// distinct nanoseconds, and the gaps between them vary: uniform offsets in
// a slot give gaps with a standard deviation of about slot/sqrt(6). The
// offsets repeat every Limit slots within one schedule (doc.go), so the
// gaps are distinct within each run of Limit of them.
func checkJitter(t *testing.T, releases []time.Duration, c Config) {
	t.Helper()
	slot := float64(c.Window) / float64(c.Limit)
	gaps := make([]float64, 0, len(releases))
	distinct := map[time.Duration]bool{}
	for i := 1; i < len(releases); i++ {
		g := releases[i] - releases[i-1]
		if g <= 0 {
			t.Fatalf("releases %d and %d at %v and %v: not strictly increasing", i-1, i, releases[i-1], releases[i])
		}
		gaps = append(gaps, float64(g))
		if i <= c.Limit {
			distinct[g] = true
		}
	}
	if want := min(c.Limit, len(gaps)) * 9 / 10; len(distinct) < want {
		t.Fatalf("only %d distinct gaps among the first %d, want at least %d", len(distinct), c.Limit, want)
	}
	var mean, sq float64
	for _, g := range gaps {
		mean += g
	}
	mean /= float64(len(gaps))
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	sd := math.Sqrt(sq / float64(len(gaps)))
	if sd < 0.3*slot || sd > 0.5*slot {
		t.Fatalf("gap standard deviation %.0f ns, want about %.0f (slot/sqrt(6))", sd, slot/math.Sqrt(6))
	}
}

// checkRetrySpread verifies that a burst's Retry-After values are spread:
// at least minDistinct values, none given to many more requests than the
// budget takes per second (booked) or than a uniform spread puts there
// (once the booking horizon is full).
func checkRetrySpread(t *testing.T, c Config, steps []step, minDistinct int) {
	t.Helper()
	p, _ := c.plan()
	count := map[int]int{}
	rejected := 0
	for _, s := range steps {
		if s.d.Outcome == Reject {
			count[s.d.RetryAfter]++
			rejected++
		}
	}
	if len(count) < minDistinct {
		t.Fatalf("%d rejected got %d distinct Retry-After values (%v), want at least %d", rejected, len(count), count, minDistinct)
	}
	booked := float64(time.Second) / float64(p.book)
	uniform := float64(rejected) * float64(time.Second) / float64(p.spread)
	for ra, n := range count {
		if float64(n) > 2*(booked+uniform)+8 {
			t.Fatalf("%d of %d rejected told Retry-After %d; %.1f booked per second, %.1f spread per second",
				n, rejected, ra, booked, uniform)
		}
	}
}

func TestRetryAfterSpread(t *testing.T) {
	tests := map[string]struct {
		cfg         Config
		minDistinct int
	}{
		"100/s reject":              {Config{Limit: 100, Window: time.Second, Mode: ModeReject}, 9},
		"100/s delay, 2s max delay": {Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Second, Mode: ModeDelay}, 7},
		"10/1m reject":              {Config{Limit: 10, Window: time.Minute, Mode: ModeReject}, 50},
		"100/15m reject":            {Config{Limit: 100, Window: 15 * time.Minute, Mode: ModeReject}, 500},
		"500/10s delay, 1s":         {Config{Limit: 500, Window: 10 * time.Second, MaxDelay: time.Second, Mode: ModeDelay}, 15},
		"3/500ms observe":           {Config{Limit: 3, Window: 500 * time.Millisecond, Mode: ModeObserve}, 50},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(10) {
				steps := simulate(t, tc.cfg, burst(1000, 0), rand.NewPCG(seed, 3), true)
				check(t, tc.cfg, steps, nil)
				checkRetrySpread(t, tc.cfg, steps, tc.minDistinct)
			}
		})
	}
}

// TestRetriesConverge follows the refused clients of a burst: each comes
// back exactly Retry-After seconds later (whole seconds, so they are as
// synchronised as HTTP lets them be). Everyone gets in, the limit holds
// throughout, and the burst drains in about the time the budget needs.
func TestRetriesConverge(t *testing.T) {
	tests := map[string]struct {
		cfg      Config
		n        int
		drained  time.Duration // everyone in by then
		attempts float64       // decisions per request, at most
	}{
		// Each refused client is told when its turn comes, and comes back
		// once: 1 000 + 900 decisions, drained in 10 s at 100/s.
		"100/s reject":    {Config{Limit: 100, Window: time.Second, Mode: ModeReject}, 1000, 10100 * time.Millisecond, 1.91},
		"100/s delay, 2s": {Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Second, Mode: ModeDelay}, 1000, 10100 * time.Millisecond, 1.81},
		// Whole-second retries come back in clumps, of which a 100 ms hold
		// takes 11: about 11 per second get in.
		"100/s delay, 100ms": {Config{Limit: 100, Window: time.Second, MaxDelay: 100 * time.Millisecond, Mode: ModeDelay}, 1000, 2 * time.Minute, 3},
		// Past the one-minute booking horizon retries are spread uniformly
		// and some come back too early: slower than the 250 s the budget
		// needs, but every one gets in.
		"20/s reject, 5 000":   {Config{Limit: 20, Window: time.Second, Mode: ModeReject}, 5000, 10 * time.Minute, 10},
		"1000/1m delay, 5 000": {Config{Limit: 1000, Window: time.Minute, MaxDelay: 10 * time.Second, Mode: ModeDelay}, 5000, 6 * time.Minute, 5},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(5) {
				rnd := rand.NewPCG(seed, 5)
				var s State
				queue := burst(tc.n, 0) // arrivals, kept sorted
				var steps []step
				for len(queue) > 0 {
					at := queue[0]
					queue = queue[1:]
					var d Decision
					s, d = Decide(s, t0.Add(at), rnd, tc.cfg)
					steps = append(steps, step{at: at, d: d})
					if d.Outcome == Reject {
						back := at + time.Duration(d.RetryAfter)*time.Second
						i, _ := slices.BinarySearch(queue, back+1) // after equal times: FIFO
						queue = slices.Insert(queue, i, back)
					}
				}
				releases := check(t, tc.cfg, steps, nil)
				if len(releases) != tc.n {
					t.Fatalf("seed %d: %d of %d got in", seed, len(releases), tc.n)
				}
				if last := slices.Max(releases); last > tc.drained {
					t.Fatalf("seed %d: last request in at %v, want by %v", seed, last, tc.drained)
				}
				if a := float64(len(steps)) / float64(tc.n); a > tc.attempts {
					t.Fatalf("seed %d: %.2f decisions per request, want at most %.2f", seed, a, tc.attempts)
				}
			}
		})
	}
}

// TestScheduler15s is a 15-second scheduler: a few large buckets 15 s apart.
func TestScheduler15s(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 15))
		var arrivals []time.Duration
		for b := range 6 {
			arrivals = append(arrivals, burst(100+r.IntN(400), time.Duration(b)*15*time.Second)...)
		}
		for _, c := range []Config{
			{Limit: 20, Window: time.Second, MaxDelay: 30 * time.Second, Mode: ModeDelay},
			{Limit: 20, Window: time.Second, MaxDelay: 5 * time.Second, Mode: ModeDelay},
			{Limit: 300, Window: 15 * time.Second, MaxDelay: time.Minute, Mode: ModeDelay},
			{Limit: 20, Window: time.Second, Mode: ModeReject},
			{Limit: 20, Window: time.Second, MaxDelay: 30 * time.Second, Mode: ModeObserve},
		} {
			steps := simulate(t, c, arrivals, rand.NewPCG(seed, 16), true)
			releases := check(t, c, steps, nil)
			if c.Mode == ModeDelay && c.MaxDelay == 30*time.Second {
				// 20/s drains up to 300 per 15 s bucket; the rest waits for
				// the next ones, and nothing waits more than 30 s.
				slices.Sort(releases)
				perSecond := map[time.Duration]int{}
				for _, rl := range releases {
					perSecond[rl/time.Second]++
				}
				for s, n := range perSecond {
					if n > 20 {
						t.Fatalf("seed %d: %d releases in second %d", seed, n, s)
					}
				}
			}
		}
	}
}

// TestRandomScenarios runs random configurations (limits from 1 to
// 10 000, windows from 1 ms to 24 h, every mode, with and without Slack)
// against random mixes of steady traffic and bursts.
func TestRandomScenarios(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 99))
		c := randomConfig(r)
		arrivals := randomArrivals(r, c, 3000)
		steps := simulate(t, c, arrivals, rand.NewPCG(seed, 100), seed%4 == 0)
		var late func() time.Duration
		if c.Slack > 0 {
			late = func() time.Duration { return time.Duration(r.Int64N(int64(c.Slack) + 1)) }
		}
		check(t, c, steps, late)
	}
}

// TestUnorderedClocks: worker threads read the clock before they win the
// compare-and-swap, so decisions may come with times slightly out of order.
// The delay schedule keeps its guarantee exactly (doc.go); the reject
// window counts an earlier time in the newest sub-window.
func TestUnorderedClocks(t *testing.T) {
	for seed := range uint64(100) {
		r := rand.New(rand.NewPCG(seed, 7))
		c := randomConfig(r)
		if c.Mode != ModeDelay {
			continue
		}
		arrivals := randomArrivals(r, c, 2000)
		// Up to three slots, and less than a window: a schedule further
		// ahead than MaxDelay + Window + 2 slots is taken as stale.
		skew := min(int64(c.Window)/int64(c.Limit)*3, int64(c.Window))
		for i := range arrivals {
			arrivals[i] += time.Duration(r.Int64N(skew+1) - skew/2)
		}
		check(t, c, simulate(t, c, arrivals, rand.NewPCG(seed, 8), false), nil)
	}
}

// TestKeysNotLockStep: two keys hit by the same burst at the same instant
// do not release in lock-step (their schedules have different seeds).
func TestKeysNotLockStep(t *testing.T) {
	c := Config{Limit: 100, Window: time.Second, MaxDelay: 15 * time.Second, Mode: ModeDelay}
	rnd := rand.NewPCG(1, 2)
	a := check(t, c, simulate(t, c, burst(1000, 0), rnd, false), nil)
	b := check(t, c, simulate(t, c, burst(1000, 0), rnd, false), nil)
	same, closer := 0, 0
	for i := 1; i < len(a); i++ { // the first of each passes at once: both at 0
		if a[i] == b[i] {
			same++
		}
		if d := a[i] - b[i]; d > -time.Millisecond && d < time.Millisecond {
			closer++
		}
	}
	// The offsets are independent and uniform in a 10 ms slot: two
	// releases are within 1 ms of each other about 19 % of the time.
	if same > 0 || closer > 300 {
		t.Fatalf("two keys: %d releases at the same nanosecond, %d within 1ms of each other", same, closer)
	}
}

func randomConfig(r *rand.Rand) Config {
	limits := []int{1, 2, 3, 7, 10, 100, 1000, 10000}
	windows := []time.Duration{time.Millisecond, 7 * time.Millisecond, 500 * time.Millisecond, time.Second,
		3300 * time.Millisecond, time.Minute, 15 * time.Minute, 24 * time.Hour}
	c := Config{
		Limit:  limits[r.IntN(len(limits))],
		Window: windows[r.IntN(len(windows))],
		Mode:   Mode(1 + r.IntN(3)),
	}
	if c.Mode != ModeReject && (c.Mode == ModeDelay || r.IntN(2) == 0) {
		// From a fraction of a slot to three windows.
		c.MaxDelay = max(1, time.Duration(r.Float64()*3*float64(c.Window)))
	}
	if r.IntN(3) == 0 {
		c.Slack = time.Duration(r.Float64() * 0.3 * float64(c.Window))
	}
	return c
}

// randomArrivals returns up to n sorted arrivals: steady Poisson traffic
// at 0.2 to 5 times the limit, plus bursts of up to three times the limit.
func randomArrivals(r *rand.Rand, c Config, n int) []time.Duration {
	span := time.Duration(1+r.IntN(6)) * c.Window
	rate := (0.2 + 4.8*r.Float64()) * float64(c.Limit) / float64(c.Window) // per ns
	var a []time.Duration
	for at := 0.0; len(a) < n/2; {
		at += r.ExpFloat64() / rate
		if at > float64(span) {
			break
		}
		a = append(a, time.Duration(at))
	}
	for range r.IntN(6) {
		at := time.Duration(r.Int64N(int64(span)))
		a = append(a, burst(min(1+r.IntN(3*c.Limit), n/10), at)...)
	}
	slices.Sort(a)
	return a
}

// TestIdleAfter: whatever a key went through, its State is Idle
// Config.IdleAfter after its last decision or release (the shared budget
// expires keys then, so expiring must lose nothing).
func TestIdleAfter(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	for i := range 500 {
		c := randomConfig(r)
		var s State
		last := t0
		for _, at := range randomArrivals(r, c, 1+r.IntN(300)) {
			now := t0.Add(at)
			var d Decision
			s, d = Decide(s, now, r, c)
			if d.Action == Delay {
				rel := now.Add(d.Delay + time.Duration(r.Int64N(int64(c.Window))))
				s, _ = Release(s, rel, c)
				last = rel
			}
			last = later(last, now)
		}
		if at := last.Add(c.IdleAfter()); !s.Idle(at, c) {
			t.Fatalf("case %d, %+v: not idle %s after the last step", i, c, c.IdleAfter())
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
