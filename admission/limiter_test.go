package admission

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewLimiterErrors(t *testing.T) {
	good := Config{Limit: 1, Window: time.Second, Mode: ModeReject}
	tests := map[string]struct {
		cfg     Config
		maxKeys int
		rnd     Source
		want    []string
	}{
		"valid":           {cfg: good, maxKeys: 1, rnd: rand.NewPCG(1, 1)},
		"bad config":      {cfg: Config{Limit: 1, Window: time.Second}, maxKeys: 1, rnd: rand.NewPCG(1, 1), want: []string{"mode:"}},
		"no keys":         {cfg: good, maxKeys: 0, rnd: rand.NewPCG(1, 1), want: []string{"maxKeys: must be at least 1 (got 0)"}},
		"no source":       {cfg: good, maxKeys: 1, want: []string{"rnd: required"}},
		"every problem":   {cfg: Config{}, maxKeys: -1, want: []string{"limit:", "window:", "mode:", "maxKeys:", "rnd:"}},
		"large key count": {cfg: good, maxKeys: 1 << 30, rnd: rand.NewPCG(1, 1)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, err := NewLimiter(tc.cfg, tc.maxKeys, tc.rnd)
			if len(tc.want) == 0 {
				if err != nil || l == nil {
					t.Fatalf("NewLimiter: %v", err)
				}
				return
			}
			if l != nil || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewLimiter: %v, %v; want ErrInvalidConfig", l, err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Fatalf("problem %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestLimiterKeys(t *testing.T) {
	c := Config{Limit: 2, Window: time.Second, Mode: ModeReject}
	type call struct {
		key  string
		at   time.Duration
		want Action
	}
	tests := map[string]struct {
		maxKeys int
		calls   []call
		stats   Stats
	}{
		"keys have their own budgets": {
			maxKeys: 10,
			calls: []call{
				{"acme", 0, Admit}, {"acme", 0, Admit}, {"acme", 0, Reject},
				{"globex", 0, Admit}, {"globex", 0, Admit}, {"globex", 0, Reject},
			},
			stats: Stats{Keys: 2},
		},
		"an idle key is dropped without loss": {
			maxKeys: 1,
			calls: []call{
				{"acme", 0, Admit}, {"acme", 0, Admit},
				{"globex", 2 * time.Second, Admit}, // acme's window has passed: not busy
				{"acme", 2 * time.Second, Admit},   // globex just admitted one: busy
			},
			stats: Stats{Keys: 1, Evicted: 2, EvictedBusy: 1},
		},
		"a busy key is dropped and counted": {
			maxKeys: 1,
			calls: []call{
				{"acme", 0, Admit}, {"acme", 0, Admit}, {"acme", 0, Reject},
				{"globex", 0, Admit},
				{"acme", 0, Admit}, // forgotten: the price of too few keys
			},
			stats: Stats{Keys: 1, Evicted: 2, EvictedBusy: 2},
		},
		"the least recently decided key goes first": {
			maxKeys: 2,
			calls: []call{
				{"a", 0, Admit}, {"a", 0, Admit}, {"b", 0, Admit},
				{"a", 0, Reject}, // a is now the most recent
				{"c", 0, Admit},  // evicts b
				{"a", 0, Reject}, // a kept its state
				{"b", 0, Admit},  // b starts afresh, evicting c
			},
			stats: Stats{Keys: 2, Evicted: 2, EvictedBusy: 2},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, err := NewLimiter(c, tc.maxKeys, rand.NewPCG(1, 2))
			if err != nil {
				t.Fatal(err)
			}
			for i, call := range tc.calls {
				if d := l.Decide(call.key, t0.Add(call.at)); d.Action != call.want {
					t.Fatalf("call %d (%s at %v): %v, want %v", i, call.key, call.at, d.Action, call.want)
				}
			}
			if got := l.Stats(); got != tc.stats {
				t.Fatalf("Stats() = %+v, want %+v", got, tc.stats)
			}
		})
	}
}

// TestLimiterConcurrent hammers a Limiter from many goroutines with a
// shared clock (each goroutine reads it before taking the lock, and skews
// it by up to a millisecond, so times arrive out of order as they do in
// ext_proc) and checks every key's releases against its limit. Run with
// -race.
//
// The whole run spans 16 ms of the clock: less than MaxDelay + Window, so
// no lag, however long a goroutine is preempted, makes a schedule look
// stale (doc.go: Time).
func TestLimiterConcurrent(t *testing.T) {
	c := Config{Limit: 5, Window: 10 * time.Millisecond, MaxDelay: 10 * time.Millisecond, Mode: ModeDelay}
	l, err := NewLimiter(c, 8, rand.NewPCG(3, 4))
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker, keys = 8, 2000, 5
	var clock atomic.Int64 // ns since t0, 1 µs per request
	var mu sync.Mutex
	releases := map[string][]time.Duration{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 0))
			for i := range perWorker {
				key := fmt.Sprintf("tenant-%d", (w+i)%keys)
				at := time.Duration(clock.Add(int64(time.Microsecond)) - r.Int64N(int64(time.Millisecond)))
				d := l.Decide(key, t0.Add(at))
				if d.Action == Reject {
					continue
				}
				mu.Lock()
				releases[key] = append(releases[key], at+d.Delay)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for key, r := range releases {
		if n := maxInWindow(r, c.Window); n > c.Limit {
			t.Fatalf("%s: %d releases in one window, limit %d", key, n, c.Limit)
		}
	}
	if s := l.Stats(); s.Keys != keys || s.Evicted != 0 {
		t.Fatalf("Stats() = %+v", s)
	}
}

func TestLimiterRelease(t *testing.T) {
	c := Config{Limit: 2, Window: time.Second, MaxDelay: time.Minute, Mode: ModeDelay}
	l, err := NewLimiter(c, 10, rand.NewPCG(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	for i, call := range []struct {
		key  string
		at   time.Duration
		wait time.Duration
	}{
		{"acme", 0, 0},
		{"acme", 500 * time.Millisecond, 0},
		{"globex", 500 * time.Millisecond, 0}, // a budget per key
		{"acme", 600 * time.Millisecond, 400 * time.Millisecond},
		{"acme", time.Second, 0},
	} {
		got := l.Release(call.key, t0.Add(call.at))
		if got < call.wait || got > call.wait+time.Nanosecond {
			t.Fatalf("call %d (%s at %v): wait %v, want %v", i, call.key, call.at, got, call.wait)
		}
	}
	if got := l.Stats(); got != (Stats{Keys: 2}) {
		t.Fatalf("Stats() = %+v", got)
	}
}
