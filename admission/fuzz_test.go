package admission

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzDecide drives one key with a fuzzed configuration, starting state and
// sequence of arrivals, and checks at every step: the delay never exceeds
// MaxDelay; Retry-After is within [1, MaxRetryAfter]; observe mode admits;
// the state round-trips through AppendBinary/UnmarshalBinary. At the end:
// the releases (Admit at arrival, Delay at arrival+Delay) in any sliding
// window of length Window never exceed Limit.
//
// Input layout (missing bytes read as zero):
//
//	0      mode (mod 3) and flags: bit 2 starts from the fuzzed state below
//	1-2    limit - 1 (uint16)
//	3-4    window mantissa (uint16); 5: its unit (mod 5: ns, µs, ms, s, min)
//	6      MaxDelay in 64ths of the window (0 with reject; >= 1 ns with delay)
//	7      Slack in 512ths of the window
//	8-15   random seed
//	16-    the starting state (StateSize bytes) if bit 2 of byte 0 is set,
//	       then arrivals, 2 bytes each: a gap of m<<e ns, e = byte 1 mod 48,
//	       m = byte 2, or none (a burst) if byte 1 >= 240
func FuzzDecide(f *testing.F) {
	f.Add([]byte{0, 0, 99, 1, 0, 3, 128, 0, 1, 2, 3, 4, 5, 6, 7, 8, 250, 0, 250, 0, 250, 0, 20, 9, 250, 0})
	f.Add([]byte{1, 0, 2, 0, 7, 2, 0, 20, 8, 7, 6, 5, 4, 3, 2, 1, 255, 0, 255, 0, 255, 0, 255, 0, 22, 40, 255, 0})
	f.Add([]byte{2, 39, 15, 0, 15, 4, 16, 0, 9, 9, 9, 9, 9, 9, 9, 9, 250, 1, 30, 200, 250, 1, 30, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		at := func(i int) byte {
			if i < len(data) {
				return data[i]
			}
			return 0
		}
		u16 := func(i int) int { return int(at(i))<<8 | int(at(i+1)) }
		units := []time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, time.Second, time.Minute}
		c := Config{
			Mode:   Mode(1 + at(0)%3),
			Limit:  1 + u16(1),
			Window: min(time.Duration(1+u16(3))*units[int(at(5))%len(units)], MaxSpan),
		}
		if c.Mode != ModeReject {
			c.MaxDelay = c.Window / 64 * time.Duration(at(6))
			if c.Mode == ModeDelay {
				c.MaxDelay = max(c.MaxDelay, 1)
			}
		}
		c.Slack = c.Window / 512 * time.Duration(at(7))
		if err := c.Validate(); err != nil {
			t.Fatalf("config %+v: %v", c, err)
		}
		seed := uint64(0)
		if len(data) >= 16 {
			seed = binary.LittleEndian.Uint64(data[8:16])
		}
		rnd := rand.NewPCG(seed, seed^0x5eed)

		rest := data[min(16, len(data)):]
		var s State
		if at(0)&4 != 0 && len(rest) >= StateSize {
			if err := s.UnmarshalBinary(rest[:StateSize]); err != nil {
				if !errors.Is(err, ErrBadState) {
					t.Fatalf("UnmarshalBinary: %v does not wrap ErrBadState", err)
				}
				s = State{}
			}
			rest = rest[StateSize:]
		}

		maxRA := c.MaxRetryAfter()
		now := t0
		var releases []time.Duration
		buf := make([]byte, 0, StateSize)
		for i := 0; i+1 < len(rest) && i < 4000; i += 2 {
			if rest[i] < 240 {
				now = now.Add(time.Duration(int64(rest[i+1]) << (rest[i] % 48)))
			}
			var d Decision
			s, d = Decide(s, now, rnd, c)
			switch {
			case d.Delay < 0 || d.Delay > c.MaxDelay:
				t.Fatalf("step %d: delay %v outside [0, %v]", i/2, d.Delay, c.MaxDelay)
			case (d.Delay > 0) != (d.Outcome == Delay):
				t.Fatalf("step %d: delay %v with outcome %v", i/2, d.Delay, d.Outcome)
			case d.Outcome == Reject && (d.RetryAfter < 1 || d.RetryAfter > maxRA):
				t.Fatalf("step %d: Retry-After %d outside [1, %d]", i/2, d.RetryAfter, maxRA)
			case d.Outcome != Reject && d.RetryAfter != 0:
				t.Fatalf("step %d: Retry-After %d with outcome %v", i/2, d.RetryAfter, d.Outcome)
			case c.Mode == ModeObserve && (d.Action != Admit || !d.Observed):
				t.Fatalf("step %d: observe mode acted: %+v", i/2, d)
			case c.Mode != ModeObserve && d.Action != d.Outcome:
				t.Fatalf("step %d: action %v, outcome %v", i/2, d.Action, d.Outcome)
			}
			if d.Outcome != Reject {
				releases = append(releases, now.Sub(t0)+d.Delay)
			}
			buf, _ = s.AppendBinary(buf[:0])
			var back State
			if err := back.UnmarshalBinary(buf); err != nil || back != s {
				t.Fatalf("step %d: round trip: %+v, %v; want %+v", i/2, back, err, s)
			}
		}
		if n := maxInWindow(releases, c.Window); n > c.Limit {
			t.Fatalf("%d releases in one window of %v, limit %d (config %+v)", n, c.Window, c.Limit, c)
		}
	})
}
