package admission

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// benchConfigs are driven at twice their limit, so that every path runs:
// admissions, holds, refusals with Retry-After.
var benchConfigs = []struct {
	name string
	cfg  Config
}{
	{"delay", Config{Limit: 100, Window: time.Second, MaxDelay: 2 * time.Second, Mode: ModeDelay}},
	{"reject", Config{Limit: 100, Window: time.Second, Mode: ModeReject}},
	{"observe", Config{Limit: 10000, Window: 15 * time.Minute, Mode: ModeObserve}},
}

func BenchmarkDecide(b *testing.B) {
	for _, bc := range benchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			rnd := rand.NewPCG(1, 2)
			step := bc.cfg.Window / time.Duration(bc.cfg.Limit) / 2
			var s State
			now := t0
			b.ReportAllocs()
			for b.Loop() {
				s, _ = Decide(s, now, rnd, bc.cfg)
				now = now.Add(step)
			}
		})
	}
}

// BenchmarkDecideSharedData is what the wasm plugin does per request:
// decode the key's state, decide, encode it for the compare-and-swap.
func BenchmarkDecideSharedData(b *testing.B) {
	for _, bc := range benchConfigs {
		b.Run(bc.name, func(b *testing.B) {
			rnd := rand.NewPCG(1, 2)
			step := bc.cfg.Window / time.Duration(bc.cfg.Limit) / 2
			stored := make([]byte, 0, StateSize)
			now := t0
			b.ReportAllocs()
			for b.Loop() {
				var s State
				if err := s.UnmarshalBinary(stored); err != nil {
					b.Fatal(err)
				}
				s, _ = Decide(s, now, rnd, bc.cfg)
				stored, _ = s.AppendBinary(stored[:0])
				now = now.Add(step)
			}
		})
	}
}

// BenchmarkLimiter decides for 1 000 keys in turn (the ext_proc global
// admission), serially and from parallel goroutines.
func BenchmarkLimiter(b *testing.B) {
	c := benchConfigs[0].cfg
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("tenant-%04d", i)
	}
	b.Run("serial", func(b *testing.B) {
		l, _ := NewLimiter(c, len(keys), rand.NewPCG(1, 2))
		now := t0
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			l.Decide(keys[i%len(keys)], now)
			i++
			now = now.Add(5 * time.Microsecond)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		l, _ := NewLimiter(c, len(keys), rand.NewPCG(1, 2))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			i := 0
			for pb.Next() {
				l.Decide(keys[i%len(keys)], now)
				i++
				now = now.Add(5 * time.Microsecond)
			}
		})
	})
}

// TestNoAllocations: the hot path (Decide, encoding and decoding into a
// buffer, the Limiter on a known key) allocates nothing.
func TestNoAllocations(t *testing.T) {
	for _, bc := range benchConfigs {
		rnd := rand.NewPCG(1, 2)
		step := bc.cfg.Window / time.Duration(bc.cfg.Limit) / 2
		var s State
		now := t0
		buf := make([]byte, 0, StateSize)
		l, _ := NewLimiter(bc.cfg, 10, rnd)
		l.Decide("acme", now)
		tests := map[string]func(){
			"Decide": func() {
				s, _ = Decide(s, now, rnd, bc.cfg)
				now = now.Add(step)
			},
			"AppendBinary":    func() { buf, _ = s.AppendBinary(buf[:0]) },
			"UnmarshalBinary": func() { _ = s.UnmarshalBinary(buf) },
			"Idle":            func() { s.Idle(now, bc.cfg) },
			"Limiter.Decide": func() {
				l.Decide("acme", now)
				now = now.Add(step)
			},
		}
		for name, f := range tests {
			t.Run(bc.name+"/"+name, func(t *testing.T) {
				if n := testing.AllocsPerRun(1000, f); n != 0 {
					t.Fatalf("%v allocations per call", n)
				}
			})
		}
	}
}
