package budget

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shadowlab/shadowlab/admission"
	"github.com/shadowlab/shadowlab/internal/redistest"
)

// The cost of one decision: in process (admission.Limiter, the default)
// against the shared budget in a real redis-server on loopback, one
// replica alone, and two replicas deciding on the same keys at once (each
// lost compare-and-swap is one more round trip). A budget it never fills:
// every decision admits, as most do.
var benchCfg = admission.Config{Limit: 1_000_000_000, Window: time.Second, MaxDelay: time.Second, Mode: admission.ModeDelay}

func BenchmarkDecide(b *testing.B) {
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "tenant-" + strconv.Itoa(i)
	}
	b.Run("in-process", func(b *testing.B) {
		lim, err := admission.NewLimiter(benchCfg, 10_000, rand.NewPCG(1, 2))
		if err != nil {
			b.Fatal(err)
		}
		var i int
		for b.Loop() {
			lim.Decide(keys[i%len(keys)], time.Now())
			i++
		}
	})
	r := redistest.Start(b)
	cases := []struct {
		name               string
		replicas, parallel int // parallel 0: one decision at a time (latency)
		keys               int
	}{
		{"redis/one-at-a-time", 1, 0, 64},
		{"redis/replicas=2/parallel=8/keys=64", 2, 4, 64},
		{"redis/replicas=2/parallel=8/keys=1", 2, 4, 1},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var budgets []*Budget
			for range tc.replicas {
				s, err := Open(Config{URL: r.URL, Prefix: "bench:" + b.Name() + ":", Timeout: time.Second}, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				bg, err := s.Budget("route", benchCfg)
				if err != nil {
					b.Fatal(err)
				}
				budgets = append(budgets, bg)
			}
			var next atomic.Int64
			decide := func() {
				n := next.Add(1)
				if _, err := budgets[n%int64(tc.replicas)].Decide(context.Background(), keys[n%int64(tc.keys)], time.Now()); err != nil {
					b.Error(err)
				}
			}
			if tc.parallel == 0 {
				for b.Loop() {
					decide()
				}
			} else {
				b.SetParallelism(tc.parallel) // per GOMAXPROCS: decisions in flight at once
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						decide()
					}
				})
			}
			var trips, decisions uint64
			for _, bg := range budgets {
				st := bg.s.Stats()
				trips += st.RoundTrips
				decisions += st.Decisions
			}
			b.ReportMetric(float64(trips)/float64(decisions), "round-trips/decision")
		})
	}
}
