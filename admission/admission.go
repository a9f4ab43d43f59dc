package admission

import (
	"math/bits"
	"time"
)

// Source is a source of uniformly distributed random bits. math/rand/v2's
// *rand.PCG and *rand.ChaCha8 satisfy it; the wasm plugin may pass its own.
// Decide calls Uint64 at most twice per decision and never concurrently
// for one State (the caller serialises decisions on a State anyway). A nil
// Source is allowed: bits are then derived from the time and the state.
type Source interface {
	Uint64() uint64
}

// Action is what happens to one request.
type Action uint8

// Actions. The zero Action admits: a zero Decision lets the request through.
const (
	Admit  Action = iota // forward now
	Delay                // hold for Decision.Delay, then forward
	Reject               // answer 429 with Retry-After: Decision.RetryAfter
)

func (a Action) String() string {
	switch a {
	case Admit:
		return "admit"
	case Delay:
		return "delay"
	case Reject:
		return "reject"
	}
	return "Action(?)"
}

// Decision is the verdict on one request.
type Decision struct {
	// Action is what the caller does. It equals Outcome, except in
	// ModeObserve where it is always Admit.
	Action Action
	// Outcome is what the limiter decided (in ModeObserve: would have
	// done), for metrics. Delay and RetryAfter describe it.
	Outcome Action
	// Delay is how long to hold the request when Outcome is Delay
	// (0 < Delay <= MaxDelay), else 0.
	Delay time.Duration
	// RetryAfter is the Retry-After value in whole seconds when Outcome is
	// Reject (1 <= RetryAfter <= Config.MaxRetryAfter()), else 0.
	RetryAfter int
	// Observed is set in ModeObserve: nothing was held or refused.
	Observed bool
}

// State is the budget state of one key: a fixed-size value, copied freely,
// encoded in StateSize bytes by AppendBinary. The zero State is an idle key.
// Only Decide and UnmarshalBinary produce States, so every State satisfies
// the bounds UnmarshalBinary checks.
type State struct {
	// The delay schedule (ModeDelay; ModeObserve with MaxDelay).
	next int64  // grid time of the next slot, ns since the Unix epoch; 0: none
	seed uint64 // keys the slot offsets and the phase of the current schedule
	slot uint32 // index of the next slot modulo Limit

	// The reject window (ModeReject; ModeObserve without MaxDelay): for
	// the newest sub-windows, a ring indexed by sub-window modulo buckets,
	// how many requests were admitted in each and when the latest was
	// (offset from the sub-window's start in plan.unit, rounded down).
	head   int64 // index (time / sub-window width) of the newest sub-window
	counts [buckets]uint32
	lasts  [buckets]uint32

	// retry is the Retry-After booking horizon: the time until which
	// refused requests have been told to come back, one booking step each.
	retry int64
}

// Later is whichever of a and b is further along a delay schedule still
// running at now: b when its next slot is after both now and a's, else a.
// A shared store that lost a key (Redis restarted empty) hands back the
// zero State while requests held on the old schedule are still to be
// released; a replica that remembers that schedule resumes it instead of
// starting a new one beside it. Schedules only move forward (a new one
// starts after the old one's last slot has passed), so the later State
// never grants less spacing than the other.
func Later(a, b State, now time.Time) State {
	if b.next > max(a.next, clamp(now)) {
		return b
	}
	return a
}

// maxTime bounds the times Decide works with: now is clamped to
// [0, maxTime) ns since the Unix epoch (1970 to 2116), so that a time plus a
// few spans never overflows.
const maxTime = int64(1) << 62

// Decide decides on one request of the key whose state is s, at time now,
// under c. It is a pure step: it returns the key's new state and the
// decision, and changes nothing else, so callers can keep s anywhere (a map,
// Envoy shared data) and retry a compare-and-swap with the same arguments.
//
// An invalid Config (see Validate) admits every request and leaves s as is:
// validate once where the Config is built.
func Decide(s State, now time.Time, rnd Source, c Config) (State, Decision) {
	p, ok := c.plan()
	if !ok {
		return s, Decision{}
	}
	t := clamp(now)
	var d Decision
	var earliest int64
	if p.schedule {
		d, earliest = s.schedule(t, rnd, &p)
		if d.Outcome == Admit && !p.observe {
			// Passing at once is a release: it must fit the release window.
			d, earliest = s.releaseNow(t, &p)
		}
	} else {
		d, earliest = s.window(t, &p)
	}
	if d.Outcome == Reject {
		d.RetryAfter = s.retryAfter(t, earliest, rnd, &p)
	}
	d.Action = d.Outcome
	if p.observe {
		d.Action, d.Observed = Admit, true
	}
	return s, d
}

// schedule places the request in the next slot of the delay schedule. If
// that slot is more than MaxDelay away the request is refused, takes no
// slot, and earliest is the first time it could be admitted within
// MaxDelay.
//
// Slot k of a schedule has grid time g_k and release time r_k = g_k + u_k,
// where the offset u_k in [0, T) depends only on the schedule's seed and k
// mod Limit. Grid times are at least T apart; doc.go proves that any
// Limit+1 consecutive releases then span at least Window+Slack.
func (s *State) schedule(now int64, rnd Source, p *plan) (Decision, int64) {
	if s.next > now+p.future {
		s.next = 0 // from another clock or config: nothing we scheduled
	}
	seed, slot := s.seed, s.slot
	fresh := s.next == 0 || now-s.next >= 2*p.spacing
	if fresh {
		// Idle for two slots: a new schedule with a new seed. Its first
		// grid time is past next+T, which keeps the proof across the seam.
		seed, slot = draw(rnd, uint64(now)^s.seed), 0
	} else if int64(slot) >= p.limit {
		slot = uint32(int64(slot) % p.limit) // state from another Limit
	}
	u := offset(seed, slot, p.spacing)
	g := max(s.next, now-u)
	release := g + u
	delay := release - now
	if delay > p.maxDelay {
		return Decision{Outcome: Reject}, release - p.maxDelay
	}
	s.next, s.seed = g+p.spacing, seed
	s.slot = uint32((int64(slot) + 1) % p.limit)
	if fresh {
		// A random phase: the first request passes at once (g = now-u), so
		// without it slot Limit, 2*Limit... of every key that starts at the
		// same instant would be released at the same nanoseconds.
		s.next += uniform(mix(^seed), p.spacing)
	}
	if delay == 0 {
		return Decision{Outcome: Admit}, 0
	}
	return Decision{Outcome: Delay, Delay: time.Duration(delay)}, 0
}

// Seconds is d as a Retry-After value: whole seconds, rounded up.
func Seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// Release counts the release of a request held under c (ModeDelay) at
// now, when the request is actually let go, and returns the key's new
// state and 0; or, if that release would put more than Limit releases in
// a window ending at now, the state unchanged and how long to wait before
// trying again (> 0): the caller holds the request that much longer if
// its MaxDelay allows, and answers 429 otherwise. In other modes nothing
// is held: Release returns s and 0.
//
// Decide spaces the slots so that releases late by up to Slack keep the
// bound; Release keeps it whatever the lateness (a stalled timer, a worker
// that ticks late, a process descheduled for a while): the releases of a
// key, counted in the window of the reject mode, which delay mode does not
// otherwise use, never exceed Limit in any Window.
func Release(s State, now time.Time, c Config) (State, time.Duration) {
	p, ok := c.plan()
	if !ok || !p.schedule || p.observe {
		return s, 0
	}
	t := clamp(now)
	if d, earliest := s.window(t, &p); d.Outcome == Reject {
		return s, time.Duration(max(earliest-t, 1))
	}
	return s, 0
}

// releaseNow counts a request the schedule lets pass at once in the
// release window; if the window is full, the request is held until it has
// room, or refused if that is more than MaxDelay away (earliest is then
// the first time it could be admitted).
func (s *State) releaseNow(now int64, p *plan) (Decision, int64) {
	d, earliest := s.window(now, p)
	if d.Outcome == Admit {
		return d, 0
	}
	wait := max(earliest-now, 1)
	if wait > p.maxDelay {
		return Decision{Outcome: Reject}, earliest - p.maxDelay
	}
	return Decision{Outcome: Delay, Delay: time.Duration(wait)}, 0
}

// window admits the request now if fewer than Limit requests were admitted
// in (now-W, now], counting it in its sub-window. Otherwise earliest is the
// first time there will be room (if nothing else is admitted meanwhile).
//
// The sub-windows are ceil(W/16) wide, so the buckets newest ones cover
// (now-W, now]. A sub-window counts while its latest admission is within
// (now-W, now] — all of its admissions, so the count errs on the safe side
// by at most one sub-window's admissions, for at most one sub-window's time.
func (s *State) window(now int64, p *plan) (Decision, int64) {
	j := now / p.bucket
	switch {
	case s.head > j+buckets:
		// From another clock or config: forget it.
		s.head, s.counts, s.lasts = j, [buckets]uint32{}, [buckets]uint32{}
	case j > s.head:
		if j-s.head >= buckets {
			s.counts, s.lasts = [buckets]uint32{}, [buckets]uint32{}
		} else {
			for h := s.head + 1; h <= j; h++ {
				s.counts[h%buckets], s.lasts[h%buckets] = 0, 0
			}
		}
		s.head = j
	}
	// Now j <= head. A time slightly behind the newest sub-window (clocks
	// of different workers) is counted in the newest one.
	cut := now - p.window // sub-windows whose latest admission is <= cut are out
	var sum int64
	for i := max(s.head-buckets+1, 0); i <= s.head; i++ {
		if n := s.counts[i%buckets]; n > 0 && s.last(i, p) > cut {
			sum += int64(n)
		}
	}
	if sum < p.limit {
		h := s.head % buckets
		s.counts[h]++
		if off := now - s.head*p.bucket; off > 0 {
			s.lasts[h] = max(s.lasts[h], uint32(off/p.unit))
		}
		return Decision{Outcome: Admit}, 0
	}
	// Room comes when enough of the oldest sub-windows are out, each at
	// its latest admission + W.
	for i := max(s.head-buckets+1, 0); i <= s.head; i++ {
		if n := s.counts[i%buckets]; n > 0 && s.last(i, p) > cut {
			if sum -= int64(n); sum < p.limit {
				return Decision{Outcome: Reject}, s.last(i, p) + p.window
			}
		}
	}
	return Decision{Outcome: Reject}, now + p.window // not reached: sum was >= limit >= 1
}

// last is the time of the latest admission in sub-window i, rounded up to
// the end of its unit.
func (s *State) last(i int64, p *plan) int64 {
	return i*p.bucket + int64(s.lasts[i%buckets])*p.unit + p.unit - 1
}

// retryAfter returns the Retry-After, in whole seconds, for a request
// refused at now that the budget could first admit at earliest.
//
// Refused requests book the steps after earliest, one each, in the retry
// horizon: the k-th request of a burst is told to come back at about
// earliest + k*step, at a uniformly random point of its step. The step is
// the pace at which the budget admits retries (one slot, or slower when
// whole-second clumps of retries are more than MaxDelay can hold). Once
// the horizon is a spread (max(Window, MinRetrySpread)) ahead, further
// requests come back at a uniformly random time within the spread.
func (s *State) retryAfter(now, earliest int64, rnd Source, p *plan) int {
	earliest = min(max(earliest, now), now+p.maxWait)
	if s.retry > earliest+p.spread {
		s.retry = 0 // from another clock or config
	}
	base := max(s.retry, earliest)
	salt := uint64(now) ^ uint64(base)
	var at int64
	if base+p.book <= earliest+p.spread {
		at = base + uniform(draw(rnd, salt), p.book)
		s.retry = base + p.book
	} else {
		at = earliest + uniform(draw(rnd, salt), p.spread)
	}
	return int(max(ceilDiv(at-now, int64(time.Second)), 1))
}

// Idle reports whether s decides like the zero State at now and later
// under c, so a caller may drop it (the Limiter evicts idle keys without
// loss; the wasm plugin may delete its shared-data key): its schedule ended
// two slots ago, its window holds no admission within the last Window and
// its retry horizon has passed.
func (s State) Idle(now time.Time, c Config) bool {
	p, ok := c.plan()
	if !ok {
		return true
	}
	t := clamp(now)
	if s.retry > t {
		return false
	}
	if s.next != 0 && (t-s.next < 2*p.spacing || s.next > t+p.future) {
		return false
	}
	j := t / p.bucket
	if s.head > j {
		return false
	}
	for i := max(s.head-buckets+1, 0); i <= s.head; i++ {
		// A sub-window that is out now stays out unless it is the current
		// one, where a new admission would bring its old ones back.
		if s.counts[i%buckets] > 0 && (i == j || s.last(i, &p) > t-p.window) {
			return false
		}
	}
	return true
}

// clamp converts now to nanoseconds in [0, maxTime).
func clamp(now time.Time) int64 {
	return min(max(now.UnixNano(), 0), maxTime-1)
}

// offset is the offset in [0, spacing) of slot within its grid step, a
// hash of the schedule's seed and the slot index.
func offset(seed uint64, slot uint32, spacing int64) int64 {
	return uniform(mix(seed^(uint64(slot)+1)*0x9e3779b97f4a7c15), spacing)
}

// uniform maps random bits x to [0, n) (Lemire's multiply-shift; n > 0).
func uniform(x uint64, n int64) int64 {
	hi, _ := bits.Mul64(x, uint64(n))
	return int64(hi)
}

// draw returns rnd.Uint64(), or a hash of salt when rnd is nil.
func draw(rnd Source, salt uint64) uint64 {
	if rnd == nil {
		return mix(salt + 0x9e3779b97f4a7c15)
	}
	return rnd.Uint64()
}

// mix is the SplitMix64 finaliser: a bijection that scrambles every bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
