package report

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := map[string]func() time.Duration{
		"uniform 1-100 ms": func() time.Duration { return time.Millisecond + time.Duration(rng.Int64N(int64(99*time.Millisecond))) },
		"log-normal around 5 ms": func() time.Duration {
			return time.Duration(float64(5*time.Millisecond) * math.Exp(rng.NormFloat64()))
		},
		"wide: 20 µs to 5 min": func() time.Duration {
			return time.Duration(float64(20*time.Microsecond) * math.Pow(1.5e7, rng.Float64()))
		},
	}
	for name, gen := range tests {
		t.Run(name, func(t *testing.T) {
			var h histogram
			values := make([]time.Duration, 20000)
			for i := range values {
				values[i] = gen()
				h.observe(values[i])
			}
			slices.Sort(values)
			for _, q := range []float64{0.5, 0.9, 0.99, 1} {
				exact := float64(values[int(math.Ceil(q*float64(len(values))))-1])
				got := h.quantile(q)
				if rel := math.Abs(got-exact) / exact; rel > 0.01 {
					t.Errorf("q%.2f = %v, exact %v: %.2f %% off", q, time.Duration(got), time.Duration(exact), rel*100)
				}
			}
			if h.max != values[len(values)-1] {
				t.Errorf("max %v, want %v", h.max, values[len(values)-1])
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	tests := map[string]struct {
		values []time.Duration
		want   SideLatency
	}{
		"empty":         {want: SideLatency{}},
		"below range":   {values: []time.Duration{time.Microsecond}, want: SideLatency{Count: 1, P50: 0.001, P90: 0.001, P99: 0.001, Max: 0.001}},
		"above range":   {values: []time.Duration{20 * time.Minute}, want: SideLatency{Count: 1, P50: 668467.2, P90: 668467.2, P99: 668467.2, Max: 1200000}},
		"one value":     {values: []time.Duration{3 * time.Millisecond}, want: SideLatency{Count: 1, P50: 3, P90: 3, P99: 3, Max: 3}},
		"negative is 0": {values: []time.Duration{-time.Second}, want: SideLatency{Count: 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var h histogram
			for _, v := range tc.values {
				h.observe(v)
			}
			if got := h.summary(); got != tc.want {
				t.Errorf("summary %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHistogramEncoding(t *testing.T) {
	var h histogram
	for i := range 1000 {
		h.observe(time.Duration(i*i) * time.Microsecond)
	}
	got, err := decodeHistogram(h.count, int64(h.max), h.encodeBuckets())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.counts, h.counts) || got.count != h.count || got.max != h.max {
		t.Error("round trip changed the histogram")
	}
	bad := map[string]struct {
		count uint64
		b     []byte
	}{
		"count mismatch":   {count: 5, b: []byte{1, 1}},
		"index past range": {count: 1, b: []byte{0xff, 0x7f, 1}},
		"zero gap":         {count: 1, b: []byte{0, 1}},
		"truncated":        {count: 1, b: []byte{1}},
		"no buckets":       {count: 1},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeHistogram(tc.count, 0, tc.b); err == nil {
				t.Error("accepted")
			}
		})
	}
}
